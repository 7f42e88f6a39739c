"""DTOC target tracking against hand-worked cases: above, below and exactly at 9.4."""

from __future__ import annotations

import pandas as pd
import pytest

from carewatch.methodology import targets

# (area, month, total, nhs, social_care, both): delayed days per day per 100,000 aged 18+
ROWS = [
    ("HIGH", "2016-09", 16.0, 8.0, 7.0, 1.0),
    ("HIGH", "2017-02", 15.0, 8.0, 6.0, 1.0),
    ("HIGH", "2017-09", 9.0, 5.0, 3.5, 0.5),
    ("LOW", "2016-09", 4.0, 2.0, 2.0, 0.0),
    ("LOW", "2017-02", 5.0, 3.0, 2.0, 0.0),
    ("LOW", "2017-09", 5.5, 3.0, 2.5, 0.0),
    ("EXACT", "2016-09", 9.4, 5.0, 4.4, 0.0),
    ("EXACT", "2017-02", 9.4, 5.0, 4.4, 0.0),
    ("EXACT", "2017-09", 9.4, 5.0, 4.4, 0.0),
]


@pytest.fixture
def rates():
    records = []
    for area, month, total, nhs, sc, both in ROWS:
        for agency, value in (("total", total), ("nhs", nhs), ("social_care", sc), ("both", both)):
            records.append({"area_code": area, "period_start": pd.Timestamp(month + "-01"), "agency": agency, "value": value})
    return pd.DataFrame(records)


@pytest.fixture
def tracked(rates):
    return targets.track(rates, targets.load_target_set()).set_index("area_code")


def test_area_above_the_ambition_must_reach_it(tracked):
    row = tracked.loc["HIGH"]
    assert row["target_total"] == pytest.approx(9.4)
    # reduction 15 - 9.4 = 5.6 shared by baseline shares: NHS 8 + 1/2 = 8.5 of 15 -> 3.17333
    assert row["target_nhs"] == pytest.approx(8.5 - 5.6 * 8.5 / 15)  # 5.32667
    assert row["target_social_care"] == pytest.approx(6.5 - 5.6 * 6.5 / 15)  # 4.07333
    assert row["target_nhs"] + row["target_social_care"] == pytest.approx(9.4)
    assert row["gap"] == pytest.approx(-0.4) and row["on_track"]
    assert row["change_since_baseline"] == pytest.approx(-6.0)


def test_area_below_the_ambition_must_hold_its_baseline(tracked):
    row = tracked.loc["LOW"]
    assert row["target_total"] == pytest.approx(5.0)
    assert (row["target_nhs"], row["target_social_care"]) == pytest.approx((3.0, 2.0))
    assert row["gap"] == pytest.approx(0.5) and not row["on_track"]
    assert not row["social_care_on_track"]


def test_area_exactly_at_the_ambition_keeps_it_and_is_on_track_at_it(tracked):
    row = tracked.loc["EXACT"]
    assert row["target_total"] == pytest.approx(9.4)
    assert row["gap"] == pytest.approx(0.0) and row["on_track"]


def test_the_five_2017_tests(tracked):
    expected = {
        #            met Sep SC, improved since Sep16, since Feb17, not bottom quartile, SC <= 2.6
        "HIGH": (True, True, True, True, False),   # SC 3.75 vs target 4.073; 3.75 < 7.5, < 6.5
        "LOW": (False, False, False, True, True),  # SC 2.5 > 2.0 target; 2.5 > 2.0 both times
        "EXACT": (True, False, False, False, False),  # SC 4.4 is the worst of 3 (ceil(3/4) = 1)
    }
    columns = [
        "test_met_september_social_care_expectation",
        "test_improved_since_september_2016",
        "test_improved_since_february_2017",
        "test_not_bottom_quartile_social_care",
        "test_social_care_rate_at_most_2_6",
    ]
    for area, values in expected.items():
        assert tuple(bool(tracked.loc[area, c]) for c in columns) == values, area


