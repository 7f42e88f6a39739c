"""Every review-flag rule on hand-made inputs, and flag history (new, continuing, cleared)."""

from __future__ import annotations

import pandas as pd
import pytest

from carewatch.methodology import flags

DTOC = "delayed_days_per_day_per_100k_18plus"
ADM = "emergency_admissions_65plus_per_100k"
WKD = "weekend_discharge_share"
MONTH = pd.Timestamp("2017-12-01")


def mv(rows):
    return pd.DataFrame(rows, columns=["area_code", "metric_id", "period_type", "period_start", "value", "numerator", "denominator"])


def inputs(**kw):
    base = dict(
        period_start=MONTH,
        overall=pd.DataFrame({"area_code": [], "overall_rank": []}),
        metric_values=mv([]),
        tracking=pd.DataFrame(columns=["area_code", "period_start", "gap", "baseline_total", "actual_total"]),
        directions={DTOC: "low", ADM: "low", WKD: "high"},
        statistics={DTOC: "rate", ADM: "rate", WKD: "proportion"},
    )
    base.update(kw)
    return flags.FlagInputs(**base)


def test_bottom_n_of_overall_ranking():
    overall = pd.DataFrame({"area_code": list("ABCDE"), "overall_rank": [1, 2, 3, 4, 4]})
    got = flags.bottom_n_overall({"n": 2}, inputs(overall=overall))
    # a tie for last place: D and E (rank 4 of 5) are the bottom 2; C has two areas below it
    assert set(got) == {"D", "E"}
    assert "overall rank 4 of 5" in got["D"]
    # a tie across the cut keeps every tied area: ranks 1, 2, 3, 3, 5 -> bottom 2 = 5 and both 3s
    overall = pd.DataFrame({"area_code": list("ABCDE"), "overall_rank": [1, 2, 3, 3, 5]})
    assert set(flags.bottom_n_overall({"n": 2}, inputs(overall=overall))) == {"C", "D", "E"}
    # 148 distinct ranks and two tied at 149: bottom 12 is 12 areas, not 13
    overall = pd.DataFrame({"area_code": [f"A{i:03d}" for i in range(150)], "overall_rank": list(range(1, 149)) + [149, 149]})
    got = flags.bottom_n_overall({"n": 12}, inputs(overall=overall))
    assert len(got) == 12 and "A137" not in got


def test_bottom_quartile_with_too_little_improvement():
    values = mv([(a, DTOC, "month", MONTH, v, None, None) for a, v in [("A", 20.0), ("B", 18.0), ("C", 5.0), ("D", 6.0), ("E", 7.0), ("F", 8.0), ("G", 9.0), ("H", 10.0)]])
    # 8 areas -> bottom quartile = the 2 worst: A (20) and B (18)
    tracking = pd.DataFrame(
        {"area_code": ["A", "B"], "period_start": [MONTH, MONTH], "gap": [0, 0], "baseline_total": [21.0, 30.0], "actual_total": [20.0, 18.0]}
    )
    got = flags.bottom_quartile_with_little_improvement(
        {"metric": DTOC, "min_improvement_pct": 10}, inputs(metric_values=values, tracking=tracking)
    )
    # A improved (21-20)/21 = 4.76% < 10% -> flagged (shown rounded down, 4.7%); B improved 40% -> not flagged
    assert set(got) == {"A"}
    assert "in Dec 2017 (20.0 per day" in got["A"] and "only 4.7% lower than its baseline (21.0); needs 10% lower" in got["A"]

    def reason(baseline, **columns):
        rows = tracking.assign(baseline_total=[baseline, 30.0], **columns)
        return flags.bottom_quartile_with_little_improvement(
            {"metric": DTOC, "min_improvement_pct": 10}, inputs(metric_values=values, tracking=rows))["A"]

    # an area whose delays rose since the baseline is said to have risen, not to have improved by a negative share
    assert "25.0% higher than its baseline (16.0); needs 10% lower" in reason(16.0)  # (20 - 16) / 16
    # a rise is rounded to the nearest tenth, not down: (20 - 19.804) / 19.804 = 0.99% -> 1.0% (Sheffield's
    # March 2018 was 0.99% above its baseline and read "0.9% higher"); 0.04% higher is "no lower"
    assert "1.0% higher than its baseline (19.8)" in reason(19.804)
    assert "no lower than its baseline (20.0)" in reason(19.992)
    # shares are rounded down: (22.2 - 20) / 22.2 = 9.91% is "9.9%", and 9.96% is not shown as the 10% it misses
    assert "only 9.9% lower than" in reason(22.2) and "only 9.9% lower than" in reason(20.0 / (1 - 0.0996))
    assert "no lower than its baseline (20.0)" in reason(20.0) and "no lower than its baseline (0.0)" in reason(0.0)
    # the baseline is named by its month (tracking rows carry it), not read as a recent one
    assert "only 4.7% lower than its Feb 2017 baseline (21.0)" in reason(21.0, baseline_period=pd.Timestamp("2017-02-01"))


