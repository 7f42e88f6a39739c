"""Report charts: the per-area chart template renders exactly what Altair renders directly."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from carewatch import charts


def rates(months: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    periods = pd.date_range("2015-08-01", periods=months, freq="MS")
    frame = pd.DataFrame(
        [(p, agency, float(rng.random() * 12), order) for p in periods for order, agency in enumerate(["NHS", "Social care", "Both"])],
        columns=["period_start", "agency", "value", "agency_order"],
    )
    frame.loc[4, "value"] = np.nan  # a suppressed month
    return frame


def target(months: int) -> pd.DataFrame:
    return pd.DataFrame({"period_start": pd.date_range("2017-04-01", periods=months, freq="MS"), "target": np.linspace(9.4, 6.1, months)})


@pytest.mark.parametrize("with_target", [True, False])
def test_templated_area_chart_is_the_chart_altair_renders(with_target):
    template = charts.DtocOverTime("Delayed days against target", width=420, height=120)
    for seed, months in ((1, 31), (2, 7)):  # the template is reused across areas of different lengths
        r, t = rates(months, seed), (target(12) if with_target else None)
        direct = charts.to_svg(charts.dtoc_over_time(r, t, "Delayed days against target", width=420, height=120))
        assert template.svg(r, t) == direct
        assert direct.count("<path") >= 3  # the three agency areas are drawn, not an empty chart


def test_an_empty_target_frame_draws_no_target_line():
    template = charts.DtocOverTime("t")
    r = rates(10, 3)
    assert template.svg(r, target(0)) == template.svg(r, None) == charts.to_svg(charts.dtoc_over_time(r, None, "t"))
    assert template.svg(r, target(12)) != template.svg(r, None)


def test_a_funnel_plot_titles_its_axes_and_keeps_its_whole_title():
    import pandas as pd

    from carewatch.methodology.flags import FunnelTest

    rows = pd.DataFrame({"area_code": ["A", "B", "C"], "numerator": [30.0, 60.0, 10.0], "denominator": [100.0, 200.0, 50.0],
                         "value": [0.3, 0.3, 0.2]})
    test = FunnelTest(metric="m", statistic="proportion", period_type="financial_year", period_start=pd.Timestamp("2016-04-01"),
                      rows=rows, labels=pd.Series(["not significant"] * 3), average=100 / 350, phi=1.0, level=0.998,
                      overdispersion=False)
    points = pd.DataFrame({"area_name": ["A", "B", "C"], "denominator": rows["denominator"], "value": rows["value"],
                           "flagged": [False, False, False]})
    title = ["Proportion of older people (65+) still at home 91 days after", "discharge into reablement (2016-17)"]
    svg = charts.to_svg(charts.funnel_plot(points, test, 1.0, title, "proportion (%)", "older people discharged into reablement"))
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)  # what is drawn (the SVG's descriptions also name fields)
    assert "older people discharged into reablement (log scale)" in texts and "proportion (%)" in texts
    lines = re.findall(r"<tspan[^>]*>([^<]*)</tspan>", svg)  # a title of several lines is drawn line by line
    assert all(line in lines for line in title)  # every line, none cut
    assert "30%" in texts  # proportions drawn as percentages
