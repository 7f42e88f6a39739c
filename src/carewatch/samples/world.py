"""The world the embedded sample publications describe: England's councils, month by month.

Deterministic (``config/samples.yaml``: seed and parameters). Populations start from the real
ONS mid-2016 single-year estimates of the 152 councils; every other figure is synthetic but
plausible, with persistent differences between areas:

- delayed transfers: each council has a February 2017 baseline rate (delayed days per day per
  100,000 aged 18+, log-normal around 13, 2 to 45), rising to it from 2010, falling after it
  by an area-specific amount, with a winter peak and noise; split into agencies, reasons and
  care types by area-specific shares, in whole days that add up;
- hospital activity and ASCOF reablement: per-area rates drawn once, with monthly noise.

From April 2019 Bournemouth, Poole and Dorset county are replaced by Bournemouth,
Christchurch and Poole (E06000058) and the new Dorset (E06000059); Christchurch's share of
Dorset county is taken as 11.5% of its population.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from carewatch import geography, paths

REASONS = ["A", "B", "C", "Di", "Dii", "E", "F", "G", "H", "I", "O"]
REASON_WEIGHTS = [0.13, 0.04, 0.18, 0.11, 0.13, 0.19, 0.03, 0.12, 0.01, 0.04, 0.02]
BCP, NEW_DORSET = "E06000058", "E06000059"
BOURNEMOUTH, POOLE, DORSET = "E06000028", "E06000029", "E10000009"
CHRISTCHURCH_SHARE = 0.115


def _month_index(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


@dataclass
class World:
    config: dict

    @classmethod
    def from_config(cls, seed: int | None = None) -> "World":
        config = yaml.safe_load((paths.config_dir() / "samples.yaml").read_text())
        if seed is not None:
            config["seed"] = seed
        return cls(config)

    # --- randomness: one independent, reproducible stream per purpose ----------------------
    def rng(self, *key) -> np.random.Generator:
        digest = hashlib.sha256(repr((self.config["seed"], *key)).encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    # --- geography --------------------------------------------------------------------------
    def councils(self, period: dt.date) -> list[str]:
        """Council codes reporting in a month (2017 councils, BCP and new Dorset from May 2019)."""
        codes = list(geography.councils()["council_code"])
        codes.remove("E06000053")  # the Isles of Scilly has no DTOC row (folded into Cornwall)
        if period >= dt.date(2019, 5, 1):
            codes = [c for c in codes if c not in (BOURNEMOUTH, POOLE, DORSET)] + [BCP, NEW_DORSET]
        return sorted(codes)

    # --- population ---------------------------------------------------------------------------
    @cached_property
    def _base_population(self) -> pd.DataFrame:
        text = resources.files("carewatch.samples").joinpath("population_mid2016.csv").read_text()
        from io import StringIO

        frame = pd.read_csv(StringIO(text)).set_index("council_code")
        frame.columns = [int(c.split("_")[1]) for c in frame.columns]
        base = frame.copy()
        base.loc[BCP] = frame.loc[BOURNEMOUTH] + frame.loc[POOLE] + CHRISTCHURCH_SHARE * frame.loc[DORSET]
        base.loc[NEW_DORSET] = (1 - CHRISTCHURCH_SHARE) * frame.loc[DORSET]
        return base

    def population(self, mid_year: int, codes_after_merge: bool | None = None) -> pd.DataFrame:
        """Single-year populations (council_code, age 0-90, population) for a mid-year.

        From mid-2018 ONS publishes on the following year's codes (BCP and new Dorset).
        """
        cfg = self.config["population"]
        years = mid_year - int(cfg["base_mid_year"])
        ages = np.arange(91)
        growth = np.where(ages >= 65, 1 + cfg["growth_65plus_per_year"], 1 + cfg["growth_per_year"]) ** years
        frame = (self._base_population * growth).round().astype("int64")
        after = mid_year >= 2018 if codes_after_merge is None else codes_after_merge
        drop = [BOURNEMOUTH, POOLE, DORSET] if after else [BCP, NEW_DORSET]
        frame = frame.drop(index=drop)
        tidy = frame.stack().rename("population").reset_index()
        tidy.columns = ["council_code", "age", "population"]
        return tidy

    def _aged(self, mid_year: int, min_age: int) -> pd.Series:
        key = (mid_year, min_age)
        cache = self.__dict__.setdefault("_aged_cache", {})
        if key not in cache:
            both = pd.concat([self.population(mid_year, False), self.population(mid_year, True)]).drop_duplicates(["council_code", "age"])
            cache[key] = both[both["age"] >= min_age].groupby("council_code")["population"].sum()
        return cache[key]

    def adults(self, mid_year: int) -> pd.Series:
        """Population aged 18+ per council (predecessor and successor codes both present)."""
        return self._aged(mid_year, 18)

    def older(self, mid_year: int) -> pd.Series:
        """Population aged 65+ per council (predecessor and successor codes both present)."""
        return self._aged(mid_year, 65)

    # --- persistent area profile ----------------------------------------------------------------
    @cached_property
    def profile(self) -> pd.DataFrame:
        codes = sorted(set(geography.councils()["council_code"]) | {BCP, NEW_DORSET})
        d, h, a = self.config["dtoc"], self.config["hospital"], self.config["ascof"]
        rng = self.rng("profile")
        n = len(codes)
        out = pd.DataFrame(index=codes)
        level = np.exp(rng.normal(np.log(d["baseline_median"]), d["baseline_log_sd"], n))
        out["dtoc_level"] = np.clip(level, *d["baseline_range"])
        out["improvement"] = rng.uniform(*d["improvement_range"], n)
        shares = rng.dirichlet(np.array(d["agency_shares"]) * 40, n)
        out["nhs_share"], out["social_care_share"], out["both_share"] = shares.T
        out["acute_share"] = np.clip(rng.normal(d["acute_share"], 0.08, n), 0.3, 0.95)
        out["admission_rate"] = rng.uniform(*h["emergency_admissions_per_100k_65plus_year"], n)
        out["los_p90"] = rng.uniform(*h["los_p90_days"], n)
        out["weekend_share"] = rng.uniform(*h["weekend_share"], n)
        out["still_at_home"] = rng.uniform(*a["still_at_home_2b1"], n)
        out["reablement_offered"] = rng.uniform(*a["reablement_offered_2b2"], n)
        # the merged areas take their predecessors' character
        for col in ("dtoc_level", "improvement", "admission_rate", "los_p90", "weekend_share", "still_at_home", "reablement_offered"):
            out.loc[BCP, col] = out.loc[[BOURNEMOUTH, POOLE], col].mean()
            out.loc[NEW_DORSET, col] = out.loc[DORSET, col]
        return out

    # --- delayed transfers ------------------------------------------------------------------------
    def dtoc_rate(self, code: str, period: dt.date) -> float:
        d = self.config["dtoc"]
        p = self.profile.loc[code]
        t = _month_index(period)
        base_t, start_t = _month_index(dt.date(2017, 2, 1)), _month_index(dt.date(2010, 8, 1))
        if t <= base_t:
            trend = d["level_2010"] + (1 - d["level_2010"]) * (t - start_t) / (base_t - start_t)
        else:
            fall = min(1.0, (t - base_t) / 16) * d["fall_by_2018"] * p["improvement"]
            trend = max(0.25, 1 - fall)
        winter = 1 + d["winter_uplift"] if period.month in (12, 1, 2) else 1.0
        noise = float(np.exp(self.rng("dtoc-noise", code, t).normal(0, d["noise_log_sd"])))
        return p["dtoc_level"] * trend * winter * noise

    def dtoc_month(self, period: dt.date) -> pd.DataFrame:
        """One month in the dtoc_la tidy long form: council and special rows, delayed days."""
        adults = self.adults(period.year if period.month >= 7 else period.year - 1)
        days = (pd.Timestamp(period) + pd.offsets.MonthEnd(0)).day
        rows = []
        reason_list = REASONS if period >= dt.date(2017, 4, 1) else REASONS[:-1]
        reason_weights = np.array(REASON_WEIGHTS[: len(reason_list)])
        for code in self.councils(period):
            if period.year == 2019 and period.month == 4 and code == POOLE:
                rows.extend(_rows("council", code, None))  # abolished in the month: a row of "-"
                continue
            rng = self.rng("dtoc-split", code, _month_index(period))
            total = int(round(self.dtoc_rate(code, period) * adults[code] * days / 1e5))
            rows.extend(_rows("council", code, self._split(total, self.profile.loc[code], reason_list, reason_weights, rng)))
        for code, mean in self.config["dtoc"]["special_rows"].items():
            rng = self.rng("dtoc-special", code, _month_index(period))
            total = int(rng.poisson(mean))
            rows.extend(_rows("special", code, self._split(total, self.profile.iloc[0], reason_list, reason_weights, rng)))
        frame = pd.DataFrame(rows, columns=["row_type", "code", "breakdown", "category", "value"])
        frame.insert(0, "period", period)
        return frame

    @staticmethod
    def _split(total, profile, reasons, weights, rng) -> dict:
        agency = rng.multinomial(total, [profile["nhs_share"], profile["social_care_share"], profile["both_share"]])
        weights = rng.dirichlet(weights * 60)
        reason = rng.multinomial(total, weights)
        acute = int(rng.binomial(total, profile["acute_share"]))
        out = {("agency", "nhs"): agency[0], ("agency", "social_care"): agency[1], ("agency", "both"): agency[2], ("agency", "total"): total}
        out.update({("reason", r): v for r, v in zip(reasons, reason)})
        out[("reason", "total")] = total
        out.update({("care_type", "acute"): acute, ("care_type", "non_acute"): total - acute, ("care_type", "total"): total})
        return out

    # --- hospital activity ---------------------------------------------------------------------------
    def hospital_month(self, period: dt.date) -> pd.DataFrame:
        """Per HWB area: emergency admissions, discharges, p90 length of stay, weekend discharges (65+)."""
        older = self.older(period.year if period.month >= 7 else period.year - 1)
        h = self.config["hospital"]
        rows = []
        # hospital data follow the boundaries in force (BCP and the new Dorset from 1 April 2019)
        hwbs = sorted({c for h in geography.hwb_areas()["hwb_code"] for c in geography.current_code(h, period)})
        for hwb in hwbs:
            members = [hwb] + (["E09000001"] if hwb == "E09000012" else ["E06000053"] if hwb == "E06000052" else [])
            pop65 = sum(older.get(m, 0) for m in members)
            p = self.profile.loc[hwb]
            rng = self.rng("hospital", hwb, _month_index(period))
            winter = 1.1 if period.month in (12, 1, 2) else 1.0
            admissions = int(rng.poisson(p["admission_rate"] * pop65 / 1e5 / 12 * winter))
            discharges = int(rng.binomial(admissions, h["discharge_share"]))
            weekend = int(rng.binomial(discharges, p["weekend_share"]))
            los = float(max(5, round(rng.normal(p["los_p90"], 1.5))))
            rows.append((hwb, geography.name_of(hwb), admissions, discharges, los, weekend))
        return pd.DataFrame(rows, columns=["area_code", "area_name", "emergency_admissions_65plus", "discharges_65plus", "los_p90_days", "weekend_discharges_65plus"])

    # --- ASCOF ---------------------------------------------------------------------------------
    def ascof_year(self, fy: str) -> pd.DataFrame:
        """Per council: 2B1 and 2B2 numerators and denominators for a financial year."""
        start = int(fy[:4])
        older = self.older(start)
        codes = self.councils(dt.date(start, 4, 1)) + ["E06000053"]  # ASCOF reports the Isles of Scilly
        rows = []
        for code in sorted(codes):
            p = self.profile.loc[code]
            rng = self.rng("ascof", code, start)
            discharges = int(max(20, rng.poisson(older.get(code, 2000) * 0.12)))
            offered = int(rng.binomial(discharges, p["reablement_offered"]))
            reablement_cohort = max(offered, 1)
            at_home = int(rng.binomial(reablement_cohort, p["still_at_home"]))
            rows.append((code, "2B1", at_home, reablement_cohort))
            rows.append((code, "2B2", offered, discharges))
        return pd.DataFrame(rows, columns=["council_code", "measure_group", "numerator", "denominator"])


def _rows(row_type: str, code: str, values: dict | None) -> list[tuple]:
    keys = [("agency", c) for c in ("nhs", "social_care", "both", "total")] + [("reason", r) for r in REASONS + ["total"]] + [("care_type", c) for c in ("acute", "non_acute", "total")]
    if values is None:
        return [(row_type, code, b, c, None) for b, c in keys]
    return [(row_type, code, b, c, int(values[(b, c)])) for b, c in keys if (b, c) in values]
