"""Every analysis records which methodology configuration produced it (``analysis_config``,
a digest beside each label), and a labelled file changed under its old label is refused."""

from __future__ import annotations

import hashlib
import json
import shutil

import duckdb
import pandas as pd
import pytest
import yaml

from carewatch import analysis, monthly_report, paths, provenance
from carewatch.errors import ConfigChangedUnderLabel
from tests import synthetic_warehouse

DTOC = "delayed_days_per_day_per_100k_18plus"
METHOD = "dashboard-2018-default@v2"


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A copy of the shipped config/ in force (CAREWATCH_CONFIG)."""
    folder = tmp_path / "config"
    shutil.copytree(paths.config_dir(), folder)
    monkeypatch.setenv("CAREWATCH_CONFIG", str(folder))
    return folder


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_comments_layout_and_key_order_are_no_change_of_content(tmp_path):
    a, b, c = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    a.write_text("name: m\nversion: 2\nmetrics:\n  - id: x\n    weight: 3\n")
    b.write_text("# the method\nversion: 2   # bumped\nname: m\n\nmetrics: [{weight: 3, id: x}]\n")
    c.write_text("name: m\nversion: 2\nmetrics:\n  - id: x\n    weight: 4\n")
    assert provenance.canonical(a) == provenance.canonical(b) == '{"metrics":[{"id":"x","weight":3}],"name":"m","version":2}'
    assert provenance.canonical(c) != provenance.canonical(a)


def test_an_analysis_records_every_config_file_it_read_with_its_tables(tmp_path, config):
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        recorded = con.execute("select * from analysis_config order by role, file").df()
        [(run_at,)] = con.execute("select distinct analysed_at from analysis_runs").fetchall()
        overall = con.execute("select distinct methodology, methodology_digest from ranking_overall").fetchall()
        metric = con.execute("select distinct methodology, methodology_digest from ranking_metric").fetchall()
        flag = con.execute("select distinct rule_set, rule_set_digest from review_flag").fetchall()
        history = con.execute("select distinct rule_set, rule_set_digest from review_flag_history").fetchall()
        tracking = con.execute("select distinct target_set, target_set_digest from target_tracking").fetchall()
    # the files the analysis read, in the transaction that wrote its tables (same analysed_at)
    assert sorted(recorded["role"]) == ["in_force", "methodology", "metrics", "peer_groups", "review_flags", "target_set"]
    assert set(recorded["analysed_at"]) == {run_at}
    by_role = recorded.set_index("role")
    assert by_role.loc["methodology", "file"] == "config/methodology/dashboard-2018.yaml"  # as the config checks name it
    assert by_role.loc["methodology", "label"] == METHOD
    assert by_role.loc["review_flags", "label"] == "cqc-review-flags@v1"
    assert by_role.loc["target_set", "label"] == "dtoc-expectations-2017-18@v1"
    assert by_role.loc["in_force", "label"] is None or pd.isna(by_role.loc["in_force", "label"])
    for row in recorded.itertuples():  # the digest is of the content kept
        assert row.sha256 == hashlib.sha256(row.content.encode()).hexdigest()
    # the weights, from the warehouse alone: the shipped file gives delayed days 3, the other five 1
    weights = {m["id"]: m["weight"] for m in json.loads(by_role.loc["methodology", "content"])["metrics"]}
    assert weights == {DTOC: 3, "emergency_admissions_65plus_per_100k": 1, "los_p90_days_65plus": 1,
                       "reablement_still_at_home_91d_65plus": 1, "reablement_offered_65plus": 1, "weekend_discharge_share": 1}
    # beside each label, the first 12 hex digits of its file's digest
    short = {role: sha[:12] for role, sha in by_role["sha256"].items()}
    assert overall == metric == [(METHOD, short["methodology"])]
    assert flag == history == [("cqc-review-flags@v1", short["review_flags"])]
    assert tracking == [("dtoc-expectations-2017-18@v1", short["target_set"])]


def test_an_analysis_that_fails_records_no_config(tmp_path, config, monkeypatch):
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)

    def fail(con, month):
        raise RuntimeError("disk full")

    monkeypatch.setattr(analysis, "record_reported", fail)
    with duckdb.connect(str(db)) as con:
        with pytest.raises(RuntimeError, match="disk full"):
            analysis.run(con, export=False)
        assert not con.execute("select count(*) from information_schema.tables where table_name = 'analysis_config'").fetchone()[0]


@pytest.mark.parametrize("file, old, new, label", [
    ("methodology/dashboard-2018.yaml", f"id: {DTOC}\n    weight: 3", f"id: {DTOC}\n    weight: 5", METHOD),
    ("review_flags.yaml", "n: 12 ", "n: 10 ", "cqc-review-flags@v1"),
    ("targets/expectations-2017-18.yaml", "national_ambition: 9.4", "national_ambition: 9.0", "dtoc-expectations-2017-18@v1"),
])
def test_a_file_changed_under_the_label_it_was_used_as_is_refused(tmp_path, config, file, old, new, label):
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        before = con.execute("select * from ranking_overall order by all").df()
        first = pd.Timestamp(con.execute("select max(analysed_at) from analysis_config").fetchone()[0])
        # a comment and a blank line are no change: accepted
        path = config / file
        path.write_text("# reviewed\n\n" + path.read_text())
        analysis.run(con, export=False)
        _edit(path, old, new)  # the content changed, the label not
        with pytest.raises(ConfigChangedUnderLabel) as refused:
            analysis.run(con, export=False)
        assert str(refused.value) == (f"config/{file} changed since it was used as {label} on {first.tz_convert('UTC'):%Y-%m-%d}: "
                                      "give it a new version")
        assert "\n" not in str(refused.value)
        assert con.execute("select * from ranking_overall order by all").df().equals(before)  # nothing published
        assert con.execute("select count(distinct analysed_at) from analysis_config").fetchone()[0] == 2
        # a new version of it is accepted, and recorded with its own digest
        _edit(path, "version: 2" if "methodology" in file else "version: 1", "version: 3")
        analysis.run(con, export=False)
        labels = con.execute("select label, count(distinct sha256) from analysis_config where label like ? group by label order by label",
                             [label.split("@")[0] + "@%"]).fetchall()
    assert labels == [(label, 1), (label.split("@")[0] + "@v3", 1)]


def test_a_warehouse_that_recorded_nothing_accepts_any_content(tmp_path, config):
    # a fresh warehouse, or one whose analyses ran before they recorded their config
    _edit(config / "methodology" / "dashboard-2018.yaml", f"id: {DTOC}\n    weight: 3", f"id: {DTOC}\n    weight: 5")
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        assert con.execute("select distinct weight from ranking_metric where metric_id = ?", [DTOC]).fetchall() == [(5.0,)]


def test_the_report_shows_the_weights_the_analysis_used_not_the_file_edited_since(tmp_path, config):
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        # the config edited between the analysis and the report (possible under Airflow)
        _edit(config / "methodology" / "dashboard-2018.yaml", f"id: {DTOC}\n    weight: 3", f"id: {DTOC}\n    weight: 7")
        _edit(config / "methodology" / "dashboard-2018.yaml", "id: weekend_discharge_share\n    weight: 1",
              "id: weekend_discharge_share\n    weight: 2")
        data = monthly_report.gather(con)
        html = monthly_report.write_report(con, tmp_path / "out", data=data).read_text()
        digest = con.execute("select any_value(methodology_digest) from ranking_overall").fetchone()[0]
    legend = {row["name"]: row["weight"] for row in monthly_report.metric_legend(data)}
    assert legend == {name: (3.0 if metric == DTOC else 1.0) for _, metric, name, *_ in synthetic_warehouse.METRICS}
    assert f"methodology <code>{METHOD}</code> (config sha256 <code>{digest}</code>)" in html


def _edit_after_the_analysis(config) -> None:
    """Edits of config/ after an analysis, before its report (or a report task cleared and run
    again): the funnel rule's level and overdispersion, the peer groups' k, the annual metrics'
    lag (ASCOF's latest financial year, 2016-17 in the synthetic warehouse, ended 12 months
    before March 2018: a lag of 12 leaves it unranked) and a metric's unit."""
    _edit(config / "review_flags.yaml", "level: 0.998", "level: 0.95")
    _edit(config / "review_flags.yaml", "overdispersion: true", "overdispersion: false")
    _edit(config / "peer_groups.yaml", "k: 15", "k: 5")
    _edit(config / "methodology" / "dashboard-2018.yaml", "rolling_12m:\n    annual_lag_months: 6",
          "rolling_12m:\n    annual_lag_months: 12")
    _edit(config / "metrics.yaml", "unit: proportion\n    denominator_unit: discharges", "unit: share\n    denominator_unit: discharges")


