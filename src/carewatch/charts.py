"""Chart builders for the monthly report: Altair (Vega-Lite) specs rendered to inline SVG.

SVG rendered by vl-convert needs no script and no network to display, and prints cleanly.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd


AGENCY_COLOURS = alt.Scale(domain=["NHS", "Social care", "Both"], range=["#005eb8", "#ed8b00", "#768692"])


def to_svg(chart: alt.TopLevelMixin) -> str:
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_dict())


def dtoc_over_time(rates: pd.DataFrame, target: pd.DataFrame | None, title: str, width: int = 560, height: int = 180) -> alt.TopLevelMixin:
    """Delayed days per day per 100,000 aged 18+ by agency (stacked), with the target line.

    ``rates``: ``period_start``, ``agency`` (NHS / Social care / Both), ``value``;
    ``target``: ``period_start``, ``target`` (may be None).
    """
    return _dtoc_layers(rates, target if target is not None and len(target) else None, title, width, height)


def _dtoc_layers(rates, target, title: str, width: int, height: int) -> alt.TopLevelMixin:
    """``rates`` and ``target``: data frames, or named data sets (``alt.NamedData``)."""
    area = (
        alt.Chart(rates)
        .mark_area()
        .encode(
            x=alt.X("period_start:T", title=None),
            y=alt.Y("value:Q", stack="zero", title="delayed days / day / 100k 18+"),
            color=alt.Color("agency:N", scale=AGENCY_COLOURS, title=None),
            order=alt.Order("agency_order:Q"),
        )
    )
    layers = [area]
    if target is not None:
        layers.append(
            alt.Chart(target).mark_line(color="#d5281b", strokeDash=[5, 3], strokeWidth=2).encode(x="period_start:T", y="target:Q")
        )
    return alt.layer(*layers).properties(title=title, width=width, height=height)


class DtocOverTime:
    """:func:`dtoc_over_time` for many areas (one chart per area profile).

    The Vega-Lite spec is built and schema-checked once per layout (with or without a target
    line) with named data sets; each area's chart is that spec with the area's rows as the
    data sets, serialised as Altair serialises a data frame. The SVG is the one
    ``to_svg(dtoc_over_time(...))`` gives, without building the chart through Altair again.
    """

    def __init__(self, title: str, width: int = 560, height: int = 180):
        self.title, self.width, self.height = title, width, height
        self._specs: dict[bool, dict] = {}

    def _spec(self, with_target: bool) -> dict:
        if with_target not in self._specs:
            target = alt.NamedData(name="target") if with_target else None
            chart = _dtoc_layers(alt.NamedData(name="rates"), target, self.title, self.width, self.height)
            self._specs[with_target] = chart.to_dict(validate=True)
        return self._specs[with_target]

    def svg(self, rates: pd.DataFrame, target: pd.DataFrame | None) -> str:
        import vl_convert
        from altair.utils import sanitize_pandas_dataframe

        # sanitize_pandas_dataframe works on a copy, as Altair's own to_dict does
        datasets = {"rates": sanitize_pandas_dataframe(rates).to_dict("records")}
        with_target = target is not None and len(target) > 0
        if with_target:
            datasets["target"] = sanitize_pandas_dataframe(target).to_dict("records")
        return vl_convert.vegalite_to_svg({**self._spec(with_target), "datasets": datasets})


def funnel_plot(points: pd.DataFrame, test, multiplier: float, title: str | list[str], unit: str | None = None,
                denominator: str | None = None) -> alt.TopLevelMixin:
    """Values against denominators with the limits of ``test`` (a review rule's
    :class:`carewatch.methodology.flags.FunnelTest`: its level, widened for overdispersion when
    the rule is) and the same test's 95% limits; flagged areas labelled.

    ``points``: ``area_name``, ``denominator``, ``value``, ``flagged`` (bool); ``title`` one
    line or several; ``unit`` the y axis's title (a proportion is drawn as a percentage);
    ``denominator`` what the x axis counts.
    """
    import dataclasses

    average = test.average
    dmin, dmax = max(points["denominator"].min() * 0.8, 1.0), points["denominator"].max() * 1.1
    grid = np.geomspace(dmin, dmax, 60)
    limits = []
    for lvl in (0.95, test.level):
        frame = dataclasses.replace(test, level=lvl).limits(grid)
        label = f"{lvl * 100:g}%" + (" (overdispersed)" if test.overdispersion else "")
        for side in ("lower", "upper"):
            limits.append(pd.DataFrame({"denominator": frame["denominator"], "limit": frame[side] * multiplier, "band": label, "side": side}))
    limits = pd.concat(limits, ignore_index=True)
    limits["line"] = limits["band"] + " " + limits["side"]
    base_x = alt.X("denominator:Q", scale=alt.Scale(type="log"), title=f"{denominator or 'denominator'} (log scale)")
    lines = alt.Chart(limits).mark_line(strokeWidth=1).encode(
        x=base_x,
        y=alt.Y("limit:Q", title=unit),  # layers share the y axis: the same title on each, or none shows
        detail="line:N",
        color=alt.Color("band:N", scale=alt.Scale(range=["#aeb7bd", "#425563"]), title="control limits"),
    )
    mean = alt.Chart(pd.DataFrame({"y": [average * multiplier]})).mark_rule(color="#212b32", strokeDash=[2, 2]).encode(
        y=alt.Y("y:Q", title=unit))
    dots = alt.Chart(points).mark_circle(size=28).encode(
        x=base_x,
        y=alt.Y("value:Q", scale=alt.Scale(zero=False), title=unit,
                axis=alt.Axis(format="%") if unit and unit.startswith("proportion") else alt.Axis()),
        color=alt.condition("datum.flagged", alt.value("#d5281b"), alt.value("#005eb8")),
        tooltip=["area_name:N", "value:Q", "denominator:Q"],
    )
    labels = dots.transform_filter("datum.flagged").mark_text(align="left", dx=5, fontSize=9, color="#d5281b").encode(text="area_name:N")
    return alt.layer(lines, mean, dots, labels).properties(title=title, width=330, height=220)
