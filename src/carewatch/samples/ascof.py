"""Write an NHS Digital ASCOF measures CSV for one financial year, in that year's format.

Input: ``World.ascof_year(fy)`` (council_code, measure_group, numerator, denominator: the
headline 2B1 and 2B2 counts per council). Output, Windows-1252 encoded:

- one row per geography x ASCOF measure code x measure type (Numerator, Denominator,
  Outcome = numerator / denominator x 100 to one decimal place);
- Council rows (Geographical Code = the old local-authority code, ONS code beside it), one
  Region row per region and an England row, each the sum of its councils;
- per measure group the headline ("Total", measure code = group) and disaggregations by age
  ("2B16574", "2B17584", "2B185OV") and sex ("2B1F", "2B1M"), whose counts add up to the
  headline;
- the 2B2 denominator is a hospital-discharge count (thousands) where its numerator is in
  the tens, as the world model gives them;
- header drift: 2014-15 without spaces ("GeographicalCode", "ONSAreaCode"), later years with
  spaces; "ONS Area Code" until 2018-19 (the 2018-19 field notes use it) and "ONS Code" from
  2019-20 (assumed switch year); thousands separators in the counts of 2014-15 and 2015-16
  (assumed, exercises the parser);
- suppression: the HES-based 2B2 denominator is suppressed when between one and five (the
  published rule), and ``suppressed`` randomly chosen councils have their 2B1 headline
  numerator and outcome withheld; marker "*" before 2018-19 and "[c]" from 2018-19
  (assumed: "[x]"/"[c]" are confirmed from 2020-21 only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from carewatch import geography
from carewatch.samples.dtoc_provider import legacy_code

ENGLAND = ("E92000001", "England")
REGION_CODES = {
    "North East": "E12000001", "North West": "E12000002", "Yorkshire and The Humber": "E12000003",
    "East Midlands": "E12000004", "West Midlands": "E12000005", "East of England": "E12000006",
    "London": "E12000007", "South East": "E12000008", "South West": "E12000009",
}
DESCRIPTIONS = {
    "2B1": "Proportion of older people (65 and over) who were still at home 91 days after discharge from "
           "hospital into reablement/rehabilitation services – effectiveness of the service",
    "2B2": "Proportion of older people (65 and over) who received reablement/rehabilitation services after "
           "discharge from hospital – offering of the service",
}
# (code suffix, Disaggregation Level, share of the denominator)
DISAGGREGATIONS = [
    [("6574", "65-74", 0.30), ("7584", "75-84", 0.42), ("85OV", "85 and over", 0.28)],
    [("F", "Female", 0.60), ("M", "Male", 0.40)],
]
HEADER = ["Geographical Code", "Geographical Description", "Geographical Level", "ONS Area Code", "ASCOF Measure Code",
          "Disaggregation Level", "Measure Type", "Measure Value", "Measure Group", "Measure Group Description"]


def header(fy: str) -> list[str]:
    """The column names of the year's file."""
    names = [("ONS Code" if fy >= "2019-20" else name) if name == "ONS Area Code" else name for name in HEADER]
    return [name.replace(" ", "") for name in names] if fy == "2014-15" else names


def _marker(fy: str) -> str:
    return "[c]" if fy >= "2018-19" else "*"


def _count(value: int, fy: str) -> str:
    return f"{int(value):,}" if fy <= "2015-16" else str(int(value))


def _region_of(council_code: str) -> str:
    regions = dict(zip(geography.councils()["council_code"], geography.councils()["region_name"]))
    if council_code in regions:
        return regions[council_code]
    predecessors = geography.code_changes().query("new_code == @council_code")["old_code"]
    return regions[predecessors.iloc[0]]


def _split(numerator: int, denominator: int, shares: list[float], rng: np.random.Generator) -> list[tuple[int, int]]:
    """(numerator, denominator) per part: denominators multinomial, numerators drawn without replacement."""
    denominators = rng.multinomial(int(denominator), shares)
    numerators = rng.multivariate_hypergeometric(denominators, int(numerator))
    return list(zip(numerators, denominators))


def _measure_rows(geo: tuple[str, str, str, str], group: str, code: str, disaggregation: str,
                  numerator: int, denominator: int, fy: str, withhold_numerator: bool = False) -> list[list[str]]:
    withhold_denominator = group == "2B2" and 1 <= denominator <= 5
    outcome = "" if denominator == 0 else f"{numerator / denominator * 100:.1f}"
    values = {
        "Numerator": _marker(fy) if withhold_numerator else _count(numerator, fy),
        "Denominator": _marker(fy) if withhold_denominator else _count(denominator, fy),
        "Outcome": _marker(fy) if withhold_numerator or withhold_denominator else outcome,
    }
    return [[*geo, code, disaggregation, kind, value, group, DESCRIPTIONS[group]] for kind, value in values.items()]


def _council_rows(row, fy: str, withhold: bool, rng: np.random.Generator) -> list[list[str]]:
    geo = (legacy_code(row.council_code), geography.name_of(row.council_code), "Council", row.council_code)
    group = row.measure_group
    rows = _measure_rows(geo, group, group, "Total", row.numerator, row.denominator, fy, withhold and group == "2B1")
    for parts in DISAGGREGATIONS:
        counts = _split(row.numerator, row.denominator, [share for *_, share in parts], rng)
        for (suffix, label, _), (numerator, denominator) in zip(parts, counts):
            rows += _measure_rows(geo, group, f"{group}{suffix}", label, numerator, denominator, fy)
    return rows


def _total_rows(frame: pd.DataFrame, fy: str) -> list[list[str]]:
    """Region and England rows: sums of their councils' headline counts."""
    rows = []
    frame = frame.assign(region=frame["council_code"].map(_region_of))
    for (region, group), part in frame.groupby(["region", "measure_group"]):
        geo = (REGION_CODES[region], region, "Region", REGION_CODES[region])
        rows += _measure_rows(geo, group, group, "Total", part["numerator"].sum(), part["denominator"].sum(), fy)
    for group, part in frame.groupby("measure_group"):
        geo = (ENGLAND[0], ENGLAND[1], "England", ENGLAND[0])
        rows += _measure_rows(geo, group, group, "Total", part["numerator"].sum(), part["denominator"].sum(), fy)
    return rows


def write_ascof(path: str | Path, fy: str, frame: pd.DataFrame, rng: np.random.Generator | None = None,
                suppressed: int = 2) -> Path:
    """Write ``frame`` (World.ascof_year(fy)) as the year's ASCOF measures CSV; returns the path."""
    rng = rng if rng is not None else np.random.default_rng(int(fy[:4]))
    frame = frame.sort_values(["measure_group", "council_code"]).reset_index(drop=True)
    withheld = set(rng.choice(sorted(frame["council_code"].unique()), size=suppressed, replace=False))
    rows = [r for row in frame.itertuples() for r in _council_rows(row, fy, row.council_code in withheld, rng)]
    rows += _total_rows(frame, fy)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pd.DataFrame(rows, columns=header(fy)).to_csv(index=False, lineterminator="\r\n").encode("cp1252"))
    return path
