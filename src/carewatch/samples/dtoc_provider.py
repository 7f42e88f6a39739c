"""Write the NHS England DTOC provider-level CSV for one month from the month's LA figures.

Input: ``World.dtoc_month(period)`` (the LA month in long form: row_type, code, breakdown,
category, value). Each council's (and special row's) delayed days are laid out as a table
of reason x type of care x agency whose sums by agency, by reason and by type of care are
exactly the LA figures; each reason x care-type cell goes to one of a handful of synthetic
providers (stable per council), so summing the file's B columns by local authority and
agency gives the LA table back. Reason and care type are paired "north-west corner" style
(at most reasons + 1 rows per council) to keep a month's file small (about 150 KB). The A
column (patients delayed at the snapshot) is drawn as Binomial(delayed days, 1 / days in
the month), never above B. Whether an agency can be responsible for a reason (reason C is
NHS only in real files) is not modelled.

Format (see ``carewatch.parsers.dtoc_provider`` for what is confirmed): columns period(s),
Prov Code, Prov Name, Commissioner Code, Commissioner Name, LA Code, LA Name, Type of
Care, Reason For Delay, NHS A, NHS B, Social Care A, Social Care B, Both A, Both B; names in
capitals with " UA" for unitary councils; B figures with thousands separators. Period label:
"MSitDT-SEPTEMBER-2017" up to March 2018, then "Year" ("2018-19") plus "Period" ("APRIL")
(assumed switch month: both styles are real, the switch date is not known).
"""

from __future__ import annotations

import calendar
import datetime as dt
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from carewatch import geography

AGENCIES = ["nhs", "social_care", "both"]
CARE_TYPES = {"acute": "Acute", "non_acute": "Non-Acute"}
COLUMNS = ["Prov Code", "Prov Name", "Commissioner Code", "Commissioner Name", "LA Code", "LA Name", "Type of Care",
           "Reason For Delay", "NHS A", "NHS B", "Social Care A", "Social Care B", "Both A", "Both B"]
YEAR_AND_MONTH_FROM = dt.date(2018, 4, 1)
PROVIDER_WEIGHTS = [0.6, 0.25, 0.1, 0.05]  # main provider first; a council has two to four


def period_columns(period: dt.date) -> dict[str, str]:
    """The era's period column(s) and their value for a month."""
    if period < YEAR_AND_MONTH_FROM:
        return {"Period": f"MSitDT-{calendar.month_name[period.month].upper()}-{period.year}"}
    first = period.year if period.month >= 4 else period.year - 1
    return {"Year": f"{first}-{(first + 1) % 100:02d}", "Period": calendar.month_name[period.month].upper()}


@lru_cache(maxsize=1)
def _legacy_codes() -> dict[str, str]:
    later = geography.legacy_codes()
    legacy = dict(zip(later["council_code"], later["legacy_code"]))
    legacy.update(zip(geography.councils()["council_code"], geography.councils()["legacy_code"]))
    return legacy


def _la(row_type: str, code: str) -> tuple[str, str]:
    """(LA Code, LA Name) as the provider file writes them."""
    if row_type == "special":
        return code, geography.SPECIAL_ROWS[code].upper()
    name = geography.name_of(code).upper() + (" UA" if code.startswith("E06") else "")
    return _legacy_codes().get(code) or code, name


def _providers(code: str) -> tuple[list[tuple[str, str]], str]:
    """A stable handful of synthetic (provider code, name) for an area, and its commissioner code."""
    seed = zlib.crc32(code.encode())
    codes = dict.fromkeys(f"R{np.base_repr((seed >> (5 * i)) % 1296, 36):0>2}" for i in range(2 + seed % 3))
    return [(c, f"{c} HOSPITALS NHS TRUST") for c in codes], f"{seed % 99 + 1:02d}{chr(65 + seed % 26)}"


def _margins(area: pd.DataFrame) -> dict[str, pd.Series] | None:
    """Days by agency, reason and care type (no totals); None for a row of "-"."""
    if area["value"].isna().all():
        return None
    margins = {
        breakdown: area[(area["breakdown"] == breakdown) & (area["category"] != "total")].set_index("category")["value"].astype("int64")
        for breakdown in ("agency", "reason", "care_type")
    }
    sums = {breakdown: int(values.sum()) for breakdown, values in margins.items()}
    if len(set(sums.values())) != 1:
        raise ValueError(f"{area['code'].iloc[0]}: agency, reason and care-type days disagree {sums}")
    return margins


def _cells(margins: dict[str, pd.Series], rng: np.random.Generator) -> pd.DataFrame:
    """Days per reason x care type x agency with exactly the given margins."""
    reasons = margins["reason"].iloc[rng.permutation(len(margins["reason"]))]
    care = margins["care_type"].reindex(list(CARE_TYPES), fill_value=0)
    agency = margins["agency"].reindex(AGENCIES, fill_value=0)
    day_reason = np.repeat(np.arange(len(reasons)), reasons.to_numpy())
    day_care = np.repeat(np.arange(len(care)), care.to_numpy())
    day_agency = rng.permutation(np.repeat(np.arange(len(agency)), agency.to_numpy()))
    cell = (day_reason * len(care) + day_care) * len(agency) + day_agency
    days = np.bincount(cell, minlength=len(reasons) * len(care) * len(agency)).reshape(len(reasons) * len(care), len(agency))
    index = pd.MultiIndex.from_product([reasons.index, care.index], names=["reason", "care_type"])
    table = pd.DataFrame(days, index=index, columns=AGENCIES).reset_index()
    return table[table[AGENCIES].sum(axis=1) > 0]


def _area_rows(row_type: str, code: str, margins, days_in_month: int, rng: np.random.Generator) -> list[list]:
    la_code, la_name = _la(row_type, code)
    providers, commissioner = _providers(code)
    weights = np.array(PROVIDER_WEIGHTS[: len(providers)]) / sum(PROVIDER_WEIGHTS[: len(providers)])
    rows = []
    for cell in _cells(margins, rng).itertuples(index=False):
        provider_code, provider_name = providers[rng.choice(len(providers), p=weights)]
        figures = []
        for agency in AGENCIES:
            days = int(getattr(cell, agency))
            figures += [int(rng.binomial(days, 1 / days_in_month)), f"{days:,}"]
        rows.append([provider_code, provider_name, commissioner, f"NHS {la_name.removesuffix(' UA')} CCG", la_code, la_name,
                     CARE_TYPES[cell.care_type], cell.reason, *figures])
    return rows


def write_month(path: str | Path, period: dt.date, frame: pd.DataFrame, rng: np.random.Generator) -> Path:
    """Write the provider CSV of ``period`` from ``frame`` (World.dtoc_month(period)); returns the path."""
    days_in_month = calendar.monthrange(period.year, period.month)[1]
    areas = frame[frame["row_type"].isin(["council", "special"])]
    rows = []
    for (row_type, code), area in areas.groupby(["row_type", "code"], sort=True):
        margins = _margins(area)
        if margins is not None:
            rows += _area_rows(row_type, code, margins, days_in_month, rng)
    out = pd.DataFrame(rows, columns=COLUMNS)
    for column, value in reversed(period_columns(period).items()):
        out.insert(0, column, value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.to_csv(index=False, lineterminator="\r\n").encode("cp1252"))
    return path
