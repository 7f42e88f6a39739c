"""NHS England delayed transfers of care, monthly provider-level CSV (MSitDT).

Wide file: one row per provider x commissioner x local authority x type of care x reason
for delay, and per agency (NHS, Social Care, Both) an "A" column (patients delayed at the
month's snapshot) and a "B" column (delayed days in the month). Returned melted to one row
per agency: the ``dtoc_provider`` tidy schema of ``docs/data-contract.md``.

Confirmed (a published analysis script that reads several years of the real files): the
column order period(s), provider code and name, commissioner code and name, LA code and
name, care type, delay reason, NHS A, NHS B, Social Care A, Social Care B, Both A, Both B;
two period styles - a single "Period" column holding "MSitDT-SEPTEMBER-2017", or a "Year"
column holding the financial year ("2017-18") followed by a column with the month's name in
capitals ("JANUARY" belongs to the second calendar year); LA names in capitals with special
rows "RESIDENT IN WALES", "RESIDENT IN SCOTLAND", "RESIDENT OUTSIDE GB".

Assumed (domain brief; exact spellings not seen): header spellings - columns are matched on
their lower-cased letters against the aliases below; care types "Acute" / "Non-Acute" in any
case; delay reasons written as the code alone ("Di") or the code with its description
("DI) AWAITING RESIDENTIAL HOME PLACEMENT"), read as the leading code; numbers as text with
thousands separators ("1,234"); "-" or a blank cell for no figure (null).

``council_code`` comes from the LA code through the reference geography; where a council was
replaced (merge or split) on or before the month and the row names a successor rather than
the old council, the successor's code is used: Dorset's old code 809 stayed in use for the
new unitary Dorset (E06000059, "Dorset UA") from 2019.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd

from carewatch import geography
from carewatch.errors import ParseError
from carewatch.parsers import register
from carewatch.parsers.csvtext import line, read_csv_table

SOURCE = "dtoc_provider"

# normalised header (lower-case letters only) -> identifying column
ID_COLUMNS = {
    "year": "year", "financialyear": "year",
    "period": "period", "month": "period",
    "provcode": "provider_code", "providercode": "provider_code", "provorgcode": "provider_code",
    "provname": "provider_name", "providername": "provider_name", "provorgname": "provider_name",
    "commcode": "commissioner_code", "commissionercode": "commissioner_code", "commissionerorgcode": "commissioner_code",
    "ccgcode": "commissioner_code",
    "lacode": "la_code", "localauthoritycode": "la_code",
    "laname": "la_name", "localauthorityname": "la_name", "localauthority": "la_name",
    "typeofcare": "care_type", "caretype": "care_type", "acutenonacute": "care_type",
    "reason": "reason", "reasonfordelay": "reason", "delayreason": "reason",
}
REQUIRED = ["period", "provider_code", "la_code", "care_type", "reason"]
AGENCY_PREFIXES = {"nhs": "nhs", "socialcare": "social_care", "sc": "social_care", "both": "both"}
MEASURES = {"a": "patients_delayed", "b": "delayed_days"}
CARE_TYPES = {"acute": "acute", "nonacute": "non_acute"}
REASONS = {r.upper(): r for r in ["A", "B", "C", "Di", "Dii", "E", "F", "G", "H", "I", "O"]}
MONTHS = {m: i for i, m in enumerate(
    ["JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST", "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER"], start=1)}
MSITDT_LABEL = re.compile(r"^MSITDT-([A-Z]+)-(\d{4})$")
FINANCIAL_YEAR = re.compile(r"^(\d{4})-(\d{2})$")
NULL_TEXT = ("", "-")
OUTPUT = ["period", "provider_code", "provider_name", "commissioner_code", "la_code", "la_name", "council_code",
          "care_type", "reason", "agency", "patients_delayed", "delayed_days"]


def _letters(name: str) -> str:
    return re.sub(r"[^a-z]", "", str(name).lower())


def _classify_columns(columns, path: Path) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """({tidy id column: header}, {(agency, "a"/"b"): header}); ParseError if any is missing."""
    ids, measures = {}, {}
    for column in columns:
        key = _letters(column)
        if key in ID_COLUMNS and ID_COLUMNS[key] not in ids:
            ids[ID_COLUMNS[key]] = column
        elif key[:-1] in AGENCY_PREFIXES and key[-1:] in MEASURES:
            measures[(AGENCY_PREFIXES[key[:-1]], key[-1])] = column
    missing = [c for c in REQUIRED if c not in ids]
    missing += [f"{agency} {letter.upper()}" for agency in ("nhs", "social_care", "both") for letter in MEASURES if (agency, letter) not in measures]
    if missing:
        raise ParseError(SOURCE, path, f"missing column(s) {', '.join(missing)}; header is {', '.join(map(repr, columns))}")
    return ids, measures


def _month(label: str, year: str | None, path: Path) -> dt.date:
    """First day of the month from "MSitDT-SEPTEMBER-2017", or from "SEPTEMBER" plus "2017-18"."""
    label = label.upper()
    match = MSITDT_LABEL.match(label)
    if match and match.group(1) in MONTHS:
        return dt.date(int(match.group(2)), MONTHS[match.group(1)], 1)
    fy = FINANCIAL_YEAR.match(year or "")
    if label in MONTHS and fy:
        first = int(fy.group(1))
        month = MONTHS[label]
        return dt.date(first if month >= 4 else first + 1, month, 1)
    raise ParseError(SOURCE, path, f"period {label!r} (year {year!r}) is neither 'MSitDT-MONTH-YYYY' nor a month name with a financial year such as 2017-18")


def _numbers(text: pd.Series, column: str, path: Path) -> pd.Series:
    cleaned = text.str.replace(",", "", regex=False)
    values = pd.to_numeric(cleaned.where(~cleaned.isin(NULL_TEXT)), errors="coerce")
    bad = values.isna() & ~cleaned.isin(NULL_TEXT)
    if bad.any():
        row = bad.idxmax()
        raise ParseError(SOURCE, path, f"column {column!r} line {line(row)}: {text[row]!r} is not a number")
    return values.astype("float64")


def _care_types(text: pd.Series, path: Path) -> pd.Series:
    keys = text.map(_letters)
    unknown = sorted(set(text[~keys.isin(CARE_TYPES)]))
    if unknown:
        raise ParseError(SOURCE, path, f"unknown type(s) of care {unknown}; expected Acute or Non-Acute")
    return keys.map(CARE_TYPES)


def _reason_code(text: str) -> str | None:
    match = re.match(r"^([A-Za-z]{1,3})(?:$|[\s).:\-])", text)
    return REASONS.get(match.group(1).upper()) if match else None


def _reasons(text: pd.Series, path: Path) -> pd.Series:
    codes = text.map(_reason_code)
    unknown = sorted(set(text[codes.isna()]))
    if unknown:
        raise ParseError(SOURCE, path, f"unknown delay reason(s) {unknown[:5]}; expected codes {', '.join(REASONS.values())}")
    return codes


def _council(la_code: str, la_name: str, period: dt.date) -> str | None:
    """The council of an LA code. A code kept by a successor council (Dorset's 809, written
    "DORSET UA" for the new unitary Dorset) goes to the successor the row names."""
    council = geography.resolve_council(legacy_code=la_code)
    name = _letters(la_name)
    if council is None or name == _letters(geography.name_of(council)):
        return council
    changes = geography.code_changes()
    successors = changes[(changes["old_code"] == council) & changes["change"].isin(["merge", "split"])
                         & (changes["effective_from"] <= period)]["new_code"]
    named = [code for code in successors if name in (_letters(geography.name_of(code)), _letters(geography.name_of(code)) + "ua")]
    return named[0] if named else council


@register("dtoc_provider")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    frame = read_csv_table(path, SOURCE)
    ids, measures = _classify_columns(list(frame.columns), path)
    if frame.empty:
        raise ParseError(SOURCE, path, "header but no data rows")
    year = list(frame[ids["year"]]) if "year" in ids else [None] * len(frame)
    months = {key: _month(key[0], key[1], path) for key in set(zip(frame[ids["period"]], year))}
    la_code = frame[ids["la_code"]]
    la_name = frame[ids["la_name"]] if "la_name" in ids else pd.Series("", index=frame.index)
    period_of_row = [months[key] for key in zip(frame[ids["period"]], year)]
    councils = {key: _council(*key) for key in set(zip(la_code, la_name, period_of_row))}
    common = pd.DataFrame({
        "period": period_of_row,
        "provider_code": frame[ids["provider_code"]],
        "provider_name": frame[ids["provider_name"]] if "provider_name" in ids else None,
        "commissioner_code": frame[ids["commissioner_code"]] if "commissioner_code" in ids else None,
        "la_code": la_code,
        "la_name": la_name if "la_name" in ids else None,
        "council_code": [councils[key] for key in zip(la_code, la_name, period_of_row)],
        "care_type": _care_types(frame[ids["care_type"]], path),
        "reason": _reasons(frame[ids["reason"]], path),
    })
    per_agency = [
        common.assign(agency=agency, **{
            name: _numbers(frame[measures[(agency, letter)]], measures[(agency, letter)], path)
            for letter, name in MEASURES.items()
        })
        for agency in ("nhs", "social_care", "both")
    ]
    return pd.concat(per_agency, ignore_index=True)[OUTPUT]
