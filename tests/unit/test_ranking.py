"""Rankings on hand-made data with answers worked out by hand in the comments."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from carewatch.methodology import ranking

METRICS = {"metrics": [{"id": "m_low", "direction": "low"}, {"id": "m_high", "direction": "high"}]}
DTOC = "delayed_days_per_day_per_100k_18plus"


def methodology(tmp_path, w_low, w_high, method="weighted_ranks", min_metrics=2, among="eligible"):
    path = tmp_path / "m.yaml"
    path.write_text(
        f"""
name: test
version: 7
method: {method}
ties: min
min_metrics: {min_metrics}
metric_ranks_among: {among}
metrics:
  - {{id: m_low, weight: {w_low}}}
  - {{id: m_high, weight: {w_high}}}
"""
    )
    return ranking.load_methodology(str(path), METRICS)


@pytest.fixture
def values():
    rows = [
        ("A", "m_low", 1.0), ("A", "m_high", 10.0),
        ("B", "m_low", 2.0), ("B", "m_high", 30.0),
        ("C", "m_low", 2.0), ("C", "m_high", 20.0),
        ("D", "m_low", 5.0), ("D", "m_high", None),
        (ranking.ENGLAND, "m_low", 2.5), (ranking.ENGLAND, "m_high", 20.0),
    ]
    return pd.DataFrame(rows, columns=["area_code", "metric_id", "value"])


def ranks_of(frame, metric):
    sub = frame[frame["metric_id"] == metric]
    return dict(zip(sub["area_code"], sub["metric_rank"]))


def test_metric_ranks_follow_direction_and_share_ties(tmp_path, values):
    m = methodology(tmp_path, 3, 1, among="all")
    ranked = ranking.rank_metrics(values, m)
    # low is better: A=1 best; B and C tie on 2.0 -> both 2; D=5 -> 4 (competition ranking)
    assert ranks_of(ranked, "m_low") == {"A": 1, "B": 2, "C": 2, "D": 4}
    # high is better: B=30 -> 1, C=20 -> 2, A=10 -> 3; D missing is not ranked
    assert ranks_of(ranked, "m_high") == {"B": 1, "C": 2, "A": 3}
    assert ranking.ENGLAND not in set(ranked["area_code"])


def test_metric_ranks_count_only_areas_with_an_overall_rank(tmp_path, values):
    # D is best on m_low (0.5) but has one metric, fewer than min_metrics=2: no overall rank
    values.loc[(values["area_code"] == "D") & (values["metric_id"] == "m_low"), "value"] = 0.5
    everyone = ranking.rank_metrics(values, methodology(tmp_path, 3, 1, among="all"))
    assert ranks_of(everyone, "m_low") == {"D": 1, "A": 2, "B": 3, "C": 3}
    m = methodology(tmp_path, 3, 1, among="eligible")
    eligible = ranking.rank_metrics(values, m)
    # among A, B, C only: A 1.0 -> 1; B and C 2.0 -> 2; D is not ranked
    assert ranks_of(eligible, "m_low") == {"A": 1, "B": 2, "C": 2, "D": pd.NA}
    assert ranks_of(eligible, "m_high") == {"B": 1, "C": 2, "A": 3}
    d = eligible[eligible["area_code"] == "D"].iloc[0]  # D keeps its value, unranked
    assert d["value"] == 0.5 and pd.isna(d["z_score"])
    overall = ranking.overall_ranking(eligible, m, areas=["A", "B", "C", "D"]).set_index("area_code")
    # A: (1*3 + 3*1)/4 = 1.5, as if D were absent; with "all" it would be (2*3 + 3)/4 = 2.25
    assert overall.loc["A", "score"] == pytest.approx(1.5)
    assert pd.isna(overall.loc["D", "overall_rank"]) and overall.loc["D", "metrics_ranked"] == 1
    # z-scores likewise leave D out: m_low "better" values -1, -2, -2
    z = ranking.rank_metrics(values, methodology(tmp_path, 3, 1, method="weighted_z"))
    low = z[z["metric_id"] == "m_low"].set_index("area_code")["z_score"]
    assert low["A"] == pytest.approx((-1 - (-5 / 3)) / ((2 / 9) ** 0.5))


def test_the_shipped_methodology_ranks_among_eligible_areas_and_a_file_without_the_key_as_before(tmp_path):
    assert ranking.load_methodology().metric_ranks_among == "eligible"
    path = tmp_path / "old.yaml"
    path.write_text("name: x\nversion: 1\nmethod: weighted_ranks\nmetrics:\n  - {id: m_low, weight: 1}\n")
    assert ranking.load_methodology(str(path), METRICS).metric_ranks_among == "all"


def test_metric_ranks_among_must_be_known(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nversion: 1\nmethod: weighted_ranks\nmetric_ranks_among: some\nmetrics:\n  - {id: m_low, weight: 1}\n")
    with pytest.raises(ValueError, match="metric_ranks_among"):
        ranking.load_methodology(str(path), METRICS)


def test_overall_rank_with_delayed_days_weighted_highest(tmp_path, values):
    m = methodology(tmp_path, 3, 1, among="all")
    overall = ranking.overall_ranking(ranking.rank_metrics(values, m), m)
    # A: (1*3 + 3*1)/4 = 1.5; B: (2*3 + 1*1)/4 = 1.75; C: (2*3 + 2*1)/4 = 2.0
    # D has one metric, fewer than min_metrics=2: no overall rank
    got = dict(zip(overall["area_code"], overall["overall_rank"]))
    assert (got["A"], got["B"], got["C"]) == (1, 2, 3)
    assert pd.isna(got["D"])
    scores = dict(zip(overall["area_code"], overall["score"]))
    assert scores["A"] == pytest.approx(1.5) and scores["B"] == pytest.approx(1.75) and scores["C"] == pytest.approx(2.0)
    assert set(overall["methodology"]) == {"test@v7"}


def test_changing_weights_changes_the_order(tmp_path, values):
    m = methodology(tmp_path, 1, 3)
    overall = ranking.overall_ranking(ranking.rank_metrics(values, m), m)
    # A: (1 + 3*3)/4 = 2.5; B: (2 + 1*3)/4 = 1.25; C: (2 + 2*3)/4 = 2.0 -> B, C, A
    ranked = overall.dropna(subset=["overall_rank"])
    assert list(ranked["area_code"]) == ["B", "C", "A"]


def test_missing_metric_reweights_over_what_the_area_has(tmp_path, values):
    m = methodology(tmp_path, 3, 1, min_metrics=1)
    overall = ranking.overall_ranking(ranking.rank_metrics(values, m), m)
    row = overall.set_index("area_code").loc["D"]
    # D: only m_low rank 4 with weight 3 -> score 4*3/3 = 4.0, worst of the four
    assert row["score"] == pytest.approx(4.0)
    assert row["overall_rank"] == 4


def test_tied_scores_share_the_overall_rank(tmp_path):
    m = methodology(tmp_path, 1, 1)
    values = pd.DataFrame(
        [("A", "m_low", 1.0), ("A", "m_high", 1.0), ("B", "m_low", 2.0), ("B", "m_high", 2.0)],
        columns=["area_code", "metric_id", "value"],
    )
    # A: ranks 1 (low) and 2 (high) -> 1.5; B: ranks 2 and 1 -> 1.5: a tie, both rank 1
    overall = ranking.overall_ranking(ranking.rank_metrics(values, m), m)
    assert list(overall["overall_rank"]) == [1, 1]


def test_weighted_z_alternative(tmp_path, values):
    m = methodology(tmp_path, 3, 1, method="weighted_z", among="all")
    overall = ranking.overall_ranking(ranking.rank_metrics(values, m), m)
    # m_low "better" values (negated): A -1, B -2, C -2, D -5: mean -2.5, sd (pop) = 1.5
    #   z: A 1.0, B 0.333, C 0.333, D -1.667
    # m_high: A 10, B 30, C 20: mean 20, sd 8.165 -> z: A -1.2247, B 1.2247, C 0
    # score (3*z_low + z_high)/4: A (3 - 1.2247)/4 = 0.4438; B (1 + 1.2247)/4 = 0.5562; C 0.25
    scores = dict(zip(overall["area_code"], overall["score"]))
    assert scores["A"] == pytest.approx(0.44382, abs=1e-4)
    assert scores["B"] == pytest.approx(0.55618, abs=1e-4)
    assert scores["C"] == pytest.approx(0.25, abs=1e-4)
    ranked = overall.dropna(subset=["overall_rank"])
    assert list(ranked["area_code"]) == ["B", "A", "C"]


def test_change_since_previous_period(tmp_path, values):
    current = pd.DataFrame({"area_code": ["A", "B", "C"], "overall_rank": pd.array([1, 2, 3], dtype="Int64")})
    previous = pd.DataFrame({"area_code": ["A", "B"], "overall_rank": pd.array([3, 2], dtype="Int64")})
    changed = ranking.with_change(current, previous).set_index("area_code")
    assert changed.loc["A", "rank_change"] == 2  # moved up from 3 to 1
    assert changed.loc["B", "rank_change"] == 0
    assert pd.isna(changed.loc["C", "rank_change"])


def test_unknown_metric_in_methodology_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nversion: 1\nmethod: weighted_ranks\nmetrics:\n  - {id: nope, weight: 1}\n")
    with pytest.raises(ValueError, match="nope"):
        ranking.load_methodology(str(path), METRICS)


def test_default_methodology_weights_delayed_days_highest():
    m = ranking.load_methodology()
    top = max(m.weights, key=m.weights.get)
    assert top == "delayed_days_per_day_per_100k_18plus"
    assert sorted(m.weights.values())[-1] > sorted(m.weights.values())[-2]


def test_analysis_says_when_there_is_not_enough_history_to_rank(tmp_path):
    import duckdb
    import pandas as pd

    from carewatch import analysis
    from carewatch.errors import NotEnoughHistory

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    mv = pd.DataFrame({"area_code": ["E06000001"], "period_type": ["month"], "period_start": [pd.Timestamp("2017-03-01")],
                       "period_end": [pd.Timestamp("2017-03-31")], "metric_id": [DTOC], "value": [10.0]})
    con.register("mv", mv)
    con.execute("create table fct_metric_values as select * from mv")
    with pytest.raises(NotEnoughHistory, match=r"12 complete months of total delayed days per day per 100,000 population aged 18\+; the warehouse holds 1"):
        analysis.run(con, export=False)


def _mv_row(period_type, start, end, metric, value):
    """One fct_metric_values row of Hackney, as analysis reads them."""
    return {"area_code": "E09000012", "period_type": period_type, "period_start": pd.Timestamp(start),
            "period_end": pd.Timestamp(end), "metric_id": metric, "value": value}


def test_a_financial_year_ranks_with_the_reablement_year_before_it():
    """The 2018 dashboard ranked 2017-18 with reablement of 2016-17 (domain brief); the rolling
    table to March 2018 does the same, so the two tables agree on which ASCOF year they use."""
    from carewatch import analysis

    dtoc, still_home = "delayed_days_per_day_per_100k_18plus", "reablement_still_at_home_91d_65plus"
    mv = pd.DataFrame([
        _mv_row("rolling_12m", "2018-03-01", "2018-03-31", dtoc, 9.0),
        _mv_row("financial_year", "2017-04-01", "2018-03-31", dtoc, 9.0),
        _mv_row("financial_year", "2015-04-01", "2016-03-31", still_home, 0.70),
        _mv_row("financial_year", "2016-04-01", "2017-03-31", still_home, 0.80),
        _mv_row("financial_year", "2017-04-01", "2018-03-31", still_home, 0.90),  # published October 2018
    ])
    methodology = ranking.load_methodology()
    year = analysis.financial_year_values(mv, methodology, pd.Timestamp("2017-04-01"))
    assert sorted(zip(year["metric_id"], year["value"])) == [(dtoc, 9.0), (still_home, 0.80)]
    rolling = analysis.ranking_values(mv, methodology, pd.Timestamp("2018-03-01"))
    assert sorted(zip(rolling["metric_id"], rolling["value"])) == [(dtoc, 9.0), (still_home, 0.80)]


def test_the_rolling_table_takes_a_reablement_year_six_months_after_it_ends():
    """2016-17 ends 31 March 2017 and is used from October 2017 (1 October - 6 months = 1 April
    2017 >= 31 March); September 2017 (cutoff 1 March 2017) still ranks with 2015-16."""
    from carewatch import analysis

    dtoc, still_home = "delayed_days_per_day_per_100k_18plus", "reablement_still_at_home_91d_65plus"
    mv = pd.DataFrame([
        _mv_row("rolling_12m", "2017-09-01", "2017-09-30", dtoc, 9.0),
        _mv_row("rolling_12m", "2017-10-01", "2017-10-31", dtoc, 8.0),
        _mv_row("financial_year", "2015-04-01", "2016-03-31", still_home, 0.70),
        _mv_row("financial_year", "2016-04-01", "2017-03-31", still_home, 0.80),
    ])
    methodology = ranking.load_methodology()
    september = analysis.ranking_values(mv, methodology, pd.Timestamp("2017-09-01"))
    assert sorted(zip(september["metric_id"], september["value"])) == [(dtoc, 9.0), (still_home, 0.70)]
    october = analysis.ranking_values(mv, methodology, pd.Timestamp("2017-10-01"))
    assert sorted(zip(october["metric_id"], october["value"])) == [(dtoc, 8.0), (still_home, 0.80)]


def test_a_monthly_metric_missing_this_month_is_ranked_on_its_lagged_financial_year():
    """A hospital file late or quarantined leaves no rolling year of its metrics for up to 12
    months: March 2018 takes emergency admissions from 2016-17 (ended 31 March 2017, at least
    six months before), as for ASCOF, and says so in the row's period; leaving them out would
    leave every area below min_metrics, with no league table and every flag spell ended."""
    from carewatch import analysis

    dtoc, admissions = "delayed_days_per_day_per_100k_18plus", "emergency_admissions_65plus_per_100k"
    mv = pd.DataFrame([
        _mv_row("rolling_12m", "2018-02-01", "2018-02-28", dtoc, 9.0),
        _mv_row("rolling_12m", "2018-03-01", "2018-03-31", dtoc, 8.0),
        _mv_row("rolling_12m", "2018-02-01", "2018-02-28", admissions, 25000.0),  # no March
        _mv_row("financial_year", "2015-04-01", "2016-03-31", admissions, 23000.0),
        _mv_row("financial_year", "2016-04-01", "2017-03-31", admissions, 24000.0),
    ])
    methodology = ranking.load_methodology()
    february = analysis.ranking_values(mv, methodology, pd.Timestamp("2018-02-01"))
    assert sorted(zip(february["metric_id"], february["value"])) == [(dtoc, 9.0), (admissions, 25000.0)]
    march = analysis.ranking_values(mv, methodology, pd.Timestamp("2018-03-01")).set_index("metric_id")
    assert march.loc[dtoc, "value"] == 8.0
    assert (march.loc[admissions, "value"], march.loc[admissions, "period_type"]) == (24000.0, "financial_year")
    assert march.loc[admissions, "period_start"] == pd.Timestamp("2016-04-01")
    # ranking_metric says which period each ranked value is of, so a rank history reads right
    methodology = dataclasses.replace(methodology, min_metrics=1)
    ranked, _ = analysis.rank_periods(mv, methodology, ["E09000012"])
    rows = ranked[ranked["period_type"] == "rolling_12m"].set_index(["period_start", "metric_id"])
    assert rows.loc[(pd.Timestamp("2018-02-01"), admissions), ["value_period_type", "value_period_start"]].tolist() == [
        "rolling_12m", dt.date(2018, 2, 1)]
    assert rows.loc[(pd.Timestamp("2018-03-01"), admissions), ["value_period_type", "value_period_start"]].tolist() == [
        "financial_year", dt.date(2016, 4, 1)]
    assert rows.loc[(pd.Timestamp("2018-03-01"), dtoc), ["value_period_type", "value_period_start"]].tolist() == [
        "rolling_12m", dt.date(2018, 3, 1)]


def test_rank_change_is_against_the_previous_month_of_the_same_table():
    from carewatch import analysis

    dtoc = DTOC
    m = ranking.Methodology(name="t", version=1, method="weighted_ranks", ties="min", min_metrics=1,
                            weights={dtoc: 1.0}, directions={dtoc: "low"}, period_metric=dtoc)

    def row(area, month, value):
        start = pd.Timestamp(month)
        return {"area_code": area, "period_type": "rolling_12m", "period_start": start,
                "period_end": start + pd.offsets.MonthEnd(0), "metric_id": dtoc, "value": value}

    # February: A 5 (rank 1), B 10 (rank 2); March: A 10 (rank 2), B 5 (rank 1)
    mv = pd.DataFrame([row("A", "2018-02-01", 5.0), row("B", "2018-02-01", 10.0),
                       row("A", "2018-03-01", 10.0), row("B", "2018-03-01", 5.0)])
    _, overall = analysis.rank_periods(mv, m, ["A", "B"])
    march = overall[overall["period_start"] == pd.Timestamp("2018-03-01")].set_index("area_code")
    # rank change = previous - current: A 1 - 2 = -1 (down), B 2 - 1 = +1 (up)
    assert march.loc[["A", "B"], "previous_rank"].tolist() == [1, 2]
    assert march.loc[["A", "B"], "rank_change"].tolist() == [-1, 1]
    february = overall[overall["period_start"] == pd.Timestamp("2018-02-01")]
    assert february["rank_change"].isna().all()  # nothing before it


def test_the_methodology_in_force_is_the_one_config_names(tmp_path, monkeypatch):
    """A second methodology file beside the first is used once config/methodology/in_force.yaml
    names it: by the analysis (every ranking row records it) and by the report's weights."""
    import shutil

    import duckdb
    import yaml

    from carewatch import analysis, monthly_report, paths
    from tests import synthetic_warehouse

    assert ranking.in_force() == "dashboard-2018" and ranking.load_methodology().name == "dashboard-2018-default"
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    method = yaml.safe_load((config / "methodology" / "dashboard-2018.yaml").read_text())
    method.update(name="dashboard-2019", version=1)
    for metric in method["metrics"]:
        metric["weight"] = 2 if metric["id"] == "weekend_discharge_share" else 1
    (config / "methodology" / "dashboard-2019.yaml").write_text(yaml.safe_dump(method, sort_keys=False))
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    assert ranking.load_methodology().name == "dashboard-2018-default"  # a file beside it alone changes nothing
    (config / "methodology" / "in_force.yaml").write_text("methodology: dashboard-2019\n")
    assert ranking.load_methodology().weights["weekend_discharge_share"] == 2.0

    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        labels = {m for (m,) in con.execute("select distinct methodology from ranking_overall union select distinct methodology from ranking_metric").fetchall()}
        weights = dict(con.execute("select distinct metric_id, weight from ranking_metric").fetchall())
        data = monthly_report.gather(con)
    assert labels == {"dashboard-2019@v1"}
    assert weights["weekend_discharge_share"] == 2.0 and weights["delayed_days_per_day_per_100k_18plus"] == 1.0
    assert data["weights"]["weekend_discharge_share"] == 2.0