def test_target_missed_by_margin_for_k_consecutive_months():
    months = pd.date_range("2017-09-01", periods=4, freq="MS")
    tracking = pd.DataFrame(
        {
            "area_code": ["A"] * 4 + ["B"] * 4 + ["C"] * 4,
            "period_start": list(months) * 3,
            # A: last three gaps above 1.0; B: one month within the margin; C: exactly 1.0 is not "more than"
            "gap": [0.0, 1.5, 2.0, 1.1] + [2.0, 2.0, 0.5, 2.0] + [1.0, 1.0, 1.0, 1.0],
        }
    )
    tracking["gap_at_least"] = tracking["gap"]  # every baseline known
    got = flags.target_missed_consecutive({"margin": 1.0, "months": 3}, inputs(tracking=tracking))
    assert set(got) == {"A"}
    assert "+1.5, +2.0, +1.1" in got["A"]


def test_target_missed_needs_the_months_up_to_this_one():
    # tracking ended in December 2017 (the target set expired): in March 2018 the old gaps do
    # not flag; nor does a run of months with one untracked in the middle
    months = pd.date_range("2017-10-01", periods=3, freq="MS")
    tracking = pd.DataFrame({"area_code": ["A"] * 3, "period_start": months, "gap": [5.0, 5.0, 5.0], "gap_at_least": [5.0, 5.0, 5.0]})
    rule = {"margin": 1.0, "months": 3}
    assert set(flags.target_missed_consecutive(rule, inputs(tracking=tracking, period_start=pd.Timestamp("2017-12-01")))) == {"A"}
    assert flags.target_missed_consecutive(rule, inputs(tracking=tracking, period_start=pd.Timestamp("2018-03-01"))) == {}
    holed = pd.DataFrame({"area_code": ["B"] * 3, "period_start": pd.to_datetime(["2017-09-01", "2017-11-01", "2017-12-01"]),
                          "gap": [5.0] * 3, "gap_at_least": [5.0] * 3})
    assert flags.target_missed_consecutive(rule, inputs(tracking=holed, period_start=pd.Timestamp("2017-12-01"))) == {}


def test_bottom_quartile_rule_keeps_the_baseline_after_the_target_set_ends():
    later = pd.Timestamp("2018-06-01")
    values = mv([(a, DTOC, "month", later, v, None, None) for a, v in [("A", 20.0), ("B", 18.0), ("C", 5.0), ("D", 6.0), ("E", 7.0), ("F", 8.0), ("G", 9.0), ("H", 10.0)]])
    # tracking (and so the target set) ended in March 2018; A's baseline was 21, B's 30
    tracking = pd.DataFrame({"area_code": ["A", "B"], "period_start": [pd.Timestamp("2018-03-01")] * 2, "gap": [0, 0],
                             "baseline_total": [21.0, 30.0], "actual_total": [20.0, 18.0]})
    got = flags.bottom_quartile_with_little_improvement(
        {"metric": DTOC, "min_improvement_pct": 10}, inputs(metric_values=values, tracking=tracking, period_start=later))
    assert set(got) == {"A"}
    # configured to stop with the set: nobody is tracked in June 2018, so nobody is flagged
    rule = {"metric": DTOC, "min_improvement_pct": 10, "after_target_set_ends": "stop"}
    assert flags.bottom_quartile_with_little_improvement(rule, inputs(metric_values=values, tracking=tracking, period_start=later)) == {}
    # ... while the set runs, stop and keep_baseline agree (A tracked in March 2018, at 20 of baseline 21)
    march = pd.Timestamp("2018-03-01")
    in_set = inputs(metric_values=values.assign(period_start=march), tracking=tracking, period_start=march)
    assert set(flags.bottom_quartile_with_little_improvement(rule, in_set)) == {"A"}
    with pytest.raises(ValueError, match="keep_baseline or stop"):
        flags.bottom_quartile_with_little_improvement({**rule, "after_target_set_ends": "forever"}, in_set)


