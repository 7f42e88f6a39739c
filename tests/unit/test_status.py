"""``carewatch status`` on a hand-made warehouse and home: what needs attention, and the exit code.

Due dates are computed here by hand from config/sources.yaml's rules (DTOC: the second
Thursday two months after the month, plus 14 grace days), not by the code under test.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from carewatch import cli, fetch, status, validation, warehouse

AS_OF = dt.date(2018, 5, 15)
NOW = dt.datetime(2018, 5, 20, 12, tzinfo=dt.timezone.utc)
# what a monthly run on 15 May 2018 handles on the embedded samples, every source but DTOC by LA
# (and a month before each window, which the run of a date in April handles)
HELD = {"dtoc_national": ["2018-02", "2018-03"], "ascof": ["2015-16", "2016-17"], "ons_mye": ["2015", "2016"],
        "hes_aggregate": ["2017-11", "2017-12", "2018-01", "2018-02", "2018-03"],
        # DTOC by LA: its 12-month revision window, 2017-03 to 2018-03, but February and March
        "dtoc_la": [f"2017-{m:02d}" for m in range(2, 13)] + ["2018-01"]}


def _warehouse(home, *, analysed_at=dt.datetime(2018, 5, 15, 10, tzinfo=dt.timezone.utc)):
    """A warehouse holding HELD, each file in the raw store (a backup of the home checks them)."""
    from carewatch import rawstore

    home.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute(fetch.MANIFEST_DDL)
        con.execute(validation.RESULTS_DDL)
        con.execute(warehouse.BUILDS_DDL)
        for source, periods in HELD.items():
            for period in periods:
                stored = rawstore.put(source, period, f"{source} {period}".encode(), "xls", root=home / "raw")
                con.execute("insert into raw_manifest values (?, ?, 1, 'http://x', ?, 200, 1, ?, null, null, ?)",
                            [source, period, dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc), stored.stem, str(stored)])
        con.execute("insert into warehouse_builds values (?)", [analysed_at])
        con.execute("create table analysis_runs (analysed_at timestamptz not null, month date not null)")
        con.execute("insert into analysis_runs values (?, date '2018-03-01')", [analysed_at])
    return home


def test_a_current_home_needs_nothing_and_the_overdue_month_is_the_only_problem(carewatch_home, monkeypatch):
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home)
    found = status.status(as_of=AS_OF, now=NOW)
    # February 2018 was due on Thursday 12 April (+14 days: 26 April); March on 10 May (+14: 24 May)
    assert found.attention == ["dtoc_la 2018-02: not held, due by 2018-04-26 (the monthly run fails it as OVERDUE)"]
    [dtoc_la] = [line for line in found.lines if line.strip().startswith("dtoc_la")]
    assert dtoc_la.split(None, 1)[1] == ("latest held 2018-01 (v1, fetched 2018-05-15); 2018-02 OVERDUE (due by 2018-04-26); "
                                         "2018-03 not published yet (due by 2018-05-24)")
    assert "  dtoc_provider   nothing due yet (the first, 2019-09, is due 2019-11-14)" in found.lines
    assert "analysis: last 5 days ago (2018-05-15 10:00 UTC), reporting March 2018" in found.lines
    # a day before February's grace ended, nothing needed attention; on that day, as the fetch says, it was overdue
    assert status.status(as_of=dt.date(2018, 4, 25), now=NOW).attention == []
    assert status.status(as_of=dt.date(2018, 4, 26), now=NOW).attention == [
        "dtoc_la 2018-02: not held, due by 2018-04-26 (the monthly run fails it as OVERDUE)"]


def _dtoc_la_attempts(home, *attempts):
    """Log fetch attempts of dtoc_la: (period, attempted at, outcome, error[, transient])."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.executemany("insert into fetch_log (source, period, url, attempted_at, outcome, error, transient) "
                        "values ('dtoc_la', ?, 'http://x', ?::timestamptz, ?, ?, ?)", [[*a, None][:5] for a in attempts])


