"""The run summary's data-quality block (``carewatch.summary.print_quality``)."""

from __future__ import annotations

import datetime as dt

from carewatch import summary, validation, warehouse


def report(period: str, success: bool, severity: str = "blocking") -> validation.ValidationReport:
    return validation.ValidationReport("dtoc_la", "dtoc_la", period, results=[validation.ExpectationResult(
        "expect_column_values_to_be_between", "value", severity, "", success, None, 0 if success else 3, [])])


def land(con, source: str, period: str, version: int, sha256: str) -> None:
    """One row of ``period`` version ``version`` in the source's landing table: that version is loaded."""
    con.execute(warehouse.land_ddl(source))
    con.execute(f"insert into {warehouse.land_table(source)} (period, row_type, breakdown, category, measure, _period, _version, _sha256, _loaded_at) "
                "values (date '2018-01-01', 'la', 'total', 'total', 'delayed_days', ?, ?, ?, now())", [period, version, sha256])


def test_quality_block_counts_batches_and_lists_each_quarantined_file_once(carewatch_home, capsys):
    with warehouse.connect() as con:
        validation.store(con, report("2017-01", True), file_version=1, sha256="a" * 64, parsed_path=None)
        validation.store(con, report("2017-02", False, "warning"), file_version=1, sha256="b" * 64, parsed_path=None)
        for _ in range(3):  # the same bad file, validated by three runs
            validation.store(con, report("2017-03", False), file_version=2, sha256="c" * 64, parsed_path=None)
    summary.print_quality()
    out = capsys.readouterr().out.splitlines()
    assert out[-2].split() == ["dtoc_la", "3", "3", "1", "1"]  # batches, checks, warnings, blocking
    [quarantined] = [line for line in out if "QUARANTINED" in line]
    assert quarantined.startswith("  QUARANTINED dtoc_la 2017-03 v2, failed 3 validations since ")
    assert "expect_column_values_to_be_between [value]" in quarantined
    assert "loaded since" not in quarantined  # no later version of March is loaded


def test_quality_block_lists_every_file_the_parser_refused_that_nothing_good_replaced(carewatch_home, capsys):
    # A later run skips a file that failed to parse (AlreadyUnparseable) and one still
    # quarantined, without failing: the summary is where both stay in sight, run after run
    from carewatch import fetch, paths

    files = {("2018-01", 1): "a", ("2018-01", 2): "b", ("2018-02", 1): "c", ("2018-02", 2): "d",
             ("2018-03", 1): "e", ("2018-04", 1): "f", ("2018-05", 1): "g"}
    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        for (period, version), sha in files.items():
            con.execute("insert into raw_manifest values ('dtoc_la', ?, ?, 'u', now(), 200, 100, ?, null, null, 'p')",
                        [period, version, sha * 64])
        land(con, "dtoc_la", "2018-01", 1, "a" * 64)
        land(con, "dtoc_la", "2018-02", 2, "d" * 64)  # February's refused v1 is replaced by a good v2
        validation.store(con, report("2018-05", False), file_version=1, sha256="g" * 64, parsed_path=None)

    def refused(period: str, sha: str, earlier_parser: bool = False) -> None:
        marker = paths.parsed_path("dtoc_la", period, sha * 64).with_suffix(".failed")
        if earlier_parser:  # a fingerprint that is not the parser's now
            marker = marker.with_name(f"{sha * 64}-000000000000.failed")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"/var/raw/dtoc_la/{period}/{sha * 64}.xls: cannot parse as dtoc_la: no sheet 'LA - Type B'\n")

    refused("2018-01", "b")  # January's revision refused: the loaded v1 stays, v2 is outstanding
    refused("2018-02", "c")
    refused("2018-03", "e", earlier_parser=True)  # never parsed by today's parser (outside the revision window)
    refused("2018-04", "f", earlier_parser=True)  # parsed by today's parser since (a parser fix)
    parsed = paths.parsed_path("dtoc_la", "2018-04", "f" * 64)
    parsed.write_bytes(b"")
    summary.print_quality()
    today = dt.datetime.now(dt.timezone.utc).date()
    out = capsys.readouterr().out.splitlines()
    [quarantined] = [line for line in out if "QUARANTINED" in line]
    assert quarantined.startswith("  QUARANTINED dtoc_la 2018-05 v1: ")
    failed = [line for line in out if "PARSE FAILED" in line]
    assert [line.split(":", 1)[0] for line in failed] == [
        f"  PARSE FAILED dtoc_la 2018-01 v2, since {today}",
        f"  PARSE FAILED dtoc_la 2018-03 v1 (by an earlier parser; not parsed since), since {today}"]
    assert failed[0].endswith(": dtoc_la: no sheet 'LA - Type B'")  # the problem, not the long raw path


def test_quality_block_lists_a_refused_file_before_anything_was_validated(carewatch_home, capsys):
    # the first run's only file failed to parse: no validation results yet, still listed
    from carewatch import fetch, paths

    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        con.execute("insert into raw_manifest values ('dtoc_la', '2018-01', 1, 'u', now(), 200, 100, ?, null, null, 'p')", ["a" * 64])
    marker = paths.parsed_path("dtoc_la", "2018-01", "a" * 64).with_suffix(".failed")
    marker.parent.mkdir(parents=True)
    marker.write_text("x.xls: cannot parse as dtoc_la: empty file\n")
    summary.print_quality()
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.strip()] == [f"  PARSE FAILED dtoc_la 2018-01 v1, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}: dtoc_la: empty file"]