def test_a_later_target_set_is_a_new_file_not_code(tmp_path, rates):
    text = (targets.paths.config_dir() / "targets" / "expectations-2017-18.yaml").read_text()
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(text.replace("national_ambition: 9.4", "national_ambition: 8.0").replace("version: 1", "version: 2"))
    tracked = targets.track(rates, targets.load_target_set(str(stricter))).set_index("area_code")
    # HIGH now needs 8.0 and its 9.0 is off track; EXACT (9.4 >= 8.0) must come down to 8.0
    assert tracked.loc["HIGH", "target_total"] == pytest.approx(8.0) and not tracked.loc["HIGH", "on_track"]
    assert tracked.loc["EXACT", "target_total"] == pytest.approx(8.0)
    assert set(tracked["target_set"]) == {"dtoc-expectations-2017-18@v2"}


def test_months_outside_the_validity_period_are_not_tracked(tracked):
    assert set(tracked["period_start"]) == {pd.Timestamp("2017-09-01")}


def test_components_are_worked_from_the_days_so_equal_days_give_equal_rates():
    """Somerset's published figures: 518 social-care and 153 "both" delayed days in September
    2016, 537 and 115 in November 2017: 594.5 social-care days (half of "both") both times,
    over the same 439,790 aged 18+ and 30 days. Not lower, so not improved. Adding the two
    rates instead makes November lower in the last bit."""
    denominator = 439_790 * 30
    days = {  # month: (total, nhs, social_care, both) delayed days, as published
        "2016-09": (1417, 746, 518, 153),
        "2017-02": (1300, 700, 500, 100),
        "2017-11": (1359, 707, 537, 115),
    }
    records = []
    for month, counts in days.items():
        month_denominator = 439_790 * (28 if month == "2017-02" else 30)
        for agency, count in zip(("total", "nhs", "social_care", "both"), counts):
            records.append({"area_code": "E10000027", "period_start": pd.Timestamp(month + "-01"), "agency": agency,
                            "numerator": float(count), "denominator": float(month_denominator), "multiplier": 100000.0,
                            "value": count / month_denominator * 100000})
    rates = pd.DataFrame(records)

    def rate(count):
        return count / denominator * 100000

    assert rate(537) + 0.5 * rate(115) < rate(518) + 0.5 * rate(153)  # the rounding the counts avoid
    tracked = targets.track(rates, targets.load_target_set()).set_index("period_start")
    november = tracked.loc[pd.Timestamp("2017-11-01")]
    assert november["actual_social_care"] == (537 + 57.5) / denominator * 100000
    assert november["actual_nhs"] == (707 + 57.5) / denominator * 100000
    assert november["actual_total"] == 1359 / denominator * 100000  # the warehouse's value, to the bit
    assert not november["test_improved_since_september_2016"]  # equal is not lower
    # without the days (rates alone) the components are still worked, from the rates
    by_rate = targets.components(rates.drop(columns=["numerator", "denominator", "multiplier"]), targets.load_target_set())
    assert by_rate["social_care"].tolist() == pytest.approx(
        [(518 + 76.5) / denominator * 1e5, (500 + 50) / (439_790 * 28) * 1e5, (537 + 57.5) / denominator * 1e5])


