"""The six dashboard metrics computed straight from the sample world, in plain pandas: the truth
a warehouse built by `carewatch run` on the embedded samples is checked against.

Independent of the product: it reads ``carewatch.samples.world.World`` (the figures the sample
publications are written from), the geography CSVs under ``config/geography/`` (read here with
pandas) and ``config/sources.yaml`` (the run date and when a mid-year estimate is published),
and nothing of the parsers, the warehouse SQL (``include/sql/``) or the analysis. Only the
sample *writers* are followed where a publication deliberately differs from the World (a
revision, a suppression), so that the truth is what was published.

Rules, and where each is documented:

- Geography (docs/data-contract.md "Reference geography"; the domain brief (domain.md)
  "Geography"): 150 HWB areas; a council belongs to the HWB of ``hwb_code`` in
  ``config/geography/councils.csv``: City of London (E09000001) to Hackney (E09000012), the
  Isles of Scilly (E06000053) to Cornwall (E06000052), every other council is its own area.
  A HWB area's counts and populations are the sums over its councils. The months compared
  (April 2016 - March 2018) precede the 2019 Dorset changes, so no successor codes occur.
- Populations (config/metrics.yaml ``population.mid_year_rule``; docs/data-contract.md
  ``int_population_hwb``): a month uses the mid-year estimate of the calendar year in which
  its financial year starts (April 2017 - March 2018 -> mid-2017), else the latest earlier
  estimate; an estimate counts only once published by the run date (config/sources.yaml:
  ``embedded.run_date``, and ``ons_mye.due``: ``months_after_start`` after July of the
  mid-year, on ``day``). So in `make run` (run date 2018-05-15, mid-2017 due 2018-07-01) every
  month from April 2016 uses mid-2016. Ages 18+ and 65+ sum the single years 18..90 and
  65..90 (90 = 90 and over) of ``World.population(mid_year)``, the figures the ONS sample
  workbook is written from, in whole persons.
- 1 ``emergency_admissions_65plus_per_100k`` (config/metrics.yaml; docs/data-contract.md
  ``fct_metric_values``): numerator = emergency admissions 65+ (``World.hospital_month``),
  denominator = population 65+, multiplier 100,000. A month: the month's admissions over its
  population (not annualised). A rolling 12 months or a financial year
  (``window_denominator: mean``): the 12 months' admissions over the mean of the 12 monthly
  populations.
- 2 ``los_p90_days_65plus``: no numerator (null); denominator = discharges 65+. A month: the
  area's published 90th percentile (``World.hospital_month`` ``los_p90_days``). A rolling or
  financial year, and England in every period: the discharge-weighted mean of the monthly
  area percentiles (config/metrics.yaml definition: "a documented approximation, not a
  percentile"), denominator = the discharges summed.
- 3 ``delayed_days_per_day_per_100k_18plus``: numerator = total delayed days (NHS + social
  care + both: the ``agency``/``total`` figure of ``World.dtoc_month``) summed over the area's
  councils; denominator = population 18+ x days in the period (summed month by month over a
  window: 18+ x days of each month); multiplier 100,000. The special rows (resident in Wales,
  Scotland, outside GB) belong to no area and are not in England's figure (England = sum of
  areas: "the DTOC rate counts England's residents only"). September 2017 was republished
  "Revised" (config/samples.yaml ``dtoc.revised_months``) and the embedded samples hold only
  that revision: its figures are ``carewatch.samples.generate.revise`` applied to the World's
  month, the sample writer's own revision (a few councils moved by up to 20 days).
- 4 ``reablement_still_at_home_91d_65plus`` (ASCOF 2B(1)) and 5
  ``reablement_offered_65plus`` (ASCOF 2B(2)), financial year only: numerator and denominator
  from ``World.ascof_year`` (headline counts per council, Isles of Scilly included), summed
  over the HWB's councils; multiplier 1. Suppression as the sample writer does it
  (``carewatch.samples.ascof``): ``ascof.suppressed_per_year`` councils, drawn by the
  writer's generator (``World.rng("ascof-file", fy)``, its first draw), have their 2B(1)
  numerator withheld, and a 2B(2) denominator of 1 to 5 is withheld; "a suppression marker
  becomes a null value, never 0" (docs/data-contract.md conventions), so a HWB with a
  withheld member has no figure for that count. England is the publication's own England row
  (docs/data-contract.md ``fct_metric_values.area_code``), which the writer sums over every
  council, suppressed ones included.
- 6 ``weekend_discharge_share``: numerator = weekend discharges 65+, denominator = discharges
  65+ (``World.hospital_month``); multiplier 1.
- Periods (docs/data-contract.md ``fct_metric_values``): ``month`` (``period_start`` the
  month's first day); ``rolling_12m`` (the 12 months ending in the month ``period_start``
  names); ``financial_year`` (April to March, ``period_start`` 1 April). ``value =
  numerator / denominator * multiplier``.
- England (``E92000001``): the sum of the HWB areas that have both the count and its
  denominator (every area has both in the periods compared, apart from ASCOF's own row above).

Rounding: the hospital aggregate's sample writer (``carewatch.samples.hes``) writes the World's
counts and its whole-day percentile unrounded, the DTOC and ONS writers whole numbers, and the
ASCOF writer whole-number counts (its rounded one-decimal "Outcome" is not what the metric
uses). So every count and population here is exact; values, and the weighted means of the p90,
are floating-point quotients, equal up to floating-point rounding only.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from carewatch.samples.world import World

ROOT = Path(__file__).resolve().parents[1]
ENGLAND = "E92000001"
ADMISSIONS = "emergency_admissions_65plus_per_100k"
LOS = "los_p90_days_65plus"
DTOC = "delayed_days_per_day_per_100k_18plus"
STILL_AT_HOME = "reablement_still_at_home_91d_65plus"
OFFERED = "reablement_offered_65plus"
WEEKEND = "weekend_discharge_share"
COLUMNS = ["area_code", "period_type", "period_start", "metric_id", "numerator", "denominator", "value"]


def _months(last: dt.date, n: int = 12) -> list[dt.date]:
    index = last.year * 12 + last.month - 1
    return [dt.date((i // 12), i % 12 + 1, 1) for i in range(index - n + 1, index + 1)]


def _days(month: dt.date) -> int:
    return (pd.Timestamp(month) + pd.offsets.MonthEnd(0)).day


class WorldTruth:
    """Per HWB area and England, for a run on the embedded samples with ``config_root``'s config."""

    def __init__(self, config_root: Path = ROOT):
        self.root = Path(config_root)
        self.world = World.from_config()
        councils = pd.read_csv(self.root / "config" / "geography" / "councils.csv", dtype=str)
        self.hwb_of = dict(zip(councils["council_code"], councils["hwb_code"]))
        self.hwbs = sorted(pd.read_csv(self.root / "config" / "geography" / "hwb_areas.csv", dtype=str)["hwb_code"])
        catalogue = yaml.safe_load((self.root / "config" / "sources.yaml").read_text())
        self.run_date = dt.date.fromisoformat(str(catalogue["embedded"]["run_date"]))
        self.mye_due = catalogue["sources"]["ons_mye"]["due"]
        self.samples = yaml.safe_load((self.root / "config" / "samples.yaml").read_text())

    # --- populations ------------------------------------------------------------------------
    def _published(self, mid_year: int) -> bool:
        months = int(self.mye_due["months_after_start"])
        index = mid_year * 12 + 6 + months  # July of the mid-year, plus the due months
        return dt.date(index // 12, index % 12 + 1, int(self.mye_due["day"])) <= self.run_date

    def mid_year(self, month: dt.date) -> int:
        wanted = month.year if month.month >= 4 else month.year - 1
        for year in range(wanted, 2014, -1):
            if self._published(year):
                return year
        raise AssertionError(f"no mid-year estimate published by {self.run_date} for {month}")

    @lru_cache(maxsize=None)
    def population(self, mid_year: int, min_age: int) -> pd.Series:
        frame = self.world.population(mid_year)
        frame = frame[frame["age"] >= min_age]
        by_council = frame.groupby("council_code")["population"].sum()
        return by_council.groupby(by_council.index.map(self.hwb_of)).sum().reindex(self.hwbs)

    # --- monthly figures per HWB --------------------------------------------------------------
    @lru_cache(maxsize=None)
    def hospital(self, month: dt.date) -> pd.DataFrame:
        frame = self.world.hospital_month(month).set_index("area_code")
        assert sorted(frame.index) == self.hwbs
        return frame.reindex(self.hwbs)

    @lru_cache(maxsize=None)
    def delayed_days(self, month: dt.date) -> pd.Series:
        values = self.world.dtoc_month(month)
        if f"{month:%Y-%m}" in set(self.samples["dtoc"]["revised_months"]):
            from carewatch.samples.generate import revise

            values = revise(values, self.world, month)
        total = values[(values["row_type"] == "council") & (values["breakdown"] == "agency") & (values["category"] == "total")]
        by_council = total.set_index("code")["value"].astype("int64")
        return by_council.groupby(by_council.index.map(self.hwb_of)).sum().reindex(self.hwbs)

    # --- metrics --------------------------------------------------------------------------------
    def monthly_metrics(self, months: list[dt.date], period_type: str, period_start: dt.date) -> pd.DataFrame:
        """The four monthly-sourced metrics over ``months`` (one month, or the 12 of a year)."""
        hospital = [self.hospital(m) for m in months]
        pop65 = pd.concat([self.population(self.mid_year(m), 65) for m in months], axis=1)
        pop18_days = sum(self.population(self.mid_year(m), 18) * _days(m) for m in months)
        admissions = sum(h["emergency_admissions_65plus"] for h in hospital)
        discharges = sum(h["discharges_65plus"] for h in hospital)
        weekend = sum(h["weekend_discharges_65plus"] for h in hospital)
        los_weighted = sum(h["los_p90_days"] * h["discharges_65plus"] for h in hospital)
        days = sum(self.delayed_days(m) for m in months)
        # a month: its own population; a window: the mean of the 12 monthly populations
        pop65_mean = pop65.iloc[:, 0] if len(months) == 1 else pop65.mean(axis=1)
        if len(months) == 1:
            los_value = hospital[0]["los_p90_days"]
        else:
            los_value = los_weighted / discharges
        areas = {
            ADMISSIONS: (admissions, pop65_mean, 100000.0),
            WEEKEND: (weekend, discharges, 1.0),
            DTOC: (days, pop18_days, 100000.0),
        }
        rows = []
        for metric, (num, den, mult) in areas.items():
            for area in self.hwbs:
                rows.append((area, metric, float(num[area]), float(den[area]), float(num[area]) / float(den[area]) * mult))
            rows.append((ENGLAND, metric, float(num.sum()), float(den.sum()), float(num.sum()) / float(den.sum()) * mult))
        for area in self.hwbs:
            rows.append((area, LOS, None, float(discharges[area]), float(los_value[area])))
        # England: the discharge-weighted mean of every area's monthly percentiles
        rows.append((ENGLAND, LOS, None, float(discharges.sum()), float(los_weighted.sum()) / float(discharges.sum())))
        out = pd.DataFrame(rows, columns=["area_code", "metric_id", "numerator", "denominator", "value"])
        out.insert(1, "period_type", period_type)
        out.insert(2, "period_start", period_start)
        return out[COLUMNS]

    def month(self, month: dt.date) -> pd.DataFrame:
        return self.monthly_metrics([month], "month", month)

    def rolling_12m(self, last: dt.date) -> pd.DataFrame:
        return self.monthly_metrics(_months(last), "rolling_12m", last)

    def financial_year(self, fy: str) -> pd.DataFrame:
        start = dt.date(int(fy[:4]), 4, 1)
        months = _months(dt.date(start.year + 1, 3, 1))
        return pd.concat([self.monthly_metrics(months, "financial_year", start), self.ascof(fy)], ignore_index=True)

    def _ascof_withheld(self, fy: str, codes: list[str]) -> set[str]:
        # carewatch.samples.ascof.write_ascof: the first draw of the file's generator
        rng = self.world.rng("ascof-file", fy)
        size = int(self.samples["ascof"]["suppressed_per_year"])
        return set(rng.choice(sorted(codes), size=size, replace=False))

    def ascof(self, fy: str) -> pd.DataFrame:
        frame = self.world.ascof_year(fy)
        withheld = self._ascof_withheld(fy, list(frame["council_code"].unique()))
        rows = []
        for group, metric in (("2B1", STILL_AT_HOME), ("2B2", OFFERED)):
            part = frame[frame["measure_group"] == group].set_index("council_code")
            numerator = part["numerator"].astype(float)
            denominator = part["denominator"].astype(float)
            # the publication's England row: every council, suppressed ones included
            england = (numerator.sum(), denominator.sum())
            if group == "2B1":
                numerator[numerator.index.isin(withheld)] = np.nan
            else:
                denominator[(denominator >= 1) & (denominator <= 5)] = np.nan
            hwb = part.index.map(self.hwb_of)
            num = numerator.groupby(hwb).sum(min_count=1).where(numerator.isna().groupby(hwb).sum() == 0)
            den = denominator.groupby(hwb).sum(min_count=1).where(denominator.isna().groupby(hwb).sum() == 0)
            for area in self.hwbs:
                n, d = num.get(area, np.nan), den.get(area, np.nan)
                value = n / d if pd.notna(n) and pd.notna(d) and d else np.nan
                rows.append((area, metric, n, d, value))
            rows.append((ENGLAND, metric, england[0], england[1], england[0] / england[1]))
        out = pd.DataFrame(rows, columns=["area_code", "metric_id", "numerator", "denominator", "value"])
        out.insert(1, "period_type", "financial_year")
        out.insert(2, "period_start", dt.date(int(fy[:4]), 4, 1))
        return out[COLUMNS]
