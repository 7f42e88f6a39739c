"""Warehouse checks (include/sql/checks + their suites) on the hand-made warehouse of
test_warehouse_models: completeness and the LA-vs-national reconciliation, hand-computed."""

from __future__ import annotations

import pandas as pd
import pytest

from carewatch import paths, validation, warehouse
from carewatch.errors import QualityError
from tests.unit.test_warehouse_models import BARNSLEY, BOURNEMOUTH, DTOC, DTOC_COLUMNS, HACKNEY, _load, built, dtoc_rows  # noqa: F401

NATIONAL_COLUMNS = ["period", "status", "published", "revised", "breakdown", "care_type", "reason", "agency", "measure", "value"]


def run_check(con, name):
    return con.execute((paths.sql_dir() / "checks" / f"{name}.sql").read_text()).df()


def test_completeness_lists_the_areas_in_force_without_a_value(built):
    frame = run_check(built, "metric_completeness")
    dtoc = frame[(frame["metric_id"] == DTOC) & (frame["period_type"] == "month")].set_index("period_start")
    # 2017-02: Hackney (with City of London's "-" beside it) and Barnsley reported, Bournemouth did not
    assert dtoc.loc["2017-02-01", ["areas_expected", "areas_present", "missing_areas"]].tolist() == [3, 2, BOURNEMOUTH]
    # 2018-04: Bournemouth and Barnsley only
    assert dtoc.loc["2018-04-01", ["areas_expected", "areas_present", "missing_areas"]].tolist() == [3, 2, HACKNEY]
    # 2019-05: Bournemouth has become BCP (merge effective 2019-04-01); Barnsley keeps its HWB (a recode)
    assert dtoc.loc["2019-05-01", ["areas_expected", "areas_present", "missing_areas"]].tolist() == [3, 1, f"{BARNSLEY} {HACKNEY}"]

    report = validation.validate("check:metric_completeness", frame, period=None, suite="metric_completeness")
    assert report.ok  # completeness gaps are warnings: recorded and emailed, the build commits
    assert {(r.column, r.severity) for r in report.results if not r.success} == {("areas_missing", "warning"), ("missing_areas", "warning")}


def national(period, total):
    return [(pd.Timestamp(period), "Published", "", None, "agency", "total", "total", "total", "delayed_days", total)]


@pytest.mark.parametrize(
    "national_total,failed",
    [
        (757.0, set()),  # LA England 750 is 0.9% below: within 2%
        (780.0, {("relative_difference", "warning")}),  # 3.8% below
        (800.0, {("relative_difference", "warning"), ("relative_difference", "blocking")}),  # 6.25% below
    ],
)
def test_la_england_total_reconciles_with_the_national_series(built, tmp_path, national_total, failed):
    _load(built, tmp_path, "dtoc_national", "2017-02", 1, national("2017-02-01", national_total), NATIONAL_COLUMNS)
    warehouse.build_models(built, reference=False)
    frame = run_check(built, "dtoc_national_vs_la")
    assert frame[["period", "la_england_days", "national_days"]].values.tolist() == [["2017-02", 750.0, national_total]]
    assert frame["relative_difference"].iloc[0] == pytest.approx((750.0 - national_total) / national_total)
    report = validation.validate("check:dtoc_national_vs_la", frame, period=None, suite="dtoc_national_vs_la")
    assert {(r.column, r.severity) for r in report.results if not r.success} == failed


def test_a_blocking_check_failure_rolls_the_whole_build_back(built, tmp_path):
    before = built.execute("select * from fct_metric_values order by all").fetchall()
    # a revised February whose national total is far from the LA tables', and a new LA month
    _load(built, tmp_path, "dtoc_national", "2017-02", 1, national("2017-02-01", 900.0), NATIONAL_COLUMNS)
    _load(built, tmp_path, "dtoc_la", "2017-03", 1, dtoc_rows("2017-03-01", [("council", HACKNEY, {"total": 310.0})]), DTOC_COLUMNS)

    def check(con):
        failing = [report for report, _ in validation.check_warehouse(con) if not report.ok]
        if failing:
            raise QualityError(failing[0].source, failing[0].period, ["x"], report=failing[0])

    with pytest.raises(QualityError, match="check:dtoc_national_vs_la"):
        warehouse.build_models(built, reference=False, check=check)
    assert built.execute("select * from fct_metric_values order by all").fetchall() == before
    # without the failing check the same build commits March
    warehouse.build_models(built, reference=False)
    assert built.execute("select count(*) from fct_metric_values where period_start = '2017-03-01'").fetchone()[0] > 0



