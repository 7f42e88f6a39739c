"""Write a DTOC "LA Type B" workbook (.xls) in the layout of the era its month falls in.

Eras (../shared/domain.md): 1 to March 2013 "SHA | Code | Name", alphabetical; 2 April 2013 -
June 2015 "Region | Code | Name"; 3 July 2015 - March 2017 adds "ONS Geography"; 4 April 2017
- October 2018 adds a band row with "Delayed Days" and "DTOC Beds" blocks, a "Data Quality"
sheet and "LA - by type of care" in lower case; 5 November 2018 - April 2019 as 4 without the
Data Quality sheet; 6 from May 2019 the second block is "Average Number of People Delayed per
Day". Quirks reproduced: metadata block in columns B/C, header on row 14, England row then a
blank row, special rows 9900-9902, notes below, names with " UA" and "&", "City Of London",
numbers stored as text with thousands separators, "-" for an abolished council, councils with
no delays left out of the type-of-care sheet.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import xlwt

from carewatch import geography

REASON_HEADERS = {
    1: {"A": "A) COMPLETION OF ASSESSMENT", "B": "B) PUBLIC FUNDING", "C": "C) WAITING FURTHER NHS NON-ACUTE CARE",
        "Di": "DI) AWAITING RESIDENTIAL HOME PLACEMENT OR AVAILABILITY", "Dii": "DII) AWAITING NURSING HOME PLACEMENT OR AVAILABILITY",
        "E": "E) AWAITING CARE PACKAGE IN OWN HOME", "F": "F) AWAITING COMMUNITY EQUIPMENT AND ADAPTIONS", "G": "G) PATIENT OR FAMILY CHOICE",
        "H": "H) DISPUTES", "I": "I) HOUSING - PATIENTS NOT COVERED BY NHS AND COMMUNITY CARE ACT", "O": "O) OTHER", "total": "TOTAL"},
    4: {"A": "A) Awaiting completion of assessment", "B": "B) Awaiting public funding", "C": "C) Awaiting further non-acute NHS care",
        "Di": "Di) Awaiting residential home placement or availability", "Dii": "Dii) Awaiting nursing home placement or availability",
        "E": "E) Awaiting care package in own home", "F": "F) Awaiting community equipment and adaptations", "G": "G) Patient or family choice",
        "H": "H) Disputes", "I": "I) Housing - patients not covered by Care Act", "O": "O) Other", "total": "Total"},
}
AGENCY_HEADERS = {"nhs": "NHS", "social_care": "Social Care", "both": "Both", "total": "Total"}
CARE_HEADERS = {"acute": "Acute", "non_acute": "Non-Acute", "total": "Total"}
SPECIAL_ORDER = ["9901", "9900", "9902"]
SPECIAL_NAMES = {"9900": "Resident In Wales", "9901": "Resident in Scotland", "9902": "Resident outside GB"}
LEGACY = {"E06000058": "738", "E06000059": "809"}


def era(period: dt.date) -> int:
    if period < dt.date(2013, 4, 1):
        return 1
    if period < dt.date(2015, 7, 1):
        return 2
    if period < dt.date(2017, 4, 1):
        return 3
    if period < dt.date(2018, 11, 1):
        return 4
    if period < dt.date(2019, 5, 1):
        return 5
    return 6


def display_name(code: str, era_no: int) -> str:
    """The name as DTOC files print it: " UA" on unitaries, "&" in older files, odd case."""
    name = geography.name_of(code)
    if code == "E09000001":
        return "City Of London"
    if era_no == 1:
        name = name.replace(" and ", " & ")
    if code.startswith("E06"):
        name += " UA"
    return name


def _cell(sheet, row, col, value, as_text: bool):
    if value is None:
        sheet.write(row, col, "-")
    elif as_text and value >= 1000:
        sheet.write(row, col, f"{int(value):,}")
    else:
        sheet.write(row, col, float(value))


def write_month(path: Path, period: dt.date, values: pd.DataFrame, *, status: str = "Published",
                published: dt.date, revised: dt.date | None, rng: np.random.Generator) -> Path:
    """Write one month. ``values``: World.dtoc_month() rows (row_type, code, breakdown, category, value)."""
    era_no = era(period)
    days = (pd.Timestamp(period) + pd.offsets.MonthEnd(0)).day
    book = xlwt.Workbook()
    england = values.groupby(["breakdown", "category"])["value"].sum(min_count=1)
    _england_sheet(book.add_sheet("England"), period, england, era_no, published, revised, status)
    care_name = "LA - by Type of Care" if era_no <= 3 else "LA - by type of care"
    regions = dict(zip(geography.councils()["council_code"], geography.councils()["region_name"]))
    legacies = dict(zip(geography.councils()["council_code"], geography.councils()["legacy_code"]))
    sheets = [(care_name, "care_type", CARE_HEADERS), ("LA - by responsible org", "agency", AGENCY_HEADERS),
              ("LA - by reason", "reason", REASON_HEADERS[1 if era_no <= 3 else 4])]
    for sheet_name, breakdown, headers in sheets:
        sheet = book.add_sheet(sheet_name)
        _metadata(sheet, period, breakdown, published, revised, status)
        part = values[values["breakdown"] == breakdown]
        categories = [c for c in headers if c in set(part["category"])]
        ids = {1: ["SHA", "Code", "Name"], 2: ["Region", "Code", "Name"]}.get(era_no, ["Region", "ONS Geography", "Code", "Name"])
        first = 1 + len(ids)
        header_row = 13
        for j, label in enumerate(ids):
            sheet.write(header_row, 1 + j, label)
        blocks = [("Delayed Days", 1.0)]
        if era_no >= 4:
            blocks.append(("Average Number of People Delayed per Day" if era_no == 6 else "DTOC Beds", 1.0 / days))
        col = first
        starts = []
        for label, _scale in blocks:
            if era_no >= 4:
                sheet.write(header_row - 1, col, label)
            starts.append(col)
            for k, cat in enumerate(categories):
                sheet.write(header_row, col + k, headers[cat])
            col += len(categories) + 1
        table = part.set_index(["row_type", "code", "category"])["value"].unstack("category")
        cells = {(r.row_type, r.code, r.category): (None if pd.isna(r.value) else float(r.value)) for r in part.itertuples()}
        ordered = _row_order(table, era_no, breakdown)
        as_text = era_no == 3 and breakdown == "agency"
        row = header_row + 1
        for kind, code in [("england", None), ("blank", None)] + ordered:
            if kind == "blank":
                row += 1
                continue
            if kind == "england":
                labels = ["-"] * (len(ids) - 1) + ["England"]
                figures = {c: england.get((breakdown, c)) for c in categories}
            else:
                figures = {c: cells.get((kind, code, c)) for c in categories}
                if kind == "special":
                    labels = ["-"] * (len(ids) - 2) + [code, SPECIAL_NAMES[code]]
                else:
                    region = regions.get(code, "South West")
                    legacy = LEGACY.get(code) or legacies.get(code, "")
                    labels = {1: ["-", legacy], 2: [region, legacy]}.get(era_no, [region, code, legacy]) + [display_name(code, era_no)]
            for j, label in enumerate(labels):
                sheet.write(row, 1 + j, label)
            for start, (_label, scale) in zip(starts, blocks):
                for k, cat in enumerate(categories):
                    v = figures[cat]
                    _cell(sheet, row, start + k, None if v is None else (v * scale if scale != 1.0 else v), as_text and scale == 1.0)
            row += 1
        sheet.write(row + 1, 1, "Notes:")
        sheet.write(row + 2, 1, "1. Figures are for patients resident in each local authority, whichever NHS organisation they were delayed in.")
    if era_no == 4:
        dq = book.add_sheet("Data Quality")
        dq.write(0, 0, f"The following Organisations revised data for {period:%B %Y}:")
        dq.write(1, 0, "RXX")
        dq.write(1, 1, "Example NHS Foundation Trust")
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path


def _value(table, kind, code, category):
    try:
        v = table.loc[(kind, code), category]
    except KeyError:
        return None
    return None if pd.isna(v) else float(v)


def _row_order(table: pd.DataFrame, era_no: int, breakdown: str) -> list[tuple[str, str]]:
    councils = [code for kind, code in table.index if kind == "council"]
    if breakdown == "care_type":  # councils with no delays are left out of this sheet
        councils = [c for c in councils if _value(table, "council", c, "total") not in (0.0,)]
    frame = geography.councils().set_index("council_code")
    if era_no == 1:
        key = lambda c: display_name(c, 1).lower()
    else:
        key = lambda c: (frame["region_name"].get(c, "South West"), display_name(c, era_no).lower())
    ordered = [("council", c) for c in sorted(councils, key=key)]
    specials = [code for kind, code in table.index if kind == "special"]
    return ordered + [("special", c) for c in SPECIAL_ORDER if c in specials]


def _metadata(sheet, period, breakdown, published, revised, status):
    summary = {"agency": "by the responsible organisation", "reason": "by reason for delay", "care_type": "by type of care"}[breakdown]
    rows = [
        (1, "Title:", "Delayed Transfer of Care, NHS Organisations, England"),
        (2, "Summary:", f"Number of Delayed Days during the reporting period, Acute and Non-Acute, for NHS Organisations in England {summary}."),
        (4, "Period:", f"{period:%B %Y}"),
        (5, "Source:", "Unify2 Data Collection - MSitDT"),
        (6, "Basis:", "Local Authority"),
        (7, "Published:", _ordinal(published)),
        (8, "Revised:", _ordinal(revised) if revised else ""),
        (9, "Status:", status),
        (10, "Contact:", "england.nhsdata@nhs.net"),
    ]
    for r, label, value in rows:
        sheet.write(r, 1, label)
        sheet.write(r, 2, value)


def _england_sheet(sheet, period, england, era_no, published, revised, status):
    _metadata(sheet, period, "agency", published, revised, status)
    sheet.write(12, 1, "England Level Data")
    sheet.write(12, 3, "Number of Delayed Days during the reporting period")
    for j, label in enumerate(["Type of Care", "Reason for Delay", "NHS", "Social Care", "Both"]):
        sheet.write(13, 1 + j, label)
    for i, (care, label) in enumerate((("acute", "Acute"), ("non_acute", "Non-Acute"))):
        sheet.write(14 + i, 1, label)
        sheet.write(14 + i, 2, "-")
    # national delayed days by agency, split by type of care in proportion (the LA tables do not cross them)
    acute_share = (england.get(("care_type", "acute")) or 0) / max(england.get(("care_type", "total")) or 1, 1)
    agency_totals = {a: float(england.get(("agency", a)) or 0) for a in ("nhs", "social_care", "both")}
    for k, agency in enumerate(("nhs", "social_care", "both")):
        acute = int(round(agency_totals[agency] * acute_share))
        sheet.write(14, 3 + k, acute)
        sheet.write(15, 3 + k, int(agency_totals[agency]) - acute)
    # national delayed days by reason x agency: the reason's days shared by the agencies'
    # national shares, "NA" where an agency cannot be responsible (reason C is NHS only...)
    headers = REASON_HEADERS[1 if era_no <= 3 else 4]
    row = 17
    for code, label in headers.items():
        if code == "total" or ("reason", code) not in england.index:
            continue
        sheet.write(row, 1, "Acute" if row == 17 else "")
        sheet.write(row, 2, label)
        value = float(england.get(("reason", code)) or 0)
        applicable = [a for a in ("nhs", "social_care", "both")
                      if not ((code == "C" and a != "nhs") or (code in ("G", "H", "I") and a == "both") or (code == "I" and a == "social_care"))]
        weights = sum(agency_totals[a] for a in applicable) or 1.0
        left = int(value)
        for k, agency in enumerate(("nhs", "social_care", "both")):
            if agency not in applicable:
                sheet.write(row, 3 + k, "NA")
                continue
            share = left if agency == applicable[-1] else int(round(value * agency_totals[agency] / weights))
            left -= share
            sheet.write(row, 3 + k, share)
        row += 1


def _ordinal(day: dt.date | None) -> str:
    if day is None:
        return ""
    suffix = "th" if 11 <= day.day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    return f"{day.day}{suffix} {day:%B %Y}"