def test_funnel_outlier_flags_only_the_worse_side():
    rows = []
    # 30 similar areas at 10 admissions per 1,000; "HIGH" at 14 per 1,000 (worse: low is better);
    # "LOWAREA" at 6 per 1,000 (better: not flagged)
    for i in range(30):
        rows.append((f"X{i:02d}", ADM, "rolling_12m", MONTH, None, 1_000.0, 100_000.0))
    rows.append(("HIGH", ADM, "rolling_12m", MONTH, None, 1_400.0, 100_000.0))
    rows.append(("LOWAREA", ADM, "rolling_12m", MONTH, None, 600.0, 100_000.0))
    # weekend share: high is better, so the low outlier is the worse one
    for i in range(30):
        rows.append((f"X{i:02d}", WKD, "rolling_12m", MONTH, None, 2_000.0, 10_000.0))
    rows.append(("WEEKENDLOW", WKD, "rolling_12m", MONTH, None, 1_500.0, 10_000.0))
    got = flags.funnel_outlier({"level": 0.998, "period_type": "rolling_12m"}, inputs(metric_values=mv(rows)))
    assert set(got) == {"HIGH", "WEEKENDLOW"}
    assert ADM in got["HIGH"] and WKD in got["WEEKENDLOW"]
    # the comparison is the pooled average of the areas tested, not a published England figure
    assert got["HIGH"].startswith("significantly worse than the average of all areas at 99.8% (funnel plot) on: ")


def test_funnel_outlier_widens_its_limits_by_the_configured_winsorised_overdispersion():
    # ten areas at exposure 1,000 with 10 ... 190 events: the average rate is 0.1, so each
    # z-score is (events - 100) / 10 = -9, -2, -1, -1, 0, 0, 1, 1, 2, 9
    events = [10, 80, 90, 90, 100, 100, 110, 110, 120, 190]
    rows = [(f"A{i}", ADM, "rolling_12m", MONTH, None, float(k), 1_000.0) for i, k in enumerate(events)]
    rule = {"level": 0.998, "period_type": "rolling_12m", "overdispersion": True}

    def run(**extra):
        (test,) = flags.funnel_tests({**rule, **extra}, inputs(metric_values=mv(rows)))
        return test.phi, flags.funnel_outlier({**rule, **extra}, inputs(metric_values=mv(rows)))

    # default 10% each tail: quantiles -2.7 and 2.7, phi = (2 x 2.7^2 + 2 x 2^2 + 4 x 1) / 10 = 2.658;
    # limits +/- 3.0902 x sqrt(2.658) = 5.04, so only z = 9 is outside (and worse: low is better)
    phi, got = run()
    assert phi == pytest.approx(2.658) and set(got) == {"A9"}
    # no winsorising: phi = (2 x 81 + 2 x 4 + 4 x 1) / 10 = 17.4, limits +/- 12.9, nobody flagged
    phi, got = run(winsorise=0)
    assert phi == pytest.approx(17.4) and got == {}
    # 20% each tail: quantiles -1.2 and 1.2, phi = (4 x 1.44 + 4 x 1) / 10 = 0.976, below 1: plain limits
    phi, got = run(winsorise=0.2)
    assert phi == 1.0 and set(got) == {"A9"}
    with pytest.raises(ValueError, match="winsorise must be a share from 0 to below 0.5, not 0.5"):
        run(winsorise=0.5)


def test_funnel_outlier_tests_a_yearly_metric_on_its_latest_published_year():
    # reablement is published as financial years only: in December 2017 the latest year that
    # ended 6 months before is 2016-17 (2017-18 is not out yet, and must not be used)
    still_home = "reablement_still_at_home_91d_65plus"
    rows = []
    for year, low_area in ((2016, "REABLOW"), (2017, "LATERLOW")):
        start, end = pd.Timestamp(f"{year}-04-01"), pd.Timestamp(f"{year + 1}-03-31")
        for i in range(30):
            rows.append((f"X{i:02d}", still_home, "financial_year", start, end, None, 800.0, 1_000.0))
        rows.append((low_area, still_home, "financial_year", start, end, None, 600.0, 1_000.0))
    frame = pd.DataFrame(rows, columns=["area_code", "metric_id", "period_type", "period_start", "period_end", "value", "numerator", "denominator"])
    got = flags.funnel_outlier({"level": 0.998, "period_type": "rolling_12m"}, inputs(
        metric_values=frame, directions={still_home: "high"}, statistics={still_home: "proportion"}))
    assert set(got) == {"REABLOW"}
    assert f"{still_home} (2016-17)" in got["REABLOW"]
    named = flags.funnel_outlier({"level": 0.998, "period_type": "rolling_12m"}, inputs(
        metric_values=frame, directions={still_home: "high"}, statistics={still_home: "proportion"},
        names={still_home: "Still at home 91 days after reablement"}))
    assert named["REABLOW"].endswith("on: Still at home 91 days after reablement (2016-17)")  # the metric's name


