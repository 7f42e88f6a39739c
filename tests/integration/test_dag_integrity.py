"""Every DAG file imports cleanly, cheaply, and carries what operators need in the UI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from carewatch import paths

DAGS_DIR = paths.PROJECT_ROOT / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


def test_one_ingest_dag_per_catalogued_source(dagbag):
    from carewatch import sources

    expected = {f"ingest_{name}" for name in sources.catalogue()}
    assert expected <= set(dagbag.dag_ids)


def _waits_for(dag) -> set[str]:
    return {asset.uri for asset in dag.timetable.asset_condition.objects}


def test_the_metrics_dag_waits_for_the_sources_the_catalogue_says_feed_it(dagbag, tmp_path, monkeypatch):
    import shutil

    import yaml
    from airflow.dag_processing.dagbag import DagBag

    from carewatch import dagkit

    shipped = {dagkit.parsed_asset_uri(name) for name in ("ons_mye", "ascof", "dtoc_la", "dtoc_national", "hes_aggregate")}
    assert _waits_for(dagbag.dags["metrics"]) == shipped  # not dtoc_provider: no metric reads it
    # marking a source in (a copy of) the catalogue is all it takes
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    catalogue = yaml.safe_load((config / "sources.yaml").read_text())
    catalogue["sources"]["dtoc_provider"]["feeds_metrics"] = True
    (config / "sources.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    metrics = DagBag(dag_folder=str(DAGS_DIR / "metrics.py")).dags["metrics"]
    assert _waits_for(metrics) == shipped | {dagkit.parsed_asset_uri("dtoc_provider")}


def test_every_dag_is_documented_tagged_owned_and_retried(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and "When it fails" in dag.doc_md, dag_id
        assert "carewatch" in dag.tags, dag_id
        for task in dag.tasks:
            assert task.owner == "data-engineering", (dag_id, task.task_id)
            assert task.execution_timeout is not None, (dag_id, task.task_id)
        assert any(t.retries > 0 for t in dag.tasks), dag_id


def test_tasks_hand_on_one_xcom_each(dagbag):
    """A task annotated ``-> dict`` would otherwise push one XCom per key as well (Airflow
    infers multiple_outputs from the annotation): about ten extra API calls per task."""
    pushing_keys = [f"{dag.dag_id}.{task.task_id}" for dag in dagbag.dags.values() for task in dag.tasks if task.multiple_outputs]
    assert pushing_keys == []


def test_parsing_dag_files_imports_no_heavy_library():
    """DAG parsing happens every few seconds in the dag-processor: keep pandas, GX and DuckDB out."""
    code = f"""
import json, runpy, sys, pathlib
for f in sorted(pathlib.Path({str(DAGS_DIR)!r}).glob("*.py")):
    runpy.run_path(str(f))
heavy = [m for m in ("pandas", "great_expectations", "duckdb", "pyarrow", "requests", "scipy") if m in sys.modules]
print(json.dumps(heavy))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_metrics_task_waits_for_the_warehouse(dagbag):
    # DuckDB will not open the warehouse read-only while another process writes it: the report
    # task reads it, so it queues in the same one-slot pool as the loads and the build
    from carewatch.dagkit import WAREHOUSE_POOL

    tasks = {task.task_id: task for task in dagbag.dags["metrics"].tasks}
    assert set(tasks) == {"wait_for_ingest", "build_warehouse", "analyse", "report"}
    assert all(tasks[t].pool == WAREHOUSE_POOL for t in ("build_warehouse", "analyse", "report"))
    # the sensor waits for ingest runs whose loads need that one slot: holding it would deadlock
    # them, and in reschedule mode it holds no worker slot either
    assert tasks["wait_for_ingest"].pool != WAREHOUSE_POOL and tasks["wait_for_ingest"].mode == "reschedule"
    assert tasks["wait_for_ingest"].upstream_task_ids == set() and tasks["build_warehouse"].upstream_task_ids == {"wait_for_ingest"}


def test_the_backup_dag_runs_on_what_the_metrics_report_publishes_and_waits_for_the_warehouse(dagbag):
    from carewatch import dagkit

    report = dagbag.dags["metrics"].get_task("report")
    assert [asset.uri for asset in report.outlets] == [dagkit.REPORT_ASSET_URI]
    assert _waits_for(dagbag.dags["backup"]) == {dagkit.REPORT_ASSET_URI}
    (task,) = dagbag.dags["backup"].tasks
    assert task.pool == dagkit.WAREHOUSE_POOL  # it holds the warehouse open while it copies it


def test_the_local_airflow_uses_the_sqlite_connection_that_waits_for_locks():
    # standalone's scheduler, API server and tasks share one SQLite file: a 503 to a backfill
    # POST ("database is locked") crashed the scheduler; tests/unit/test_airflow_sqlite.py
    from airflow.configuration import conf

    from carewatch import airflow_sqlite, runner

    assert runner.airflow_env({})["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] == "carewatch.airflow_sqlite.CONNECT_ARGS"
    args = conf.getimport("database", "sql_alchemy_connect_args")  # the test session's own Airflow
    assert args is airflow_sqlite.CONNECT_ARGS and args["factory"] is airflow_sqlite.ImmediateSavepointConnection
    from airflow import settings

    connection = settings.engine.raw_connection()  # and Airflow's engine does connect with it
    try:
        assert isinstance(connection.driver_connection, airflow_sqlite.ImmediateSavepointConnection)
    finally:
        connection.close()


def test_airflow_cli_runs_airflow_on_the_project_home(tmp_path):
    # `airflow backfill create ...` typed in a plain shell would use ~/airflow and no project DAGs
    import os
    import subprocess
    import sys

    from carewatch import paths

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CAREWATCH"))}
    env["CAREWATCH_HOME"] = str(tmp_path / "home")
    carewatch = [sys.executable, "-m", "carewatch.cli", "airflow-cli"]
    for (section, key), expected in {("core", "dags_folder"): str(paths.PROJECT_ROOT / "dags"),
                                     ("core", "load_examples"): "False"}.items():
        out = subprocess.run([*carewatch, "config", "get-value", section, key], env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == expected
    assert (tmp_path / "home" / "airflow" / "airflow.cfg").is_file()  # its home, not ~/airflow
    helped = subprocess.run([*carewatch, "-h"], env=env, capture_output=True, text=True, timeout=180)
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: airflow")  # Airflow's options are Airflow's


def test_fails_at_once_turns_the_errors_named_into_a_failure_without_retries_and_no_other():
    # what the metrics DAG's tasks wrap their work in: a config mistake or a blocking check fails
    # the task at once, raised from the error (the failure callback reads it there)
    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    from carewatch import dagkit
    from carewatch.errors import ConfigError, QualityError

    mistake = ConfigError(["config/metrics.yaml: metrics[0].direction must be low or high, not 'Low'"])
    with pytest.raises(AirflowFailException) as failed:
        with dagkit.fails_at_once(QualityError, ConfigError):
            raise mistake
    assert str(failed.value) == str(mistake) and failed.value.__cause__ is mistake
    with pytest.raises(OSError):  # anything else keeps the task's retries
        with dagkit.fails_at_once(ConfigError):
            raise OSError("the warehouse is busy")