def test_six_metrics_block_shows_the_values_the_league_table_ranks(carewatch_home, monkeypatch, capsys):
    # reablement 2017-18 is loaded, but the March 2018 league table ranks 2016-17 (published
    # six months or more before): the summary shows the same year, not the newest one
    import duckdb

    from tests import synthetic_warehouse

    db = carewatch_home / "w.duckdb"
    carewatch_home.mkdir(parents=True, exist_ok=True)
    synthetic_warehouse.build(db)
    still_home = "reablement_still_at_home_91d_65plus"
    with duckdb.connect(str(db)) as con:
        then = con.execute("select value from fct_metric_values where area_code = 'E92000001' and metric_id = ? and period_type = 'financial_year'",
                           [still_home]).fetchone()[0]
        con.execute("insert into fct_metric_values by name select * replace (date '2017-04-01' as period_start, date '2018-03-31' as period_end, 0.5 as value) "
                    "from fct_metric_values where area_code = 'E92000001' and metric_id = ? and period_type = 'financial_year'", [still_home])
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    summary.print_results()
    out = capsys.readouterr().out.splitlines()
    assert "rolling 12 months to March 2018 (financial year 2016-17 for 4, 5, as ranked)" in out[1]
    england = next(line for line in out if line.startswith("England"))
    assert england.split()[4] == f"{then * 100:.1f}%" and "50.0%" not in england


def _results_on_synthetic_warehouse(home, monkeypatch, capsys, *statements: str) -> list[str]:
    """The summary's results block on the synthetic warehouse after ``statements`` ran on it."""
    import duckdb

    from tests import synthetic_warehouse

    db = home / "w.duckdb"
    home.mkdir(parents=True, exist_ok=True)
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        for statement in statements:
            con.execute(statement)
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    summary.print_results()
    return capsys.readouterr().out.splitlines()


def test_six_metrics_block_leaves_out_a_breakdowns_lagged_year(carewatch_home, monkeypatch, capsys):
    # an on-call drill: a DTOC month rejected, with no version left, took the rolling years of
    # the delayed-days breakdowns (NHS, social care, both) away; they came from their lagged
    # financial year like a dashboard metric, and the summary stopped on their unknown ids
    out = _results_on_synthetic_warehouse(
        carewatch_home, monkeypatch, capsys,
        """insert into fct_metric_values by name select * replace ('delayed_days_per_day_per_100k_18plus__both' as metric_id,
           'financial_year' as period_type, date '2016-04-01' as period_start, date '2017-03-31' as period_end)
           from fct_metric_values where metric_id = 'delayed_days_per_day_per_100k_18plus'
           and period_type = 'rolling_12m' and period_start = date '2017-03-01'""",
        # (only the breakdowns' March: without delayed days' own rolling year to March, nothing
        # ranks March, and the block is February's: test_results_block_is_the_month_the_rankings_are_for)
        """delete from fct_metric_values where metric_id like 'delayed_days_per_day_per_100k_18plus__%'
           and period_type = 'rolling_12m' and period_start = date '2018-03-01'""")
    assert "rolling 12 months to March 2018 (financial year 2016-17 for 4, 5, as ranked)" in out[1]
    # delayed days (3) is its own rolling year to March, not a breakdown's year
    assert next(line for line in out if line.startswith("England")).split()[3] != "-"


def test_six_metrics_block_shows_the_lagged_year_the_league_table_ranks_for_a_missing_month(carewatch_home, monkeypatch, capsys):
    # hospital activity late: no rolling year of emergency admissions to March 2018. The league
    # table ranks its 2016-17 financial year (analysis.ranking_values), and the summary shows that
    out = _results_on_synthetic_warehouse(
        carewatch_home, monkeypatch, capsys,
        # its 2016-17 financial year, which ended six months or more before March 2018
        """insert into fct_metric_values by name select * replace ('financial_year' as period_type,
           date '2016-04-01' as period_start, date '2017-03-31' as period_end, 12345.0 as value)
           from fct_metric_values where metric_id = 'emergency_admissions_65plus_per_100k'
           and period_type = 'rolling_12m' and period_start = date '2017-03-01'""",
        """delete from fct_metric_values where metric_id = 'emergency_admissions_65plus_per_100k'
           and period_type = 'rolling_12m' and period_start = date '2018-03-01'""")
    # the header names the year each yearly value is from, not only reablement's ("ASCOF")
    assert "rolling 12 months to March 2018 (financial year 2016-17 for 1, 4, 5, as ranked)" in out[1]
    england = next(line for line in out if line.startswith("England"))
    assert england.split()[1] == "12,345.0"  # metric 1, emergency admissions


def test_six_metrics_block_shows_the_areas_config_names(carewatch_home, monkeypatch, capsys, tmp_path):
    import shutil

    import duckdb

    from carewatch import paths
    from tests import synthetic_warehouse

    db = carewatch_home / "w.duckdb"
    carewatch_home.mkdir(parents=True, exist_ok=True)
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        con.execute("update ref_hwb_areas set hwb_name = 'Manchester' where hwb_code = ?", [areas[5]])
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    assert summary.summary_areas() == ["E92000001", "E08000003", "E06000049", "E10000021", "E09000026"]
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    (config / "summary.yaml").write_text(f"areas: [{areas[3]}, E92000001, {areas[5]}]\n")
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    summary.print_results()
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith("area ")) + 1
    # one line per configured area, in the configured order
    assert [line.split()[0] for line in out[start:start + 4]] == ["Area", "England", "Manchester", "1."]
    assert out[start].startswith("Area 03")