def test_deterioration_over_12_months():
    year_ago = MONTH - pd.DateOffset(months=12)
    rows = [
        ("A", DTOC, "rolling_12m", year_ago, 10.0, None, None), ("A", DTOC, "rolling_12m", MONTH, 11.5, None, None),  # +15%
        ("B", DTOC, "rolling_12m", year_ago, 10.0, None, None), ("B", DTOC, "rolling_12m", MONTH, 10.5, None, None),  # +5%
        ("C", WKD, "rolling_12m", year_ago, 0.20, None, None), ("C", WKD, "rolling_12m", MONTH, 0.17, None, None),    # -15%, high is better
    ]
    rule = {"metrics": [DTOC, WKD], "min_relative_change": 0.10}
    got = flags.deterioration(rule, inputs(metric_values=mv(rows)))
    assert set(got) == {"A", "C"}
    assert "15% worse" in got["A"]


def test_deterioration_of_exactly_the_minimum_change_is_flagged():
    # min_relative_change 0.10 is the least change that flags: 10.0 -> 11.0 is (11 - 10) / 10 = 0.1
    # exactly (both are exact in binary), as a fall of exactly min_improvement_pct counts as enough
    year_ago = MONTH - pd.DateOffset(months=12)
    rows = [("A", DTOC, "rolling_12m", year_ago, 10.0, None, None), ("A", DTOC, "rolling_12m", MONTH, 11.0, None, None)]
    got = flags.deterioration({"metrics": [DTOC], "min_relative_change": 0.10}, inputs(metric_values=mv(rows)))
    assert got == {"A": f"{DTOC} 10% worse than a year earlier"}


def test_rules_come_from_config_and_disabled_rules_do_not_fire(tmp_path):
    overall = pd.DataFrame({"area_code": list("ABC"), "overall_rank": [1, 2, 3]})
    rules = flags.load_rules()
    assert {r["kind"] for r in rules["rules"]} == set(flags.RULE_KINDS)
    only_bottom = {"name": "t", "version": 1, "rules": [{"id": "b", "kind": "bottom_n_overall", "n": 1}]}
    got = flags.evaluate(only_bottom, inputs(overall=overall))
    assert list(got["area_code"]) == ["C"] and list(got["rule_id"]) == ["b"]
    only_bottom["rules"][0]["enabled"] = False
    assert flags.evaluate(only_bottom, inputs(overall=overall)).empty


@pytest.mark.parametrize("option, message", [
    ("winsorise: 0.7", "rule 'f': winsorise must be a share from 0 to below 0.5, not 0.7"),
    ("winsorise:", "rule 'f': winsorise must be a share from 0 to below 0.5, not None"),
    ("after_target_set_ends: forever", "rule 'q': after_target_set_ends must be keep_baseline or stop, not 'forever'"),
])
def test_a_bad_rule_option_is_refused_when_the_rules_are_read(tmp_path, option, message):
    # refused even where the option would not be used this month (overdispersion off, no values)
    kind = "funnel_outlier" if option.startswith("winsorise") else "bottom_quartile_with_little_improvement"
    rule_id = "f" if kind == "funnel_outlier" else "q"
    # the options each kind requires (checked too since config_check): only the one under test is wrong
    required = ("level: 0.998\n    overdispersion: false" if kind == "funnel_outlier" else
                "metric: delayed_days_per_day_per_100k_18plus\n    min_improvement_pct: 10")
    path = tmp_path / "rules.yaml"
    path.write_text(f"name: t\nversion: 1\nrules:\n  - id: {rule_id}\n    kind: {kind}\n    {required}\n    {option}\n")
    with pytest.raises(ValueError) as bad:
        flags.load_rules(str(path))
    assert str(bad.value) == f"{path}: {message}"


