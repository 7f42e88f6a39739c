"""Hospital activity of people aged 65+: the published-style monthly aggregate (CSV).

Columns (any case): Period (YYYY-MM or "April 2017"), Area Code, Area Name and one column
per measure: Emergency Admissions 65+, Discharges 65+, LOS P90 Days, Weekend Discharges 65+.
A suppressed cell (a marker: "*", "[c]", "[x]", "..", "-") becomes a null ``value`` with its
marker kept in ``suppression``; a blank cell, or a field missing from a row cut short (a
download that stopped mid-row), becomes a null with no marker, which the suite refuses (as
ASCOF's does). Read as the other CSVs are (``csvtext``: UTF-8 or Windows-1252, rows with no
value dropped). The record-level extract is not parsed here: it
is read in place by DuckDB (``carewatch hes-metrics``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from carewatch.errors import ParseError
from carewatch.parsers import register
from carewatch.parsers.csvtext import line, read_csv_table

SOURCE = "hes_aggregate"
MEASURES = {
    "emergencyadmissions": "emergency_admissions_65plus",
    "discharges": "discharges_65plus",
    "lospdays": "los_p90_days",
    "weekenddischarges": "weekend_discharges_65plus",
}
SUPPRESSION = {"*", "[c]", "[x]", "..", "-"}  # markers; a blank cell is missing, not suppressed


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


@register("hes_aggregate")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    frame = read_csv_table(Path(path), SOURCE)
    keys = {_key(c): c for c in frame.columns}
    for needed in ("period", "areacode", "areaname"):
        if needed not in keys:
            raise ParseError(SOURCE, path, f"missing column {needed!r}; found {list(frame.columns)}")
    measure_cols = {MEASURES[k]: c for k, c in ((re.sub(r"\d", "", k), c) for k, c in keys.items()) if k in MEASURES}
    if set(measure_cols) != set(MEASURES.values()):
        raise ParseError(SOURCE, path, f"missing measure column(s): {sorted(set(MEASURES.values()) - set(measure_cols))}")
    if frame.empty:
        raise ParseError(SOURCE, path, "header but no data rows")
    periods = pd.to_datetime(frame[keys["period"]], format="mixed", errors="coerce")
    if periods.isna().any():
        bad = periods.index[periods.isna()][0]
        raise ParseError(SOURCE, path, f"line {line(bad)}: unreadable period {frame.loc[bad, keys['period']]!r}")
    out = []
    for measure, column in measure_cols.items():
        text = frame[column].fillna("")  # (a field missing from a short row: blank)
        suppressed = text.isin(SUPPRESSION)
        blank = text == ""
        values = pd.to_numeric(text.str.replace(",", "", regex=False).where(~suppressed & ~blank), errors="coerce")
        if (values.isna() & ~suppressed & ~blank).any():
            bad = text.index[values.isna() & ~suppressed & ~blank][0]
            raise ParseError(SOURCE, path, f"line {line(bad)}, column {column!r}: {text[bad]!r} is not a number")
        out.append(pd.DataFrame({
            "period": periods.dt.to_period("M").dt.to_timestamp().dt.date,
            "area_code": frame[keys["areacode"]],
            "area_name": frame[keys["areaname"]],
            "measure": measure,
            "value": values.astype("float64"),
            "suppression": text.where(suppressed, None),
        }))
    return pd.concat(out, ignore_index=True)