def test_targets_line_counts_an_area_without_a_figure_as_not_known(carewatch_home, monkeypatch, capsys):
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = carewatch_home / "w.duckdb"
    carewatch_home.mkdir(parents=True, exist_ok=True)
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        # the first area's March 2018 delayed days suppressed (every agency)
        con.execute(f"""update fct_metric_values set numerator = null, value = null, ci_lower = null, ci_upper = null
                        where area_code = '{areas[0]}' and period_type = 'month' and period_start = date '2018-03-01'
                          and metric_id like 'delayed_days_per_day_per_100k_18plus%'""")
        analysis.run(con, export=False)
        on, off, unknown = con.execute("""select count(*) filter (where on_track), count(*) filter (where not on_track),
                                          count(*) filter (where on_track is null) from target_tracking
                                          where period_start = date '2018-03-01'""").fetchone()
    assert unknown == 1 and on + off == 39  # 40 areas tracked
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    summary.print_results()
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("DTOC targets"))
    assert line.endswith(f"in March 2018: {on} areas on track, {off} off track, 1 not known (no figure that month or at the baseline)")


def attempt(con, source: str, period: str, run_id: str, outcome: str, sha: str | None = None, error: str | None = None,
            minutes_ago: int = 1, transient: bool | None = None) -> None:
    """One fetch_log row, as the fetch writes it (a refusal's kind is its error)."""
    con.execute("""insert into fetch_log (source, period, url, attempted_at, outcome, http_status, bytes, sha256, error, run_id,
                                          refusal, transient)
                   values (?, ?, 'u', now() - to_minutes(?::bigint), ?, 200, 100, ?, ?, ?, ?, ?)""",
                [source, period, minutes_ago, outcome, sha, error, run_id, error, transient])


def manifest_row(con, source: str, period: str, version: int, sha: str, size: int = 100, minutes_ago: int = 1) -> None:
    con.execute("insert into raw_manifest values (?, ?, ?, 'u', now() - to_minutes(?::bigint), 200, ?, ?, null, null, 'p')",
                [source, period, version, minutes_ago + 1, size, sha])


def test_sources_block_does_not_show_an_earlier_runs_counts_for_a_failed_ingest(carewatch_home, capsys):
    # counts are read by this run's run id (fetch_log) and its loads since its first fetch:
    # never an earlier run's, whatever the DAG's outcome (they were once its last task's JSON,
    # written only when no period failed, so a failed DAG showed none)
    import json

    from carewatch import fetch, paths

    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)  # the manifest as the fetch writes it
        manifest_row(con, "dtoc_la", "2018-01", 1, "a", 2000000, minutes_ago=120)
        manifest_row(con, "dtoc_la", "2018-01", 2, "b", 1000000)
        manifest_row(con, "ascof", "2016-17", 1, "c", 500000, minutes_ago=120)
        # the earlier run fetched and loaded January v1 and ASCOF
        attempt(con, "dtoc_la", "2018-01", "earlier", "new_version", "a", minutes_ago=120)
        attempt(con, "ascof", "2016-17", "earlier", "new_version", "c", minutes_ago=120)
        con.execute(warehouse.land_ddl("dtoc_la"))
        con.execute("insert into land_dtoc_la (period, row_type, breakdown, category, measure, _period, _version, _sha256, _loaded_at) "
                    "values (date '2018-01-01', 'la', 'total', 'total', 'delayed_days', '2018-01', 1, 'a', now() - interval 2 hour)")
        # this run: January revised (v2, loaded: both versions loaded, January revised), February refused
        attempt(con, "dtoc_la", "2018-01", "this", "new_version", "b")
        attempt(con, "dtoc_la", "2018-02", "this", "refused", error="HTML page instead of a workbook")
        land(con, "dtoc_la", "2018-01", 2, "b")
        attempt(con, "ascof", "2016-17", "this", "unchanged", "c")
    runs = paths.home() / "runs" / "ingest"
    runs.mkdir(parents=True)
    # an earlier run's files, which the summary no longer reads
    for source, parsed in (("dtoc_la", 24), ("ascof", 3)):
        (runs / f"{source}.json").write_text(json.dumps({"files_parsed": parsed, "rows": 100 * parsed, "validations_run": parsed, "loads_run": parsed}))
    summary.print_sources({"ingest_dtoc_la": "failed", "ingest_ascof": "success"},
                          {"ingest_dtoc_la": "this", "ingest_ascof": "this"})
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out[3:] if not line.startswith(" ")}  # not the detail lines
    # periods, versions, revised, MB; checked, new, loaded, failed, rows loaded
    assert rows["dtoc_la"].split() == ["dtoc_la", "1", "2", "1", "3.0", "2", "1", "1", "1", "1"]
    assert rows["ascof"].split() == ["ascof", "1", "1", "0", "0.5", "1", "0", "0", "0", "0"]
    assert "  dtoc_la new: 2018-01 v2" in out
    assert "  dtoc_la FAILED 2018-02: fetch refused: HTML page instead of a workbook" in out
    summary.print_sources({})  # no run id (the run crashed): no counts, the DAG's state
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[3:]}
    assert rows["ascof"].endswith("  ingest_ascof not run")


def test_a_download_the_site_or_the_connection_failed_is_said_to_have_failed_not_to_be_refused(carewatch_home, capsys):
    # a 503 after the retries is no verdict on the file: the engineer retries, not inspects it
    from carewatch import fetch

    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        manifest_row(con, "dtoc_la", "2018-01", 1, "a", minutes_ago=120)
        attempt(con, "dtoc_la", "2018-02", "this", "refused", error="HTTP 503 after retries", transient=True)
        attempt(con, "dtoc_la", "2018-03", "this", "refused", error="HTML page instead of a workbook", transient=False)
    summary.print_sources({"ingest_dtoc_la": "failed"}, {"ingest_dtoc_la": "this"})
    out = capsys.readouterr().out.splitlines()
    assert "  dtoc_la FAILED 2018-02: fetch failed (the site or the connection, after the retries): HTTP 503 after retries" in out
    assert "  dtoc_la FAILED 2018-03: fetch refused: HTML page instead of a workbook" in out