def test_a_period_not_held_whose_download_was_refused_says_so_before_and_after_its_due_date(carewatch_home, monkeypatch):
    # March 2018 (due by 24 May) was served as a web page on 15 May: the run failed it for that,
    # not as unpublished; February's 404 past its due date stays OVERDUE
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home)
    _dtoc_la_attempts(carewatch_home, ("2018-03", "2018-05-15 09:01:00+00", "refused", "an HTML page, not the Excel file"),
                      ("2018-02", "2018-05-15 09:00:00+00", "refused", "HTTP 404 and the publication was due by 2018-04-26: overdue"))
    found = status.status(as_of=AS_OF, now=NOW)
    assert found.attention == [
        "dtoc_la 2018-02: not held, due by 2018-04-26 (the monthly run fails it as OVERDUE)",
        "dtoc_la 2018-03: not held, its download on 2018-05-15 was refused: an HTML page, not the Excel file "
        "(each monthly run fails it until a download is accepted)"]
    [dtoc_la] = [line for line in found.lines if line.strip().startswith("dtoc_la")]
    assert dtoc_la.endswith("; 2018-02 OVERDUE (due by 2018-04-26); 2018-03 REFUSED (2018-05-15)")


def test_an_analysis_that_reported_several_months_is_shown_reporting_the_last(carewatch_home, monkeypatch):
    # a late DTOC month held January and February back: the analysis that loaded it reported
    # January, February and March 2018 at once (one analysed_at); status names March, the last
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    at = dt.datetime(2018, 5, 15, 10, tzinfo=dt.timezone.utc)
    _warehouse(carewatch_home, analysed_at=at)
    with duckdb.connect(str(carewatch_home / "warehouse.duckdb")) as con:
        con.execute("delete from analysis_runs")
        con.execute("insert into analysis_runs values (?, date '2017-12-01')", [at - dt.timedelta(days=60)])
        for month in ("2018-01-01", "2018-02-01", "2018-03-01"):
            con.execute("insert into analysis_runs values (?, ?)", [at, dt.date.fromisoformat(month)])
    found = status.status(as_of=AS_OF, now=NOW)
    assert "analysis: last 5 days ago (2018-05-15 10:00 UTC), reporting March 2018" in found.lines


def test_refusals_quarantine_unsent_alerts_an_old_analysis_and_an_old_backup_need_attention(carewatch_home, tmp_path, monkeypatch):
    from carewatch import backup

    _warehouse(carewatch_home, analysed_at=dt.datetime(2018, 4, 10, tzinfo=dt.timezone.utc))  # 40 days before NOW
    with duckdb.connect(str(carewatch_home / "warehouse.duckdb")) as con:
        con.execute("insert into raw_manifest values ('dtoc_la', '2018-02', 1, 'http://x', now(), 200, 1, 'f', null, null, 'raw')")
        # a held period whose re-check got an HTML page, twice
        for day in (16, 17):
            con.execute("insert into fetch_log (source, period, url, attempted_at, outcome, error) values "
                        "('ascof', '2016-17', 'http://x', ?, 'refused', 'an HTML page, not the CSV file')",
                        [dt.datetime(2018, 5, day, tzinfo=dt.timezone.utc)])
        con.execute("insert into quarantine (source, period, file_version, sha256, quarantined_at) values "
                    "('hes_aggregate', '2018-03', 1, 'h', timestamptz '2018-05-15 09:00:00+00')")
    outbox = carewatch_home / "outbox"
    outbox.mkdir()
    (outbox / "20180516T090000000000-abc.json").write_text(json.dumps({"subject": "s", "kept_at": "2018-05-16T09:00:00+00:00"}))
    (outbox / "20180517T090000000000-def.json").write_text(json.dumps({"subject": "t", "kept_at": "2018-05-17T09:00:00+00:00"}))
    from tests.unit.test_backup import _home

    dest = tmp_path / "backups"
    backup.make(dest, keep=0, home=_home(tmp_path / "backed-up-home"), now=dt.datetime(2018, 4, 1, tzinfo=dt.timezone.utc))
    manifest = next(dest.glob("*Z")) / "MANIFEST.json"  # made_at is when it was made: set it to the 1 April backup's
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "made_at": "2018-04-01T00:00:00+00:00"}))
    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(dest))
    found = status.status(as_of=AS_OF, now=NOW)
    assert found.attention == [
        "ascof 2016-17: re-check refused since 2018-05-16 (2 run(s)): an HTML page, not the CSV file; version 1 is kept",
        "hes_aggregate 2018-03: version 1 in quarantine since 2018-05-15 and not replaced (carewatch check, the Data Docs)",
        "no analysis for 40 days (more than 35: config/status.yaml): has the metrics DAG run this month?",
        "2 alert email(s) waiting since 2018-05-16: the mail server did not take them, so nobody was told "
        "(the task logs say why; each run sends them first)",
        "the newest backup is 49 days old (more than 35: config/status.yaml)",
    ]


