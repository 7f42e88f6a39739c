"""The SQL confidence-interval macros against independent implementations.

Oracles: DHSC's PHStatsMethods (Byar, Wilson; GPL-3, used only here at test time) and
scipy (the exact Poisson interval from chi-squared quantiles, which Byar approximates).
"""

from __future__ import annotations

import duckdb
import pytest
from PHStatsMethods import confidence_intervals as ph
from scipy.stats import chi2, norm

from carewatch import paths, warehouse

Z95 = norm.ppf(0.975)


def _connect():
    con = duckdb.connect()
    con.register("exact", warehouse.poisson_exact_limits(0.95))
    con.execute("create table ref_poisson_exact as select * from exact")
    con.execute((paths.sql_dir() / "macros" / "statistics.sql").read_text())
    return con


@pytest.fixture(scope="module")
def con():
    con = _connect()
    yield con
    con.close()


@pytest.mark.parametrize("observed", [1, 3, 10, 57, 389, 12_345])
def test_byar_matches_phstatsmethods(con, observed):
    lower, upper = con.execute(f"select byar_lower({observed}, {Z95}), byar_upper({observed}, {Z95})").fetchone()
    assert lower == pytest.approx(ph.byars_lower(observed, 0.95), rel=1e-12)
    assert upper == pytest.approx(ph.byars_upper(observed, 0.95), rel=1e-12)


@pytest.mark.parametrize("observed", [10, 57, 389, 12_345])
def test_byar_is_close_to_the_exact_poisson_interval(con, observed):
    lower, upper = con.execute(f"select byar_lower({observed}, {Z95}), byar_upper({observed}, {Z95})").fetchone()
    exact_lower = chi2.ppf(0.025, 2 * observed) / 2
    exact_upper = chi2.ppf(0.975, 2 * (observed + 1)) / 2
    assert lower == pytest.approx(exact_lower, rel=0.01)
    assert upper == pytest.approx(exact_upper, rel=0.01)


def test_zero_events_has_a_zero_lower_limit_and_the_exact_upper_limit(con):
    lower, upper = con.execute(f"select byar_lower(0, {Z95}), byar_upper(0, {Z95})").fetchone()
    assert lower == 0.0
    assert upper == pytest.approx(3.689, abs=5e-4)  # -ln(0.025): the exact 97.5% limit for 0 events


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (45, 60), (60, 60), (812, 1043), (30, 2400)])
def test_wilson_matches_phstatsmethods(con, k, n):
    lower, upper = con.execute(f"select wilson_lower({k}, {n}, {Z95}), wilson_upper({k}, {n}, {Z95})").fetchone()
    assert lower == pytest.approx(ph.wilson_lower(k, n, 0.95), rel=1e-12, abs=1e-15)
    assert upper == pytest.approx(ph.wilson_upper(k, n, 0.95), rel=1e-12)


def test_wilson_by_hand():
    # k = 8, n = 10, z = 1.96: centre (16 + 3.8416) / 27.6832 = 0.71674;
    # half-width 1.96 * sqrt(3.8416 + 32 * 0.2) / 27.6832 = 1.96 * 3.20025 / 27.6832 = 0.22658
    con = _connect()
    lower, upper = con.execute("select wilson_lower(8, 10, 1.96), wilson_upper(8, 10, 1.96)").fetchone()
    assert lower == pytest.approx(0.71674 - 0.22658, abs=2e-5)
    assert upper == pytest.approx(0.71674 + 0.22658, abs=2e-5)


@pytest.mark.parametrize(
    "day,expected",
    [("2017-03-31", "2016-17"), ("2017-04-01", "2017-18"), ("2019-12-01", "2019-20"), ("1999-06-01", "1999-00")],
)
def test_financial_year(con, day, expected):
    assert con.execute(f"select financial_year(date '{day}')").fetchone()[0] == expected