def test_a_refused_build_names_the_versions_it_read_first_with_the_command_to_set_each_aside(built, tmp_path):
    # an on-call drill: the email of a refused build named the check, not the suspect files;
    # the operator had to work out which source, period and version to reject
    import datetime as dt

    from carewatch import alerts

    _load(built, tmp_path, "dtoc_national", "2017-02", 1, national("2017-02-01", 900.0), NATIONAL_COLUMNS)
    _load(built, tmp_path, "dtoc_la", "2017-02", 3, dtoc_rows("2017-02-01", [("council", HACKNEY, {"total": 700.0})]), DTOC_COLUMNS)
    seen = []

    def check(con):
        seen.extend(warehouse.versions_new_since_last_build(con))
        raise QualityError("check:dtoc_national_vs_la", "warehouse", ["x"])

    with pytest.raises(QualityError):
        warehouse.build_models(built, reference=False, check=check)
    # loaded since the fixture's build (the only committed one): February's v3 (v2 before it)
    # and the national release, with no version before it
    assert [(v.source, v.period, v.version, v.previous) for v in seen] == [("dtoc_la", "2017-02", 3, 2), ("dtoc_national", "2017-02", 1, None)]
    assert all(abs(v.loaded_at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5) for v in seen)
    report = validation.ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
        validation.ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", False, None, 1, ["2017-02: 0.2"])])
    html = alerts.quality_alert(report, new_versions=seen).html
    assert 'carewatch reject dtoc_la 2017-02 --version 3 --reason "..."</code> (the build would use v2)' in html
    assert 'carewatch reject dtoc_national 2017-02 --version 1 --reason "..."</code> (no earlier version: add --leave-empty)' in html
    assert "carewatch reject dtoc_la 2017-02 --version 1" not in html  # loaded before the last build
    assert "first to read" not in alerts.quality_alert(report).html  # none given, none listed




def test_the_versions_read_first_include_one_a_withdrawal_put_back_and_not_one_rejected(built, tmp_path):
    # a second on-call drill: after a withdrawal the refused build's email listed nothing, as
    # the version put back had been loaded long before; and a fallback named a rejected version
    def first_read() -> list:
        seen = []
        warehouse.build_models(built, reference=False, check=lambda con: seen.extend(warehouse.versions_new_since_last_build(con)))
        return [(v.source, v.period, v.version, v.previous) for v in seen]

    warehouse.reject_version(built, source="dtoc_la", period="2017-02", version=2, reason="wrong")
    assert first_read() == []  # nothing new: v2 is rejected, v1 was read before
    _load(built, tmp_path, "dtoc_la", "2017-02", 3, dtoc_rows("2017-02-01", [("council", HACKNEY, {"total": 700.0})]), DTOC_COLUMNS)
    assert first_read() == [("dtoc_la", "2017-02", 3, 1)]  # falls back past the rejected v2
    warehouse.reject_version(built, source="dtoc_la", period="2017-02", version=3, reason="wrong too")
    warehouse.withdraw_rejection(built, source="dtoc_la", period="2017-02", version=2)
    assert first_read() == [("dtoc_la", "2017-02", 2, 1)]  # put back by the withdrawal; v3 rejected
    assert first_read() == []
    # two versions loaded between builds (a run catching up): the build reads only the newer,
    # and rejecting the older would change nothing (a final review found it offered)
    warehouse.withdraw_rejection(built, source="dtoc_la", period="2017-02", version=3)
    _load(built, tmp_path, "dtoc_la", "2017-02", 4, dtoc_rows("2017-02-01", [("council", HACKNEY, {"total": 710.0})]), DTOC_COLUMNS)
    assert first_read() == [("dtoc_la", "2017-02", 4, 3)]

def test_the_build_task_hands_the_versions_it_read_first_to_its_failure_email(carewatch_home, tmp_path, monkeypatch):
    from carewatch import pipeline

    with warehouse.connect() as con:
        _load(con, tmp_path, "dtoc_la", "2017-02", 1, dtoc_rows("2017-02-01", [("council", HACKNEY, {"total": 700.0})]), DTOC_COLUMNS)
    blocking = validation.ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
        validation.ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", False, None, 1, ["1.0"])])
    monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(blocking, "d1")])
    with pytest.raises(QualityError) as refused:
        pipeline.build_warehouse()
    # a warehouse never built: every loaded version is new to it
    assert [(v.source, v.period, v.version, v.previous) for v in refused.value.new_versions] == [("dtoc_la", "2017-02", 1, None)]