def test_a_file_the_parser_refused_and_a_refused_build_need_attention(carewatch_home, monkeypatch):
    # later runs skip a file the parser refused (its .failed marker) without failing or emailing
    # again, and a refused build stays refused until one passes: both are listed by the run
    # summary (PARSE FAILED, BUILD REFUSED), and need attention here too
    from carewatch import paths

    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home)
    sha = "ab" * 32
    marker = paths.parsed_path("dtoc_la", "2018-01", sha).with_suffix(".failed")
    marker.parent.mkdir(parents=True)
    marker.write_text("dtoc_la 2018-01: /x/raw.xls: cannot parse as DTOC LA: no sheet 'LA - Type of Delay'\n")
    with duckdb.connect(str(carewatch_home / "warehouse.duckdb")) as con:
        con.execute("update raw_manifest set sha256 = ? where source = 'dtoc_la' and period = '2018-01'", [sha])
        con.execute("insert into quarantine (source, period, file_version, sha256, blocking_failures, quarantined_at) values "
                    "('check:national_totals', null, null, 'd', 'England differs from the sum of areas', "
                    "timestamptz '2018-05-15 09:30:00+00')")
    found = status.status(as_of=dt.date(2018, 4, 20), now=NOW)
    assert found.attention == [
        "warehouse build refused by check:national_totals since 2018-05-15: England differs from the sum of areas "
        "(carewatch check, the Data Docs)",
        f"dtoc_la 2018-01: version 1 could not be parsed (since {dt.datetime.fromtimestamp(marker.stat().st_mtime, dt.timezone.utc):%Y-%m-%d}: "
        "DTOC LA: no sheet 'LA - Type of Delay') and nothing has replaced it; its figures are not loaded"]


def test_a_damaged_backup_manifest_or_outbox_file_needs_attention_in_one_line_not_a_traceback(carewatch_home, tmp_path, monkeypatch):
    from carewatch import backup
    from tests.unit.test_backup import _home

    _warehouse(carewatch_home)
    dest = tmp_path / "backups"
    made = backup.make(dest, keep=0, home=_home(tmp_path / "backed-up-home")).path
    (made / "MANIFEST.json").write_text("{not json")  # damaged on the backup disk
    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(dest))
    outbox = carewatch_home / "outbox"
    outbox.mkdir()
    (outbox / "20180516T090000000000-abc.json").write_text("{cut short")  # a run sets it aside; until then, still waiting
    found = status.status(as_of=dt.date(2018, 4, 20), now=NOW)
    assert found.attention[0] == ("1 alert email(s) waiting: the mail server did not take them, so nobody was told "
                                  "(the task logs say why; each run sends them first)")
    assert found.attention[1].startswith(f"{made / 'MANIFEST.json'} is damaged: not JSON (")
    assert found.attention[1].endswith(f" (carewatch restore --check {made})")
    assert len(found.attention) == 2
    # a manifest that is JSON but does not say when
    (made / "MANIFEST.json").write_text(json.dumps({"format": 1, "files": {}, "tables": {}}))
    assert status.status(as_of=dt.date(2018, 4, 20), now=NOW).attention[1] == (
        f"{made / 'MANIFEST.json'} is damaged: it does not say when the backup was made (made_at) "
        f"(carewatch restore --check {made})")


