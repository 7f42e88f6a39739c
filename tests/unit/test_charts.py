"""Report charts: the per-area chart template renders exactly what Altair renders directly."""

from __future__ import annotations

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