def test_a_check_of_unchanged_rows_that_passed_is_not_run_again(built, tmp_path):
    _load(built, tmp_path, "dtoc_national", "2017-02", 1, national("2017-02-01", 780.0), NATIONAL_COLUMNS)  # a warning
    warehouse.build_models(built, reference=False)
    first = validation.check_warehouse(built, reuse=True)
    assert not any(report.reused_from for report, _ in first)  # nothing recorded yet
    for report, digest in first:
        validation.store(built, report, file_version=0, sha256=digest, parsed_path=None)

    again = {report.source: report for report, _ in validation.check_warehouse(built, reuse=True)}
    assert all(report.reused_from for report in again.values())
    assert [(r.column, r.severity) for r in again["check:dtoc_national_vs_la"].warnings] == [("relative_difference", "warning")]

    # the national figure is revised: the reconciliation's rows change and it runs again
    _load(built, tmp_path, "dtoc_national", "2017-02", 2, national("2017-02-01", 757.0), NATIONAL_COLUMNS)
    warehouse.build_models(built, reference=False)
    rerun = {report.source: report for report, _ in validation.check_warehouse(built, reuse=True)}
    assert rerun["check:dtoc_national_vs_la"].reused_from is None and rerun["check:dtoc_national_vs_la"].ok
    assert rerun["check:metric_completeness"].reused_from  # completeness rows did not change


def test_the_check_verb_reruns_a_check_on_the_warehouse_and_prints_its_rows(built, tmp_path, monkeypatch, capsys):
    """What a check's alert email tells the data engineer to run (`carewatch check NAME`)."""
    from carewatch import cli

    built.close()  # the verb opens the file read-only, as an analyst would
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(tmp_path / "w.duckdb"))
    assert cli.main(["check", "metric_completeness"]) == 0  # gaps are warnings
    out = capsys.readouterr().out.splitlines()
    assert "FAIL warning  expect_column_values_to_be_between [areas_missing]" in "\n".join(out)
    assert out[-1].startswith("check metric_completeness: ") and out[-1].endswith(
        "4 expectations, 0 blocking failures, 2 warnings; the rows: carewatch check metric_completeness --failing")

    assert cli.main(["check", "metric_completeness", "--rows"]) == 0
    import io

    rows = pd.read_csv(io.StringIO(capsys.readouterr().out))
    february = rows[(rows["metric_id"] == DTOC) & (rows["period_type"] == "month") & (rows["period_start"] == "2017-02-01")]
    assert february[["areas_expected", "areas_present", "missing_areas"]].values.tolist() == [[3, 2, BOURNEMOUTH]]

    # --failing: only the rows an expectation fails on (the areas_missing warning's)
    assert cli.main(["check", "metric_completeness", "--failing"]) == 0
    failing = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert failing.equals(rows[rows["areas_missing"] > 0].reset_index(drop=True))  # here every row misses an area

    assert cli.main(["check", "no_such_check"]) == 2
    assert capsys.readouterr().err.strip() == ("carewatch: no warehouse check 'no_such_check'; "
                                               "checks: dtoc_national_vs_la, metric_completeness")


def test_only_the_rows_an_expectation_fails_on_are_picked_out():
    rows = pd.DataFrame([("m", "month", "2018-02-01", 150, 150, 0, None),
                         ("m", "month", "2018-03-01", 150, 148, 2, "E06000058 E06000059"),
                         ("m", "year", "2018-03-01", 150, 150, 0, None),
                         ("n", "month", "2018-03-01", 150, 149, 1, "E06000058")],
                        columns=["metric_id", "period_type", "period_start", "areas_expected", "areas_present",
                                 "areas_missing", "missing_areas"])
    failing, whole_table = validation.failing_rows("metric_completeness", rows)
    assert failing.index.tolist() == [1, 3] and whole_table == []
    assert validation.failing_rows("metric_completeness", rows.iloc[[0, 2]])[0].empty
    # a failure about the table as a whole (no rows at all) shows in no row: it is named
    # a label column holding dates (a check whose SQL returns a DATE) matches GX's rows too
    dated = rows.assign(period_start=pd.to_datetime(rows["period_start"]))
    assert validation.failing_rows("metric_completeness", dated)[0].index.tolist() == [1, 3]
    empty, whole_table = validation.failing_rows("metric_completeness", rows.iloc[:0])
    assert empty.empty and list(empty.columns) == list(rows.columns)
    assert [line.split(":")[0] for line in whole_table] == ["FAIL blocking expect_table_row_count_to_be_between"]


@pytest.mark.parametrize("verb", [["check", "metric_completeness"], ["as-of", "Trafford", "2017-09", "--as-of", "2017-10-31"]])
def test_the_check_and_as_of_verbs_on_a_warehouse_not_built_yet_are_a_one_line_error(tmp_path, monkeypatch, capsys, verb):
    import duckdb

    from carewatch import cli

    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(tmp_path / "empty.duckdb"))
    assert cli.main(verb) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"carewatch: {tmp_path / 'empty.duckdb'}: the warehouse is not built yet (make run")