def test_no_analysis_and_no_backup_yet_need_attention(carewatch_home, tmp_path, monkeypatch):
    _warehouse(carewatch_home)
    with duckdb.connect(str(carewatch_home / "warehouse.duckdb")) as con:
        con.execute("drop table analysis_runs")
    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(tmp_path / "backups"))
    found = status.status(as_of=dt.date(2018, 4, 20), now=NOW)
    assert found.attention == ["no analysis has run: the metrics DAG has not finished once",
                               f"no backup in {tmp_path / 'backups'} (the backup DAG runs after each monthly report)"]


def test_the_command_line_exits_0_when_nothing_needs_attention_1_when_something_does_2_when_it_cannot_tell(carewatch_home, monkeypatch, capsys):
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    assert cli.main(["status"]) == 2  # no warehouse yet
    assert "no warehouse at" in capsys.readouterr().err
    _warehouse(carewatch_home, analysed_at=dt.datetime.now(dt.timezone.utc))
    assert cli.main(["status", "--as-of", "2018-04-20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"carewatch status of {carewatch_home}, periods due as of 2018-04-20\n")
    assert out.rstrip().endswith("OK: nothing needs attention")
    assert cli.main(["status", "--as-of", "2018-05-15"]) == 1
    assert capsys.readouterr().out.rstrip().endswith(
        "ATTENTION (1):\n  dtoc_la 2018-02: not held, due by 2018-04-26 (the monthly run fails it as OVERDUE)")
    assert cli.main(["status", "--as-of", "15 May"]) == 2


def test_the_age_limits_come_from_config_and_a_wrong_one_is_one_line(tmp_path, monkeypatch):
    from carewatch import paths

    assert status.limits() == {"analysis_max_age_days": 35, "backup_max_age_days": 35}  # the shipped config/status.yaml
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setattr(paths, "config_dir", lambda: config)
    (config / "status.yaml").write_text("analysis_max_age_days: 0\nbackup_max_age_days: 35\n")
    with pytest.raises(status.CarewatchError, match=r"status.yaml: analysis_max_age_days must be a whole number of days, 1 or more, not 0"):
        status.limits()
    (config / "status.yaml").write_text("analysis_max_age_days: 35\nbackup_max_age_days: 35\nbackup_max_age: 3\n")
    with pytest.raises(status.CarewatchError, match=r"unknown key\(s\) backup_max_age"):
        status.limits()


def test_a_home_whose_warehouse_was_lost_needs_attention_and_says_restore_not_run(carewatch_home, tmp_path, monkeypatch, capsys):
    # the warehouse deleted from a home that ran: status said "cannot tell" (exit 2, as for a busy
    # warehouse: try again) and "run the pipeline first", which starts a new warehouse without its history
    from carewatch import backup

    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(tmp_path / "backups"))
    (carewatch_home / "raw" / "dtoc_la" / "2018-01").mkdir(parents=True)
    (carewatch_home / "raw" / "dtoc_la" / "2018-01" / "ab.xls").write_bytes(b"x")
    (carewatch_home / "outbox").mkdir()
    (carewatch_home / "outbox" / "1.json").write_text(json.dumps({"kept_at": "2018-05-16T09:00:00+00:00"}))
    monkeypatch.setattr(backup, "complete_backups", lambda dest: [dest / "2018-05-15T10-00-00Z"])
    monkeypatch.setattr(backup, "made_at", lambda b: NOW)
    found = status.status(as_of=AS_OF, now=NOW)
    assert found.attention[0] == (
        f"no warehouse at {carewatch_home / 'warehouse.duckdb'}, though {carewatch_home / 'raw'} holds 1 file(s): it was lost; "
        "restore the latest good backup (carewatch restore BACKUP --to NEW_HOME) before any run, which would start a new "
        "warehouse without its history (versions loaded when, rejections, what was reported)")
    assert found.attention[1].startswith("1 alert email(s) waiting since 2018-05-16")  # what it can still tell, it tells
    assert f"backups: 1 in {tmp_path / 'backups'}, newest 2018-05-15T10-00-00Z (0 minutes ago)" in found.lines
    assert cli.main(["status"]) == 1
    assert "ATTENTION (3):\n  no warehouse at" in capsys.readouterr().out  # and the backup, old by the clock


def _rejected_and_quarantined(home, rejected: tuple, *more: str) -> None:
    """dtoc_la 2018-01 held as v2 with ``rejected`` (version, sha256, reason) rejected, and
    hes_aggregate 2018-03 v1 quarantined; then the statements ``more``."""
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("insert into raw_manifest values ('dtoc_la', '2018-01', 2, 'http://x', now(), 200, 1, 'v2', null, null, 'raw')")
        con.execute(warehouse.REJECTED_DDL)
        con.execute("insert into rejected_versions values ('dtoc_la', '2018-01', ?, ?, ?, now(), null)", list(rejected))
        con.execute("insert into quarantine (source, period, file_version, sha256, quarantined_at) values "
                    "('hes_aggregate', '2018-03', 1, 'h', timestamptz '2018-05-15 09:00:00+00')")
        for statement in more:
            con.execute(statement)


def test_a_rejected_or_quarantined_latest_version_is_named_on_its_sources_line(carewatch_home, monkeypatch):
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home)
    _rejected_and_quarantined(
        carewatch_home, (2, "v2", "figures 30% high; NHS England to revise"),
        "insert into rejected_versions values ('dtoc_la', '2017-12', 1, 'x', 'withdrawn since', now(), now())")
    lines = {line.split()[0]: line.split(None, 1)[1] for line in status.status(as_of=dt.date(2018, 4, 20), now=NOW).lines
             if line.startswith("  ")}
    assert lines["dtoc_la"].startswith("latest held 2018-01 (v2, fetched ")
    assert "; 2018-01 v2 REJECTED (figures 30% high; NHS England to revise); 2018-02 not published yet" in lines["dtoc_la"]
    assert "2017-12" not in lines["dtoc_la"]  # a rejection withdrawn is not shown
    assert "; 2018-03 v1 QUARANTINED;" in lines["hes_aggregate"]


