"""NHS England's national monthly DTOC time series (August 2010 - February 2020): figures and workbook.

Figures (``national_series``)
-----------------------------
England's delayed days for each month come from the world model: the sum over councils and
special rows (9900-9902) of ``World.dtoc_month`` by agency, by reason and by type of care (the
LA tables' "England" row). The time series is **provider based** (delays counted where the
patient was delayed) while the LA tables are **residence based**, so the two national totals
differ a little in real files. That is modelled by one deterministic factor per month,
``f = 1 + U(-0.01, 0.01)`` drawn from ``world.rng("national", "YYYY-MM")``: the national total
is ``round(LA total x f)`` (so within 1% of the LA sum, give or take half a day), and each
breakdown's categories are the LA figures rescaled to that total by largest remainder (whole
days that add up exactly).

The LA tables never cross agency, reason and type of care; the time series does. The cross
is built from the national margins, in whole days:

- reason x agency: agencies cannot be responsible for every reason (real "England" sheets:
  reasons C and I are NHS only; Di, G and H cannot be "Both"). Social-care days are shared
  among the reasons social care can be responsible for, in proportion to the reasons' days,
  likewise "Both"; the NHS gets the rest of each reason;
- x type of care: the national acute days are shared among the reason x agency cells in
  proportion to their days (so every cell's acute share is about the national one).

All sums hold exactly: acute + non-acute = total, NHS + social care + both = total, the
reasons add up to the total, in every cell. Reason O (Other) is collected from April 2017
only (as in the world model and the real LA tables): earlier months have no O rows.

``national_series`` returns the long form, one row per month x care_type x reason x agency
(``total`` included on each axis; impossible reason/agency pairs left out), column
``delayed_days``. Months are cached on the ``World`` object, so the generator can call it
once for February 2020 and let ``write_timeseries`` slice, or call it per month cheaply.

Workbook (``write_timeseries``)
-------------------------------
One .xls per release, covering August 2010 to the release's last month, in the house style
of the LA tables (``carewatch.samples.dtoc_la``). Four sheets:

==========================  ===================================================================
"By Type of Care"           Acute | Non-Acute | Total
"By Responsible Org"        NHS | Social Care | Both | Total
"By Reason"                 A) ... O) | Total (the LA tables' reason labels)
"By Type, Reason and Org"   wide: band row of care types (Acute / Non-Acute / Total), a row of
                            reasons beneath it, a header row of agencies beneath that
==========================  ===================================================================

Every sheet: metadata labels in column B and values in column C (Title, Summary, Period
"August 2010 - February 2020", Source, Basis "Provider", Published, Revised, Status,
Contact) on rows 2-11; "Provider Level Data" in B13; rows labelled by a "Year" column
(financial year, "2016-17") and a "Month" column ("April") in columns B and C, never a date;
notes below the table. Each table comes twice: "Delayed Days" and "DTOC Beds" (average beds
occupied by delayed patients per day = delayed days / days in the month, rounded to 1 dp).
On the three narrow sheets the two blocks sit side by side under a band row (as in the LA
tables from April 2017); on the wide sheet (123 columns a block, and .xls stops at 256) the
DTOC Beds block is a second table below the first, with its own band rows. Merged cells
carry the care-type and reason bands. "-" where a month has no figure (reason O before
April 2017). Quirk reproduced: on "By Reason", delayed days of 2010-11 and 2011-12 are
numbers stored as text with thousands separators ("12,345"), as in older real releases.
"""

from __future__ import annotations

import calendar
import datetime as dt
from pathlib import Path

import pandas as pd
import xlwt

from carewatch import sources
from carewatch.samples.dtoc_la import REASON_HEADERS, _ordinal
from carewatch.samples.world import REASONS, World

