"""Shared building blocks for the DAG files: defaults, pool names, asset names, docs.

Kept free of heavy imports: DAG files import this at parse time.
"""

from __future__ import annotations

import contextlib
import datetime as dt

START_DATE = dt.datetime(2010, 10, 1, tzinfo=dt.timezone.utc)

# Only one task at a time writes the DuckDB warehouse file (DuckDB allows one writing process).
WAREHOUSE_POOL = "carewatch_warehouse"

OWNER = "data-engineering"


@contextlib.contextmanager
def fails_at_once(*errors: type[BaseException]):
    """Raise any of ``errors`` as Airflow's fail-without-retry exception, with its message: the
    same input would fail every retry the same way (a config mistake, a blocking check). The
    failure callback still finds the error (the exception is raised from it)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except errors as err:
        raise AirflowFailException(str(err)) from err


def upstream_result(value, source: str, task: str, upstream: str, context):
    """``value``, the result ``upstream`` handed the per-period ingest task ``task``; when it is
    None (``upstream`` did not run to success but was marked success by hand), the task fails
    at once, without retries, naming the period
    (:class:`carewatch.errors.NoUpstreamResult`): a file is parsed, validated and loaded only
    through the tasks before it, never because one was forced green."""
    if value is not None:
        return value
    from carewatch.errors import NoUpstreamResult

    with fails_at_once(NoUpstreamResult):
        raise NoUpstreamResult(source, _mapped_period(context), task, upstream)


def _mapped_period(context) -> str | None:
    """The period of this mapped task instance (``plan_periods``'s list at its map index); None
    if it cannot be told."""
    try:
        ti = context["ti"]
        periods = ti.xcom_pull(task_ids="plan_periods")
        return periods[ti.map_index] if periods and 0 <= ti.map_index < len(periods) else None
    except Exception:  # noqa: BLE001 - only for the message
        return None


def default_args() -> dict:
    """Retries with exponential backoff for transient faults; a ceiling on every task's run time."""
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
        "execution_timeout": dt.timedelta(minutes=30),
        "on_failure_callback": _on_failure,
    }


def _on_failure(context) -> None:
    """Email the data engineers (``config/alerts.yaml``); imported lazily to keep parsing fast."""
    from carewatch import alerts

    alerts.on_task_failure(context)


WAREHOUSE_ASSET_URI = "carewatch://warehouse/fct_metric_values"
REPORT_ASSET_URI = "carewatch://reports/monthly"  # the metrics DAG's report written: the backup DAG runs on it


def parsed_asset_uri(source: str) -> str:
    """The Asset an ingest DAG publishes once a source's periods are loaded."""
    return f"carewatch://landed/{source}"


def ingest_dag_id(source: str) -> str:
    return f"ingest_{source}"


def published_by_run(events, dag_id: str, run_id: str) -> bool:
    """Whether one of the Asset ``events`` (Airflow's ``inlet_events``) came from the DAG run
    ``run_id`` of ``dag_id``: the run is being re-run after it published."""
    return any(e.source_dag_id == dag_id and e.source_run_id == run_id for e in events)


# The metrics DAG's first task waits while an ingest run of a source it reads is queued or
# running: its Asset events can be older than the run in progress (a run triggered by hand
# between two monthly runs, a reload say, published one that the next month's condition
# counts), and a build then would miss that run's periods. Checked every POKE, for at most
# TIMEOUT (then the task fails and emails; mark it success to build without the late run).
INGEST_WAIT_POKE = dt.timedelta(minutes=1)
INGEST_WAIT_TIMEOUT = dt.timedelta(hours=6)


def ingest_runs_in_progress(ti, source_names: list[str], rerun_of: dict | None = None) -> list[str]:
    """The ingest DAGs of ``source_names`` with a run queued or running, each with its count
    (``"ingest_dtoc_la (1)"``), asked through the task instance ``ti`` (the Task SDK's
    ``get_dr_count``). ``rerun_of`` ({"dag_id", "run_id"}) is the ingest run that started this
    metrics run from its ``trigger_metrics`` task: it is finishing, and is not waited for. A
    paused ingest DAG is not waited for either: the scheduler does not move its runs on, so
    one left queued or running would hold every metrics run until its timeout."""
    busy = []
    for name in source_names:
        dag_id = ingest_dag_id(name)
        count = ti.get_dr_count(dag_id=dag_id, states=["queued", "running"])
        if count and ti.get_dag(dag_id).is_paused:
            continue
        if count and rerun_of and rerun_of.get("dag_id") == dag_id \
                and ti.get_dagrun_state(dag_id=dag_id, run_id=rerun_of["run_id"]) in ("queued", "running"):
            count -= 1
        if count:
            busy.append(f"{dag_id} ({count})")
    return busy


def backup_doc() -> str:
    return """\
### Backup

Backs up the home (`carewatch backup`: `carewatch.backup`) into `CAREWATCH_BACKUP_DIR`, after
each monthly report (the Asset `carewatch://reports/monthly`), or when triggered by hand (before
an upgrade, say). Skipped, saying so, when `CAREWATCH_BACKUP_DIR` is not set.

**What it keeps.** The warehouse, copied while the task holds it open read-only (in the
warehouse pool, so no load or build waits on it), then the raw store, refused downloads,
reports, exports, Data Docs, ingest summaries and waiting alerts, in
`CAREWATCH_BACKUP_DIR/<made at, UTC>/` with a `MANIFEST.json` of every file's sha256. Files
unchanged since the previous backup are hard-linked to it; the oldest backups beyond `keep`
(`config/backup.yaml`) are removed once the new one is verified.

**When it fails.** A raw file that no longer matches the sha256 it is named by (a damaged disk)
or a copy that does not match the home fails at once, without retries, and the email names the
file: the previous backups still hold it (`carewatch restore --check BACKUP`). So does a file
system error (a destination this user cannot write, a full disk), naming the path. A busy warehouse,
a backup already running, or a file a pipeline task rewrote while it was copied retries.

**Restoring.** `carewatch restore BACKUP --to NEW_HOME` (docs/production.md, Backups).
"""