def test_a_busy_warehouse_cannot_be_told_but_the_outbox_and_backups_still_are(carewatch_home, monkeypatch, capsys):
    import subprocess
    import sys

    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home, analysed_at=dt.datetime.now(dt.timezone.utc))
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(carewatch_home / "warehouse.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert cli.main(["status", "--as-of", "2018-04-20"]) == 2
        out = capsys.readouterr().out
        assert "warehouse: " in out and "is busy" in out and "alerts: none waiting" in out
        assert out.rstrip().endswith("UNKNOWN: the warehouse could not be read; nothing else needs attention")
        outbox = carewatch_home / "outbox"
        outbox.mkdir()
        (outbox / "20180516T090000000000-abc.json").write_text(json.dumps({"subject": "s", "kept_at": "2018-05-16T09:00:00+00:00"}))
        assert cli.main(["status", "--as-of", "2018-04-20"]) == 1  # what it can tell needs attention
        assert "1 alert email(s) waiting since 2018-05-16" in capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()


def test_ages_are_said_in_words_that_agree_with_their_number():
    now = dt.datetime(2018, 5, 20, 12, tzinfo=dt.timezone.utc)
    assert [status._age(now, now - dt.timedelta(minutes=m)) for m in (0, 1, 2, 89)] == [
        "0 minutes ago", "1 minute ago", "2 minutes ago", "89 minutes ago"]
    assert status._age(now, now - dt.timedelta(hours=5)) == "5 hours ago"
    assert status._age(now, now - dt.timedelta(days=3)) == "3 days ago"


def test_a_failed_backup_needs_attention_at_once_until_one_succeeds(carewatch_home, tmp_path, monkeypatch):
    # its failure email may never arrive (the relay down): the home notes each attempt
    from carewatch import backup, rawstore

    _warehouse(carewatch_home, analysed_at=dt.datetime.now(dt.timezone.utc))
    dest = tmp_path / "backups"
    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(dest))
    backup.make(keep=0)
    assert backup.last_attempt()["outcome"] == "made"
    assert status.status(as_of=dt.date(2018, 4, 20)).attention == []
    damaged = rawstore.put("dtoc_la", "2018-02", b"a workbook", "xls")
    damaged.chmod(0o644)
    damaged.write_bytes(b"a workbook, damaged")
    with pytest.raises(backup.BackupError, match="does not hash to its name"):
        backup.make(keep=0)
    [line] = status.status(as_of=dt.date(2018, 4, 20)).attention
    assert line.startswith("the last backup attempt, ") and f"failed: raw/dtoc_la/2018-02/{damaged.name} does not hash to its name" in line
    damaged.unlink()
    backup.make(keep=0)
    assert status.status(as_of=dt.date(2018, 4, 20)).attention == []


