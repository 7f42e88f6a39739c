"""Where the project's files live. Every location can be overridden by environment.

- ``CAREWATCH_ROOT``: the project checkout (``include/``, ``expectations/``, ``config/``,
  ``dags/``, ``data/samples/``); default: the checkout this package is imported from. An image
  that installs the package into site-packages sets it (the production Dockerfile does).
- ``CAREWATCH_HOME``: where run-time data lands (raw store, warehouse, exports); default ``<project>/var``.
- ``CAREWATCH_CONFIG``: the config directory; default ``<project>/config``.
"""

from __future__ import annotations

import os
from pathlib import Path



def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


PROJECT_ROOT = _env_path("CAREWATCH_ROOT", Path(__file__).resolve().parents[2])


def config_dir() -> Path:
    return _env_path("CAREWATCH_CONFIG", PROJECT_ROOT / "config")


def home() -> Path:
    return _env_path("CAREWATCH_HOME", PROJECT_ROOT / "var")


def raw_store_dir() -> Path:
    return home() / "raw"


def refused_dir() -> Path:
    """Downloads refused by the content checks, kept for a look (never parsed or loaded)."""
    return home() / "refused"


def outbox_dir() -> Path:
    """Alerts the mail server did not take, kept until a later attempt delivers them."""
    return home() / "outbox"


def parsed_path(source: str, period: str, sha256: str) -> Path:
    """The tidy Parquet parsed from one raw file, named by the raw file's sha256 and the
    fingerprint of the source's parser (:func:`carewatch.parsers.fingerprint`): a fix to that
    parser parses again."""
    from carewatch import parsers, sources

    return home() / "parsed" / source / period / f"{sha256}-{parsers.fingerprint(sources.parser_for(source))}.parquet"


def warehouse_path() -> Path:
    return _env_path("CAREWATCH_WAREHOUSE", home() / "warehouse.duckdb")


def exports_dir() -> Path:
    return home() / "exports"


def samples_dir() -> Path:
    """The committed embedded sample publications (served over HTTP by the default run)."""
    return _env_path("CAREWATCH_SAMPLES", PROJECT_ROOT / "data" / "samples")


def sql_dir() -> Path:
    return PROJECT_ROOT / "include" / "sql"


def expectations_dir() -> Path:
    return PROJECT_ROOT / "expectations"
