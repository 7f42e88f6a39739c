"""Flags that put areas forward for a Care Quality Commission review, each with its reasons.

The rule set is ``config/review_flags.yaml``. Each rule kind is a function of the month's
inputs (:class:`FlagInputs`) that returns the areas it flags and a reason per area. Flags
keep history: :func:`update_history` says for each area whether its flag is new, continuing,
cleared or not assessed (the area was not ranked: abolished, or too few figures) this month,
and since when it has been flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from carewatch import paths, sources
from carewatch.methodology import config_check, funnels

ENGLAND = "E92000001"


@dataclass
class FlagInputs:
    """What the rules read for one month.

    - ``overall``: overall ranking (``area_code``, ``overall_rank``) of the month;
    - ``metric_values``: ``fct_metric_values`` rows for the areas (all periods up to the month);
    - ``tracking``: target-tracking rows (``area_code``, ``period_start``, ``gap``,
      ``baseline_total``, ``actual_total``) up to the month;
    - ``directions``: metric id -> "low" or "high"; ``statistics``: metric id -> "rate" or "proportion";
    - ``names``: metric id -> its name, for reasons (the id when absent);
    - ``areas``: the areas that existed in the month (:func:`carewatch.geography.existing_on`):
      the rules that read metric values test only them (an abolished council keeps its last
      financial year's values); None: every area with a value.
    """

    period_start: pd.Timestamp
    overall: pd.DataFrame
    metric_values: pd.DataFrame
    tracking: pd.DataFrame
    directions: dict[str, str]
    statistics: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)
    areas: set[str] | None = None


def _of_areas(inputs: FlagInputs, mv: pd.DataFrame) -> pd.DataFrame:
    """``mv`` less England and any area that did not exist in the month (``inputs.areas``)."""
    mv = mv[mv["area_code"] != ENGLAND]
    return mv if inputs.areas is None else mv[mv["area_code"].isin(inputs.areas)]


def rule_set_label(rules: dict) -> str:
    """The rule set's ``name@vN`` (:func:`config_check.label`)."""
    return config_check.label(rules["name"], rules["version"])


def load_rules(name: str = "review_flags") -> dict:
    """The rule set, checked when it is read (:mod:`config_check`: kinds, every option's type and
    range, metric ids, rule ids once), not only in a month that uses an option; a mistake is a
    :class:`carewatch.errors.ConfigError` naming the file, the rule and the option."""
    path = Path(name) if name.endswith(".yaml") else paths.config_dir() / f"{name}.yaml"
    return config_check.rules_file(path)


def recorded_rules(content: dict, file: str, metrics_config: dict) -> dict:
    """The rule set an analysis flagged with, from its recorded ``content`` (the checked file,
    defaults filled in: :mod:`carewatch.provenance`), checked again as :func:`load_rules` checks it."""
    return config_check.rules_file(file, metrics_config, data=content)


def _bad_option(rule: dict, option: str, allowed: str, value) -> ValueError:
    return ValueError(f"rule {rule.get('id', rule.get('kind', 'rule'))!r}: {option} must be {allowed}, not {value!r}")


def _winsorise(rule: dict) -> float:
    value = rule.get("winsorise", 0.10)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 0.5:
        raise _bad_option(rule, "winsorise", "a share from 0 to below 0.5", value)
    return float(value)


def _after_target_set_ends(rule: dict) -> str:
    value = rule.get("after_target_set_ends", "keep_baseline")
    if value not in ("keep_baseline", "stop"):
        raise _bad_option(rule, "after_target_set_ends", "keep_baseline or stop", value)
    return value


# (every option is checked when the rules are read: config_check.RulesFile; these two also guard
# the rule functions called with a hand-made rule)


def _values(inputs: FlagInputs, metric: str, period_type: str, period_start) -> pd.Series:
    mv = inputs.metric_values
    rows = mv[(mv["metric_id"] == metric) & (mv["period_type"] == period_type) & (mv["period_start"] == period_start)]
    return _of_areas(inputs, rows).set_index("area_code")["value"].dropna()


def bottom_n_overall(rule: dict, inputs: FlagInputs) -> dict[str, str]:
    """Areas with fewer than ``n`` areas ranked below them: the bottom n, and every area tied
    with the last of them (competition ranks: a tie for last place shares a rank below N)."""
    ranked = inputs.overall.dropna(subset=["overall_rank"])
    n = int(rule["n"])
    ranks = ranked["overall_rank"].to_numpy()
    below = (ranks[None, :] > ranks[:, None]).sum(axis=1)
    hit = ranked[below < n]
    return {
        r.area_code: f"overall rank {int(r.overall_rank)} of {len(ranked)}: in the bottom {n}"
        for r in hit.itertuples()
    }


def bottom_quartile_with_little_improvement(rule: dict, inputs: FlagInputs) -> dict[str, str]:
    now = _values(inputs, rule["metric"], "month", inputs.period_start)
    if now.empty:
        return {}
    worst_first = now.rank(method="min", ascending=inputs.directions[rule["metric"]] == "high")
    cutoff = math.ceil(len(now) / 4)
    # the baseline of the latest target set an area was tracked against. after_target_set_ends:
    # keep_baseline (the default) keeps it as the yardstick after the set's last month, so the
    # rule does not go quiet when the set expires; stop tests only areas tracked this month
    after = _after_target_set_ends(rule)
    tracked = inputs.tracking[inputs.tracking["period_start"] <= inputs.period_start]
    if after == "stop":
        tracked = tracked[tracked["period_start"] == inputs.period_start]
    tracking = tracked.sort_values("period_start").groupby("area_code").tail(1).set_index("area_code")
    reasons = {}
    for area in worst_first[worst_first <= cutoff].index:
        if area not in tracking.index:
            continue
        baseline = tracking.loc[area, "baseline_total"]
        improvement = (baseline - now[area]) / baseline * 100 if baseline else 0.0
        if improvement < float(rule["min_improvement_pct"]):
            if improvement > 0:
                shown = math.floor(improvement * 10) / 10  # rounded down: 9.96% is not shown as the 10% it misses
                change = "no lower than" if shown == 0 else f"only {shown:.1f}% lower than"
            else:  # a rise, rounded to the nearest: 0.99% higher is not shown as 0.9%
                shown = round(-improvement, 1)
                change = "no lower than" if shown == 0 else f"{shown:.1f}% higher than"
            since = tracking.loc[area, "baseline_period"] if "baseline_period" in tracking else None
            which = f"its {pd.Timestamp(since):%b %Y} baseline" if since is not None and not pd.isna(since) else "its baseline"
            reasons[area] = (
                f"bottom quartile for delayed days in {inputs.period_start:%b %Y} ({now[area]:.1f} per day per "
                f"100,000 aged 18+, rank {int(worst_first[area])} worst of {len(now)}) and {change} {which} "
                f"({baseline:.1f}); needs {rule['min_improvement_pct']}% lower"
            )
    return reasons


def target_missed_consecutive(rule: dict, inputs: FlagInputs) -> dict[str, str]:
    months, margin = int(rule["months"]), float(rule["margin"])
    tracking = inputs.tracking[inputs.tracking["period_start"] <= inputs.period_start]
    # the `months` months up to this one, every one tracked: an area whose tracking stopped
    # (the target set expired, or the area was abolished) is not flagged on its old gaps
    expected = list(pd.date_range(end=inputs.period_start, periods=months, freq="MS"))
    reasons = {}
    for area, rows in tracking.groupby("area_code"):
        recent = rows.sort_values("period_start").tail(months)
        # gap_at_least: the gap, or where the baseline has no figure the least it can be
        if list(pd.to_datetime(recent["period_start"])) == expected and (recent["gap_at_least"] > margin).all():
            gaps = ", ".join(f"{g:+.1f}" if pd.notna(exact) else f"at least {g:+.1f}"
                             for g, exact in zip(recent["gap_at_least"], recent["gap"]))
            reasons[area] = (f"DTOC target missed by more than {margin} delayed days per day per 100,000 for {months} "
                             f"consecutive months to {inputs.period_start:%b %Y} (gaps {gaps})")
    return reasons


@dataclass
class FunnelTest:
    """One metric's funnel test as the funnel_outlier rule runs it (the report draws the same)."""

    metric: str
    statistic: str              # 'rate' or 'proportion'
    period_type: str
    period_start: pd.Timestamp
    rows: pd.DataFrame          # area_code, numerator, denominator, value
    labels: pd.Series           # 'high' / 'low' / 'not significant', aligned with rows
    average: float              # all areas' numerator over denominator
    phi: float                  # overdispersion factor (1.0 for plain limits)
    level: float
    overdispersion: bool

    def limits(self, denominators) -> pd.DataFrame:
        if self.overdispersion:
            return funnels.overdispersed_limits(self.average, denominators, self.statistic, self.level, self.phi)
        return funnels.control_limits(self.average, denominators, self.statistic, self.level)


def funnel_tests(rule: dict, inputs: FlagInputs) -> list[FunnelTest]:
    """The funnel rule's test of each metric with a statistic, for the month: the rule's period
    type (rolling 12 months) ending in the month; a metric published only as financial years
    (ASCOF reablement) is tested on its latest year that ended ``annual_lag_months`` (default
    6) before the month, as the league table uses it."""
    mv = inputs.metric_values
    mv = _of_areas(inputs, mv[mv["metric_id"].isin(inputs.statistics)])
    period_type = rule.get("period_type", "rolling_12m")
    cutoff = inputs.period_start - pd.DateOffset(months=int(rule.get("annual_lag_months", 6)))
    with_period_type = set(mv.loc[mv["period_type"] == period_type, "metric_id"])
    level, widened = float(rule["level"]), bool(rule.get("overdispersion", False))
    winsor = _winsorise(rule)
    tests = []
    for metric, rows in mv.groupby("metric_id"):
        if metric in with_period_type:
            rows = rows[(rows["period_type"] == period_type) & (rows["period_start"] == inputs.period_start)]
        else:
            rows = rows[(rows["period_type"] == "financial_year") & (rows["period_end"] <= cutoff)]
            rows = rows[rows["period_start"] == rows["period_start"].max()]
        rows = rows.dropna(subset=["numerator", "denominator"])
        rows = rows[rows["denominator"] > 0]
        if rows.empty:
            continue
        statistic = inputs.statistics[metric]
        if widened:
            labels = funnels.significance_overdispersed(rows["numerator"], rows["denominator"], statistic, level, winsor)
            phi = funnels.overdispersion(funnels.z_scores(rows["numerator"], rows["denominator"], statistic), winsor)
        else:
            labels, phi = funnels.significance(rows["numerator"], rows["denominator"], statistic, level), 1.0
        tests.append(FunnelTest(
            metric=metric, period_type=str(rows["period_type"].iloc[0]), period_start=pd.Timestamp(rows["period_start"].iloc[0]),
            rows=rows[["area_code", "numerator", "denominator", "value"]].reset_index(drop=True),
            labels=labels.reset_index(drop=True), average=float(rows["numerator"].sum() / rows["denominator"].sum()),
            phi=phi, level=level, overdispersion=widened, statistic=statistic))
    return tests


def funnel_outlier(rule: dict, inputs: FlagInputs) -> dict[str, str]:
    reasons: dict[str, list[str]] = {}
    for test in funnel_tests(rule, inputs):
        worse = "high" if inputs.directions[test.metric] == "low" else "low"
        when = "" if test.period_start == inputs.period_start else f" ({sources.financial_year(test.period_start)})"
        for area, label in zip(test.rows["area_code"], test.labels):
            if label == worse:
                reasons.setdefault(area, []).append(inputs.names.get(test.metric, test.metric) + when)
    pct = f"{float(rule['level']) * 100:g}%"
    return {area: f"significantly worse than the average of all areas at {pct} (funnel plot) on: {', '.join(ms)}" for area, ms in reasons.items()}


def deterioration(rule: dict, inputs: FlagInputs) -> dict[str, str]:
    year_ago = inputs.period_start - pd.DateOffset(months=12)
    reasons: dict[str, list[str]] = {}
    for metric in rule["metrics"]:
        now = _values(inputs, metric, "rolling_12m", inputs.period_start)
        then = _values(inputs, metric, "rolling_12m", year_ago)
        both = now.index.intersection(then.index)
        sign = 1 if inputs.directions[metric] == "low" else -1
        change = sign * (now[both] - then[both]) / then[both]
        for area in change[change >= float(rule["min_relative_change"])].index:  # the minimum flags
            reasons.setdefault(area, []).append(f"{metric} {change[area] * 100:.0f}% worse than a year earlier")
    return {area: "; ".join(items) for area, items in reasons.items()}


RULE_KINDS = {
    "bottom_n_overall": bottom_n_overall,
    "bottom_quartile_with_little_improvement": bottom_quartile_with_little_improvement,
    "target_missed_consecutive": target_missed_consecutive,
    "funnel_outlier": funnel_outlier,
    "deterioration": deterioration,
}


def evaluate(rules: dict, inputs: FlagInputs) -> pd.DataFrame:
    """One row per area and rule that fired: ``area_code``, ``rule_id``, ``reason``."""
    rows = []
    for rule in rules["rules"]:
        if not rule.get("enabled", True):
            continue
        for area, reason in RULE_KINDS[rule["kind"]](rule, inputs).items():
            rows.append({"period_start": inputs.period_start, "area_code": area, "rule_id": rule["id"], "reason": reason})
    frame = pd.DataFrame(rows, columns=["period_start", "area_code", "rule_id", "reason"])
    frame["rule_set"] = rule_set_label(rules)
    return frame.sort_values(["area_code", "rule_id"]).reset_index(drop=True)


def update_history(previous: pd.DataFrame | None, flags: pd.DataFrame, period_start,
                   assessed: set[str] | None = None, abolished: dict[str, pd.Timestamp] | None = None,
                   present: dict[str, int] | None = None, created: dict[str, pd.Timestamp] | None = None) -> pd.DataFrame:
    """Area-level flag status for this month.

    ``previous``: last month's history (``area_code``, ``status``, ``first_flagged``);
    returns one row per area flagged now or last month with ``status`` new / continuing /
    cleared / not assessed, ``first_flagged`` (start of the current spell), ``months_flagged``
    and ``reasons`` (all reasons this month, joined). ``assessed``: the areas ranked this month;
    an area flagged last month that is not flagged now and was not ranked (abolished by a
    boundary change, ``abolished``: area -> the day; or too few figures) is "not assessed",
    with why, not "cleared": nothing showed that it improved. Like "cleared", it ends the spell.

    ``present``: the areas with figures this month (area -> the metric values it was ranked on):
    one of them not ranked and not flagged is "not assessed" too, never flagged
    (``first_flagged`` null, ``months_flagged`` 0), so that an area the rules cannot see, such as
    one ``created`` by a boundary change (area -> the day) before its first full rolling year,
    is listed rather than silently absent.
    """
    period_start = pd.Timestamp(period_start)
    now = flags.groupby("area_code")["reason"].apply(lambda r: " | ".join(r)) if len(flags) else pd.Series(dtype=object)
    was_open = set()
    first = {}
    if previous is not None and len(previous):
        open_rows = previous[previous["status"].isin(["new", "continuing"])]
        was_open = set(open_rows["area_code"])
        first = dict(zip(open_rows["area_code"], pd.to_datetime(open_rows["first_flagged"])))
    rows = []
    for area in sorted(set(now.index) | was_open):
        if area in now.index:
            status = "continuing" if area in was_open else "new"
            first_flagged = first.get(area, period_start) if status == "continuing" else period_start
            reasons = now[area]
        elif assessed is None or area in assessed:
            status, first_flagged, reasons = "cleared", first[area], ""
        else:
            status, first_flagged = "not assessed", first[area]
            ended = (abolished or {}).get(area)
            reasons = (f"abolished on {pd.Timestamp(ended):%d %B %Y} by a boundary change: no longer assessed"
                       if ended is not None and pd.Timestamp(ended) <= period_start
                       else "not ranked this month (too few metric values): not assessed")
        months = (period_start.year - first_flagged.year) * 12 + period_start.month - first_flagged.month \
            + (status in ("new", "continuing"))
        rows.append(
            {
                "period_start": period_start,
                "area_code": area,
                "status": status,
                "first_flagged": first_flagged,
                "months_flagged": months,
                "reasons": reasons,
            }
        )
    if present is not None and assessed is not None:
        gone = {a for a, day in (abolished or {}).items() if pd.Timestamp(day) <= period_start}
        for area in sorted(set(present) - assessed - set(now.index) - was_open - gone):
            made = (created or {}).get(area)
            why = (f"created on {pd.Timestamp(made):%d %B %Y} by a boundary change, " if made is not None
                   and pd.Timestamp(made) <= period_start < pd.Timestamp(made) + pd.DateOffset(months=12) else "")
            rows.append({"period_start": period_start, "area_code": area, "status": "not assessed", "first_flagged": pd.NaT,
                         "months_flagged": 0, "reasons": f"{why}not ranked this month ({present[area]} metric "
                                                         f"value{'' if present[area] == 1 else 's'} to rank): not assessed"})
    return pd.DataFrame(rows, columns=["period_start", "area_code", "status", "first_flagged", "months_flagged", "reasons"])