def test_backups_made_by_hand_or_cron_to_a_folder_given_are_judged_there(carewatch_home, tmp_path, monkeypatch):
    # carewatch backup DEST from cron, without CAREWATCH_BACKUP_DIR: their age and a failed one still show
    from carewatch import backup, rawstore

    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home, analysed_at=dt.datetime.now(dt.timezone.utc))
    found = status.status(as_of=dt.date(2018, 4, 20))
    assert "backups: not configured (CAREWATCH_BACKUP_DIR unset, and no carewatch backup DEST on this home)" in found.lines
    with pytest.raises(backup.BackupError, match="no backup destination"):  # a cron line without its DEST
        backup.make(keep=0)
    [line] = status.status(as_of=dt.date(2018, 4, 20)).attention
    assert line.startswith("the last backup attempt, ") and "failed: no backup destination" in line
    dest = tmp_path / "by-hand"
    made = backup.make(dest, keep=0, now=dt.datetime(2018, 4, 1, tzinfo=dt.timezone.utc)).path
    found = status.status(as_of=dt.date(2018, 4, 20))
    assert found.attention == [] and f"backups: 1 in {dest}, newest {made.name} (" in "\n".join(found.lines)
    manifest = json.loads((made / "MANIFEST.json").read_text())  # made 50 days before the clock: too old
    manifest["made_at"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=50)).isoformat()
    (made / "MANIFEST.json").write_text(json.dumps(manifest))
    assert status.status(as_of=dt.date(2018, 4, 20)).attention == [
        "the newest backup is 50 days old (more than 35: config/status.yaml)"]
    damaged = rawstore.put("dtoc_la", "2018-02", b"a workbook", "xls")
    damaged.chmod(0o644)
    damaged.write_bytes(b"a workbook, damaged")
    with pytest.raises(backup.BackupError, match="does not hash to its name"):
        backup.make(dest, keep=0)
    attention = status.status(as_of=dt.date(2018, 4, 20)).attention
    assert len(attention) == 2 and "does not hash to its name" in attention[0]  # still judged in the folder given
    assert attention[1] == "the newest backup is 50 days old (more than 35: config/status.yaml)"


