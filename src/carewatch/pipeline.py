"""What each Airflow task does, as plain importable functions.

The DAG files in ``dags/`` only wire these together; everything here is unit-testable
without Airflow. Heavy libraries (pandas, pyarrow, GX) are imported inside the functions
so that DAG parsing stays fast.

Stages of one source's ingest, per period:

1. :func:`periods_to_process` decides which periods a run handles, from its logical date
   (the period the monthly run publishes plus a short revision window) or from explicit
   ``from_period``/``to_period`` params (bootstrap and backfill).
2. :func:`fetch_period` downloads one period into the immutable raw store
   (``carewatch.fetch``); "not published yet" is a normal outcome, not an error.
3. :func:`parse_period` parses the raw file with the source's parser into the tidy schema
   and keeps it as Parquet beside the raw store, keyed by the raw file's sha256, so an
   unchanged publication is never parsed twice.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from carewatch import paths


@dataclass(frozen=True)
class ParsedFile:
    source: str
    period: str
    version: int
    sha256: str
    raw_path: str
    parsed_path: str
    rows: int
    reused: bool

    def to_dict(self) -> dict:
        return asdict(self)


def base_url() -> str | None:
    """Base URL of the embedded sample server for this run (set by ``carewatch run``)."""
    return os.environ.get("CAREWATCH_BASE_URL") or None


def periods_to_process(
    source: str,
    logical_date: dt.datetime | dt.date | None,
    from_period: str | None = None,
    to_period: str | None = None,
    bootstrap: bool = False,
    history: "FetchHistory | None" = None,
) -> list[str]:
    """Periods one run of ``source``'s ingest handles.

    - explicit ``from_period``/``to_period`` (backfill): every catalogue period in that range;
    - ``bootstrap`` (first run on a new machine): every period available in this environment
      that is due by the logical date;
    - otherwise (the monthly run): the latest period due by the logical date plus the
      source's revision window before it, so a monthly run costs the same however long the
      history is (conditional GET makes re-checking the window cheap); and before the window,
      every period due that the warehouse has never held (no version in ``raw_manifest``),
      from the first period this warehouse ever asked for (:func:`fetch_history`: what the
      bootstrap or backfill chose to load, never before ``available_from``), so a month still
      missing when it leaves the window is fetched if it appears and fails as OVERDUE while it
      does not (emailed at most once every ``overdue_repeat_days``, :mod:`carewatch.alerts`). Not for a source whose every release holds the earlier ones
      (``supersedes_earlier``: a later release replaces a missed one), nor, on the embedded
      samples, for periods due after ``samples_until`` (the samples never serve them).
    """
    from carewatch import sources

    src = sources.get(source)
    if from_period or to_period:
        from carewatch.errors import CarewatchError

        def start(period: str) -> dt.date:
            return sources.period_start(source, period)

        first = sources.check_period(source, from_period) if from_period else None
        last = sources.check_period(source, to_period) if to_period else None
        # outside what the catalogue says was ever published, every period would 404 and alert
        if first and start(first) < start(src.first_period):
            raise CarewatchError(f"{source}: from_period {first} is before the first period published ({src.first_period}; config/sources.yaml)")
        if last and src.last_period and start(last) > start(src.last_period):
            raise CarewatchError(f"{source}: to_period {last} is after the last period published ({src.last_period}; config/sources.yaml)")
        if first and last and start(first) > start(last):
            raise CarewatchError(f"{source}: from_period {first} is after to_period {last}: nothing to backfill")
        if last and not first and start(last) < start(src.available_from()):
            raise CarewatchError(f"{source}: to_period {last} is before the first period available in the "
                                 f"{sources.environment()} environment ({src.available_from()}); give from_period too")
        if first and not last and src.last_period and start(first) > start(src.last_period):
            raise CarewatchError(f"{source}: from_period {first} is after the last period published ({src.last_period})")
        return sources.periods(source, first or src.available_from(), last or src.last_period)
    if logical_date is None:
        raise ValueError("a run needs a logical date or explicit from_period/to_period")
    when = logical_date.date() if isinstance(logical_date, dt.datetime) else logical_date
    due = [p for p in sources.periods(source, src.available_from(), src.last_period) if sources.due_date(source, p) <= when]
    if bootstrap:
        return due
    window = due[-(src.revision_window + 1):]
    if src.supersedes_earlier or not window:
        return window
    history = fetch_history(source) if history is None else history
    if history.first_asked is None:  # nothing asked yet: nothing can have been missed
        return window
    start = max(sources.period_start(source, history.first_asked), sources.period_start(source, src.available_from()))
    until = sources.embedded_samples_until() if sources.environment() == "embedded" else when
    missing = [p for p in due[:-len(window)] if sources.period_start(source, p) >= start and p not in history.held
               and sources.due_date(source, p) <= until]
    return missing + window


def lost_warehouse_files() -> int:
    """How many files the raw store holds when the home has no warehouse (0 when it has one, or
    holds neither, a home never run): the warehouse was deleted or lost, and what it held is in
    the backups, not in the raw store."""
    raw = paths.raw_store_dir()
    if paths.warehouse_path().exists() or not raw.is_dir():
        return 0
    return sum(1 for f in raw.rglob("*") if f.is_file())


def refuse_lost_warehouse() -> None:
    """A one-line :class:`CarewatchError` when the home has no warehouse though its raw store holds
    files: the warehouse was deleted or lost. A run would start a new one without what it held
    (which version was loaded when, the rejections, the fetch history, what was reported), and
    the backup after it would save that as the newest backup: restore one instead (README
    "Backups"). A home never run, with neither, starts its warehouse as usual."""
    from carewatch.errors import CarewatchError

    if not lost_warehouse_files():
        return
    db, raw = paths.warehouse_path(), paths.raw_store_dir()
    raise CarewatchError(f"no warehouse at {db}, though {raw} holds files: it was lost; restore the latest good "
                         "backup (carewatch restore BACKUP --to NEW_HOME) rather than start a new warehouse without "
                         "its history (to start afresh on purpose, move the raw store aside first)")


@dataclass(frozen=True)
class FetchHistory:
    """What the warehouse knows of a source's periods: those with a version in ``raw_manifest``
    (held: loaded, quarantined or rejected alike), and the earliest period it ever asked for
    (``fetch_log`` or ``raw_manifest``), None when it never asked for one."""

    held: frozenset[str]
    first_asked: str | None


def fetch_history(source: str) -> FetchHistory:
    """:class:`FetchHistory` of ``source`` from the warehouse (none yet: nothing asked). Opened
    as the fetch opens it, as a writer that waits its turn: a reader would be refused at once
    while another source's load writes."""
    from carewatch import warehouse

    if not paths.warehouse_path().exists():
        return FetchHistory(frozenset(), None)
    with warehouse.connect() as con:
        return fetch_history_in(con, source)