def test_sources_block_shows_what_a_run_loaded_beside_a_period_that_failed(carewatch_home, capsys):
    # a drill: the DTOC ingest failed (a held month gone, a new file quarantined, another the
    # parser refused) and the summary showed none of what it did load: the late November and
    # the new January, and December taken back to its first file (v3)
    from carewatch import fetch, paths

    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        for period, version, sha, ago in (("2018-02", 1, "a", 500), ("2018-12", 1, "c", 500), ("2018-12", 2, "d", 300),
                                          ("2018-11", 1, "b", 1), ("2018-12", 3, "c", 1), ("2019-01", 1, "e", 1),
                                          ("2019-02", 1, "f", 1), ("2019-03", 1, "g", 1)):
            manifest_row(con, "dtoc_la", period, version, sha * 64, minutes_ago=ago)
        for period, version, sha, ago in (("2018-02", 1, "a", 500), ("2018-12", 1, "c", 500), ("2018-12", 2, "d", 300)):
            attempt(con, "dtoc_la", period, "earlier", "new_version", sha * 64, minutes_ago=ago)
            con.execute(warehouse.land_ddl("dtoc_la"))
            con.execute("insert into land_dtoc_la (period, row_type, breakdown, category, measure, _period, _version, _sha256, _loaded_at) "
                        "values (date '2018-01-01', 'la', 'total', 'total', 'delayed_days', ?, ?, ?, now() - to_minutes(?::bigint))",
                        [period, version, sha * 64, ago])
        attempt(con, "dtoc_la", "2018-02", "this", "refused", error="HTTP 404: the file is no longer at this URL; the version held (1) is kept",
                minutes_ago=2)
        for period, sha in (("2018-11", "b"), ("2018-12", "c"), ("2019-01", "e"), ("2019-02", "f"), ("2019-03", "g")):
            attempt(con, "dtoc_la", period, "this", "new_version", sha * 64)
        for period, version, sha, rows in (("2018-11", 1, "b", 3), ("2018-12", 3, "c", 2), ("2019-01", 1, "e", 4)):
            for _ in range(rows):
                land(con, "dtoc_la", period, version, sha * 64)
        validation.store(con, report("2019-02", False), file_version=1, sha256="f" * 64, parsed_path=None)
    marker = paths.parsed_path("dtoc_la", "2019-03", "g" * 64).with_suffix(".failed")
    marker.parent.mkdir(parents=True)
    marker.write_text("/var/raw/dtoc_la/2019-03/g.xls: cannot parse as dtoc_la: no sheet 'LA - Type B'\n")
    summary.print_sources({"ingest_dtoc_la": "failed"}, {"ingest_dtoc_la": "this"})
    out = capsys.readouterr().out.splitlines()
    [row] = [line for line in out if line.startswith("dtoc_la ")]
    # 6 periods held, 8 versions, 2018-12 revised (v2 loaded; v3 is v1's file); this run:
    # 6 periods checked, 5 new versions, 3 loaded (9 rows), 3 periods failed
    assert row.split()[:4] == ["dtoc_la", "6", "8", "1"] and row.split()[5:] == ["6", "5", "3", "3", "9"]
    assert "  dtoc_la new: 2018-11 v1, 2018-12 v3, 2019-01 v1, 2019-02 v1, 2019-03 v1" in out
    failed = [line for line in out if " FAILED " in line]
    assert failed == [
        "  dtoc_la FAILED 2018-02: fetch refused: HTTP 404: the file is no longer at this URL; the version held (1) is kept",
        "  dtoc_la FAILED 2019-02: v1 quarantined: " + failed[1].split(": v1 quarantined: ")[1],
        "  dtoc_la FAILED 2019-03: v1 refused by the parser: dtoc_la: no sheet 'LA - Type B'"]
    assert "expect_column_values_to_be_between [value]" in failed[1]


def test_sources_block_names_a_period_asked_for_and_not_published_yet(carewatch_home, capsys):
    # a replay of a year: while DTOC November was asked for before its due date (a 404, not a
    # failure yet), the sources block said "checked 32 new 0 loaded 0 failed 0" and nothing more
    from carewatch import fetch

    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        manifest_row(con, "dtoc_la", "2018-10", 1, "a" * 64, minutes_ago=500)
        attempt(con, "dtoc_la", "2018-10", "this", "unchanged", "a" * 64)
        attempt(con, "dtoc_la", "2018-11", "this", "not_published_yet")
        attempt(con, "dtoc_la", "2018-12", "earlier", "not_published_yet")  # another run's
    summary.print_sources({"ingest_dtoc_la": "success"}, {"ingest_dtoc_la": "this"})
    out = capsys.readouterr().out.splitlines()
    [row] = [line for line in out if line.startswith("dtoc_la ")]
    assert row.split()[5:] == ["2", "0", "0", "0", "0"]
    assert [line for line in out if "not published yet" in line and line.startswith("  ")] == [
        "  dtoc_la not published yet (no file, before its due date and grace days): 2018-11"]