def metrics_doc() -> str:
    return """\
### Metrics

Runs when the ingest DAG of every source marked `feeds_metrics: true` in
`config/sources.yaml` has finished its run (Airflow Assets
`carewatch://landed/<source>`, published once every period is done, failed ones included:
a failed period loaded nothing and was emailed); and when an ingest run that already
published is re-run (a failed period fixed and its task cleared, downstream included), by
that run's `trigger_metrics` task (its note names the ingest DAG, its conf `rerun_of` the run).

**What it does.** `wait_for_ingest` first waits while an ingest run of those sources is
queued or running (checked each minute, for up to six hours): an Asset event can be older than
the run in progress, and the build would miss its periods. The run that started this one by
`trigger_metrics` is not waited for, nor the runs of a paused ingest DAG (never finished). `carewatch run` turns the wait off (`wait_for_ingest`:
false), as it ran the ingest DAGs first.

Then `build_warehouse` reloads the reference tables from `config/` and rebuilds
every model in `include/sql/` (staging -> conformed -> marts) in one DuckDB transaction, so
readers see either the previous warehouse or the new one, never half. `analyse` then ranks the
areas, compares each with its peers (`include/sql/analysis/`), tracks the DTOC targets and
flags areas for review, writing all of its tables in one transaction. `report` writes each month's
report; its log says of each whether it was written, rewritten (figures changed; the earlier one
kept under `superseded/`) or stands, not rewritten (a rerun with the same figures).

**When it fails.** `wait_for_ingest` timed out: its log names the ingest runs still queued
or running; see why they are stuck (or mark `wait_for_ingest` success to build without them).
A blocking warehouse check (the email names it; `carewatch check <name> --failing` shows the
rows): if a loaded file is wrong and passed its suite, `carewatch reject <source> <period>
--reason "..."` leaves that version out and the next build uses the period's previous one;
clear `build_warehouse`. Otherwise read the task log: a SQL error names the model file. The previous
warehouse is intact (the transaction rolled back). Fix the model or the config, then clear
the task. If another process holds the warehouse file (DuckDB allows one writer), wait for it
and clear the task; the `carewatch_warehouse` pool keeps Airflow's own tasks to one writer.
"""


def ingest_doc(source) -> str:
    return f"""\
### Ingest: {source.title}

Publisher: {source.publisher}. Cadence: {source.cadence}. Parser: `{source.parser}`.

**What it does.** `plan_periods` picks the periods this run handles (the period due at the
logical date plus the revision window and any earlier period never held since the first one
asked for, or the `from_period`/`to_period` params);
`fetch` downloads each into the immutable raw store (`var/raw/{source.name}/...`) with
conditional GET, recording every version in `raw_manifest`; `parse` turns each new file into
the tidy schema of `docs/data-contract.md`; `validate` runs the source's Great Expectations
suite (`expectations/{source.name}.json`, if there is one) and records every result in
`validation_results`; `load` writes the period into its landing table in one transaction.

**When it fails.**
- `fetch` failed: read the task log. It names source, period and URL and says what was
  wrong (HTML page instead of a file, truncated, too big, wrong type, HTTP error, the very
  file another period holds; OVERDUE: a 404 after the due date, emailed at most once every
  `overdue_repeat_days`; GONE: a 404 for a month
  already held, whose held version stays loaded; for DTOC, "no link" on the publication page
  counts as a 404). Nothing was stored in the raw store (a
  refused body is kept under `refused/` for a look). If NHS moved the file, add its URL to
  `config/urls/{source.name}.csv` and clear the task; if another period's URL was the wrong
  one, correct it, and accept this period's file in `config/accepted_files.csv`.
- `fetch` skipped: the period is not published yet, and the next run picks it up; or a month
  already held, re-checked for a revision, was refused at the same URL for the same reason
  (byte counts and connection details aside) as in an earlier run whose failure was emailed
  (`fetch_log` outcome `already_refused`, `fetch_refusals_reported`): the held version stays,
  and it is not emailed again.
- `validate` failed: a blocking expectation failed; the log and the `quarantine` table say
  which, with examples. Nothing of the period was loaded. Check the file with
  `carewatch validate {source.name} <raw file> --period <period>`; if the publication is
  wrong, wait for its revision; if the suite is wrong, fix it in review, then clear the task.
- `parse` failed: the publication's layout changed. Reproduce with
  `carewatch parse {source.name} <raw file> --period <period>`, fix the parser, clear the task.
- `parse`, `validate` or `load` failed at once with "nothing parsed/validated/loaded: ... did
  not pass (marked success by hand?)": the task before it was marked success without passing
  (the UI's "Mark as success" reruns the tasks after it). It handed on no file, so nothing was
  loaded: marking a task success never loads a file its validate did not pass. Fix the cause
  and clear that task instead.

Whatever failed, `publish_asset` still published the source's Asset, so the month's `metrics`
run went ahead without the failed period. Once it is fixed, clear its task with "Downstream"
ticked (the default): the re-run starts `metrics` itself (`trigger_metrics`) instead of
publishing the Asset again.
"""