FIRST_MONTH = dt.date(2010, 8, 1)
LAST_MONTH = dt.date(2020, 2, 1)  # the collection stopped in March 2020
CARE_TYPES = {"acute": "Acute", "non_acute": "Non-Acute", "total": "Total"}
AGENCIES = {"nhs": "NHS", "social_care": "Social Care", "both": "Both", "total": "Total"}
REASON_LABELS = REASON_HEADERS[4]  # "A) Awaiting completion of assessment", ..., "Total"
# agencies that cannot be responsible for a reason (real LA "England" sheets: blank / "NA" / 0)
NOT_RESPONSIBLE = {"C": {"social_care", "both"}, "I": {"social_care", "both"}, "Di": {"both"}, "G": {"both"}, "H": {"both"}}
SERIES_COLUMNS = ["period", "care_type", "reason", "agency", "delayed_days"]
SHEETS = {
    "care_type": "By Type of Care",
    "agency": "By Responsible Org",
    "reason": "By Reason",
    "care_type_reason_agency": "By Type, Reason and Org",
}
BLOCKS = (("Delayed Days", "delayed_days"), ("DTOC Beds", "delayed_beds"))
TEXT_NUMBERS_BEFORE = dt.date(2012, 4, 1)  # "By Reason" days stored as text before 2012-13


def applicable(reason: str, agency: str) -> bool:
    """Whether ``agency`` can be responsible for delays of ``reason`` (totals always can)."""
    return agency not in NOT_RESPONSIBLE.get(reason, set())


def months(first: dt.date, last: dt.date) -> list[dt.date]:
    out, day = [], first.replace(day=1)
    while day <= last:
        out.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def days_in_month(period: dt.date) -> int:
    return calendar.monthrange(period.year, period.month)[1]


# --- figures ----------------------------------------------------------------------------------