def test_the_periods_ranked_are_those_of_the_methodology_period_metric(tmp_path):
    """A league table for every rolling year (and financial year) the methodology's
    period_metric has a value for: delayed days in the shipped methodology."""
    from carewatch import analysis, warehouse

    admissions = "emergency_admissions_65plus_per_100k"
    mv = pd.DataFrame([
        _mv_row("rolling_12m", "2018-02-01", "2018-02-28", DTOC, 9.0),
        _mv_row("rolling_12m", "2018-03-01", "2018-03-31", DTOC, 8.0),
        _mv_row("rolling_12m", "2018-01-01", "2018-01-31", admissions, 25000.0),
        _mv_row("rolling_12m", "2018-02-01", "2018-02-28", admissions, 25000.0),
    ])

    def rolling_periods(methodology):
        _, overall = analysis.rank_periods(mv, methodology, ["E09000012"])
        return sorted(overall.loc[overall["period_type"] == "rolling_12m", "period_start"].dt.strftime("%Y-%m").unique())

    shipped = ranking.load_methodology()
    assert shipped.period_metric == DTOC and rolling_periods(shipped) == ["2018-02", "2018-03"]
    text = (ranking.paths.config_dir() / "methodology" / "dashboard-2018.yaml").read_text()
    path = tmp_path / "other.yaml"
    path.write_text(text.replace(f"period_metric: {DTOC}", f"period_metric: {admissions}"))
    assert rolling_periods(ranking.load_methodology(str(path), warehouse.metric_config())) == ["2018-01", "2018-02"]
    path.write_text(text.replace(f"period_metric: {DTOC}", "period_metric: nope"))
    with pytest.raises(ValueError, match="period_metric 'nope'"):
        ranking.load_methodology(str(path))


