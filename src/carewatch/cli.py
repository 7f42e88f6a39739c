"""The ``carewatch`` command-line tool for data engineers.

Verbs:
  parse SOURCE FILE [--period P]     parse a local publication with the DAG's parser; tidy CSV to stdout
  validate SOURCE FILE [--period P]  run the source's Great Expectations suite on a local file (exit 1 if blocking)
  hes-metrics EXTRACT [--from --to]  hospital metrics per HWB area and month from a HES APC extract
  as-of AREA PERIOD --as-of DATE     what the warehouse reported for an area and month as of a date
  check NAME [--rows | --failing]    run a warehouse check (include/sql/checks) on the warehouse; writes nothing
  rank --methodology NAME [--month YYYY-MM] [--compare] [--flags] [--csv FILE]
                                     preview a methodology file: the month's league table (vs the published one,
                                     and the review flags it would change); read-only, writes nothing
  reject SOURCE PERIOD --version N --reason R   leave a loaded version out of the builds (--withdraw undoes)
  samples [--out DIR]                regenerate the embedded sample publications (deterministic)
  samples --hes-apc FILE             write a synthetic record-level HES APC extract for hes-metrics
  serve-samples [--port N]           serve the embedded samples over HTTP in the foreground
  run                                the monthly pipeline end to end through Airflow on the embedded samples
  check-config                       check the methodology config (metrics, methodology, flags, targets, peers); exit 1 if wrong
  status [--as-of DATE]              is it current? periods overdue, refusals, quarantine, unsent alerts, last analysis
                                     and backup: exit 0 if nothing needs attention, 1 if something does
  backup [DEST] [--keep N]           back up the home's warehouse, raw store, reports and exports (DEST or CAREWATCH_BACKUP_DIR)
  restore BACKUP --to HOME | --check check a backup against its manifest; restore it as a new home
  airflow                            the Airflow UI locally (http://localhost:8080)
  airflow-cli ARGS...                Airflow's command line on the project's Airflow home (e.g. backfill create)

Errors print one line on stderr (``carewatch: <file>: ...``) and exit non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from carewatch.errors import CarewatchError


def _check_period(source: str, period: str | None) -> None:
    """``period`` written as the source's periods are (one-line error otherwise)."""
    from carewatch import sources

    if period is not None and source in sources.catalogue():
        sources.check_period(source, period)


def _check_moment(option: str, text: str) -> None:
    """A date (YYYY-MM-DD) or an ISO timestamp, or a one-line error naming ``option``."""
    from carewatch import warehouse

    try:
        warehouse.parse_moment(text)
    except ValueError:
        raise CarewatchError(f"{option} {text!r} is not a date (YYYY-MM-DD) or an ISO timestamp") from None


def _ui_port(text: str) -> int:
    """``airflow --port``: 1 to 65535 (the UI's address is printed and given to Airflow: no "any free port")."""
    port = int(text) if text.strip().lstrip("-").isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number for the Airflow UI (1 to 65535)")
    return port


def _keep(text: str) -> int:
    """``backup --keep``: 0 or more, or argparse's usage error."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of backups to keep (0 or more; 0 keeps all)")
    return int(text)


def _port(text: str) -> int:
    """``serve-samples --port``: 0 to 65535, or argparse's usage error (exit 2), not a traceback."""
    from carewatch import sample_server

    return sample_server.port_number(text)


def _cmd_parse(args: argparse.Namespace) -> int:
    from carewatch import parsers, sources

    parser_name = sources.parser_for(args.source)
    _check_period(args.source, args.period)
    frame = parsers.parse(parser_name, args.file, args.period)
    frame.to_csv(sys.stdout, index=False, date_format="%Y-%m-%d")
    return 0


