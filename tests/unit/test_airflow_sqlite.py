"""The local Airflow's SQLite connection: a transaction opened by SAVEPOINT that reads, then
writes after another connection committed, must wait for the lock instead of failing.

This is what Airflow's backfill creation does (``session.begin_nested()``, read the latest run,
add a run) while the scheduler and the DAG processor commit around it. With plain sqlite3 the
write fails at once with "database is locked" whatever the lock timeout; in CI the API server
answered that backfill POST 503 and the scheduler crashed.
"""

from __future__ import annotations

import threading

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


def test_plain_sqlite_refuses_the_write_at_once_whatever_the_timeout(tmp_path):
    engine = _engine(tmp_path / "airflow.db", {"timeout": 30})
    other = _engine(tmp_path / "airflow.db", {"timeout": 30})

    def scheduler_commits():
        with other.begin() as con:
            con.execute(text("insert into runs (source) values ('scheduler')"))

    with pytest.raises(OperationalError, match="database is locked"):
        _read_then_write_in_a_savepoint(engine, scheduler_commits)


def test_the_local_connection_takes_the_lock_first_and_the_other_writer_waits(tmp_path):
    engine = _engine(tmp_path / "airflow.db", airflow_sqlite.CONNECT_ARGS)
    other = _engine(tmp_path / "airflow.db", {"timeout": 30})
    finished = []

    def scheduler_commits():
        def write():
            with other.begin() as con:
                con.execute(text("insert into runs (source) values ('scheduler')"))
            finished.append("scheduler")

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=1)
        # the savepoint's transaction holds the write lock: the scheduler waits for it
        assert writer.is_alive() and finished == []
        scheduler_commits.writer = writer

    _read_then_write_in_a_savepoint(engine, scheduler_commits)
    scheduler_commits.writer.join(timeout=30)
    assert finished == ["scheduler"]
    with engine.connect() as con:
        assert con.execute(text("select source from runs order by id")).scalars().all() == ["backfill", "scheduler"]


def test_savepoints_inside_an_open_transaction_are_left_alone(tmp_path):
    engine = _engine(tmp_path / "airflow.db", airflow_sqlite.CONNECT_ARGS)
    with Session(engine) as session:
        session.execute(text("insert into runs (source) values ('outer')"))
        with session.begin_nested() as inner:
            session.execute(text("insert into runs (source) values ('inner')"))
            inner.rollback()
        session.commit()
    with engine.connect() as con:
        assert con.execute(text("select source from runs")).scalars().all() == ["outer"]