def test_each_run_keeps_what_it_reported_when_a_later_run_restates_the_month(tmp_path):
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    march = "period_start = date '2018-03-01'"

    def kept(con, table):
        return con.execute(f"select * exclude (reported_at, kind, run_month, columns_kept) from reported_{table} order by all").fetchall()

    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        first = {table: kept(con, table) for table in analysis.REPORTED}
        for table, (where, _) in analysis.REPORTED.items():  # the month the run reported, as the tables hold it
            assert first[table] == con.execute(f"select * from {table} where {where} and {march} order by all").fetchall() != []
        assert {r for (r,) in con.execute("select distinct period_start from reported_ranking_overall").fetchall()} == {dt.date(2018, 3, 1)}
        analysis.run(con, export=False)  # a rerun that changes nothing keeps nothing more
        assert {table: kept(con, table) for table in analysis.REPORTED} == first
        # a revision restates March 2018: the first area's delayed days tripled
        con.execute("update fct_metric_values set numerator = numerator * 3, value = value * 3 "
                    "where area_code = ? and metric_id like 'delayed_days_per_day_per_100k_18plus%'", [areas[0]])
        rank = "select overall_rank from {} where area_code = ? and period_type = 'rolling_12m' and " + march
        before = con.execute(rank.format("ranking_overall"), [areas[0]]).fetchone()[0]
        analysis.run(con, export=False)
        after = con.execute(rank.format("ranking_overall"), [areas[0]]).fetchone()[0]
        assert after > before  # worse: the month was restated
        runs = con.execute("select reported_at, overall_rank from reported_ranking_overall where area_code = ? order by reported_at",
                           [areas[0]]).fetchall()
        assert [r for _, r in runs] == [before, after] and runs[0][0] < runs[1][0]
        # what was reported first is kept as it was, and an as-of query finds it
        first_at = runs[0][0]
        assert con.execute("select * exclude (reported_at, kind, run_month, columns_kept) from reported_ranking_overall where reported_at = ? order by all",
                           [first_at]).fetchall() == first["ranking_overall"]
        assert con.execute("select count(distinct reported_at) from reported_target_tracking").fetchone()[0] == 2


