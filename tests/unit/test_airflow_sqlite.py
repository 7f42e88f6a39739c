"""The local Airflow's SQLite connection: a transaction opened by SAVEPOINT that reads, then
writes after another connection committed, must wait for the lock instead of failing.

This is what Airflow's backfill creation does (``session.begin_nested()``, read the latest run,
add a run) while the scheduler and the DAG processor commit around it. With plain sqlite3 the
write fails at once with "database is locked" whatever the lock timeout; in CI the API server
answered that backfill POST 503 and the scheduler crashed.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from carewatch import airflow_sqlite


def _engine(path, connect_args):
    engine = create_engine(f"sqlite:///{path}", connect_args=dict(connect_args))

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):  # as Airflow sets it (utils/orm_event_handlers.py)
        dbapi_connection.execute("pragma journal_mode=wal")

    with engine.begin() as con:
        con.execute(text("create table if not exists runs (id integer primary key, source text)"))
    return engine


def _read_then_write_in_a_savepoint(engine, other_commit):
    """Session A opens a SAVEPOINT, reads, lets `other_commit` run, then writes and commits."""
    with Session(engine) as session:
        with session.begin_nested():
            session.execute(text("select max(id) from runs")).scalar()
            other_commit()
            session.execute(text("insert into runs (source) values ('backfill')"))
        session.commit()


def _write(engine, source):
    with engine.begin() as con:
        con.execute(text("insert into runs (source) values (:source)"), {"source": source})


def _sources(engine):
    with engine.connect() as con:
        return con.execute(text("select source from runs order by id")).scalars().all()


def test_plain_sqlite_refuses_the_write_at_once_whatever_the_timeout(tmp_path):
    engine = _engine(tmp_path / "airflow.db", {"timeout": 30})
    other = _engine(tmp_path / "airflow.db", {"timeout": 30})
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"):
        _read_then_write_in_a_savepoint(engine, lambda: _write(other, "scheduler"))
    assert time.monotonic() - started < 5  # refused, not waited for


def test_the_local_connection_takes_the_lock_first_and_the_other_writer_waits(tmp_path):
    engine = _engine(tmp_path / "airflow.db", airflow_sqlite.CONNECT_ARGS)
    impatient = _engine(tmp_path / "airflow.db", {"timeout": 0.2})
    other = _engine(tmp_path / "airflow.db", {"timeout": 30})
    finished = []

    def scheduler_commits():
        # the savepoint's transaction holds the write lock: a writer that will not wait fails...
        with pytest.raises(OperationalError, match="database is locked"):
            _write(impatient, "impatient")
        # ...and one that waits gets in after the savepoint's commit
        writer = threading.Thread(target=lambda: (_write(other, "scheduler"), finished.append("scheduler")))
        writer.start()
        scheduler_commits.writer = writer

    _read_then_write_in_a_savepoint(engine, scheduler_commits)
    scheduler_commits.writer.join(timeout=30)
    assert finished == ["scheduler"]
    assert _sources(engine) == ["backfill", "scheduler"]


def test_a_backfills_runs_are_one_transaction_until_the_session_commits(tmp_path):
    # one savepoint per run, as Airflow creates them: with plain sqlite3 each release commits
    # (the scheduler sees runs appear one by one, and a later failure deleted them under it);
    # here, as on Postgres, nothing is visible or lost until the session commits
    engine = _engine(tmp_path / "airflow.db", airflow_sqlite.CONNECT_ARGS)
    impatient = _engine(tmp_path / "airflow.db", {"timeout": 0.2})
    with Session(engine) as session:
        for run in ("run 1", "run 2"):
            with session.begin_nested():
                session.execute(text("insert into runs (source) values (:run)"), {"run": run})
        with pytest.raises(OperationalError, match="database is locked"):
            _write(impatient, "scheduler")
        assert _sources(impatient) == []
        session.rollback()  # a failure undoes every run
    assert _sources(engine) == []


def test_savepoints_inside_an_open_transaction_are_left_alone(tmp_path):
    engine = _engine(tmp_path / "airflow.db", airflow_sqlite.CONNECT_ARGS)
    impatient = _engine(tmp_path / "airflow.db", {"timeout": 0.2})
    with Session(engine) as session:
        session.execute(text("insert into runs (source) values ('outer')"))
        with session.begin_nested() as inner:
            session.execute(text("insert into runs (source) values ('inner')"))
            inner.rollback()
        with session.begin_nested():
            session.execute(text("insert into runs (source) values ('released')"))
        # releasing a savepoint inside the transaction commits nothing: the lock is still held
        with pytest.raises(OperationalError, match="database is locked"):
            _write(impatient, "impatient")
        session.commit()
    assert _sources(engine) == ["outer", "released"]


def test_the_api_server_gives_up_on_a_lock_before_the_scheduler_does():
    # the API server can hold the lock against itself until its own wait ends: the scheduler,
    # DAG processor and triggerer must outlast that wait, or their loop crashes
    api = airflow_sqlite.lock_wait(["/venv/bin/airflow", "api-server", "--port", "8080"])
    for component in ("scheduler", "dag-processor", "triggerer"):
        assert airflow_sqlite.lock_wait(["/venv/bin/airflow", component]) > api
    assert api <= 5  # the stall stays short
