"""Funnel plots: control limits and outlier significance, as Fingertips does them.

An area is a significant outlier at a level (95% or 99.8%) when the average of all areas
(total numerator over total denominator) lies outside the area's own confidence interval at
that level: the Wilson score interval for proportions, Byar's approximation to the Poisson
interval for rates (the exact Poisson interval below 10 events). The funnel's control limits
for drawing are the same test inverted: for each denominator, the values at which an area
would just become significant.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import chi2, norm


# the funnel statistic of a metric, from its confidence-interval method (config/metrics.yaml)
STATISTIC_OF_CI_METHOD = {"byar": "rate", "wilson": "proportion"}


def _z(level: float) -> float:
    return float(norm.ppf(0.5 + level / 2))


def wilson_interval(k: float, n: float, level: float) -> tuple[float, float]:
    z = _z(level)
    centre = 2 * k + z * z
    half = z * math.sqrt(z * z + 4 * k * (1 - k / n))
    denom = 2 * (n + z * z)
    return (centre - half) / denom, (centre + half) / denom


def poisson_interval(observed: float, level: float) -> tuple[float, float]:
    """Byar's interval for a count, exact (chi-squared) below 10 events."""
    alpha = 1 - level
    if observed < 10:
        lower = 0.0 if observed == 0 else chi2.ppf(alpha / 2, 2 * observed) / 2
        upper = chi2.ppf(1 - alpha / 2, 2 * observed + 2) / 2
        return float(lower), float(upper)
    z = _z(level)
    lower = observed * (1 - 1 / (9 * observed) - z / (3 * math.sqrt(observed))) ** 3
    o1 = observed + 1
    upper = o1 * (1 - 1 / (9 * o1) + z / (3 * math.sqrt(o1))) ** 3
    return lower, upper


def significance(numerator: pd.Series, denominator: pd.Series, statistic: str, level: float) -> pd.Series:
    """'high', 'low' or 'not significant' for each area against the all-area average."""
    average = numerator.sum() / denominator.sum()
    labels = []
    for k, n in zip(numerator, denominator):
        if pd.isna(k) or pd.isna(n) or n == 0:
            labels.append(None)
            continue
        if statistic == "proportion":
            lower, upper = wilson_interval(k, n, level)
        elif statistic == "rate":
            lo, hi = poisson_interval(k, level)
            lower, upper = lo / n, hi / n
        else:
            raise ValueError(f"unknown statistic {statistic!r}")
        labels.append("high" if average < lower else "low" if average > upper else "not significant")
    return pd.Series(labels, index=numerator.index, dtype="object")


def control_limits(average: float, denominators, statistic: str, level: float) -> pd.DataFrame:
    """Lower and upper control limits (as values, not multiplied) at each denominator."""
    rows = []
    for n in np.asarray(denominators, dtype=float):
        if statistic == "proportion":
            # upper limit: the proportion whose Wilson lower bound equals the average (and the
            # mirror for the lower limit); clipped to [0, 1] where no proportion gets there
            if wilson_interval(n, n, level)[0] <= average:
                upper = 1.0
            else:
                upper = brentq(lambda p: wilson_interval(p * n, n, level)[0] - average, average, 1.0)
            if wilson_interval(0.0, n, level)[1] >= average:
                lower = 0.0
            else:
                lower = brentq(lambda p: wilson_interval(p * n, n, level)[1] - average, 0.0, average)
        elif statistic == "rate":
            expected = average * n
            # observed counts (continuous) at which the average just leaves the area's interval
            upper = brentq(lambda o: poisson_interval(o, level)[0] - expected, expected, expected * 10 + 50)
            lower = 0.0 if poisson_interval(0.0, level)[1] >= expected else brentq(
                lambda o: poisson_interval(o, level)[1] - expected, 0.0, expected
            )
            lower, upper = lower / n, upper / n
        else:
            raise ValueError(f"unknown statistic {statistic!r}")
        rows.append({"denominator": n, "lower": lower, "upper": upper})
    return pd.DataFrame(rows)


def z_scores(numerator: pd.Series, denominator: pd.Series, statistic: str) -> pd.Series:
    """Standardised differences from the all-area average (normal approximation)."""
    average = numerator.sum() / denominator.sum()
    expected = average * denominator
    if statistic == "proportion":
        return (numerator - expected) / np.sqrt(denominator * average * (1 - average))
    if statistic == "rate":
        return (numerator - expected) / np.sqrt(expected)
    raise ValueError(f"unknown statistic {statistic!r}")


def overdispersion(z: pd.Series, winsor: float = 0.10) -> float:
    """Spiegelhalter's multiplicative overdispersion factor phi from winsorised z-scores.

    phi = mean of squared z-scores after pulling the lowest and highest ``winsor`` share in
    to the ``winsor`` and ``1 - winsor`` quantiles (numpy's linear interpolation); phi <= 1
    means no overdispersion (1 is returned). ``winsor`` 0 uses the z-scores as they are.
    """
    if not 0 <= winsor < 0.5:
        raise ValueError(f"winsorising share must be at least 0 and below 0.5, not {winsor!r}")
    clean = z.dropna().to_numpy(dtype=float)
    low, high = np.quantile(clean, [winsor, 1 - winsor])
    phi = float(np.mean(np.clip(clean, low, high) ** 2))
    return max(phi, 1.0)


def overdispersed_limits(average: float, denominators, statistic: str, level: float, phi: float) -> pd.DataFrame:
    """The limits :func:`significance_overdispersed` tests against, as values at each
    denominator: the average plus or minus z x sqrt(phi) standard errors."""
    n = np.asarray(denominators, dtype=float)
    spread = average * (1 - average) if statistic == "proportion" else average
    if statistic not in ("proportion", "rate"):
        raise ValueError(f"unknown statistic {statistic!r}")
    half = _z(level) * math.sqrt(phi) * np.sqrt(spread / n)
    lower, upper = average - half, average + half
    if statistic == "proportion":
        upper = np.minimum(upper, 1.0)
    return pd.DataFrame({"denominator": n, "lower": np.maximum(lower, 0.0), "upper": upper})


def significance_overdispersed(numerator: pd.Series, denominator: pd.Series, statistic: str, level: float,
                               winsor: float = 0.10) -> pd.Series:
    """'high' / 'low' / 'not significant' with limits inflated by sqrt(phi) (Spiegelhalter 2005),
    phi from z-scores winsorised at ``winsor`` each tail."""
    z = z_scores(numerator, denominator, statistic)
    limit = _z(level) * np.sqrt(overdispersion(z, winsor))
    labels = np.where(z > limit, "high", np.where(z < -limit, "low", "not significant"))
    return pd.Series(labels, index=numerator.index, dtype="object").where(z.notna(), None)