def test_an_area_month_without_its_days_does_not_stop_the_others_being_worked_from_theirs():
    """One suppressed month elsewhere (Poole, April 2019: no days published) left every area's
    components summed from rates; the choice is made area-month by area-month."""
    denominator = 439_790 * 30
    records = []
    for month, counts in {"2016-09": (1417, 746, 518, 153), "2017-02": (1300, 700, 500, 100), "2017-11": (1359, 707, 537, 115)}.items():
        month_denominator = 439_790 * (28 if month == "2017-02" else 30)
        for agency, count in zip(("total", "nhs", "social_care", "both"), counts):
            records.append({"area_code": "E10000027", "period_start": pd.Timestamp(month + "-01"), "agency": agency,
                            "numerator": float(count), "denominator": float(month_denominator), "multiplier": 100000.0,
                            "value": count / month_denominator * 100000})
    for agency in ("total", "nhs", "social_care", "both"):  # suppressed: no days, no rate
        records.append({"area_code": "E06000029", "period_start": pd.Timestamp("2017-11-01"), "agency": agency,
                        "numerator": None, "denominator": 150_000.0 * 30, "multiplier": 100000.0, "value": None})
    for agency, rate in (("total", 6.0), ("nhs", 3.0), ("social_care", 2.0), ("both", 1.0)):  # a rate without days
        records.append({"area_code": "E06000028", "period_start": pd.Timestamp("2017-11-01"), "agency": agency,
                        "numerator": None, "denominator": None, "multiplier": None, "value": rate})
    comp = targets.components(pd.DataFrame(records), targets.load_target_set()).set_index(["area_code", "period_start"])
    november = pd.Timestamp("2017-11-01")
    assert comp.loc[("E10000027", november), "social_care"] == (537 + 57.5) / denominator * 100000  # from the days, to the bit
    assert comp.loc[("E10000027", november), "social_care"] == comp.loc[("E10000027", pd.Timestamp("2016-09-01")), "social_care"]
    assert comp.loc[("E06000029", november)].isna().all()  # suppressed stays unknown
    assert comp.loc[("E06000028", november)].tolist() == [6.0, 3.5, 2.5]  # from its rates
    assert len(comp) == 5  # no area-month made up


def _rates(rows):
    """Long rates from (area, month, total, nhs, social_care, both) tuples, as the fixture makes them."""
    records = []
    for area, month, total, nhs, sc, both in rows:
        for agency, value in (("total", total), ("nhs", nhs), ("social_care", sc), ("both", both)):
            records.append({"area_code": area, "period_start": pd.Timestamp(month + "-01"), "agency": agency, "value": value})
    return pd.DataFrame(records)


def _target_set(tmp_path, old, new):
    text = (targets.paths.config_dir() / "targets" / "expectations-2017-18.yaml").read_text()
    assert old in text
    path = tmp_path / "set.yaml"
    path.write_text(text.replace(old, new))
    return targets.load_target_set(str(path))


def test_components_exactly_at_their_targets_are_on_track(tracked):
    # LOW holds its baseline: NHS 3.0 against a 3.0 target (reduction 0); EXACT: social care
    # 4.4 against 4.4 (baseline 9.4 = ambition, reduction 0). "At most" the target is on track.
    assert tracked.loc["LOW", "target_nhs"] == 3.0 and tracked.loc["LOW", "actual_nhs"] == 3.0
    assert bool(tracked.loc["LOW", "nhs_on_track"])
    assert tracked.loc["EXACT", "target_social_care"] == 4.4 and tracked.loc["EXACT", "actual_social_care"] == 4.4
    assert bool(tracked.loc["EXACT", "social_care_on_track"])


def test_a_social_care_rate_of_exactly_2_6_passes_the_at_most_2_6_test():
    rows = [("AT", "2017-02", 6.0, 3.4, 2.6, 0.0), ("AT", "2017-09", 6.0, 3.4, 2.6, 0.0)]
    tracked = targets.track(_rates(rows), targets.load_target_set()).set_index("area_code")
    assert tracked.loc["AT", "actual_social_care"] == 2.6  # 2.6 + 0.5 x 0.0
    assert bool(tracked.loc["AT", "test_social_care_rate_at_most_2_6"])


