"""Reference geography: councils, health and wellbeing board areas, legacy codes, code changes.

Data lives in ``config/geography/`` (built from real NHS England DTOC workbooks of every
layout era and the ONS mid-2016 estimates; checked against the ONS LTLA-to-UTLA lookup in
the tests):

- ``councils.csv``: the 152 councils with adult social services responsibilities in 2017,
  with their 2017 ONS code and name, the old local-authority code DTOC files use, their HWB
  area and region. The Isles of Scilly has no DTOC row and so no legacy code.
- ``hwb_areas.csv``: the 150 HWB areas. City of London is part of the Hackney HWB
  (E09000012) and the Isles of Scilly of the Cornwall HWB (E06000052).
- ``legacy_codes.csv``: every old code a council has been published under (for example
  "00KB" for Bedford, "738" for Bournemouth, Christchurch and Poole from 2019).
- ``code_changes.csv``: recodes (same area, new code), aliases (a second code for the same
  council, e.g. Barnsley's E08000038 of 2019, which ONS's 2021 lookup does not use) and
  boundary changes (merge, split) since 2017; ``successor_names.csv`` names the councils
  created by them.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pandas as pd

from carewatch import paths

SPECIAL_ROWS = {"9900": "Resident in Wales", "9901": "Resident in Scotland", "9902": "Resident outside GB"}
ENGLAND = "E92000001"


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(paths.config_dir() / "geography" / name, dtype=str, keep_default_na=False)


@lru_cache(maxsize=1)
def councils() -> pd.DataFrame:
    return _read("councils.csv")


@lru_cache(maxsize=1)
def hwb_areas() -> pd.DataFrame:
    return _read("hwb_areas.csv")


@lru_cache(maxsize=1)
def legacy_codes() -> pd.DataFrame:
    return _read("legacy_codes.csv")


@lru_cache(maxsize=1)
def code_changes() -> pd.DataFrame:
    frame = _read("code_changes.csv")
    frame["effective_from"] = pd.to_datetime(frame["effective_from"]).dt.date
    return frame


def boundary_change_days(changes: pd.DataFrame, side: str) -> pd.Series:
    """Per area code, the day a merge or split (not a recode or an alias) ended it
    (``side="old_code"``) or made it (``side="new_code"``), as Timestamps."""
    changed = changes[changes["change"].isin(["merge", "split"])]
    return pd.to_datetime(changed.groupby(side)["effective_from"].min())


def existing_on(areas, day, changes: pd.DataFrame | None = None) -> list[str]:
    """Those of ``areas`` that existed on ``day`` (a period's ``period_start``: the month a
    rolling year is named by, a financial year's first day): not ended by a merge or split on or
    before it (Poole, from 1 April 2019), nor made by one after it (Bournemouth, Christchurch and
    Poole, before then). A recode or an alias is the same area throughout."""
    changes = code_changes() if changes is None else changes
    day = pd.Timestamp(day)
    ended = boundary_change_days(changes, "old_code")
    made = boundary_change_days(changes, "new_code")
    return sorted(a for a in areas if not (a in ended.index and ended[a] <= day) and not (a in made.index and made[a] > day))


@lru_cache(maxsize=1)
def successor_names() -> dict[str, str]:
    frame = _read("successor_names.csv")
    return dict(zip(frame["council_code"], frame["council_name"]))


@lru_cache(maxsize=1)
def _lookups() -> tuple[set[str], dict[str, str], dict[str, str]]:
    known = set(councils()["council_code"])
    by_legacy = dict(zip(legacy_codes()["legacy_code"], legacy_codes()["council_code"]))
    changes = code_changes()
    same_council = changes["change"].isin(["recode", "alias"])
    recoded_back = dict(zip(changes.loc[same_council, "new_code"], changes.loc[same_council, "old_code"]))
    successors = set(changes.loc[~same_council, "new_code"])
    return known | successors, by_legacy, recoded_back


def _normalise_legacy(code: str) -> str:
    code = str(code).strip().upper()
    if code.endswith(".0"):  # a spreadsheet cell read as a number
        code = code[:-2]
    return code


def resolve_council(ons_code: str | None = None, legacy_code: str | None = None) -> str | None:
    """The council's code for a DTOC/ASCOF row: its 2017 code where it existed in 2017.

    A pure recode (Barnsley E08000038) maps back to the 2017 code; successors of boundary
    changes (Bournemouth, Christchurch and Poole; the new Dorset) have no 2017 equivalent and
    are returned as themselves. Special rows (9900-9902) and unknown codes give None.
    """
    known, by_legacy, recoded_back = _lookups()
    if ons_code is not None and str(ons_code).strip() not in ("", "-", "nan", "None"):
        code = str(ons_code).strip().upper()
        code = recoded_back.get(code, code)
        if code in known:
            return code
    if legacy_code is not None and str(legacy_code).strip() not in ("", "-", "nan", "None"):
        code = _normalise_legacy(legacy_code)
        if code in SPECIAL_ROWS:
            return None
        return by_legacy.get(code)
    return None


@lru_cache(maxsize=1)
def _hwb_of() -> dict[str, str]:
    return dict(zip(councils()["council_code"], councils()["hwb_code"]))


def council_to_hwb(council_code: str) -> str:
    if council_code in _hwb_of():
        return _hwb_of()[council_code]
    if council_code in _lookups()[0]:
        return council_code  # successors are HWB areas of their own
    raise KeyError(f"unknown council code {council_code!r}")


@lru_cache(maxsize=1)
def _successors() -> dict[str, tuple[tuple[str, dt.date], ...]]:
    """old code -> (new code, effective from) of every change but aliases."""
    changes = code_changes()
    changes = changes[changes["change"] != "alias"]
    out: dict[str, list] = {}
    for old, new, effective in zip(changes["old_code"], changes["new_code"], changes["effective_from"]):
        out.setdefault(old, []).append((new, effective))
    return {old: tuple(pairs) for old, pairs in out.items()}


def current_code(code: str, on: dt.date | None = None) -> list[str]:
    """Successor code(s) of ``code`` in force on ``on`` (default today), through code_changes."""
    on = on or dt.date.today()
    successors = _successors()
    result: list[str] = []
    frontier = [code]
    while frontier:
        current = frontier.pop()
        nxt = [new for new, effective in successors.get(current, ()) if effective <= on]
        if nxt:
            frontier.extend(nxt)
        elif current not in result:
            result.append(current)
    return sorted(result)


def hwb_names(hwb_areas_table: pd.DataFrame | None = None) -> dict[str, str]:
    """Names of every area code the warehouse reports: the HWB areas (``hwb_areas_table``,
    e.g. the warehouse's ``ref_hwb_areas``; default this config's 150 areas of 2016), the
    areas boundary changes created after them (BCP, Dorset, the Northamptonshire unitaries)
    and England."""
    table = hwb_areas() if hwb_areas_table is None else hwb_areas_table
    names = {**successor_names(), **dict(zip(table["hwb_code"], table["hwb_name"]))}
    names["E92000001"] = "England"
    return names


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    return {**successor_names(), **dict(zip(councils()["council_code"], councils()["council_name"]))}


def name_of(code: str) -> str:
    """The council's official name (successor councils included); the code if unknown."""
    return _names().get(code, code)
