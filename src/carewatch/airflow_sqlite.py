"""How the local Airflow (``make run``, ``make airflow``) connects to its SQLite metadata DB.

Standalone's scheduler, API server, DAG processor and triggerer all write one SQLite file (WAL
mode, set by Airflow) through SQLAlchemy's sync engine, which these connect args configure (the
API server's async engine takes ``sql_alchemy_connect_args_async``, unset: it opens no
savepoints). Two things turned ordinary contention there into a crashed scheduler:

- **Backfill creation failed at once.** A transaction that SQLAlchemy opens with ``SAVEPOINT``
  (``session.begin_nested()``, used by Airflow's backfill creation, one per run) begins
  *deferred*: it reads first and takes the write lock only at its first write. If another
  connection committed in between, SQLite refuses the write at once with "database is locked"
  (SQLITE_BUSY_SNAPSHOT: no lock wait applies). The API answered 503, deleted the runs it had
  already committed under the scheduler, and the scheduler crashed on a foreign-key error
  (standalone does not restart it). ``ImmediateSavepointConnection`` begins such a transaction
  with ``BEGIN IMMEDIATE``: it waits for the write lock up front, and then holds it until the
  session commits, so a backfill's runs are created in one transaction, as on Postgres. A
  failure can then only come before the first run, with nothing for the scheduler to lose.
- **The API server can hold the lock against itself.** It writes its audit log from an async
  dependency, on its event loop; when that write waits for a lock held by a request whose commit
  needs the same loop, only the audit write's timeout ends the wait, and every other writer
  waits meanwhile. With the same wait everywhere, the scheduler's commit sometimes gave up first
  and its loop crashed. So the API server waits 5 s (Python's default: the stall stays short and
  its clients retry the 500) and the scheduler, DAG processor and triggerer wait 30 s, longer
  than any such stall (and than a large backfill's creation).

Measured by ``bench/stress_airflow_sqlite.py`` (25-40 backfill POSTs of 36 runs, each cancelled,
under CPU load on 2 cores): plain sqlite3 with a 30 s wait, 34 of 40 POSTs answered 503 and the
scheduler crashed; immediate savepoints with 30 s everywhere, no 503 and no crash, but 13
stalls of 30 s or more and 1-3 failed tasks per run; with 5 s everywhere, the scheduler's
commit timed out in one of two runs and it crashed. These connect args (5 s in the API server,
30 s elsewhere): no 503, no crash, no stall, no failed task; 7 of 188 API answers were 500
after the API server's 5 s wait, 3 of them backfill POSTs refused before anything was made.

Python's sqlite3 already opens the other transactions right before their first write, so they
never read a stale snapshot first. Production runs Airflow on Postgres (``docker-compose.yaml``)
and uses none of this.
"""

from __future__ import annotations

import sqlite3
import sys


class _ImmediateSavepointCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        if not self.connection.in_transaction and sql.lstrip()[:9].upper() == "SAVEPOINT":
            super().execute("BEGIN IMMEDIATE")
        return super().execute(sql, parameters)


class ImmediateSavepointConnection(sqlite3.Connection):
    """A sqlite3 connection whose transactions opened by SAVEPOINT take the write lock first."""

    def cursor(self, factory=None):
        return super().cursor(factory or _ImmediateSavepointCursor)


def lock_wait(argv: list[str]) -> float:
    """Seconds a connection waits for the write lock: 5 in the API server, 30 elsewhere."""
    return 5.0 if argv[1:2] == ["api-server"] else 30.0


# [database] sql_alchemy_connect_args for the local Airflow (runner.airflow_env names it); each
# Airflow process imports it, so `airflow api-server` gets its own wait
CONNECT_ARGS = {"timeout": lock_wait(sys.argv), "factory": ImmediateSavepointConnection}