def test_the_report_says_when_rates_use_an_older_population_estimate():
    import pandas as pd

    from carewatch.monthly_report import population_note

    # 2017-18 months: mid-2017 is their own estimate
    assert population_note(pd.Timestamp("2018-03-01"), 2017) is None
    assert population_note(pd.Timestamp("2017-04-01"), 2017) is None
    assert population_note(pd.Timestamp("2017-03-01"), 2016) is None  # 2016-17, its own
    assert population_note(pd.Timestamp("2018-03-01"), 2016).startswith("Rates for months from April 2017 use the ONS mid-2016")
    assert population_note(pd.Timestamp("2018-04-01"), 2016).startswith("Rates for months from April 2017")  # two years behind
    assert population_note(pd.Timestamp("2018-03-01"), None) is None


def test_the_report_says_when_its_files_came_from_this_machine():
    import pandas as pd

    from carewatch import monthly_report

    assert monthly_report._served_locally(pd.DataFrame({"url": ["http://127.0.0.1:4000/dtoc_la/2018-03.xls"]}))
    assert not monthly_report._served_locally(pd.DataFrame({"url": ["http://127.0.0.1:4000/a.xls", "https://www.england.nhs.uk/b.xls"]}))
    assert not monthly_report._served_locally(pd.DataFrame())


def test_the_report_counts_on_and_off_track_per_target_set_in_its_last_month():
    import pandas as pd

    from carewatch.monthly_report import target_summary

    tracking = pd.DataFrame({
        "target_set": ["a@v1"] * 4 + ["b@v1"] * 2,
        "area_code": ["X", "Y", "X", "Z", "X", "Y"],
        "period_start": pd.to_datetime(["2018-02-01", "2018-03-01", "2018-03-01", "2018-03-01", "2018-06-01", "2018-06-01"]),
        "on_track": [True, False, True, None, True, True],  # Z's March is suppressed: not known
    })
    # June 2018: set a ended in March (1 on track, 1 off, 1 not known); set b's latest month is June itself
    assert target_summary({"tracking": tracking, "month": pd.Timestamp("2018-06-01")}) == [
        {"month": pd.Timestamp("2018-03-01"), "set": "a@v1", "on_track": 1, "off_track": 1, "unknown": 1, "ended": True},
        {"month": pd.Timestamp("2018-06-01"), "set": "b@v1", "on_track": 2, "off_track": 0, "unknown": 0, "ended": False}]
    # months after the report's are not counted; no tracking, no summary
    assert target_summary({"tracking": tracking, "month": pd.Timestamp("2018-03-01")})[0]["set"] == "a@v1"
    assert len(target_summary({"tracking": tracking, "month": pd.Timestamp("2018-03-01")})) == 1
    assert target_summary({"tracking": pd.DataFrame(), "month": pd.Timestamp("2018-03-01")}) == []


def test_a_run_whose_metrics_failed_does_not_present_an_earlier_report_as_its_own(carewatch_home, tmp_path, capsys):
    from carewatch import paths

    (paths.home() / "reports" / "2018-03").mkdir(parents=True)
    (paths.home() / "reports" / "latest.txt").write_text(str(paths.home() / "reports" / "2018-03" / "report.html") + "\n")
    summary.print_run_summary({"ingest_dtoc_la": "success", "metrics": "success"}, tmp_path / "run.log")
    assert "\nMonthly report: " in capsys.readouterr().out
    summary.print_run_summary({"ingest_dtoc_la": "success", "metrics": "failed"}, tmp_path / "run.log")
    out = capsys.readouterr().out
    assert "Monthly report:" not in out
    assert "No monthly report from this run (metrics: failed); the latest, from an earlier run: " in out


def test_raw_store_bytes_count_each_stored_file_once(carewatch_home):
    # March 2017 revised, then the revision taken back: three versions, two files in the store
    from carewatch import fetch

    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        for version, sha, size in ((1, "a", 100), (2, "b", 150), (3, "a", 100)):
            con.execute("insert into raw_manifest values ('dtoc_la', '2017-03', ?, 'u', now(), 200, ?, ?, null, null, 'p')",
                        [version, size, sha * 64])
            land(con, "dtoc_la", "2017-03", version, sha * 64)
        con.execute("insert into raw_manifest values ('dtoc_la', '2017-04', 1, 'u', now(), 200, 100, ?, null, null, 'p')", ["a" * 64])
    [(source, periods, versions, revised, size, _)] = summary.manifest_summary()
    # April holds the same bytes as March's first version, but in its own period's folder: stored again
    assert (source, periods, versions, revised, size) == ("dtoc_la", 2, 4, 1, 350)


def test_a_rejected_version_is_not_counted_as_a_revision(carewatch_home, monkeypatch, capsys):
    # January: v2 quarantined (never loaded); February: v1 failed to parse, v2 loaded; March: v1
    # loaded, then revised by v2, loaded too. Only March was revised; six files were fetched
    from carewatch import fetch

    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        for period, version, sha, loaded in (("2018-01", 1, "a", True), ("2018-01", 2, "b", False), ("2018-02", 1, "c", False),
                                             ("2018-02", 2, "d", True), ("2018-03", 1, "e", True), ("2018-03", 2, "f", True)):
            con.execute("insert into raw_manifest values ('dtoc_la', ?, ?, 'u', now(), 200, 100, ?, null, null, 'p')",
                        [period, version, sha * 64])
            if loaded:
                land(con, "dtoc_la", period, version, sha * 64)
    [(source, periods, versions, revised, size, _)] = summary.manifest_summary()
    assert (source, periods, versions, revised, size) == ("dtoc_la", 3, 6, 1, 600)
    summary.print_sources({"ingest_dtoc_la": "failed"})
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dtoc_la")]
    assert row.split()[:4] == ["dtoc_la", "3", "6", "1"]
    # a source that does not load to the warehouse has no loaded versions to count: "-", not 0
    import dataclasses

    from carewatch import sources

    catalogue = {**sources.catalogue(), "dtoc_la": dataclasses.replace(sources.get("dtoc_la"), loads_to_warehouse=False)}
    monkeypatch.setattr(sources, "catalogue", lambda: catalogue)
    assert summary.manifest_summary()[0][3] is None
    summary.print_sources({"ingest_dtoc_la": "failed"})
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dtoc_la")]
    assert row.split()[:4] == ["dtoc_la", "3", "6", "-"]