def test_a_backup_that_found_another_running_leaves_the_noted_outcome_as_it_was(carewatch_home, tmp_path, monkeypatch):
    import fcntl

    from carewatch import backup

    _warehouse(carewatch_home)
    dest = tmp_path / "backups"
    dest.mkdir()
    backup.make(dest, keep=0)
    with open(dest / ".backup.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another backup running
        with pytest.raises(backup.BackupBusy):
            backup.make(dest, keep=0)
    assert backup.last_attempt()["outcome"] == "made"


def test_verify_reads_every_raw_file_and_names_a_damaged_or_missing_one(carewatch_home, monkeypatch, capsys):
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home, analysed_at=dt.datetime.now(dt.timezone.utc))
    assert cli.main(["status", "--as-of", "2018-04-20", "--verify"]) == 0
    assert "raw store: every file read, 0 damaged; 0 of the 23 the warehouse names missing" in capsys.readouterr().out
    raw = carewatch_home / "raw"
    damaged = next((raw / "ascof" / "2015-16").iterdir())
    damaged.chmod(0o644)
    damaged.write_bytes(b"ascof 2015-16, one byte changed")
    gone = next((raw / "ons_mye" / "2016").iterdir())
    gone.unlink()
    assert status.status(as_of=dt.date(2018, 4, 20)).attention == []  # without --verify, no file is read
    assert status.status(as_of=dt.date(2018, 4, 20), verify=True).attention == [
        f"raw/ascof/2015-16/{damaged.name} does not hash to its name: damaged; the backups hold it as it was "
        "(carewatch restore --check BACKUP, then copy the file back)",
        f"raw/ons_mye/2016/{gone.name} is missing from the raw store, though the warehouse holds it (the backups hold it)"]


def _backups_made(tmp_path, *made_at: dt.datetime):
    """A backup folder holding one backup made at each of ``made_at`` (oldest first)."""
    from carewatch import backup
    from tests.unit.test_backup import _home

    dest = tmp_path / "backups"
    home = _home(tmp_path / "backed-up-home")
    for when in made_at:
        made = backup.make(dest, keep=0, home=home, now=when).path
        manifest = made / "MANIFEST.json"  # made_at is when it was really made: set it to the day chosen
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "made_at": when.isoformat()}))
    return dest


def test_an_analysis_or_a_backup_one_day_past_its_age_limit_needs_attention_one_at_it_does_not(carewatch_home, tmp_path, monkeypatch):
    # config/status.yaml: 35 days for both. The newest backup is the one judged, not the oldest kept
    _warehouse(carewatch_home, analysed_at=NOW - dt.timedelta(days=36))
    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(_backups_made(tmp_path, NOW - dt.timedelta(days=70), NOW - dt.timedelta(days=36))))
    assert status.status(as_of=dt.date(2018, 4, 20), now=NOW).attention == [
        "no analysis for 36 days (more than 35: config/status.yaml): has the metrics DAG run this month?",
        "the newest backup is 36 days old (more than 35: config/status.yaml)"]
    assert status.status(as_of=dt.date(2018, 4, 20), now=NOW - dt.timedelta(days=1)).attention == []  # 35 days: at the limit


def test_a_download_that_failed_on_the_site_or_the_connection_is_said_to_have_failed(carewatch_home, monkeypatch):
    # March 2018 (due by 24 May) got a 503 after the retries on 15 May: not a verdict on the file
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home)
    _dtoc_la_attempts(carewatch_home, ("2018-03", "2018-05-15 09:00:00+00", "refused", "HTTP 503 after retries", True))
    found = status.status(as_of=AS_OF, now=NOW)
    assert found.attention[1] == (
        "dtoc_la 2018-03: not held, its download on 2018-05-15 failed: HTTP 503 after retries (the site or the connection, "
        "after the retries: clear the fetch task to try again now, or the next monthly run will)")
    [dtoc_la] = [line for line in found.lines if line.strip().startswith("dtoc_la")]
    assert dtoc_la.endswith("; 2018-03 FAILED (2018-05-15)")
    with duckdb.connect(str(carewatch_home / "warehouse.duckdb")) as con:  # a home an earlier release ran: no such column
        con.execute("alter table fetch_log drop column transient")
    assert status.status(as_of=AS_OF, now=NOW).attention[1].startswith(
        "dtoc_la 2018-03: not held, its download on 2018-05-15 was refused: HTTP 503 after retries")


