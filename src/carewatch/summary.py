"""What a run prints for the people watching it: the terminal summary at the end of ``make run``."""

from __future__ import annotations

import json
from pathlib import Path

from carewatch import paths


def _ingest_summaries() -> dict[str, dict]:
    folder = paths.home() / "runs" / "ingest"
    if not folder.is_dir():
        return {}
    return {f.stem: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))}


def manifest_summary() -> list[tuple]:
    """Per source: periods held, file versions, revised periods, bytes, last fetch (from raw_manifest)."""
    import duckdb

    db = paths.warehouse_path()
    if not db.exists():
        return []
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            """
            select source,
                   count(distinct period)                          as periods,
                   count(*)                                        as versions,
                   count(distinct period) filter (where version > 1) as revised_periods,
                   sum(bytes)                                      as bytes,
                   max(fetched_at)                                 as last_fetch
            from raw_manifest
            group by source
            order by source
            """
        ).fetchall()


def print_run_summary(states: dict[str, str], log_file: Path) -> None:
    print()
    print("DAG runs (through Airflow):")
    for dag_id, state in states.items():
        print(f"  {dag_id:<28} {state}")
    if not states:
        print(f"  no DAG finished: see {log_file}")

    ingests = _ingest_summaries()
    print()
    print(f"{'source':<16}{'periods':>8}{'versions':>9}{'revised':>8}{'MB':>8}{'new files':>10}{'rows parsed':>12}")
    for source, periods, versions, revised, size, _last in manifest_summary():
        run = ingests.get(source, {})
        print(
            f"{source:<16}{periods:>8}{versions:>9}{revised:>8}{size / 1e6:>8.1f}"
            f"{run.get('files_parsed', 0):>10}{run.get('rows', 0):>12,}"
        )
    print()
    print("Outputs:")
    print(f"  raw store (immutable)   {paths.raw_store_dir()}")
    print(f"  parsed tidy Parquet     {paths.home() / 'parsed'}")
    print(f"  warehouse (DuckDB)      {paths.warehouse_path()}   tables: raw_manifest, fetch_log")
    print(f"  Airflow home / log      {paths.home() / 'airflow'}   {log_file}")