def test_the_summary_and_the_report_say_which_earlier_months_this_run_restated(carewatch_home, monkeypatch, capsys, tmp_path):
    # the run for February 2018 reports February; a revision of February then moves the worst
    # area (tripled delayed days) in February's table: the March run says so, and keeps both
    import duckdb

    from carewatch import analysis, monthly_report
    from tests import synthetic_warehouse

    db = carewatch_home / "w.duckdb"
    carewatch_home.mkdir(parents=True, exist_ok=True)
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        con.execute("create table march as select * from fct_metric_values where period_start >= date '2018-03-01'")
        con.execute("delete from fct_metric_values where period_start >= date '2018-03-01'")
        analysis.run(con, export=False)  # the February run
        con.execute("insert into fct_metric_values select * from march")
        con.execute("update fct_metric_values set numerator = numerator * 3, value = value * 3 where area_code = ? "
                    "and metric_id like 'delayed_days%' and period_start <= date '2018-02-01' and period_start >= date '2017-03-01'", [areas[0]])
        analysis.run(con, export=False)  # the March run, after the revision
        restated = analysis.restated_by_last_run(con)
        changed_ranks = con.execute("""select count(*) from ranking_overall now join reported_ranking_overall was using (period_type, period_start, area_code)
                                       where now.period_type = 'rolling_12m' and now.period_start = date '2018-02-01' and was.kind = 'reported'
                                       and now.overall_rank is distinct from was.overall_rank""").fetchone()[0]
        # the areas whose February row changed at all (a score, a rank, a rank change), area by area in pandas
        was = con.execute("select * exclude (reported_at, kind, run_month, columns_kept) from reported_ranking_overall "
                          "where kind = 'reported' and period_start = date '2018-02-01'").df().set_index("area_code").sort_index()
        now = con.execute("select * from ranking_overall where period_type = 'rolling_12m' and period_start = date '2018-02-01'"
                          ).df().set_index("area_code").sort_index()[was.columns]
        changed = sum(not was.loc[area].equals(now.loc[area]) for area in was.index)
        html = monthly_report.write_report(con, tmp_path / "out").read_text()
    assert 0 < changed_ranks <= changed
    february = restated[(restated["table_name"] == "ranking_overall")]
    assert february["period_start"].astype(str).tolist() == ["2018-02-01"] and february["areas_changed"].tolist() == [changed]
    words = f"February 2018 overall ranking ({changed} areas changed)"
    assert 'id="restated"' in html and words in html
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    summary.print_results()
    out = capsys.readouterr().out
    # a rerun of the month says the same, so the line does not claim this very run restated it
    assert "Restated by the runs for March 2018, this one or an earlier one (" in out and words in out


def test_quality_block_lists_each_rejected_version_while_it_is_rejected(carewatch_home, capsys):
    # a rejection (carewatch reject) leaves a version out of every build: in sight run after run
    with warehouse.connect() as con:
        land(con, "dtoc_la", "2017-08", 1, "a" * 64)
        land(con, "dtoc_la", "2017-08", 2, "b" * 64)
        warehouse.reject_version(con, source="dtoc_la", period="2017-08", reason="England row doubled (NHS England asked)")
    summary.print_quality()
    today = dt.datetime.now(dt.timezone.utc).date()
    assert f"  REJECTED dtoc_la 2017-08 v2, since {today:%Y-%m-%d}: England row doubled (NHS England asked)" in capsys.readouterr().out.splitlines()
    with warehouse.connect() as con:
        warehouse.withdraw_rejection(con, source="dtoc_la", period="2017-08", version=2)
    summary.print_quality()
    assert "REJECTED" not in capsys.readouterr().out


def test_a_refused_build_is_shown_as_such_until_a_build_passes(carewatch_home, capsys):
    # a warehouse check's quarantine row read "QUARANTINED check:dtoc_national_vs_la warehouse v0"
    # and was cut before its figure; it is the latest build's refusal, cleared by a build that passes
    def check(ok: bool) -> validation.ValidationReport:
        return validation.ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
            validation.ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking",
                                         "the LA tables' England total is within 5% of the national series", ok, None,
                                         0 if ok else 1, [] if ok else ["2018-02: 0.2953"])])

    with warehouse.connect() as con:
        validation.store(con, check(False), file_version=0, sha256="rows-1", parsed_path=None)
    summary.print_quality()
    [line] = [line for line in capsys.readouterr().out.splitlines() if "check:dtoc_national_vs_la" in line and "REFUSED" in line]
    assert line.startswith("  BUILD REFUSED by check:dtoc_national_vs_la: FAIL blocking") and line.endswith("2018-02: 0.2953)")
    with warehouse.connect() as con:
        validation.store(con, check(True), file_version=0, sha256="rows-2", parsed_path=None)
    summary.print_quality()
    assert "REFUSED" not in capsys.readouterr().out