def test_the_both_share_comes_from_the_target_set(tmp_path, rates):
    # both_to_nhs 0.25: "both" days go one quarter to the NHS, three quarters to social care
    tracked = targets.track(rates, _target_set(tmp_path, "both_to_nhs: 0.5", "both_to_nhs: 0.25")).set_index("area_code")
    high = tracked.loc["HIGH"]
    # September: NHS 5.0 + 0.25 x 0.5 = 5.125; social care 3.5 + 0.75 x 0.5 = 3.875
    assert (high["actual_nhs"], high["actual_social_care"]) == pytest.approx((5.125, 3.875))
    # February baseline: NHS 8 + 0.25 = 8.25, social care 6 + 0.75 = 6.75 of 15; reduction 15 - 9.4 = 5.6,
    # NHS share 8.25 / 15 = 0.55: targets 8.25 - 5.6 x 0.55 = 5.17 and 6.75 - 5.6 x 0.45 = 4.23
    assert (high["baseline_nhs"], high["baseline_social_care"]) == pytest.approx((8.25, 6.75))
    assert (high["target_nhs"], high["target_social_care"]) == pytest.approx((5.17, 4.23))


def test_the_tolerance_of_the_target_set_applies_to_every_on_track_test(tmp_path, rates):
    tracked = targets.track(rates, _target_set(tmp_path, "tolerance: 0.0", "tolerance: 0.6")).set_index("area_code")
    low = tracked.loc["LOW"]
    # LOW: 5.5 against a 5.0 target, gap 0.5 <= 0.6; social care 2.5 against 2.0 + 0.6
    assert low["gap"] == pytest.approx(0.5) and bool(low["on_track"])
    assert bool(low["social_care_on_track"])
    assert bool(low["test_met_september_social_care_expectation"])  # 2.5 <= 2.0 + 0.6


def test_every_month_to_valid_to_is_tracked_and_the_september_test_reads_september():
    rows = [
        ("HIGH", "2016-09", 16.0, 8.0, 7.0, 1.0),
        ("HIGH", "2017-02", 15.0, 8.0, 6.0, 1.0),
        ("HIGH", "2017-09", 9.0, 5.0, 3.5, 0.5),    # social care 3.75: meets its 4.07333 target
        ("HIGH", "2017-10", 12.0, 6.0, 5.5, 0.5),   # social care 5.75: would not
        ("HIGH", "2018-03", 12.0, 6.0, 5.5, 0.5),   # valid_to: the set's last month
        ("HIGH", "2018-04", 12.0, 6.0, 5.5, 0.5),   # after it
    ]
    tracked = targets.track(_rates(rows), targets.load_target_set()).set_index("period_start")
    assert list(tracked.index) == [pd.Timestamp("2017-09-01"), pd.Timestamp("2017-10-01"), pd.Timestamp("2018-03-01")]
    # "met the September 2017 social-care expectation" is about September, whatever the month
    assert tracked["test_met_september_social_care_expectation"].tolist() == [True, True, True]
    assert not tracked.loc[pd.Timestamp("2017-10-01"), "social_care_on_track"]  # 5.75 > 4.07333


def test_an_area_without_the_earlier_month_is_unknown_on_improved_since_not_failed():
    # NEW has no September 2016 row: "improved since September 2016" cannot be judged
    rows = [("NEW", "2017-02", 5.0, 3.0, 2.0, 0.0), ("NEW", "2017-09", 4.0, 2.5, 1.5, 0.0)]
    tracked = targets.track(_rates(rows), targets.load_target_set()).set_index("area_code")
    assert pd.isna(tracked.loc["NEW", "test_improved_since_september_2016"])
    assert bool(tracked.loc["NEW", "test_improved_since_february_2017"])  # 1.5 < 2.0


def test_england_is_not_tracked_as_an_area(rates):
    england = _rates([(targets.ENGLAND, "2016-09", 12.0, 6.0, 5.0, 1.0), (targets.ENGLAND, "2017-02", 12.0, 6.0, 5.0, 1.0),
                      (targets.ENGLAND, "2017-09", 10.0, 5.0, 4.0, 1.0)])
    tracked = targets.track(pd.concat([rates, england], ignore_index=True), targets.load_target_set())
    assert sorted(tracked["area_code"]) == ["EXACT", "HIGH", "LOW"]


