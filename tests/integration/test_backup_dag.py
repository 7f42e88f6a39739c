"""The backup DAG run through Airflow itself (dag.test), on a real home and a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from carewatch import backup, mailcatcher, paths
from tests.unit.test_backup import _home, _kept

pytestmark = pytest.mark.airflow

WHEN = dt.datetime(2018, 5, 20, 9, tzinfo=dt.timezone.utc)


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags" / "backup.py")).get_dag("backup")


def _task_states(run) -> list[tuple[str, int]]:
    return [(str(ti.state), ti.try_number) for ti in run.get_task_instances()]


def test_the_backup_dag_backs_up_the_home_and_is_skipped_without_a_destination(airflow_db, carewatch_home, tmp_path, monkeypatch):
    _home(carewatch_home)
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    run = _dag().test(logical_date=WHEN)
    assert str(run.state) == "success" and _task_states(run) == [("skipped", 1)]

    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(tmp_path / "backups"))
    run = _dag().test(logical_date=WHEN + dt.timedelta(days=1))
    assert str(run.state) == "success" and _task_states(run) == [("success", 1)]
    (made,) = backup.complete_backups(tmp_path / "backups")
    held = {p.relative_to(made).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in made.rglob("*")
            if p.is_file() and p.name not in ("MANIFEST.json", "warehouse.duckdb")}
    assert held == _kept(carewatch_home)


def test_a_damaged_raw_file_fails_the_backup_at_once_and_emails_the_file(airflow_db, carewatch_home, tmp_path, monkeypatch):
    _home(carewatch_home)
    damaged = next((carewatch_home / "raw/dtoc_la/2018-02").iterdir())
    damaged.chmod(0o644)
    damaged.write_bytes(b"a damaged workbook")
    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(tmp_path / "backups"))
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        run = _dag().test(logical_date=WHEN + dt.timedelta(days=2))
        caught = mailcatcher.messages(mailbox)
    assert str(run.state) == "failed" and _task_states(run) == [("failed", 1)]  # not retried
    (subject,) = [" ".join(m["Subject"].split()) for m in caught]
    assert subject.startswith(f"[carewatch] FAILED backup.back_up_home: raw/dtoc_la/2018-02/{damaged.name} does not hash to its name")
    assert backup.complete_backups(tmp_path / "backups") == []
