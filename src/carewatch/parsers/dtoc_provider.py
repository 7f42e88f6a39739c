"""NHS England DTOC monthly provider-level CSV.

One row per provider x commissioner x local authority x care type x reason, with per agency
an "A" column (patients delayed at the month's snapshot) and a "B" column (delayed days in
the month). Two period styles seen in real files: a single period column
("MSitDT-SEPTEMBER-2017"), or a financial-year column ("2017-18") plus a month-name period
column ("SEPTEMBER"). Numbers may carry thousands separators. Melted to one row per agency.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pandas as pd

from carewatch import geography
from carewatch.errors import ParseError
from carewatch.parsers import register

SOURCE = "dtoc_provider"
AGENCIES = {"nhs": "nhs", "socialcare": "social_care", "sc": "social_care", "both": "both"}
ID_COLUMNS = {
    "provcode": "provider_code", "providercode": "provider_code",
    "provname": "provider_name", "providername": "provider_name",
    "commcode": "commissioner_code", "commissionercode": "commissioner_code",
    "lacode": "la_code", "laname": "la_name",
    "typeofcare": "care_type", "caretype": "care_type",
    "reason": "reason", "reasonfordelay": "reason", "delayreason": "reason",
    "period": "period", "year": "year",
}
MONTHS = {m.upper(): i for i, m in enumerate(["", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]) if m}


def _key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def _period(year: str | None, label: str, path: Path) -> dt.date:
    label = label.strip().upper()
    match = re.match(r"^MSITDT-([A-Z]+)-(\d{4})$", label)
    if match and match.group(1) in MONTHS:
        return dt.date(int(match.group(2)), MONTHS[match.group(1)], 1)
    if label in MONTHS and year:
        fy = re.match(r"^(\d{4})-(\d{2})$", year.strip())
        if fy:
            month = MONTHS[label]
            return dt.date(int(fy.group(1)) + (1 if month < 4 else 0), month, 1)
    raise ParseError(SOURCE, path, f"period {label!r} (year {year!r}) is neither 'MSitDT-MONTH-YYYY' nor a month with a financial year")


@register("dtoc_provider")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.StringIO(path.read_bytes().decode("cp1252")), dtype=str, keep_default_na=False)
    except Exception as err:
        raise ParseError(SOURCE, path, f"not a readable CSV ({err.__class__.__name__})") from None
    ids, measures = {}, {}
    for column in frame.columns:
        key = _key(column)
        if key in ID_COLUMNS:
            ids[ID_COLUMNS[key]] = column
        elif key[-1:] in ("a", "b") and key[:-1] in AGENCIES:
            measures[(AGENCIES[key[:-1]], key[-1])] = column
    missing = [c for c in ("provider_code", "la_code", "care_type", "reason", "period") if c not in ids]
    if missing:
        raise ParseError(SOURCE, path, f"missing column(s) {missing}; found {list(frame.columns)}")
    if len(measures) != 6:
        raise ParseError(SOURCE, path, f"expected A and B columns for NHS, Social Care and Both; found {sorted(measures)}")
    labels = frame[[c for c in (ids.get("year"), ids["period"]) if c]].drop_duplicates()
    periods = {tuple(r): _period(r[0] if len(r) == 2 else None, r[-1], path) for r in labels.itertuples(index=False)}
    key_cols = [c for c in (ids.get("year"), ids["period"]) if c]
    month = frame[key_cols].apply(lambda r: periods[tuple(r)], axis=1)
    care = frame[ids["care_type"]].str.strip().str.lower().str.replace("-", "_").str.replace(" ", "_")
    out = []
    for agency in ("nhs", "social_care", "both"):
        numbers = {}
        for letter, name in (("a", "patients_delayed"), ("b", "delayed_days")):
            text = frame[measures[(agency, letter)]].str.strip().str.replace(",", "", regex=False)
            values = pd.to_numeric(text.replace({"": None, "-": None}), errors="coerce")
            if (values.isna() & ~text.isin(["", "-"])).any():
                raise ParseError(SOURCE, path, f"column {measures[(agency, letter)]!r}: {text[values.isna() & ~text.isin(['', '-'])].iloc[0]!r} is not a number")
            numbers[name] = values.astype("float64")
        la_codes = frame[ids["la_code"]].str.strip()
        out.append(pd.DataFrame({
            "period": month,
            "provider_code": frame[ids["provider_code"]].str.strip(),
            "provider_name": frame[ids["provider_name"]].str.strip() if "provider_name" in ids else None,
            "commissioner_code": frame[ids["commissioner_code"]].str.strip() if "commissioner_code" in ids else None,
            "la_code": la_codes,
            "la_name": frame[ids["la_name"]].str.strip() if "la_name" in ids else None,
            "council_code": [geography.resolve_council(legacy_code=c) for c in la_codes],
            "care_type": care,
            "reason": frame[ids["reason"]].str.strip(),
            "agency": agency,
            **numbers,
        }))
    return pd.concat(out, ignore_index=True)
