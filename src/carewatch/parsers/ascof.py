"""NHS Digital ASCOF measures CSV (annual), every header variant.

Windows-1252 bytes; column names change case and spacing between years ("Geographical
Code" / "GeographicalCode", "ONS Area Code" / "ONS Code" / "ONSAreaCode", "ASCOF Measure
Code" / "ASCOFMeasureCode"), so columns are matched on their lower-cased letters only.
Suppression markers ("[x]", "[c]", "*", "..", "-") become nulls with the marker kept in
``suppression``. Measure codes are kept as published (in 2023-24 code 2C was reused for a
different measure: downstream code reads 2B1 and 2B2 only). The financial year comes from a
year column if the file has one, else from the requested period.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from carewatch import geography
from carewatch.errors import ParseError
from carewatch.parsers import register

SOURCE = "ascof"
SUPPRESSION = {"[x]", "[c]", "[z]", "*", "**", "..", "-", ":", "x", "c"}
COLUMNS = {
    "geographicalcode": "geo_code",
    "geographicaldescription": "geo_name",
    "geographicallevel": "geo_level",
    "onsareacode": "ons_code",
    "onscode": "ons_code",
    "ascofmeasurecode": "measure_code",
    "disaggregationlevel": "disaggregation",
    "measuretype": "measure_type",
    "measurevalue": "value",
    "measuregroup": "measure_group",
    "measuregroupdescription": "measure_group_description",
    "year": "year",
    "financialyear": "year",
}
REQUIRED = ["geo_code", "geo_name", "geo_level", "measure_code", "measure_type", "value", "measure_group"]
FY = re.compile(r"^(\d{4})-?(\d{2})$")


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


@register("ascof")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    raw = path.read_bytes()
    if raw[:5].lower().startswith((b"<!doc", b"<html")):
        raise ParseError(SOURCE, path, "an HTML page, not a CSV")
    text = raw.decode("cp1252", errors="strict") if not raw.startswith(b"\xef\xbb\xbf") else raw.decode("utf-8-sig")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except Exception as err:
        raise ParseError(SOURCE, path, f"not a readable CSV ({err})") from None
    renamed = {c: COLUMNS[_key(c)] for c in frame.columns if _key(c) in COLUMNS}
    frame = frame.rename(columns=renamed)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ParseError(SOURCE, path, f"missing column(s) {', '.join(missing)}; found {', '.join(map(repr, renamed) or ['none'])}")
    if "year" in frame.columns:
        years = set(frame["year"].str.strip())
        if len(years) != 1:
            raise ParseError(SOURCE, path, f"more than one year in the file: {sorted(years)}")
        year = years.pop()
    elif period:
        year = period
    else:
        raise ParseError(SOURCE, path, "no year column and no --period given (e.g. 2016-17)")
    match = FY.match(year.replace("/", "-"))
    if not match:
        raise ParseError(SOURCE, path, f"year {year!r} is not a financial year such as 2016-17")
    year = f"{match.group(1)}-{match.group(2)}"
    value_text = frame["value"].str.strip()
    suppressed = value_text.str.lower().isin(SUPPRESSION) | (value_text == "")
    numbers = pd.to_numeric(value_text.str.replace(",", "", regex=False).where(~suppressed), errors="coerce")
    bad = numbers.isna() & ~suppressed
    if bad.any():
        raise ParseError(SOURCE, path, f"Measure Value {value_text[bad].iloc[0]!r} (row {bad.idxmax() + 2}) is neither a number nor a suppression marker")
    ons = frame["ons_code"].str.strip() if "ons_code" in frame.columns else pd.Series([None] * len(frame))
    is_council = frame["geo_level"].str.strip().str.lower().str.startswith("council") & ~frame["geo_level"].str.lower().str.contains("type")
    councils = [
        geography.resolve_council(ons_code=o or None, legacy_code=g) if c else None
        for o, g, c in zip(ons, frame["geo_code"].str.strip(), is_council)
    ]
    return pd.DataFrame({
        "year": year,
        "geo_code": frame["geo_code"].str.strip(),
        "geo_name": frame["geo_name"].str.strip(),
        "geo_level": frame["geo_level"].str.strip(),
        "ons_code": ons.replace("", None),
        "council_code": councils,
        "measure_group": frame["measure_group"].str.strip(),
        "measure_code": frame["measure_code"].str.strip(),
        "disaggregation": frame["disaggregation"].str.strip() if "disaggregation" in frame.columns else "Total",
        "measure_type": frame["measure_type"].str.strip(),
        "value": numbers.astype("float64"),
        "suppression": value_text.where(suppressed & (value_text != ""), None),
    })