def test_results_block_is_the_month_the_rankings_are_for(carewatch_home, monkeypatch, capsys):
    # a year-of-operation drill: the DTOC file for March late, the hospital aggregate on time.
    # The analysis ranks February (delayed days, the methodology's period_metric, ends there)
    # and the report is February's; the summary said "rolling 12 months to March", showed
    # delayed days from a financial year, "Overall ranking of 0 HWB areas ()" and March's flags
    import duckdb

    from carewatch import analysis
    from tests import synthetic_warehouse

    db = carewatch_home / "w.duckdb"
    carewatch_home.mkdir(parents=True, exist_ok=True)
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        con.execute("delete from fct_metric_values where metric_id like 'delayed_days_per_day_per_100k_18plus%' "
                    "and period_start = date '2018-03-01'")  # its month and rolling year, every breakdown
        con.execute("insert into fct_metric_values by name select * replace ('financial_year' as period_type, date '2016-04-01' as period_start, "
                    "date '2017-03-31' as period_end, 99.0 as value) from fct_metric_values where metric_id = 'delayed_days_per_day_per_100k_18plus' "
                    "and period_type = 'rolling_12m' and period_start = date '2017-03-01'")  # a yearly figure the old block fell back to
        analysis.run(con, export=False)
        [(ranked_month,)] = con.execute("select max(period_start) from ranking_overall where period_type = 'rolling_12m'").fetchone(),
        feb = dict(con.execute("select metric_id, value from fct_metric_values where area_code = 'E92000001' and period_type = 'rolling_12m' "
                               "and period_start = date '2018-02-01'").fetchall())
        flagged = con.execute("select count(*) from review_flag_history where period_start = date '2018-02-01' "
                              "and status in ('new', 'continuing')").fetchone()[0]
    assert str(ranked_month) == "2018-02-01"
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(db))
    summary.print_results()
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "Six dashboard metrics, rolling 12 months to February 2018 (financial year 2016-17 for 4, 5, as ranked)"
    # the hospital metrics (1, 2, 6) reach March: said plainly, not shown as if ranked
    assert out[2] == ("  later figures held, not ranked yet: 1, 2, 6 to March 2018; this run's rankings, review flags and report "
                      "are for February 2018, the latest month of 3, which the rankings wait for")
    england = next(line for line in out if line.startswith("England")).split()
    assert england[1] == f"{feb['emergency_admissions_65plus_per_100k']:,.1f}" and england[3] == f"{feb['delayed_days_per_day_per_100k_18plus']:,.1f}"
    assert "Overall ranking of 40 HWB areas, rolling 12 months to February 2018 (" in "\n".join(out)  # the 40 synthetic areas
    assert f"CQC review flags in February 2018: {flagged} areas flagged, " in "\n".join(out) and flagged > 0
    # a run whose metrics DAG failed (a refused build) shows the last committed build's figures: said so
    summary.print_results("failed")
    refused = capsys.readouterr().out.splitlines()
    assert refused[1:4] == ["metrics failed in this run: the figures below are those of the last build that committed, "
                            "not built by this run", "", out[1]]


def test_revised_leaves_out_a_rejected_version_and_a_file_taken_back(carewatch_home):
    # a drill: `carewatch reject dtoc_la 2019-05 --version 2` (figures doubled), then NHS England
    # took the revision back (v3, v1's very bytes): 2019-05 was never revised. 2018-12 was
    # (v2 loaded, not rejected), then taken back: revised. 2019-06's v2 rejected, no other: not
    # revised. 2019-07: v2 rejected, then withdrawn (it stands no more): revised
    from carewatch import fetch

    files = {("2018-12", 1): "a", ("2018-12", 2): "b", ("2018-12", 3): "a", ("2019-05", 1): "c", ("2019-05", 2): "d",
             ("2019-05", 3): "c", ("2019-06", 1): "e", ("2019-06", 2): "f", ("2019-07", 1): "g", ("2019-07", 2): "h"}
    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        for (period, version), sha in files.items():
            con.execute("insert into raw_manifest values ('dtoc_la', ?, ?, 'u', now(), 200, 100, ?, null, null, 'p')",
                        [period, version, sha * 64])
            if (period, version) != ("2019-05", 3):  # loaded after the rejection below
                land(con, "dtoc_la", period, version, sha * 64)
        warehouse.reject_version(con, source="dtoc_la", period="2019-05", version=2, reason="figures doubled")
        land(con, "dtoc_la", "2019-05", 3, "c" * 64)
        warehouse.reject_version(con, source="dtoc_la", period="2019-06", version=2, reason="figures doubled")
        warehouse.reject_version(con, source="dtoc_la", period="2019-07", version=2, reason="figures doubled")
        warehouse.withdraw_rejection(con, source="dtoc_la", period="2019-07", version=2)
    [(source, periods, versions, revised, _size, _)] = summary.manifest_summary()
    assert (source, periods, versions, revised) == ("dtoc_la", 4, 10, 2)  # 2018-12 and 2019-07


