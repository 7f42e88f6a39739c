"""NHS Digital "Measures from the Adult Social Care Outcomes Framework" CSV (annual).

One row per geography x ASCOF measure code x measure type in the file; returned as the
``ascof`` tidy schema of ``docs/data-contract.md``.

Confirmed from public descriptions of the real files (NHS Digital field notes of 2018-19
redistributed on GitHub, analysts' scripts reading the 2014-15 to 2022-23 files):

- columns Geographical Code (the CASSR / old local-authority code), Geographical
  Description, Geographical Level (Council, Region, Council Type - sometimes "Council
  type" - England), ONS Area Code (written "ONS Code" in later years), ASCOF Measure Code
  (the measure group plus any disaggregation: "2B16574", "2B185OV", "2B1F"), Disaggregation
  Level, Measure Type (Numerator, Denominator, Outcome, Base, Margin of Error), Measure
  Value, Measure Group ("2B1"), Measure Group Description;
- Windows-1252 encoding ("–", "£" in descriptions); suppression markers "[x]" and "[c]"
  (2020-21 on); blank cells where a measure type does not apply, a value is suppressed or a
  council did not submit.

Assumed (domain brief, not seen in a real file here): the 2014-15 header without spaces
("GeographicalCode", "ONSAreaCode", "ASCOFMeasureCode"), the older markers "*" and "..",
thousands separators in values, and an optional year column ("Year" / "Financial Year").
Columns are therefore matched on their lower-cased letters only, and any of the markers
becomes a null ``value`` with the marker in ``suppression``; a blank cell becomes a null
with no marker.

Measure codes and groups are kept as published: in 2023-24 the code 2C was reused for a
different measure, so 2C figures of different years are not one series (downstream reads
2B1 and 2B2 only). ``council_code`` is resolved (ONS code first, then the old code) on
Council rows only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from carewatch import geography
from carewatch.errors import ParseError
from carewatch.parsers import register
from carewatch.parsers.csvtext import line, read_csv_table

SOURCE = "ascof"

# normalised header (lower-case letters only) -> tidy column
COLUMNS = {
    "geographicalcode": "geo_code",
    "geographicaldescription": "geo_name",
    "geographicallevel": "geo_level",
    "onsareacode": "ons_code",
    "onscode": "ons_code",
    "ascofmeasurecode": "measure_code",
    "disaggregationlevel": "disaggregation",
    "disaggregation": "disaggregation",
    "measuretype": "measure_type",
    "measurevalue": "value",
    "measuregroup": "measure_group",
    "year": "year",
    "financialyear": "year",
}
REQUIRED = ["geo_code", "geo_name", "geo_level", "measure_code", "measure_type", "value", "measure_group"]
SUPPRESSION_MARKERS = ("[x]", "[c]", "*", "..")
MEASURE_TYPES = ["Numerator", "Denominator", "Outcome", "Base", "Margin of Error"]
GEO_LEVELS = ["Council", "Region", "Council Type", "England"]
FINANCIAL_YEAR = re.compile(r"^(\d{4})\s*[-/]\s*(\d{2}|\d{4})$")
OUTPUT = ["year", "geo_code", "geo_name", "geo_level", "ons_code", "council_code", "measure_group",
          "measure_code", "disaggregation", "measure_type", "value", "suppression"]


def _letters(name: str) -> str:
    return re.sub(r"[^a-z]", "", str(name).lower())


def _canonical(values: pd.Series, spellings: list[str]) -> pd.Series:
    """Known labels in their contract spelling whatever their case/spacing; others as published."""
    by_letters = {_letters(s): s for s in spellings}
    return values.map(lambda v: by_letters.get(_letters(v), v))


def _read_table(path: Path) -> pd.DataFrame:
    frame = read_csv_table(path, SOURCE)
    renamed = {column: COLUMNS[_letters(column)] for column in frame.columns if _letters(column) in COLUMNS}
    missing = [c for c in REQUIRED if c not in renamed.values()]
    if missing:
        raise ParseError(SOURCE, path, f"missing column(s) {', '.join(missing)}; header is {', '.join(map(repr, frame.columns))}")
    frame = frame[list(renamed)].rename(columns=renamed)
    if frame.empty:
        raise ParseError(SOURCE, path, "header but no data rows")
    return frame


def _financial_year(frame: pd.DataFrame, period: str | None, path: Path) -> str:
    """The file's year column if it has one, else the requested period; as "2016-17"."""
    if "year" in frame.columns:
        years = sorted(set(frame["year"]))
        if len(years) != 1:
            raise ParseError(SOURCE, path, f"more than one year in the year column: {years}")
        year = years[0]
    elif period:
        year = period
    else:
        raise ParseError(SOURCE, path, "the file has no year column and no period was given (e.g. 2016-17)")
    match = FINANCIAL_YEAR.match(year.strip())
    if not match or (int(match.group(1)) + 1) % 100 != int(match.group(2)) % 100:
        raise ParseError(SOURCE, path, f"year {year!r} is not a financial year such as 2016-17")
    return f"{match.group(1)}-{match.group(2)[-2:]}"


def _values(text: pd.Series, path: Path) -> tuple[pd.Series, pd.Series]:
    """(value, suppression marker) from the Measure Value column."""
    suppressed = text.isin(SUPPRESSION_MARKERS)
    numeric = text.str.replace(",", "", regex=False).where(~suppressed & (text != ""))
    values = pd.to_numeric(numeric, errors="coerce")
    bad = values.isna() & numeric.notna()
    if bad.any():
        row = bad.idxmax()
        raise ParseError(SOURCE, path, f"Measure Value {text[row]!r} on line {line(row)} is neither a number nor a suppression marker {SUPPRESSION_MARKERS}")
    return values.astype("float64"), text.where(suppressed, None)


def _council_codes(frame: pd.DataFrame) -> list[str | None]:
    ons = frame["ons_code"] if "ons_code" in frame.columns else pd.Series("", index=frame.index)
    return [
        geography.resolve_council(ons_code=o or None, legacy_code=g or None) if level == "Council" else None
        for o, g, level in zip(ons, frame["geo_code"], frame["geo_level"])
    ]


@register("ascof")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    frame = _read_table(path)
    frame["geo_level"] = _canonical(frame["geo_level"], GEO_LEVELS)
    frame["measure_type"] = _canonical(frame["measure_type"], MEASURE_TYPES)
    if "disaggregation" not in frame.columns:
        frame["disaggregation"] = "Total"
    value, suppression = _values(frame["value"], path)
    out = frame.assign(
        year=_financial_year(frame, period, path),
        ons_code=frame["ons_code"].replace("", None) if "ons_code" in frame.columns else None,
        council_code=_council_codes(frame),
        value=value,
        suppression=suppression,
    )
    return out[OUTPUT].reset_index(drop=True)