def _analysis_tables(ranking: str, flags: str, targets: str):
    """An in-memory warehouse holding the three tables a run reports, each from its select."""
    import duckdb

    con = duckdb.connect()
    for name, select in (("ranking_overall", ranking), ("review_flag_history", flags), ("target_tracking", targets)):
        con.execute(f"create table {name} as {select}")
    return con


def _april_run_tracking(target_set: str, *months: str):
    """:func:`_analysis_tables` of an April 2018 run (area A ranked and flagged) whose target set
    tracks A off track and B on track in each of ``months``."""
    rows = ", ".join(f"('{target_set}', date '{m}', 'A', false), ('{target_set}', date '{m}', 'B', true)" for m in months)
    return _analysis_tables(
        ranking="select 'rolling_12m' as period_type, date '2018-04-01' as period_start, 'A' as area_code, 1 as overall_rank",
        flags="select date '2018-04-01' as period_start, 'A' as area_code, 'new' as status",
        targets=f"select * from (values {rows}) as t(target_set, period_start, area_code, on_track)")


def test_a_target_set_that_ended_is_kept_as_reported_at_its_last_month():
    # the July 2017 expectations end in March 2018: the June 2018 run still reports (and the
    # summary shows) March 2018's targets, so a restatement of them is kept beside the first
    from carewatch import analysis

    con = _analysis_tables(
        ranking="select 'rolling_12m' as period_type, date '2018-04-01' as period_start, 'A' as area_code, 1 as overall_rank",
        flags="select date '2018-04-01' as period_start, 'A' as area_code, 'new' as status",
        targets="""select * from (values
                       ('set-2017', date '2018-02-01', 'A', false), ('set-2017', date '2018-03-01', 'A', false),
                       ('set-2018', date '2018-04-01', 'A', true), ('set-2018', date '2018-05-01', 'A', true))
                   as t(target_set, period_start, area_code, on_track)""")
    assert analysis.record_reported(con, dt.date(2018, 4, 1)) == [
        "reported_ranking_overall", "reported_review_flag_history", "reported_target_tracking"]
    kept = "select target_set, period_start, on_track from reported_target_tracking order by reported_at, target_set"
    # each set at its latest month up to the run's (not set-2018's May, after the run's month)
    assert con.execute(kept).fetchall() == [("set-2017", dt.date(2018, 3, 1), False), ("set-2018", dt.date(2018, 4, 1), True)]
    assert analysis.record_reported(con, dt.date(2018, 4, 1)) == []  # the same again: nothing kept
    con.execute("update target_tracking set on_track = true where target_set = 'set-2017' and period_start = '2018-03-01'")
    assert analysis.record_reported(con, dt.date(2018, 4, 1)) == ["reported_target_tracking"]  # March restated
    assert con.execute(kept).fetchall()[2:] == [("set-2017", dt.date(2018, 3, 1), True)]
    assert con.execute("select count(*) from reported_target_tracking where target_set = 'set-2018'").fetchone()[0] == 1
    # reported by this run (its report shows March's targets), and a restatement of what was reported before
    assert con.execute("select kind from reported_target_tracking order by reported_at desc limit 1").fetchone()[0] == "reported"
    assert con.execute("select table_name, period_start, part, areas_changed from restatements").fetchall() == [
        ("target_tracking", dt.date(2018, 3, 1), "set-2017", 1)]