def _apportion(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Share ``total`` whole days among keys in proportion to integer weights (largest remainder)."""
    keys = list(weights)
    weight_sum = sum(weights.values())
    if total == 0:
        return dict.fromkeys(keys, 0)
    if weight_sum <= 0:
        raise ValueError(f"cannot share {total} days among {keys}: no weight")
    share = {k: total * weights[k] // weight_sum for k in keys}
    remainder = {k: total * weights[k] % weight_sum for k in keys}
    for k in sorted(keys, key=lambda k: -remainder[k])[: total - sum(share.values())]:  # stable: ties in key order
        share[k] += 1
    return share


def national_month(world: World, period: dt.date) -> list[tuple]:
    """One month of the series: (period, care_type, reason, agency, delayed_days) tuples."""
    cache = world.__dict__.setdefault("_national_cache", {})
    if period in cache:
        return cache[period]
    la = world.dtoc_month(period).dropna(subset=["value"])
    england = {key: int(v) for key, v in la.groupby(["breakdown", "category"])["value"].sum().items()}
    factor = 1 + world.rng("national", f"{period:%Y-%m}").uniform(-0.01, 0.01)
    total = int(round(england[("agency", "total")] * factor))
    reasons = [r for r in REASONS if ("reason", r) in england]
    agency = _apportion(total, {a: england[("agency", a)] for a in ("nhs", "social_care", "both")})
    reason = _apportion(total, {r: england[("reason", r)] for r in reasons})
    acute = _apportion(total, {c: england[("care_type", c)] for c in ("acute", "non_acute")})["acute"]

    # reason x agency: social care and "both" shared among the reasons they can be responsible for
    cell: dict[tuple[str, str], int] = {}
    for a in ("social_care", "both"):
        allowed = {r: reason[r] for r in reasons if applicable(r, a)}
        cell.update({(r, a): v for r, v in _apportion(agency[a], allowed).items()})
    for r in reasons:
        cell[(r, "nhs")] = reason[r] - sum(cell.get((r, a), 0) for a in ("social_care", "both"))
        if cell[(r, "nhs")] < 0:
            raise ValueError(f"{period:%Y-%m}: social care and both exceed reason {r}'s {reason[r]} days")
    # x type of care: the national acute days shared in proportion to the cells' days
    acute_cell = _apportion(acute, cell)

    values: dict[tuple[str, str, str], int] = {}
    for (r, a), days in cell.items():
        for c, v in (("acute", acute_cell[(r, a)]), ("non_acute", days - acute_cell[(r, a)]), ("total", days)):
            for key in ((c, r, a), (c, r, "total"), (c, "total", a), (c, "total", "total")):
                values[key] = values.get(key, 0) + v
    rows = [(period, c, r, a, v) for (c, r, a), v in values.items()]
    cache[period] = rows
    return rows


def national_series(world: World, last_month: dt.date) -> pd.DataFrame:
    """National monthly delayed days, August 2010 to ``last_month`` (see the module docstring).

    Columns ``period`` (date, first of month), ``care_type`` (acute / non_acute / total),
    ``reason`` (A ... O / total), ``agency`` (nhs / social_care / both / total),
    ``delayed_days`` (int). Sorted by period.
    """
    last_month = last_month.replace(day=1)
    if not FIRST_MONTH <= last_month <= LAST_MONTH:
        raise ValueError(f"the national DTOC series runs from {FIRST_MONTH:%B %Y} to {LAST_MONTH:%B %Y}, not to {last_month:%B %Y}")
    rows = [row for period in months(FIRST_MONTH, last_month) for row in national_month(world, period)]
    frame = pd.DataFrame(rows, columns=SERIES_COLUMNS)
    frame["delayed_days"] = frame["delayed_days"].astype("int64")
    return frame


# --- workbook ------------------------------------------------------------------------------------

def _metadata(sheet, breakdown: str, last_month: dt.date, published, revised, status) -> None:
    summary = {"care_type": "by type of care", "agency": "by the responsible organisation", "reason": "by reason for delay",
               "care_type_reason_agency": "by type of care, reason for delay and responsible organisation"}[breakdown]
    rows = [
        (1, "Title:", "Delayed Transfers of Care, NHS Organisations, England - Monthly Time Series"),
        (2, "Summary:", f"Number of Delayed Days during each month, Acute and Non-Acute, for NHS Organisations in England {summary}."),
        (4, "Period:", f"{FIRST_MONTH:%B %Y} - {last_month:%B %Y}"),
        (5, "Source:", "Unify2 Data Collection - MSitDT"),
        (6, "Basis:", "Provider"),
        (7, "Published:", _ordinal(published)),
        (8, "Revised:", _ordinal(revised)),
        (9, "Status:", status),
        (10, "Contact:", "england.nhsdata@nhs.net"),
    ]
    for r, label, value in rows:
        sheet.write(r, 1, label)
        sheet.write(r, 2, value)
    sheet.write(12, 1, "Provider Level Data")


def _columns(breakdown: str) -> list[tuple[str, str, str]]:
    """The (care_type, reason, agency) of each measure column of a sheet, left to right."""
    if breakdown == "care_type":
        return [(c, "total", "total") for c in CARE_TYPES]
    if breakdown == "agency":
        return [("total", "total", a) for a in AGENCIES]
    if breakdown == "reason":
        return [("total", r, "total") for r in REASON_LABELS]
    return [(c, r, a) for c in CARE_TYPES for r in REASON_LABELS for a in AGENCIES if applicable(r, a)]


def _write_rows(sheet, first_row: int, first_col: int, periods, columns, lookup, measure: str, *,
                labels: bool, text_numbers: bool = False) -> int:
    """Write a block's figures (and the Year / Month labels in B and C if ``labels``); return the next row."""
    row = first_row
    for period in periods:
        if labels:
            sheet.write(row, 1, sources.financial_year(period))
            sheet.write(row, 2, f"{period:%B}")
        days = days_in_month(period)
        for k, key in enumerate(columns):
            value = lookup.get((period, *key))
            if value is None:
                cell = "-"
            elif measure == "delayed_beds":
                cell = round(value / days, 1)
            elif text_numbers and period < TEXT_NUMBERS_BEFORE and value >= 1000:
                cell = f"{value:,}"
            else:
                cell = value
            sheet.write(row, first_col + k, cell)
        row += 1
    return row


def _narrow_sheet(sheet, breakdown, periods, lookup) -> int:
    """Delayed Days and DTOC Beds blocks side by side under a band row (row 13), header row 14."""
    columns = _columns(breakdown)
    headers = {"care_type": CARE_TYPES, "agency": AGENCIES, "reason": REASON_LABELS}[breakdown]
    band_row, header_row = 12, 13
    sheet.write(header_row, 1, "Year")
    sheet.write(header_row, 2, "Month")
    col = 3
    for label, measure in BLOCKS:
        sheet.write(band_row, col, label)
        for k, key in enumerate(columns):
            sheet.write(header_row, col + k, headers[key[{"care_type": 0, "reason": 1, "agency": 2}[breakdown]]])
        end = _write_rows(sheet, header_row + 1, col, periods, columns, lookup, measure,
                          labels=col == 3, text_numbers=breakdown == "reason")
        col += len(columns) + 1
    return end


def _wide_sheet(sheet, periods, lookup) -> int:
    """Delayed Days table, then DTOC Beds table below it; each: measure, care type and reason bands."""
    columns = _columns("care_type_reason_agency")
    row = 12
    for label, measure in BLOCKS:
        sheet.write(row, 3, label)
        col = 3
        for c in CARE_TYPES:
            in_care = [key for key in columns if key[0] == c]
            sheet.write_merge(row + 1, row + 1, col, col + len(in_care) - 1, CARE_TYPES[c])
            for r in REASON_LABELS:
                width = sum(1 for key in in_care if key[1] == r)
                sheet.write_merge(row + 2, row + 2, col, col + width - 1, REASON_LABELS[r])
                col += width
        header_row = row + 3
        sheet.write(header_row, 1, "Year")
        sheet.write(header_row, 2, "Month")
        for k, key in enumerate(columns):
            sheet.write(header_row, 3 + k, AGENCIES[key[2]])
        row = _write_rows(sheet, header_row + 1, 3, periods, columns, lookup, measure, labels=True) + 1
    return row - 1


def _notes(sheet, row: int, breakdown: str) -> None:
    notes = [
        "Notes:",
        "1. Provider based: delays are counted in the NHS organisation the patient was delayed in, so England's "
        "figures differ slightly from the sum of the local-authority (residence based) tables.",
        "2. DTOC Beds: average number of beds occupied by delayed patients each day (delayed days / days in the month).",
        "3. Reason O (Other) was collected from April 2017; '-' before then.",
    ]
    if breakdown == "care_type_reason_agency":
        notes.append("4. Columns are shown only where the agency can be responsible for the reason "
                     "(C and I: NHS only; Di, G and H: not Both).")
    for k, text in enumerate(notes):
        sheet.write(row + 1 + k, 1, text)


def write_timeseries(path: str | Path, last_month: dt.date, series: pd.DataFrame, *, published: dt.date,
                     status: str = "Published", revised: dt.date | None = None) -> Path:
    """Write the release whose last month is ``last_month`` (one .xls, August 2010 to that month).

    ``series``: ``national_series()`` output covering at least August 2010 to ``last_month``
    (later months are ignored, so one full series serves every release).
    """
    path = Path(path)
    last_month = last_month.replace(day=1)
    periods = months(FIRST_MONTH, last_month)
    part = series[series["period"] <= last_month]
    missing = sorted(set(periods) - set(part["period"]))
    if missing:
        raise ValueError(f"series has no figures for {', '.join(f'{m:%Y-%m}' for m in missing[:3])}{' ...' if len(missing) > 3 else ''}")
    lookup = {(p, c, r, a): int(v) for p, c, r, a, v in part[SERIES_COLUMNS].itertuples(index=False)}
    book = xlwt.Workbook()
    for breakdown, name in SHEETS.items():
        sheet = book.add_sheet(name)
        _metadata(sheet, breakdown, last_month, published, revised, status)
        if breakdown == "care_type_reason_agency":
            end = _wide_sheet(sheet, periods, lookup)
        else:
            end = _narrow_sheet(sheet, breakdown, periods, lookup)
        _notes(sheet, end, breakdown)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path