def test_a_404_before_the_due_date_after_a_refused_download_is_not_published_yet(carewatch_home, monkeypatch):
    # the latest attempt decides: March 2018 (due by 24 May) was refused on 14 May (a web page),
    # then on 15 May the URL answered 404, before its due date: not published yet, nothing failed
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home)
    _dtoc_la_attempts(carewatch_home, ("2018-03", "2018-05-14 09:00:00+00", "refused", "an HTML page, not the Excel file"),
                      ("2018-03", "2018-05-15 09:00:00+00", "not_published_yet", None))
    found = status.status(as_of=AS_OF, now=NOW)
    assert found.attention == ["dtoc_la 2018-02: not held, due by 2018-04-26 (the monthly run fails it as OVERDUE)"]
    [dtoc_la] = [line for line in found.lines if line.strip().startswith("dtoc_la")]
    assert dtoc_la.endswith("; 2018-03 not published yet (due by 2018-05-24)")


def test_a_rejected_version_a_revision_replaced_and_a_quarantined_one_a_later_version_replaced_need_nothing(carewatch_home, monkeypatch):
    # dtoc_la 2018-01 v1 rejected, then v2 (the revision) loaded: v2 is what the builds read;
    # hes_aggregate 2018-03 v1 quarantined, then v2 loaded: replaced
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    _warehouse(carewatch_home)
    _rejected_and_quarantined(
        carewatch_home, (1, "v1", "figures 30% high"),
        "insert into raw_manifest values ('hes_aggregate', '2018-03', 2, 'http://x', now(), 200, 1, 'h2', null, null, 'raw')",
        "create table land_hes_aggregate (_period varchar, _version integer)",
        "insert into land_hes_aggregate values ('2018-03', 2)")
    found = status.status(as_of=dt.date(2018, 4, 20), now=NOW)
    assert found.attention == []
    lines = {line.split()[0]: line.split(None, 1)[1] for line in found.lines if line.startswith("  ")}
    assert "REJECTED" not in lines["dtoc_la"] and "QUARANTINED" not in lines["hes_aggregate"]


def test_verify_reads_the_refused_downloads_too_and_finds_files_in_a_home_that_moved(carewatch_home, tmp_path, monkeypatch):
    # a restored (or moved) home: raw_manifest.raw_path names the old home's raw store; the files
    # are looked for in this one. refused/ is named by sha256 as the raw store is
    import hashlib
    import shutil

    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    old = _warehouse(tmp_path / "old-home", analysed_at=dt.datetime.now(dt.timezone.utc))
    shutil.copytree(old, carewatch_home)
    shutil.rmtree(old)
    refused = carewatch_home / "refused" / "dtoc_la" / "2018-02" / (hashlib.sha256(b"<html>").hexdigest() + ".xls")
    refused.parent.mkdir(parents=True)
    refused.write_bytes(b"<html>")
    found = status.status(as_of=dt.date(2018, 4, 20), verify=True)
    assert found.attention == []
    assert "raw store: every file read, 0 damaged; 0 of the 23 the warehouse names missing" in found.lines
    refused.write_bytes(b"<html> damaged")
    gone = next((carewatch_home / "raw" / "ons_mye" / "2016").iterdir())
    gone.unlink()
    assert status.status(as_of=dt.date(2018, 4, 20), verify=True).attention == [
        f"refused/dtoc_la/2018-02/{refused.name} does not hash to its name: damaged; the backups hold it as it was "
        "(carewatch restore --check BACKUP, then copy the file back)",
        f"raw/ons_mye/2016/{gone.name} is missing from the raw store, though the warehouse holds it (the backups hold it)"]


def test_a_day_and_a_half_is_said_in_days():
    now = dt.datetime(2018, 5, 20, 12, tzinfo=dt.timezone.utc)
    assert status._age(now, now - dt.timedelta(hours=36)) == "2 days ago"
    assert status._age(now, now - dt.timedelta(hours=35)) == "35 hours ago"
