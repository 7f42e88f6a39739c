"""Funnel-plot significance and limits against DHSC's PHStatsMethods (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PHStatsMethods import funnels as ph_funnels
from PHStatsMethods.utils_funnel import sigma_adjustment

from carewatch.methodology import funnels


def _frame(seed, statistic):
    rng = np.random.default_rng(seed)
    n = rng.integers(200, 20_000, size=60).astype(float)
    if statistic == "proportion":
        p = rng.uniform(0.6, 0.9, size=60)
        k = np.round(n * p)
    else:
        rate = rng.uniform(0.002, 0.02, size=60)
        k = np.round(n * rate)
        k[:3] = [0, 4, 9]  # small counts exercise the exact Poisson branch
    return pd.DataFrame({"num": k, "den": n})


PH_LABELS = {"High (0.001)": "high", "Low (0.001)": "low"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_proportion_outliers_at_99_8_match_phstatsmethods(seed):
    df = _frame(seed, "proportion")
    ours = funnels.significance(df["num"], df["den"], "proportion", 0.998)
    theirs = ph_funnels.assign_funnel_significance(df.copy(), "num", "proportion", denom_col="den")["significance"]
    expected = theirs.map(lambda s: PH_LABELS.get(s, "not significant"))
    assert list(ours) == list(expected)
    assert (ours != "not significant").any(), "fixture should contain outliers"


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_rate_outliers_at_99_8_match_phstatsmethods(seed):
    df = _frame(seed, "rate")
    df["rate"] = df["num"] / df["den"] * 100_000
    ours = funnels.significance(df["num"], df["den"], "rate", 0.998)
    theirs = ph_funnels.assign_funnel_significance(
        df.copy(), "num", "rate", denom_col="den", rate="rate", rate_type="crude", multiplier=100_000
    )["significance"]
    expected = theirs.map(lambda s: PH_LABELS.get(s, "not significant"))
    assert list(ours) == list(expected)
    assert (ours != "not significant").any()


@pytest.mark.parametrize("n", [50, 400, 3_000, 25_000])
@pytest.mark.parametrize("average", [0.05, 0.45, 0.82])
def test_proportion_control_limits_match_phstatsmethods(n, average):
    ours = funnels.control_limits(average, [n], "proportion", 0.998).iloc[0]
    assert ours["lower"] == pytest.approx(max(0.0, sigma_adjustment(0.999, n, average, "low", 1)), abs=1e-9)
    assert ours["upper"] == pytest.approx(min(1.0, sigma_adjustment(0.999, n, average, "high", 1)), abs=1e-9)


def test_rate_control_limits_bracket_the_average_and_narrow_with_size():
    limits = funnels.control_limits(0.01, [1_000, 10_000, 100_000], "rate", 0.998)
    assert (limits["lower"] < 0.01).all() and (limits["upper"] > 0.01).all()
    widths = (limits["upper"] - limits["lower"]).tolist()
    assert widths[0] > widths[1] > widths[2]
    # at exposure 100,000 the expected count is 1,000: the area whose Byar lower bound is 1,000
    # has about 1,000 + 3.09 * sqrt(1,000) = 1,098 events (normal approximation, 99.8%)
    assert limits["upper"].iloc[2] * 100_000 == pytest.approx(1_098, rel=0.005)


def test_overdispersion_factor_by_hand():
    # ten z-scores; winsorising 10% each tail pulls -9 up to -2.7 and 9 down to 2.7 (numpy
    # quantiles at 0.1 and 0.9 of the sorted values -9,-2,-1,-1,0,0,1,1,2,9)
    z = pd.Series([-9.0, -2.0, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 2.0, 9.0])
    expected = (2 * 2.7**2 + 2 * 2.0**2 + 4 * 1.0**2) / 10  # = 2.658
    assert funnels.overdispersion(z) == pytest.approx(expected)
    assert funnels.overdispersion(pd.Series([0.1, -0.2, 0.3, 0.0])) == 1.0  # underdispersed: no change


def test_overdispersed_limits_flag_fewer_areas_than_plain_limits():
    rng = np.random.default_rng(7)
    n = np.full(100, 50_000.0)
    true_rates = rng.uniform(0.008, 0.012, size=100)  # real between-area differences
    k = pd.Series(rng.poisson(true_rates * n))
    plain = funnels.significance(k, pd.Series(n), "rate", 0.998)
    adjusted = funnels.significance_overdispersed(k, pd.Series(n), "rate", 0.998)
    assert (plain != "not significant").sum() > 30
    assert (adjusted != "not significant").sum() < (plain != "not significant").sum()
    assert set(adjusted[adjusted != "not significant"].index) <= set(plain[plain != "not significant"].index)


def test_overdispersed_limits_by_hand():
    # rate 0.01, phi 4, 99.8%: 0.01 +/- 3.0902 x 2 x sqrt(0.01 / 10,000) = 0.01 +/- 0.0061805
    limits = funnels.overdispersed_limits(0.01, [10_000], "rate", 0.998, 4.0).iloc[0]
    assert limits["lower"] == pytest.approx(0.01 - 3.090232 * 2 * 0.001, rel=1e-6)
    assert limits["upper"] == pytest.approx(0.01 + 3.090232 * 2 * 0.001, rel=1e-6)
    # proportion 0.8 at n = 100, phi 1, 95%: 0.8 +/- 1.96 x 0.04; clipped to [0, 1] when wide
    limits = funnels.overdispersed_limits(0.8, [100, 4], "proportion", 0.95, 1.0)
    assert limits["lower"].iloc[0] == pytest.approx(0.8 - 1.959964 * 0.04, rel=1e-6)
    assert limits["upper"].iloc[1] == 1.0


def test_poisson_interval_is_byar_from_10_events_and_exact_below():
    # Byar at 95% (z = 1.959964), observed 100: lower 100 x (1 - 1/900 - z/(3 x 10))^3
    # = 100 x 0.9335568^3 = 81.3621; upper 101 x (1 - 1/909 + z/(3 x sqrt 101))^3 = 101 x 1.0639078^3 = 121.6279
    assert funnels.poisson_interval(100, 0.95) == pytest.approx((81.3621, 121.6279), rel=1e-5)
    # 10 events is Byar's: 10 x (1 - 1/90 - z/(3 x sqrt 10))^3 = 10 x 0.7822906^3 = 4.78745;
    # 11 x (1 - 1/99 + z/(3 x sqrt 11))^3 = 11 x 1.1868828^3 = 18.39146 (the exact interval is 4.79539, 18.39036)
    assert funnels.poisson_interval(10, 0.95) == pytest.approx((4.78745, 18.39146), rel=1e-5)
    # 9 events is exact: chi-squared quantiles (tables) chi2(0.025, 18) / 2 = 8.230746 / 2, chi2(0.975, 20) / 2 = 34.169607 / 2
    assert funnels.poisson_interval(9, 0.95) == pytest.approx((4.115373, 17.084803), rel=1e-5)


def test_proportion_z_scores_by_hand():
    # average (30 + 50 + 70) / 300 = 0.5; expected 50 each; sd sqrt(100 x 0.5 x 0.5) = 5 -> z -4, 0, 4
    z = funnels.z_scores(pd.Series([30.0, 50.0, 70.0]), pd.Series([100.0, 100.0, 100.0]), "proportion")
    assert z.tolist() == pytest.approx([-4.0, 0.0, 4.0])
    # rates, the average pooled (not the mean of the rates, 0.0433): 150 / 3,000 = 0.05;
    # expected 25, 50, 75 -> z (10 - 25) / 5 = -3, 0, (90 - 75) / sqrt(75) = 1.7320508
    z = funnels.z_scores(pd.Series([10.0, 50.0, 90.0]), pd.Series([500.0, 1_000.0, 1_500.0]), "rate")
    assert z.tolist() == pytest.approx([-3.0, 0.0, 3 ** 0.5])


def test_overdispersed_significance_widens_by_the_square_root_of_phi():
    # exposure 1,000 each, 1,000 events in all: average 0.1, z = (events - 100) / 10 = -6, -2, -1, -1, 0, 0, 1, 1, 2, 6
    # winsorised 10%: quantiles -6 + 0.9 x 4 = -2.4 and 2.4; phi = (2 x 2.4^2 + 2 x 2^2 + 4 x 1^2) / 10 = 2.352
    # limit 3.090232 x sqrt(2.352) = 4.739: only the two z = 6 areas are outside (3.090232 x 2.352 = 7.27 would keep them in)
    events = pd.Series([40.0, 80, 90, 90, 100, 100, 110, 110, 120, 160])
    labels = funnels.significance_overdispersed(events, pd.Series([1_000.0] * 10), "rate", 0.998)
    assert labels.tolist() == ["low"] + ["not significant"] * 8 + ["high"]