def test_history_new_continuing_cleared():
    def fl(areas):
        return pd.DataFrame({"area_code": areas, "rule_id": ["r"] * len(areas), "reason": [f"why {a}" for a in areas]})

    oct_ = flags.update_history(None, fl(["A", "B"]), "2017-10-01")
    assert dict(zip(oct_["area_code"], oct_["status"])) == {"A": "new", "B": "new"}
    nov = flags.update_history(oct_, fl(["A", "C"]), "2017-11-01")
    status = dict(zip(nov["area_code"], nov["status"]))
    assert status == {"A": "continuing", "B": "cleared", "C": "new"}
    a = nov.set_index("area_code").loc["A"]
    assert a["first_flagged"] == pd.Timestamp("2017-10-01") and a["months_flagged"] == 2
    dec = flags.update_history(nov, fl(["B"]), "2017-12-01")
    status = dict(zip(dec["area_code"], dec["status"]))
    # B was cleared in November, so December is a new spell; A and C clear now
    assert status == {"A": "cleared", "B": "new", "C": "cleared"}
    assert dec.set_index("area_code").loc["B", "first_flagged"] == pd.Timestamp("2017-12-01")


def test_an_area_no_longer_ranked_is_not_assessed_rather_than_cleared():
    """Dorset county, flagged in April 2019, abolished that day: in May it has no figures and
    no rank. "Cleared" would read as an improvement nothing showed."""
    def fl(areas):
        return pd.DataFrame({"area_code": areas, "rule_id": ["r"] * len(areas), "reason": [f"why {a}" for a in areas]})

    abolished = {"E10000009": pd.Timestamp("2019-04-01")}
    april = flags.update_history(None, fl(["E10000009", "GAP", "BETTER"]), "2019-04-01",
                                 assessed={"E10000009", "GAP", "BETTER", "OTHER"}, abolished=abolished)
    may = flags.update_history(april, fl([]), "2019-05-01", assessed={"BETTER", "OTHER"}, abolished=abolished)
    rows = may.set_index("area_code")
    assert rows["status"].to_dict() == {"BETTER": "cleared", "E10000009": "not assessed", "GAP": "not assessed"}
    assert rows.loc["E10000009", "reasons"] == "abolished on 01 April 2019 by a boundary change: no longer assessed"
    assert rows.loc["GAP", "reasons"] == "not ranked this month (too few metric values): not assessed"
    assert rows.loc["GAP", "months_flagged"] == rows.loc["BETTER", "months_flagged"] == 1  # the spell's month, as cleared
    # the spell has ended: flagged again in June is a new spell, and the abolished area drops out
    june = flags.update_history(may, fl(["GAP"]), "2019-06-01", assessed={"GAP", "BETTER", "OTHER"}, abolished=abolished)
    assert june[["area_code", "status", "first_flagged"]].values.tolist() == [["GAP", "new", pd.Timestamp("2019-06-01")]]
    # without `assessed` (callers of earlier releases) an unflagged area is cleared, as before
    assert flags.update_history(april, fl([]), "2019-05-01")["status"].unique().tolist() == ["cleared"]


def test_an_area_with_figures_that_no_rule_could_assess_is_listed_not_left_out():
    """Bournemouth, Christchurch and Poole, created on 1 April 2019: it has monthly figures from
    then on but no rolling year, so no rank, and no target baseline; no rule can flag it. It is
    listed as "not assessed" (never flagged) each month instead of missing from the history."""
    def fl(areas):
        return pd.DataFrame({"area_code": areas, "rule_id": ["r"] * len(areas), "reason": [f"why {a}" for a in areas]})

    bcp, dorset_county = "E06000058", "E10000009"
    created, abolished = {bcp: pd.Timestamp("2019-04-01")}, {dorset_county: pd.Timestamp("2019-04-01")}
    # May 2019: BCP has figures (1 metric value to rank: 4 needed), Dorset county's April rows
    # are gone, RANKED is ranked, FLAGGED is flagged although unranked (a rule that needs no rank)
    may = flags.update_history(None, fl(["FLAGGED"]), "2019-05-01", assessed={"RANKED"}, abolished=abolished,
                               present={bcp: 1, "RANKED": 6, "FLAGGED": 2, dorset_county: 2}, created=created)
    rows = may.set_index("area_code")
    assert rows["status"].to_dict() == {bcp: "not assessed", "FLAGGED": "new"}
    assert rows.loc[bcp, "reasons"] == ("created on 01 April 2019 by a boundary change, "
                                        "not ranked this month (1 metric value to rank): not assessed")
    assert pd.isna(rows.loc[bcp, "first_flagged"]) and rows.loc[bcp, "months_flagged"] == 0
    # April 2020, a year on, still unranked: no longer "created"; the row did not open a spell
    april = flags.update_history(may, fl([]), "2020-04-01", assessed={"RANKED"}, abolished=abolished,
                                 present={bcp: 3, "RANKED": 6}, created=created)
    rows = april.set_index("area_code")
    assert rows.loc[bcp, "reasons"] == "not ranked this month (3 metric values to rank): not assessed"
    assert rows.loc["FLAGGED", "status"] == "not assessed" and rows.loc["FLAGGED", "first_flagged"] == pd.Timestamp("2019-05-01")
    assert set(rows.index) == {bcp, "FLAGGED"}
    # ranked the month after: nothing to say about it
    assert flags.update_history(april, fl([]), "2020-05-01", assessed={"RANKED", bcp}, present={bcp: 4, "RANKED": 6}).empty


