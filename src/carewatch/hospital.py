"""Record-level hospital metrics (``carewatch hes-metrics``): DuckDB SQL over a HES APC extract.

The SQL (``include/sql/hospital/hes_apc_metrics.sql``) reads only the needed columns of the
Parquet extract in one scan. Areas come from ``config/geography/district_to_hwb.csv`` (ONS's
2021 LTLA -> UTLA lookup, mapped to HWB areas: so figures are on 2021 geography, where
Bournemouth, Christchurch and Poole and the new Dorset are areas of their own).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from carewatch import paths
from carewatch.errors import ParseError

COLUMNS = ["area_code", "period", "emergency_admissions", "discharges", "los_p90_days", "weekend_discharges"]
NEEDED = {"epistat", "admimeth", "startage", "admidate", "disdate", "dismeth", "epiorder", "resladst_ons"}


def lookup_path() -> Path:
    return paths.config_dir() / "geography" / "district_to_hwb.csv"


def _month(text: str | None, default: dt.date) -> dt.date:
    if not text:
        return default
    return dt.date(int(text[:4]), int(text[5:7]), 1)


def hes_metrics(extract: str | Path, from_period: str | None = None, to_period: str | None = None,
                threads: int | None = None, memory_limit: str = "350MB") -> pd.DataFrame:
    """One row per HWB area (and 'UNMAPPED') and month, as the definitions in the SQL say."""
    import duckdb
    import pyarrow.parquet as pq

    extract = Path(extract)
    try:
        names = set(pq.ParquetFile(extract).schema_arrow.names)
    except Exception as err:
        raise ParseError("hes_apc", extract, f"not a readable Parquet file ({err.__class__.__name__})") from None
    missing = sorted(NEEDED - names)
    if missing:
        raise ParseError("hes_apc", extract, f"missing HES APC column(s): {', '.join(missing)}")
    sql = (paths.sql_dir() / "hospital" / "hes_apc_metrics.sql").read_text()
    con = duckdb.connect()
    try:
        con.execute(f"set memory_limit = '{memory_limit}'")
        con.execute("set enable_progress_bar = false")
        if threads:
            con.execute(f"set threads = {int(threads)}")
        params = {
            "extract": str(extract),
            "lookup": str(lookup_path()),
            "from_month": _month(from_period, dt.date(1900, 1, 1)),
            "to_month": _month(to_period, dt.date(2999, 12, 1)),
        }
        frame = con.execute(sql, params).df()
    finally:
        con.close()
    frame["period"] = pd.to_datetime(frame["period"]).dt.strftime("%Y-%m-%d")
    return frame[COLUMNS]
