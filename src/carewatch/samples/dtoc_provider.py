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

from carewatch import geography, sources

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
    return {"Year": sources.financial_year(period), "Period": calendar.month_name[period.month].upper()}


@lru_cache(maxsize=1)
def _legacy_codes() -> dict[str, str]:
    """Council code -> old local-authority code; a successor without one keeps its predecessor's."""
    legacy = dict(zip(geography.legacy_codes()["council_code"], geography.legacy_codes()["legacy_code"]))
    legacy.update(zip(geography.councils()["council_code"], geography.councils()["legacy_code"]))
    for old, new in zip(geography.code_changes()["old_code"], geography.code_changes()["new_code"]):
        legacy.setdefault(new, legacy.get(old, ""))
    return legacy


def legacy_code(council_code: str) -> str:
    """The council's old local-authority code as DTOC/ASCOF files write it (its ONS code if none)."""
    return _legacy_codes().get(council_code) or council_code


def _la(row_type: str, code: str) -> tuple[str, str]:
    """(LA Code, LA Name) as the provider file writes them."""
    if row_type == "special":
        return code, geography.SPECIAL_ROWS[code].upper()
    return legacy_code(code), geography.name_of(code).upper() + (" UA" if code.startswith("E06") else "")


def _providers(code: str) -> tuple[list[tuple[str, str]], str]:
    """A stable handful of synthetic (provider code, name) for an area, and its commissioner code."""
    seed = zlib.crc32(code.encode())
    codes = dict.fromkeys(f"R{np.base_repr((seed >> (5 * i)) % 1296, 36):0>2}" for i in range(2 + seed % 3))
    return [(c, f"{c} NHS TRUST") for c in codes], f"{seed % 99 + 1:02d}{chr(65 + seed % 26)}"


def _areas(frame: pd.DataFrame) -> dict[tuple[str, str], dict[str, dict[str, int]]]:
    """{(row_type, code): {breakdown: {category: days}}} without totals; areas of "-" left out."""
    areas: dict = {}
    for row in frame[frame["row_type"].isin(["council", "special"]) & (frame["category"] != "total")].itertuples(index=False):
        area = areas.setdefault((row.row_type, row.code), {})
        area.setdefault(row.breakdown, {})[row.category] = None if pd.isna(row.value) else int(row.value)
    complete = {}
    for key, margins in sorted(areas.items()):
        if any(v is None for values in margins.values() for v in values.values()):
            continue
        sums = {breakdown: sum(values.values()) for breakdown, values in margins.items()}
        if len(set(sums.values())) != 1:
            raise ValueError(f"{key[1]}: agency, reason and care-type days disagree {sums}")
        complete[key] = margins
    return complete


def _cells(margins: dict[str, dict[str, int]], rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    """(reason, care type, days per agency) with exactly the given margins; empty cells left out."""
    reasons = list(margins["reason"])
    reasons = [reasons[i] for i in rng.permutation(len(reasons))]
    care = list(CARE_TYPES)
    day_reason = np.repeat(np.arange(len(reasons)), [margins["reason"][r] for r in reasons])
    day_care = np.repeat(np.arange(len(care)), [margins["care_type"].get(c, 0) for c in care])
    day_agency = rng.permutation(np.repeat(np.arange(len(AGENCIES)), [margins["agency"].get(a, 0) for a in AGENCIES]))
    cell = (day_reason * len(care) + day_care) * len(AGENCIES) + day_agency
    days = np.bincount(cell, minlength=len(reasons) * len(care) * len(AGENCIES)).reshape(len(reasons), len(care), len(AGENCIES))
    return [(reason, care_type, days[i, j]) for i, reason in enumerate(reasons) for j, care_type in enumerate(care) if days[i, j].sum() > 0]


def _area_rows(row_type: str, code: str, margins, days_in_month: int, rng: np.random.Generator) -> list[list]:
    la_code, la_name = _la(row_type, code)
    providers, commissioner = _providers(code)
    weights = np.array(PROVIDER_WEIGHTS[: len(providers)]) / sum(PROVIDER_WEIGHTS[: len(providers)])
    rows = []
    for reason, care_type, days in _cells(margins, rng):
        provider_code, provider_name = providers[rng.choice(len(providers), p=weights)]
        patients = rng.binomial(days, 1 / days_in_month)
        figures = [text for a, b in zip(patients, days) for text in (str(a), f"{b:,}")]
        rows.append([provider_code, provider_name, commissioner, f"NHS {la_name.removesuffix(' UA')} CCG", la_code, la_name,
                     CARE_TYPES[care_type], reason, *figures])
    return rows


def write_month(path: str | Path, period: dt.date, frame: pd.DataFrame, rng: np.random.Generator) -> Path:
    """Write the provider CSV of ``period`` from ``frame`` (World.dtoc_month(period)); returns the path."""
    days_in_month = calendar.monthrange(period.year, period.month)[1]
    rows = [row for (row_type, code), margins in _areas(frame).items()
            for row in _area_rows(row_type, code, margins, days_in_month, rng)]
    out = pd.DataFrame(rows, columns=COLUMNS)
    for column, value in reversed(period_columns(period).items()):
        out.insert(0, column, value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.to_csv(index=False, lineterminator="\n").encode("cp1252"))
    return path
