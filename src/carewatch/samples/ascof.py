"""Write an NHS Digital ASCOF measures CSV in its year's format (Windows-1252).

Header drift: 2014-15 has no spaces ("GeographicalCode", "ONSAreaCode"); later years have
spaces, "ONS Area Code" until 2017-18 and "ONS Code" from 2018-19. Each measure comes as
Numerator, Denominator and Outcome rows; 2B1 also by age band and sex; councils, regions and
England; a few council numerators suppressed ("[c]").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from carewatch import geography

DESCRIPTIONS = {
    "2B1": "Proportion of older people (65 and over) who were still at home 91 days after discharge from hospital into reablement/rehabilitation services – effectiveness",
    "2B2": "Proportion of older people (65 and over) who received reablement/rehabilitation services after discharge from hospital – offered",
}


def _columns(fy: str) -> list[str]:
    names = ["Geographical Code", "Geographical Description", "Geographical Level", "ONS Area Code", "ASCOF Measure Code",
             "Disaggregation Level", "Measure Type", "Measure Value", "Measure Group", "Measure Group Description"]
    if fy >= "2018-19":
        names[3] = "ONS Code"
    if fy == "2014-15":
        names = [n.replace(" ", "") for n in names]
    return names


def write_ascof(path: Path, fy: str, frame: pd.DataFrame, rng: np.random.Generator, suppressed: int = 2) -> Path:
    """``frame``: World.ascof_year(fy) (council_code, measure_group, numerator, denominator)."""
    councils = geography.councils().set_index("council_code")
    legacy = {"E06000058": "738", "E06000059": "809"}
    hidden = set(rng.choice(sorted(frame["council_code"].unique()), size=suppressed, replace=False))
    rows = []

    def add(code, name, level, ons, group, measure_code, disagg, num, den, hide=False):
        outcome = "" if den == 0 else f"{num / den * 100:.1f}"
        for kind, value in (("Numerator", "[c]" if hide else f"{int(num):,}"), ("Denominator", f"{int(den):,}"), ("Outcome", "[c]" if hide else outcome)):
            rows.append([code, name, level, ons, measure_code, disagg, kind, value, group, DESCRIPTIONS[group]])

    for r in frame.itertuples():
        code = legacy.get(r.council_code) or councils["legacy_code"].get(r.council_code) or r.council_code
        name = geography.name_of(r.council_code)
        hide = r.council_code in hidden and r.measure_group == "2B1"
        add(code, name, "Council", r.council_code, r.measure_group, r.measure_group, "Total", r.numerator, r.denominator, hide)
        if r.measure_group == "2B1":
            split = rng.multinomial(int(r.denominator), [0.3, 0.45, 0.25])
            for band, den in zip(("6574", "7584", "85OV"), split):
                add(code, name, "Council", r.council_code, "2B1", f"2B1{band}", f"Age {band[:2]}-{band[2:]}".replace("-OV", " and over"),
                    min(den, int(round(r.numerator * den / max(r.denominator, 1)))), den)
    by_region = frame.assign(region=frame["council_code"].map(lambda c: councils["region_name"].get(c, "South West")))
    for (region, group), part in by_region.groupby(["region", "measure_group"]):
        add(region[:3].upper(), region, "Region", "", group, group, "Total", part["numerator"].sum(), part["denominator"].sum())
    for group, part in frame.groupby("measure_group"):
        add("ENG", "England", "England", "E92000001", group, group, "Total", part["numerator"].sum(), part["denominator"].sum())
    out = pd.DataFrame(rows, columns=_columns(fy))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.to_csv(index=False).encode("cp1252"))
    return path