def test_a_later_run_that_recomputes_an_earlier_month_keeps_it_as_restated_and_says_how_many_areas_changed():
    from carewatch import analysis

    con = _analysis_tables(
        ranking="""select * from (values
                       ('rolling_12m', date '2018-03-01', 'A', 1), ('rolling_12m', date '2018-03-01', 'B', 2),
                       ('rolling_12m', date '2018-03-01', 'C', 3)) as t(period_type, period_start, area_code, overall_rank)""",
        flags="select date '2018-03-01' as period_start, 'C' as area_code, 'new' as status",
        targets="select 'set' as target_set, date '2018-03-01' as period_start, 'A' as area_code, true as on_track")
    analysis.record_reported(con, dt.date(2018, 3, 1))  # the May run reports March
    # the June run: a revision of March swaps A and B; April is ranked
    con.execute("update ranking_overall set overall_rank = 3 - overall_rank where area_code in ('A', 'B')")
    con.execute("insert into ranking_overall values ('rolling_12m', date '2018-04-01', 'A', 2), ('rolling_12m', date '2018-04-01', 'B', 1)")
    con.execute("insert into review_flag_history values (date '2018-04-01', 'C', 'continuing')")
    analysis.record_reported(con, dt.date(2018, 4, 1))
    kept = con.execute("select period_start, kind, area_code, overall_rank from reported_ranking_overall order by reported_at, kind, period_start, area_code").fetchall()
    march, april = dt.date(2018, 3, 1), dt.date(2018, 4, 1)
    assert kept == [(march, "reported", "A", 1), (march, "reported", "B", 2), (march, "reported", "C", 3),
                    (april, "reported", "A", 2), (april, "reported", "B", 1),
                    (march, "restated", "A", 2), (march, "restated", "B", 1), (march, "restated", "C", 3)]
    assert con.execute("select table_name, period_start, part, areas_changed from restatements").fetchall() == [
        ("ranking_overall", march, None, 2)]  # two areas' ranks changed; the flags and targets did not
    # which run kept them: "what did March's report say" is the rows its own run (run_month March) reported
    assert con.execute("select period_start, kind, run_month, count(*) from reported_ranking_overall group by all order by all").fetchall() == [
        (march, "reported", march, 3), (march, "restated", april, 3), (april, "reported", april, 2)]
    # the next run restates nothing it has not kept: no new restatement
    analysis.record_reported(con, dt.date(2018, 4, 1))
    assert con.execute("select count(*) from restatements").fetchone()[0] == 1
    assert con.execute("select count(*) from reported_ranking_overall").fetchone()[0] == 8
    # a month no longer computed at all is said once, with the areas last kept, not by every run after
    con.execute("delete from ranking_overall where period_start = date '2018-03-01'")
    for _ in range(2):
        analysis.record_reported(con, dt.date(2018, 4, 1))
        assert con.execute("select table_name, period_start, areas_changed, change from restatements order by recorded_at").fetchall() == [
            ("ranking_overall", march, 2, "changed"), ("ranking_overall", march, 3, "no longer computed")]
        assert analysis.restated_words(analysis.restated_by_last_run(con)) == [
            "March 2018 overall ranking (no longer computed: 3 areas reported before)"]
    assert con.execute("select count(*) from reported_ranking_overall").fetchone()[0] == 8


