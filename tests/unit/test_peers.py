"""Similar areas on hand-made data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from carewatch import geography
from carewatch.methodology import peers

ENGLAND = "E92000001"


def test_nearest_neighbours_by_hand():
    # one feature, weight 1: values 0, 1, 3, 10, 11 -> z-scores keep the order and ratios
    features = pd.DataFrame({"f": [0.0, 1.0, 3.0, 10.0, 11.0]}, index=["A", "B", "C", "D", "E"])
    got = peers.nearest_neighbours(features, {"f": 1.0}, k=2)
    table = {a: list(g.sort_values("peer_rank")["peer_code"]) for a, g in got.groupby("area_code")}
    # distances on the raw scale: A: B 1, C 3; B: A 1, C 2; C: B 2, A 3; D: E 1, C 7; E: D 1, C 8
    assert table == {"A": ["B", "C"], "B": ["A", "C"], "C": ["B", "A"], "D": ["E", "C"], "E": ["D", "C"]}


def test_ties_in_distance_are_broken_by_code():
    features = pd.DataFrame({"f": [0.0, 1.0, -1.0]}, index=["M", "Z", "A"])
    got = peers.nearest_neighbours(features, {"f": 1.0}, k=1)
    assert got.set_index("area_code").loc["M", "peer_code"] == "A"  # A and Z both at distance 1


def test_characteristics_from_single_years_of_age():
    pop = pd.DataFrame(
        {"area_code": ["A"] * 4, "age": [10, 30, 70, 90], "population": [100, 500, 300, 100]}
    )
    c = peers.characteristics(pop).loc["A"]
    assert c["share_65plus"] == pytest.approx(0.4)  # (300 + 100) / 1000
    assert c["share_85plus"] == pytest.approx(0.1)
    assert c["share_under_18"] == pytest.approx(0.1)
    assert c["log_population_18plus"] == pytest.approx(np.log(900))


def _estimate(year, shares):
    """One mid-year: per area, 1,000 people aged 30 and the given number aged 70 (so the areas
    differ only in share_65plus, and in their 18+ size)."""
    rows = []
    for area, older in shares.items():
        rows += [(year, area, 30, 1000), (year, area, 70, older)]
    return pd.DataFrame(rows, columns=["mid_year", "area_code", "age", "population"])


def test_an_area_created_after_the_peer_group_year_gets_its_group_from_the_first_estimate_that_has_it():
    config = {"method": "nearest_neighbours", "k": 2, "mid_year": 2016, "later_areas": "first_mid_year",
              "features": {"share_65plus": 1.0}}
    population = pd.concat([
        _estimate(2016, {"A": 100, "B": 200, "C": 300, "D": 900, "OLD": 950}),
        _estimate(2017, {"A": 100, "B": 200, "C": 300, "D": 900, "OLD": 950}),
        # OLD merged into NEW, which looks like D; LATE appears a year after, like A and B
        _estimate(2018, {"A": 100, "B": 200, "C": 300, "D": 900, "NEW": 880}),
        _estimate(2019, {"A": 100, "B": 200, "C": 300, "D": 900, "NEW": 880, "LATE": 150}),
    ], ignore_index=True)
    got = peers.peer_groups(population, config)
    table = {a: (list(g.sort_values("peer_rank")["peer_code"]), set(g["mid_year"])) for a, g in got.groupby("area_code")}
    # share_65plus is older / (1000 + older): A .091, B .167, C .231, D .474, OLD .487, NEW .468, LATE .130
    assert table["A"] == (["B", "C"], {2016}) and table["D"] == (["OLD", "C"], {2016})  # the 2016 groups as before
    assert table["NEW"] == (["D", "C"], {2018})  # among 2018's areas: OLD is gone
    assert table["LATE"] == (["B", "A"], {2019})  # .130: B .036 away, A .040
    assert set(table) == {"A", "B", "C", "D", "OLD", "NEW", "LATE"}
    # a group from a later year is standardised among that year's areas: distances are z-scores of 2018
    shares_2018 = np.array([100, 200, 300, 900, 880]) / (1000 + np.array([100, 200, 300, 900, 880]))
    z = (shares_2018 - shares_2018.mean()) / shares_2018.std()
    assert got[(got["area_code"] == "NEW") & (got["peer_code"] == "D")]["distance"].iloc[0] == pytest.approx(abs(z[4] - z[3]))

    assert set(peers.peer_groups(population, {**config, "later_areas": "none"})["area_code"]) == {"A", "B", "C", "D", "OLD"}
    with pytest.raises(ValueError, match="later_areas"):
        peers.peer_groups(population, {**config, "later_areas": "sometimes"})


def test_the_analysis_takes_groups_from_the_configured_estimate_when_later_ones_are_loaded(tmp_path):
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        mid_2016 = con.execute("select area_code, age, population from stg_ons_mye where mid_year = 2016").df()
        # a later estimate of the same areas, with the age structures swapped around
        con.execute("insert into stg_ons_mye select 2017, area_code, age, (population * 7919 + age * 104729) % 4500 + 500, source_sha256 "
                    "from stg_ons_mye")
        synthetic_warehouse.build_population(con)  # as the build that loaded it would
        analysis.run(con, export=False)
        got = con.execute("select area_code, peer_code, peer_rank, mid_year from peer_group").df()
    expected = peers.nearest_neighbours(peers.characteristics(mid_2016), peers.load_config()["features"], 15)
    pairs = lambda frame: set(frame[["area_code", "peer_code", "peer_rank"]].itertuples(index=False, name=None))  # noqa: E731
    assert pairs(got) == pairs(expected) and set(got["mid_year"]) == {2016}
    # and the later estimate alone would have given other groups: the test can tell them apart
    mid_2017 = mid_2016.assign(population=(mid_2016["population"] * 7919 + mid_2016["age"] * 104729) % 4500 + 500)
    assert pairs(peers.nearest_neighbours(peers.characteristics(mid_2017), peers.load_config()["features"], 15)) != pairs(expected)


def test_the_analysis_forms_groups_from_the_estimate_the_marts_were_built_from(tmp_path):
    """A population version loaded (or rejected) between the warehouse build and the analysis
    changes the live staging view, not the conformed tables the build wrote: the groups, and
    the report's note on the latest estimate, stay those of the build."""
    import duckdb

    from carewatch import analysis, monthly_report
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        built = con.execute("select area_code, age, population from stg_ons_mye where mid_year = 2016").df()
        # after the build: the 2016 estimate revised with other age structures, and a 2017 one
        con.execute("update stg_ons_mye set population = (population * 7919 + age * 104729) % 4500 + 500")
        con.execute("insert into stg_ons_mye select 2017, area_code, age, population, source_sha256 from stg_ons_mye")
        analysis.run(con, export=False)
        got = con.execute("select area_code, peer_code, peer_rank, mid_year from peer_group").df()
        revised = con.execute("select area_code, age, population from stg_ons_mye where mid_year = 2016").df()
        month = con.execute("select max(period_start) from ranking_overall where period_type = 'rolling_12m'").fetchone()[0]
        note = monthly_report.gather(con, pd.Timestamp(month))["population_note"]
    features, k = peers.load_config()["features"], peers.load_config()["k"]
    pairs = lambda frame: set(frame[["area_code", "peer_code", "peer_rank"]].itertuples(index=False, name=None))  # noqa: E731
    assert pairs(got) == pairs(peers.nearest_neighbours(peers.characteristics(built), features, k))
    assert pairs(got) != pairs(peers.nearest_neighbours(peers.characteristics(revised), features, k))
    # March 2018's own estimate is mid-2017; the build had mid-2016 only (the 2017 one came after it)
    assert note is not None and "ONS mid-2016 population" in note