def _quartile_case(values_by_area, baselines):
    values = mv([(a, DTOC, "month", MONTH, v, None, None) for a, v in values_by_area.items()])
    tracking = pd.DataFrame({"area_code": list(baselines), "period_start": [MONTH] * len(baselines), "gap": [0] * len(baselines),
                             "baseline_total": list(baselines.values()), "actual_total": [values_by_area[a] for a in baselines]})
    return flags.bottom_quartile_with_little_improvement(
        {"metric": DTOC, "min_improvement_pct": 10}, inputs(metric_values=values, tracking=tracking))


def test_bottom_quartile_rounds_up_and_includes_the_area_at_the_cut():
    # 9 areas -> bottom quartile = ceil(9 / 4) = 3 worst: A 20, B 18, C 15 (C is the 3rd worst, at the cut);
    # each improved under 10%: A (21-20)/21 = 4.8%, B (19-18)/19 = 5.3%, C (16-15)/16 = 6.25%
    values = {"A": 20.0, "B": 18.0, "C": 15.0, "D": 5.0, "E": 6.0, "F": 7.0, "G": 8.0, "H": 9.0, "I": 10.0}
    got = _quartile_case(values, {"A": 21.0, "B": 19.0, "C": 16.0, "I": 10.5})
    assert set(got) == {"A", "B", "C"}  # I (10.0, 4th worst) is outside the quartile
    assert "rank 3 worst of 9" in got["C"]


def test_bottom_quartile_ties_at_the_cut_share_the_better_rank():
    # 8 areas -> 2 worst; B and C tie on 18 for 2nd worst: competition ranks 1, 2, 2 -> all three in
    values = {"A": 20.0, "B": 18.0, "C": 18.0, "D": 5.0, "E": 6.0, "F": 7.0, "G": 8.0, "H": 9.0}
    got = _quartile_case(values, {"A": 21.0, "B": 19.0, "C": 19.0})
    assert set(got) == {"A", "B", "C"}
    assert "rank 2 worst of 8" in got["C"]


def test_bottom_quartile_a_fall_of_exactly_the_minimum_is_enough():
    # A: (20 - 18) / 20 = exactly 10%: not "less than a 10% fall", so not flagged; B: (19 - 18) / 19 = 5.3%
    values = {"A": 18.0, "B": 18.0, "C": 5.0, "D": 6.0, "E": 7.0, "F": 8.0, "G": 9.0, "H": 10.0}
    got = _quartile_case(values, {"A": 20.0, "B": 19.0})
    assert set(got) == {"B"}


def test_funnel_outlier_uses_a_yearly_metric_only_six_months_after_its_year_ends():
    # 2016-17 ends 31 March 2017: six months on is 1 October 2017. In September 2017 (cutoff
    # 1 September - 6 months = 1 March 2017) the latest usable year is still 2015-16
    still_home = "reablement_still_at_home_91d_65plus"
    rows = []
    for year, low_area in ((2015, "LOW1516"), (2016, "LOW1617")):
        start, end = pd.Timestamp(f"{year}-04-01"), pd.Timestamp(f"{year + 1}-03-31")
        for i in range(30):
            rows.append((f"X{i:02d}", still_home, "financial_year", start, end, None, 800.0, 1_000.0))
        rows.append((low_area, still_home, "financial_year", start, end, None, 600.0, 1_000.0))
    frame = pd.DataFrame(rows, columns=["area_code", "metric_id", "period_type", "period_start", "period_end", "value", "numerator", "denominator"])
    rule = {"level": 0.998, "period_type": "rolling_12m"}

    def flagged(month):
        return set(flags.funnel_outlier(rule, inputs(period_start=pd.Timestamp(month), metric_values=frame,
                                                     directions={still_home: "high"}, statistics={still_home: "proportion"})))

    assert flagged("2017-09-01") == {"LOW1516"}
    assert flagged("2017-10-01") == {"LOW1617"}


