"""What a run prints for the people watching it: the terminal summary at the end of ``make run``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from carewatch import dagkit, paths, sources, warehouse


def manifest_summary() -> list[tuple]:
    """Per source: periods held, file versions, revised periods, bytes, last fetch.

    Periods, versions, bytes and the last fetch are the raw store's (``raw_manifest``): every
    version fetched counts, a file later quarantined or that failed to parse included. Bytes
    count each stored file once: a version whose bytes an earlier version of the period already
    had (a revision taken back) is one more manifest row but no more stored file. Revised
    periods are the periods with more than one file loaded into the source's landing table (a
    version loaded after an earlier loaded one, of other bytes); a rejected file is no revision
    (a version whose rejection stands: ``carewatch reject``), nor is an earlier file taken back
    after it (the same bytes as a version before it). None for a source that does not load to
    the warehouse (``loads_to_warehouse: false``)."""
    db = paths.warehouse_path()
    if not db.exists():
        return []
    with warehouse.connect(read_only=True, path=db) as con:
        rows = con.execute(
            """
            select source,
                   count(distinct period)                          as periods,
                   count(*)                                        as versions,
                   sum(bytes) filter (where first_of_file)         as bytes,
                   max(fetched_at)                                 as last_fetch
            from (select *, row_number() over (partition by source, period, sha256 order by version) = 1 as first_of_file
                  from raw_manifest)
            group by source
            order by source
            """
        ).fetchall()
        return [(source, periods, versions, _revised_periods(con, source), size, last)
                for source, periods, versions, size, last in rows]


def _revised_periods(con, source: str) -> int | None:
    """How many periods of ``source`` have more than one file (of other bytes) in its landing
    table, its rejected versions left out."""
    catalogued = sources.catalogue().get(source)
    if catalogued is not None and not catalogued.loads_to_warehouse:
        return None
    table = warehouse.land_table(source)
    if not warehouse.table_exists(con, table):
        return 0
    rejected = warehouse.rejection_stands(con, f"'{source}'", "t._period", "t._version")  # (a plain name: land_table checked it)
    (revised,) = con.execute(
        f"select count(*) from (select _period from {table} t where not {rejected} "
        "group by _period having count(distinct _sha256) > 1)").fetchone()
    return revised


def print_run_summary(states: dict[str, str], log_file: Path, mail_dir: Path | None = None,
                      run_ids: dict[str, str] | None = None) -> None:
    """``states``: each DAG's state in this run; ``run_ids``: each DAG's Airflow run id (what
    the sources block reads this run's fetches by)."""
    print()
    print("DAG runs (through Airflow):")
    for dag_id, state in states.items():
        print(f"  {dag_id:<28} {state}")
    if not states:
        print(f"  no DAG finished: see {log_file}")

    print_sources(states, run_ids)
    from carewatch.errors import ConfigError

    try:  # the results are described with the methodology config: a mistake in it is its lines, not a traceback
        print_results(states.get("metrics", "not run"))
    except ConfigError as err:
        print("\nResults not shown: the methodology config is refused (carewatch check-config):")
        for line in err.problems:
            print(f"  {line}")
    print_quality()
    if mail_dir is not None:
        from carewatch import mailcatcher

        caught = mailcatcher.messages(mail_dir)
        print()
        print(f"Alert emails ({len(caught)}, caught locally in {mail_dir}):" if caught else f"Alert emails: none (caught locally in {mail_dir})")
        for message in caught:
            print(f"  {message['Subject']}")
    from carewatch import alerts

    waiting = alerts.outbox()
    if waiting:
        print(f"\nAlerts waiting in {paths.outbox_dir()} ({len(waiting)}): the mail server did not take them; "
              "the next run sends them first")
    print()
    print("Outputs:")
    print(f"  raw store (immutable)   {paths.raw_store_dir()}")
    print(f"  parsed tidy Parquet     {paths.home() / 'parsed'}")
    print(f"  warehouse (DuckDB)      {paths.warehouse_path()}   tables: docs/data-contract.md")
    from carewatch import validation

    if validation.data_docs_index().exists():
        print(f"  Data Docs (GX)          {validation.data_docs_index()}")
    print(f"  Airflow home / log      {paths.home() / 'airflow'}   {log_file}")
    from carewatch import monthly_report

    report = monthly_report.latest_report()
    if report is not None:
        print(f"  exports (CSV)           {paths.exports_dir()}")
        print(f"  report tables           {report.parent / 'tables'}")
        if states.get("metrics") == "success":
            print()
            try:
                lines = report_lines()
            except ConfigError as err:
                lines = [f"Reports not described: {problem}" for problem in err.problems]
            for line in lines:
                print(line)
            print(f"Monthly report: {report}")
        else:  # the metrics DAG failed or did not run: the report is an earlier run's
            print(f"\nNo monthly report from this run (metrics: {states.get('metrics', 'not run')}); "
                  f"the latest, from an earlier run: {report}")


def report_lines() -> list[str]:
    """Which months the last analysis reported and what became of their reports: each month
    ranked since the last report gets one (several when a late DTOC month held them back); a run
    whose report month did not move says so, why, and whether that month's report was
    rewritten (its figures changed) or stands (``figures.json``: :mod:`carewatch.monthly_report`);
    a report rewritten over an earlier one says where that one is kept (``superseded/``)."""
    from carewatch import monthly_report

    if not paths.warehouse_path().exists():
        return []
    with warehouse.connect(read_only=True) as con:
        if not warehouse.table_exists(con, "analysis_runs"):
            return []
        runs = con.execute("select analysed_at, month from analysis_runs order by analysed_at, month").df()
        if runs.empty:
            return []
        last = runs["analysed_at"].max()
        months = [pd.Timestamp(m) for m in runs.loc[runs["analysed_at"] == last, "month"]]
        before = runs.loc[runs["analysed_at"] < last, "month"]
        previous = pd.Timestamp(before.max()) if len(before) else None
        from carewatch import provenance

        lead = provenance.analysed(con).methodology().period_metric  # as the analysis ranked, not config/ now
        loaded = {pd.Timestamp(m) for (m,) in con.execute(
            "select distinct period_start from fct_metric_values where metric_id = ? and period_type = 'month' and area_code = 'E92000001'",
            [lead]).fetchall()}
        lead_name = con.execute("select name from ref_metrics where metric_id = ?", [lead]).fetchone()
    lead_name = lead_name[0] if lead_name else lead
    stamps = {m: monthly_report.read_stamp(paths.home() / "reports" / f"{m:%Y-%m}") for m in months}
    written = [m for m in months if stamps[m].get("written_at") and pd.Timestamp(stamps[m]["written_at"]) >= last]
    kept = []
    for m in written:
        where = _replaced(m, stamps)
        if where:
            kept.append(f"{m:%B %Y} report rewritten ({monthly_report.EARLIER_RELEASE}); it is kept in {where}" if monthly_report.unstamped(where) else
                        f"{m:%B %Y} report rewritten (figures changed); the earlier one is kept in {where}")
    return _month_lines(months, previous, loaded, lead_name, stamps, written) + kept


def _replaced(month, stamps: dict) -> Path | None:
    """Where the report of ``month`` that this one replaced is kept (``superseded/...``), if any."""
    replaces = stamps[month].get("replaces")
    return paths.home() / "reports" / f"{month:%Y-%m}" / replaces if replaces else None


def _month_lines(months, previous, loaded, lead_name, stamps, written) -> list[str]:
    """:func:`report_lines`' line on the months reported (none for the usual one new month)."""
    from carewatch import monthly_report

    month = months[-1]
    if previous is not None and month <= previous:
        missing = next((m for m in pd.date_range(month + pd.DateOffset(months=1), periods=24, freq="MS") if m not in loaded), None)
        why = f"{lead_name[:1].lower()}{lead_name[1:]} for {missing:%B %Y} is not loaded yet" if missing is not None else "no later rolling year is complete"
        if month not in written:
            done = f"its figures are unchanged: its report of {stamps[month].get('written_at', 'an earlier run')} stands, not rewritten"
        elif _replaced(month, stamps) and monthly_report.unstamped(_replaced(month, stamps)):
            done = ("its report was written again (the one there was written by an earlier release, which recorded no "
                    "figures to compare with)")
        else:
            done = "its report was written again (its figures changed since, or it was missing)"
        return [f"No new month to report: {month:%B %Y} is still the latest month ranked ({why}); {done}."]
    if len(months) > 1:
        since = f" since the last report ({previous:%B %Y})" if previous is not None else ""
        return [f"Monthly reports of {', '.join(f'{m:%B %Y}' for m in months)}: each month ranked{since}, "
                f"reported by this run ({len(written)} written)."]
    return []


@dataclass
class RunActivity:
    """What one ingest run did for its source, from the warehouse (:func:`run_activity`)."""

    checked: int = 0  # periods whose file the run asked for
    new: list[tuple[str, int]] = field(default_factory=list)  # (period, version) fetched for the first time
    loaded: list[tuple[str, int, int]] = field(default_factory=list)  # (period, version, rows) loaded by the run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (period, what failed)
    not_yet: list[str] = field(default_factory=list)  # periods asked for, not published yet (404 before due + grace)


def run_activity(con, source: str, run_id: str) -> RunActivity:
    """What the ingest run ``run_id`` did for ``source``, whatever its DAG's outcome: read from
    what the warehouse records as it goes, not from the run's last task (which runs only when
    no period failed). Periods checked and new versions: ``fetch_log`` by ``run_id``. Loaded:
    the versions in the landing table loaded since the run's first fetch (one run at a time per
    home). Failed: a period whose last fetch of the run was refused (not one skipped as already
    reported: :func:`outstanding_refusals` keeps those in sight), and a new version the run did
    not load: quarantined, refused by the parser, or failed to load (its task log says why).
    A file met again and still quarantined or unparsed is no failure of this run: the
    data-quality block lists it."""
    from carewatch import fetch, pipeline

    activity = RunActivity()
    if not warehouse.table_exists(con, "fetch_log"):
        return activity
    attempts = con.execute(
        f"""select f.period, f.outcome, f.sha256,
                  case when {fetch.transient_column(con)} then 'fetch failed (the site or the connection, after the retries): '
                       else 'fetch refused: ' end || f.error, epoch_us(f.attempted_at),
                  (select max(m.version) from raw_manifest m where m.source = f.source and m.period = f.period
                   and m.sha256 = f.sha256 and m.fetched_at <= f.attempted_at)
           from fetch_log f where f.source = ? and f.run_id = ? order by f.attempted_at, f.period""",
        [source, run_id]).fetchall()
    if not attempts:
        return activity
    last = {period: (outcome, error) for period, outcome, _sha, error, _at, _version in attempts}
    activity.checked = len(last)
    activity.not_yet = sorted(period for period, (outcome, _error) in last.items() if outcome == "not_published_yet")
    new = [(period, int(version), sha) for period, outcome, sha, _error, _at, version in attempts
           if outcome == "new_version" and version is not None]
    activity.new = sorted((period, version) for period, version, _sha in new)
    catalogued = sources.catalogue().get(source)
    loads = catalogued is None or catalogued.loads_to_warehouse
    table = warehouse.land_table(source)
    if loads and warehouse.table_exists(con, table):
        started = min(at for *_, at, _version in attempts)
        activity.loaded = [(period, int(version), int(rows)) for period, version, rows in con.execute(
            f"select _period, _version, count(*) from {table} where epoch_us(_loaded_at) >= ? group by all order by all",
            [started]).fetchall()]
    failed = {period: error for period, (outcome, error) in last.items() if outcome == "refused"}
    loaded_now = {(period, version) for period, version, _rows in activity.loaded}
    for period, version, sha in new:
        if (period, version) in loaded_now:
            continue
        quarantine = con.execute("select blocking_failures from quarantine where source = ? and period = ? and sha256 = ?",
                                 [source, period, sha]).fetchone() if warehouse.table_exists(con, "quarantine") else None
        marker = paths.parsed_path(source, period, sha).with_suffix(".failed")
        if quarantine is not None:
            failed[period] = f"v{version} quarantined: {quarantine[0]}"
        elif marker.exists():
            failed[period] = f"v{version} refused by the parser: {pipeline.parse_problem(marker)}"
        elif loads:
            failed[period] = f"v{version} not loaded: see the task log"
    activity.failed = sorted(failed.items())
    return activity


def print_sources(states: dict[str, str], run_ids: dict[str, str] | None = None) -> None:
    """Per source: the raw store, and what this run did (:func:`run_activity`, read by the
    ingest DAG's run id, so shown whatever the DAG's outcome: the periods that loaded beside
    one that failed). A source whose ingest DAG has no run id in this run (it did not run, or
    the run crashed) shows the DAG's state instead."""
    run_ids = run_ids or {}
    print()
    print("raw store: periods, versions (every file fetched, rejected ones too), revised (periods with 2+ files loaded, not counting a rejected one), MB;")
    print("this run, whatever its DAG's outcome: periods checked, new versions fetched, versions loaded, periods failed, rows loaded (of this run's loads)")
    print(f"{'source':<16}{'periods':>8}{'versions':>9}{'revised':>8}{'MB':>8}{'checked':>8}{'new':>6}{'loaded':>7}{'failed':>7}{'rows loaded':>12}")
    rows = manifest_summary()
    details = []
    with warehouse.connect(read_only=True) if rows else contextlib.nullcontext() as con:
        for source, periods, versions, revised, size, _last in rows:
            store = f"{source:<16}{periods:>8}{versions:>9}{'-' if revised is None else revised:>8}{size / 1e6:>8.1f}"
            dag_id = dagkit.ingest_dag_id(source)
            state = states.get(dag_id, "not run")
            if dag_id not in run_ids:
                print(f"{store}  {dag_id} {state}")
                continue
            run = run_activity(con, source, run_ids[dag_id])
            rows_loaded = sum(n for *_, n in run.loaded)
            print(f"{store}{run.checked:>8}{len(run.new):>6}{len(run.loaded):>7}{len(run.failed):>7}{rows_loaded:>12,}")
            if run.new:
                listed = ", ".join(f"{period} v{version}" for period, version in run.new[:6])
                more = f" and {len(run.new) - 6} more" if len(run.new) > 6 else ""
                details.append(f"  {source} new: {listed}{more}")
            details += [f"  {source} FAILED {period}: {what[:200]}" for period, what in run.failed]
            if run.not_yet:  # no failure yet: OVERDUE once its due date and grace days have passed
                details.append(f"  {source} not published yet (no file, before its due date and grace days): {', '.join(run.not_yet)}")
            if state != "success" and not run.failed:
                details.append(f"  {source}: {dag_id} {state}, no failed period recorded: see the Airflow log")
    for line in details:
        print(line)


def summary_areas() -> list[str]:
    """The areas whose metric values the summary prints (``areas`` in ``config/summary.yaml``)."""
    import yaml

    return [str(code) for code in yaml.safe_load((paths.config_dir() / "summary.yaml").read_text())["areas"]]


def ranked_month(con) -> pd.Timestamp | None:
    """The month this run's rankings, review flags and report are for: the month the latest
    analysis ranked last (``analysis_runs``, written in the transaction that wrote the rankings
    and flags the report then reads). Before any analysis, the latest rolling year of the
    methodology's ``period_metric`` (delayed days: the month an analysis ranks last); None when
    there is neither. Not the latest rolling year of every metric: while a DTOC file is late,
    the hospital metrics reach a month that nothing ranks yet."""
    from carewatch.methodology import ranking

    if warehouse.table_exists(con, "analysis_runs"):
        # the latest analysis may report several months at once (a late DTOC month caught up)
        latest = con.execute("select month from analysis_runs order by analysed_at desc, month desc limit 1").fetchall()
        if latest and latest[0][0] is not None:
            return pd.Timestamp(latest[0][0])
    lead = ranking.load_methodology().period_metric
    [(month,)] = con.execute("select max(period_start) from fct_metric_values where period_type = 'rolling_12m' "
                             "and metric_id = ?", [lead]).fetchall()
    return None if month is None else pd.Timestamp(month)


def later_figures(con, month: pd.Timestamp, numbers: dict[str, int]) -> dict[pd.Timestamp, list[int]]:
    """The dashboard metrics (their ``numbers``) with a rolling year later than ``month``, by
    the latest such month: figures the warehouse holds that this run's rankings do not show."""
    rows = con.execute("select metric_id, max(period_start) from fct_metric_values where period_type = 'rolling_12m' "
                       "and metric_id in (select unnest(?)) group by metric_id having max(period_start) > ?",
                       [list(numbers), month]).fetchall()
    later: dict[pd.Timestamp, list[int]] = {}
    for metric_id, latest in rows:
        later.setdefault(pd.Timestamp(latest), []).append(numbers[metric_id])
    return {when: sorted(nums) for when, nums in sorted(later.items())}


def print_results(metrics_state: str = "success") -> None:
    """The six metrics, league-table ends, targets and review flags of the month this run's
    rankings and report are for (:func:`ranked_month`), saying which metrics' values are of
    another period and which metrics hold later figures not ranked yet. ``metrics_state``: the
    metrics DAG's state in this run; unless "success", the block says its figures are the last
    committed build's (a refused build's figures were never kept)."""
    db = paths.warehouse_path()
    if not db.exists():
        return
    with warehouse.connect(read_only=True, path=db) as con:
        tables = {t for (t,) in con.execute("show tables").fetchall()}
        if "fct_metric_values" not in tables:
            return
        month = ranked_month(con)
        if month is None:
            return
        if metrics_state != "success":
            print(f"\nmetrics {metrics_state} in this run: the figures below are those of the last build that "
                  "committed, not built by this run")
        names = warehouse.area_names(con)
        metrics = con.execute("select metric_id, name, unit from ref_metrics order by dashboard_number").fetchall()
        # the values the league table ranks: rolling 12 months, ASCOF from its lagged year
        from carewatch import analysis, provenance

        methodology = provenance.analysed(con).methodology()  # as the analysis ranked, not config/ now
        showcase = summary_areas()
        mv = con.execute(
            "select area_code, metric_id, period_type, period_start, period_end, value from fct_metric_values "
            "where area_code in (select unnest(?)) and metric_id in (select metric_id from ref_metrics) "  # not the breakdowns
            "and (period_type = 'financial_year' or (period_type = 'rolling_12m' and period_start = ?))",
            [showcase, month],
        ).df()
        shown = analysis.ranking_values(mv, methodology, month)
        number = {metric_id: i for i, (metric_id, _name, _unit) in enumerate(metrics, start=1)}
        yearly: dict[str, set[int]] = {}  # a financial year shown -> the numbers of the metrics shown for it
        for row in shown[shown["period_type"] == "financial_year"].itertuples():
            yearly.setdefault(sources.financial_year(row.period_start), set()).add(number[row.metric_id])
        years = "; ".join(f"financial year {year} for {', '.join(map(str, sorted(nums)))}" for year, nums in sorted(yearly.items()))
        value_of = {(r.area_code, r.metric_id): r.value for r in shown.itertuples()}
        print(f"\nSix dashboard metrics, rolling 12 months to {month:%B %Y} ({years + ', ' if years else ''}as ranked)")
        # a monthly metric shown from a financial year has no rolling year to the month (a file late or quarantined)
        monthly = {m for (m,) in con.execute("select distinct metric_id from fct_metric_values where period_type = 'rolling_12m'").fetchall()}
        gaps = sorted({number[m] for m in shown.loc[shown["period_type"] == "financial_year", "metric_id"] if m in monthly})
        if gaps:
            print(f"  no rolling 12 months to {month:%B %Y} of {', '.join(map(str, gaps))} (a month missing): "
                  "their latest financial year is shown and ranked instead")
        lead = number.get(methodology.period_metric)
        for when, nums in later_figures(con, month, number).items():
            why = f"the latest month of {lead}, which the rankings wait for" if lead not in nums else "the month the latest analysis ranked"
            print(f"  later figures held, not ranked yet: {', '.join(map(str, nums))} to {when:%B %Y}; "
                  f"this run's rankings, review flags and report are for {month:%B %Y}, {why}")
        header = f"{'area':<28}" + "".join(f"{i + 1:>11}" for i in range(len(metrics)))
        print(header)
        for area in showcase:
            cells = []
            for metric_id, _name, unit in metrics:
                value = value_of.get((area, metric_id))
                cells.append("-" if value is None or pd.isna(value) else (f"{value * 100:.1f}%" if unit == "proportion" else f"{value:,.1f}"))
            print(f"{names.get(area, area)[:27]:<28}" + "".join(f"{c:>11}" for c in cells))
        for i, (_metric_id, name, _unit) in enumerate(metrics, start=1):
            print(f"  {i}. {name}")
        if "ranking_overall" not in tables:
            return
        # beside the label, the digest of the methodology file the analysis read (none in an earlier release's table)
        digest = "methodology_digest" if "methodology_digest" in warehouse.columns(con, "ranking_overall") else "null"
        ranked = con.execute(
            f"select area_code, overall_rank, rank_change, methodology, {digest} from ranking_overall where period_type = 'rolling_12m' "
            "and period_start = ? and overall_rank is not null order by overall_rank",
            [month],
        ).fetchall()
        label = (f"{ranked[0][3]}" + (f", config sha256 {ranked[0][4]}" if ranked[0][4] else "")) if ranked else "none ranked"
        print(f"\nOverall ranking of {len(ranked)} HWB areas, rolling 12 months to {month:%B %Y} ({label})")
        print("  top 5:    " + ", ".join(f"{r[1]}. {names.get(r[0], r[0])}" for r in ranked[:5]))
        print("  bottom 5: " + ", ".join(f"{r[1]}. {names.get(r[0], r[0])}" for r in ranked[-5:]))
        # each target set at its latest month up to the ranked one, as the report shows it
        targets = con.execute(
            """select target_set, max(period_start) as last from target_tracking where period_start <= ? group by target_set""",
            [month]).fetchall() if "target_tracking" in tables else []
        for target_set, when in sorted(targets):
            met, missed, unknown = con.execute(
                """select count(*) filter (where on_track), count(*) filter (where not on_track), count(*) filter (where on_track is null)
                   from target_tracking where target_set = ? and period_start = ?""", [target_set, when]).fetchone()
            not_known = f", {unknown} not known (no figure that month or at the baseline)" if unknown else ""
            print(f"\nDTOC targets ({target_set}) in {when:%B %Y}: {met} areas on track, {missed} off track{not_known}")
        month_flags = con.execute(
            "select area_code, status, first_flagged, reasons from review_flag_history where period_start = ? order by status, area_code",
            [month]).df() if "review_flag_history" in tables else pd.DataFrame(columns=["area_code", "status", "first_flagged", "reasons"])
        flagged = list(month_flags[month_flags["status"].isin(["new", "continuing"])].itertuples(index=False, name=None))
        new = [f for f in flagged if f[1] == "new"]
        print(f"\nCQC review flags in {month:%B %Y}: {len(flagged)} areas flagged, {len(new)} new")
        for area, status, first, reasons in (new + [f for f in flagged if f[1] != "new"])[:12]:
            print(f"  {status.upper():<10} {names.get(area, area)} (since {first:%b %Y}): {reasons}")
        if len(flagged) > 12:
            print(f"  ... and {len(flagged) - 12} more: see the report and review_flag_history")
        for line in analysis.since_last_report(month_flags, *analysis.last_report_flags(con, month), names):
            print(f"  {line}")
        restated = analysis.restated_words(analysis.restated_by_last_run(con))
        if restated:
            # recorded since the first run for this month: a rerun of the month repeats the list
            print(f"\nRestated by the runs for {month:%B %Y}, this one or an earlier one (months whose figures now "
                  "differ from what was reported: a revised publication, a later population estimate or a change of "
                  "method; what was reported is kept in the warehouse's reported_* tables): " + "; ".join(restated))


@dataclass(frozen=True)
class OutstandingRefusal:
    """A held period whose re-check was refused by its latest fetch attempts (:func:`outstanding_refusals`)."""

    source: str
    period: str
    held: int  # the latest version held (kept, and loaded if it passed)
    since: object  # the first refusal since the last attempt that got the file (aware UTC datetime)
    runs: int  # the runs (or attempts outside a run) refused since then
    emailed: object  # when the refusal was emailed since then (aware UTC datetime), or None
    error: str  # the latest refusal


def outstanding_refusals(con) -> list[OutstandingRefusal]:
    """Each period held in the raw store whose latest fetch attempts were refused (``fetch_log``
    outcome ``refused`` or ``already_refused``: GONE, a 404 for a month held; the very file
    another period holds; an HTML page...), until an attempt gets the file again (``unchanged``
    or ``new_version``). The first run emails it (``fetch_refusals_reported``) and later runs
    skip it without failing, keeping the held version: this is where it stays in sight. A
    period not held yet fails and emails every run, so it is not listed here."""
    if not (warehouse.table_exists(con, "fetch_log") and warehouse.table_exists(con, "raw_manifest")):
        return []
    reported = ("(select epoch_us(min(r.reported_at)) from fetch_refusals_reported r where r.source = s.source "
                "and r.period = s.period and r.reported_at >= s.since)"
                if warehouse.table_exists(con, "fetch_refusals_reported") else "null")
    rows = con.execute(f"""
        with held as (select source, period, max(version) as held from raw_manifest group by all),
        got as (select source, period, max(attempted_at) as got from fetch_log
                where outcome in ('new_version', 'unchanged') group by all),
        s as (select f.source, f.period, min(f.attempted_at) as since,
                     count(distinct coalesce(f.run_id, f.attempted_at::varchar)) as runs,
                     max_by(coalesce(f.error, f.refusal, ''), f.attempted_at) as error
              from fetch_log f join held using (source, period) left join got using (source, period)
              where f.outcome in ('refused', 'already_refused') and (got.got is null or f.attempted_at > got.got)
              group by all)
        select s.source, s.period, held.held, epoch_us(s.since), s.runs, {reported}, s.error
        from s join held using (source, period) order by s.source, s.period""").fetchall()
    return [OutstandingRefusal(source, period, int(held), warehouse._utc(since), int(runs),
                               warehouse._utc(emailed) if emailed is not None else None, error)
            for source, period, held, since, runs, emailed, error in rows]


def print_quality() -> None:
    """Validation results of the warehouse (batches checked, warnings, blocking failures), then
    every outstanding bad file, whichever run met it: each file in quarantine, and each file
    the parser refused that no good later version of its period has replaced
    (:func:`carewatch.pipeline.unparsed_files`). Later runs skip such files without failing
    or emailing again, so this list is where they stay in sight; so does each loaded version
    an operator rejected (``carewatch reject``), left out of every build until withdrawn, and
    each held period whose re-check is refused (:func:`outstanding_refusals`). A quarantined
    file or a rejected version that a later version of its period, loaded and not rejected,
    has replaced is no longer outstanding: one line counts them (the report's quarantine table
    and ``rejected_versions`` keep each)."""
    if not paths.warehouse_path().exists():
        return
    from carewatch import pipeline, validation

    rows = []
    with warehouse.connect(read_only=True) as con:
        if warehouse.table_exists(con, "validation_results"):
            rows = con.execute(
                """
                select source, count(distinct period || sha256) as batches, count(*) as checks,
                       count(*) filter (where not success and severity = 'warning') as warnings,
                       count(*) filter (where not success and severity = 'blocking') as blocking
                from validation_results group by source order by source
                """
            ).fetchall()
        quarantined = validation.quarantined(con)
        unparsed = pipeline.unparsed_files(con)
        rejected = con.execute("select source, period, version, reason, epoch_us(rejected_at) from rejected_versions "
                               "where withdrawn_at is null order by all").fetchall() if warehouse.table_exists(con, "rejected_versions") else []
        superseded_rejections = [r for r in rejected if warehouse.later_version_in_use(con, *r[:3]) is not None]
        refusals = outstanding_refusals(con)
    if not rows and quarantined.empty and not unparsed and not rejected and not refusals:
        return
    print()
    if rows:
        print(f"{'data quality (every run so far)':<32}{'batches':>8}{'checks':>8}{'warnings':>9}{'blocking':>9}")
    for source, batches, checks, warnings, blocking in rows:
        print(f"{source:<32}{batches:>8}{checks:>8}{warnings:>9}{blocking:>9}")
    # a file a later loaded (and not rejected) version of its period has replaced asks nothing
    # more of anyone: counted once, not listed (the report's quarantine table keeps each)
    superseded = quarantined[quarantined["superseded_by"].notna() & ~quarantined["source"].str.startswith("check:")]
    quarantined = quarantined.drop(superseded.index)
    rejected = [r for r in rejected if r not in superseded_rejections]
    for q in quarantined.itertuples():
        times = f", failed {q.attempts} validations since {q.quarantined_at:%Y-%m-%d}" if q.attempts > 1 else ""
        if q.source.startswith("check:"):  # a warehouse check: the latest build was refused (cleared by one that passes)
            builds = f", {q.attempts} builds since {q.quarantined_at:%Y-%m-%d}" if q.attempts > 1 else ""
            print(f"  BUILD REFUSED by {q.source}{builds}: {q.blocking_failures[:300]}")
            continue
        print(f"  QUARANTINED {q.source} {q.period} v{q.file_version}{times}: {q.blocking_failures[:300]}")
    for u in unparsed:
        parser = "" if u.current_parser else " (by an earlier parser; not parsed since)"
        print(f"  PARSE FAILED {u.source} {u.period} v{u.version}{parser}, since {u.failed_at:%Y-%m-%d}: {u.problem[:150]}")
    for r in refusals:  # a held period its re-check cannot reach: revisions are not seen
        runs = f", {r.runs} runs" if r.runs > 1 else ""
        emailed = f", emailed {r.emailed:%Y-%m-%d} (later runs skip it)" if r.emailed else ""
        print(f"  FETCH REFUSED {r.source} {r.period} (v{r.held} held, kept), since {r.since:%Y-%m-%d}{runs}{emailed}: {r.error[:150]}")
    for source, period, version, reason, rejected_at in rejected:  # carewatch reject: left out of every build
        print(f"  REJECTED {source} {period} v{version}, since {warehouse._utc(rejected_at):%Y-%m-%d}: {reason[:150]}")
    if len(superseded) or superseded_rejections:
        from carewatch import monthly_report

        latest = monthly_report.latest_report()
        table = latest.parent / "tables" / "quarantine.csv" if latest is not None else "the report's quarantine table"
        kinds = [f"{n} quarantined file{'s' if n != 1 else ''} (see {table})" for n in [len(superseded)] if n]
        kinds += [f"{n} rejected version{'s' if n != 1 else ''} (rejected_versions)" for n in [len(superseded_rejections)] if n]
        print(f"  superseded since by a later version loaded, no longer outstanding: {', '.join(kinds)}")