def test_default_config_asks_for_about_15_neighbours():
    assert peers.load_config()["k"] == 15


def compare(values: pd.DataFrame, groups: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """The product's peer comparison (include/sql/analysis/, run by analysis.write_tables as the
    analysis step runs it) over hand-made values: each row of ``values`` is a fact of its
    period (``period_type`` month and ``period_start`` March 2018 unless given), and the
    league table compares them all. The multiplier is the one the rows' values imply."""
    import duckdb

    from carewatch import analysis

    facts = values.copy()
    if "period_type" not in facts:
        facts["period_type"] = "month"
    facts["period_start"] = pd.to_datetime(facts["period_start"] if "period_start" in facts else "2018-03-01")
    facts["period_end"] = facts["period_start"] + pd.offsets.MonthEnd(0)
    facts["base_metric_id"] = facts["metric_id"]
    implied = (facts["value"] / (facts["numerator"] / facts["denominator"])).where(facts["numerator"].gt(0))
    facts["multiplier"] = facts["metric_id"].map(implied.groupby(facts["metric_id"]).median().round(6)).fillna(1.0)
    con = duckdb.connect()
    con.register("facts", facts)
    con.execute("""create table fct_metric_values as select area_code, period_type, period_start::date as period_start,
                   period_end::date as period_end, metric_id, base_metric_id, numerator::double as numerator,
                   denominator::double as denominator, multiplier, value::double as value, ci_lower::double as ci_lower,
                   ci_upper::double as ci_upper from facts""")
    con.register("metrics", pd.DataFrame({"metric_id": list(directions), "direction": list(directions.values())}))
    con.execute("create table ref_metrics as select * from metrics")
    groups = groups.copy()
    for column in ("peer_until", "peer_from"):
        groups[column] = pd.to_datetime(groups[column]) if column in groups else pd.NaT
    league = pd.DataFrame({"period_start": facts["period_start"].max().date(), "area_code": facts["area_code"],
                           "metric_id": facts["metric_id"], "value_period_type": facts["period_type"],
                           "value_period_start": facts["period_start"].dt.date, "value": facts["value"],
                           "ci_lower": facts["ci_lower"], "ci_upper": facts["ci_upper"]})
    analysis.write_tables(con, {"peer_group": groups}, then=analysis.analysis_sql(), inputs={"league_values": league})
    return con.execute("select * from peer_comparison").df()


def test_compare_with_peers_and_england():
    values = pd.DataFrame(
        [
            # area, value, lower, upper, numerator, denominator (rate per 100 here)
            ("A", 12.0, 11.0, 13.0, 120.0, 1000.0),
            ("P1", 8.0, 7.0, 9.0, 80.0, 1000.0),
            ("P2", 10.0, 9.0, 11.0, 100.0, 1000.0),
            ("B", 9.9, 8.0, 12.0, 99.0, 1000.0),
            (ENGLAND, 10.0, 9.9, 10.1, 300.0, 3000.0),
        ],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "m"
    groups = pd.DataFrame({"area_code": ["A", "A", "B", "B"], "peer_code": ["P1", "P2", "P1", "P2"]})
    got = compare(values, groups, {"m": "low"}).set_index("area_code")
    a = got.loc["A"]
    # peers pooled: (80 + 100) / 2000 * 100 = 9.0; A's interval 11-13 is above England's 10 and peers' 9
    assert a["peer_value"] == pytest.approx(9.0)
    assert a["vs_england"] == "worse" and a["vs_peers"] == "worse"
    assert a["rank_in_group"] == 3 and a["group_size"] == 3  # P1 8, P2 10, A 12 (low is better)
    assert got.loc["B", "vs_england"] == "not significant"  # 8-12 contains 10


def test_compare_ranks_ties_together_when_high_is_better_and_leaves_an_unweighable_group_unpooled():
    values = pd.DataFrame(
        [
            ("A", 70.0, 65.0, 75.0, 70.0, 100.0),
            ("P1", 80.0, 75.0, 85.0, None, None),  # a peer without numerator or denominator: no pooling, no weighing
            ("P2", 70.0, 60.0, 80.0, 7.0, 10.0),
            ("P3", 60.0, 50.0, 70.0, 6.0, 10.0),
        ],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "m"
    groups = pd.DataFrame({"area_code": ["A"] * 3, "peer_code": ["P1", "P2", "P3"]})
    got = compare(values, groups, {"m": "high"}).set_index("area_code").loc["A"]
    # null, as fct_peer_group_values: not the plain mean (80 + 70 + 60) / 3 = 70 of earlier releases
    assert pd.isna(got["peer_value"]) and got["vs_peers"] == "not compared"
    # high is better: P1 80 first, A and P2 tie at 70 and share rank 2, P3 60 last
    assert got["rank_in_group"] == 2 and got["group_size"] == 4
    assert got["vs_england"] == "not compared" and pd.isna(got["england_value"])  # no England row


def test_a_metric_without_numerators_compares_with_the_peers_weighted_mean():
    # the p90 length of stay: no numerator; peers weigh by discharges, as fct_peer_group_values does
    NAN = float("nan")
    values = pd.DataFrame(
        [("A", 20.0, NAN, NAN, NAN, 100.0), ("P1", 18.0, NAN, NAN, NAN, 300.0), ("P2", 24.0, NAN, NAN, NAN, 100.0)],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "los"
    groups = pd.DataFrame({"area_code": ["A", "A"], "peer_code": ["P1", "P2"]})
    got = compare(values, groups, {"los": "low"}).set_index("area_code").loc["A"]
    assert got["peer_value"] == pytest.approx((18 * 300 + 24 * 100) / 400)  # 19.5, not the plain mean 21
    assert got["rank_in_group"] == 2 and got["group_size"] == 3


def test_a_peer_without_a_denominator_leaves_the_peer_value_null_as_the_sql_does():
    """As fct_peer_group_values (test below, area D): a peer with a value but no denominator
    cannot be weighed or pooled, and the others alone would be partial."""
    NAN = float("nan")
    values = pd.DataFrame(
        [("A", 20.0, NAN, NAN, NAN, 100.0), ("P1", 18.0, NAN, NAN, NAN, 300.0), ("P2", 24.0, NAN, NAN, NAN, NAN),
         ("B", 10.0, 8.0, 12.0, 10.0, 100.0), ("Q1", 10.0, 8.0, 12.0, 10.0, 100.0), ("Q2", 5.0, 3.0, 7.0, 5.0, NAN)],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "m"
    groups = pd.DataFrame({"area_code": ["A", "A", "B", "B"], "peer_code": ["P1", "P2", "Q1", "Q2"]})
    got = compare(values, groups, {"m": "low"}).set_index("area_code")
    # not the plain mean 21 (A: no numerators) nor P1 alone; not Q1's 10 (B: numerators)
    assert pd.isna(got.loc["A", "peer_value"]) and pd.isna(got.loc["B", "peer_value"])
    assert got.loc["A", "vs_peers"] == got.loc["B", "vs_peers"] == "not compared"
    # ranks still count every peer with a value: A 20 after P1 18, before P2 24
    assert (got.loc["A", "rank_in_group"], got.loc["A", "group_size"]) == (2, 3)


def test_an_area_without_a_value_is_not_compared():
    values = pd.DataFrame(
        [("A", None, None, None, None, None), ("B", 9.0, 8.0, 10.0, 9.0, 100.0), (ENGLAND, 9.0, 8.9, 9.1, 90.0, 1000.0)],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "m"
    groups = pd.DataFrame({"area_code": ["A", "B"], "peer_code": ["B", "A"]})
    got = compare(values, groups, {"m": "low"})
    assert list(got["area_code"]) == ["B"]
    assert got.iloc[0]["group_size"] == 1


def test_peer_group_aggregates_pool_the_peers_facts(tmp_path):
    """fct_peer_group_values against a pandas pooling of the same facts over the same groups."""
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        facts = con.execute("select * from fct_metric_values").df()
        groups = con.execute("select area_code, peer_code from peer_group").df()
        built = con.execute("select * from fct_peer_group_values").df()
        compared = con.execute("select * from peer_comparison").df()
    area = sorted(groups["area_code"].unique())[3]
    peers = groups.loc[groups["area_code"] == area, "peer_code"].tolist()
    assert area not in peers and len(peers) > 1

    def expected(metric, period_type, start):
        rows = facts[(facts["area_code"].isin(peers)) & (facts["metric_id"] == metric) & (facts["period_type"] == period_type) & (facts["period_start"] == start)]
        assert len(rows) == len(peers)
        if rows["numerator"].notna().all():
            return rows["numerator"].sum() / rows["denominator"].sum() * rows["multiplier"].iloc[0]
        return (rows["value"] * rows["denominator"]).sum() / rows["denominator"].sum()

    def got(metric, period_type, start):
        row = built[(built["area_code"] == area) & (built["metric_id"] == metric) & (built["period_type"] == period_type) & (built["period_start"] == start)]
        assert len(row) == 1 and row["peers_reporting"].iloc[0] == len(peers)
        return row["value"].iloc[0]

    march = pd.Timestamp("2018-03-01")
    for metric, period_type, start in (
        ("delayed_days_per_day_per_100k_18plus", "month", march),
        ("delayed_days_per_day_per_100k_18plus__nhs", "rolling_12m", march),
        ("los_p90_days_65plus", "month", march),  # no numerator: denominator-weighted mean
        ("reablement_still_at_home_91d_65plus", "financial_year", pd.Timestamp("2016-04-01")),
    ):
        assert got(metric, period_type, start) == pytest.approx(expected(metric, period_type, start), rel=1e-12)

    # the league table's comparison, as analysis.run wires it: March 2018's rolling year, and
    # for ASCOF the lagged 2016-17 year; the peers' pooled value and England's of that period
    mine = compared[compared["area_code"] == area].set_index("metric_id")
    assert set(mine["period_start"]) == {march}
    assert mine.loc["reablement_still_at_home_91d_65plus", ["value_period_type", "value_period_start"]].tolist() == [
        "financial_year", pd.Timestamp("2016-04-01")]
    assert mine.loc["delayed_days_per_day_per_100k_18plus", ["value_period_type", "value_period_start"]].tolist() == [
        "rolling_12m", march]
    directions = {"high": ("reablement_still_at_home_91d_65plus", "reablement_offered_65plus", "weekend_discharge_share")}
    for metric, row in mine.iterrows():
        period = (facts["metric_id"] == metric) & (facts["period_type"] == row["value_period_type"]) \
            & (facts["period_start"] == row["value_period_start"])
        assert row["value"] == facts.loc[period & (facts["area_code"] == area), "value"].item()
        assert row["peer_value"] == pytest.approx(expected(metric, row["value_period_type"], row["value_period_start"]), rel=1e-12)
        assert row["england_value"] == facts.loc[period & (facts["area_code"] == ENGLAND), "value"].item()
        theirs = facts.loc[period & facts["area_code"].isin(peers), "value"]
        better = theirs > row["value"] if metric in directions["high"] else theirs < row["value"]
        assert (row["rank_in_group"], row["group_size"]) == (better.sum() + 1, len(theirs) + 1)


def test_analysis_tables_and_peer_aggregates_are_replaced_together_or_not_at_all():
    import duckdb

    from carewatch import analysis

    con = duckdb.connect()
    analysis.write_tables(con, {"peer_group": pd.DataFrame({"area_code": ["A"], "peer_code": ["B"]})})
    with pytest.raises(duckdb.Error):
        analysis.write_tables(con, {"peer_group": pd.DataFrame({"area_code": ["A"], "peer_code": ["C"]})},
                              then=("select * from a_table_that_does_not_exist",))
    assert con.execute("select peer_code from peer_group").fetchall() == [("B",)]


def test_a_peer_that_has_no_value_leaves_the_peer_value_null_not_partial():
    values = pd.DataFrame(
        [("A", 12.0, 11.0, 13.0, 120.0, 1000.0), ("P1", 8.0, 7.0, 9.0, 80.0, 1000.0), ("P2", None, None, None, None, None)],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "m"
    groups = pd.DataFrame({"area_code": ["A", "A"], "peer_code": ["P1", "P2"]})
    got = compare(values, groups, {"m": "low"}).set_index("area_code").loc["A"]
    # P2 suppressed: pooling P1 alone (8.0) would be a different comparator, as in fct_peer_group_values
    assert pd.isna(got["peer_value"]) and got["vs_peers"] == "not compared"
    assert got["rank_in_group"] == 2 and got["group_size"] == 2  # A and P1 still rank


def test_a_peer_abolished_by_a_boundary_change_leaves_the_group_from_that_day():
    groups = pd.DataFrame({"area_code": ["A", "A", "A"], "peer_code": ["P1", "E06000028", "E10000009"]})
    changes = pd.DataFrame({"old_code": ["E06000028", "E10000009", "E10000009", "E08000016"],
                            "new_code": ["E06000058", "E06000058", "E06000059", "E08000038"],
                            "effective_from": [dt.date(2019, 4, 1)] * 4, "change": ["merge", "split", "split", "alias"]})
    marked = peers.with_abolitions(groups, changes)
    assert marked.set_index("peer_code")["peer_until"].isna().to_dict() == {"P1": True, "E06000028": False, "E10000009": False}
    assert marked["peer_from"].isna().all()  # none of them was made by a change
    # compared in February 2020, a delayed-days value has P1 alone as its group; the league
    # table's reablement of 2018-19 (a lagged year) still has all three peers
    values = pd.DataFrame(
        [("A", "dtoc", "2020-02-01", 12.0, 11.0, 13.0, 120.0, 1000.0), ("P1", "dtoc", "2020-02-01", 8.0, 7.0, 9.0, 80.0, 1000.0),
         ("A", "ascof", "2018-04-01", 0.5, 0.4, 0.6, 50.0, 100.0), ("P1", "ascof", "2018-04-01", 0.6, 0.5, 0.7, 60.0, 100.0),
         ("E06000028", "ascof", "2018-04-01", 0.7, 0.6, 0.8, 70.0, 100.0), ("E10000009", "ascof", "2018-04-01", 0.8, 0.7, 0.9, 80.0, 100.0)],
        columns=["area_code", "metric_id", "period_start", "value", "ci_lower", "ci_upper", "numerator", "denominator"])
    values["period_start"] = pd.to_datetime(values["period_start"])
    got = compare(values, marked, {"dtoc": "low", "ascof": "high"}).query("area_code == 'A'").set_index("metric_id")
    assert got.loc["dtoc", "peer_value"] == pytest.approx(8.0) and got.loc["dtoc", "group_size"] == 2
    assert got.loc["ascof", "peer_value"] == pytest.approx((60 + 70 + 80) / 300) and got.loc["ascof", "group_size"] == 4
    # the real change list: Bournemouth, Poole and Dorset county end on 1 April 2019, aliases do not
    real = peers.with_abolitions(pd.DataFrame({"area_code": ["A"] * 3, "peer_code": ["E06000029", "E10000009", "E08000016"]}),
                                 geography.code_changes())
    assert real["peer_until"].tolist()[:2] == [pd.Timestamp("2019-04-01")] * 2 and pd.isna(real["peer_until"].iloc[2])


def test_a_peer_made_by_a_boundary_change_joins_the_group_from_that_day():
    """The Dorset unitary's group (from the mid-2018 estimate) holds BCP: a value of March 2019,
    before BCP existed, is compared with the other peers, not nulled for BCP's missing value."""
    marked = peers.with_abolitions(pd.DataFrame({"area_code": ["E06000059"] * 3, "peer_code": ["P1", "E06000058", "E08000038"]}),
                                   geography.code_changes())
    assert pd.isna(marked["peer_from"].iloc[0]) and marked["peer_from"].iloc[1] == pd.Timestamp("2019-04-01")
    assert pd.isna(marked["peer_from"].iloc[2])  # an alias is not a new area
    values = pd.DataFrame(
        [("E06000059", "2019-03-01", 12.0, 11.0, 13.0, 120.0, 1000.0), ("P1", "2019-03-01", 8.0, 7.0, 9.0, 80.0, 1000.0),
         ("E08000038", "2019-03-01", 9.0, 8.0, 10.0, 90.0, 1000.0),
         ("E06000059", "2019-04-01", 12.0, 11.0, 13.0, 120.0, 1000.0), ("P1", "2019-04-01", 8.0, 7.0, 9.0, 80.0, 1000.0),
         ("E08000038", "2019-04-01", 9.0, 8.0, 10.0, 90.0, 1000.0), ("E06000058", "2019-04-01", 10.0, 9.0, 11.0, 200.0, 2000.0)],
        columns=["area_code", "period_start", "value", "ci_lower", "ci_upper", "numerator", "denominator"])
    values["period_start"] = pd.to_datetime(values["period_start"])
    values["metric_id"] = "m"
    got = {start: compare(part, marked, {"m": "low"}).set_index("area_code").loc["E06000059"]
           for start, part in values.groupby("period_start")}
    march, april = got[pd.Timestamp("2019-03-01")], got[pd.Timestamp("2019-04-01")]
    assert march["peer_value"] == pytest.approx((80 + 90) / 2000 * 100) and march["group_size"] == 3  # itself and two peers
    assert april["peer_value"] == pytest.approx((80 + 90 + 200) / 4000 * 100) and april["group_size"] == 4
    # a rolling year is named by its last month: the year to April 2019 began before BCP existed
    rolling = compare(values[values["period_start"] == "2019-04-01"].assign(period_type="rolling_12m"), marked, {"m": "low"})
    assert rolling.set_index("area_code").loc["E06000059", "group_size"] == 3
    assert rolling.set_index("area_code").loc["E06000059", "peer_value"] == pytest.approx((80 + 90) / 2000 * 100)


def test_peer_group_aggregates_drop_an_abolished_peer_from_its_abolition(tmp_path):
    """fct_peer_group_values over a hand-made group: before the abolition the aggregate needs
    both peers; after it, the remaining peer alone is the group (not a null from then on)."""
    import duckdb

    from carewatch import analysis

    con = duckdb.connect()
    con.execute("""create table peer_group (area_code varchar, peer_code varchar, peer_rank int, distance double,
                   peer_until timestamp, peer_from timestamp)""")
    # A's group from 2016; LATER's from a later estimate, with NEW, made the day OLD ended
    con.execute("""insert into peer_group values ('A', 'P1', 1, 0.1, null, null), ('A', 'OLD', 2, 0.2, '2019-04-01', null),
                   ('LATER', 'P1', 1, 0.1, null, null), ('LATER', 'NEW', 2, 0.2, null, '2019-04-01')""")
    con.execute("""create table fct_metric_values as select * from (values
        ('P1',  'month', date '2019-03-01', date '2019-03-31', 'm', 10.0, 100.0, 100.0, 10.0),
        ('OLD', 'month', date '2019-03-01', date '2019-03-31', 'm', 30.0, 100.0, 100.0, 30.0),
        ('P1',  'month', date '2019-04-01', date '2019-04-30', 'm', 40.0, 100.0, 100.0, 40.0),
        ('NEW', 'month', date '2019-04-01', date '2019-04-30', 'm', 60.0, 300.0, 100.0, 20.0),
        -- rolling years, named by their last month: NEW has none until the one ending March 2020
        ('P1',  'rolling_12m', date '2019-06-01', date '2019-06-30', 'm', 50.0, 100.0, 100.0, 50.0),
        ('P1',  'rolling_12m', date '2020-03-01', date '2020-03-31', 'm', 20.0, 100.0, 100.0, 20.0),
        ('NEW', 'rolling_12m', date '2020-03-01', date '2020-03-31', 'm', 80.0, 400.0, 100.0, 20.0)
        ) t(area_code, period_type, period_start, period_end, metric_id, numerator, denominator, multiplier, value)""")
    for sql in analysis.analysis_sql()[:3]:  # the comparison macro, the members, the pooled values
        con.execute(sql)
    got = con.execute("select area_code, period_start, value, peers_reporting, group_size from fct_peer_group_values order by all").fetchall()
    assert got == [
        # March: (10 + 30) / (100 + 100) x 100 = 20, both peers; April: P1 alone, 40 / 100 x 100 = 40
        ("A", dt.date(2019, 3, 1), 20.0, 2, 2), ("A", dt.date(2019, 4, 1), 40.0, 1, 1),
        ("A", dt.date(2019, 6, 1), 50.0, 1, 1), ("A", dt.date(2020, 3, 1), 20.0, 1, 1),
        # March: NEW does not exist yet, P1 alone is the group (not a null for a peer without a value);
        # April: (40 + 60) / (100 + 300) x 100 = 25
        ("LATER", dt.date(2019, 3, 1), 10.0, 1, 1), ("LATER", dt.date(2019, 4, 1), 25.0, 2, 2),
        # the year to June 2019 began in July 2018, before NEW existed: P1 alone; the year to
        # March 2020 is NEW's first whole year: (20 + 80) / (100 + 400) x 100 = 20
        ("LATER", dt.date(2019, 6, 1), 50.0, 1, 1), ("LATER", dt.date(2020, 3, 1), 20.0, 2, 2)]


def test_peer_group_aggregates_with_a_peer_missing_are_null_and_count_only_the_peers_reporting():
    """A suppressed peer (a row without a value, its denominator still published) or a peer
    with no row leaves value, numerator and denominator null, not the other peers' sums, and
    is not counted as reporting."""
    import duckdb

    from carewatch import analysis

    con = duckdb.connect()
    con.execute("""create table peer_group (area_code varchar, peer_code varchar, peer_rank int, distance double,
                   peer_until timestamp, peer_from timestamp)""")
    con.execute("""insert into peer_group values ('A', 'P1', 1, 0.1, null, null), ('A', 'SUPPRESSED', 2, 0.2, null, null),
                   ('B', 'P1', 1, 0.1, null, null), ('B', 'ABSENT', 2, 0.2, null, null),
                   ('C', 'P1', 1, 0.1, null, null), ('C', 'P2', 2, 0.2, null, null),
                   ('D', 'P1', 1, 0.1, null, null), ('D', 'NODENOMINATOR', 2, 0.2, null, null)""")
    con.execute("""create table fct_metric_values as select * from (values
        ('P1',         'month', date '2019-03-01', date '2019-03-31', 'm', 10.0, 100.0, 100.0, 10.0),
        ('SUPPRESSED', 'month', date '2019-03-01', date '2019-03-31', 'm', null, 300.0, 100.0, null),
        ('P2',         'month', date '2019-03-01', date '2019-03-31', 'm', 50.0, 400.0, 100.0, 12.5),
        ('NODENOMINATOR', 'month', date '2019-03-01', date '2019-03-31', 'm', 5.0, null, 100.0, 5.0)
        ) t(area_code, period_type, period_start, period_end, metric_id, numerator, denominator, multiplier, value)""")
    for sql in analysis.analysis_sql()[:3]:  # the comparison macro, the members, the pooled values
        con.execute(sql)
    got = con.execute("""select area_code, peers_reporting, group_size, numerator, denominator, value
                         from fct_peer_group_values order by all""").fetchall()
    assert got == [
        ("A", 1, 2, None, None, None),
        ("B", 1, 2, None, None, None),
        # complete: (10 + 50) / (100 + 400) x 100 = 12
        ("C", 2, 2, 60.0, 500.0, 12.0),
        # a value without a denominator cannot be pooled: P1 alone would be partial
        ("D", 2, 2, None, None, None)]


def test_csv_exports_name_each_area_and_peer_beside_its_code(tmp_path):
    from carewatch import analysis

    tables = {"peer_group": pd.DataFrame({"area_code": ["E08000009"], "peer_code": ["E08000010"], "peer_rank": [1]}),
              "target_tracking": pd.DataFrame({"period_start": [pd.Timestamp("2018-03-01")], "area_code": ["E99999999"]})}
    analysis.export_csv(tables, tmp_path, names={"E08000009": "Trafford", "E08000010": "Wigan"})
    assert (tmp_path / "peer_group.csv").read_text().splitlines() == [
        "area_code,peer_code,peer_rank,area_name,peer_name", "E08000009,E08000010,1,Trafford,Wigan"]
    # a code without a name keeps its code; dates are dates
    assert (tmp_path / "target_tracking.csv").read_text().splitlines()[1] == "2018-03-01,E99999999,E99999999"
    # a table that already names its areas keeps its names
    named = {"peer_group": tables["peer_group"].assign(area_name="Trafford MBC")}
    analysis.export_csv(named, tmp_path, names={"E08000009": "Trafford", "E08000010": "Wigan"})
    assert (tmp_path / "peer_group.csv").read_text().splitlines()[1] == "E08000009,E08000010,1,Trafford MBC,Wigan"


def test_feature_weights_scale_squared_differences():
    # z-scores of [1, 1, -1, -1] and [1, -1, 1, -1] (mean 0, population sd 1) are the values;
    # weight 4 on f1: distance A-C = sqrt(4 x 2^2) = 4, A-B = sqrt(1 x 2^2) = 2, A-D = sqrt(16 + 4) = 4.4721
    features = pd.DataFrame({"f1": [1.0, 1.0, -1.0, -1.0], "f2": [1.0, -1.0, 1.0, -1.0]}, index=["A", "B", "C", "D"])
    got = peers.nearest_neighbours(features, {"f1": 4.0, "f2": 1.0}, k=3)
    a = got[got["area_code"] == "A"].set_index("peer_code")["distance"]
    assert a.to_dict() == pytest.approx({"B": 2.0, "C": 4.0, "D": 20 ** 0.5})


def test_characteristics_count_the_boundary_ages_in_their_band():
    # ages 17, 18, 64, 65, 84, 85: 18 is an adult, 65 is 65+, 85 is 85+; total 210
    pop = pd.DataFrame({"area_code": ["A"] * 6, "age": [17, 18, 64, 65, 84, 85], "population": [10, 20, 30, 40, 50, 60]})
    c = peers.characteristics(pop).loc["A"]
    assert c["share_under_18"] == pytest.approx(10 / 210)
    assert c["log_population_18plus"] == pytest.approx(np.log(200))  # 20 + 30 + 40 + 50 + 60
    assert c["share_65plus"] == pytest.approx(150 / 210)  # 40 + 50 + 60
    assert c["share_85plus"] == pytest.approx(60 / 210)


def test_an_interval_wholly_below_the_comparator_is_better_when_low_is_better_and_worse_when_high_is():
    values = pd.DataFrame(
        [
            # area, metric, value, lower, upper, numerator, denominator (rate per 100 here)
            ("A", "low", 7.0, 6.0, 8.0, 70.0, 1000.0),
            ("P1", "low", 9.0, 8.0, 10.0, 90.0, 1000.0),
            ("P2", "low", 11.0, 10.0, 12.0, 110.0, 1000.0),
            (ENGLAND, "low", 10.0, 9.9, 10.1, 300.0, 3000.0),
            ("A", "high", 7.0, 6.0, 8.0, 70.0, 1000.0),
            ("P1", "high", 9.0, 8.0, 10.0, 90.0, 1000.0),
            ("P2", "high", 11.0, 10.0, 12.0, 110.0, 1000.0),
            (ENGLAND, "high", 10.0, 9.9, 10.1, 300.0, 3000.0),
        ],
        columns=["area_code", "metric_id", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    groups = pd.DataFrame({"area_code": ["A", "A"], "peer_code": ["P1", "P2"]})
    got = compare(values, groups, {"low": "low", "high": "high"}).query("area_code == 'A'").set_index("metric_id")
    # peers pooled: (90 + 110) / 2000 x 100 = 10.0; A's interval 6-8 lies wholly below 10 (England and peers)
    assert got.loc["low", "peer_value"] == pytest.approx(10.0)
    assert got.loc["low", ["vs_england", "vs_peers"]].tolist() == ["better", "better"]
    assert got.loc["high", ["vs_england", "vs_peers"]].tolist() == ["worse", "worse"]
    assert got.loc["low", "rank_in_group"] == 1 and got.loc["high", "rank_in_group"] == 3


def test_an_interval_touching_the_comparator_is_not_significant():
    values = pd.DataFrame(
        [
            ("A", 11.0, 10.0, 12.0, 110.0, 1000.0),  # lower limit equals England's 10.0
            ("B", 9.0, 8.0, 10.0, 90.0, 1000.0),  # upper limit equals England's 10.0
            (ENGLAND, 10.0, 9.9, 10.1, 200.0, 2000.0),
        ],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "m"
    groups = pd.DataFrame({"area_code": ["A", "B"], "peer_code": ["B", "A"]})
    got = compare(values, groups, {"m": "low"}).set_index("area_code")
    # the interval contains the comparator (its end included): not significant, not worse / better
    assert got.loc["A", "vs_england"] == "not significant" and got.loc["B", "vs_england"] == "not significant"


def test_ties_share_the_best_rank_when_low_is_better():
    values = pd.DataFrame(
        [("A", 10.0, 9.0, 11.0, 100.0, 1000.0), ("P1", 10.0, 9.0, 11.0, 100.0, 1000.0),
         ("P2", 8.0, 7.0, 9.0, 80.0, 1000.0), ("P3", 12.0, 11.0, 13.0, 120.0, 1000.0)],
        columns=["area_code", "value", "ci_lower", "ci_upper", "numerator", "denominator"],
    )
    values["metric_id"] = "m"
    groups = pd.DataFrame({"area_code": ["A"] * 3, "peer_code": ["P1", "P2", "P3"]})
    got = compare(values, groups, {"m": "low"}).set_index("area_code").loc["A"]
    # low is better: P2 8 first; A and P1 tie at 10 and share rank 2; P3 12 last
    assert got["rank_in_group"] == 2 and got["group_size"] == 4


def test_peer_group_sums_are_taken_in_peer_order_so_a_rerun_gives_the_same_last_bits():
    # a float sum's last bits depend on the order of its terms: 1e16 + 1 - 1e16 is 0 in doubles,
    # 1e16 - 1e16 + 1 is 1. Summed in peer-code order, the result does not depend on the order
    # the rows come in (a rerun that read them in another order changed values by 1e-11)
    import duckdb

    from carewatch import analysis

    results = []
    for order in ("area_code", "area_code desc", "abs(value) desc, value desc"):
        con = duckdb.connect()
        con.execute("""create table peer_group (area_code varchar, peer_code varchar, peer_rank int, distance double,
                       peer_until timestamp, peer_from timestamp)""")
        con.execute("""insert into peer_group values ('A', 'P1', 1, 0.1, null, null), ('A', 'P2', 2, 0.3, null, null),
                       ('A', 'P3', 3, 0.2, null, null)""")
        con.execute(f"""create table fct_metric_values as select * from (values
            ('P1', 'month', date '2019-03-01', date '2019-03-31', 'm', 1e16, 1.0, 1.0, 1e16),
            ('P2', 'month', date '2019-03-01', date '2019-03-31', 'm', 1.0, 1.0, 1.0, 1.0),
            ('P3', 'month', date '2019-03-01', date '2019-03-31', 'm', -1e16, 1.0, 1.0, -1e16)
            ) t(area_code, period_type, period_start, period_end, metric_id, numerator, denominator, multiplier, value)
            order by {order}""")
        for sql in analysis.analysis_sql()[:3]:  # the comparison macro, the members, the pooled values
            con.execute(sql)
        results.append(con.execute("select numerator from fct_peer_group_values").fetchone()[0])
    assert results == [0.0, 0.0, 0.0]  # (1e16 + 1) - 1e16, P1 then P2 then P3, whatever order they came in