def test_a_target_sets_month_cut_off_by_a_new_end_is_said_once_and_again_if_it_comes_back_and_goes():
    # a target set's valid_to moved from March to February: the June run reports February as
    # the set's last month, and March, reported before, is no longer computed
    from carewatch import analysis

    feb, mar, apr = dt.date(2018, 2, 1), dt.date(2018, 3, 1), dt.date(2018, 4, 1)
    con = _april_run_tracking("set-2017", "2018-02-01", "2018-03-01")
    analysis.record_reported(con, apr)
    changes = "select period_start, part, areas_changed, change from restatements where table_name = 'target_tracking' order by recorded_at"
    assert con.execute(changes).fetchall() == []
    con.execute("delete from target_tracking where period_start = date '2018-03-01'")
    for _ in range(2):  # the run, and the next: said once
        analysis.record_reported(con, apr)
        assert con.execute(changes).fetchall() == [(mar, "set-2017", 2, "no longer computed")]
    assert analysis.restated_words(analysis.restated_by_last_run(con)) == [
        "March 2018 DTOC target tracking set-2017 (no longer computed: 2 areas reported before)"]
    # February, shown now as the set's last month, is kept as this run's report
    assert con.execute("select period_start, count(*) from reported_target_tracking group by 1 order by 1").fetchall() == [(feb, 2), (mar, 2)]
    # the end put back: March is computed again (as it was), kept again and said so; then cut again: said again
    con.execute("insert into target_tracking values ('set-2017', date '2018-03-01', 'A', false), ('set-2017', date '2018-03-01', 'B', true)")
    analysis.record_reported(con, apr)
    assert con.execute(changes).fetchall()[1:] == [(mar, "set-2017", 2, "computed again")]
    assert analysis.restated_words(analysis.restated_by_last_run(con)) == ["March 2018 DTOC target tracking set-2017 (computed again: 2 areas)"]
    analysis.record_reported(con, apr)
    assert len(con.execute(changes).fetchall()) == 2  # nothing new while it stays
    con.execute("delete from target_tracking where period_start = date '2018-03-01'")
    analysis.record_reported(con, apr)
    assert con.execute(changes).fetchall()[2:] == [(mar, "set-2017", 2, "no longer computed")]


def test_a_new_version_of_a_target_set_is_the_same_set_not_one_gone_and_one_new():
    # version 2 of the set, computing the same rows: nothing restated, nothing gone; its
    # tracking is kept again as this run's report under the new label
    from carewatch import analysis

    mar, apr = dt.date(2018, 3, 1), dt.date(2018, 4, 1)
    con = _april_run_tracking("set-2017@v1", "2018-03-01")
    analysis.record_reported(con, apr)
    con.execute("update target_tracking set target_set = 'set-2017@v2'")
    analysis.record_reported(con, apr)
    assert con.execute("select count(*) from restatements").fetchone()[0] == 0
    assert analysis.restated_by_last_run(con).empty
    assert con.execute("select target_set, kind, count(*) from reported_target_tracking group by all order by all").fetchall() == [
        ("set-2017@v1", "reported", 2), ("set-2017@v2", "reported", 2)]
    # v2 then computing March differently is a restatement of the set's March
    con.execute("update target_tracking set on_track = not on_track where area_code = 'A'")
    analysis.record_reported(con, apr)
    assert con.execute("select period_start, part, areas_changed, change from restatements").fetchall() == [
        (mar, "set-2017", 1, "changed")]


def test_a_release_that_adds_or_retypes_a_column_restates_nothing_and_fails_no_run():
    # rows kept before a release are compared on the columns they were kept with: a new column
    # (null in them) or a retyped one is not a change of figures; a retyped column's old values
    # stay, under <name>__<old type>, rather than being cast (or failing every monthly run)
    from carewatch import analysis

    con = _analysis_tables(
        ranking="select 'rolling_12m' as period_type, date '2018-03-01' as period_start, 'A' as area_code, 1 as overall_rank, 'x' as methodology",
        flags="select date '2018-03-01' as period_start, 'A' as area_code, 'new' as status, 'one reason' as reasons",
        targets="select 'set' as target_set, date '2018-03-01' as period_start, 'A' as area_code, 2.5 as gap")
    analysis.record_reported(con, dt.date(2018, 3, 1))
    # the next release: the flags gain a column, the gap becomes text, April is ranked
    con.execute("alter table review_flag_history add column rule_ids varchar[]")
    con.execute("update review_flag_history set rule_ids = ['bottom_quartile']")
    con.execute("alter table target_tracking alter gap type varchar")
    con.execute("insert into ranking_overall values ('rolling_12m', date '2018-04-01', 'A', 1, 'x')")
    con.execute("insert into review_flag_history values (date '2018-04-01', 'A', 'continuing', 'one reason', ['bottom_quartile'])")
    analysis.record_reported(con, dt.date(2018, 4, 1))
    assert con.execute("select count(*) from restatements").fetchone()[0] == 0
    assert con.execute("select count(*) from reported_review_flag_history where period_start = date '2018-03-01'").fetchone()[0] == 1
    assert con.execute("select gap__decimal_2_1, gap from reported_target_tracking order by reported_at").fetchall() == [(2.5, None)]
    # a real change after it is one
    con.execute("update review_flag_history set status = 'cleared' where period_start = date '2018-03-01'")
    analysis.record_reported(con, dt.date(2018, 4, 1))
    assert con.execute("select table_name, period_start, areas_changed from restatements").fetchall() == [
        ("review_flag_history", dt.date(2018, 3, 1), 1)]


