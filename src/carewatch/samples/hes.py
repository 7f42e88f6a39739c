"""Write the published-style monthly hospital activity aggregate (CSV)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd


def write_aggregate(path: Path, period: dt.date, frame: pd.DataFrame) -> Path:
    """``frame``: World.hospital_month(period)."""
    out = pd.DataFrame({
        "Period": f"{period:%Y-%m}",
        "Area Code": frame["area_code"],
        "Area Name": frame["area_name"],
        "Emergency Admissions 65+": frame["emergency_admissions_65plus"],
        "Discharges 65+": frame["discharges_65plus"],
        "LOS P90 Days": frame["los_p90_days"],
        "Weekend Discharges 65+": frame["weekend_discharges_65plus"],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path