def _validate_with_history(source: str, frame, period: str | None):
    """Validate against the warehouse's history when it can be read (read-only), else without."""
    import duckdb

    from carewatch import paths, validation, warehouse
    from carewatch.errors import SuiteError

    if period and paths.warehouse_path().is_file():
        try:
            with warehouse.connect(read_only=True) as con:
                return validation.validate(source, frame, period=period, history=validation.warehouse_history(con, source, period))
        except SuiteError:  # the suite itself is wrong: that, not the warehouse, is the one line to say
            raise
        except (CarewatchError, duckdb.Error) as err:  # the pipeline holds the file, or it is no warehouse
            print(f"note: warehouse not readable ({str(err).splitlines()[0][:200]}); checks against history skipped", file=sys.stderr)
    return validation.validate(source, frame, period=period)


def _cmd_validate(args: argparse.Namespace) -> int:
    from carewatch import parsers, sources

    parser_name = sources.parser_for(args.source)
    _check_period(args.source, args.period)
    frame = parsers.parse(parser_name, args.file, args.period)
    report = _validate_with_history(args.source, frame, args.period)
    for result in report.results:
        print(result.line())
    blocking, warnings = len(report.blocking_failures), len(report.warnings)
    print(f"{args.file} ({args.source} {args.period}): {len(report.results)} expectations, {blocking} blocking failures, {warnings} warnings")
    if blocking:  # the one line on stderr, as for any bad input; the details are above
        first = report.blocking_failures[0]
        more = f" (and {blocking - 1} more above)" if blocking > 1 else ""
        print(f"carewatch: {args.file}: fails the {args.source} suite for {args.period}: "
              f"{first.description or first.expectation}{more}", file=sys.stderr)
    return 0 if report.ok else 1


@contextlib.contextmanager
def _built_warehouse():
    """The warehouse, read-only; a file whose models were never built is a one-line error."""
    import duckdb

    from carewatch import paths, warehouse

    with warehouse.connect(read_only=True) as con:
        try:
            yield con
        except duckdb.CatalogException as err:
            first_line = str(err).splitlines()[0]
            raise CarewatchError(f"{paths.warehouse_path()}: the warehouse is not built yet (make run, or the metrics "
                                 f"DAG's build_warehouse): {first_line}") from None


def _cmd_reject(args: argparse.Namespace) -> int:
    """Reject (or with ``--withdraw``, restore) a loaded version: the next warehouse build uses
    the period's latest other version. Writes ``rejected_versions`` (one transaction)."""
    from carewatch import paths, sources, warehouse

    source = sources.get(args.source)
    _check_period(args.source, args.period)
    if not source.loads_to_warehouse:
        raise CarewatchError(f"{args.source} is not loaded to the warehouse (loads_to_warehouse: false): nothing to reject")
    if args.withdraw and (args.version is None or args.reason is not None or args.leave_empty):
        raise CarewatchError("--withdraw takes the --version whose rejection it withdraws, and no --reason or --leave-empty")
    if not paths.warehouse_path().exists():  # not an empty warehouse made here by connecting
        raise CarewatchError(f"no warehouse at {paths.warehouse_path()}: is CAREWATCH_HOME (or CAREWATCH_WAREHOUSE) the pipeline's?")
    with warehouse.connect() as con:
        if args.withdraw:
            done = warehouse.withdraw_rejection(con, source=args.source, period=args.period, version=args.version)
            what = f"{args.source} {args.period} v{done['version']}: rejection withdrawn"
        else:
            done = warehouse.reject_version(con, source=args.source, period=args.period, reason=args.reason or "",
                                            version=args.version, leave_empty=args.leave_empty)
            what = f"{args.source} {args.period} v{done['version']}: rejected ({args.reason.strip()})"
    in_use = f"v{done['in_use']}" if done["in_use"] is not None else "no version (the period has no data until a new version loads)"
    print(f"{what}; the next warehouse build uses {in_use}. Rebuild: trigger the metrics DAG "
          "(or clear its build_warehouse task); locally, carewatch run.")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from carewatch import validation

    names = [f.stem for f in validation.check_files()]
    if args.name not in names:
        raise CarewatchError(f"no warehouse check {args.name!r}; checks: {', '.join(names)}")
    with _built_warehouse() as con:
        frame = validation.check_rows(con, args.name)
    if args.rows:
        frame.to_csv(sys.stdout, index=False)
        return 0
    if args.failing:
        failing, whole_table = validation.failing_rows(args.name, frame)
        failing.to_csv(sys.stdout, index=False)
        for line in whole_table:  # no row shows these: say them
            print(f"carewatch: check {args.name}: the table as a whole: {line}", file=sys.stderr)
        if failing.empty and not whole_table:  # the header alone: say so, so that it is not taken for a failure to print
            print(f"carewatch: check {args.name}: no row fails (of {len(frame)})", file=sys.stderr)
        return 0
    report = validation.validate_check(args.name, frame)
    for result in report.results:
        print(result.line())
    blocking, warnings = len(report.blocking_failures), len(report.warnings)
    print(f"check {args.name}: {len(frame)} rows, {len(report.results)} expectations, {blocking} blocking failures, "
          f"{warnings} warnings" + ("; the rows: carewatch check " + args.name + " --failing" if blocking or warnings else ""))
    return 0 if report.ok else 1


