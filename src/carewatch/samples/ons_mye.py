"""Write an ONS MYE2 workbook (.xls) in the layout of its release.

mid-2015: sheet "Persons UK", upper-case header on row 3; mid-2016: "MYE2 - All", header on
row 5, no geography column; mid-2017: plus "Geography1"; mid-2018 on: "MYE2-All", on the
following year's codes. Rows: England, then the upper-tier councils (a subset of ONS's mixed
tiers: regions and districts are left out; upper-tier rows sum exactly to England).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xlwt

from carewatch import geography

GEOGRAPHY = {"E06": "Unitary Authority", "E08": "Metropolitan District", "E09": "London Borough", "E10": "County"}


def write_mye(path: Path, mid_year: int, population: pd.DataFrame) -> Path:
    """``population``: council_code, age (0-90), population."""
    wide = population.pivot(index="council_code", columns="age", values="population").sort_index()
    england = wide.sum()
    book = xlwt.Workbook()
    if mid_year <= 2015:
        sheet, header_row, upper, geo = book.add_sheet("Persons UK"), 2, True, False
    elif mid_year == 2016:
        sheet, header_row, upper, geo = book.add_sheet("MYE2 - All"), 4, False, False
    elif mid_year == 2017:
        sheet, header_row, upper, geo = book.add_sheet("MYE2 - All"), 4, False, True
    else:
        sheet, header_row, upper, geo = book.add_sheet("MYE2-All"), 4, False, True
    sheet.write(0, 0, f"MYE2: Population estimates: Persons by single year of age and sex for local authorities in the UK, mid-{mid_year}")
    labels = ["Code", "Name"] + (["Geography1"] if geo else []) + ["All ages"] + [str(a) for a in range(90)] + ["90+" if upper else "90"]
    for j, label in enumerate(labels):
        sheet.write(header_row, j, label.upper() if upper else label)
    rows = [("E92000001", "ENGLAND", "Country", england)] + [
        (code, geography.name_of(code), GEOGRAPHY.get(code[:3], ""), wide.loc[code]) for code in wide.index
    ]
    for i, (code, name, kind, values) in enumerate(rows, start=header_row + 1):
        cells = [code, name] + ([kind] if geo else []) + [int(values.sum())] + [int(values[a]) for a in range(91)]
        for j, value in enumerate(cells):
            sheet.write(i, j, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path
