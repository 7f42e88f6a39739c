"""How the local Airflow (``make run``, ``make airflow``) connects to its SQLite metadata DB.

Standalone's scheduler, API server, DAG processor, triggerer and tasks all write one SQLite file
(WAL mode, set by Airflow). Two things turn ordinary contention there into errors:

- Python's default lock wait is 5 s; ``timeout`` makes it 30 s.
- A transaction that SQLAlchemy opens with ``SAVEPOINT`` (``session.begin_nested()``, used by
  Airflow's backfill creation) begins *deferred*: it reads first and takes the write lock only at
  its first write. If any other connection committed in between, SQLite refuses the write at once
  with "database is locked" (SQLITE_BUSY_SNAPSHOT: the lock wait does not apply). The API then
  answered 503 to a backfill POST, deleted the half-created backfill under the scheduler, and
  the scheduler crashed. ``ImmediateSavepointConnection`` begins such a transaction with
  ``BEGIN IMMEDIATE`` instead: it waits for the write lock up front (within ``timeout``), so
  nothing can commit between its read and its write.

Python's sqlite3 already opens the other transactions right before their first write, so they
never read a stale snapshot first. Production runs Airflow on Postgres (``docker-compose.yaml``)
and uses none of this.
"""

from __future__ import annotations

import sqlite3


class _ImmediateSavepointCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        if not self.connection.in_transaction and sql.lstrip()[:9].upper() == "SAVEPOINT":
            super().execute("BEGIN IMMEDIATE")
        return super().execute(sql, parameters)


class ImmediateSavepointConnection(sqlite3.Connection):
    """A sqlite3 connection whose transactions opened by SAVEPOINT take the write lock first."""

    def cursor(self, factory=None):
        return super().cursor(factory or _ImmediateSavepointCursor)


# [database] sql_alchemy_connect_args for the local Airflow (runner.airflow_env names it)
CONNECT_ARGS = {"timeout": 30, "factory": ImmediateSavepointConnection}