def test_a_check_warning_is_emailed_once_per_failing_row_not_every_time_the_check_runs(carewatch_home, tmp_path, monkeypatch):
    # the completeness check re-runs every month (new periods change its rows): the same two
    # councils without a suppressed ASCOF figure are emailed once; a new gap, a gap that
    # widens, or one that clears and comes back is emailed again
    from carewatch import mailcatcher, pipeline, warehouse

    columns = ["metric_id", "period_type", "period_start", "areas_expected", "areas_present", "areas_missing", "missing_areas"]
    gap = ("reablement", "financial_year", "2016-04-01", 152, 150, 2, "E06000058 E06000059")
    complete = [("dtoc", "month", "2018-03-01", 150, 150, 0, None)]
    months = {
        "march": [gap, *complete],
        "april": [gap, *complete, ("dtoc", "month", "2018-04-01", 150, 150, 0, None)],  # new rows, the same gap
        "may": [gap, *complete, ("dtoc", "month", "2018-05-01", 150, 149, 1, "E06000001")],  # a new gap
        "june": [gap[:4] + (149, 3, "E06000057 E06000058 E06000059"), *complete],  # the gap widens (and May's cleared)
        "july": [gap[:4] + (149, 3, "E06000057 E06000058 E06000059"), *complete],
        "august": [gap[:4] + (149, 3, "E06000057 E06000058 E06000059"), *complete, ("dtoc", "month", "2018-05-01", 150, 149, 1, "E06000001")],
        "september": [("reablement", "financial_year", "2016-04-01", 152, 152, 0, None), *complete],  # every gap cleared
        "october": [gap[:4] + (149, 3, "E06000057 E06000058 E06000059"), *complete],  # and back as it was
    }

    def build(rows) -> int:  # what build_warehouse does with a freshly run check
        report = validation.validate_check("metric_completeness", pd.DataFrame(rows, columns=columns), every_failing_row=True)
        with warehouse.connect() as con:
            pending = pipeline.new_check_warnings(con, [(report, "d")])
        return pipeline.email_new_check_warnings(pending)

    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        sent = {month: build(rows) for month, rows in [("march", months["march"]), ("march again", months["march"]),
                                                        *((m, months[m]) for m in ("april", "may", "june", "july", "august",
                                                                                    "september", "october"))]}
        caught = mailcatcher.messages(mailbox)
    assert sent == {"march": 1, "march again": 0, "april": 0, "may": 1, "june": 1, "july": 0, "august": 1, "september": 0, "october": 1}
    assert len(caught) == 5
    assert "E06000001" in mailcatcher.body_text(caught[1])  # May's new gap, in an email that shows every gap


def test_a_table_level_check_warning_is_new_when_its_observed_value_changes():
    import duckdb

    from carewatch.validation import ExpectationResult, ValidationReport

    def report(observed):
        return ValidationReport("check:x", "x", "warehouse", results=[
            ExpectationResult("expect_table_row_count_to_be_between", None, "warning", "", False, observed, None, [])])

    with duckdb.connect() as con:
        assert validation.new_warnings(con, report(40)) == {("expect_table_row_count_to_be_between", "", "", "40")}
        validation.record_warnings_reported(con, report(40), validation.new_warnings(con, report(40)))
        assert validation.new_warnings(con, report(40)) == set()
        assert validation.new_warnings(con, report(41)) == {("expect_table_row_count_to_be_between", "", "", "41")}


def test_a_warning_found_beside_a_blocking_failure_waits_for_the_build_that_commits(carewatch_home, tmp_path, monkeypatch):
    # the blocking check's email comes from the task's failure callback; a warning-only check of
    # the same build is neither emailed nor recorded by the build (the warehouse it describes was
    # never kept), so the next build runs it again
    from carewatch import mailcatcher, pipeline, warehouse
    from carewatch.errors import QualityError
    from carewatch.validation import ExpectationResult, ValidationReport

    blocking = ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
        ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", False, None, 1, ["0.09"])])
    rows = pd.DataFrame([("reablement", "financial_year", "2016-04-01", 152, 150, 2, "E06000058 E06000059")],
                        columns=["metric_id", "period_type", "period_start", "areas_expected", "areas_present", "areas_missing", "missing_areas"])
    warning = validation.validate_check("metric_completeness", rows, every_failing_row=True)
    monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(blocking, "d1"), (warning, "d2")])
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        with pytest.raises(QualityError) as refused:
            pipeline.build_warehouse()
        assert mailcatcher.messages(mailbox) == []
    assert refused.value.waiting_warnings == [("check:metric_completeness", validation.warning_rows(warning))]
    with warehouse.connect(read_only=True) as con:
        assert not con.execute("select count(*) from information_schema.tables where table_name = 'fct_metric_values'").fetchone()[0]
        assert not warehouse.table_exists(con, "check_warnings_reported")  # nothing recorded as reported
        assert con.execute("select distinct source from validation_results").fetchall() == [("check:dtoc_national_vs_la",)]


