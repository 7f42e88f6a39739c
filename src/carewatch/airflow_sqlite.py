"""How the local Airflow (``make run``, ``make airflow``) connects to its SQLite metadata DB.

Standalone's scheduler, API server, DAG processor and triggerer all write one SQLite file (WAL
mode, set by Airflow) through SQLAlchemy's sync engine, which these connect args configure (the
API server's async engine takes ``sql_alchemy_connect_args_async``, unset: it opens no
savepoints). Two things turn ordinary contention there into errors:

- A transaction that SQLAlchemy opens with ``SAVEPOINT`` (``session.begin_nested()``, used by
  Airflow's backfill creation) begins *deferred*: it reads first and takes the write lock only at
  its first write. If any other connection committed in between, SQLite refuses the write at once
  with "database is locked" (SQLITE_BUSY_SNAPSHOT: no lock wait applies). The API then answered
  503 to a backfill POST, deleted the half-created backfill under the scheduler, and the
  scheduler crashed (a foreign-key error in its loop; standalone does not restart it).
  ``ImmediateSavepointConnection`` begins such a transaction with ``BEGIN IMMEDIATE`` instead:
  it waits for the write lock up front (at most the lock wait below), so nothing can commit
  between its read and its write. Releasing that savepoint still commits, as in SQLite: a
  backfill's runs are committed one by one and the lock is held no longer than before.
- The lock wait stays at Python's 5 s. The API server writes its audit log from an async
  dependency, on its event loop; when that write waits for a lock held by a request whose commit
  needs the same loop, only the timeout ends the wait. With 30 s every component stalled for
  30 s and tasks failed on execution-API timeouts; with 5 s it is a short 500 that the clients
  retry.

Measured by ``bench/stress_airflow_sqlite.py``: 25-40 backfill POSTs (36 runs each, then
cancelled) under CPU load on 2 cores:
plain sqlite3 with a 30 s wait, 34 of 40 POSTs answered 503 and the scheduler crashed; this
connection with a 30 s wait, no 503 and no crash but 13 stalls of 30 s or more and 1-3 tasks
per run failed on execution-API errors; with 5 s, no 503, no crash, no stall and no failed task.

Python's sqlite3 already opens the other transactions right before their first write, so they
never read a stale snapshot first. Production runs Airflow on Postgres (``docker-compose.yaml``)
and uses none of this.
"""

from __future__ import annotations

import sqlite3


class _ImmediateSavepointCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        connection = self.connection
        if not connection.in_transaction:
            connection.outer_savepoint = None  # whatever began it has ended
        words = sql.split(None, 3)[:3]
        keyword = words[0].upper() if words else ""
        if keyword == "SAVEPOINT" and not connection.in_transaction:
            super().execute("BEGIN IMMEDIATE")
            connection.outer_savepoint = words[1].lower()
            return super().execute(sql, parameters)
        result = super().execute(sql, parameters)
        if keyword == "RELEASE" and connection.outer_savepoint is not None and connection.in_transaction:
            name = words[2] if len(words) > 2 and words[1].upper() == "SAVEPOINT" else words[1]
            if name.lower() == connection.outer_savepoint:
                # releasing a transaction's first savepoint commits it in SQLite; under BEGIN
                # IMMEDIATE it would not, so commit here: the lock is held no longer than before
                connection.outer_savepoint = None
                super().execute("COMMIT")
        return result

    def executemany(self, sql, seq_of_parameters, /):
        if not self.connection.in_transaction:
            self.connection.outer_savepoint = None
        return super().executemany(sql, seq_of_parameters)


class ImmediateSavepointConnection(sqlite3.Connection):
    """A sqlite3 connection whose transactions opened by SAVEPOINT take the write lock first.

    Otherwise SQLite's own semantics are kept: releasing the savepoint that began the
    transaction commits it (``outer_savepoint`` remembers which one that is).
    """

    outer_savepoint: str | None = None

    def cursor(self, factory=None):
        return super().cursor(factory or _ImmediateSavepointCursor)


# [database] sql_alchemy_connect_args for the local Airflow (runner.airflow_env names it)
CONNECT_ARGS = {"timeout": 5, "factory": ImmediateSavepointConnection}