def test_an_area_abolished_on_the_first_day_of_the_month_is_not_assessed_as_abolished_that_month():
    # flagged in March 2019, abolished 1 April 2019: in April it is gone (the day is in the month)
    def fl(areas):
        return pd.DataFrame({"area_code": areas, "rule_id": ["r"] * len(areas), "reason": [f"why {a}" for a in areas]})

    abolished = {"E10000009": pd.Timestamp("2019-04-01")}
    march = flags.update_history(None, fl(["E10000009"]), "2019-03-01", assessed={"E10000009"}, abolished=abolished)
    april = flags.update_history(march, fl([]), "2019-04-01", assessed=set(), abolished=abolished).set_index("area_code")
    assert april.loc["E10000009", "status"] == "not assessed"
    assert april.loc["E10000009", "reasons"] == "abolished on 01 April 2019 by a boundary change: no longer assessed"


def test_every_flag_carries_its_reason_into_the_flags_and_the_history():
    overall = pd.DataFrame({"area_code": list("ABC"), "overall_rank": [1, 2, 3]})
    rules = {"name": "t", "version": 1, "rules": [{"id": "b", "kind": "bottom_n_overall", "n": 1}]}
    got = flags.evaluate(rules, inputs(overall=overall))
    # C: rank 3 of 3 ranked areas, in the bottom 1
    assert got[["area_code", "rule_id", "reason"]].values.tolist() == [["C", "b", "overall rank 3 of 3: in the bottom 1"]]
    assert set(got["rule_set"]) == {"t@v1"}
    two = pd.DataFrame({"area_code": ["A", "A"], "rule_id": ["r1", "r2"], "reason": ["first why", "second why"]})
    oct_ = flags.update_history(None, two, "2017-10-01")
    nov = flags.update_history(oct_, two.iloc[[1]], "2017-11-01")
    assert oct_.set_index("area_code").loc["A", "reasons"] == "first why | second why"
    assert nov.set_index("area_code").loc["A", ["status", "reasons"]].tolist() == ["continuing", "second why"]


def test_the_analysis_step_flags_a_high_is_better_metric_on_its_low_side_and_ranks_no_england(tmp_path):
    """analysis.run wires each metric's direction into the rules: weekend discharges (high is
    better) at 10% where the other 39 areas are near 20% is significantly worse, not better."""
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    low = areas[0]
    with duckdb.connect(str(db)) as con:
        con.execute(f"""update fct_metric_values set numerator = round(denominator * 0.1), value = round(denominator * 0.1) / denominator
                        where area_code = '{low}' and metric_id = '{WKD}' and period_type = 'rolling_12m'
                          and period_start = date '2018-03-01'""")
        analysis.run(con, export=False)
        fired = con.execute("select area_code, rule_id, reason from review_flag where period_start = date '2018-03-01'").df()
        overall = con.execute("select distinct area_code from ranking_overall").df()
    funnel = fired[(fired["area_code"] == low) & (fired["rule_id"] == "funnel_outlier")]
    assert len(funnel) == 1 and "discharges following emergency admission that occur at the weekend" in funnel["reason"].iloc[0]
    assert flags.ENGLAND not in set(overall["area_code"])
    assert len(overall) == 40


def test_the_analysis_step_says_not_assessed_for_a_flagged_area_it_could_not_rank(tmp_path):
    """The synthetic warehouse's last area is a funnel outlier on emergency admissions every
    month; with no figures at all for March 2018 it has no rank then, so its flag is "not
    assessed" in March, not "cleared"."""
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    gone = synthetic_warehouse.build(db)[-1]
    with duckdb.connect(str(db)) as con:
        con.execute(f"delete from fct_metric_values where area_code = '{gone}' and period_start = date '2018-03-01'")
        analysis.run(con, export=False)
        history = con.execute(f"""select period_start, status, reasons from review_flag_history
                                  where area_code = '{gone}' and period_start >= date '2018-02-01' order by 1""").df()
        rank = con.execute(f"""select overall_rank from ranking_overall where area_code = '{gone}'
                               and period_type = 'rolling_12m' and period_start = date '2018-03-01'""").fetchone()
    assert rank is not None and rank[0] is None  # listed, without a rank
    assert history["status"].tolist() == ["continuing", "not assessed"]
    assert history["reasons"].iloc[1] == "not ranked this month (too few metric values): not assessed"


