"""The metrics DAG: rebuild the warehouse marts once every monthly ingest has landed.

Scheduled on the Assets the ingest DAGs of the sources that feed the metrics publish
(``feeds_metrics: true`` in ``config/sources.yaml``); the work lives in :mod:`carewatch.pipeline`.
"""

from __future__ import annotations

from carewatch import dagkit, sources
from airflow.sdk import Asset, Param, dag, task


@dag(
    dag_id="metrics",
    description="Warehouse models, rankings, targets and review flags from the landed publications",
    doc_md=dagkit.metrics_doc(),
    schedule=[Asset(dagkit.parsed_asset_uri(source)) for source in sources.metric_sources()],
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["carewatch", "warehouse"],
    default_args=dagkit.default_args(),
    params={
        "wait_for_ingest": Param(True, type="boolean", description="Wait while an ingest run of a source the metrics read is queued or running (off for carewatch run, which ran them first)"),
        "rerun_of": Param(None, type=["null", "object"], description="Set by an ingest run's trigger_metrics: that run, finishing, is not waited for"),
    },
)
def metrics():
    # not in the warehouse pool: it would hold the one slot the ingest loads it waits for need
    @task.sensor(poke_interval=dagkit.INGEST_WAIT_POKE, timeout=dagkit.INGEST_WAIT_TIMEOUT, mode="reschedule", retries=0)
    def wait_for_ingest(**context) -> bool:
        """Wait while an ingest run of a source the metrics read is queued or running: an Asset
        event can be older than the run in progress (one published by a run triggered by hand
        since the last metrics run counts toward the next), and a build now
        would miss that run's periods."""
        import logging

        params = context["params"]
        if not params.get("wait_for_ingest", True):
            return True
        busy = dagkit.ingest_runs_in_progress(context["ti"], sources.metric_sources(), params.get("rerun_of"))
        if busy:
            logging.getLogger("carewatch.metrics").info("waiting for ingest runs queued or running: %s", ", ".join(busy))
        return not busy

    @task(multiple_outputs=False, pool=dagkit.WAREHOUSE_POOL, outlets=[Asset(dagkit.WAREHOUSE_ASSET_URI)])
    def build_warehouse(**context) -> dict:
        """Rebuild reference tables and the staging, conformed and mart models in one transaction;
        cross-source and completeness checks decide whether it commits. A blocking check
        failure fails at once (the same rows would fail every retry), as does a mistake in
        config/metrics.yaml; a busy warehouse retries."""
        from carewatch import pipeline
        from carewatch.errors import ConfigError, QualityError

        with dagkit.fails_at_once(QualityError, ConfigError):
            return pipeline.build_warehouse(task_url=context["ti"].log_url)

    @task(multiple_outputs=False, pool=dagkit.WAREHOUSE_POOL)
    def analyse() -> dict:
        """Rank the areas, compare with similar areas, track DTOC targets and flag areas for CQC
        review. A mistake in the methodology config fails at once, without retries (the same
        file would be refused again), in one line per problem naming the file and the key."""
        from carewatch import pipeline
        from carewatch.errors import ConfigError, NotEnoughHistory
        from airflow.sdk.exceptions import AirflowSkipException

        try:
            with dagkit.fails_at_once(ConfigError):
                return pipeline.analyse()
        except NotEnoughHistory as err:  # a young warehouse: skipped (and the report with it), not failed
            raise AirflowSkipException(str(err)) from err

    # in the warehouse pool too: DuckDB will not open the file read-only while another process
    # (an ingest DAG's load) has it open for writing
    @task(multiple_outputs=False, pool=dagkit.WAREHOUSE_POOL, outlets=[Asset(dagkit.REPORT_ASSET_URI)])
    def report() -> str:
        """Write the monthly HTML report with its CSV and Parquet tables (a config mistake: failed, no retries)."""
        from carewatch import pipeline
        from carewatch.errors import ConfigError

        with dagkit.fails_at_once(ConfigError):
            return pipeline.write_report()

    wait_for_ingest() >> build_warehouse() >> analyse() >> report()


metrics()
