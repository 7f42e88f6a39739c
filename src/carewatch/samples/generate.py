"""Write every embedded sample publication (``carewatch samples`` / ``make samples``).

Deterministic: the same config gives the same files. The committed copy in ``data/samples/``
covers what the default run needs (DTOC from April 2016); ``--full`` writes the whole DTOC
history from August 2010. File names: ``<source>/<period>.<ext>``, as the embedded catalogue
expects.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from carewatch import paths, sources
from carewatch.samples import ascof, dtoc_la, dtoc_national, dtoc_provider, hes, ons_mye
from carewatch.samples.world import World


def _month(period: str) -> dt.date:
    return dt.date(int(period[:4]), int(period[5:7]), 1)


def revise(values: pd.DataFrame, world: World, period: dt.date) -> pd.DataFrame:
    """A later revision: a few councils' figures change by a few days, consistently."""
    rng = world.rng("revision", period.isoformat())
    out = values.copy()
    councils = sorted(out.loc[(out["row_type"] == "council") & out["value"].notna(), "code"].unique())
    for code in rng.choice(councils, size=5, replace=False):
        delta = int(rng.integers(-20, 21))
        rows = out["code"] == code
        current = out.loc[rows & (out["breakdown"] == "agency") & (out["category"] == "nhs"), "value"].iloc[0]
        delta = max(delta, -int(current))
        for breakdown, category in (("agency", "nhs"), ("agency", "total"), ("reason", "C"), ("reason", "total"), ("care_type", "acute"), ("care_type", "total")):
            mask = rows & (out["breakdown"] == breakdown) & (out["category"] == category)
            out.loc[mask, "value"] = out.loc[mask, "value"] + delta
        reason_c = out.loc[rows & (out["breakdown"] == "reason") & (out["category"] == "C"), "value"].iloc[0]
        acute = out.loc[rows & (out["breakdown"] == "care_type") & (out["category"] == "acute"), "value"].iloc[0]
        if reason_c < 0 or acute < 0:  # keep every figure non-negative: undo this council
            out.loc[rows] = values.loc[rows]
    return out


def write_all(out_dir: str | Path | None = None, full: bool = False) -> list[Path]:
    root = Path(out_dir or paths.samples_dir())
    world = World.from_config()
    run_date = sources.embedded_samples_until()
    written: list[Path] = []

    def due(source: str, period: str) -> bool:
        return sources.due_date(source, period) <= run_date

    revised = set(world.config["dtoc"]["revised_months"])
    first_dtoc = "2010-08" if full else sources.get("dtoc_la").available_from("embedded")
    for period in sources.periods("dtoc_la", first_dtoc, "2020-02"):
        month = _month(period)
        values = world.dtoc_month(month)
        published = sources.due_date("dtoc_la", period)
        status, revised_on = "Published", None
        if period in revised:
            values, status = revise(values, world, month), "Revised"
            revised_on = published + dt.timedelta(days=182)
        written.append(dtoc_la.write_month(root / "dtoc_la" / f"{period}.xls", month, values, status=status,
                                           published=published, revised=revised_on, rng=world.rng("xls", period)))
        if full or period >= sources.get("dtoc_provider").available_from("embedded"):
            written.append(dtoc_provider.write_month(root / "dtoc_provider" / f"{period}.csv", month, values, world.rng("provider", period)))
    first_national = "2010-08" if full else sources.get("dtoc_national").available_from("embedded")
    series = dtoc_national.national_series(world, dt.date(2020, 2, 1))
    for period in sources.periods("dtoc_national", first_national, "2020-02"):
        written.append(dtoc_national.write_timeseries(root / "dtoc_national" / f"{period}.xls", _month(period), series,
                                                      published=sources.due_date("dtoc_national", period)))
    for period in sources.periods("hes_aggregate", sources.get("hes_aggregate").available_from("embedded"), "2020-02"):
        written.append(hes.write_aggregate(root / "hes_aggregate" / f"{period}.csv", _month(period), world.hospital_month(_month(period))))
    for period in sources.periods("ascof", "2014-15", "2019-20"):
        if due("ascof", period):
            frame = world.ascof_year(period)
            written.append(ascof.write_ascof(root / "ascof" / f"{period}.csv", period, frame, world.rng("ascof-file", period),
                                             int(world.config["ascof"]["suppressed_per_year"])))
    for period in sources.periods("ons_mye", "2015", "2019"):
        if due("ons_mye", period):
            written.append(ons_mye.write_mye(root / "ons_mye" / f"{period}.xls", int(period), world.population(int(period))))
    return written
