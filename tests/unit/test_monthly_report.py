"""The monthly report's league table after a boundary change (the rendered report as a person
sees it is tested in ``tests/report/``)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from carewatch import analysis, geography, monthly_report
from tests import synthetic_warehouse


def test_a_council_abolished_before_the_month_leaves_the_league_table_and_two_of_one_name_say_which(tmp_path, monkeypatch):
    # as in February 2020: the old Dorset county (abolished 1 April 2019, with its last financial
    # year's values but no rank) is not in the league table, nor in the ranking; the
    # new Dorset council, ranked here, shares its name with a county still shown -> codes say which
    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    county, unitary, successor = areas[1], areas[2], areas[3]
    changes = pd.DataFrame({"old_code": [county, county], "new_code": [successor, unitary],
                            "effective_from": [pd.Timestamp("2017-12-01").date()] * 2, "change": ["split", "split"], "note": ["", ""]})
    monkeypatch.setattr(geography, "code_changes", lambda: changes)
    with duckdb.connect(str(db)) as con:
        # the county has no rolling year to March 2018 (no rank); a second "Dorset" is ranked
        con.execute(f"delete from fct_metric_values where area_code = '{county}' and period_start >= date '2017-12-01'")
        con.execute(f"update ref_hwb_areas set hwb_name = 'Dorset' where hwb_code in ('{county}', '{unitary}', '{areas[4]}')")
        con.execute(f"update ref_hwb_areas set hwb_name = 'Area 04' where hwb_code = '{areas[4]}'")
        analysis.run(con, export=False)
        listed = con.execute("select area_code, overall_rank from ranking_overall where period_type = 'rolling_12m' "
                             "and period_start = date '2018-03-01'").fetchall()
        data = monthly_report.gather(con)
    assert county not in {area for area, _ in listed}  # the ranking holds the areas of its month only
    league = data["league"].set_index("area_code")
    assert county not in league.index and len(league) == len(areas) - 1
    # only one Dorset is in this league table: no code needed
    assert league.loc[unitary, "area_name"] == "Dorset"


def test_two_areas_of_one_name_in_the_league_table_are_named_with_their_codes(tmp_path):
    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        con.execute(f"update ref_hwb_areas set hwb_name = 'Dorset' where hwb_code in ('{areas[1]}', '{areas[2]}')")
        analysis.run(con, export=False)
        data = monthly_report.gather(con)
    league = data["league"].set_index("area_code")
    assert league.loc[areas[1], "area_name"] == f"Dorset ({areas[1]})"
    assert league.loc[areas[2], "area_name"] == f"Dorset ({areas[2]})"
    assert league.loc[areas[3], "area_name"] == "Area 03"
    assert data["name_of"][areas[1]] == f"Dorset ({areas[1]})"  # the same name in flags, funnels and profiles


def test_the_league_table_says_which_areas_left_or_joined_it_since_last_month(tmp_path):
    # Area 01 has no figures for March 2018 (ranked in February, not now); Area 02 none for
    # February 2018 alone (not ranked then, ranked now): their ranks move the others
    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        con.execute(f"delete from fct_metric_values where area_code = '{areas[1]}' and period_start = date '2018-03-01'")
        con.execute(f"delete from fct_metric_values where area_code = '{areas[2]}' and period_start = date '2018-02-01'")
        analysis.run(con, export=False)
        ranks = dict(con.execute("select period_start::varchar || area_code, overall_rank from ranking_overall where period_type = 'rolling_12m' "
                                 f"and area_code in ('{areas[1]}', '{areas[2]}') and period_start >= date '2018-02-01'").fetchall())
        html = monthly_report.write_report(con, tmp_path / "report").read_text()
    assert ranks[f"2018-02-01{areas[1]}"] is not None and ranks[f"2018-03-01{areas[1]}"] is None
    assert ranks[f"2018-02-01{areas[2]}"] is None and ranks[f"2018-03-01{areas[2]}"] is not None
    said = " ".join(html.split('id="table-changes">')[1].split("</p>")[0].split())
    assert said == ("Not all of this month's changes are movement: 1 area ranked last month is not ranked this month "
                    "(Area 01), so areas below it move up, and 1 area not ranked last month is ranked now (Area 02), "
                    "so areas below it move down.")


def test_the_league_table_says_nothing_of_the_kind_when_the_same_areas_are_ranked(tmp_path):
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        data = monthly_report.gather(con)
    assert data["table_changes"] == {"left": [], "joined": []}


def test_the_report_tables_keep_the_warehouse_types_and_name_each_area(tmp_path):
    # an analyst reading tables/*.parquet gets DATE columns as dates (as in the warehouse and the
    # data contract), the warehouse's instants with their zone, and area names beside codes
    import pyarrow as pa
    import pyarrow.parquet as pq

    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        monthly_report.write_report(con, tmp_path / "out")
        tables = tmp_path / "out" / "tables"
        shown = pq.read_table(tables / "metric_values.parquet").to_pandas()[["area_code", "metric_id", "period_type", "period_start"]]
        # the report holds the rows behind it (not the whole history): the same rows' dates in the warehouse
        warehouse_dates = con.execute("select facts.period_start::date, facts.period_end::date from fct_metric_values as facts "
                                      "semi join shown using (area_code, metric_id, period_type, period_start) order by all").fetchall()
        assert len(warehouse_dates) == len(shown) > 0
    for name, columns in {"metric_values": ["period_start", "period_end"], "peer_comparison": ["period_start", "value_period_start"],
                          "review_flags": ["period_start", "first_flagged"], "target_tracking": ["period_start", "baseline_period"],
                          "league_table": ["period_start"]}.items():
        schema = pq.read_schema(tables / f"{name}.parquet")
        for column in columns:
            assert schema.field(column).type == pa.date32(), (name, column, schema.field(column).type)
        assert "area_name" in schema.names, name
    values = pq.read_table(tables / "metric_values.parquet").to_pandas()
    assert sorted(zip(values["period_start"], values["period_end"])) == warehouse_dates
    assert set(values.loc[values["area_code"] == areas[3], "area_name"]) == {"Area 03"}
    # so too when a table is empty, or a date column all null (not a Parquet null type, which would
    # change a column's type from month to month for anyone combining the files)
    empty = pq.read_schema(tables / "review_flags_not_assessed.parquet")
    assert pq.read_table(tables / "review_flags_not_assessed.parquet").num_rows == 0
    assert empty.field("period_start").type == pa.date32() and empty.field("first_flagged").type == pa.date32()
    source_files = pq.read_schema(tables / "source_files.parquet")
    assert source_files.field("fetched_at").type.tz is not None  # an instant stays an instant
    csv = pd.read_csv(tables / "target_tracking.csv")
    assert csv["period_start"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


def test_the_report_draws_the_metric_the_target_sets_track(tmp_path, monkeypatch):
    """The delayed-days charts (England's and each area profile's) draw the agency breakdown of
    the metric named by the target sets (config/targets/), against their targets."""
    import shutil

    from carewatch import charts, paths

    dtoc, other = "delayed_days_per_day_per_100k_18plus", "other_delays_per_100k"
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    drawn = []
    draw = charts.dtoc_over_time
    monkeypatch.setattr(charts, "dtoc_over_time", lambda rates, *args: drawn.append(rates) or draw(rates, *args))
    profiles = []  # the area profiles' charts: the sum of the values each drew
    draw_profile = charts.DtocOverTime.svg
    monkeypatch.setattr(charts.DtocOverTime, "svg", lambda self, rates, *args: profiles.append(rates["value"].sum()) or draw_profile(self, rates, *args))
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        # the same monthly rows (the metric and its breakdown), doubled, under another metric's id
        con.execute(f"""insert into fct_metric_values by name
                        select * replace ('{other}' || substr(metric_id, {len(dtoc) + 1}) as metric_id, value * 2 as value)
                        from fct_metric_values where starts_with(metric_id, '{dtoc}') and period_type = 'month'""")
        shipped = monthly_report.gather(con)
        monthly_report.build_charts(shipped)
        config = tmp_path / "config"
        shutil.copytree(paths.config_dir(), config)
        target_set = config / "targets" / "expectations-2017-18.yaml"
        # a new version of the set (another metric under the label already used is refused)
        target_set.write_text(target_set.read_text().replace(f"metric: {dtoc}", f"metric: {other}").replace("version: 1", "version: 2"))
        # a target set's metric is one of config/metrics.yaml with an agency breakdown (checked since config_check)
        metrics = config / "metrics.yaml"
        metrics.write_text(metrics.read_text().replace("metrics:\n", f"metrics:\n  - {{id: {other}, name: Other delays, unit: days, "
                                                       "direction: low, source: dtoc_la, ci_method: byar, multiplier: 100000, "
                                                       "definition: for the test, breakdowns: {agency: [nhs, social_care, both]}}\n", 1))
        monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
        # the report follows the target sets the analysis tracked (analysis_config), so analyse again
        analysis.run(con, export=False)
        switched = monthly_report.gather(con)
        monthly_report.build_charts(switched)
    assert (shipped["target_metric"], switched["target_metric"]) == (dtoc, other)
    before, after = drawn
    assert len(before) and after["value"].tolist() == [2 * v for v in before["value"]]
    half = len(profiles) // 2
    assert half and profiles[half:] == pytest.approx([2 * v for v in profiles[:half]])


def test_tables_with_a_metric_say_its_unit(tmp_path):
    # a proportion is a fraction in the tables (0.86), a percentage in the report: the unit says which
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        monthly_report.write_report(con, tmp_path / "out")
        tables = analysis.run(con, export=False)
    analysis.export_csv(tables, tmp_path / "exports")
    for path in (tmp_path / "out" / "tables" / "peer_comparison.csv", tmp_path / "exports" / "peer_comparison.csv",
                 tmp_path / "exports" / "ranking_metric.csv", tmp_path / "out" / "tables" / "metric_values.csv"):
        frame = pd.read_csv(path)
        units = dict(zip(frame["metric_id"], frame["unit"]))
        assert units["weekend_discharge_share"] == "proportion", path
        assert units["delayed_days_per_day_per_100k_18plus"] == "delayed days per day per 100,000 aged 18+", path


def test_the_report_holds_the_metric_values_it_shows_and_no_other_period(tmp_path):
    # a drill found each month's tables/metric_values holding the whole fct_metric_values
    # history (87 MB in its 2018-08 report, growing every month). The synthetic warehouse:
    # 40 areas and England, April 2016 to March 2018; the March 2018 report shows the six
    # metrics' values its league table ranks (four rolling years to March 2018, the two
    # reablement metrics' 2016-17 financial year), its funnel plots test (the same values) and
    # the delayed-days series its charts draw by agency (NHS, social care, both) for England and
    # each area, every month to March 2018: (40 + 1) x (6 + 3 x 24) = 3,198 rows
    import pyarrow.parquet as pq

    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        data = monthly_report.gather(con)
        monthly_report.write_report(con, tmp_path / "out", data=data)
        everything = con.execute("select * from fct_metric_values").df()
    table = pq.read_table(tmp_path / "out" / "tables" / "metric_values.parquet").to_pandas()
    march, dtoc = pd.Timestamp("2018-03-01"), "delayed_days_per_day_per_100k_18plus"
    months = pd.date_range("2016-04-01", march, freq="MS")
    assert len(data["league"]) == len(areas) and len(data["metrics"]) == 6
    assert len(table) == (len(areas) + 1) * (6 + 3 * len(months)) == 3198
    periods = set(zip(table["period_type"], pd.to_datetime(table["period_start"])))
    assert periods == {("rolling_12m", march), ("financial_year", pd.Timestamp("2016-04-01"))} | {("month", m) for m in months}
    keys = set(zip(table["area_code"], table["metric_id"], table["period_type"], pd.to_datetime(table["period_start"])))
    # every row the league table, the funnel plots and the delayed-days charts use is there
    for row in data["league"].itertuples():
        for metric in data["metrics"]["metric_id"]:
            shown = getattr(row, f"{metric}__value")
            kind, start = ("financial_year", pd.Timestamp("2016-04-01")) if metric.startswith("reablement") else ("rolling_12m", march)
            assert (row.area_code, metric, kind, start) in keys
            assert table.set_index(["area_code", "metric_id", "period_type"]).loc[(row.area_code, metric, kind), "value"] == pytest.approx(shown)
    for test in data["funnel_tests"]:
        assert {(a, test.metric, test.period_type, test.period_start) for a in test.rows["area_code"]} <= keys
    for area in [*areas, analysis.ENGLAND]:
        for agency in ("nhs", "social_care", "both"):
            assert {(area, f"{dtoc}__{agency}", "month", m) for m in months} <= keys
    # with the warehouse's values
    merged = table.assign(period_start=pd.to_datetime(table["period_start"])).merge(everything.assign(period_start=pd.to_datetime(everything["period_start"])),
                         on=["area_code", "metric_id", "period_type", "period_start"], suffixes=("", "_warehouse"))
    assert len(merged) == len(table) and (merged["value"] == merged["value_warehouse"]).all()


def _held_back(con, after: str) -> None:
    """Take every figure after ``after`` out of the warehouse into ``held`` (a late DTOC month)."""
    con.execute(f"create or replace table held as select * from fct_metric_values where period_start > date '{after}'")
    con.execute(f"delete from fct_metric_values where period_start > date '{after}'")


def _december_reported(home):
    """A synthetic warehouse whose January to March are held back (a late DTOC month) and whose
    December is analysed and reported; returns (warehouse file, areas, reports folder)."""
    db = home / "warehouse.duckdb"
    home.mkdir(parents=True)
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        _held_back(con, "2017-12-01")
        analysis.run(con, export=False)
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [("2017-12", True)]
    return db, areas, home / "reports"


def test_a_rerun_after_a_catch_up_whose_reports_failed_writes_each_month_with_its_peer_comparison(carewatch_home):
    # a review: the run that caught up January to March failed before its reports; its rerun's
    # analysis computes only March, and January's and February's reports (written by the rerun,
    # as missing) had an empty peer comparison
    db, areas, reports = _december_reported(carewatch_home)
    with duckdb.connect(str(db)) as con:
        con.execute("insert into fct_metric_values select * from held")
        analysis.run(con, export=False)  # the catch-up; its report step fails
        caught_up = con.execute("select * from peer_comparison order by all").df()
        analysis.run(con, export=False)  # the rerun
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [
            ("2018-01", True), ("2018-02", True), ("2018-03", True)]
        assert con.execute("select * from peer_comparison order by all").df().equals(caught_up)  # the rerun changed nothing
    for month in ("2018-01", "2018-02", "2018-03"):
        peer = pd.read_parquet(reports / month / "tables" / "peer_comparison.parquet")
        expected = caught_up[pd.to_datetime(caught_up["period_start"]).dt.strftime("%Y-%m") == month]
        assert len(peer) == len(expected) > len(areas), month  # every area with a value, several metrics


def test_a_month_whose_version_was_rejected_is_reported_again_when_its_revision_loads_with_a_later_month(carewatch_home):
    # the report month moved back (January's only version rejected: its figures left the
    # warehouse, December ranked last again), then forward past it (January's revision loaded
    # with February and March): January's report, written from the rejected figures, must be
    # written again. Each run reported the months after the latest month ANY analysis had
    # reported (January), so it stood as first written
    db, areas, reports = _december_reported(carewatch_home)
    with duckdb.connect(str(db)) as con:
        con.execute("insert into fct_metric_values select * from held where period_start = date '2018-01-01'")
        analysis.run(con, export=False)
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [("2018-01", True)]
        first = monthly_report.read_stamp(reports / "2018-01")["figures_sha256"]
        con.execute("delete from fct_metric_values where period_start = date '2018-01-01'")  # rejected
        analysis.run(con, export=False)
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [("2017-12", False)]
        con.execute("insert into fct_metric_values select * from held")  # the revision, with February and March
        con.execute("update fct_metric_values set numerator = numerator * 3, value = value * 3 "
                    "where area_code = ? and metric_id like 'delayed_days_per_day_per_100k_18plus%'", [areas[0]])
        analysis.run(con, export=False)
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [
            ("2018-01", True), ("2018-02", True), ("2018-03", True)]
        assert monthly_report.read_stamp(reports / "2018-01")["figures_sha256"] == monthly_report.figures_digest(
            monthly_report.gather(con, pd.Timestamp("2018-01-01"))) != first
    league = pd.read_parquet(reports / "2018-01" / "tables" / "league_table.parquet")
    assert set(pd.to_datetime(league["period_start"]).dt.strftime("%Y-%m")) == {"2018-01"}


def test_each_month_ranked_since_the_last_report_gets_its_report_and_an_unchanged_one_is_not_rewritten(carewatch_home):
    # a drill: while a DTOC month was late, each run rewrote October's report, and the run that
    # loaded it (with the next) jumped to January: November and December never had a report
    db, areas, reports = _december_reported(carewatch_home)
    with duckdb.connect(str(db)) as con:
        con.execute("insert into fct_metric_values select * from held")  # January to March land together
        analysis.run(con, export=False)
        written = monthly_report.write_reports(con)
        assert [(m.strftime("%Y-%m"), w) for m, _, w in written] == [("2018-01", True), ("2018-02", True), ("2018-03", True)]
        for month in ("2018-01", "2018-02", "2018-03"):  # each its own month's, nothing of a later one
            league = pd.read_parquet(reports / month / "tables" / "league_table.parquet")
            assert set(pd.to_datetime(league["period_start"]).dt.strftime("%Y-%m")) == {month} and len(league) == len(areas)
            values = pd.read_parquet(reports / month / "tables" / "metric_values.parquet")
            assert pd.to_datetime(values["period_start"]).max().strftime("%Y-%m") == month
            peer = pd.read_parquet(reports / month / "tables" / "peer_comparison.parquet")
            assert set(pd.to_datetime(peer["period_start"]).dt.strftime("%Y-%m")) == {month}
            tracking = pd.read_parquet(reports / month / "tables" / "target_tracking.parquet")
            assert pd.to_datetime(tracking["period_start"]).max().strftime("%Y-%m") == month
        stamps = {p: p.stat().st_mtime_ns for p in reports.glob("*/report.html")}
        # the next run: April is late, nothing changed; March stays the latest month ranked
        analysis.run(con, export=False)
        assert [w for _, _, w in monthly_report.write_reports(con)] == [False, False, False]
        assert {p: p.stat().st_mtime_ns for p in reports.glob("*/report.html")} == stamps
        # a revision of the first area's delayed days changes March's figures: its report is
        # written again; January's and February's, restated too, stay as they were reported
        con.execute("update fct_metric_values set numerator = numerator * 3, value = value * 3 "
                    "where area_code = ? and metric_id like 'delayed_days_per_day_per_100k_18plus%'", [areas[0]])
        analysis.run(con, export=False)
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [
            ("2018-01", False), ("2018-02", False), ("2018-03", True)]
        assert {p for p in reports.glob("*/report.html") if p.stat().st_mtime_ns != stamps[p]} == {reports / "2018-03" / "report.html"}


def test_a_report_rewritten_because_its_figures_changed_keeps_the_one_it_replaces(carewatch_home):
    # a review: a method change (or a revision) rewrote reports/2018-03/report.html, figures.json
    # and exports/2018-03/* in place: the report people had read was gone
    import re

    from carewatch import summary

    db = carewatch_home / "warehouse.duckdb"
    carewatch_home.mkdir(parents=True)
    areas = synthetic_warehouse.build(db)
    folder, exports = carewatch_home / "reports" / "2018-03", carewatch_home / "exports" / "2018-03"
    with duckdb.connect(str(db)) as con:
        analysis.run(con)  # with its exports
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [("2018-03", True)]
    first_html, first_stamp = (folder / "report.html").read_bytes(), monthly_report.read_stamp(folder)
    first_tables = {p.name: p.read_bytes() for p in (folder / "tables").glob("*.parquet")}
    first_exports = {p.name: p.read_text() for p in exports.glob("*.csv")}
    first_generated = (exports / "generated_at.txt").read_text()
    with duckdb.connect(str(db)) as con:  # a revision of the first area's delayed days
        con.execute("update fct_metric_values set numerator = numerator * 3, value = value * 3 "
                    "where area_code = ? and metric_id like 'delayed_days_per_day_per_100k_18plus%'", [areas[0]])
        analysis.run(con)
        assert [(m.strftime("%Y-%m"), w) for m, _, w in monthly_report.write_reports(con)] == [("2018-03", True)]
    [kept] = (folder / "superseded").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", kept.name)  # the earlier report's written_at, UTC
    assert kept.name == pd.Timestamp(first_stamp["written_at"]).strftime("%Y-%m-%dT%H-%M-%SZ")
    assert (kept / "report.html").read_bytes() == first_html != (folder / "report.html").read_bytes()
    assert monthly_report.read_stamp(kept) == first_stamp
    assert {p.name: p.read_bytes() for p in (kept / "tables").iterdir()} == first_tables  # Parquet, not the CSV copies
    assert monthly_report.read_stamp(folder)["replaces"] == f"superseded/{kept.name}"
    # the exports it replaced: the files that changed, with the time they were generated
    [kept_exports] = (exports / "superseded").iterdir()
    moved = {p.name: p.read_text() for p in kept_exports.glob("*.csv")}
    assert {"ranking_overall.csv", "ranking_metric.csv"} <= set(moved) and "peer_group.csv" not in moved
    assert all(text == first_exports[name] != (exports / name).read_text() for name, text in moved.items())
    assert (kept_exports / "generated_at.txt").read_text() == first_generated
    assert f"March 2018 report rewritten (figures changed); the earlier one is kept in {kept}" in summary.report_lines()
    with duckdb.connect(str(db)) as con:  # a run that changes nothing moves nothing
        analysis.run(con)
        assert [w for _, _, w in monthly_report.write_reports(con)] == [False]
    assert len(list((folder / "superseded").iterdir())) == len(list((exports / "superseded").iterdir())) == 1


def test_a_report_of_an_earlier_release_rewritten_by_a_rerun_is_not_said_to_have_changed_figures(carewatch_home):
    # the upgrade drill: 55f22cf wrote reports without figures.json; the new release's rerun of
    # that month (no figure changed, nothing restated) said "April 2018 report rewritten
    # (figures changed)" and "written again (its figures changed since, or it was missing)"
    from carewatch import summary

    db = carewatch_home / "warehouse.duckdb"
    carewatch_home.mkdir(parents=True)
    synthetic_warehouse.build(db)
    folder = carewatch_home / "reports" / "2018-03"
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        monthly_report.write_reports(con)
    (folder / monthly_report.STAMP).unlink()  # as the earlier release left it: no figures recorded
    with duckdb.connect(str(db)) as con:  # the rerun of the month: the same figures
        analysis.run(con, export=False)
        [(month, report, written)] = monthly_report.write_reports(con)
    assert (f"{month:%Y-%m}", written) == ("2018-03", True)
    [kept] = (folder / "superseded").iterdir()
    assert monthly_report.what_became_of(month, report, written) == (  # the report task's log says the same
        f"March 2018 report rewritten (the earlier one, written by an earlier release, recorded no figures to compare "
        f"with): {report}; the earlier one is kept in {kept}")
    assert summary.report_lines() == [
        "No new month to report: March 2018 is still the latest month ranked (delayed days per day per 100,000 18+ for "
        "April 2018 is not loaded yet); "
        "its report was written again (the one there was written by an earlier release, which recorded no figures "
        "to compare with).",
        f"March 2018 report rewritten (the earlier one, written by an earlier release, recorded no figures to compare "
        f"with); it is kept in {kept}"]


def test_latest_txt_points_at_the_homes_own_report_after_the_home_is_copied(tmp_path, monkeypatch):
    # a review: in a copy of a home, a failed run's summary named the original home's report
    import shutil

    from carewatch import paths

    home = tmp_path / "home"
    monkeypatch.setenv("CAREWATCH_HOME", str(home))
    report = home / "reports" / "2018-03" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>March</html>")
    monthly_report.record_latest(report)
    assert (home / "reports" / "latest.txt").read_text() == "reports/2018-03/report.html\n"
    assert monthly_report.latest_report() == home / "reports" / "2018-03" / "report.html"
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    monkeypatch.setenv("CAREWATCH_HOME", str(copy))
    assert paths.home() == copy and monthly_report.latest_report() == copy / "reports" / "2018-03" / "report.html"
    # as earlier releases wrote it (absolute, the original home's): read as the copy's own report
    (copy / "reports" / "latest.txt").write_text(f"{report}\n")
    assert monthly_report.latest_report() == copy / "reports" / "2018-03" / "report.html"
    (copy / "reports" / "2018-03" / "report.html").unlink()  # the copy has no such report: the path as written
    assert monthly_report.latest_report() == report


def test_flags_recomputed_since_the_last_report_are_said_against_what_it_showed(carewatch_home, capsys):
    # February was reported; then its flags' history was recomputed (here: the February report
    # is made to have flagged an area not flagged now, and not to have flagged one shown as
    # continuing now). The March report and the summary say both, by name, against the report
    from carewatch import summary

    db = carewatch_home / "warehouse.duckdb"
    carewatch_home.mkdir(parents=True)
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        _held_back(con, "2018-02-01")
        analysis.run(con, export=False)  # the run that reports February
        feb = "date '2018-02-01'"
        shown = con.execute(f"select area_code, status from review_flag_history where period_start = {feb}").fetchall()
        con.execute("insert into fct_metric_values select * from held")
        analysis.run(con, export=False)  # the run that reports March
        march = dict(con.execute("select area_code, status from review_flag_history where period_start = date '2018-03-01'").fetchall())
        continuing = sorted(a for a, s in march.items() if s == "continuing")
        never = sorted(a for a in areas if a not in march and a not in dict(shown))
        assert continuing and never  # the synthetic warehouse has both kinds
        # what the February report showed, as if computed before a revision: not the first
        # continuing area, and the first area never flagged
        con.execute(f"delete from reported_review_flag_history where period_start = {feb} and area_code = '{continuing[0]}'")
        con.execute(f"insert into reported_review_flag_history by name select * replace ('{never[0]}' as area_code) "
                    f"from reported_review_flag_history where period_start = {feb} and status in ('new', 'continuing') limit 1")
        assert analysis.last_report_flags(con, pd.Timestamp("2018-03-01").date())[1] == (
            {a for a, s in shown if s in ("new", "continuing")} - {continuing[0]}) | {never[0]}
        data = monthly_report.gather(con)
        name = data["name_of"]
        html = monthly_report.write_report(con, carewatch_home / "report").read_text()
    assert data["since_last_report"] == [
        f"Shown as continuing but not flagged in the February 2018 report: {name[continuing[0]]} "
        "(earlier months recomputed by a revision or a change of method flag them now)",
        f"Flagged in the February 2018 report and not flagged now, without being cleared: {name[never[0]]} "
        "(earlier months recomputed by a revision or a change of method no longer flag them)"]
    said = [" ".join(p.split("</p>")[0].split()) for p in html.split('<p class="since-last-report">')[1:]]
    assert said == [line + "." for line in data["since_last_report"]]
    # the run summary says the same
    summary.print_results()
    out = capsys.readouterr().out
    assert all(f"  {line}" in out for line in data["since_last_report"])


def test_nothing_is_said_since_the_last_report_when_the_flags_were_not_recomputed(carewatch_home):
    db = carewatch_home / "warehouse.duckdb"
    carewatch_home.mkdir(parents=True)
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        _held_back(con, "2018-02-01")
        analysis.run(con, export=False)
        con.execute("insert into fct_metric_values select * from held")
        analysis.run(con, export=False)
        assert analysis.last_report_flags(con, pd.Timestamp("2018-03-01").date())[0] == pd.Timestamp("2018-02-01").date()
        assert monthly_report.gather(con)["since_last_report"] == []


def test_since_last_report_explains_only_what_a_recomputation_did():
    # the February report flagged A, B, C and D. In March: A not assessed (no figure), B
    # continuing, C cleared, D absent (no longer flagged, not cleared: unexplained), E continuing
    # though February did not flag it (unexplained), F newly flagged
    flags = pd.DataFrame({"area_code": ["A", "B", "C", "E", "F"],
                          "status": ["not assessed", "continuing", "cleared", "continuing", "new"]})
    names = {c: f"Area {c}" for c in "ABCDEF"}
    assert analysis.since_last_report(flags, pd.Timestamp("2018-02-01").date(), {"A", "B", "C", "D"}, names) == [
        "Shown as continuing but not flagged in the February 2018 report: Area E "
        "(earlier months recomputed by a revision or a change of method flag them now)",
        "Flagged in the February 2018 report and not flagged now, without being cleared: Area D "
        "(earlier months recomputed by a revision or a change of method no longer flag them)"]
    assert analysis.since_last_report(flags, None, set(), names) == []


def test_the_last_reports_flags_are_those_of_its_latest_run_not_every_run_of_that_month():
    # February's run flagged A and B; February's run again (a rerun after a revision) flagged A
    # only: the February report as it stands showed A
    import datetime as dt

    con = duckdb.connect()
    con.execute("create table ranking_overall as select 'rolling_12m' as period_type, date '2018-02-01' as period_start, "
                "'A' as area_code, 1 as overall_rank")
    con.execute("create table target_tracking as select 'set' as target_set, date '2018-02-01' as period_start, "
                "'A' as area_code, true as on_track")
    con.execute("create table review_flag_history as select * from (values (date '2018-02-01', 'A', 'new'), "
                "(date '2018-02-01', 'B', 'new')) as t(period_start, area_code, status)")
    feb = dt.date(2018, 2, 1)
    analysis.record_reported(con, feb)
    con.execute("delete from review_flag_history where area_code = 'B'")
    analysis.record_reported(con, feb)
    assert analysis.last_report_flags(con, dt.date(2018, 3, 1)) == (feb, {"A"})
    assert analysis.last_report_flags(con, feb) == (None, set())  # nothing reported before February


def test_the_report_task_log_says_whether_each_report_was_written_rewritten_or_stands(carewatch_home, capsys):
    # an engineer who clears the metrics run (or its report task) in the Airflow UI reads the
    # task log, not carewatch run's summary: it says the report stands when its figures did not change
    from carewatch import pipeline

    db, _, reports = _december_reported(carewatch_home)
    capsys.readouterr()
    pipeline.write_report()
    stamp = monthly_report.read_stamp(reports / "2017-12")
    assert capsys.readouterr().out.splitlines() == [
        f"December 2017 report: the one written at {stamp['written_at']} stands, not rewritten ({reports / '2017-12' / 'report.html'})"]
    with duckdb.connect(str(db)) as con:  # a figure changes: the month's report is rewritten, the earlier kept
        con.execute("update fct_metric_values set value = value * 1.1 where period_start = date '2017-12-01'")
        analysis.run(con, export=False)
    pipeline.write_report()
    kept = reports / "2017-12" / monthly_report.read_stamp(reports / "2017-12")["replaces"]
    assert kept.is_dir() and (kept / "report.html").is_file()
    assert capsys.readouterr().out.splitlines() == [
        f"December 2017 report rewritten (figures changed): {reports / '2017-12' / 'report.html'}; the earlier one is kept in {kept}"]
