"""Benchmark: the share of a monthly run spent validating (``make bench``).

Target (issue 4): validating all sources of one monthly run takes at most 20% of that run's
wall time. Method, on the embedded samples through Airflow (the same path as ``make run``):

1. setup, not measured: a fresh Airflow and carewatch home, the bootstrap run of April 2018
   (every ingest DAG and the metrics DAG);
2. measured: the next monthly run (logical date 2018-05-15: each source's due period and its
   revision window, then the metrics DAG), wall time of the whole child process;
3. validation time: the duration Airflow recorded for every ``validate`` task of that run
   (Great Expectations suites, Data Docs, results stored) plus the warehouse checks (cross-
   source and completeness suites, timed on the resulting warehouse, as build_warehouse runs
   them inside its transaction).

Usage: python bench/bench_validation.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

INGEST = ["ons_mye", "ascof", "dtoc_la", "dtoc_national", "dtoc_provider", "hes_aggregate"]
DAGS = [f"ingest_{s}" for s in INGEST] + ["metrics"]


def run_child(env: dict, logical: dt.datetime, conf: dict, log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "carewatch.runner", logical.isoformat(), json.dumps(conf), *DAGS],
                              env=env, stdout=out, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the run for {logical:%Y-%m-%d} failed: see {log}")
    return elapsed


def task_seconds(airflow_home: Path, logical: dt.datetime) -> dict[str, float]:
    """Seconds per task kind (validate, fetch, ...) of the runs at ``logical``, from Airflow's DB."""
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute(
            """
            select ti.task_id, sum(ti.duration) from task_instance ti
            join dag_run dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id
            where date(dr.logical_date) = ? group by ti.task_id
            """,
            [logical.date().isoformat()],
        ).fetchall()
    out: dict[str, float] = {}
    for task_id, seconds in rows:
        kind = task_id.split(".")[-1]
        out[kind] = out.get(kind, 0.0) + (seconds or 0.0)
    return out


def main() -> int:
    from carewatch import mailcatcher, runner, sample_server

    work = Path(tempfile.mkdtemp(prefix="carewatch-bench-validation-"))
    os.environ["CAREWATCH_HOME"] = str(work / "home")
    os.environ["AIRFLOW_HOME"] = str(work / "airflow")
    env = runner.airflow_env()
    with sample_server.serve_samples() as base_url, mailcatcher.catch_mail(work / "mail") as (port, _):
        env.update({"CAREWATCH_BASE_URL": base_url, "AIRFLOW_CONN_SMTP_DEFAULT": mailcatcher.connection_uri(port),
                    "CAREWATCH_HOME": str(work / "home"), "AIRFLOW_HOME": str(work / "airflow")})
        setup_date = dt.datetime(2018, 4, 15, 9, tzinfo=dt.timezone.utc)
        monthly_date = dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc)
        print("setup: bootstrap run of 2018-04-15 (not measured) ...", flush=True)
        run_child(env, setup_date, {"bootstrap": True}, work / "setup.log")
        print("measured: the monthly run of 2018-05-15 ...", flush=True)
        wall = run_child(env, monthly_date, {}, work / "monthly.log")

    tasks = task_seconds(work / "airflow", monthly_date)
    validate = tasks.get("validate", 0.0)

    check_seconds = float(subprocess.run(
        [sys.executable, "-c", (
            "import time, duckdb\n"
            "from carewatch import validation, warehouse\n"
            "import great_expectations\n"  # import cost is paid once by the validate tasks' process already
            "t = time.perf_counter()\n"
            "with warehouse.connect(read_only=True) as con:\n"
            "    validation.check_warehouse(con)\n"
            "print(time.perf_counter() - t)\n")],
        env={**env}, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1])
    gx_import = float(subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import great_expectations; print(time.perf_counter() - t)"],
                                     capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])

    total_validation = validate + check_seconds
    share = total_validation / wall
    print()
    print(f"monthly run wall time (all DAGs through Airflow)   {wall:8.1f} s")
    print("task time by kind (Airflow's recorded durations):  " + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(tasks.items(), key=lambda kv: -kv[1])))
    print(f"validate tasks (suites, Data Docs, results)        {validate:8.1f} s")
    print(f"warehouse checks (cross-source, completeness)      {check_seconds:8.1f} s")
    print(f"validation share of the run                        {share:8.1%}   target <= 20%: {'met' if share <= 0.20 else 'NOT met'}")
    print(f"(Great Expectations import, paid once per worker process: {gx_import:.1f} s; DAG files never import it)")
    print(f"work directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
