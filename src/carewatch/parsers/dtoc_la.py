"""NHS England DTOC monthly local-authority tables ("LA Type B", .xls), every layout era.

The parser follows the documented layout, not cell positions:

- metadata labels ("Period:", "Status:", "Published:", "Revised:") are found by scanning the
  top of the sheet; the value is the next non-empty cell on the label's row. The period comes
  from the "Period:" cell ("February 2017"), never from the file name;
- sheets are matched by name, case-insensitively ("LA - by Type of Care" / "by type of care");
- the header row is the row holding "Name" and "Code"; the columns before the measures are
  recognised by label (SHA / Region, ONS Geography, Code, Name), blank columns are skipped
  (June 2014 has one);
- a band row just above the header ("Delayed Days", "DTOC Beds", "Average Number of People
  Delayed per Day") splits the measures into ``delayed_days`` and ``delayed_beds`` blocks
  (eras 4-6); without one, every measure is delayed days (eras 1-3);
- reason headers in any case or wording map to codes by their leading letter ("A) COMPLETION
  OF ASSESSMENT", "Dii) Awaiting nursing home...", "O) Other"); "TOTAL" to ``total``;
- the table runs from the England row to the last council or special row (a blank row
  inside it, with councils after it, is skipped); notes below it are ignored; "-" is null; numbers stored as text with thousands separators are read.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd

from carewatch import geography
from carewatch.errors import ParseError
from carewatch.parsers import register

SOURCE = "dtoc_la"
SHEETS = {
    "agency": "la - by responsible org",
    "reason": "la - by reason",
    "care_type": "la - by type of care",
}
REQUIRED = ("agency", "reason")
AGENCY = {"nhs": "nhs", "social care": "social_care", "both": "both", "total": "total"}
CARE_TYPE = {"acute": "acute", "non-acute": "non_acute", "non acute": "non_acute", "total": "total"}
REASON_CODES = {"a": "A", "b": "B", "c": "C", "di": "Di", "dii": "Dii", "e": "E", "f": "F", "g": "G", "h": "H", "i": "I", "o": "O"}
BEDS_BANDS = ("dtoc beds", "average number of people delayed per day")
ID_COLUMNS = {"sha": "region", "region": "region", "ons geography": "ons_code", "code": "la_code", "name": "la_name"}
COLUMNS = ["period", "status", "published", "revised", "row_type", "la_code", "ons_code", "la_name",
           "council_code", "breakdown", "category", "measure", "value"]


def _text(cell) -> str:
    if cell is None or (isinstance(cell, float) and pd.isna(cell)):
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def _metadata(frame: pd.DataFrame) -> dict[str, str]:
    meta = {}
    for _, row in frame.head(20).iterrows():
        cells = [_text(c) for c in row.tolist()]
        for i, cell in enumerate(cells):
            if cell.endswith(":") and cell[:-1].lower() in ("title", "summary", "period", "source", "basis", "published", "revised", "status", "contact"):
                value = next((c for c in cells[i + 1:] if c), "")
                meta[cell[:-1].lower()] = value
    return meta


def _period(text: str, path: Path) -> dt.date:
    for fmt in ("%B %Y", "%b %Y", "%B-%Y"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).date().replace(day=1)
        except ValueError:
            continue
    raise ParseError(SOURCE, path, f"the Period: cell says {text!r}, not a month such as 'February 2017'")


def _category(breakdown: str, header: str, path: Path, sheet: str) -> str:
    key = header.lower().strip()
    if breakdown == "agency" and key in AGENCY:
        return AGENCY[key]
    if breakdown == "care_type" and key in CARE_TYPE:
        return CARE_TYPE[key]
    if breakdown == "reason":
        if key == "total":
            return "total"
        match = re.match(r"^([a-z]+)\)", key)
        if match and match.group(1) in REASON_CODES:
            return REASON_CODES[match.group(1)]
    raise ParseError(SOURCE, path, f"sheet {sheet!r}: unexpected measure column {header!r}")


def _number(cell, path: Path, sheet: str, row: int, col: int):
    if cell is None or (isinstance(cell, float) and pd.isna(cell)):
        return None
    if isinstance(cell, (int, float)):
        return float(cell)
    text = str(cell).strip().replace(",", "")
    if text in ("", "-", "–", "*"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ParseError(SOURCE, path, f"sheet {sheet!r} row {row + 1} column {col + 1}: {cell!r} is not a number") from None


def _table_goes_on(frame: pd.DataFrame, start: int, ids: dict[str, int]) -> bool:
    """After a blank row: is the next non-blank row another council (or special) row, with a
    code and a name, rather than a note? A blank row inside the table must not cut it short."""
    for i in range(start, len(frame)):
        cells = frame.iloc[i].tolist()
        name, code = _text(cells[ids["la_name"]]), _text(cells[ids["la_code"]])
        if name or code:
            return bool(name and code) and not name.lower().startswith(("note", "source"))
    return False


def _table(frame: pd.DataFrame, breakdown: str, sheet: str, path: Path) -> list[tuple]:
    header_row = None
    for i in range(min(40, len(frame))):
        labels = {_text(c).lower() for c in frame.iloc[i].tolist()}
        if "name" in labels and "code" in labels:
            header_row = i
            break
    if header_row is None:
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no header row with 'Code' and 'Name'")
    header = [_text(c) for c in frame.iloc[header_row].tolist()]
    band = [_text(c) for c in frame.iloc[header_row - 1].tolist()] if header_row > 0 else [""] * len(header)
    ids: dict[str, int] = {}
    measures: list[tuple[int, str, str]] = []  # (column, category, measure)
    name_col = header.index(next(h for h in header if h.lower() == "name"))
    current_band = ""
    for j, label in enumerate(header):
        if band[j]:
            current_band = band[j].lower()
        if not label:
            continue
        if j <= name_col:
            role = ID_COLUMNS.get(label.lower())
            if role:
                ids[role] = j
            continue
        measure = "delayed_beds" if current_band.startswith(BEDS_BANDS) else "delayed_days"
        measures.append((j, _category(breakdown, label, path, sheet), measure))
    if not measures:
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no measure columns after 'Name'")
    if "la_code" not in ids:
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no 'Code' column")

    rows = []
    seen_council = False
    for i in range(header_row + 1, len(frame)):
        cells = frame.iloc[i].tolist()
        name = _text(cells[ids["la_name"]])
        code = _text(cells[ids["la_code"]])
        if not name and not code:
            if seen_council and not _table_goes_on(frame, i + 1, ids):
                break  # blank row under the table: the notes follow
            continue  # a blank row above the table, or inside it (councils follow)
        if name.lower().startswith(("note", "source")):
            break
        if name.lower() == "england":
            row_type, la_code = "england", None
        elif code in geography.SPECIAL_ROWS:
            row_type, la_code = "special", code
        else:
            row_type, la_code = "council", code
            seen_council = True
        ons = _text(cells[ids["ons_code"]]) if "ons_code" in ids else ""
        ons = ons if ons.upper().startswith("E") and len(ons) == 9 else None
        council = geography.resolve_council(ons_code=ons, legacy_code=la_code) if row_type == "council" else None
        for j, category, measure in measures:
            rows.append((row_type, la_code, ons, name, council, breakdown, category, measure, _number(cells[j], path, sheet, i, j)))
    if not any(r[0] == "council" for r in rows):
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no council rows under the header")
    return rows


@register("dtoc_la")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None, engine="calamine", dtype=object)
    except Exception as err:  # calamine raises its own error types for non-workbooks
        raise ParseError(SOURCE, path, f"not a readable .xls/.xlsx workbook ({err.__class__.__name__}: {err})") from None
    by_name = {name.strip().lower(): frame for name, frame in sheets.items()}
    missing = [SHEETS[b] for b in REQUIRED if SHEETS[b] not in by_name]
    if missing:
        raise ParseError(SOURCE, path, f"missing sheet(s) {', '.join(repr(m) for m in missing)}; found {', '.join(repr(s) for s in sheets)}")
    meta = _metadata(by_name[SHEETS["agency"]])
    if "period" not in meta or not meta["period"]:
        raise ParseError(SOURCE, path, "no 'Period:' cell in the metadata block")
    month = _period(meta["period"], path)
    rows = []
    for breakdown, sheet in SHEETS.items():
        if sheet in by_name:
            rows.extend(_table(by_name[sheet], breakdown, sheet, path))
    frame = pd.DataFrame(rows, columns=COLUMNS[4:])
    frame.insert(0, "revised", meta.get("revised") or None)
    frame.insert(0, "published", meta.get("published") or None)
    frame.insert(0, "status", meta.get("status") or None)
    frame.insert(0, "period", month)
    frame["value"] = frame["value"].astype("float64")
    return frame[COLUMNS]
