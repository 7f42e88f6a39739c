"""``carewatch rank``: a candidate methodology previewed on a small synthetic warehouse, its
league table checked against one worked out here, independently of the product's ranking code."""

from __future__ import annotations

import hashlib
import shutil
from fractions import Fraction

import duckdb
import pandas as pd
import pytest
import yaml

from carewatch import analysis, cli, paths, preview
from tests import synthetic_warehouse

MARCH = pd.Timestamp("2018-03-01")
DTOC = "delayed_days_per_day_per_100k_18plus"
# the candidate: other weights than the shipped file's (delayed days 3, the others 1)
CANDIDATE_WEIGHTS = {DTOC: 1, "emergency_admissions_65plus_per_100k": 2, "los_p90_days_65plus": 1,
                     "reablement_still_at_home_91d_65plus": 1, "reablement_offered_65plus": 0.5, "weekend_discharge_share": 3}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A home whose warehouse was analysed once with the shipped methodology (its published
    ranking and flags), areas[1] given areas[0]'s values of March 2018 (a tie on every metric),
    and a config directory holding the candidate methodology beside the shipped one."""
    root = tmp_path_factory.mktemp("preview")
    home = root / "home"
    (home / "reports" / "2018-03").mkdir(parents=True)
    (home / "reports" / "2018-03" / "report.html").write_text("<p>published</p>")
    (home / "exports" / "2018-03").mkdir(parents=True)
    (home / "exports" / "2018-03" / "ranking_overall.csv").write_text("published\n")
    db = home / "warehouse.duckdb"
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        con.execute("""update fct_metric_values as t set value = s.value from fct_metric_values as s
                       where t.area_code = ? and s.area_code = ? and s.metric_id = t.metric_id and s.period_type = t.period_type
                         and s.period_start = t.period_start
                         and (t.period_type = 'financial_year' or (t.period_type = 'rolling_12m' and t.period_start = date '2018-03-01'))""",
                    [areas[1], areas[0]])
        analysis.run(con, export=False)
    config = root / "config"
    shutil.copytree(paths.config_dir(), config)
    method = yaml.safe_load((config / "methodology" / "dashboard-2018.yaml").read_text())
    method.update(name="candidate", version=3, metrics=[{"id": m, "weight": w} for m, w in CANDIDATE_WEIGHTS.items()])
    (config / "methodology" / "candidate.yaml").write_text(yaml.safe_dump(method, sort_keys=False))
    return {"home": home, "config": config, "db": db, "areas": areas}


@pytest.fixture
def env(published, monkeypatch):
    monkeypatch.setenv("CAREWATCH_HOME", str(published["home"]))
    monkeypatch.setenv("CAREWATCH_CONFIG", str(published["config"]))
    monkeypatch.delenv("CAREWATCH_WAREHOUSE", raising=False)
    return published


def by_hand(db, weights: dict, month: pd.Timestamp, min_metrics: int = 4) -> pd.DataFrame:
    """The league table of ``month`` worked out from the warehouse's values: each metric's value of
    the rolling 12 months ending in the month; reablement (published as financial years only)
    of 2016-17, the latest year that ended at least 6 months before March 2018 began. Metric rank
    = 1 + the number of areas strictly better (competition ranking, ``ties: min``); score = the
    weighted mean of the area's metric ranks (exact fractions); overall rank = 1 + the number of
    areas with a strictly lower score."""
    directions = {m[1]: m[4] for m in synthetic_warehouse.METRICS}
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("""select area_code, metric_id, value from fct_metric_values
                              where area_code <> 'E92000001' and metric_id in (select unnest(?))
                                and ((period_type = 'rolling_12m' and period_start = ?)
                                     or (period_type = 'financial_year' and period_start = date '2016-04-01'
                                         and metric_id like 'reablement%'))""",
                           [list(weights), month.date()]).fetchall()
    values: dict[str, dict[str, float]] = {}
    for area, metric, value in rows:
        values.setdefault(metric, {})[area] = value
    assert sorted(values) == sorted(weights)  # every metric has its values this month
    ranks: dict[str, dict[str, int]] = {}
    for metric, of_area in values.items():
        better = (lambda a, b: a < b) if directions[metric] == "low" else (lambda a, b: a > b)
        for area, value in of_area.items():
            ranks.setdefault(area, {})[metric] = 1 + sum(better(other, value) for other in of_area.values())
    scores = {area: sum(Fraction(weights[m]).limit_denominator() * r for m, r in rs.items())
              / sum(Fraction(weights[m]).limit_denominator() for m in rs)
              for area, rs in ranks.items() if len(rs) >= min_metrics}
    overall = {area: 1 + sum(other < score for other in scores.values()) for area, score in scores.items()}
    return pd.DataFrame({"area_code": list(scores), "score": [float(s) for s in scores.values()],
                         "overall_rank": [overall[a] for a in scores]}).set_index("area_code").sort_index()


def test_a_candidate_methodology_ranks_the_month_as_worked_out_by_hand(env):
    result = preview.preview("candidate")
    assert result.month == MARCH  # the latest month published
    assert result.methodology.label == "candidate@v3"
    hand = by_hand(env["db"], CANDIDATE_WEIGHTS, MARCH)
    got = result.candidate.set_index("area_code").sort_index()
    assert list(got.index) == list(hand.index) == sorted(env["areas"])
    assert got["overall_rank"].astype(int).tolist() == hand["overall_rank"].tolist()
    assert got["score"].tolist() == pytest.approx(hand["score"].tolist(), rel=1e-12)
    assert (got["methodology"] == "candidate@v3").all()
    # the tie: areas[1] has areas[0]'s values, so the same score and the same (best) rank, and no one the next rank
    first, second = env["areas"][:2]
    tied = int(hand.loc[first, "overall_rank"])
    assert hand.loc[second, "overall_rank"] == tied and (hand["overall_rank"] == tied).sum() == 2
    assert (hand["overall_rank"] == tied + 1).sum() == 0 and got.loc[second, "overall_rank"] == tied
    # and the weights matter: the shipped weights order the areas otherwise
    shipped = by_hand(env["db"], {**{m: 1 for m in CANDIDATE_WEIGHTS}, DTOC: 3}, MARCH)
    assert shipped["overall_rank"].tolist() != hand["overall_rank"].tolist()


@pytest.mark.parametrize("month", ["2018-03", "2017-09", "2017-03"])
def test_the_methodology_in_force_previews_the_published_ranking_and_flags_exactly(env, month):
    # September 2017 and March 2017 rank without reablement (no year ended 6 months before them)
    result = preview.preview("dashboard-2018", pd.Timestamp(month), compare=True, with_flags=True)
    columns = ["area_code", "score", "metrics_ranked", "overall_rank", "methodology"]
    got = result.candidate[columns].sort_values("area_code").reset_index(drop=True)
    with duckdb.connect(str(env["db"]), read_only=True) as con:
        want = con.execute(f"select {', '.join(columns)} from ranking_overall where period_type = 'rolling_12m' "
                           "and period_start = ? order by area_code", [pd.Timestamp(month).date()]).df()
        published_flags = con.execute("select area_code, rule_id, reason from review_flag where period_start = ? order by all",
                                      [pd.Timestamp(month).date()]).fetchall()
    assert len(want) == len(env["areas"])
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)
    assert (preview.comparison(result)["change"] == 0).all()
    assert sorted(result.candidate_flags[["area_code", "rule_id", "reason"]].itertuples(index=False, name=None)) == published_flags
    assert preview.flag_changes(result).empty


def snapshot(folder):
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rank_compares_with_the_published_table_and_writes_nothing_to_the_home(env, tmp_path, capsys, monkeypatch):
    from carewatch import warehouse

    opened, connect = [], warehouse.connect
    monkeypatch.setattr(warehouse, "connect", lambda *args, **kwargs: opened.append((args, kwargs)) or connect(*args, **kwargs))
    before = snapshot(env["home"])
    out = tmp_path / "preview.csv"
    assert cli.main(["rank", "--methodology", "candidate", "--compare", "--flags", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert snapshot(env["home"]) == before  # the warehouse (bytes, mtime), reports and exports as they were
    assert opened == [((), {"read_only": True})]  # opened once, read-only

    hand = by_hand(env["db"], CANDIDATE_WEIGHTS, MARCH)
    with duckdb.connect(str(env["db"]), read_only=True) as con:
        published = con.execute("select area_code, overall_rank from ranking_overall where period_type = 'rolling_12m' "
                                "and period_start = date '2018-03-01'").df().set_index("area_code")["overall_rank"]
        bottom_published = {a for (a,) in con.execute("select area_code from review_flag where period_start = date '2018-03-01' "
                                                       "and rule_id = 'bottom_of_overall_ranking'").fetchall()}
    table = pd.read_csv(out).set_index("area_code")
    assert table.loc[hand.index, "candidate_rank"].tolist() == hand["overall_rank"].tolist()
    assert table.loc[hand.index, "published_rank"].tolist() == published.loc[hand.index].tolist()
    change = published.loc[hand.index] - hand["overall_rank"]  # positive: up the table
    assert table.loc[hand.index, "change"].tolist() == change.tolist()
    assert table["change"].abs().tolist() == sorted(table["change"].abs(), reverse=True)  # largest moves first
    moved = int((change != 0).sum())
    assert 0 < moved <= len(hand)
    # Spearman: Pearson's correlation of the two rankings' ranks (ties given their mean rank)
    x, y = published.loc[hand.index].rank(), hand["overall_rank"].rank()
    rho = ((x - x.mean()) * (y - y.mean())).sum() / (((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum()) ** 0.5
    summary = next(line for line in printed.splitlines() if "Spearman" in line)
    assert f"{moved} of {len(hand)} areas ranked by both move" in summary
    assert f"Spearman rank correlation {rho:.4f}" in summary and "dashboard-2018-default@v2" in summary
    rise, fall = change.idxmax(), change.idxmin()
    assert f"({int(change[rise]):+d})" in summary and f"({int(change[fall]):+d})" in summary

    # the flags: only the bottom-12 rule reads the league table; its areas under the candidate, by hand
    # (fewer than 12 areas ranked below them)
    bottom_candidate = {a for a, r in hand["overall_rank"].items() if (hand["overall_rank"] > r).sum() < 12}
    flags_lines = printed.split("Spearman", 1)[1]
    new = {a for a in bottom_candidate - bottom_published}
    gone = {a for a in bottom_published - bottom_candidate}
    assert new or gone  # the candidate changes the bottom 12
    for area in new:
        assert any(line.split()[:2] == ["new", area] and "bottom_of_overall_ranking" in line for line in flags_lines.splitlines())
    for area in gone:
        assert any(line.split()[:2] == ["gone", area] and "bottom_of_overall_ranking" in line for line in flags_lines.splitlines())
    assert f"{len(new)} new, {len(gone)} gone" in flags_lines
    assert sum(line.split()[:1] in (["new"], ["gone"]) for line in flags_lines.splitlines()) == len(new) + len(gone)


def test_rank_prints_the_candidate_league_table(env, capsys):
    assert cli.main(["rank", "--methodology", "candidate", "--month", "2018-03"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("March 2018 (rolling 12 months) league table with candidate@v3")
    hand = by_hand(env["db"], CANDIDATE_WEIGHTS, MARCH).sort_values(["overall_rank", "area_code"])
    rows = [line.split() for line in lines[2:]]
    assert [(int(r[0]), r[1]) for r in rows] == list(zip(hand["overall_rank"], hand.index))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text.replace("weight: 3", "weight: three"),
     "carewatch: config/methodology/broken.yaml: metrics[0].weight must be a number, not 'three'\n"),
    (lambda text: text.replace("id: los_p90_days_65plus", "id: los_p90_days_65plu"),
     "carewatch: config/methodology/broken.yaml: metrics[2].id 'los_p90_days_65plu' is not defined in config/metrics.yaml\n"),
    (lambda text: text.replace("weight: 3", "weight: -3").replace("ties: min", "ties: average"),  # two problems: one line
     "carewatch: config/methodology/broken.yaml: ties must be min, dense or max, not 'average'; config/methodology/broken.yaml: "
     "metrics[0].weight must be a number at least 0 (scores are weighted means: only the weights' ratios matter), not -3\n"),
])
def test_a_methodology_that_does_not_load_is_one_line_and_exit_1(env, capsys, edit, message):
    folder = env["config"] / "methodology"
    (folder / "broken.yaml").write_text(edit((folder / "dashboard-2018.yaml").read_text()))
    try:
        assert cli.main(["rank", "--methodology", "broken", "--compare"]) == 1
    finally:
        (folder / "broken.yaml").unlink()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err == message


def test_rank_refuses_a_missing_file_a_month_not_ranked_and_a_csv_in_the_home(env, capsys):
    assert cli.main(["rank", "--methodology", "dashboard-2019"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("carewatch: no methodology file ") and "dashboard-2019.yaml; methodologies: candidate, dashboard-2018" in err
    assert cli.main(["rank", "--methodology", "candidate", "--month", "2018-04"]) == 2
    assert capsys.readouterr().err == ("carewatch: --month 2018-04: candidate@v3 ranks the months with a rolling 12 months of "
                                       f"{DTOC}: 2017-03 to 2018-03\n")
    assert cli.main(["rank", "--methodology", "candidate", "--csv", str(env["home"] / "exports" / "x.csv")]) == 2
    assert "inside the pipeline's home" in capsys.readouterr().err
    assert not (env["home"] / "exports" / "x.csv").exists()


def test_the_flags_summary_says_nothing_of_changed_rules_when_the_month_was_flagged_with_these(env):
    result = preview.preview("dashboard-2018", MARCH, with_flags=True)
    line = preview.flags_summary(result, preview.flag_changes(result))
    assert ": 0 new, 0 gone; areas newly flagged 0, no longer flagged 0" in line
    assert "the rules changed since" not in line


def _hand_preview(published: dict, candidate: dict) -> preview.Preview:
    """A Preview of hand-chosen overall ranks (None: the area is in the table, unranked)."""
    import types

    def table(ranks: dict) -> pd.DataFrame:
        return pd.DataFrame({"area_code": list(ranks), "overall_rank": pd.array(list(ranks.values()), dtype="Int64"),
                             "score": [None if r is None else 10.0 - r for r in ranks.values()],
                             "methodology": "dashboard-2018@v1"})

    return preview.Preview(month=pd.Timestamp("2018-03-01"), methodology=types.SimpleNamespace(label="candidate@v2"),
                           candidate=table(candidate), names={c: f"Area {c}" for c in "ABCDEF"},
                           published=table(published))


def test_the_comparison_puts_areas_ranked_by_one_table_first_then_the_largest_moves_and_the_unranked_last():
    result = _hand_preview(published={"A": 1, "B": 2, "C": 3, "D": 4, "F": None},
                           candidate={"A": 3, "B": 1, "C": 2, "E": 4, "F": None})
    table = preview.comparison(result)
    # E and D ranked by one table only (E has a candidate rank, so first), then A (moved 2),
    # then B and C (moved 1, in candidate order), then F (ranked by neither)
    assert list(table["area_code"]) == ["E", "D", "A", "B", "C", "F"]
    assert list(table["change"].astype(object).where(table["change"].notna(), None)) == [None, None, -2, 1, 1, None]
    # ranks (1, 2, 3) against (3, 1, 2): sum of d^2 = 4 + 1 + 1 = 6, rho = 1 - 6 * 6 / (3 * 8) = -0.5
    assert preview.comparison_summary(result, table) == (
        "candidate@v2 against the published dashboard-2018@v1 for March 2018: 3 of 3 areas ranked by both move; "
        "largest rise Area B 2 -> 1 (+1); largest fall Area A 1 -> 3 (-2); 1 no longer ranked; 1 newly ranked; "
        "Spearman rank correlation -0.5000")
    two = _hand_preview(published={"A": 1, "B": 2}, candidate={"A": 2, "B": 1})  # two areas: rho -1, still said
    assert preview.comparison_summary(two, preview.comparison(two)).endswith(
        "2 of 2 areas ranked by both move; largest rise Area B 2 -> 1 (+1); largest fall Area A 1 -> 2 (-1); "
        "Spearman rank correlation -1.0000")


def test_rank_refuses_to_compare_a_month_built_but_not_analysed_yet(env, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(env["home"], home)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:  # March built, its analysis not run yet
        con.execute("delete from ranking_overall where period_start = date '2018-03-01'")
    monkeypatch.setenv("CAREWATCH_HOME", str(home))
    assert cli.main(["rank", "--methodology", "candidate", "--month", "2018-03"]) == 0  # rankable: a league table
    capsys.readouterr()
    for option in ("--compare", "--flags"):
        assert cli.main(["rank", "--methodology", "candidate", "--month", "2018-03", option]) == 2
        assert capsys.readouterr().err == ("carewatch: no published ranking of 2018-03 to compare with (ranking_overall "
                                           "ranks 2017-03 to 2018-02; the metrics DAG's analyse writes it)\n")