def test_quality_block_lists_a_held_period_whose_recheck_is_refused_until_an_attempt_gets_it(carewatch_home, capsys):
    # a drill: dtoc_la 2018-02, held, answered 404 (GONE): emailed once, then skipped as already
    # reported run after run, the held version kept; only fetch_log showed it still outstanding
    from carewatch import fetch

    gone = "HTTP 404: the file is no longer at this URL; the version held (1) is kept"
    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        manifest_row(con, "dtoc_la", "2018-02", 1, "a", minutes_ago=600)
        manifest_row(con, "dtoc_la", "2019-02", 1, "b", minutes_ago=600)
        attempt(con, "dtoc_la", "2018-02", "r1", "unchanged", "a", minutes_ago=500)
        attempt(con, "dtoc_la", "2018-02", "r2", "refused", error=gone, minutes_ago=400)
        con.execute("insert into fetch_refusals_reported values ('dtoc_la', '2018-02', 'u', ?, 'r2', now() - interval 399 minute, ?)", [gone, gone])
        attempt(con, "dtoc_la", "2018-02", "r3", "already_refused", error=gone, minutes_ago=300)
        attempt(con, "dtoc_la", "2018-02", "r4", "already_refused", error=gone, minutes_ago=200)
        # 2019-02 refused once (another period's file), then got again: nothing outstanding
        attempt(con, "dtoc_la", "2019-02", "r3", "refused", error="the very same file as one held for 2019-01", minutes_ago=300)
        attempt(con, "dtoc_la", "2019-02", "r4", "unchanged", "b", minutes_ago=200)
        # 2018-11, not held, overdue: its run fails and emails every time, not listed here
        attempt(con, "dtoc_la", "2018-11", "r4", "refused", error="HTTP 404 and the publication was due by 2019-01-24: overdue", minutes_ago=200)
        [(since, emailed)] = con.execute("select epoch_us(attempted_at), (select epoch_us(reported_at) from fetch_refusals_reported) "
                                         "from fetch_log where run_id = 'r2'").fetchall()
    summary.print_quality()
    since, emailed = warehouse._utc(since), warehouse._utc(emailed)
    refused = [line for line in capsys.readouterr().out.splitlines() if "FETCH REFUSED" in line]
    assert refused == [f"  FETCH REFUSED dtoc_la 2018-02 (v1 held, kept), since {since:%Y-%m-%d}, 3 runs, "
                       f"emailed {emailed:%Y-%m-%d} (later runs skip it): {gone}"]
    with warehouse.connect() as con:  # the file is back at its URL
        attempt(con, "dtoc_la", "2018-02", "r5", "unchanged", "a", minutes_ago=100)
    summary.print_quality()
    assert "FETCH REFUSED" not in capsys.readouterr().out


def test_quality_block_counts_what_a_later_loaded_version_replaced_instead_of_listing_it(carewatch_home, capsys):
    # over a year the QUARANTINED list only grew ("hes_aggregate 2019-02 v1 (v2 loaded since)"):
    # a file whose period has a later version loaded, not rejected, asks nothing more of anyone
    from carewatch import paths

    with warehouse.connect() as con:
        validation.store(con, report("2019-02", False), file_version=1, sha256="a" * 64, parsed_path=None)
        land(con, "dtoc_la", "2019-02", 2, "b" * 64)  # February replaced: counted, not listed
        validation.store(con, report("2019-03", False), file_version=2, sha256="c" * 64, parsed_path=None)
        land(con, "dtoc_la", "2019-03", 1, "d" * 64)
        land(con, "dtoc_la", "2019-03", 3, "e" * 64)
        warehouse.reject_version(con, source="dtoc_la", period="2019-03", version=3, reason="figures doubled")
        # March's v3 is rejected: the builds use v1, so v2's quarantine still stands, and so does v3's rejection
        land(con, "dtoc_la", "2019-05", 1, "f" * 64)
        land(con, "dtoc_la", "2019-05", 2, "g" * 64)
        warehouse.reject_version(con, source="dtoc_la", period="2019-05", version=2, reason="England doubled")
        land(con, "dtoc_la", "2019-05", 3, "f" * 64)  # May's correction loaded since: v2's rejection is settled
    report_dir = paths.home() / "reports" / "2019-05"
    report_dir.mkdir(parents=True)
    (paths.home() / "reports" / "latest.txt").write_text(f"{report_dir / 'report.html'}\n")
    summary.print_quality()
    out = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert [line.split(":")[0].split(",")[0] for line in out] == [
        "  QUARANTINED dtoc_la 2019-03 v2", "  REJECTED dtoc_la 2019-03 v3",
        "  superseded since by a later version loaded"]
    assert out[-1].endswith(f": 1 quarantined file (see {report_dir / 'tables' / 'quarantine.csv'}), 1 rejected version (rejected_versions)")


def test_the_summary_says_which_months_a_run_reported_and_when_the_report_month_did_not_move(carewatch_home):
    # a drill: while a DTOC month was late neither the summary nor the report said so
    import duckdb

    from carewatch import analysis, monthly_report
    from tests import synthetic_warehouse

    carewatch_home.mkdir(parents=True)
    db = carewatch_home / "warehouse.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        con.execute("create table held as select * from fct_metric_values where period_start > date '2017-12-01'")
        con.execute("delete from fct_metric_values where period_start > date '2017-12-01'")
        analysis.run(con, export=False)
        monthly_report.write_reports(con)
    assert summary.report_lines() == []  # the first report: nothing to add to its path
    with duckdb.connect(str(db)) as con:
        con.execute("insert into fct_metric_values select * from held")
        analysis.run(con, export=False)
        monthly_report.write_reports(con)
    assert summary.report_lines() == ["Monthly reports of January 2018, February 2018, March 2018: each month ranked since the "
                                      "last report (December 2017), reported by this run (3 written)."]
    with duckdb.connect(str(db), read_only=True) as con:  # the results block shows the last of them
        assert str(summary.ranked_month(con).date()) == "2018-03-01"
    written = monthly_report.read_stamp(carewatch_home / "reports" / "2018-03")["written_at"]
    with duckdb.connect(str(db)) as con:  # the next month's run: April 2018 is not loaded
        analysis.run(con, export=False)
        monthly_report.write_reports(con)
    assert summary.report_lines() == [
        "No new month to report: March 2018 is still the latest month ranked (delayed days per day per 100,000 18+ for "
        f"April 2018 is not loaded yet); its figures are unchanged: its report of {written} stands, not rewritten."]
