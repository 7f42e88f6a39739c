"""The backup DAG: back up the home after each monthly report (or by hand).

Scheduled on the Asset the metrics DAG's ``report`` task publishes; the work lives in
:mod:`carewatch.backup` (``carewatch backup`` runs the same).
"""

from __future__ import annotations

from carewatch import dagkit
from airflow.sdk import Asset, dag, task


@dag(
    dag_id="backup",
    description="Back up the warehouse, raw store, reports and exports into CAREWATCH_BACKUP_DIR",
    doc_md=dagkit.backup_doc(),
    schedule=[Asset(dagkit.REPORT_ASSET_URI)],
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["carewatch", "operations"],
    default_args=dagkit.default_args(),
)
def backup():
    # in the warehouse pool: it holds the file open read-only while it copies it
    @task(multiple_outputs=False, pool=dagkit.WAREHOUSE_POOL)
    def back_up_home() -> str:
        """Back up the home into CAREWATCH_BACKUP_DIR and verify it; skipped when that is not
        set. A damaged file fails at once (a retry would find it damaged again)."""
        from carewatch import backup as backups
        from airflow.sdk.exceptions import AirflowSkipException

        if backups.configured_destination() is None:
            raise AirflowSkipException("no backup destination: set CAREWATCH_BACKUP_DIR (docs/production.md, Backups)")
        with dagkit.fails_at_once(backups.BackupError):
            return backups.make().describe()

    back_up_home()


backup()
