"""Shared building blocks for the DAG files: defaults, pool names, asset names, docs.

Kept free of heavy imports: DAG files import this at parse time.
"""

from __future__ import annotations

import datetime as dt

START_DATE = dt.datetime(2010, 10, 1, tzinfo=dt.timezone.utc)

# Only one task at a time writes the DuckDB warehouse file (DuckDB allows one writing process).
WAREHOUSE_POOL = "carewatch_warehouse"

OWNER = "data-engineering"


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


def parsed_asset_uri(source: str) -> str:
    """The Asset an ingest DAG publishes once a source's periods are loaded."""
    return f"carewatch://landed/{source}"


def metrics_doc() -> str:
    return """\
### Metrics

Runs when the ingest DAG of every source marked `feeds_metrics: true` in
`config/sources.yaml` has finished its run (Airflow Assets
`carewatch://landed/<source>`, published once every period is done, failed ones included:
a failed period loaded nothing and was emailed), or by hand: after a failed period is fixed
and its task cleared, trigger this DAG to rebuild with it.

**What it does.** `build_warehouse` reloads the reference tables from `config/` and rebuilds
every model in `include/sql/` (staging -> conformed -> marts) in one DuckDB transaction, so
readers see either the previous warehouse or the new one, never half. `analyse` then ranks the
areas, compares each with its peers (`include/sql/analysis/`), tracks the DTOC targets and
flags areas for review, writing all of its tables in one transaction.

**When it fails.** Read the task log: a SQL error names the model file. The previous
warehouse is intact (the transaction rolled back). Fix the model or the config, then clear
the task. If another process holds the warehouse file (DuckDB allows one writer), wait for it
and clear the task; the `carewatch_warehouse` pool keeps Airflow's own tasks to one writer.
"""


def ingest_doc(source) -> str:
    return f"""\
### Ingest: {source.title}

Publisher: {source.publisher}. Cadence: {source.cadence}. Parser: `{source.parser}`.

**What it does.** `plan_periods` picks the periods this run handles (the period due at the
logical date plus the revision window, or the `from_period`/`to_period` params);
`fetch` downloads each into the immutable raw store (`var/raw/{source.name}/...`) with
conditional GET, recording every version in `raw_manifest`; `parse` turns each new file into
the tidy schema of `docs/data-contract.md`; `validate` runs the source's Great Expectations
suite (`expectations/{source.name}.json`, if there is one) and records every result in
`validation_results`; `load` writes the period into its landing table in one transaction.

**When it fails.**
- `fetch` failed: read the task log. It names source, period and URL and says what was
  wrong (HTML page instead of a file, truncated, too big, wrong type, HTTP error, the very
  file another period holds; OVERDUE: a 404 after the due date; GONE: a 404 for a month
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

Whatever failed, `publish_asset` still published the source's Asset, so the month's `metrics`
run went ahead without the failed period; once it is fixed and its task cleared, trigger
`metrics` by hand to rebuild with it.
"""