def test_a_rolled_back_builds_warnings_are_emailed_once_by_the_build_that_commits_and_never_as_committed_before(
        carewatch_home, tmp_path, monkeypatch):
    # the drill at 2019-09-15: a DTOC revision with every figure doubled passed its suite, the
    # reconciliation refused the build, and the same build emailed "WARNING check:metric_completeness
    # ... the warehouse build committed". Then the version is rejected and the next build commits
    # with the same completeness gap: that build, the one readers see, emails it, once
    from carewatch import alerts, mailcatcher, pipeline
    from carewatch.validation import ExpectationResult, ValidationReport

    columns = ["metric_id", "period_type", "period_start", "areas_expected", "areas_present", "areas_missing", "missing_areas"]
    frames = {
        "metric_completeness": pd.DataFrame([("reablement", "financial_year", "2016-04-01", 152, 150, 2, "E06000007 E09000002")],
                                            columns=columns),
        "dtoc_national_vs_la": pd.DataFrame([("2019-07-01", 2000.0, 1000.0, 1.0)],
                                            columns=["period", "la_england_days", "national_days", "relative_difference"]),
    }
    monkeypatch.setattr(validation, "check_rows", lambda con, name: frames[name])

    def subjects(mailbox) -> list[str]:
        return [" ".join(m["Subject"].split()) for m in mailcatcher.messages(mailbox)]

    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        with pytest.raises(QualityError) as refused:
            pipeline.build_warehouse()
        alerts.on_task_failure({"exception": refused.value})  # the build task's failure callback
        assert subjects(mailbox) == ["[carewatch] BLOCKING check:dtoc_national_vs_la warehouse: 2 expectations failed"]
        blocking_email = mailcatcher.body_text(mailcatcher.messages(mailbox)[0])
        assert "The warehouse build was <b>rolled back</b>:" in blocking_email and "build committed" not in blocking_email
        assert "<code>check:metric_completeness</code>: 2 warning rows not emailed before" in blocking_email

        frames["dtoc_national_vs_la"] = pd.DataFrame([("2019-07-01", 1000.0, 1000.0, 0.0)], columns=frames["dtoc_national_vs_la"].columns)
        pipeline.build_warehouse()  # the doubled version rejected: commits with the same gap
        pipeline.build_warehouse()  # and again: nothing new
        caught = mailcatcher.messages(mailbox)
    assert subjects(mailbox)[1:] == ["[carewatch] WARNING check:metric_completeness warehouse: 2 expectations failed"]
    warning_email = mailcatcher.body_text(caught[1])
    assert "the warehouse build committed" in warning_email and "rolled back" not in warning_email
    assert "E06000007 E09000002" in warning_email


def test_a_rolled_back_build_leaves_the_warning_rows_already_emailed_as_they_were(carewatch_home, tmp_path, monkeypatch):
    # a failure drill: a DTOC LA file's England row doubled, the reconciliation failed and the
    # build rolled back, yet the warning rows that build no longer saw failing were deleted from
    # check_warnings_reported, so the next committed build would email those gaps again. The
    # warehouse never holds half a load: a rolled-back build forgets nothing
    from carewatch import mailcatcher, pipeline, warehouse
    from carewatch.validation import ExpectationResult, ValidationReport

    columns = ["metric_id", "period_type", "period_start", "areas_expected", "areas_present", "areas_missing", "missing_areas"]
    gap = validation.validate_check("metric_completeness", pd.DataFrame(
        [("reablement", "financial_year", "2016-04-01", 152, 150, 2, "E06000058 E06000059")], columns=columns), every_failing_row=True)
    cleared = validation.validate_check("metric_completeness", pd.DataFrame(
        [("reablement", "financial_year", "2016-04-01", 152, 152, 0, None)], columns=columns), every_failing_row=True)
    assert gap.ok and gap.warnings
    assert cleared.ok and not cleared.warnings
    blocking = ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
        ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", False, None, 1, ["1.0"])])
    reported = "select * from check_warnings_reported order by all"
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(gap, "d1")])
        pipeline.build_warehouse()  # commits; the gap's two rows emailed and recorded
        with warehouse.connect(read_only=True) as con:
            before = con.execute(reported).fetchall()
        assert len(before) == 2
        monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(blocking, "d2"), (cleared, "d3")])
        with pytest.raises(QualityError):
            pipeline.build_warehouse()  # rolled back: the gap it saw cleared was never kept
        with warehouse.connect(read_only=True) as con:
            assert con.execute(reported).fetchall() == before
        monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(cleared, "d3")])
        pipeline.build_warehouse()  # commits with the gap cleared: its rows are forgotten
        with warehouse.connect(read_only=True) as con:
            assert con.execute(reported).fetchall() == []
        assert len(mailcatcher.messages(mailbox)) == 1