def test_the_report_task_is_not_failed_by_a_config_mistake_made_after_the_analysis(carewatch_home, config):
    # the report describes the config the analysis recorded: a typo in config/ since (before
    # the report task, or a report task cleared and rerun) is for the next analysis to refuse
    from carewatch import pipeline

    carewatch_home.mkdir(parents=True)
    synthetic_warehouse.build(carewatch_home / "warehouse.duckdb")
    with duckdb.connect(str(carewatch_home / "warehouse.duckdb")) as con:
        analysis.run(con, export=False)
    _edit(config / "methodology" / "dashboard-2018.yaml", "weight: 3", "weight: three")
    path = pipeline.write_report()
    assert path.endswith("report.html") and "2018-03" in path


def test_the_report_describes_the_config_the_analysis_read_not_the_files_edited_since(tmp_path, config):
    db = tmp_path / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        _edit_after_the_analysis(config)
        data = monthly_report.gather(con)
        html = monthly_report.write_report(con, tmp_path / "out", data=data).read_text()
    # the funnel rule the analysis flagged with: 99.8% limits widened for overdispersion; its one
    # red dot the area the synthetic warehouse puts 30% above the rest on emergency admissions
    assert data["funnel_rule"]["level"] == 0.998 and data["funnel_rule"]["overdispersion"] is True
    figures = monthly_report.build_charts(data)
    assert figures["funnel_rule"] == {"level": "99.8%", "overdispersion": True, "annual_lag_months": 6}
    assert {(t.level, t.overdispersion) for t in data["funnel_tests"]} == {(0.998, True)}
    worse = {metric: "high" if direction == "low" else "low" for _, metric, _, _, direction, *_ in synthetic_warehouse.METRICS}
    red = {(t.metric, area) for t in data["funnel_tests"] for area in t.rows["area_code"][(t.labels == worse[t.metric]).to_numpy()]}
    assert red == {("emergency_admissions_65plus_per_100k", areas[-1])}
    assert "(<code>config/review_flags.yaml</code>: 99.8%, widened for overdispersion)" in html
    # the peer groups: 15 nearest neighbours on the mid-2016 estimates
    assert ("similar areas are each area's 15 nearest neighbours on population size and age structure "
            "(mid-2016 estimates, <code>config/peer_groups.yaml</code>)") in html
    # the annual metrics ranked from financial year 2016-17 (a 6-month lag), the others on the rolling year
    legend = {row["number"]: row["period"] for row in monthly_report.metric_legend(data)}
    assert legend == {1: "12 months to March 2018", 2: "12 months to March 2018", 3: "12 months to March 2018",
                      4: "financial year 2016-17", 5: "financial year 2016-17", 6: "12 months to March 2018"}
    tables = tmp_path / "out" / "tables"
    values = pd.read_parquet(tables / "metric_values.parquet")
    assert set(values.loc[values["metric_id"] == "weekend_discharge_share", "unit"]) == {"proportion"}
    assert set(values.loc[values["metric_id"].str.startswith("reablement"), "period_type"]) == {"financial_year"}


