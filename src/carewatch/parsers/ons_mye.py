"""ONS mid-year population estimates, MYE2 persons by single year of age, every layout.

Layouts drift between releases: sheet "Persons UK" with an upper-case header (mid-2015),
"MYE2 - All" with the header on row 5 (mid-2016), plus a "Geography1" column (mid-2017),
"MYE2-All" (mid-2018). The parser finds the sheet by name and the header by its labels
(Code, Name, [Geography], All ages, 0 ... 90), and the year from the title ("mid-2016").
Every geography row is kept (country, region, county, district, unitary, borough); the
warehouse selects upper-tier areas by code. Age 90 means "90 and over".
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from carewatch.errors import ParseError
from carewatch.parsers import register

SOURCE = "ons_mye"
SHEET_NAMES = ("mye2-all", "mye2all", "personsuk", "mye2-persons", "mye2persons")
CODE = re.compile(r"^[EKWSN]\d{8}$")


def _norm(text) -> str:
    return re.sub(r"\s+", "", str(text)).lower()


def _age(label) -> int | None:
    text = str(label).strip().rstrip("+").replace(".0", "")
    return int(text) if text.isdigit() and int(text) <= 90 else None


@register("ons_mye")
def parse(path: Path, period: str | None = None) -> pd.DataFrame:
    try:
        book = pd.ExcelFile(path, engine="calamine")
    except Exception as err:
        raise ParseError(SOURCE, path, f"not a readable workbook ({err.__class__.__name__}: {err})") from None
    sheet = next((s for s in book.sheet_names if _norm(s) in SHEET_NAMES), None)
    if sheet is None:
        raise ParseError(SOURCE, path, f"no persons-by-single-year sheet ('MYE2 - All' or 'Persons UK'); found {book.sheet_names}")
    frame = book.parse(sheet, header=None, dtype=object)
    header_row = None
    for i in range(min(30, len(frame))):
        labels = [_norm(c) for c in frame.iloc[i].tolist()]
        if "code" in labels and "name" in labels and "allages" in labels:
            header_row = i
            break
    if header_row is None:
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no header row with Code, Name and All ages")
    title = " ".join(str(c) for c in frame.iloc[:header_row].to_numpy().ravel() if pd.notna(c))
    match = re.search(r"mid-?(\d{4})", title, flags=re.IGNORECASE)
    if not match:
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no 'mid-YYYY' in the title above the table")
    mid_year = int(match.group(1))
    header = [_norm(c) for c in frame.iloc[header_row].tolist()]
    col_code, col_name = header.index("code"), header.index("name")
    col_geo = next((i for i, h in enumerate(header) if h.startswith("geography")), None)
    ages = {i: _age(frame.iloc[header_row, i]) for i in range(header.index("allages") + 1, len(header))}
    ages = {i: a for i, a in ages.items() if a is not None}
    if sorted(ages.values()) != list(range(91)):
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: expected single-year age columns 0 to 90, found {sorted(ages.values())[:3]}...")
    body = frame.iloc[header_row + 1:]
    body = body[body.iloc[:, col_code].astype(str).str.strip().str.match(CODE)]
    if body.empty:
        raise ParseError(SOURCE, path, f"sheet {sheet!r}: no area rows under the header")
    wide = pd.DataFrame({
        "area_code": body.iloc[:, col_code].astype(str).str.strip(),
        "area_name": body.iloc[:, col_name].astype(str).str.strip(),
        "geography": body.iloc[:, col_geo].astype(str).str.strip() if col_geo is not None else None,
    })
    for i, age in ages.items():
        values = pd.to_numeric(body.iloc[:, i].astype(str).str.replace(",", "", regex=False), errors="coerce")
        if values.isna().any():
            bad = body.iloc[:, col_code][values.isna()].iloc[0]
            raise ParseError(SOURCE, path, f"sheet {sheet!r}: non-numeric population for {bad} at age {age}")
        wide[age] = values.astype("int64").to_numpy()
    tidy = wide.melt(id_vars=["area_code", "area_name", "geography"], var_name="age", value_name="population")
    tidy.insert(0, "mid_year", mid_year)
    tidy["age"] = tidy["age"].astype("int64")
    return tidy.sort_values(["area_code", "age"]).reset_index(drop=True)