def test_a_rerun_of_the_month_still_says_what_its_run_restated():
    # Ctrl-C after the analysis, or a failed report, and the same run again: the note must not
    # vanish because the rerun's own analysis found nothing new to restate
    from carewatch import analysis

    con = _analysis_tables(
        ranking="select * from (values ('rolling_12m', date '2018-03-01', 'A', 1), ('rolling_12m', date '2018-03-01', 'B', 2)) t(period_type, period_start, area_code, overall_rank)",
        flags="select date '2018-03-01' as period_start, 'A' as area_code, 'new' as status",
        targets="select 'set' as target_set, date '2018-03-01' as period_start, 'A' as area_code, true as on_track")
    analysis.record_reported(con, dt.date(2018, 3, 1))
    assert analysis.restated_by_last_run(con).empty  # nothing restated: no note
    con.execute("update ranking_overall set overall_rank = 3 - overall_rank")
    con.execute("insert into ranking_overall values ('rolling_12m', date '2018-04-01', 'A', 1)")
    for _ in range(2):  # the April run, then its rerun
        analysis.record_reported(con, dt.date(2018, 4, 1))
        restated = analysis.restated_by_last_run(con)
        assert restated[["table_name", "areas_changed"]].values.tolist() == [["ranking_overall", 2]]
        assert analysis.restated_words(restated) == ["March 2018 overall ranking (2 areas changed)"]
    con.execute("insert into ranking_overall values ('rolling_12m', date '2018-05-01', 'A', 1)")
    analysis.record_reported(con, dt.date(2018, 5, 1))  # the May run restates nothing
    assert analysis.restated_by_last_run(con).empty


def test_a_run_that_loads_late_months_reports_each_month_ranked_since_the_last_report(carewatch_home):
    # a drill: DTOC for November 2018 was late; the run that loaded November, December and
    # January recorded January only (analysis_runs: October three times, then January)
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = carewatch_home / "warehouse.duckdb"
    carewatch_home.mkdir(parents=True)
    areas = synthetic_warehouse.build(db)
    exports = carewatch_home / "exports"
    marts = ("ranking_overall", "ranking_metric", "review_flag_history", "target_tracking", "peer_comparison", "fct_peer_group_values")
    jan, feb, mar = dt.date(2018, 1, 1), dt.date(2018, 2, 1), dt.date(2018, 3, 1)
    with duckdb.connect(str(db)) as con:
        con.execute("create table held as select * from fct_metric_values where period_start > date '2017-12-01'")
        con.execute("delete from fct_metric_values where period_start > date '2017-12-01'")
        analysis.run(con)
        con.execute("insert into fct_metric_values select * from held")
        analysis.run(con)
        runs = con.execute("select analysed_at, month from analysis_runs order by all").fetchall()
        assert [m for _, m in runs] == [dt.date(2017, 12, 1), jan, feb, mar] and len({a for a, _ in runs[1:]}) == 1
        # each a normal report of its month: its own league table, kept as reported
        assert con.execute("select run_month, kind, count(*), count(distinct period_start), bool_and(period_start = run_month) "
                           "from reported_ranking_overall group by run_month, kind order by all").fetchall() == [
            (dt.date(2017, 12, 1), "reported", len(areas), 1, True), (jan, "reported", len(areas), 1, True),
            (feb, "reported", len(areas), 1, True), (mar, "reported", len(areas), 1, True)]
        # each month reported has its comparison: December's, by the first analysis, is kept
        assert con.execute("select distinct period_start from peer_comparison order by 1").fetchall() == [
            (dt.date(2017, 12, 1),), (jan,), (feb,), (mar,)]
        assert analysis.restated_by_last_run(con).empty  # the catch-up restated nothing
        # the exports of each month: the periods up to it
        for month in ("2017-12", "2018-01", "2018-02", "2018-03"):
            overall = pd.read_csv(exports / month / "ranking_overall.csv")
            assert overall.loc[overall["period_type"] == "rolling_12m", "period_start"].max()[:7] == month
            assert set(pd.read_csv(exports / month / "peer_comparison.csv")["period_start"].str[:7]) == {month}
        before = {table: con.execute(f"select * from {table} order by all").fetchall() for table in marts}
        kept = {table: con.execute(f"select count(*) from reported_{table}").fetchone()[0] for table in analysis.REPORTED}
        generated = (exports / "2018-03" / "generated_at.txt").read_text()
        # a rerun: identical marts, no reported row twice, the exports left as they were
        analysis.run(con)
        assert {table: con.execute(f"select * from {table} order by all").fetchall() for table in marts}.keys() == before.keys()
        for table in marts:
            after = con.execute(f"select * from {table} order by all").fetchall()
            assert after == before[table], table
        assert {table: con.execute(f"select count(*) from reported_{table}").fetchone()[0] for table in analysis.REPORTED} == kept
        assert (exports / "2018-03" / "generated_at.txt").read_text() == generated
        assert con.execute("select month from analysis_runs order by analysed_at desc, month desc limit 1").fetchone()[0] == mar


def test_a_catch_up_run_says_what_it_restated():
    # one analysis reporting several months records them with one analysed_at: the months it
    # restated are still those recorded since the latest analysis of an earlier month
    from carewatch import analysis

    con = _analysis_tables(
        ranking="select * from (values ('rolling_12m', date '2018-03-01', 'A', 1), ('rolling_12m', date '2018-03-01', 'B', 2)) t(period_type, period_start, area_code, overall_rank)",
        flags="select date '2018-03-01' as period_start, 'A' as area_code, 'new' as status",
        targets="select 'set' as target_set, date '2018-03-01' as period_start, 'A' as area_code, true as on_track")
    analysis.record_reported(con, dt.date(2018, 3, 1))
    con.execute("update ranking_overall set overall_rank = 3 - overall_rank")
    con.execute("insert into ranking_overall values ('rolling_12m', date '2018-04-01', 'A', 1), ('rolling_12m', date '2018-05-01', 'A', 1)")
    con.execute("begin transaction")  # one analysis (now() is its start) reports April and May, in either order
    for month in (dt.date(2018, 5, 1), dt.date(2018, 4, 1)):
        analysis.record_reported(con, month)
    con.execute("commit")
    assert analysis.restated_words(analysis.restated_by_last_run(con)) == ["March 2018 overall ranking (2 areas changed)"]