def test_the_analysis_step_lists_an_area_it_has_figures_for_but_could_not_rank(tmp_path):
    """An area whose only figures are its delayed days (every other metric missing) cannot be
    ranked (4 metric values needed): each month its history says "not assessed" with how many
    values it had, unless a rule that needs no rank flagged it."""
    import duckdb

    from carewatch import analysis, monthly_report
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    area = synthetic_warehouse.build(db)[0]
    with duckdb.connect(str(db)) as con:
        con.execute(f"delete from fct_metric_values where area_code = '{area}' and metric_id not like 'delayed_days_per_day_per_100k_18plus%'")
        analysis.run(con, export=False)
        ranked = con.execute(f"""select period_start, metrics_ranked, overall_rank from ranking_overall
                                 where area_code = '{area}' and period_type = 'rolling_12m' order by 1""").fetchall()
        history = con.execute(f"""select period_start, status, first_flagged, months_flagged, reasons from review_flag_history
                                  where area_code = '{area}' order by 1""").fetchall()
        months = [m for (m,) in con.execute("select distinct period_start from ranking_overall where period_type = 'rolling_12m' order by 1").fetchall()]
        name = con.execute(f"select hwb_name from ref_hwb_areas where hwb_code = '{area}'").fetchone()[0]
        html = monthly_report.write_report(con, tmp_path / "report").read_text()
    # the report of the last month names it under its own heading, not as an area flagged last month
    assert history[-1][1] == "not assessed"
    unflagged = html.split('id="not-assessed-unflagged">')[1].split("</p>")[0]
    assert f"{name} (not ranked this month (1 metric value to rank): not assessed)" in unflagged
    assert 'id="not-assessed">' not in html
    assert ranked and all(rank is None and count == 1 for _, count, rank in ranked)
    assert [row[0] for row in history] == months  # a row every month ranked
    for _, status, first, months_flagged, reasons in history:
        assert status in ("new", "continuing") or (
            status == "not assessed" and first is None and months_flagged == 0
            and reasons == "not ranked this month (1 metric value to rank): not assessed")
    assert any(status == "not assessed" for _, status, *_ in history)


def test_bottom_n_counts_only_the_ranked_areas_in_its_reason():
    # D and E have no overall rank (too few figures): C is rank 3 of the 3 ranked areas
    overall = pd.DataFrame({"area_code": list("ABCDE"), "overall_rank": pd.array([1, 2, 3, None, None], dtype="Int64")})
    got = flags.bottom_n_overall({"n": 1}, inputs(overall=overall))
    assert got == {"C": "overall rank 3 of 3: in the bottom 1"}


def test_target_missed_counts_a_gap_known_only_as_at_least():
    # A's February 2017 baseline is suppressed: its gaps are unknown, but its target is at most
    # the 9.4 ambition, so 20.0 is at least 10.6 above it: more than the margin of 8 every month
    months = pd.date_range("2017-10-01", periods=3, freq="MS")
    nan = float("nan")
    tracking = pd.DataFrame({"area_code": ["A"] * 3, "period_start": months, "gap": [nan] * 3, "gap_at_least": [10.6] * 3})
    got = flags.target_missed_consecutive({"margin": 8.0, "months": 3}, inputs(tracking=tracking, period_start=pd.Timestamp("2017-12-01")))
    assert got["A"].endswith("(gaps at least +10.6, at least +10.6, at least +10.6)")


def test_target_missed_ignores_months_after_this_one():
    # the analysis step hands every month's tracking to every month's rules: in December 2017
    # the gaps of January and February 2018 (on target) must not hide October-December's
    months = pd.date_range("2017-10-01", periods=5, freq="MS")
    tracking = pd.DataFrame({"area_code": ["A"] * 5, "period_start": months, "gap": [5.0, 5.0, 5.0, 0.0, 0.0]})
    tracking["gap_at_least"] = tracking["gap"]
    got = flags.target_missed_consecutive({"margin": 1.0, "months": 3}, inputs(tracking=tracking, period_start=pd.Timestamp("2017-12-01")))
    assert set(got) == {"A"} and "(gaps +5.0, +5.0, +5.0)" in got["A"]