def fetch_history_in(con, source: str) -> FetchHistory:
    """:class:`FetchHistory` of ``source`` on an open warehouse connection (``carewatch status``
    reads it read-only, as the monthly run's plan would find it)."""
    from carewatch import sources, warehouse

    held = set()
    asked = set()
    if warehouse.table_exists(con, "raw_manifest"):
        held = {p for (p,) in con.execute("select distinct period from raw_manifest where source = ?", [source]).fetchall()}
    if warehouse.table_exists(con, "fetch_log"):
        asked = {p for (p,) in con.execute("select distinct period from fetch_log where source = ?", [source]).fetchall()}
    first = min(held | asked, key=lambda p: sources.period_start(source, p), default=None)
    return FetchHistory(frozenset(held), first)


def fetch_period(source: str, period: str, as_of: dt.date | None = None, run_id: str | None = None) -> dict:
    """Fetch one publication into the raw store; returns the fetch result as a dict.

    ``as_of`` (the run's logical date) decides whether a 404 means "not published yet";
    ``run_id`` (the DAG run) is logged with the attempt and lets a held period refused as at
    the end of an earlier run be skipped (:class:`carewatch.errors.AlreadyRefused`) rather
    than emailed every month.
    """
    from carewatch import fetch

    result = fetch.fetch(source, period, base_url=base_url(), as_of=as_of, run_id=run_id)
    return result.to_dict()


