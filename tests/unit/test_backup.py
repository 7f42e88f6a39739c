"""Backups of a home and restoring them (carewatch.backup), on real files and a real DuckDB file.

Every check of content is against sha256 computed here with hashlib, or against the home's
own files and tables, never against the backup's manifest alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from carewatch import backup, cli, rawstore
from carewatch.errors import WarehouseBusy

T0 = dt.datetime(2026, 11, 15, 9, 0, tzinfo=dt.timezone.utc)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _home(home: Path) -> Path:
    """A small home as the pipeline leaves one: a warehouse naming its raw files, the raw
    store, a refused download, a report and its superseded copy, exports, Data Docs, an
    alert waiting in the outbox; and what a backup leaves out (parsed files, the local
    Airflow home, logs, caught mail) and a raw file being written (hidden, renamed later)."""
    raw = [rawstore.put("dtoc_la", period, f"workbook {period}".encode(), "xls", root=home / "raw")
           for period in ("2018-02", "2018-03")]
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create table raw_manifest (source varchar, period varchar, version int, sha256 varchar, raw_path varchar)")
        for path in raw:
            con.execute("insert into raw_manifest values ('dtoc_la', ?, 1, ?, ?)", [path.parent.name, path.stem, str(path)])
        con.execute("create table fct_metric_values as select range as i, 'E0' || range as area_code from range(1000)")
        con.execute("create sequence restatement_id start 1")
    files = {
        "refused/dtoc_la/2018-04/" + hashlib.sha256(b"<html>").hexdigest() + ".xls": b"<html>",
        "reports/2018-03/report.html": b"<html>March</html>",
        "reports/2018-03/superseded/2018-05-12T09-15-02Z/report.html": b"<html>March, as first written</html>",
        "exports/2018-03/ranking_overall.csv": b"area_code,rank\nE06000001,1\n",
        "gx/uncommitted/data_docs/local_site/index.html": b"<html>docs</html>",
        "runs/ingest/dtoc_la.json": b"{}",
        "outbox/20181115T090000000000-abc.json": b'{"subject": "x"}',
        "parsed/dtoc_la/2018-03/x.parquet": b"PAR1",
        "airflow/airflow.db": b"sqlite",
        "logs/run-1.log": b"log",
        "mail/run/1.eml": b"mail",
        "raw/dtoc_la/2018-04/.incoming-abc": b"half a down",
    }
    for relative, data in files.items():
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_bytes(data)
    return home


KEPT_FILES = {"raw", "refused", "reports", "exports", "gx", "runs", "outbox"}


def _kept(home: Path) -> dict[str, str]:
    """relative path -> sha256 of every file a backup must hold, as the home has them."""
    return {p.relative_to(home).as_posix(): _sha(p) for p in home.rglob("*")
            if p.is_file() and p.relative_to(home).parts[0] in KEPT_FILES and not p.name.startswith(".")}


def _tables(db: Path) -> dict[str, list]:
    with duckdb.connect(str(db), read_only=True) as con:
        names = [n for (n,) in con.execute("select table_name from duckdb_tables() order by 1").fetchall()]
        return {n: con.execute(f"select * from {n} order by all").fetchall() for n in names}


def test_a_backup_holds_the_warehouse_and_the_homes_state_and_restores_as_it_was(tmp_path):
    home = _home(tmp_path / "home")
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    assert made.path == tmp_path / "backups" / "2026-11-15T09-00-00Z"
    expected = _kept(home)
    assert len(expected) == 9  # two raw files, a refused one, two report versions, an export, docs, a summary, an alert
    held = {p.relative_to(made.path).as_posix(): _sha(p) for p in made.path.rglob("*") if p.is_file()}
    assert held.pop("MANIFEST.json") and held.pop("warehouse.duckdb") == _sha(home / "warehouse.duckdb")
    assert held == expected  # not parsed/, airflow/, logs/, mail/ or a file being written
    assert (made.files, made.linked, made.tables) == (10, 0, 2)

    restored = tmp_path / "restored"
    backup.restore(made.path, restored)
    assert _kept(restored) == expected
    assert _tables(restored / "warehouse.duckdb") == _tables(home / "warehouse.duckdb")
    with duckdb.connect(str(restored / "warehouse.duckdb")) as con:  # the sequence's state came too
        assert con.execute("select nextval('restatement_id')").fetchone()[0] == 1
    assert not (restored / ".restore.partial").exists()


def test_a_warehouse_left_with_its_write_ahead_log_is_backed_up_with_it(tmp_path):
    # a writer killed before its checkpoint leaves committed rows only in warehouse.duckdb.wal
    home = _home(tmp_path / "home")
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("pragma disable_checkpoint_on_shutdown")
        con.execute("set wal_autocheckpoint = '1TB'")
        con.execute("insert into fct_metric_values values (1000, 'E01000')")
    assert (home / "warehouse.duckdb.wal").is_file()
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    restored = tmp_path / "restored"
    backup.restore(made.path, restored)
    with duckdb.connect(str(restored / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*), max(area_code) from fct_metric_values where i = 1000").fetchone() == (1, "E01000")


def test_the_next_backup_links_what_did_not_change_copies_what_did_and_keeps_the_newest(tmp_path):
    home = _home(tmp_path / "home")
    dest = tmp_path / "backups"
    first = backup.make(dest, keep=2, home=home, now=T0)
    (home / "reports/2018-03/report.html").write_bytes(b"<html>March, revised</html>")
    rawstore.put("dtoc_la", "2018-04", b"workbook 2018-04", "xls", root=home / "raw")
    second = backup.make(dest, keep=2, home=home, now=T0 + dt.timedelta(days=30))
    raw = "raw/dtoc_la/2018-02/" + hashlib.sha256(b"workbook 2018-02").hexdigest() + ".xls"
    assert os.stat(first.path / raw).st_ino == os.stat(second.path / raw).st_ino  # one file on disk
    report = "reports/2018-03/report.html"
    assert os.stat(first.path / report).st_ino != os.stat(second.path / report).st_ino
    assert (first.path / report).read_bytes() == b"<html>March</html>"  # the older backup as it was
    assert (second.path / report).read_bytes() == b"<html>March, revised</html>"
    # the first backup's ten files (the warehouse unchanged too) but the report are links; the new raw file a copy
    assert second.linked == 10 - 1 and second.files == 11
    third = backup.make(dest, keep=2, home=home, now=T0 + dt.timedelta(days=60))
    assert third.removed == [first.path]
    assert [p.name for p in backup.complete_backups(dest)] == [second.path.name, third.path.name]
    assert backup.check(second.path)["files"][report]["sha256"] == hashlib.sha256(b"<html>March, revised</html>").hexdigest()


def test_a_damaged_raw_file_fails_the_backup_naming_it_and_leaves_no_backup(tmp_path):
    home = _home(tmp_path / "home")
    damaged = next((home / "raw/dtoc_la/2018-03").iterdir())
    damaged.chmod(0o644)
    damaged.write_bytes(b"workbook 2018-03 with a flipped bit")
    with pytest.raises(backup.BackupError, match=r"raw/dtoc_la/2018-03/[0-9a-f]{64}\.xls does not hash to its name"):
        backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    assert list((tmp_path / "backups").iterdir()) == [tmp_path / "backups" / ".backup.lock"]


@pytest.mark.parametrize("harm, problem", [
    (lambda b: (b / "reports/2018-03/report.html").write_bytes(b"<html>edited</html>"), "reports/2018-03/report.html differs"),
    # the same size as the file it replaces (<html>March</html>): found by its sha256, not its size
    (lambda b: (b / "reports/2018-03/report.html").write_bytes(b"<html>April</html>"), "reports/2018-03/report.html differs"),
    (lambda b: (b / "exports/2018-03/ranking_overall.csv").unlink(), "exports/2018-03/ranking_overall.csv is missing"),
    (lambda b: (b / "reports/2018-03/notes.txt").write_text("x"), "reports/2018-03/notes.txt is not in the manifest"),
    (lambda b: (b / "warehouse.duckdb").write_bytes(b"not a database"), "warehouse.duckdb differs"),
    # the rows the warehouse held when it was copied (a copy without its write-ahead log would have fewer)
    (lambda b: (b / "MANIFEST.json").write_text((b / "MANIFEST.json").read_text().replace('"fct_metric_values": 1000', '"fct_metric_values": 1001')),
     "warehouse tables differ from the manifest: fct_metric_values"),
])
def test_a_backup_that_differs_from_its_manifest_is_refused_and_not_restored(tmp_path, harm, problem):
    home = _home(tmp_path / "home")
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    harm(made.path)
    with pytest.raises(backup.BackupError, match=problem):
        backup.check(made.path)
    with pytest.raises(backup.BackupError, match=problem):
        backup.restore(made.path, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_a_warehouse_naming_a_raw_file_the_backup_lacks_is_refused(tmp_path):
    # a manifest rewritten by hand without the file would pass the file checks: the
    # warehouse's raw_manifest is checked against the raw store too
    home = _home(tmp_path / "home")
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    manifest = json.loads((made.path / "MANIFEST.json").read_text())
    gone = next(f for f in manifest["files"] if f.startswith("raw/dtoc_la/2018-02/"))
    del manifest["files"][gone]
    (made.path / gone).unlink()
    (made.path / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(backup.BackupError, match=r"raw file dtoc_la/2018-02/[0-9a-f]{12}\.\.\. that the warehouse names is not in the backup"):
        backup.check(made.path)


def test_an_unfinished_backup_a_non_empty_home_and_a_backup_inside_the_home_are_refused(tmp_path):
    home = _home(tmp_path / "home")
    dest = tmp_path / "backups"
    made = backup.make(dest, keep=0, home=home, now=T0)
    partial = dest / "2026-11-16T09-00-00Z.partial"
    partial.mkdir()
    with pytest.raises(backup.BackupError, match="unfinished backup"):
        backup.check(partial)
    with pytest.raises(backup.BackupError, match=f"{home} is not empty: restore into a new home"):
        backup.restore(made.path, home)
    with pytest.raises(backup.BackupError, match="is inside the home it would back up"):
        backup.make(home / "backups", keep=0, home=home)
    backup.make(dest, keep=0, home=home, now=T0 + dt.timedelta(days=1))  # the next backup removes the stale part
    assert not partial.exists()
    empty = tmp_path / "empty-home"
    (empty / ".restore.partial" / "raw").mkdir(parents=True)  # a restore stopped half-way
    backup.restore(made.path, empty)  # an empty folder (a new volume's mount point) is a new home
    assert (empty / "warehouse.duckdb").is_file() and _kept(empty) == _kept(home)
    assert sorted(p.name for p in empty.iterdir()) == sorted(["warehouse.duckdb", *KEPT_FILES])


def test_a_backup_waits_for_no_writer_it_says_the_warehouse_is_busy_and_leaves_nothing(tmp_path):
    home = _home(tmp_path / "home")
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(60)", str(home / "warehouse.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseBusy, match="is busy"):
            backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    finally:
        holder.kill()
        holder.wait()
    assert backup.complete_backups(tmp_path / "backups") == []
    assert not list((tmp_path / "backups").glob("*.partial"))


def test_the_command_line_backs_up_checks_and_restores(tmp_path, monkeypatch, capsys):
    home = _home(tmp_path / "home")
    monkeypatch.setenv("CAREWATCH_HOME", str(home))
    monkeypatch.delenv("CAREWATCH_WAREHOUSE", raising=False)
    monkeypatch.delenv("CAREWATCH_BACKUP_DIR", raising=False)
    assert cli.main(["backup"]) == 2
    assert "no backup destination: give one (carewatch backup DEST) or set CAREWATCH_BACKUP_DIR" in capsys.readouterr().err
    monkeypatch.setenv("CAREWATCH_BACKUP_DIR", str(tmp_path / "backups"))
    assert cli.main(["backup", "--keep", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backup {tmp_path / 'backups'}/") and "the warehouse (2 tables) and 10 files" in out
    (made,) = backup.complete_backups(tmp_path / "backups")
    assert cli.main(["restore", str(made), "--check"]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {made} (made ")
    assert cli.main(["restore", str(made), "--to", str(tmp_path / "new")]) == 0
    assert f"as {tmp_path / 'new'}: 10 files, checked" in capsys.readouterr().out
    assert cli.main(["restore", str(made), "--to", str(home)]) == 2
    assert "is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["backup", "--keep", "-1"])


def test_keep_comes_from_config_and_a_wrong_value_is_one_line(tmp_path, monkeypatch):
    from carewatch import paths

    assert backup.keep_default() == 12  # the shipped config/backup.yaml
    config = tmp_path / "config"
    config.mkdir()
    (config / "backup.yaml").write_text("keep: twelve\n")
    monkeypatch.setattr(paths, "config_dir", lambda: config)
    with pytest.raises(backup.CarewatchError, match=r"backup.yaml: keep must be a whole number, 0 or more .*not 'twelve'"):
        backup.keep_default()


def test_a_file_damaged_in_the_previous_backup_is_copied_from_the_home_not_linked_to(tmp_path):
    # an unchanged file is linked to the previous backup's copy: if that copy was damaged since
    # (or edited through its hard-linked twin in an older backup), the new backup copies the
    # home's file instead of failing, this month and every month after
    home = _home(tmp_path / "home")
    dest = tmp_path / "backups"
    first = backup.make(dest, keep=0, home=home, now=T0)
    report = "reports/2018-03/report.html"
    (first.path / report).write_bytes(b"<html>edited in a backup</html>")
    second = backup.make(dest, keep=0, home=home, now=T0 + dt.timedelta(days=30))
    assert (second.path / report).read_bytes() == (home / report).read_bytes()
    assert os.stat(first.path / report).st_ino != os.stat(second.path / report).st_ino
    assert second.linked == 10 - 1
    backup.check(second.path)
    with pytest.raises(backup.BackupError, match=f"{report} differs from the manifest"):
        backup.check(first.path)


def test_a_file_rewritten_while_it_is_backed_up_is_not_called_damaged_and_the_backup_can_be_retried(tmp_path, monkeypatch):
    # the report and exports are written in place: a backup run during the report task (from
    # cron, say) reads one as it changes. That is not damage (the DAG would fail at once and
    # email it as such) but a busy home: an error a retry clears, and no backup left behind
    home = _home(tmp_path / "home")
    report = home / "reports/2018-03/report.html"
    copy = backup.shutil.copy2

    def rewritten_meanwhile(source, target, *args, **kwargs):
        if Path(source) == report:
            report.write_bytes(b"<html>March, being rewritten</html>")
        return copy(source, target, *args, **kwargs)

    monkeypatch.setattr(backup.shutil, "copy2", rewritten_meanwhile)
    with pytest.raises(backup.CarewatchError, match="reports/2018-03/report.html changed while it was copied") as err:
        backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    assert not isinstance(err.value, backup.BackupError)  # retried, not failed at once
    assert list((tmp_path / "backups").iterdir()) == [tmp_path / "backups" / ".backup.lock"]
    monkeypatch.setattr(backup.shutil, "copy2", copy)
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)  # the retry
    assert (made.path / "reports/2018-03/report.html").read_bytes() == b"<html>March, being rewritten</html>"


@pytest.mark.parametrize("where", [lambda made, dest: made / "home", lambda made, dest: made / "reports" / "home"])
def test_a_restore_into_the_backup_itself_is_refused_and_leaves_the_backup_as_it_was(tmp_path, where):
    home = _home(tmp_path / "home")
    dest = tmp_path / "backups"
    made = backup.make(dest, keep=0, home=home, now=T0).path
    target = where(made, dest)
    with pytest.raises(backup.BackupError, match=f"{target} is inside the backup {made}"):
        backup.restore(made, target)
    assert not target.exists()
    backup.check(made)  # not damaged by files written into it


def test_a_file_system_error_or_a_damaged_manifest_is_one_line_naming_the_file(tmp_path, monkeypatch):
    # not a traceback from the command line; in the DAG a BackupError fails at once (a retry
    # would meet the same permission, the same full disk, the same manifest)
    home = _home(tmp_path / "home")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(backup.BackupError, match=r"cannot back up: Not a directory: .*a-file/backups"):
        backup.make(tmp_path / "a-file" / "backups", keep=0, home=home, now=T0)
    hashed = backup.sha256_file
    unreadable = home / "exports/2018-03/ranking_overall.csv"

    def permission_denied(path):
        if Path(path) == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return hashed(path)

    monkeypatch.setattr(backup, "sha256_file", permission_denied)
    with pytest.raises(backup.BackupError, match=f"cannot back up: Permission denied: {unreadable}"):
        backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    assert backup.complete_backups(tmp_path / "backups") == [] and not list((tmp_path / "backups").glob("*.partial"))
    monkeypatch.setattr(backup, "sha256_file", hashed)

    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0).path
    with pytest.raises(backup.BackupError, match=r"cannot restore: Not a directory: .*a-file/home"):
        backup.restore(made, tmp_path / "a-file" / "home")
    manifest = (made / "MANIFEST.json").read_text()
    for edited in (manifest[: len(manifest) // 2], json.dumps({"format": 1}), json.dumps({"format": 1, "files": [], "tables": {}})):
        (made / "MANIFEST.json").write_text(edited)
        with pytest.raises(backup.BackupError, match=f"{made}/MANIFEST.json is damaged"):
            backup.check(made)
    # the next backup links nothing to a backup whose manifest is damaged, and is made
    after = backup.make(tmp_path / "backups", keep=0, home=home, now=T0 + dt.timedelta(days=1))
    assert after.linked == 0 and backup.check(after.path)


@pytest.mark.parametrize("link", ["reports/2018-03/report.html", "exports/2018-03"])
def test_a_symbolic_link_in_the_home_fails_the_backup_naming_it_instead_of_being_left_out(tmp_path, link):
    # a backup left it out without a word: restored, the home lacked the report (or a month's
    # exports) and the backup had said it was complete
    home = _home(tmp_path / "home")
    elsewhere = tmp_path / "other-disk" / Path(link).name
    elsewhere.parent.mkdir()
    (home / link).rename(elsewhere)
    (home / link).symlink_to(elsewhere)
    with pytest.raises(backup.BackupError, match=f"{link} is a symbolic link"):
        backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    assert backup.complete_backups(tmp_path / "backups") == []


def test_a_restore_puts_the_warehouse_file_in_place_last_after_its_write_ahead_log(tmp_path, monkeypatch):
    # stopped between the two, a home with warehouse.duckdb but not yet its .wal opens without
    # the rows only the log holds (and the log, moved in later, no longer matches the file)
    home = _home(tmp_path / "home")
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("pragma disable_checkpoint_on_shutdown")
        con.execute("set wal_autocheckpoint = '1TB'")
        con.execute("insert into fct_metric_values values (1000, 'E01000')")
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    moved = []
    rename = Path.rename
    monkeypatch.setattr(Path, "rename", lambda self, target: moved.append(Path(target).name) or rename(self, target))
    backup.restore(made.path, tmp_path / "restored")
    assert moved[-2:] == ["warehouse.duckdb.wal", "warehouse.duckdb"]


def test_a_backup_stopped_while_it_is_pruned_is_never_taken_for_a_complete_one(tmp_path, monkeypatch):
    # killed half-way through removing the oldest backup, it kept its manifest and its name:
    # listed as complete, found to lack files only when it was needed
    home = _home(tmp_path / "home")
    dest = tmp_path / "backups"
    first = backup.make(dest, keep=1, home=home, now=T0).path
    remove = shutil.rmtree

    def killed_half_way(path, *args, **kwargs):
        if Path(path).name.startswith(first.name):
            next(p for p in Path(path).rglob("*") if p.is_file() and p.name != "MANIFEST.json").unlink()
            raise KeyboardInterrupt
        return remove(path, *args, **kwargs)

    monkeypatch.setattr(backup.shutil, "rmtree", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        backup.make(dest, keep=1, home=home, now=T0 + dt.timedelta(days=30))
    assert first not in backup.complete_backups(dest)
    monkeypatch.setattr(backup.shutil, "rmtree", remove)
    backup.make(dest, keep=1, home=home, now=T0 + dt.timedelta(days=60))  # the next removes what is left of it
    assert sorted(p.name for p in dest.iterdir()) == [".backup.lock", "2027-01-14T09-00-00Z"]


def test_backups_made_in_the_same_second_are_ordered_as_made_and_the_newest_kept(tmp_path):
    # named <made at>, <made at>-2, ... <made at>-10: by name, -10 came before -2, so the
    # newest was taken for an old one (linked to the wrong backup, pruned first)
    home = _home(tmp_path / "home")
    dest = tmp_path / "backups"
    made = [backup.make(dest, keep=3, home=home, now=T0).path for _ in range(11)]
    assert backup.complete_backups(dest) == made[-3:]
    assert made[-1].name == "2026-11-15T09-00-00Z-11"


@pytest.mark.parametrize("value", ["-1", "true", "2.5"])
def test_keep_below_zero_a_boolean_or_a_fraction_is_refused_in_one_line(tmp_path, monkeypatch, value):
    # keep: -1 pruned complete_backups(dest)[:1], the oldest backup, on every run (the one just
    # made, the first time); keep: true kept one backup
    from carewatch import paths

    config = tmp_path / "config"
    config.mkdir()
    (config / "backup.yaml").write_text(f"keep: {value}\n")
    monkeypatch.setattr(paths, "config_dir", lambda: config)
    with pytest.raises(backup.CarewatchError, match=r"backup.yaml: keep must be a whole number, 0 or more"):
        backup.keep_default()


def test_a_backup_into_the_home_itself_is_refused(tmp_path):
    home = _home(tmp_path / "home")
    with pytest.raises(backup.BackupError, match="is inside the home it would back up"):
        backup.make(home, keep=0, home=home, now=T0)
    assert not list(home.glob("2026-*"))


def test_an_alert_sent_while_the_home_is_backed_up_is_left_out_not_a_failure(tmp_path, monkeypatch):
    # the outbox sends (and deletes) an alert while a backup reads the home: that file is no
    # longer part of the home; the backup is made without it and checks
    home = _home(tmp_path / "home")
    alert = home / "outbox/20181115T090000000000-abc.json"
    hashed = backup.sha256_file

    def sent_meanwhile(path):
        if Path(path) == alert:
            alert.unlink()
        return hashed(path)

    monkeypatch.setattr(backup, "sha256_file", sent_meanwhile)
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    monkeypatch.setattr(backup, "sha256_file", hashed)
    assert not (made.path / "outbox/20181115T090000000000-abc.json").exists()
    assert made.files == 9  # the ten files of the first test but the alert
    backup.check(made.path)


def test_a_folder_named_like_a_backup_without_a_manifest_is_not_taken_for_one(tmp_path):
    # a backup whose MANIFEST.json was lost: not listed (not the previous backup to link to,
    # nor counted by keep), so the next backup is made, and it is not removed by pruning
    home = _home(tmp_path / "home")
    dest = tmp_path / "backups"
    stray = dest / "2026-11-14T09-00-00Z"
    (stray / "reports").mkdir(parents=True)
    (stray / "reports" / "report.html").write_bytes(b"<html>")
    made = backup.make(dest, keep=1, home=home, now=T0)
    assert backup.complete_backups(dest) == [made.path]
    assert made.removed == [] and stray.is_dir()


def test_a_damaged_refused_download_fails_the_backup_naming_it(tmp_path):
    # refused/ is named by sha256 too: kept as evidence of what the publisher served
    home = _home(tmp_path / "home")
    refused = home / "refused/dtoc_la/2018-04" / (hashlib.sha256(b"<html>").hexdigest() + ".xls")
    refused.write_bytes(b"<html> damaged")
    with pytest.raises(backup.BackupError, match=r"refused/dtoc_la/2018-04/[0-9a-f]{64}\.xls does not hash to its name"):
        backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    assert backup.complete_backups(tmp_path / "backups") == []


def test_what_a_stopped_restore_left_is_not_carried_into_the_next_restore(tmp_path):
    # a restore stopped while copying (perhaps of another backup) left files in .restore.partial:
    # the next restore starts again, so the home holds the backup's files and no others
    home = _home(tmp_path / "home")
    made = backup.make(tmp_path / "backups", keep=0, home=home, now=T0)
    new = tmp_path / "new-home"
    (new / ".restore.partial" / "reports").mkdir(parents=True)
    (new / ".restore.partial" / "reports" / "from-another-backup.html").write_bytes(b"<html>other</html>")
    backup.restore(made.path, new)
    assert _kept(new) == _kept(home)
    assert not (new / "reports" / "from-another-backup.html").exists()