def test_areas_tied_for_worst_social_care_are_both_in_the_bottom_quartile():
    # 4 areas in September 2017, social care (both 0) W1 5.0, W2 5.0, B 1.0, C 2.0: bottom quartile =
    # ceil(4 / 4) = 1 worst; W1 and W2 tie for worst (competition rank 1, 1) and both fail the test
    rows = []
    for area, sc in (("W1", 5.0), ("W2", 5.0), ("B", 1.0), ("C", 2.0)):
        rows += [(area, "2017-02", sc + 1.0, 1.0, sc, 0.0), (area, "2017-09", sc + 1.0, 1.0, sc, 0.0)]
    tracked = targets.track(_rates(rows), targets.load_target_set()).set_index("area_code")
    assert tracked["test_not_bottom_quartile_social_care"].to_dict() == {"B": True, "C": True, "W1": False, "W2": False}


def test_an_area_without_a_baseline_month_is_not_tracked(rates):
    # NOBASE has September 2017 but no February 2017: it has no target, so no tracking rows
    extra = _rates([("NOBASE", "2017-09", 20.0, 10.0, 10.0, 0.0)])
    tracked = targets.track(pd.concat([rates, extra], ignore_index=True), targets.load_target_set())
    assert sorted(tracked["area_code"]) == ["EXACT", "HIGH", "LOW"]


def test_a_month_without_figures_is_unknown_on_every_test_not_failed(rates):
    # SUPP's September 2017 is suppressed (no figures at all); its February 2017 baseline and
    # September 2016 exist. Nothing about September can be judged: every on-track column and
    # every test reads null, not False. (An analyst would otherwise read a suppressed council
    # as having failed its targets.)
    nan = float("nan")
    supp = _rates([("SUPP", "2016-09", 8.0, 4.0, 4.0, 0.0), ("SUPP", "2017-02", 8.0, 4.0, 4.0, 0.0),
                   ("SUPP", "2017-09", nan, nan, nan, nan)])
    tracked = targets.track(pd.concat([rates, supp], ignore_index=True), targets.load_target_set()).set_index("area_code")
    row = tracked.loc["SUPP"]
    assert (row["target_total"], row["target_nhs"], row["target_social_care"]) == pytest.approx((8.0, 4.0, 4.0))
    for column in ("on_track", "nhs_on_track", "social_care_on_track", "test_improved_since_september_2016",
                   "test_improved_since_february_2017", "test_not_bottom_quartile_social_care",
                   "test_social_care_rate_at_most_2_6", "test_met_september_social_care_expectation"):
        assert pd.isna(row[column]), column
    # the other areas' quartile is of the 3 areas with a figure: ceil(3 / 4) = 1 worst, EXACT (4.4)
    assert tracked["test_not_bottom_quartile_social_care"].drop("SUPP").to_dict() == {"HIGH": True, "LOW": True, "EXACT": False}


def test_a_suppressed_baseline_leaves_the_targets_unknown():
    # NOBASE's February 2017 is suppressed: its target is min(baseline, 9.4) of an unknown
    # baseline, so unknown, not 9.4; September 2017 (6.0) cannot be called on or off track.
    nan = float("nan")
    rows = [("NOBASE", "2017-02", nan, nan, nan, nan), ("NOBASE", "2017-09", 6.0, 3.0, 3.0, 0.0)]
    row = targets.track(_rates(rows), targets.load_target_set()).set_index("area_code").loc["NOBASE"]
    assert pd.isna(row["target_total"]) and pd.isna(row["target_nhs"]) and pd.isna(row["target_social_care"])
    assert pd.isna(row["on_track"]) and pd.isna(row["nhs_on_track"]) and pd.isna(row["social_care_on_track"])
    assert pd.isna(row["gap"]) and row["gap_at_least"] == pytest.approx(6.0 - 9.4)  # could be on track or not
    assert pd.isna(row["test_met_september_social_care_expectation"])
    assert pd.isna(row["test_improved_since_february_2017"])
    assert bool(row["test_not_bottom_quartile_social_care"]) is False  # the only area: ceil(1 / 4) = 1 worst
    assert bool(row["test_social_care_rate_at_most_2_6"]) is False  # 3.0 > 2.6