def test_a_period_ranks_the_areas_that_existed_in_it_so_a_boundary_change_restates_nothing():
    # April 2019: Bournemouth, Poole and the Dorset county ended; Bournemouth, Christchurch and
    # Poole (BCP) and the Dorset unitary began (config/geography/code_changes.csv). A drill
    # found the first run to load April listing every earlier month's ranking as restated (2
    # areas changed): BCP and the new Dorset added to each with an empty score. Here five areas
    # in March (the old three, Hackney, Leeds) and four in April (BCP, new Dorset, Hackney,
    # Leeds): the old three keep a lagged financial year's value in April but are not ranked in
    # it; adding April restates nothing in March
    import duckdb

    from carewatch import analysis

    dtoc, still_home = "delayed_days_per_day_per_100k_18plus", "reablement_still_at_home_91d_65plus"
    old, new, stay = ["E06000028", "E06000029", "E10000009"], ["E06000058", "E06000059"], ["E09000012", "E08000035"]

    def row(area, period_type, start, end, metric, value):
        return {**_mv_row(period_type, start, end, metric, value), "area_code": area}

    march = [row(a, "rolling_12m", "2019-03-01", "2019-03-31", dtoc, 5.0 + i) for i, a in enumerate(old + stay)]
    march += [row(a, "financial_year", "2017-04-01", "2018-03-31", still_home, 0.8) for a in old + stay]
    april = [row(a, "rolling_12m", "2019-04-01", "2019-04-30", dtoc, 4.0 + i) for i, a in enumerate(new + stay)]
    methodology = dataclasses.replace(ranking.load_methodology(), min_metrics=1)

    def analyse(con, rows, month):
        mv = pd.DataFrame(rows)
        areas = sorted(set(mv["area_code"]))
        ranked, overall = analysis.rank_periods(mv, methodology, areas)
        con.register("overall", overall)
        con.execute("create or replace table ranking_overall as select * from overall")
        con.unregister("overall")
        con.execute("create or replace table review_flag_history as select date '2019-03-01' as period_start, 'E09000012' as area_code, 'new' as status")
        con.execute("create or replace table target_tracking as select 'set' as target_set, date '2019-03-01' as period_start, 'E09000012' as area_code")
        analysis.record_reported(con, month)
        return ranked, overall

    con = duckdb.connect()
    _, overall = analyse(con, march, dt.date(2019, 3, 1))
    assert sorted(overall["area_code"]) == sorted(old + stay)
    ranked, overall = analyse(con, march + april, dt.date(2019, 4, 1))
    of = {str(m)[:7]: sorted(g["area_code"]) for m, g in overall.groupby("period_start")}
    assert of == {"2019-03": sorted(old + stay), "2019-04": sorted(new + stay)}
    assert (overall["metrics_ranked"] > 0).all()  # no empty row for an area that did not exist
    assert set(ranked.loc[ranked["period_start"] == pd.Timestamp("2019-04-01"), "area_code"]) == set(new + stay)
    assert con.execute("select count(*) from restatements").fetchone()[0] == 0
    assert con.execute("select kind, period_start::date, count(*) from reported_ranking_overall group by all order by all").fetchall() == [
        ("reported", dt.date(2019, 3, 1), 5), ("reported", dt.date(2019, 4, 1), 4)]


def test_a_month_computed_again_with_other_figures_is_said_once_as_computed_again():
    # March was reported (A off track, B on), then no longer computed, then computed again with
    # B off track too: one 'computed again' row (2 areas), not also a 'changed' one recorded
    # at the same instant (which of the two the summary then showed was a tie)
    from carewatch import analysis

    mar, apr = dt.date(2018, 3, 1), dt.date(2018, 4, 1)
    con = _april_run_tracking("set-2017", "2018-03-01")
    analysis.record_reported(con, apr)
    con.execute("delete from target_tracking where period_start = date '2018-03-01'")
    analysis.record_reported(con, apr)
    con.execute("insert into target_tracking values ('set-2017', date '2018-03-01', 'A', false), ('set-2017', date '2018-03-01', 'B', false)")
    analysis.record_reported(con, apr)
    changes = "select period_start, part, areas_changed, change from restatements where table_name = 'target_tracking' order by recorded_at"
    assert con.execute(changes).fetchall() == [(mar, "set-2017", 2, "no longer computed"), (mar, "set-2017", 2, "computed again")]
    assert analysis.restated_words(analysis.restated_by_last_run(con)) == ["March 2018 DTOC target tracking set-2017 (computed again: 2 areas)"]
    # kept again as it is now, so the next run restates nothing
    analysis.record_reported(con, apr)
    assert len(con.execute(changes).fetchall()) == 2
    assert con.execute("select on_track from reported_target_tracking where period_start = ? and area_code = 'B' "
                       "order by reported_at desc limit 1", [mar]).fetchone() == (False,)


def test_what_a_run_restated_is_listed_by_month_then_table_and_part():
    # the summary and the report list them in this order, whatever order they were recorded in
    import duckdb

    from carewatch import analysis

    con = duckdb.connect()
    con.execute(analysis.RESTATEMENTS_DDL)
    con.execute(analysis.ANALYSIS_RUNS_DDL)
    con.execute("insert into analysis_runs values (timestamptz '2018-05-15 10:00:00+00', date '2018-03-01'), "
                "(timestamptz '2018-06-15 10:00:00+00', date '2018-04-01')")
    recorded = [("target_tracking", f"2017-{m:02d}-01", "set-b") for m in range(12, 0, -1)]
    recorded += [("target_tracking", f"2017-{m:02d}-01", "set-a") for m in range(1, 13)]
    recorded += [("ranking_overall", f"2017-{m:02d}-01", None) for m in range(12, 0, -1)]
    for i, (table, month, part) in enumerate(recorded):
        con.execute("insert into restatements values (?, ?, ?, 1, timestamptz '2018-06-15 10:00:00+00' + to_seconds(?), 'changed')",
                    [table, month, part, i])
    listed = analysis.restated_by_last_run(con)
    expected = [(dt.date(2017, m, 1), table, part) for m in range(1, 13)
                for table, part in (("ranking_overall", None), ("target_tracking", "set-a"), ("target_tracking", "set-b"))]
    assert [(pd.Timestamp(r.period_start).date(), r.table_name, r.part if isinstance(r.part, str) else None)
            for r in listed.itertuples()] == expected