def test_the_summary_describes_the_methodology_the_analysis_read(carewatch_home, config, monkeypatch, capsys):
    from carewatch import summary

    db = carewatch_home / "w.duckdb"
    carewatch_home.mkdir(parents=True, exist_ok=True)
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
    _edit_after_the_analysis(config)
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    summary.print_results()
    assert ("Six dashboard metrics, rolling 12 months to March 2018 (financial year 2016-17 for 4, 5, as ranked)"
            in capsys.readouterr().out.splitlines())


def test_a_warehouse_whose_analysis_recorded_no_config_is_described_with_the_files_as_they_are(tmp_path, config):
    # an analysis of an earlier release recorded nothing: the report reads config/ as it is now
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        con.execute("drop table analysis_config")
        _edit_after_the_analysis(config)
        data = monthly_report.gather(con)
    assert (data["funnel_rule"]["level"], data["funnel_rule"]["overdispersion"]) == (0.95, False)
    assert data["peer_method"].startswith("similar areas are each area's 5 nearest neighbours")
    legend = {row["number"]: row["period"] for row in monthly_report.metric_legend(data)}
    assert (legend[4], legend[5]) == ("no value this month", "no value this month")
    assert data["units"]["weekend_discharge_share"] == "share"


def test_flag_history_and_kept_rows_carry_their_labels_and_adding_them_is_no_restatement(tmp_path, config):
    """A warehouse of the release before: review_flag_history without rule_set, and no digest
    columns; the rows kept then lack them. The next analysis adds them: no restatement."""
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    new = {"ranking_overall": ["methodology_digest"], "target_tracking": ["target_set_digest"],
           "review_flag_history": ["rule_set", "rule_set_digest"]}
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        for table, columns in new.items():  # as the release before left it
            for column in columns:
                con.execute(f'alter table {table} drop column "{column}"')
                con.execute(f'alter table reported_{table} drop column "{column}"')
            con.execute(f"update reported_{table} set columns_kept = ?", [json.dumps(
                [[n, t] for n, t in con.execute(f"select column_name, data_type from information_schema.columns "
                                                f"where table_name = '{table}' order by ordinal_position").fetchall()])])
        con.execute("drop table analysis_config")
        kept = {t: con.execute(f"select count(*) from reported_{t}").fetchone()[0] for t in new}
        analysis.run(con, export=False)
        assert con.execute("select count(*) from restatements").fetchone()[0] == 0
        assert {t: con.execute(f"select count(*) from reported_{t}").fetchone()[0] for t in new} == kept
        assert analysis.restated_words(analysis.restated_by_last_run(con)) == []
        # the kept tables have the columns now; a run that changes something keeps them filled
        con.execute("update fct_metric_values set numerator = numerator * 3, value = value * 3 "
                    "where area_code = (select min(area_code) from fct_metric_values where area_code <> 'E92000001') "
                    f"and metric_id like '{DTOC}%'")
        analysis.run(con, export=False)
        flags = con.execute("select distinct rule_set, rule_set_digest from reported_review_flag_history "
                            "where reported_at = (select max(reported_at) from reported_review_flag_history)").fetchall()
        ranks = con.execute("select distinct methodology, methodology_digest from reported_ranking_overall "
                            "where reported_at = (select max(reported_at) from reported_ranking_overall)").fetchall()
        digests = dict(con.execute("select role, left(sha256, 12) from analysis_config where analysed_at = "
                                   "(select max(analysed_at) from analysis_config)").fetchall())
    assert flags == [("cqc-review-flags@v1", digests["review_flags"])]
    assert ranks == [(METHOD, digests["methodology"])]


