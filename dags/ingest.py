"""Ingest DAGs: one per publication in ``config/sources.yaml``.

Each DAG fetches the periods its run is due to handle into the immutable raw store, parses
each file into the source's tidy schema, loads it into the warehouse's landing table and,
once every period is done (failed ones too), publishes the source's Asset, on which the
metrics DAG is scheduled; a run re-run after it published (a fixed period's task cleared)
starts the metrics DAG itself instead.
The work itself lives in :mod:`carewatch.pipeline`; this file only wires tasks.
Tasks returning a dict say ``multiple_outputs=False``: Airflow would infer it from the
``-> dict`` annotation and push every key as its own XCom too.
"""

from __future__ import annotations

from carewatch import dagkit, sources
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, Param, dag, task, task_group


def build_ingest_dag(source: sources.Source):
    landed = Asset(dagkit.parsed_asset_uri(source.name))

    @dag(
        dag_id=dagkit.ingest_dag_id(source.name),
        description=f"Fetch and parse {source.title}",
        doc_md=dagkit.ingest_doc(source),
        schedule=source.schedule,
        start_date=dagkit.START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["carewatch", "ingest", source.publisher],
        default_args=dagkit.default_args(),
        params={
            "from_period": Param(None, type=["null", "string"], description="First period to process (backfill/bootstrap); empty = due periods of the logical date"),
            "to_period": Param(None, type=["null", "string"], description="Last period to process; empty = the catalogue's last period"),
            "bootstrap": Param(False, type="boolean", description="Fetch every available period due by the logical date (first run on a new machine)"),
        },
    )
    def ingest():
        @task(retries=0)
        def plan_periods(**context) -> list[str]:
            """Decide which periods of the publication this run fetches (and first send any
            alert an earlier run kept in the outbox while the mail server was down). No retries:
            a plan that fails (params that name no period, a catalogue error) fails the same again."""
            from carewatch import alerts, pipeline

            alerts.flush_outbox()
            pipeline.refuse_lost_warehouse()  # not a new warehouse beside a full raw store: restore the backup
            params = context["params"]
            return pipeline.periods_to_process(
                source.name,
                context.get("logical_date"),
                params.get("from_period"),
                params.get("to_period"),
                bool(params.get("bootstrap")),
            )

        @task(multiple_outputs=False, max_active_tis_per_dagrun=4, pool=dagkit.WAREHOUSE_POOL)
        def fetch(period: str, **context) -> dict:
            """Download one period into the raw store (skipped if not published yet, or if a
            held period's re-check is refused as in an earlier, emailed run). A refusal of what
            was served (a web page, a damaged workbook...) fails at once; a transient fault (the
            connection, a cut-short download, 5xx) keeps the task's retries."""
            from carewatch import pipeline
            from carewatch.errors import AlreadyRefused, FetchError, NotPublishedYet, PublicationOverdue, PublicationWithdrawn
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            logical = context.get("logical_date")
            try:
                return pipeline.fetch_period(source.name, period, as_of=logical.date() if logical else None,
                                             run_id=context.get("run_id"))
            except (NotPublishedYet, AlreadyRefused) as err:  # not yet due; or a held period, refused as already reported
                raise AirflowSkipException(str(err)) from err
            except (PublicationOverdue, PublicationWithdrawn) as err:  # no retry: the next monthly run looks again
                raise AirflowFailException(str(err)) from err
            except FetchError as err:  # what was served is not the file: a retry would be refused the same
                if err.transient:
                    raise
                raise AirflowFailException(str(err)) from err

        @task(multiple_outputs=False, retries=0)
        def parse(fetched: dict, **context) -> dict:
            """Parse the raw file into the tidy schema (docs/data-contract.md). A file that could
            not be parsed before is skipped, not failed and emailed again every month."""
            from carewatch import pipeline
            from carewatch.errors import AlreadyUnparseable
            from airflow.sdk.exceptions import AirflowSkipException

            fetched = dagkit.upstream_result(fetched, source.name, "parse", "fetch", context)
            try:
                return pipeline.parse_period(fetched)
            except AlreadyUnparseable as err:
                raise AirflowSkipException(str(err)) from err

        @task(multiple_outputs=False, pool=dagkit.WAREHOUSE_POOL, retries=0)
        def validate(parsed: dict, **context) -> dict:
            """Run the source's Great Expectations suite; a blocking failure quarantines the period
            (the task fails and emails). The same file failing again later is skipped, not
            failed: it stays quarantined without holding back the metrics DAG every month."""
            from carewatch import pipeline
            from carewatch.errors import AlreadyQuarantined
            from airflow.sdk.exceptions import AirflowSkipException

            parsed = dagkit.upstream_result(parsed, source.name, "validate", "parse", context)
            try:
                return pipeline.validate_period(parsed, task_url=context["ti"].log_url)
            except AlreadyQuarantined as err:
                raise AirflowSkipException(str(err)) from err

        @task(multiple_outputs=False, pool=dagkit.WAREHOUSE_POOL)
        def load(validated: dict, **context) -> dict:
            """Load the period into its warehouse landing table in one transaction: only what its
            validate passed (a validate marked success by hand hands over nothing: failed at once)."""
            from carewatch import pipeline

            return pipeline.load_period(dagkit.upstream_result(validated, source.name, "load", "validate", context))

        @task(multiple_outputs=False, trigger_rule="none_failed")
        def summarise(loaded) -> dict:
            """Record what this run fetched, parsed and loaded (when no period failed: the run
            fails with it, so the grid shows the run red)."""
            from carewatch import pipeline

            return pipeline.summarise_ingest(source.name, pipeline.as_list(loaded))

        @task.branch(trigger_rule="all_done", retries=0, inlets=[landed])
        def publish_or_rebuild(**context) -> str:
            """Once every period is done, failed ones included, publish the source's Asset: what
            the warehouse holds for the source is settled for this run (a failed period loaded
            nothing and was emailed; a held version stays), and the metrics DAG waits for every
            source's Asset, so one late or bad file does not hold back the month's metrics.
            A run that already published is being re-run (a failed period fixed and its task
            cleared, downstream included): it starts the metrics DAG itself (trigger_metrics),
            as the month's other Assets were used by the earlier metrics run, and publishes
            nothing, which would count toward next month's. Skipped (no Asset event) when the
            run could not even plan its periods."""
            from airflow.sdk.exceptions import AirflowSkipException

            if context["ti"].xcom_pull(task_ids="plan_periods") is None:
                raise AirflowSkipException("plan_periods failed: this run handled no period, so nothing is published")
            events = context["inlet_events"][landed].after(context["dag_run"].run_after.isoformat())
            if dagkit.published_by_run(events, context["dag"].dag_id, context["run_id"]):
                return "trigger_metrics"
            return "publish_asset"

        @task(retries=0, outlets=[landed])
        def publish_asset() -> None:
            """Publish the source's Asset (an event on success): see publish_or_rebuild."""

        trigger_metrics = TriggerDagRunOperator(
            task_id="trigger_metrics",
            trigger_dag_id="metrics",
            logical_date=None,
            conf={"rerun_of": {"dag_id": dagkit.ingest_dag_id(source.name), "run_id": "{{ run_id }}"}},
            note=f"Rebuild after a re-run of {dagkit.ingest_dag_id(source.name)}",
            retries=0,
        )

        @task_group
        def one_period(period: str):
            """fetch -> parse -> validate -> load for one period; periods fail independently."""
            return load(validate(parse(fetch(period))))

        periods = one_period.expand(period=plan_periods())
        summarise(periods)
        periods >> publish_or_rebuild() >> [publish_asset(), trigger_metrics]

    return ingest()


for _source in sources.catalogue().values():
    build_ingest_dag(_source)
