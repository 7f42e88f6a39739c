"""Is the pipeline current? ``carewatch status``: one screen for the data engineer on duty, and
an exit code for a monitor (0: nothing needs attention; 1: something does; 2: it could not tell,
e.g. the warehouse busy with a load: what it can tell without the warehouse, the outbox and the
backups, is still shown).

It reads the warehouse read-only and the home's folders, and writes nothing. What needs
attention, each one line:

- a period a monthly run at the given date handles (:func:`carewatch.pipeline.periods_to_process`)
  that is not held after its due date plus the source's grace days: what that run fails as
  OVERDUE (emailed at most once every ``overdue_repeat_days``, so it stays in sight here); or,
  whatever the date, whose latest download was refused (a web page, a damaged file: not
  "not published yet") or failed (the site or the connection, after the retries);
- a held period whose re-check the publisher's site now refuses (a 404, a web page: emailed
  once, then skipped by later runs, :func:`carewatch.summary.outstanding_refusals`);
- a file in quarantine that no later good version of its period has replaced, or a warehouse
  build refused by a cross-source check (``check:<name>``);
- a file the parser refused that nothing good has replaced
  (:func:`carewatch.pipeline.unparsed_files`: later runs skip it without failing again);
- alerts waiting in the outbox: the mail server did not take them, so nobody has been told;
- no analysis for more than ``analysis_max_age_days`` (``config/status.yaml``);
- the latest backup attempt failed; or none made in ``backup_max_age_days`` in the folder of
  backups (``CAREWATCH_BACKUP_DIR``, else the folder the home's latest ``carewatch backup DEST``
  wrote to; with neither, backups are "not configured");
- no warehouse, though the raw store holds files (deleted or lost: restore a backup); a home
  never run, with neither, is "cannot tell" (exit 2), as a busy warehouse is.

Ages are measured against the clock; which periods are due, against the date given (default
today; on the embedded samples, the date the home's latest ``carewatch run`` ran for).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from carewatch import paths
from carewatch.errors import CarewatchError

LIMITS = ("analysis_max_age_days", "backup_max_age_days")


@dataclass
class Status:
    as_of: dt.date
    lines: list[str] = field(default_factory=list)  # what it found, for the screen
    attention: list[str] = field(default_factory=list)  # what needs attention, one line each
    unknown: str | None = None  # why it could not tell (the warehouse busy with a load): exit 2 unless attention

    def say(self, line: str) -> None:
        self.lines.append(line)

    def flag(self, line: str) -> None:
        self.attention.append(line)


def limits() -> dict[str, int]:
    """``config/status.yaml``: the ages (days) past which a missing analysis or backup needs attention."""
    import yaml

    config_file = paths.config_dir() / "status.yaml"
    config = yaml.safe_load(config_file.read_text()) or {}
    out = {}
    for key in LIMITS:
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CarewatchError(f"{config_file}: {key} must be a whole number of days, 1 or more, not {value!r}")
        out[key] = value
    unknown = sorted(set(config) - set(LIMITS))
    if unknown:
        raise CarewatchError(f"{config_file}: unknown key(s) {', '.join(unknown)} (known: {', '.join(LIMITS)})")
    return out


def default_as_of() -> dt.date:
    """Today; on the embedded samples (which end long before today), the date the home's latest
    ``carewatch run`` ran for (``--logical-date``; before any, ``embedded.run_date``)."""
    from carewatch import runner, sources

    if sources.environment() != "embedded":
        return dt.date.today()
    return runner.last_run_date() or sources.embedded_run_date().date()


def _age(now: dt.datetime, then: dt.datetime) -> str:
    days = (now - then).total_seconds() / 86400
    if days >= 1.5:
        return f"{days:.0f} days ago"
    if days * 24 >= 1.5:
        return f"{days * 24:.0f} hours ago"
    minutes = round(max(days * 1440, 0))
    return f"{minutes} minute{'' if minutes == 1 else 's'} ago"


def _sources(con, status: Status, in_quarantine) -> None:
    from carewatch import fetch, pipeline, sources, warehouse

    has_manifest = warehouse.table_exists(con, "raw_manifest")
    has_log = warehouse.table_exists(con, "fetch_log")
    transient = fetch.transient_column(con) if has_log else "false"
    status.say("sources (periods a monthly run on this date handles):")
    for name, src in sources.catalogue().items():
        held = {p: (v, at) for p, v, at in con.execute(
            "select period, max(version), max(fetched_at) from raw_manifest where source = ? group by period",
            [name]).fetchall()} if has_manifest else {}
        # as the monthly run's plan decides (the same history, read from this connection)
        due = pipeline.periods_to_process(name, status.as_of, history=pipeline.fetch_history_in(con, name))
        missing = [p for p in due if p not in held]
        latest = max(held, key=lambda p: sources.period_start(name, p), default=None)
        if latest:
            words = [f"latest held {latest} (v{held[latest][0]}, fetched {held[latest][1]:%Y-%m-%d})"]
            words += [f"{period} v{version} {state}" for period, version, state in _set_aside(con, name, in_quarantine)]
        else:
            words = ["nothing held" if due else f"nothing due yet (the first, {src.available_from()}, is due "
                     f"{sources.due_date(name, src.available_from()):%Y-%m-%d})"]
        for period in missing:
            due_by = sources.due_date(name, period) + dt.timedelta(days=src.grace_days)
            # its latest attempt, if the download itself was refused (a web page, a damaged
            # file, the wrong publication...) or failed (the site or the connection, after the
            # retries): the run fails it for that, whatever the date
            last = con.execute(f"select attempted_at, coalesce(error, refusal, ''), outcome, {transient} "
                               "from fetch_log where source = ? and period = ? order by attempted_at desc limit 1",
                               [name, period]).fetchone() if has_log else None
            refused = last if last and last[2] == "refused" and not last[1].endswith(": overdue") else None  # not a 404 (OVERDUE)
            if refused and refused[3]:
                words.append(f"{period} FAILED ({refused[0]:%Y-%m-%d})")
                status.flag(f"{name} {period}: not held, its download on {refused[0]:%Y-%m-%d} failed: {refused[1][:120]} "
                            "(the site or the connection, after the retries: clear the fetch task to try again now, or "
                            "the next monthly run will)")
            elif refused:
                words.append(f"{period} REFUSED ({refused[0]:%Y-%m-%d})")
                status.flag(f"{name} {period}: not held, its download on {refused[0]:%Y-%m-%d} was refused: {refused[1][:120]} "
                            "(each monthly run fails it until a download is accepted)")
            elif status.as_of >= due_by:  # as the fetch decides: from that day, a 404 is OVERDUE
                words.append(f"{period} OVERDUE (due by {due_by:%Y-%m-%d})")
                status.flag(f"{name} {period}: not held, due by {due_by:%Y-%m-%d} (the monthly run fails it as OVERDUE)")
            else:
                words.append(f"{period} not published yet (due by {due_by:%Y-%m-%d})")
        if due and not missing:
            words.append("every period due held")
        status.say(f"  {name:<15} {'; '.join(words)}")


def _set_aside(con, source: str, in_quarantine) -> list[tuple[str, int, str]]:
    """The latest version of each of ``source``'s periods that the builds leave out: REJECTED
    (``carewatch reject``, with its reason) or QUARANTINED (its suite's blocking failures), as
    (period, version, words); what the source's line shows beside what is held. ``in_quarantine``:
    :func:`_in_quarantine`."""
    from carewatch import warehouse

    out = []
    if warehouse.table_exists(con, "rejected_versions"):
        out += [(p, v, f"REJECTED ({reason[:60]})") for p, v, reason in con.execute(
            "select period, version, any_value(reason) from rejected_versions r where source = ? and withdrawn_at is null "
            "and version = (select max(version) from raw_manifest m where m.source = r.source and m.period = r.period) "
            "group by all order by 1", [source]).fetchall()]
    rows = in_quarantine[in_quarantine["source"] == source]
    out += [(row.period, int(row.file_version), "QUARANTINED") for row in rows.itertuples()]
    return sorted(out)


def _in_quarantine(con):
    """The files in quarantine that no later version replaced (read once per status)."""
    from carewatch import validation

    quarantined = validation.quarantined(con)
    return quarantined[quarantined["superseded_by"].isna()]


def _refusals_and_quarantine(con, status: Status, in_quarantine) -> None:
    from carewatch import pipeline, summary

    for refusal in summary.outstanding_refusals(con):
        status.flag(f"{refusal.source} {refusal.period}: re-check refused since {refusal.since:%Y-%m-%d} "
                    f"({refusal.runs} run(s)): {refusal.error[:120]}; version {refusal.held} is kept")
    for row in in_quarantine.itertuples():
        if row.source.startswith("check:"):  # a warehouse check: the latest build was refused (cleared by one that passes)
            status.flag(f"warehouse build refused by {row.source} since {row.quarantined_at:%Y-%m-%d}: "
                        f"{str(row.blocking_failures)[:120]} (carewatch check, the Data Docs)")
            continue
        status.flag(f"{row.source} {row.period}: version {row.file_version} in quarantine since "
                    f"{row.quarantined_at:%Y-%m-%d} and not replaced (carewatch check, the Data Docs)")
    for u in pipeline.unparsed_files(con):  # skipped by later runs, as the summary's PARSE FAILED
        status.flag(f"{u.source} {u.period}: version {u.version} could not be parsed (since {u.failed_at:%Y-%m-%d}: "
                    f"{u.problem[:120]}) and nothing has replaced it; its figures are not loaded")


def _analysis(con, status: Status, now: dt.datetime, max_age: int) -> None:
    from carewatch import monthly_report, warehouse

    built = con.execute("select max(built_at) from warehouse_builds").fetchone()[0] \
        if warehouse.table_exists(con, "warehouse_builds") else None
    status.say(f"warehouse: last build {_age(now, built)} ({built:%Y-%m-%d %H:%M %Z})" if built else "warehouse: never built")
    # the latest analysis and the last month it reported (it reports several when a late DTOC
    # month held them back, all with the same analysed_at)
    last = con.execute("select analysed_at, max(month) from analysis_runs group by analysed_at "
                       "order by analysed_at desc limit 1").fetchone() \
        if warehouse.table_exists(con, "analysis_runs") else None
    if last is None:
        status.say("analysis: none yet")
        status.flag("no analysis has run: the metrics DAG has not finished once")
        return
    report = monthly_report.latest_report()
    status.say(f"analysis: last {_age(now, last[0])} ({last[0]:%Y-%m-%d %H:%M %Z}), reporting {last[1]:%B %Y}"
               + (f"; report {report}" if report else ""))
    if now - last[0] > dt.timedelta(days=max_age):
        status.flag(f"no analysis for {(now - last[0]).days} days (more than {max_age}: config/status.yaml): "
                    "has the metrics DAG run this month?")


def _alerts(status: Status, now: dt.datetime) -> None:
    from carewatch import alerts

    waiting = alerts.outbox()
    if not waiting:
        status.say("alerts: none waiting")
        return
    try:  # the oldest may be sent (or set aside, if damaged) by a run meanwhile: then no date
        oldest = json.loads(waiting[0].read_text()).get("kept_at")
    except (OSError, ValueError, AttributeError):
        oldest = None
    since = f" since {oldest[:10]}" if isinstance(oldest, str) and oldest else ""
    status.say(f"alerts: {len(waiting)} waiting in {paths.outbox_dir()}{since}")
    status.flag(f"{len(waiting)} alert email(s) waiting{since}: the mail server did not take them, so nobody was told "
                "(the task logs say why; each run sends them first)")


def _backups(status: Status, now: dt.datetime, max_age: int) -> None:
    from carewatch import backup

    attempt = backup.last_attempt()
    if attempt and attempt.get("outcome") == "failed":  # not followed by one that made a backup
        status.flag(f"the last backup attempt, {attempt['attempted_at']:%Y-%m-%d %H:%M %Z}, failed: "
                    f"{str(attempt.get('error'))[:160]} (the backup DAG's log; carewatch backup to try again)")
    dest = backup.configured_destination()
    if dest is None and attempt and attempt.get("destination"):  # backups made by hand or cron: DEST given
        dest = Path(attempt["destination"])
    if dest is None:
        status.say("backups: not configured (CAREWATCH_BACKUP_DIR unset, and no carewatch backup DEST on this home)")
        return
    made = backup.complete_backups(dest)
    if not made:
        status.say(f"backups: none in {dest}")
        status.flag(f"no backup in {dest} (the backup DAG runs after each monthly report)")
        return
    try:
        newest = backup.made_at(made[-1])
    except backup.BackupError as err:  # a damaged manifest: that backup fails its check, and any restore from it
        status.say(f"backups: {len(made)} in {dest}, newest {made[-1].name} (unreadable)")
        status.flag(f"{err} (carewatch restore --check {made[-1]})")
        return
    status.say(f"backups: {len(made)} in {dest}, newest {made[-1].name} ({_age(now, newest)})")
    if now - newest > dt.timedelta(days=max_age):
        status.flag(f"the newest backup is {(now - newest).days} days old (more than {max_age}: config/status.yaml)")


def _warehouse_lost(status: Status) -> bool:
    """No warehouse, though the raw store holds files: it was deleted or lost (a home never run has
    neither). What it held (which version was loaded when, rejections, the fetch history, what was
    reported) is in the backups, not in the raw store: a run would start a new warehouse without it."""
    from carewatch import pipeline

    held = pipeline.lost_warehouse_files()
    if not held:
        return False
    db, raw = paths.warehouse_path(), paths.raw_store_dir()
    status.say(f"warehouse: none at {db}, though the raw store holds {held} file(s)")
    status.flag(f"no warehouse at {db}, though {raw} holds {held} file(s): it was lost; restore the latest good backup "
                "(carewatch restore BACKUP --to NEW_HOME) before any run, which would start a new warehouse "
                "without its history (versions loaded when, rejections, what was reported)")
    return True


def _verify_raw(con, status: Status) -> None:
    """``--verify``: every file of the raw store (and of the refused downloads) hashes to the
    sha256 it is named by, and every file ``raw_manifest`` names is in this home's raw store."""
    from carewatch import rawstore, warehouse

    damaged = [p for root in (paths.raw_store_dir(), paths.refused_dir()) for p in rawstore.damaged_files(root)]
    for path in damaged:
        status.flag(f"{path.relative_to(paths.home())} does not hash to its name: damaged; the backups hold it as it "
                    "was (carewatch restore --check BACKUP, then copy the file back)")
    named = con.execute("select source, period, raw_path from raw_manifest").fetchall() \
        if warehouse.table_exists(con, "raw_manifest") else []
    missing = [rawstore.in_this_store(s, p, r) for s, p, r in named if not rawstore.in_this_store(s, p, r).is_file()]
    for path in missing:
        status.flag(f"{path.relative_to(paths.home())} is missing from the raw store, though the warehouse holds it "
                    "(the backups hold it)")
    status.say(f"raw store: every file read, {len(damaged)} damaged; {len(missing)} of the {len(named)} the warehouse names missing")


def status(as_of: dt.date | None = None, now: dt.datetime | None = None, verify: bool = False) -> Status:
    """What :mod:`carewatch.status` checks, on the home's warehouse (read-only); ``verify`` also
    reads every raw file (:func:`_verify_raw`)."""
    from carewatch import warehouse

    age_limits = limits()
    now = now or dt.datetime.now(dt.timezone.utc)
    found = Status(as_of or default_as_of())
    if not _warehouse_lost(found):  # a home never run has no warehouse yet: connect says so (cannot tell)
        try:
            with warehouse.connect(read_only=True) as con:
                in_quarantine = _in_quarantine(con)
                _sources(con, found, in_quarantine)
                _refusals_and_quarantine(con, found, in_quarantine)
                _analysis(con, found, now, age_limits["analysis_max_age_days"])
                if verify:
                    _verify_raw(con, found)
        except warehouse.WarehouseBusy as err:  # a load or build writing it: what is outside it is still told
            found.unknown = str(err)
            found.say(f"warehouse: {err}")
    _alerts(found, now)
    _backups(found, now, age_limits["backup_max_age_days"])
    return found