def test_the_config_recorded_is_the_config_read(tmp_path, config, monkeypatch):
    """A file edited while the analysis ran: its tables came from what the loaders read, maybe
    not what a second read would record; refused, nothing written."""
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    real = analysis.track_targets

    def edit_meanwhile(mv):
        _edit(config / "review_flags.yaml", "n: 12 ", "n: 10 ")
        return real(mv)

    monkeypatch.setattr(analysis, "track_targets", edit_meanwhile)
    with duckdb.connect(str(db)) as con:
        with pytest.raises(Exception, match="review_flags.yaml changed while the analysis ran: run it again"):
            analysis.run(con, export=False)
        assert not con.execute("select count(*) from information_schema.tables where table_name = 'ranking_overall'").fetchone()[0]


def test_a_methodology_file_is_read_for_its_label_from_the_file_in_force(config):
    (config / "methodology" / "in_force.yaml").write_text("methodology: other\n")
    method = yaml.safe_load((config / "methodology" / "dashboard-2018.yaml").read_text())
    (config / "methodology" / "other.yaml").write_text(yaml.safe_dump({**method, "name": "other", "version": 9}))
    files = {f.role: f for f in provenance.snapshot()}
    assert files["methodology"].label == "other@v9" and files["methodology"].file == "config/methodology/other.yaml"


def test_the_summary_names_the_methodology_with_its_digest(carewatch_home, monkeypatch, capsys):
    from carewatch import summary

    db = carewatch_home / "w.duckdb"
    carewatch_home.mkdir(parents=True, exist_ok=True)
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        [(sha,)] = con.execute("select sha256 from analysis_config where role = 'methodology'").fetchall()
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    summary.print_results()
    assert (f"Overall ranking of 40 HWB areas, rolling 12 months to March 2018 ({METHOD}, config sha256 {sha[:12]})"
            in capsys.readouterr().out.splitlines())