def test_the_reconciliation_reads_the_latest_release_of_the_national_series(built, tmp_path):
    # the February release says 757 for February; the March release revises February to 760
    # (and adds March): only the latest release counts, one row per month the LA tables have
    _load(built, tmp_path, "dtoc_national", "2017-02", 1, national("2017-02-01", 757.0), NATIONAL_COLUMNS)
    _load(built, tmp_path, "dtoc_national", "2017-03", 1, national("2017-02-01", 760.0) + national("2017-03-01", 800.0), NATIONAL_COLUMNS)
    warehouse.build_models(built, reference=False)
    frame = run_check(built, "dtoc_national_vs_la")
    # LA England 750 against 760: (750 - 760) / 760 = -0.013158
    assert frame[["period", "la_england_days", "national_days"]].values.tolist() == [["2017-02", 750.0, 760.0]]
    assert frame["relative_difference"].iloc[0] == pytest.approx(-10 / 760)


def test_completeness_on_the_day_of_a_merger_expects_the_successor_and_counts_a_dash_as_missing(built, tmp_path):
    # April 2019, the month BCP was made (effective 1 April): the DTOC table still carries
    # Bournemouth (420 days) and shows "-" for Barnsley. Areas in force: Hackney, Barnsley and
    # BCP (not Bournemouth); none has a value (Barnsley's row is null, not 0)
    _load(built, tmp_path, "dtoc_la", "2019-04", 1, dtoc_rows("2019-04-01", [
        ("council", BOURNEMOUTH, {"total": 420.0}), ("council", BARNSLEY, {"total": None})]), DTOC_COLUMNS)
    warehouse.build_models(built, reference=False)
    frame = run_check(built, "metric_completeness")
    dtoc = frame[(frame["metric_id"] == DTOC) & (frame["period_type"] == "month")].set_index("period_start")
    assert dtoc.loc["2019-04-01", ["areas_expected", "areas_present", "missing_areas"]].tolist() == [
        3, 0, f"E06000058 {BARNSLEY} {HACKNEY}"]


def test_a_blocking_checks_own_warnings_are_not_emailed_by_the_build_as_a_warning(carewatch_home, tmp_path, monkeypatch):
    # the failure callback emails the rolled-back check with its warnings; the build itself
    # must not also send them as "WARNING ... the warehouse build committed"
    from carewatch import mailcatcher, pipeline
    from carewatch.validation import ExpectationResult, ValidationReport

    blocking = ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
        ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", False, None, 1, ["0.09"]),
        ExpectationResult("expect_column_values_to_be_between", "relative_difference", "warning", "", False, None, 1, ["0.09"],
                          failing_rows=[(("2017-02-01",), (0.09,))])])
    monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(blocking, "d1")])
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        with pytest.raises(QualityError):
            pipeline.build_warehouse()
        assert mailcatcher.messages(mailbox) == []


def test_a_check_warning_not_emailed_is_not_recorded_as_reported(carewatch_home, tmp_path, monkeypatch):
    # email_warnings off (config/alerts.yaml): nothing went out, so nothing is recorded, and the
    # rows are still new for the next build, which emails them once warnings are on again
    from carewatch import alerts, mailcatcher, pipeline, warehouse

    rows = pd.DataFrame([("reablement", "financial_year", "2016-04-01", 152, 150, 2, "E06000058 E06000059")],
                        columns=["metric_id", "period_type", "period_start", "areas_expected", "areas_present", "areas_missing", "missing_areas"])
    report = validation.validate_check("metric_completeness", rows, every_failing_row=True)

    def build() -> int:
        with warehouse.connect() as con:
            pending = pipeline.new_check_warnings(con, [(report, "d")])
        return pipeline.email_new_check_warnings(pending)

    configured = alerts.settings
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        monkeypatch.setattr(alerts, "settings", lambda: {**configured(), "email_warnings": False})
        assert build() == 0
        with warehouse.connect(read_only=True) as con:
            assert con.execute("select count(*) from check_warnings_reported").fetchone()[0] == 0
        monkeypatch.setattr(alerts, "settings", configured)
        assert build() == 1
        assert build() == 0
        assert len(mailcatcher.messages(mailbox)) == 1


def test_a_build_whose_check_rows_did_not_change_does_not_email_their_warnings_again(carewatch_home, tmp_path, monkeypatch):
    # the second build reuses the check's recorded report (its rows and suite unchanged): it is
    # not recorded again, and its warnings, emailed by the first build, are not emailed again
    from carewatch import mailcatcher, pipeline, warehouse

    frames = {
        "metric_completeness": pd.DataFrame(
            [("reablement", "financial_year", "2016-04-01", 152, 150, 2, "E06000058 E06000059")],
            columns=["metric_id", "period_type", "period_start", "areas_expected", "areas_present", "areas_missing", "missing_areas"]),
        "dtoc_national_vs_la": pd.DataFrame([("2018-03-01", 1000.0, 1001.0, -0.001)],
                                            columns=["period", "la_england_days", "national_days", "relative_difference"]),
    }
    monkeypatch.setattr(validation, "check_rows", lambda con, name: frames[name])
    recorded = "select source, validated_at from validation_results order by all"
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        pipeline.build_warehouse()
        with warehouse.connect(read_only=True) as con:
            first = con.execute(recorded).fetchall()
        pipeline.build_warehouse()
        with warehouse.connect(read_only=True) as con:
            assert con.execute(recorded).fetchall() == first
        assert [" ".join(m["Subject"].split()) for m in mailcatcher.messages(mailbox)] == [
            "[carewatch] WARNING check:metric_completeness warehouse: 2 expectations failed"]