def test_a_suppressed_baseline_still_shows_an_area_above_the_ambition_off_track():
    # the target is min(baseline, 9.4): whatever the suppressed baseline was, 20.0 is at least
    # 20.0 - 9.4 = 10.6 above it, so off track (gap itself unknown)
    nan = float("nan")
    rows = [("HIGHNB", "2017-02", nan, nan, nan, nan), ("HIGHNB", "2017-09", 20.0, 10.0, 10.0, 0.0)]
    row = targets.track(_rates(rows), targets.load_target_set()).set_index("area_code").loc["HIGHNB"]
    assert pd.isna(row["gap"]) and row["gap_at_least"] == pytest.approx(10.6)
    assert bool(row["on_track"]) is False
    assert pd.isna(row["nhs_on_track"]) and pd.isna(row["social_care_on_track"])  # no bound on their targets


def test_a_target_set_tracks_the_metric_its_file_names(tmp_path, monkeypatch, rates):
    """``metric`` in config/targets/<set>.yaml says which metric (with its agency breakdown in
    fct_metric_values) the set tracks: the analysis reads that metric's rows, no other."""
    import shutil

    from carewatch import analysis, paths

    dtoc = "delayed_days_per_day_per_100k_18plus"

    def fct_rows(metric: str, scale: float) -> pd.DataFrame:
        rows = rates.assign(metric_id=metric + rates["agency"].map(lambda a: "" if a == "total" else f"__{a}"),
                            value=rates["value"] * scale, period_type="month",
                            numerator=float("nan"), denominator=float("nan"), multiplier=float("nan"))  # rates only
        return rows.drop(columns="agency")

    mv = pd.concat([fct_rows(dtoc, 1.0), fct_rows("other_delays_per_100k", 2.0)], ignore_index=True)
    assert targets.tracked_metric() == dtoc
    shipped = analysis.track_targets(mv).set_index(["area_code", "period_start"])
    assert shipped.loc[("HIGH", pd.Timestamp("2017-09-01")), "actual_total"] == 9.0
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    path = config / "targets" / "expectations-2017-18.yaml"
    path.write_text(path.read_text().replace(f"metric: {dtoc}", "metric: other_delays_per_100k"))
    # a target set's metric is one of config/metrics.yaml with an agency breakdown (checked since config_check)
    metrics = config / "metrics.yaml"
    metrics.write_text(metrics.read_text().replace("metrics:\n", "metrics:\n  - {id: other_delays_per_100k, name: Other delays, unit: "
                                                   "days, direction: low, source: dtoc_la, ci_method: byar, multiplier: 100000, "
                                                   "definition: for the test, breakdowns: {agency: [nhs, social_care, both]}}\n", 1))
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    assert targets.tracked_metric() == "other_delays_per_100k"
    other = analysis.track_targets(mv).set_index(["area_code", "period_start"])
    assert other.loc[("HIGH", pd.Timestamp("2017-09-01")), "actual_total"] == 18.0  # the other metric's rows
    assert other.loc[("HIGH", pd.Timestamp("2017-09-01")), "baseline_total"] == 30.0
    # two sets on different metrics: the report, which draws one metric against its targets, says so
    (config / "targets" / "z-2018-19.yaml").write_text(path.read_text().replace("metric: other_delays_per_100k", f"metric: {dtoc}")
                                                       .replace("name: dtoc-expectations-2017-18", "name: dtoc-expectations-2018-19"))  # a set of its own
    with pytest.raises(ValueError, match="track different metrics"):
        targets.tracked_metric()