def test_check_config_and_carewatch_run_refuse_a_file_changed_under_its_label_before_anything_runs(config, carewatch_home, capsys, monkeypatch):
    # the analysis refuses it anyway, but only after a whole ingest and build; and check-config
    # said OK for a file the next run would refuse
    from carewatch import cli, runner, sample_server

    assert cli.main(["check-config"]) == 0  # no warehouse yet: nothing to compare with
    assert capsys.readouterr().out.rstrip().endswith("; labels not checked against the warehouse: no warehouse yet")
    carewatch_home.mkdir()
    synthetic_warehouse.build(paths.warehouse_path())
    with duckdb.connect(str(paths.warehouse_path())) as con:
        analysis.run(con, export=False)
        first = pd.Timestamp(con.execute("select max(analysed_at) from analysis_config").fetchone()[0]).tz_convert("UTC")
    assert cli.main(["check-config"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("; each label's content as the warehouse recorded it")
    _edit(config / "methodology" / "dashboard-2018.yaml", f"id: {DTOC}\n    weight: 3", f"id: {DTOC}\n    weight: 2")
    line = (f"config/methodology/dashboard-2018.yaml changed since it was used as {METHOD} on {first:%Y-%m-%d}: "
            "give it a new version")
    assert cli.main(["check-config"]) == 1
    assert capsys.readouterr().err.splitlines() == [line, "carewatch: 1 problem(s) in the methodology config"]

    def started(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(sample_server, "serve_samples", started)
    monkeypatch.setattr(runner, "airflow_env", started)
    before = sorted(p.name for p in carewatch_home.iterdir())
    assert cli.main(["run"]) == 2
    assert capsys.readouterr().err == f"carewatch: {line}\n"
    assert sorted(p.name for p in carewatch_home.iterdir()) == before  # no lock, log, raw store


@pytest.mark.parametrize("file, old, new", [
    ("methodology/dashboard-2018.yaml", f"id: {DTOC}\n    weight: 3", f"id: {DTOC}\n    weight: 3.0"),
    ("review_flags.yaml", "margin: 8.0 ", "margin: 8 "),
    ("targets/expectations-2017-18.yaml", "valid_from: 2017-09 ", "valid_from: 2017-09-01 "),
    ("targets/expectations-2017-18.yaml", "tolerance: 0.0\n", "\n"),  # the default, written out or not
])
def test_an_edit_that_configures_the_same_analysis_is_no_change_under_the_label(tmp_path, config, file, old, new):
    # a review: 3 -> 3.0, a date written in full, a default left out were refused as a change
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        before = {f.role + f.file: f.sha256 for f in provenance.snapshot()}
        _edit(config / file, old, new)
        assert {f.role + f.file: f.sha256 for f in provenance.snapshot()} == before
        provenance.check_labels(con, provenance.snapshot())  # not refused


def test_the_metrics_of_a_methodology_in_another_order_are_the_same_method(config):
    path = config / "methodology" / "dashboard-2018.yaml"
    before = {f.role: f.sha256 for f in provenance.snapshot()}["methodology"]
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "metrics": list(reversed(data["metrics"]))}))
    assert {f.role: f.sha256 for f in provenance.snapshot()}["methodology"] == before


def test_two_target_sets_under_one_label_are_refused(config):
    # a review: next year's set copied without a new name or version passed its checks, then
    # every later analysis was refused as "changed under its label", and the digests were wrong
    text = (config / "targets" / "expectations-2017-18.yaml").read_text()
    (config / "targets" / "expectations-2018-19.yaml").write_text(
        text.replace("valid_from: 2017-09", "valid_from: 2018-04").replace("valid_to: 2018-03", "valid_to: 2019-03"))
    _refused_by_the_checks_and_the_loader(
        "config/targets/expectations-2018-19.yaml: name and version (dtoc-expectations-2017-18@v1) are those of "
        "config/targets/expectations-2017-18.yaml: give it its own name (a new version of a set replaces its file)")


def _refused_by_the_checks_and_the_loader(line: str) -> None:
    """The target sets as they are in the test's config: refused with ``line`` alone, by
    ``carewatch check-config``'s checks and by the analysis's loader alike."""
    from carewatch.errors import ConfigError
    from carewatch.methodology import config_check, targets

    with pytest.raises(ConfigError) as checked:
        config_check.check_all()
    assert checked.value.problems == [line]
    with pytest.raises(ConfigError) as loaded:
        targets.load_target_sets()
    assert loaded.value.problems == [line]