def test_the_same_gap_in_another_row_is_a_new_warning():
    # the same two councils missing in the next financial year: another row, so emailed,
    # even though its failing values are those of a row already reported
    import duckdb

    columns = ["metric_id", "period_type", "period_start", "areas_expected", "areas_present", "areas_missing", "missing_areas"]
    year_one = ("reablement", "financial_year", "2016-04-01", 152, 150, 2, "E06000058 E06000059")
    year_two = ("reablement", "financial_year", "2017-04-01", 152, 150, 2, "E06000058 E06000059")

    def report(rows):
        return validation.validate_check("metric_completeness", pd.DataFrame(rows, columns=columns), every_failing_row=True)

    with duckdb.connect() as con:
        first = report([year_one])
        validation.record_warnings_reported(con, first, validation.new_warnings(con, first))
        assert validation.new_warnings(con, report([year_one])) == set()
        assert validation.new_warnings(con, report([year_one, year_two])) == {
            ("expect_column_values_to_be_between", "areas_missing", "reablement / financial_year / 2017-04-01", "2"),
            ("expect_column_values_to_be_null", "missing_areas", "reablement / financial_year / 2017-04-01", "E06000058 E06000059"),
        }


def test_a_check_that_failed_a_blocking_expectation_is_run_again_not_reused(built, tmp_path):
    # only a pass is reused; a blocking failure is run and recorded again (the quarantine row
    # counts the attempt)
    _load(built, tmp_path, "dtoc_national", "2017-02", 1, national("2017-02-01", 900.0), NATIONAL_COLUMNS)
    warehouse.build_models(built, reference=False)
    first = {report.source: (report, digest) for report, digest in validation.check_warehouse(built, reuse=True)}
    failed, digest = first["check:dtoc_national_vs_la"]
    assert not failed.ok
    validation.store(built, failed, file_version=0, sha256=digest, parsed_path=None)
    again = {report.source: report for report, _ in validation.check_warehouse(built, reuse=True)}
    assert again["check:dtoc_national_vs_la"].reused_from is None and not again["check:dtoc_national_vs_la"].ok


def test_a_check_that_passes_again_leaves_the_quarantine_whatever_rows_it_saw(carewatch_home):
    # an on-call drill: the check's quarantine row is keyed by the digest of the rows it saw,
    # which changes with every build, so a build that passed never cleared the refused one's
    # and the run summary went on listing it. One row per check: its latest refused build
    from carewatch.validation import ExpectationResult, ValidationReport

    def report(ok: bool) -> ValidationReport:
        return ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
            ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", ok, None, 0 if ok else 1, [])])

    quarantined = "select source, attempts from quarantine"
    with warehouse.connect() as con:
        validation.store(con, report(False), file_version=0, sha256="rows-1", parsed_path=None)
        validation.store(con, report(False), file_version=0, sha256="rows-2", parsed_path=None)  # refused again, other rows
        assert con.execute(quarantined).fetchall() == [("check:dtoc_national_vs_la", 2)]
        validation.store(con, report(True), file_version=0, sha256="rows-3", parsed_path=None)
        assert con.execute(quarantined).fetchall() == []


def test_a_check_reused_from_an_earlier_pass_clears_the_refused_builds_row(carewatch_home, monkeypatch):
    # the second drill: rows back as they were when the check last passed, so its result was
    # reused (not stored again) and the refused build's BUILD REFUSED row stayed
    from carewatch import pipeline
    from carewatch.validation import ExpectationResult, ValidationReport

    def report(ok: bool, reused: str | None = None) -> ValidationReport:
        return ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
            ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", ok, None, 0 if ok else 1, [])],
            reused_from=reused)

    monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(report(False), "rows-2")])
    with pytest.raises(QualityError):
        pipeline.build_warehouse()
    with warehouse.connect(read_only=True) as con:
        assert con.execute("select source from quarantine").fetchall() == [("check:dtoc_national_vs_la",)]
    monkeypatch.setattr(validation, "check_warehouse", lambda con, **_: [(report(True, reused="2026-11-30T10:00:00"), "rows-1")])
    pipeline.build_warehouse()
    with warehouse.connect(read_only=True) as con:
        assert con.execute("select source from quarantine").fetchall() == []