def _cmd_rank(args: argparse.Namespace) -> int:
    """Rank a month with a candidate methodology file, read-only; exit 1 when the file does not load."""
    from pathlib import Path

    from carewatch import paths, preview, sources

    month = sources.month_start(args.month, "--month")  # YYYY-MM, or a one-line error
    csv = Path(args.csv).expanduser().resolve() if args.csv else None
    if csv is not None and csv.is_relative_to(paths.home()):
        raise CarewatchError(f"--csv {args.csv}: inside the pipeline's home ({paths.home()}: warehouse, reports, exports); "
                             "a preview writes nothing there: give a path elsewhere")
    try:
        result = preview.preview(args.methodology, month, compare=args.compare, with_flags=args.flags)
    except preview.MethodologyNotLoaded as err:
        print(f"carewatch: {err}", file=sys.stderr)
        return 1
    import pandas as pd

    scores = {"score": "{:.3f}".format, "published_score": "{:.3f}".format, "candidate_score": "{:.3f}".format}
    what = "preview, nothing written"
    if args.compare:
        table = preview.comparison(result)
        print(f"{result.month:%B %Y} (rolling 12 months): published {result.published_label} vs {result.methodology.label} "
              f"({what}); change = published rank - candidate rank, positive = up")
    else:
        table = preview.league_table(result)
        print(f"{result.month:%B %Y} (rolling 12 months) league table with {result.methodology.label} ({what})")
    print(table.to_string(index=False, na_rep="-", formatters={c: f for c, f in scores.items() if c in table}))
    if args.compare:
        print(preview.comparison_summary(result, table))
    if args.flags:
        changes = preview.flag_changes(result)
        print()
        if not changes.empty:
            with pd.option_context("display.max_colwidth", 120):
                print(changes.to_string(index=False))
        print(preview.flags_summary(result, changes))
    if csv is not None:
        table.to_csv(csv, index=False)
        print(f"wrote {csv}")
    return 0


def _cmd_hes_metrics(args: argparse.Namespace) -> int:
    from carewatch import hospital

    frame = hospital.hes_metrics(args.extract, args.from_period, args.to_period)
    frame.to_csv(sys.stdout, index=False)
    if frame.empty:  # the header alone: say why on stderr, so an empty extract is not taken for quiet months
        import pyarrow.parquet as pq

        episodes = pq.ParquetFile(args.extract).metadata.num_rows
        months = " in the months asked for" if args.from_period or args.to_period else ""
        why = (f"none of its {episodes:,} episodes is an emergency admission or discharge aged 65+{months}"
               if episodes else "it holds no episodes")
        print(f"carewatch: {args.extract}: no figures: {why}", file=sys.stderr)
    return 0


def _did_you_mean(asked: str, names: dict[str, str]) -> str:
    """'; did you mean ...' naming up to three areas whose name contains ``asked`` or is close
    to it ("Hackney": "City of London and Hackney"), or nothing."""
    import difflib

    by_name = {name.lower(): f"{name} ({code})" for code, name in names.items()}
    found = sorted(label for name, label in by_name.items() if asked.lower() in name)
    found = found or [by_name[name] for name in difflib.get_close_matches(asked.lower(), list(by_name), n=3, cutoff=0.75)]
    return f"; did you mean {' or '.join(found[:3])}?" if found and len(found) <= 3 else ""


