"""DTOC target tracking: each area's delayed-transfer expectation, month by month.

A *target set* (``config/targets/<name>.yaml``) holds the metric it tracks (``metric``, one
with an agency breakdown in ``config/metrics.yaml``), the baseline month, the national
ambition, the rule, how the reduction is shared between the NHS and social care, its
validity period and the tests applied each month. The default is the July 2017
expectations: February 2017 baseline; an area at or above 9.4 delayed days per day per
100,000 aged 18+ must come down to 9.4, an area below must hold its baseline.

Components: ``nhs`` and ``social_care`` rates include their share of delays attributed to
"both" (``split.both_to_nhs``, default one half each), so the two components always add up
to the total, for actuals and targets alike.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from carewatch import paths
from carewatch.errors import ConfigError
from carewatch.methodology import config_check

ENGLAND = "E92000001"


def _month(value) -> dt.date:
    text = str(value)
    return dt.date(int(text[:4]), int(text[5:7]), 1)


@dataclass(frozen=True)
class TargetSet:
    name: str
    version: int
    metric: str
    valid_from: dt.date
    valid_to: dt.date
    baseline_period: dt.date
    national_ambition: float
    rule: str
    both_to_nhs: float
    tolerance: float
    tests: list[dict]
    source: str = ""  # the file, as messages name it (config/targets/<name>.yaml)

    @property
    def label(self) -> str:
        return config_check.label(self.name, self.version)


def load_target_set(name: str = "expectations-2017-18") -> TargetSet:
    """A target set, checked (:mod:`config_check`: months, valid_from <= valid_to, the metric
    one of config/metrics.yaml with an agency breakdown, test kinds and components...); a
    mistake is a :class:`carewatch.errors.ConfigError` naming the file and the key."""
    path = Path(name) if name.endswith(".yaml") else paths.config_dir() / "targets" / f"{name}.yaml"
    return _target_set(config_check.target_file(path), config_check.shown(path))


def recorded_target_set(content: dict, file: str, metrics_config: dict) -> TargetSet:
    """A target set an analysis tracked, from its recorded ``content`` (the checked file,
    :mod:`carewatch.provenance`), checked again as :func:`load_target_set` checks the file."""
    return _target_set(config_check.target_file(file, metrics_config, data=content), file)


def _target_set(checked: config_check.TargetFile, source: str) -> TargetSet:
    return TargetSet(
        name=checked.name,
        version=checked.version,
        metric=checked.metric,
        valid_from=checked.valid_from,
        valid_to=checked.valid_to,
        baseline_period=checked.baseline_period,
        national_ambition=float(checked.national_ambition),
        rule=checked.rule,
        both_to_nhs=float(checked.split.both_to_nhs),
        tolerance=float(checked.tolerance),
        tests=[test.model_dump(exclude_none=True) for test in checked.tests],
        source=source,
    )


def load_target_sets() -> list[TargetSet]:
    """Every target set in ``config/targets/`` (by file name); two files of one set name
    (the same label, or two versions) are refused (:func:`config_check.one_file_per_set`)."""
    files = sorted((paths.config_dir() / "targets").glob("*.yaml"))
    sets = [load_target_set(str(path)) for path in files]
    problems = config_check.one_file_per_set([(path, ts.name, ts.version) for path, ts in zip(files, sets)])
    if problems:
        raise ConfigError(problems)
    return sets


def tracked_metric(target_sets: list[TargetSet] | None = None) -> str | None:
    """The metric the target sets track (the report draws its agency breakdown against their
    targets); None without a target set."""
    metrics = sorted({ts.metric for ts in (load_target_sets() if target_sets is None else target_sets)})
    if len(metrics) > 1:
        raise ConfigError([f"config/targets: the target sets track different metrics ({', '.join(metrics)}); "
                         "the report draws one metric against its targets"])
    return metrics[0] if metrics else None


def components(rates: pd.DataFrame, target_set: TargetSet) -> pd.DataFrame:
    """Monthly rates per area as columns ``total``, ``nhs``, ``social_care``.

    ``rates``: long frame with ``area_code``, ``period_start``, ``agency`` (total, nhs,
    social_care, both) and ``value`` (delayed days per day per 100,000 aged 18+); with
    ``numerator`` (delayed days), ``denominator`` and ``multiplier`` as well (the warehouse's
    rows), each component of an area-month whose days are published is worked from them:
    (NHS days + share x "both" days) / denominator x multiplier, as the warehouse works its
    rates; any other area-month keeps the sum of its rates. Adding the rates instead
    rounds differently month to month, so two months with the same days and population
    could differ in the last bit and pass a strict "lower than" test (Somerset, November
    2017 against September 2016: 594.5 social-care days both times).
    """
    index = ["area_code", "period_start"]

    def split(column: str) -> pd.DataFrame:
        wide = rates.groupby([*index, "agency"])[column].first().unstack("agency")
        both = wide["both"] if "both" in wide else 0.0
        return pd.DataFrame({"total": wide["total"], "nhs": wide["nhs"] + target_set.both_to_nhs * both,
                             "social_care": wide["social_care"] + (1 - target_set.both_to_nhs) * both})

    out = split("value")
    if {"numerator", "denominator", "multiplier"} <= set(rates.columns):
        # row by row: an area-month with its days published is worked from them, any other
        # (a suppressed figure, a hand-made rate) keeps the sum of its rates
        scale = rates[rates["agency"] == "total"].set_index(index)[["denominator", "multiplier"]].reindex(out.index)
        days = split("numerator").reindex(out.index)
        for column in out.columns:
            counted = days[column] / scale["denominator"] * scale["multiplier"].astype(float)
            out[column] = counted.where(counted.notna(), out[column])
    return out.reset_index()


def area_targets(comp: pd.DataFrame, target_set: TargetSet) -> pd.DataFrame:
    """Baseline and target per area (total, NHS and social-care shares)."""
    base = comp[comp["period_start"] == pd.Timestamp(target_set.baseline_period)].set_index("area_code")
    out = pd.DataFrame(index=base.index)
    out["baseline_total"] = base["total"]
    out["baseline_nhs"] = base["nhs"]
    out["baseline_social_care"] = base["social_care"]
    ambition = target_set.national_ambition
    out["target_total"] = base["total"].clip(upper=ambition)  # a suppressed baseline: unknown
    reduction = out["baseline_total"] - out["target_total"]
    share_nhs = (base["nhs"] / base["total"]).where(base["total"] > 0, 0.5)
    out["target_nhs"] = base["nhs"] - reduction * share_nhs
    out["target_social_care"] = base["social_care"] - reduction * (1 - share_nhs)
    out["target_set"] = target_set.label
    out["baseline_period"] = pd.Timestamp(target_set.baseline_period)
    return out.reset_index()


def track(rates: pd.DataFrame, target_set: TargetSet) -> pd.DataFrame:
    """Per area and month in the set's validity period: actual against target and the tests.

    A set whose months are loaded but whose ``baseline_period`` has no figures at all (a month
    before the data begins, a typo) would track nothing, silently: it is refused instead
    (:class:`carewatch.errors.ConfigError`, naming the file, the key and the months loaded). A
    set whose months are not loaded yet (a later year's set) tracks nothing, rightly."""
    comp = components(rates[rates["area_code"] != ENGLAND], target_set)
    comp["period_start"] = pd.to_datetime(comp["period_start"])
    targets = area_targets(comp, target_set)
    months = comp[
        (comp["period_start"] >= pd.Timestamp(target_set.valid_from))
        & (comp["period_start"] <= pd.Timestamp(target_set.valid_to))
    ]
    if not months.empty and targets.empty:
        first, last = comp["period_start"].min(), comp["period_start"].max()
        raise ConfigError([f"{target_set.source or target_set.label}: baseline_period {target_set.baseline_period:%Y-%m} "
                           f"has no figures of {target_set.metric} (the months loaded: {first:%Y-%m} to {last:%Y-%m}): "
                           "no area could be tracked against it"])
    out = months.merge(targets, on="area_code", how="inner")
    tol = target_set.tolerance
    out["gap"] = out["total"] - out["target_total"]
    # with no figure at the baseline the target is unknown, but never above the ambition: the
    # gap is at least the actual minus the ambition, so an area above ambition + tolerance is
    # off track (and counts for the missed-repeatedly flag) though its exact gap is unknown
    out["gap_at_least"] = out["gap"].fillna(out["total"] - target_set.national_ambition)
    certain = out["gap"].notna() | (out["gap_at_least"] > tol)
    out["on_track"] = _known(out["gap_at_least"] <= tol, out["gap_at_least"].where(certain))
    out["nhs_on_track"] = _known(out["nhs"] <= out["target_nhs"] + tol, out["nhs"] - out["target_nhs"])
    out["social_care_on_track"] = _known(out["social_care"] <= out["target_social_care"] + tol,
                                         out["social_care"] - out["target_social_care"])
    out["change_since_baseline"] = out["total"] - out["baseline_total"]
    for test in target_set.tests:
        out[f"test_{test['id']}"] = _apply_test(test, out, comp, target_set)
    out = out.rename(columns={"total": "actual_total", "nhs": "actual_nhs", "social_care": "actual_social_care"})
    return out.sort_values(["period_start", "area_code"]).reset_index(drop=True)


def _known(result: pd.Series, compared: pd.Series) -> pd.Series:
    """A comparison as nullable booleans: null where a figure it compares has none (suppressed),
    where a plain comparison with NaN would say False, a failure."""
    return result.astype("boolean").where(compared.notna(), other=pd.NA)


def _apply_test(test: dict, out: pd.DataFrame, comp: pd.DataFrame, target_set: TargetSet) -> pd.Series:
    """One test per tracked row; null where a month the test reads has no figure (the row's own
    month and an earlier month it compares with; for a test of a fixed month, that month and the
    baseline its target comes from)."""
    component = test["component"]
    kind = test["kind"]
    if kind in ("meets_component_target", "improved_since"):
        fixed = comp[comp["period_start"] == pd.Timestamp(_month(test["period"]))].set_index("area_code")[component]
        fixed = pd.Series(fixed.reindex(out["area_code"]).values, index=out.index)  # that month's figure, row by row
        if kind == "meets_component_target":
            target = out[f"target_{component}"]
            return _known(fixed <= target + target_set.tolerance, fixed - target)
        return _known(out[component] < fixed, out[component] - fixed)
    if kind == "not_bottom_quartile":
        areas = out["area_code"] != ENGLAND
        worst_first = out[areas].groupby("period_start")[component].rank(method="min", ascending=False)
        per_month = out[areas].groupby("period_start")[component].transform("count")
        cutoff = per_month.map(lambda n: math.ceil(n / 4))
        result = pd.Series(pd.NA, index=out.index, dtype="boolean")
        result[areas] = (worst_first > cutoff).astype("boolean")
        return _known(result, out[component])
    if kind == "at_most":
        return _known(out[component] <= float(test["threshold"]), out[component])
    raise ValueError(f"target set {target_set.label}: unknown test kind {kind!r}")