def test_two_versions_of_one_target_set_tracked_at_once_are_refused(config):
    # a review: a new version copied beside the old file, not replacing it, tracked both at
    # once; with a set's months compared across versions by its name, each run restated them
    text = (config / "targets" / "expectations-2017-18.yaml").read_text()
    (config / "targets" / "expectations-2017-18-v2.yaml").write_text(text.replace("version: 1", "version: 2", 1))
    _refused_by_the_checks_and_the_loader(
        "config/targets/expectations-2017-18.yaml: dtoc-expectations-2017-18 is also the set of "
        "config/targets/expectations-2017-18-v2.yaml (version 2 there, 1 here): a new version of a set replaces "
        "its file, another set needs its own name")


def test_a_new_version_that_computes_the_same_rows_restates_nothing(tmp_path, config):
    # a review: the version bump the label check asks for changed the label column of every
    # kept row, so every month earlier runs reported was counted as restated, all areas
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        kept = con.execute("select count(*) from reported_ranking_overall").fetchone()[0]
        _edit(config / "methodology" / "dashboard-2018.yaml", "version: 2", "version: 3")
        _edit(config / "review_flags.yaml", "version: 1", "version: 2")
        analysis.run(con, export=False)
        assert con.execute("select count(*) from restatements").fetchone()[0] == 0
        assert analysis.restated_by_last_run(con).empty
        # the run's own report is kept again, under the label it was published with
        assert con.execute("select distinct methodology from reported_ranking_overall where reported_at = "
                           "(select max(reported_at) from reported_ranking_overall)").fetchall() == [("dashboard-2018-default@v3",)]
        assert con.execute("select count(*) from reported_ranking_overall").fetchone()[0] > kept
        # a change of method that computes other rows is one
        _edit(config / "methodology" / "dashboard-2018.yaml", f"id: {DTOC}\n    weight: 3", f"id: {DTOC}\n    weight: 1")
        _edit(config / "methodology" / "dashboard-2018.yaml", "version: 3", "version: 4")
        analysis.run(con, export=False)
        assert con.execute("select count(*) from restatements where table_name = 'ranking_overall'").fetchone()[0] > 0


def test_a_methodology_without_period_metric_is_a_config_error_naming_file_and_key(tmp_path, config):
    # a review: it passed the checks (the key is optional: older files) and the analysis raised a
    # plain ValueError, which the metrics DAG retried twice, naming neither file nor key
    from carewatch.errors import ConfigError

    path = config / "methodology" / "dashboard-2018.yaml"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith("period_metric:")))
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        with pytest.raises(ConfigError) as refused:
            analysis.run(con, export=False)
    assert refused.value.problems == ["config/methodology/dashboard-2018.yaml: period_metric is missing (the metric whose "
                                      "periods are ranked, e.g. delayed_days_per_day_per_100k_18plus)"]


def test_the_report_describes_the_latest_analysis_not_an_earlier_one(tmp_path, config):
    # the second analysis used version 3 of the methodology (the delayed days weighted 7, not 3)
    # and version 2 of the review flags (funnel limits at 95%, not 99.8%): the report describes
    # the configuration of the analysis it reports, not that of the first one
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    path = config / "methodology" / "dashboard-2018.yaml"
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        _edit(path, f"id: {DTOC}\n    weight: 3", f"id: {DTOC}\n    weight: 7")
        _edit(path, "version: 2", "version: 3")
        _edit(config / "review_flags.yaml", "level: 0.998", "level: 0.95")
        _edit(config / "review_flags.yaml", "version: 1", "version: 2")
        analysis.run(con, export=False)
        _edit(path, f"id: {DTOC}\n    weight: 7", f"id: {DTOC}\n    weight: 5")  # edited since: not what it used
        data = monthly_report.gather(con)
    assert data["funnel_rule"]["level"] == 0.95
    legend = {row["name"]: row["weight"] for row in monthly_report.metric_legend(data)}
    assert legend == {name: (7.0 if metric == DTOC else 1.0) for _, metric, name, *_ in synthetic_warehouse.METRICS}


def test_an_analysis_with_a_supplied_peer_group_file_records_its_rows(tmp_path, config):
    # method: file: which peer groups the comparisons used is answerable from the warehouse too
    from tests.unit.test_config_check import _peer_file

    _peer_file(config, [])  # each HWB area's next two codes, ranked 1 and 2
    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        [(file, content)] = con.execute("select file, content from analysis_config where role = 'peer_file'").fetchall()
    rows = json.loads(content)
    assert file == "config/peers/cipfa.csv" and len(rows) == 300
    assert rows[:2] == [{"area_code": "E06000001", "peer_code": "E06000002", "peer_rank": "1"},
                        {"area_code": "E06000001", "peer_code": "E06000003", "peer_rank": "2"}]