def parse_period(fetched: dict) -> dict:
    """Parse the raw file of one fetched period into tidy Parquet (reused if already parsed).

    A file the parser refuses raises :class:`carewatch.errors.ParseError` (the task fails and
    emails) and is remembered beside where its Parquet would be (``<name>.failed``): met again
    by a later run (the revision window re-checks a month for a year) it raises
    :class:`carewatch.errors.AlreadyUnparseable`, and the task is skipped, not failed again.
    """
    from carewatch import parsers, sources
    from carewatch.errors import AlreadyUnparseable, ParseError

    source, period, sha256 = fetched["source"], fetched["period"], fetched["sha256"]
    target = paths.parsed_path(source, period, sha256)
    failed = target.with_suffix(".failed")
    if target.exists():
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(target).metadata.num_rows
        reused = True
    elif not Path(fetched["raw_path"]).is_file():  # the raw store, not the file: not remembered
        raise FileNotFoundError(f"{source} {period}: raw file {fetched['raw_path']} is missing from the raw store")
    elif failed.exists():
        raise AlreadyUnparseable(source, period, str(failed), failed.read_text().strip())
    else:
        try:
            frame = parsers.parse(sources.get(source).parser, fetched["raw_path"], period)
        except ParseError as err:
            err.period = err.period or period
            failed.parent.mkdir(parents=True, exist_ok=True)
            failed.write_text(f"{err}\n")
            raise
        _write_parquet_atomically(frame, target)
        rows = len(frame)
        reused = False
    return ParsedFile(
        source=source,
        period=period,
        version=int(fetched["version"]),
        sha256=sha256,
        raw_path=str(fetched["raw_path"]),
        parsed_path=str(target),
        rows=rows,
        reused=reused,
    ).to_dict()


@dataclass(frozen=True)
class UnparsedFile:
    """A fetched file the parser refused (its ``.failed`` marker, see :func:`parse_period`)."""

    source: str
    period: str
    version: int  # the latest version of the period holding these bytes
    sha256: str
    failed_at: dt.datetime  # when the marker was written (UTC)
    problem: str  # the ParseError's text, without the raw file's path
    current_parser: bool  # False: refused by an earlier parser (or reading library); not parsed since


def parse_problem(marker: Path) -> str:
    """What a ``.failed`` marker (:func:`parse_period`) says the parser refused: the
    ParseError's first line without the raw file's path."""
    import re

    text = marker.read_text().strip().splitlines()[0] if marker.stat().st_size else ""
    return re.sub(r"^.*?: cannot parse as ", "", text)


def unparsed_files(con) -> list[UnparsedFile]:
    """The fetched files whose parse failed and that nothing good has replaced, by source and
    period: a file with a ``.failed`` marker (of the current parser, or of an earlier one when
    the current parser has not parsed it since: a file outside the revision window is only
    parsed again by a backfill) and no Parquet of the current parser, unless a later version of
    its period is loaded (for a source that does not load to the warehouse: parsed and not
    quarantined). ``con``: the warehouse, for ``raw_manifest`` (which version a file is) and the
    landing tables. The run summary lists them beside the quarantined files."""
    from carewatch import sources, warehouse

    root = paths.home() / "parsed"
    if not root.is_dir() or not warehouse.table_exists(con, "raw_manifest"):
        return []
    found: dict[tuple[str, str, str], list[Path]] = {}  # one file's markers, one per parser that refused it
    for marker in root.glob("*/*/*.failed"):
        source, period, sha256 = marker.parent.parent.name, marker.parent.name, marker.name.split("-", 1)[0]
        if source in sources.catalogue():  # (a source no longer catalogued: nothing runs it)
            found.setdefault((source, period, sha256), []).append(marker)
    out = []
    for (source, period, sha256), candidates in sorted(found.items()):
        parsed = paths.parsed_path(source, period, sha256)
        current = parsed.with_suffix(".failed")
        marker = current if current in candidates else max(candidates, key=lambda m: m.stat().st_mtime)
        if parsed.exists():  # parsed since (a parser fix)
            continue
        versions = dict(con.execute("select sha256, max(version) from raw_manifest where source = ? and period = ? group by sha256",
                                    [source, period]).fetchall())
        if sha256 not in versions:  # not a file the manifest knows (a store copied without its warehouse)
            continue
        version = versions[sha256]
        if _good_later_version(con, source, period, version, versions):
            continue
        out.append(UnparsedFile(
            source=source, period=period, version=int(version), sha256=sha256,
            failed_at=dt.datetime.fromtimestamp(marker.stat().st_mtime, dt.timezone.utc),
            problem=parse_problem(marker), current_parser=marker == current))
    return out


