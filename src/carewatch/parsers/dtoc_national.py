"""NHS England's national monthly DTOC time series (.xls, August 2010 - February 2020).

One workbook per release covers every month from August 2010 to the release's last month
(layout: ``carewatch.samples.dtoc_national``). The parser reads it by text, not cell positions:

- sheets are matched by name, ignoring case and runs of spaces: "By Type of Care",
  "By Responsible Org", "By Reason", "By Type, Reason and Org" (all four are required);
- metadata ("Status:", "Published:", "Revised:") is found by its label in the top rows of the
  first sheet; the value is the next non-empty cell on the label's row;
- a table's header row is any row holding "Year" and "Month" (a sheet may hold several tables:
  the wide sheet puts its "DTOC Beds" table below the "Delayed Days" one); the measure columns
  are the labelled columns right of "Month", blank columns are skipped;
- band rows are the non-blank rows directly above a header row (up to four). Merged band
  cells are read forward, left to right. A band row is recognised by what it holds: a measure
  ("Delayed Days"; "DTOC Beds" or "Average Number of People Delayed per Day" -> ``delayed_beds``),
  care types ("Acute", "Non-Acute", "Total") or reasons ("A) ...", "Total"); other text is
  ignored. Without a measure band, figures are delayed days;
- the header row names the sheet's own breakdown: care types, agencies ("NHS", "Social
  Care", "Both", "Total") or reasons; on the wide sheet, agencies;
- rows run from the header to the first row with neither a year nor a month (or a "Notes"
  row). The period comes from the financial year ("2016-17", also "2016/17") and the month
  name ("April"; a blank year repeats the one above): April - December in the first calendar
  year, January - March in the second;
- "-", "NA" and blank cells are null; numbers stored as text with thousands separators are read.

Output: one row per month x table column (see ``COLUMNS``); the dimensions a sheet does not
break down are ``total``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd

from carewatch.errors import ParseError
from carewatch.parsers import register

SOURCE = "dtoc_national"
SHEETS = {  # breakdown -> sheet name (matched by _key: any case, any spacing)
    "care_type": "By Type of Care",
    "agency": "By Responsible Org",
    "reason": "By Reason",
    "care_type_reason_agency": "By Type, Reason and Org",
}
CARE_TYPE = {"acute": "acute", "non-acute": "non_acute", "non acute": "non_acute", "total": "total"}
AGENCY = {"nhs": "nhs", "social care": "social_care", "both": "both", "total": "total"}
REASON_CODES = {"a": "A", "b": "B", "c": "C", "di": "Di", "dii": "Dii", "e": "E", "f": "F", "g": "G", "h": "H", "i": "I", "o": "O"}
MEASURES = {"delayed days": "delayed_days", "dtoc beds": "delayed_beds", "average number of people delayed per day": "delayed_beds"}
MONTHS = {name.lower(): number for number, name in enumerate(
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"], 1)}
MONTHS.update({name[:3]: number for name, number in list(MONTHS.items())})
NULLS = ("", "-", "–", "na", "n/a", "*", ".")
META_LABELS = ("title", "summary", "period", "source", "basis", "published", "revised", "status", "contact")
COLUMNS = ["period", "status", "published", "revised", "breakdown", "care_type", "reason", "agency", "measure", "value"]
MAX_BAND_ROWS = 4


def _text(cell) -> str:
    if cell is None or (isinstance(cell, float) and pd.isna(cell)):
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return " ".join(str(cell).split())


def _key(text: str) -> str:
    """Lower case with runs of spaces collapsed: how labels and sheet names are compared."""
    return " ".join(text.lower().split())


def _metadata(rows: list[list[str]]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for cells in rows[:20]:
        for i, cell in enumerate(cells):
            label = _key(cell).rstrip(":").strip()
            if cell.endswith(":") and label in META_LABELS and label not in meta:
                meta[label] = next((c for c in cells[i + 1:] if c), "")
    return meta


def _reason(label: str) -> str | None:
    key = _key(label)
    if key == "total":
        return "total"
    match = re.match(r"^([a-z]+)\s*\)", key)
    return REASON_CODES.get(match.group(1)) if match else None


def _measure(label: str) -> str | None:
    key = _key(label)
    return next((m for text, m in MEASURES.items() if key.startswith(text)), None)


def _period(year: str, month: str, path: Path, where: str) -> dt.date:
    match = re.fullmatch(r"(\d{4})\s*[-/]\s*(\d{2}|\d{4})", year)
    if not match or int(match.group(2)) % 100 != (int(match.group(1)) + 1) % 100:
        raise ParseError(SOURCE, path, f"{where}: financial year {year!r} is not like '2016-17'")
    number = MONTHS.get(_key(month))
    if number is None:
        raise ParseError(SOURCE, path, f"{where}: {month!r} is not a month name")
    start = int(match.group(1))
    return dt.date(start if number >= 4 else start + 1, number, 1)


def _number(cell, path: Path, where: str) -> float | None:
    if cell is None or (isinstance(cell, float) and pd.isna(cell)):
        return None
    if isinstance(cell, bool):
        raise ParseError(SOURCE, path, f"{where}: {cell!r} is not a number")
    if isinstance(cell, (int, float)):
        return float(cell)
    text = str(cell).strip().replace(",", "").replace(" ", "")
    if text.lower() in NULLS:
        return None
    try:
        return float(text)
    except ValueError:
        raise ParseError(SOURCE, path, f"{where}: {cell!r} is not a number") from None


def _bands(rows: list[list[str]], header_row: int, first_col: int) -> dict[str, list[str]]:
    """The band rows above a header, by kind ("measure", "care_type", "reason"), read forward."""
    bands: dict[str, list[str]] = {}
    width = len(rows[header_row])
    for i in range(header_row - 1, max(header_row - 1 - MAX_BAND_ROWS, -1), -1):
        cells = rows[i][first_col:]
        if not any(cells):
            break
        filled, current = [], ""
        for cell in cells:
            current = cell or current
            filled.append(current)
        filled = [""] * first_col + filled + [""] * (width - first_col - len(filled))
        labels = [c for c in cells if c]
        if any(_measure(c) for c in labels):
            bands.setdefault("measure", filled)
        elif any(_reason(c) not in (None, "total") for c in labels):
            bands.setdefault("reason", filled)
        elif any(_key(c) in CARE_TYPE and _key(c) != "total" for c in labels):
            bands.setdefault("care_type", filled)
    return bands


def _column(breakdown: str, header: str, bands: dict[str, list[str]], j: int, path: Path, where: str) -> tuple[str, str, str, str]:
    """(care_type, reason, agency, measure) of measure column ``j``."""
    care_type, reason, agency = "total", "total", "total"
    key = _key(header)
    if breakdown == "care_type":
        care_type = CARE_TYPE.get(key)
        ok = care_type is not None
    elif breakdown == "reason":
        reason = _reason(header)
        ok = reason is not None
    else:
        agency = AGENCY.get(key)
        ok = agency is not None
    if not ok:
        raise ParseError(SOURCE, path, f"{where}: unexpected column header {header!r}")
    if breakdown == "care_type_reason_agency":
        for band in ("care_type", "reason"):
            if band not in bands:
                raise ParseError(SOURCE, path, f"{where}: no {band.replace('_', ' ')} band row above the header")
        care_type = CARE_TYPE.get(_key(bands["care_type"][j]))
        reason = _reason(bands["reason"][j])
        if care_type is None or reason is None:
            raise ParseError(SOURCE, path, f"{where}: column {j + 1} ({header!r}) is under "
                                           f"{bands['care_type'][j]!r} / {bands['reason'][j]!r}, not a care type and a reason")
    measure = _measure(bands["measure"][j]) if "measure" in bands and bands["measure"][j] else "delayed_days"
    return care_type, reason, agency, measure


def _tables(frame: pd.DataFrame, breakdown: str, sheet: str, path: Path) -> list[tuple]:
    raw = frame.to_numpy(dtype=object)
    rows = [[_text(c) for c in row] for row in raw]
    headers = []
    for i, cells in enumerate(rows):
        keys = [_key(c) for c in cells]
        year_col = next((j for j, k in enumerate(keys) if k in ("year", "financial year")), None)
        if year_col is not None and "month" in keys[year_col + 1:]:
            headers.append((i, year_col, keys.index("month", year_col + 1)))
    if not headers:
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no header row with 'Year' and 'Month'")

    out = []
    for header_row, year_col, month_col in headers:
        bands = _bands(rows, header_row, month_col + 1)
        columns = []
        for j in range(month_col + 1, len(rows[header_row])):
            if rows[header_row][j]:
                where = f"sheet {sheet!r} row {header_row + 1}"
                columns.append((j, *_column(breakdown, rows[header_row][j], bands, j, path, where)))
        if not columns:
            raise ParseError(SOURCE, path, f"sheet {sheet!r} row {header_row + 1}: no measure columns right of 'Month'")
        year, seen = "", set()
        for i in range(header_row + 1, len(rows)):
            cells = rows[i]
            if not cells[year_col] and not cells[month_col]:
                break  # a blank row: the table ends
            if _key(cells[year_col]).startswith("note") or _key(cells[month_col]).startswith("note"):
                break
            where = f"sheet {sheet!r} row {i + 1}"
            year = cells[year_col] or year
            period = _period(year, cells[month_col], path, where)
            for j, care_type, reason, agency, measure in columns:
                if (period, care_type, reason, agency, measure) in seen:
                    raise ParseError(SOURCE, path, f"{where}: {period:%B %Y} {measure} appears twice")
                seen.add((period, care_type, reason, agency, measure))
                out.append((period, breakdown, care_type, reason, agency, measure,
                            _number(raw[i][j], path, f"{where} column {j + 1}")))
        if not seen:
            raise ParseError(SOURCE, path, f"sheet {sheet!r}: no data rows under the header on row {header_row + 1}")
    return out


@register("dtoc_national")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    """Parse one release of the national time series: every month it covers, tidy (``COLUMNS``)."""
    path = Path(path)
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None, engine="calamine", dtype=object)
    except Exception as err:  # calamine raises its own error types for non-workbooks
        raise ParseError(SOURCE, path, f"not a readable .xls/.xlsx workbook ({err.__class__.__name__}: {err})") from None
    by_key = {_key(name): name for name in sheets}
    missing = [name for name in SHEETS.values() if _key(name) not in by_key]
    if missing:
        raise ParseError(SOURCE, path, f"missing sheet(s) {', '.join(repr(m) for m in missing)}; "
                                       f"found {', '.join(repr(s) for s in sheets)}")
    first = sheets[by_key[_key(SHEETS["care_type"])]]
    meta = _metadata([[_text(c) for c in row] for row in first.head(20).to_numpy(dtype=object)])
    rows = []
    for breakdown, name in SHEETS.items():
        actual = by_key[_key(name)]
        rows.extend(_tables(sheets[actual], breakdown, actual, path))
    frame = pd.DataFrame(rows, columns=["period", "breakdown", "care_type", "reason", "agency", "measure", "value"])
    frame.insert(1, "revised", meta.get("revised") or None)
    frame.insert(1, "published", meta.get("published") or None)
    frame.insert(1, "status", meta.get("status") or None)
    frame["value"] = frame["value"].astype("float64")
    return frame[COLUMNS]