def _cmd_as_of(args: argparse.Namespace) -> int:
    import datetime as dt

    from carewatch import sources, warehouse

    _check_moment("--as-of", args.as_of)
    month = sources.month_start(args.period, "period")  # YYYY-MM, or a one-line error
    with _built_warehouse() as con:
        # the areas the warehouse reports (aliases and recoded councils report under one code)
        reported = {code for (code,) in con.execute("select distinct area_code from fct_metric_values").fetchall()}
        names = warehouse.area_names(con)
        if args.area in reported:
            area = args.area
        else:
            matches = sorted(code for code in reported if names.get(code, "").lower() == args.area.lower())
            if len(matches) > 1:
                raise CarewatchError(f"area name {args.area!r} is ambiguous: give its code ({', '.join(matches)})")
            if not matches:
                raise CarewatchError(f"unknown area {args.area!r}: give an HWB area code (E08000009) or name (Trafford), "
                                     f"or England{_did_you_mean(args.area, {code: names.get(code, code) for code in reported})}")
            area = matches[0]
        metrics = [m for (m,) in con.execute("select metric_id from ref_metrics order by metric_id").fetchall()]
        if args.metric is not None and args.metric not in metrics:
            raise CarewatchError(f"unknown metric {args.metric!r}; metrics: {', '.join(metrics)}")
        first_load, first_build = warehouse.first_loaded_at(con), warehouse.first_built_at(con)
        period_loaded = warehouse.first_loaded_at(con, args.period)
        # which build first read it, where builds were recorded from before it was loaded (in a
        # warehouse of an earlier release, an earlier unrecorded build may have)
        recorded = warehouse.builds_recorded_from(con)
        builds_known = period_loaded is not None and recorded is not None and recorded <= period_loaded
        period_built = warehouse.first_built_at(con, after=period_loaded) if builds_known else None
        cutoff = warehouse.as_of_cutoff(con, args.as_of)
        nothing_yet = warehouse.reported_cutoff(con, cutoff) == warehouse.NOTHING_REPORTED
        # the month itself, the rolling year ending in it (the dashboard's figure) and the
        # financial year holding it (ASCOF's figures are yearly)
        periods = {"month": month, "rolling_12m": month,
                   "financial_year": dt.date(sources.financial_year_start(month), 4, 1)}
        wanted = [args.period_type] if args.period_type else list(periods)
        with warehouse.as_of(con, args.as_of) as then:
            frame = then.execute(
                """
                select area_code, period_type, period_start, period_end, metric_id, numerator, denominator, value,
                       ci_lower, ci_upper, array_to_string(source_files, ';') as source_files
                from fct_metric_values
                join (select unnest(?) as period_type, unnest(?) as period_start) as asked using (period_type, period_start)
                where area_code = ? and (metric_id = base_metric_id or ?) and (? is null or base_metric_id = ?)
                order by metric_id, list_position(?, period_type)
                """,
                [wanted, [periods[p] for p in wanted], area, args.breakdowns, args.metric, args.metric, list(periods)],
            ).df()
    if frame.empty:
        if nothing_yet and first_build is not None:
            why = f"; the warehouse was first built at {first_build:%Y-%m-%d %H:%M} UTC"
        elif first_load is not None and cutoff <= first_load:
            why = f"; the first version in the warehouse was loaded at {first_load:%Y-%m-%d %H:%M} UTC"
        elif builds_known and (period_built is None or cutoff <= period_built):
            # loaded after the date asked about, or loaded by then but not yet built into the marts
            built = (f"first reported by the build at {period_built:%Y-%m-%d %H:%M} UTC" if period_built is not None
                     else "not built into the marts yet")
            why = f"; {args.period}'s first version was loaded at {period_loaded:%Y-%m-%d %H:%M} UTC, {built}"
        elif period_loaded is not None and cutoff <= period_loaded:  # no build record to go by: load time stands in
            why = f"; {args.period}'s first version was loaded at {period_loaded:%Y-%m-%d %H:%M} UTC"
        else:
            why = ""
        print(f"carewatch: nothing reported for {args.area} in {args.period} as of {args.as_of}{why}", file=sys.stderr)
        return 1
    frame.to_csv(sys.stdout, index=False)
    return 0