# Around the Dorset reorganisation of 1 April 2019 (config/geography/code_changes.csv):
# Bournemouth E06000028 and Poole E06000029 merged into BCP E06000058, Dorset county E10000009
# split into BCP and the Dorset unitary E06000059; Buckinghamshire E10000002 was recoded on
# 1 April 2020 (the same area: its HWB keeps E10000002); Hackney E09000012 never changed.
REORGANISATION_AREAS = ["E06000028", "E06000029", "E10000009", "E09000012", "E10000002"]
OLD_2019 = {"E06000028", "E06000029", "E10000009", "E09000012", "E10000002"}  # the areas before the change
NEW_2019 = {"E09000012", "E10000002", "E06000058", "E06000059"}  # the areas after it
# (period_type, period_start, period_end) -> the areas that existed throughout, by hand:
EXPECTED_AROUND_APRIL_2019 = {
    ("month", "2019-03-01", "2019-03-31"): OLD_2019,
    ("month", "2019-04-01", "2019-04-30"): NEW_2019,  # BCP's first month
    ("month", "2020-04-01", "2020-04-30"): NEW_2019,  # Buckinghamshire recoded: still its HWB, still expected
    ("rolling_12m", "2019-03-01", "2019-03-31"): OLD_2019,  # April 2018 - March 2019: Bournemouth's last
    ("rolling_12m", "2019-04-01", "2019-04-30"): {"E09000012", "E10000002"},  # May 2018 - April 2019: neither side whole
    ("rolling_12m", "2020-02-01", "2020-02-29"): {"E09000012", "E10000002"},  # March 2019 - February 2020
    ("rolling_12m", "2020-03-01", "2020-03-31"): NEW_2019,  # April 2019 - March 2020: BCP's first
    ("financial_year", "2018-04-01", "2019-03-31"): OLD_2019,
    ("financial_year", "2019-04-01", "2020-03-31"): NEW_2019,
}


def _reorganisation_warehouse(values: dict) -> "duckdb.DuckDBPyConnection":  # noqa: F821
    """fct_metric_values with the periods above, England's value in each (so every period
    exists) and ``values``: {(area, period_type, period_start): value}."""
    import duckdb

    from carewatch import geography

    con = duckdb.connect()
    con.register("hwb", pd.DataFrame({"hwb_code": REORGANISATION_AREAS, "hwb_name": REORGANISATION_AREAS, "region_name": ""}))
    con.execute("create table ref_hwb_areas as select * from hwb")
    con.register("changes", geography.code_changes())
    con.execute("create table ref_code_changes as select * from changes")
    rows = [("E92000001", period_type, start, end, 1.0) for period_type, start, end in EXPECTED_AROUND_APRIL_2019]
    ends = {(t, s): e for t, s, e in EXPECTED_AROUND_APRIL_2019}
    rows += [(area, t, s, ends[t, s], v) for (area, t, s), v in values.items()]
    con.register("facts", pd.DataFrame(rows, columns=["area_code", "period_type", "period_start", "period_end", "value"]))
    con.execute("""create table fct_metric_values as
                   select area_code, period_type, period_start::date as period_start, period_end::date as period_end,
                          'delayed_days' as metric_id, 'delayed_days' as base_metric_id, value from facts""")
    return con


def test_completeness_expects_an_area_only_for_periods_entirely_within_its_existence():
    # the drill: every month from April 2019 emailed one more rolling year of BCP and Dorset,
    # which cannot exist before the one ending March 2020. With no area's value loaded, each
    # period's missing areas are exactly the areas expected for it
    with _reorganisation_warehouse({}) as con:
        frame = run_check(con, "metric_completeness")
    got = {(row.period_type, row.period_start): set(row.missing_areas.split()) for row in frame.itertuples()}
    assert got == {(t, s): areas for (t, s, _), areas in EXPECTED_AROUND_APRIL_2019.items()}
    assert (frame["areas_expected"] == frame["areas_missing"]).all()


def test_completeness_still_reports_a_value_missing_for_an_area_that_existed():
    # every expected value present but Hackney's April 2019 and BCP's first financial year;
    # Bournemouth's April 2019 row (a file that still carried it) is not expected and harmless
    values = {(area, t, s): 1.0 for (t, s, _), areas in EXPECTED_AROUND_APRIL_2019.items() for area in areas}
    del values["E09000012", "month", "2019-04-01"]
    del values["E06000058", "financial_year", "2019-04-01"]
    values["E06000028", "month", "2019-04-01"] = 1.0
    with _reorganisation_warehouse(values) as con:
        frame = run_check(con, "metric_completeness")
    failing = frame[frame["areas_missing"] > 0]
    assert failing[["period_type", "period_start", "areas_expected", "areas_missing", "missing_areas"]].values.tolist() == [
        ["financial_year", "2019-04-01", 4, 1, "E06000058"], ["month", "2019-04-01", 4, 1, "E09000012"]]
    report = validation.validate_check("metric_completeness", frame, every_failing_row=True)
    assert report.ok and {label for r in report.warnings for label, _ in r.failing_rows} == {
        ("delayed_days", "financial_year", "2019-04-01"), ("delayed_days", "month", "2019-04-01")}