def _good_later_version(con, source: str, period: str, version: int, versions: dict[str, int]) -> bool:
    """Whether a version of ``period`` later than ``version`` is loaded (a source that does not
    load: parsed by the current parser and not quarantined)."""
    from carewatch import sources, warehouse

    if sources.get(source).loads_to_warehouse:
        table = warehouse.land_table(source)
        return warehouse.table_exists(con, table) and con.execute(
            f"select count(*) from {table} where _period = ? and _version > ?", [period, version]).fetchone()[0] > 0
    quarantined = set()
    if warehouse.table_exists(con, "quarantine"):
        quarantined = {sha for (sha,) in con.execute("select sha256 from quarantine where source = ? and period = ?",
                                                     [source, period]).fetchall()}
    return any(later > version and sha not in quarantined and paths.parsed_path(source, period, sha).exists()
               for sha, later in versions.items())


def _write_parquet_atomically(frame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)


def as_list(mapped) -> list[dict]:
    """What a mapped task group hands its downstream task, as a list: None when it expanded
    over no period, a lone dict (not a one-item list) under the scheduler when it expanded
    over one, else a sequence of results."""
    if mapped is None:
        return []
    if isinstance(mapped, dict):
        return [mapped]
    return [item for item in mapped if item is not None]


def summarise_ingest(source: str, parsed: list[dict]) -> dict:
    """Counts for one ingest run, kept as JSON under ``var/runs/ingest/`` for the run summary;
    also rebuilds the Data Docs index once per run when the run validated anything."""
    import json

    from carewatch import validation

    summary = {
        "source": source,
        "periods": sorted({p["period"] for p in parsed}),
        "files_parsed": sum(not p["reused"] for p in parsed),
        "files_unchanged": sum(p["reused"] for p in parsed),
        "validations_run": sum(bool(p.get("validated")) and not p.get("validation_reused") for p in parsed),
        "validations_reused": sum(bool(p.get("validation_reused")) for p in parsed),
        "loads_run": sum(p.get("load_skipped") is False for p in parsed),
        "loads_skipped": sum(bool(p.get("load_skipped")) for p in parsed),
        "rows": sum(p["rows"] for p in parsed),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if summary["validations_run"]:  # (a failed validation rebuilt it at once)
        validation.build_data_docs_index()
    target = paths.home() / "runs" / "ingest" / f"{source}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary, indent=2))
    return summary


def validate_period(parsed: dict, task_url: str | None = None) -> dict:
    """Run the source's expectation suite on the parsed period and record the results.

    Every result goes to ``validation_results`` and to the Data Docs site. Raises
    :class:`carewatch.errors.QualityError` when a blocking expectation fails: the period is
    quarantined (recorded, not loaded), the task fails and its failure callback emails the
    details. When only warnings failed, the batch goes on to load and a warning email is sent.

    A file that already passed this same validation (same raw file, and the same batch and
    expectations as GX would see now: :func:`carewatch.validation.prepare`) is not validated
    again: a rerun or the monthly re-check of the revision window costs no GX run and sends
    no repeat warning email. A change of suite, reference geography or history re-validates.
    A quarantined file validated again whose blocking failures (expectation, column,
    thresholds) were all reported since it was quarantined raises
    :class:`carewatch.errors.StillQuarantined` (the task is skipped, no second email; its
    quarantine row counts the attempt); a reason not reported before fails and emails again.
    """
    from carewatch import alerts, validation, warehouse
    from carewatch.errors import AlreadyQuarantined, QualityError, StillQuarantined

    validation.require_suite(parsed["source"])  # before any work: a missing suite is a broken deployment
    import pandas as pd

    frame = pd.read_parquet(parsed["parsed_path"])
    with warehouse.connect() as con:
        history = validation.warehouse_history(con, parsed["source"], parsed["period"])
        batch = validation.prepare(parsed["source"], frame, period=parsed["period"], history=history)
        earlier = validation.previous_result(con, batch, sha256=parsed["sha256"])
        if earlier is not None and not earlier.ok:  # failed the same validation before: still quarantined
            raise AlreadyQuarantined(parsed["source"], parsed["period"], earlier.reused_from,
                                     [r.line() for r in earlier.blocking_failures])
        if earlier is not None:
            print(f"{parsed['source']} {parsed['period']}: this file passed the same validation at {earlier.reused_from}; "
                  f"not validated again ({len(earlier.warnings)} warnings, already reported)")
            return {**parsed, "validated": True, "validation_reused": True, "warnings": len(earlier.warnings),
                    "docs_url": earlier.docs_url}
        quarantined = validation.quarantined_since(con, parsed["source"], parsed["period"], parsed["sha256"])
        report = validation.run(batch, data_docs=True, run_name=f"{parsed['source']} {parsed['period']} v{parsed['version']}")
        validation.store(con, report, file_version=parsed["version"], sha256=parsed["sha256"], parsed_path=parsed["parsed_path"])
    if not report.ok:
        validation.build_data_docs_index()  # the failure is on the site's front page at once
        if quarantined is not None and validation.failure_identity(report) <= quarantined[1]:
            # e.g. an earlier period was revised: these failures were emailed while it was quarantined
            raise StillQuarantined(parsed["source"], parsed["period"], quarantined[0],
                                   [r.line() for r in report.blocking_failures])
        raise QualityError(parsed["source"], parsed["period"], [r.line() for r in report.blocking_failures],
                           report=report, file_version=parsed["version"], sha256=parsed["sha256"], raw_path=parsed["raw_path"])
    alerts.notify_warnings(report, file_version=parsed["version"], sha256=parsed["sha256"], task_url=task_url, raw_path=parsed["raw_path"])
    return {**parsed, "validated": True, "validation_reused": False, "warnings": len(report.warnings), "docs_url": report.docs_url}


def load_period(parsed: dict) -> dict:
    """Load one parsed period into its landing table, atomically (one writer: the pool).

    A version already loaded from this same file is left as it is (``warehouse.load_parsed``).
    """
    from carewatch import sources, warehouse

    if not sources.get(parsed["source"]).loads_to_warehouse:
        return {**parsed, "loaded_rows": 0}
    with warehouse.connect() as con:
        load = warehouse.load_parsed(
            con,
            source=parsed["source"],
            period=parsed["period"],
            version=parsed["version"],
            sha256=parsed["sha256"],
            parsed_path=parsed["parsed_path"],
        )
    if load.skipped:
        print(f"{parsed['source']} {parsed['period']} v{parsed['version']}: already loaded from this file; left as it is")
    return {**parsed, "loaded_rows": load.rows, "load_skipped": load.skipped}


def build_warehouse(task_url: str | None = None) -> dict:
    """Rebuild reference tables and every SQL model in one transaction, then run the warehouse
    checks (``include/sql/checks`` against their suites) before committing; row counts per model.

    A blocking check failure rolls the whole build back (readers keep the previous warehouse),
    records the results and raises :class:`carewatch.errors.QualityError` (the task's failure
    callback emails it); failed warning checks are recorded and emailed, and the build commits.
    A check whose rows and suite are unchanged since it last passed is not run, recorded or
    emailed again (:func:`carewatch.validation.check_warehouse` with ``reuse``).

    ``check_warnings_reported``: a warning row is emailed once, by the first build that
    **commits** with it, i.e. when readers see the gap. The warning rows that no longer fail
    are forgotten inside the build's transaction, so a rolled-back build forgets none (the
    warehouse it checked was never kept). A rolled-back build emails no warning-only check:
    its warnings describe a warehouse nobody reads, built with the version the operator is
    about to reject; the blocking check's email names those checks (their rows may explain the
    refusal), and such a check with rows not emailed before is not recorded either, so the next
    build runs it again and, if it commits with those rows, emails them.
    """
    from carewatch import validation, warehouse
    from carewatch.errors import QualityError

    checked: list = []
    pending: list = []  # warning-only checks with a failing row not emailed before
    committed = False

    def check(con) -> None:
        checked.extend(validation.check_warehouse(con, data_docs=True, reuse=True))
        # inside the build's transaction: the warning rows that cleared are forgotten
        # (check_warnings_reported) only if the build commits; a rolled-back build leaves them
        pending.extend(new_check_warnings(con, [(report, digest) for report, digest in checked if report.reused_from is None]))
        blocking = [report for report, _ in checked if not report.ok]
        if blocking:
            first = blocking[0]
            raise QualityError(first.source, first.period, [r.line() for r in first.blocking_failures], report=first,
                               new_versions=warehouse.versions_new_since_last_build(con),
                               waiting_warnings=[(report.source, new) for report, _, new in pending])

    try:
        with warehouse.connect() as con:
            try:
                models = warehouse.build_models(con, check=check)
                committed = True
            finally:  # committed or rolled back: the checks run are recorded either way, but for
                # a rolled-back build's warning-only checks with rows never emailed (run again next build)
                waiting = set() if committed else {id(report) for report, _, _ in pending}
                fresh = [(report, digest) for report, digest in checked if report.reused_from is None]
                for report, digest in fresh:  # a reused check's results are already recorded
                    if id(report) not in waiting:
                        validation.store(con, report, file_version=0, sha256=digest, parsed_path=None)
                for report, _ in checked:  # passing as it passed before: a refused build's row goes
                    if report.reused_from is not None and report.ok:
                        validation.clear_check_quarantine(con, report.source)
                if fresh:
                    validation.build_data_docs_index()
            counts = {m: con.execute(f"select count(*) from {m}").fetchone()[0] for m in models}
    finally:  # after the writer's connection is closed: an email can take a while
        if committed:
            email_new_check_warnings(pending, task_url=task_url)
    return counts


def new_check_warnings(con, fresh: list) -> list:
    """(report, digest, new warning rows) of each freshly run warning-only check with a failing
    row not emailed before. Every such check is looked at, one whose warnings all cleared too
    (its rows are forgotten, so a gap that returns is new). A blocking check is emailed by the
    task's failure callback, its warnings with it."""
    from carewatch import validation

    return [(report, digest, new) for report, digest in fresh if report.ok and (new := validation.new_warnings(con, report))]


def email_new_check_warnings(pending: list, task_url: str | None = None) -> int:
    """Email each warehouse check whose warnings name a failing row (or value) not emailed
    before (the whole report, so the email shows every gap), then record those rows as
    reported; returns how many were emailed. ``pending``: (report, digest, new rows) from
    :func:`carewatch.validation.new_warnings`."""
    from carewatch import alerts, validation, warehouse

    sent = []
    for report, digest, new in pending:
        try:
            notified = alerts.notify_warnings(report, sha256=digest, task_url=task_url)
        except Exception as err:  # noqa: BLE001 - building the email failed: say so, and let a blocking error in flight stand
            print(f"{report.source}: could not build the warning email ({err.__class__.__name__}: {err})")
            notified = False
        if notified:
            sent.append((report, new))
        else:
            print(f"{report.source}: {len(new)} new warning rows not emailed (email_warnings is off in config/alerts.yaml, "
                  f"or the alert could be neither sent nor kept): the next build tries again")
    if sent:
        try:
            with warehouse.connect() as con:
                for report, new in sent:
                    validation.record_warnings_reported(con, report, new)
        except Exception as err:  # noqa: BLE001 - the email went out; without the record the next build emails again
            print(f"could not record the warning rows emailed ({err}): the next build emails them again")
    return len(sent)


def analyse() -> dict:
    """Rankings, similar areas, target tracking and review flags; row counts per table. The
    methodology config is checked first, every file (a :class:`ConfigError` lists every problem)."""
    from carewatch import analysis, warehouse
    from carewatch.methodology import config_check

    config_check.check_all()
    with warehouse.connect() as con:
        tables = analysis.run(con)
    return {name: len(frame) for name, frame in tables.items()}


def write_report() -> str:
    """The monthly HTML report of each month the analysis reported, with the tables behind
    it (one month, or each month a late DTOC month held back; a month whose report is there
    with the same figures is not written again); returns the latest report's path. It
    describes the config the analysis recorded (:func:`carewatch.provenance.analysed`), not
    ``config/`` as it is now: an edit since is for the next analysis to check; a warehouse that
    recorded none is described with the files, checked by their loaders (:class:`ConfigError`)."""
    from carewatch import monthly_report, warehouse

    with warehouse.connect(read_only=True) as con:
        reports = monthly_report.write_reports(con)
    for month, report, written in reports:  # the task log says what this run did with each
        print(monthly_report.what_became_of(month, report, written))
    path = reports[-1][1]
    monthly_report.record_latest(path)
    return str(path)