def _cmd_samples(args: argparse.Namespace) -> int:
    from carewatch.samples import generate

    if args.hes_apc:
        from pathlib import Path

        from carewatch.samples import hes_apc

        if args.out is not None or args.full:
            raise CarewatchError("--hes-apc writes one extract to FILE: --out and --full are for the publication samples")
        episodes = 100_000 if args.episodes is None else args.episodes
        if episodes < 1:
            raise CarewatchError(f"--episodes {episodes}: give a positive number of episodes")
        path = hes_apc.write_apc_extract(Path(args.hes_apc), episodes, seed=args.seed or 0)
        print(f"wrote a synthetic HES APC extract of about {episodes:,} episodes (2017-18) to {path}")
        return 0
    if args.episodes is not None or args.seed is not None:
        raise CarewatchError("--episodes and --seed go with --hes-apc FILE")
    written = generate.write_all(args.out, full=args.full)
    print(f"wrote {len(written)} sample files under {args.out or 'data/samples'}")
    return 0


def _cmd_serve_samples(args: argparse.Namespace) -> int:
    from carewatch import sample_server

    return sample_server.main(["--port", str(args.port)])


def _cmd_run(args: argparse.Namespace) -> int:
    from carewatch import runner

    if args.logical_date is not None:
        _check_moment("--logical-date", args.logical_date)
    return runner.run_embedded(logical_date=args.logical_date)


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Every methodology config file checked, and the labelled ones in force against what the
    warehouse recorded under their labels: OK and the files, or one line per problem (exit 1)."""
    from carewatch import provenance
    from carewatch.errors import ConfigError
    from carewatch.methodology import config_check

    try:
        checked = config_check.check_all(every_methodology=True)
        unchecked = provenance.check_labels_held()
    except ConfigError as err:
        for line in err.problems:
            print(line, file=sys.stderr)
        print(f"carewatch: {len(err.problems)} problem(s) in the methodology config", file=sys.stderr)
        return 1
    labels = (f"labels not checked against the warehouse: {unchecked}" if unchecked
              else "each label's content as the warehouse recorded it")
    print(f"OK: {len(checked)} methodology config files checked ({', '.join(checked)}); {labels}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import datetime as dt

    from carewatch import paths, status

    if args.as_of is not None:
        _check_moment("--as-of", args.as_of)
    found = status.status(as_of=dt.date.fromisoformat(args.as_of[:10]) if args.as_of else None, verify=args.verify)
    print(f"carewatch status of {paths.home()}, periods due as of {found.as_of:%Y-%m-%d}")
    for line in found.lines:
        print(line)
    if not found.attention:
        if found.unknown:
            print("UNKNOWN: the warehouse could not be read; nothing else needs attention")
            return 2
        print("OK: nothing needs attention")
        return 0
    print(f"ATTENTION ({len(found.attention)}):")
    for line in found.attention:
        print(f"  {line}")
    return 1


def _cmd_backup(args: argparse.Namespace) -> int:
    from carewatch import backup

    print(backup.make(args.dest, keep=args.keep).describe())
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from carewatch import backup

    if args.check:
        manifest = backup.check(args.backup)
        print(f"OK: {args.backup} (made {manifest['made_at']} from {manifest['home']}): {len(manifest['files'])} files "
              f"as its manifest says, the warehouse opens with its {len(manifest['tables'])} tables")
        return 0
    manifest = backup.restore(args.backup, args.to)
    print(f"restored {args.backup} (made {manifest['made_at']}) as {args.to}: {len(manifest['files'])} files, "
          f"checked. Set CAREWATCH_HOME={args.to} (in production, the volume's path) and run the pipeline: parsed files "
          "are parsed again from the raw store, nothing is fetched again that is held")
    return 0


def _cmd_airflow(args: argparse.Namespace) -> int:
    from carewatch import runner

    return runner.airflow_ui(port=args.port)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="carewatch", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse a local publication; tidy rows as CSV on stdout")
    p.add_argument("source", help="source name from config/sources.yaml (e.g. dtoc_la) or a parser name")
    p.add_argument("file")
    p.add_argument("--period", help="the period you expect the file to hold (YYYY-MM, YYYY-YY or YYYY); parse does not "
                                    "check it (the file's own period is in its rows), validate does")
    p.set_defaults(func=_cmd_parse)

    p = sub.add_parser("validate", help="run a source's expectation suite on a local file; writes nothing")
    p.add_argument("source")
    p.add_argument("file")
    p.add_argument("--period", required=True, help="the period the file should hold, as the source writes it (YYYY-MM, YYYY-YY or YYYY)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("hes-metrics", help="hospital metrics from a record-level HES APC extract (Parquet); CSV on stdout")
    p.add_argument("extract")
    p.add_argument("--from", dest="from_period", help="first month, YYYY-MM")
    p.add_argument("--to", dest="to_period", help="last month, YYYY-MM")
    p.set_defaults(func=_cmd_hes_metrics)

    p = sub.add_parser("as-of", help="what the warehouse reported for an area and month, as of a date (CSV): the "
                                     "month's figures, the rolling 12 months ending in it and its financial year's")
    p.add_argument("area", help="HWB area code or name (e.g. E08000009 or Trafford)")
    p.add_argument("period", help="month, YYYY-MM")
    p.add_argument("--period-type", choices=["month", "rolling_12m", "financial_year"], default=None,
                   help="only this kind of period (default: all three)")
    p.add_argument("--as-of", required=True, help="date (or timestamp): only versions loaded by then count")
    p.add_argument("--metric", default=None, help="one metric id (default: all)")
    p.add_argument("--breakdowns", action="store_true", help="include NHS / social care / reason breakdowns")
    p.set_defaults(func=_cmd_as_of)

    p = sub.add_parser("check", help="run a warehouse check (include/sql/checks/NAME.sql, suite expectations/NAME.json) "
                                     "on the warehouse; writes nothing")
    p.add_argument("name", help="the check's name, e.g. metric_completeness")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--rows", action="store_true", help="print every row of the check as CSV instead of its expectations")
    shown.add_argument("--failing", action="store_true",
                       help="print only the rows that fail an expectation (blocking or warning) as CSV")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("rank", help="preview a ranking methodology file on the warehouse, read-only: the month's league "
                                    "table, against the published one (--compare) and the review flags it would change "
                                    "(--flags); writes nothing (exit 1 if the file does not load)")
    p.add_argument("--methodology", required=True, metavar="NAME",
                   help="config/methodology/NAME.yaml (e.g. dashboard-2018, the file in_force.yaml names), or a path to a .yaml")
    p.add_argument("--month", default=None, help="the rolling 12 months ending in this month, YYYY-MM "
                                                 "(default: the latest month ranking_overall ranks, the one last published)")
    p.add_argument("--compare", action="store_true", help="each area's published rank, candidate rank and change, largest "
                                                          "moves first, and a summary (areas moved, Spearman rank correlation)")
    p.add_argument("--flags", action="store_true", help="the review flags the candidate league table would give that month "
                                                        "against those published: new and gone")
    p.add_argument("--csv", metavar="FILE", default=None, help="also write the table printed (league table, or with --compare "
                                                              "the comparison) to FILE, outside the pipeline's home")
    p.set_defaults(func=_cmd_rank)

    p = sub.add_parser("reject", help="leave a loaded version of a period out of the next warehouse builds (a file that "
                                      "passed its suite but is wrong); the period's latest other version is used")
    p.add_argument("source")
    p.add_argument("period", help="as the source writes its periods (YYYY-MM, YYYY-YY or YYYY)")
    p.add_argument("--version", type=int, default=None, help="the loaded version, as the email or the run summary names it "
                                                                 "(default: the latest loaded; refused if it is rejected already)")
    p.add_argument("--reason", default=None, help="why (required to reject; kept in rejected_versions)")
    p.add_argument("--leave-empty", action="store_true", help="reject even if no version of the period is left in use "
                                                                 "(its figures vanish from the builds)")
    p.add_argument("--withdraw", action="store_true", help="withdraw the rejection of --version instead")
    p.set_defaults(func=_cmd_reject)

    p = sub.add_parser("samples", help="regenerate the embedded sample publications")
    p.add_argument("--out", default=None, help="output directory (default data/samples)")
    p.add_argument("--full", action="store_true", help="the whole history (DTOC from August 2010), not only the committed window")
    p.add_argument("--hes-apc", metavar="FILE", default=None,
                   help="instead: write a synthetic record-level HES APC extract (Parquet, 2017-18) for hes-metrics")
    p.add_argument("--episodes", type=int, default=None, help="with --hes-apc: about how many episodes (default 100000)")
    p.add_argument("--seed", type=int, default=None, help="with --hes-apc: random seed (default 0; the same seed writes the same file)")
    p.set_defaults(func=_cmd_samples)

    p = sub.add_parser("serve-samples", help="serve the embedded samples over HTTP")
    p.add_argument("--port", type=_port, default=8765, help="0 to 65535; 0: any free port (default 8765)")
    p.set_defaults(func=_cmd_serve_samples)

    p = sub.add_parser("run", help="run the monthly pipeline through Airflow on the embedded samples")
    p.add_argument("--logical-date", default=None, help="ISO date of the monthly run (default: embedded.run_date in config/sources.yaml, "
                                                          "the run after March 2018's publication)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check-config", help="check the methodology config (config/metrics.yaml, methodology/, review_flags.yaml, "
                                            "targets/, peer_groups.yaml and its file): OK, or one line per problem (exit 1)")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("status", help="is the pipeline current? what needs attention, read-only; exit 1 if anything does "
                                      "(for a monitor: 2 when it cannot tell)")
    p.add_argument("--as-of", help="the date whose due periods to check (default: today; on the embedded samples, "
                                   "the date the latest carewatch run ran for)")
    p.add_argument("--verify", action="store_true", help="also read every raw file: each hashes to its name, and every "
                                                         "file the warehouse names is there (seconds per GB)")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("backup", help="back up the home: the warehouse (a consistent copy), the raw store, reports, exports, "
                                      "Data Docs; verified, unchanged files hard-linked to the previous backup")
    p.add_argument("dest", nargs="?", help="the folder of backups (default: CAREWATCH_BACKUP_DIR); not inside the home")
    p.add_argument("--keep", type=_keep, help="complete backups to keep, oldest removed (default: config/backup.yaml; 0 keeps all)")
    p.set_defaults(func=_cmd_backup)

    p = sub.add_parser("restore", help="check a backup against its manifest, and restore it as a new home")
    p.add_argument("backup", help="one backup: DEST/<made at>")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--to", help="the new home (must not exist, or be empty)")
    what.add_argument("--check", action="store_true", help="only check every file and the warehouse; writes nothing")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser("airflow", help="start Airflow locally with the project's DAGs")
    p.add_argument("--port", type=_ui_port, default=8080, help="1 to 65535 (default 8080)")
    p.set_defaults(func=_cmd_airflow)

    # listed for --help only: main() hands every argument after it to Airflow, before parsing
    p = sub.add_parser("airflow-cli", help="Airflow's command line on the project's Airflow home (var/airflow), "
                                           "e.g. airflow-cli backfill create --dag-id ingest_dtoc_la ...")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the airflow command")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["airflow-cli"]:  # every argument is Airflow's, options included (--version, -h)
        from carewatch import runner

        return runner.airflow_cli(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is then caught below
        return status
    except CarewatchError as err:
        print(f"carewatch: {err}", file=sys.stderr)
        return 2
    except KeyError as err:  # unknown source / parser names
        print(f"carewatch: {err.args[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what it left, not a traceback
        print("\ncarewatch: interrupted. Each load, warehouse build and analysis commits in one transaction, so "
              "nothing was half-written; run the same command again to finish (files already fetched and loaded "
              "are not fetched or loaded again).", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`carewatch parse ... | head`): not an error worth a traceback
        # as the Python docs advise: stdout to devnull, so that flushing it at exit raises nothing again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
