"""Test-wide setup: an isolated Airflow home and carewatch home per test session.

Environment is set at import time, before any test imports Airflow (Airflow reads its
configuration once, on first import).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# pytest imports this file as `conftest` and test modules import it again as `tests.conftest`
# (for FIXTURES): the second import shares the first's homes instead of making an empty one
_FIRST = next((module for name, module in list(sys.modules.items())
               if name in ("conftest", "tests.conftest") and hasattr(module, "_SESSION_DIR")), None)
_SESSION_DIR = _FIRST._SESSION_DIR if _FIRST is not None else Path(tempfile.mkdtemp(prefix="carewatch-tests-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["CAREWATCH_HOME"] = str(_SESSION_DIR / "home")
os.environ.setdefault("CAREWATCH_ENV", "embedded")

from carewatch import runner  # noqa: E402  (after the environment is set)

for _key, _value in runner.airflow_env().items():
    if _key.startswith(("AIRFLOW", "GX_")):
        os.environ[_key] = _value

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_sessionfinish(session, exitstatus):
    """Remove this process's Airflow and carewatch homes after a passing session (each xdist
    worker has its own); a failing one keeps them for a look, and says where."""
    if exitstatus == 0:
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)
    else:
        print(f"\ncarewatch test homes kept: {_SESSION_DIR}")


@pytest.fixture
def carewatch_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty CAREWATCH_HOME (raw store, warehouse, parsed files) for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("CAREWATCH_HOME", str(home))
    monkeypatch.delenv("CAREWATCH_WAREHOUSE", raising=False)
    return home


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The Airflow metadata DB (SQLite in the session's temporary AIRFLOW_HOME) and pools."""
    runner.prepare_metadata_db()


@pytest.fixture(scope="session")
def sample_base_url():
    """The committed embedded sample publications served over real HTTP on 127.0.0.1."""
    from carewatch import sample_server

    with sample_server.serve_samples() as base_url:
        yield base_url
