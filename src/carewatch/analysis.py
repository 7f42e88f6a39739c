"""Rankings, similar areas, target tracking and review flags over the warehouse.

Reads ``fct_metric_values`` and the population, applies the methodology in
:mod:`carewatch.methodology` with the configuration in ``config/``, and writes its tables back
in one transaction, recomputed in full each run (so a rerun is idempotent and history is
consistent with the current methodology):

- ``ranking_metric``: area x ranking period x metric rank;
- ``ranking_overall``: area x ranking period overall score and rank, with change since the
  previous period;
- ``peer_group``: each area's similar areas; then, in SQL (``include/sql/analysis/``),
  ``fct_peer_group_values``: the groups' pooled values for every period, and
  ``peer_comparison``: area x metric against peers and England for each month reported;
- ``target_tracking``: area x month against every target set;
- ``review_flag``: area x month x rule with its reason; ``review_flag_history``: area x month
  status (new / continuing / cleared / not assessed) and how long each area has been flagged.

A league table holds the areas that existed in its period (a boundary change ends some and
makes others). Each month ranked since the last report (``analysis_runs``) is reported: just the
latest, or, when a late DTOC month held them back, each month since; CSV exports of every table,
up to that month, land in ``var/exports/<month>/`` (left as they were when unchanged).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import pandas as pd

from carewatch import geography, paths, provenance, warehouse
from carewatch.errors import ConfigError
from carewatch.methodology import config_check, flags, funnels, peers, ranking, targets

ENGLAND = "E92000001"
# run in this order after the analysis tables are written (paths under include/sql/)
ANALYSIS_MODELS = ("macros/comparison", "analysis/int_peer_group_members", "analysis/fct_peer_group_values",
                   "analysis/peer_comparison")


# What each run reported, kept as it was when later runs restate it (a later population
# estimate or revision recomputes earlier months): the rows of these tables (those the filter
# selects) of the latest month up to the run's, for each value of the part column if one is
# named (an SQL expression: a target set that ended is reported at its last month, as the
# report and the summary show it), appended with reported_at whenever they differ from the rows last kept.
# A target set is its name: another version of it (``name@vN``) is the same set, recomputed.
REPORTED = {"ranking_overall": ("period_type = 'rolling_12m'", None),
            "target_tracking": ("true", "split_part(target_set, '@', 1)"),
            "review_flag_history": ("true", None)}


def _read(con, sql: str, params=None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def ranking_values(mv: pd.DataFrame, methodology: ranking.Methodology, month: pd.Timestamp) -> pd.DataFrame:
    """Metric values of the rolling 12 months ending in ``month``; a metric with no rolling
    year ending this month (ASCOF, published only as financial years; or a monthly metric with
    a month missing in the last 12: a hospital file late or quarantined) comes from its latest
    financial year ``annual_lag_months`` before it. The value's own period is in its
    ``period_type`` and ``period_start``. Leaving such a metric out instead would leave every
    area with fewer than ``min_metrics`` values for up to 12 months: no league table, and every
    review-flag spell ended."""
    rolling = mv[(mv["period_type"] == "rolling_12m") & (mv["period_start"] == month)]
    without_rolling_year = set(mv.loc[mv["period_type"] == "financial_year", "metric_id"]) - set(rolling["metric_id"])
    return pd.concat([rolling, _lagged_years(mv, methodology, "rolling_12m", month, without_rolling_year)], ignore_index=True)


def with_value_period(values: pd.DataFrame) -> pd.DataFrame:
    """``values`` (of :func:`ranking_values`) with each value's own period as
    ``value_period_type`` and ``value_period_start`` (a date): the rolling year, or the lagged
    financial year an annual metric ranks on."""
    return values.assign(value_period_type=values["period_type"], value_period_start=pd.to_datetime(values["period_start"]).dt.date)


def financial_year_values(mv: pd.DataFrame, methodology: ranking.Methodology, start: pd.Timestamp) -> pd.DataFrame:
    """Metric values of the financial year starting ``start``; metrics published only as
    financial years (ASCOF) come from the latest year that ended ``annual_lag_months`` before
    this one's last month, as for the rolling table (the 2018 dashboard ranked 2017-18 with
    reablement of 2016-17)."""
    fy = mv[mv["period_type"] == "financial_year"]
    annual_metrics = set(fy["metric_id"]) - set(mv.loc[mv["period_type"] == "rolling_12m", "metric_id"])
    own = fy[(fy["period_start"] == start) & ~fy["metric_id"].isin(annual_metrics)]
    last_month = start + pd.DateOffset(months=11)
    return pd.concat([own, _lagged_years(mv, methodology, "financial_year", last_month, annual_metrics)], ignore_index=True)


def _lagged_years(mv, methodology, period_type: str, last_month: pd.Timestamp, metrics: set) -> pd.DataFrame:
    """For each of ``metrics``, its latest financial year that ended at least the period type's
    ``annual_lag_months`` (methodology config) before ``last_month``."""
    lag = int(methodology.periods.get(period_type, {}).get("annual_lag_months", 6))
    cutoff = last_month - pd.DateOffset(months=lag)
    fy = mv[(mv["period_type"] == "financial_year") & mv["metric_id"].isin(metrics) & (mv["period_end"] <= cutoff)]
    return fy[fy["period_start"] == fy.groupby("metric_id")["period_start"].transform("max")]


def rank_periods(mv: pd.DataFrame, methodology: ranking.Methodology, areas: list[str],
                 changes: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A league table for every rolling 12 months and every financial year the methodology's
    ``period_metric`` has a value for, of the ``areas`` that existed in that period
    (:func:`carewatch.geography.existing_on` its ``period_start``, with the boundary ``changes``
    of ``config/geography/code_changes.csv`` by default): a council a boundary change made is in
    no table before it existed, and one it abolished in none from then on, whatever values it has
    (an abolished council keeps its last financial year's)."""
    changes = geography.code_changes() if changes is None else changes
    metric_rows, overall_rows = [], []
    lead = methodology.period_metric
    months = sorted(mv.loc[(mv["period_type"] == "rolling_12m") & (mv["metric_id"] == lead), "period_start"].unique())
    periods = [("rolling_12m", pd.Timestamp(m), ranking_values(mv, methodology, pd.Timestamp(m))) for m in months]
    fy_starts = sorted(mv.loc[(mv["period_type"] == "financial_year") & (mv["metric_id"] == lead), "period_start"].unique())
    for start in fy_starts:
        periods.append(("financial_year", pd.Timestamp(start), financial_year_values(mv, methodology, pd.Timestamp(start))))
    previous: dict[str, pd.DataFrame] = {}
    for period_type, start, values in periods:
        ranked, overall = rank_period(values, methodology, areas, start, changes)
        overall = ranking.with_change(overall, previous.get(period_type))
        previous[period_type] = overall
        for frame, sink in ((ranked, metric_rows), (overall, overall_rows)):
            frame = frame.copy()
            frame.insert(0, "period_start", start)
            frame.insert(0, "period_type", period_type)
            frame["methodology"] = methodology.label
            sink.append(frame)
    return pd.concat(metric_rows, ignore_index=True), pd.concat(overall_rows, ignore_index=True)


def rank_period(values: pd.DataFrame, methodology: ranking.Methodology, areas: list[str], start,
                changes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One league table (:func:`rank_periods`, without the change since the previous period):
    the metric ranks and the overall ranking of ``values`` (:func:`ranking_values` or
    :func:`financial_year_values`) among those of ``areas`` that existed on ``start``."""
    existing = geography.existing_on(areas, start, changes)
    values = values[values["area_code"].isin(existing)]
    ranked = ranking.rank_metrics(with_value_period(values)[["area_code", "metric_id", "value_period_type", "value_period_start", "value"]], methodology)
    return ranked, ranking.overall_ranking(ranked, methodology, existing)


def metric_values(con) -> pd.DataFrame:
    """``fct_metric_values``, its period columns as timestamps: what the analysis ranks."""
    mv = _read(con, "select * from fct_metric_values")
    for col in ("period_start", "period_end"):
        mv[col] = pd.to_datetime(mv[col])
    return mv


def flag_context(mv: pd.DataFrame, metric_cfg: dict) -> dict:
    """What the review-flag rules read of the metrics (:class:`carewatch.methodology.flags.FlagInputs`):
    ``directions`` (a breakdown metric, "<base>__nhs", goes the way of its base metric),
    ``statistics`` (rate or proportion, of the metrics with confidence intervals) and ``names``."""
    base_direction = {m["id"]: m["direction"] for m in metric_cfg["metrics"]}
    return {
        "directions": {mid: base_direction[mid.split("__")[0]] for mid in mv["metric_id"].unique()},
        "statistics": {m["id"]: funnels.STATISTIC_OF_CI_METHOD[m["ci_method"]] for m in metric_cfg["metrics"] if m["ci_method"] != "none"},
        "names": {m["id"]: m["name"] for m in metric_cfg["metrics"]},
    }


def month_flags(rules: dict, month, overall: pd.DataFrame, mv: pd.DataFrame, tracking: pd.DataFrame,
                context: dict) -> pd.DataFrame:
    """The review flags of ``month`` with ``overall`` as its league table (the areas that
    existed in the month: :func:`rank_period`), ``tracking`` (:func:`track_targets`) and the
    metrics' ``context`` (:func:`flag_context`)."""
    inputs = flags.FlagInputs(period_start=pd.Timestamp(month), overall=overall, metric_values=mv, tracking=tracking,
                              **context, areas=set(overall["area_code"]))
    return flags.evaluate(rules, inputs)


def agency_rates(mv: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Monthly rows of ``metric`` and its agency breakdown (``<metric>__nhs``...), agency "total"
    for the metric itself: what a target set tracks."""
    monthly = mv[(mv["period_type"] == "month") & ((mv["metric_id"] == metric) | mv["metric_id"].str.startswith(f"{metric}__"))]
    monthly = monthly[~monthly["metric_id"].str.contains("__reason_")]
    agency = monthly["metric_id"].str.split("__").str[1].fillna("total")
    return pd.DataFrame({"area_code": monthly["area_code"], "period_start": monthly["period_start"], "agency": agency,
                         "value": monthly["value"], "numerator": monthly["numerator"], "denominator": monthly["denominator"],
                         "multiplier": monthly["multiplier"]})


def track_targets(mv: pd.DataFrame) -> pd.DataFrame:
    """Every target set of ``config/targets/``, each on the metric its file names."""
    frames = [targets.track(agency_rates(mv, target_set.metric), target_set) for target_set in targets.load_target_sets()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run(con, export: bool = True) -> dict[str, pd.DataFrame]:
    """Compute every methodology table from the warehouse and write them back atomically, with
    the configuration they were computed from (:mod:`carewatch.provenance`: ``analysis_config``,
    and a digest beside each label); a labelled file changed under its old label is refused
    before anything is computed."""
    used = provenance.snapshot()
    provenance.check_labels(con, used)
    mv = metric_values(con)
    metric_cfg = warehouse.metric_config()
    metric_context = flag_context(mv, metric_cfg)
    methodology = ranking.load_methodology(metrics_config=metric_cfg)
    lead = methodology.period_metric  # the metric whose periods are ranked (delayed days)
    if lead is None:  # optional in the file (config_check), needed to rank: refused, as a config mistake, without retries
        raise ConfigError([f"{config_check.shown(ranking.methodology_path())}: period_metric is missing (the metric "
                           f"whose periods are ranked, e.g. delayed_days_per_day_per_100k_18plus)"])
    areas = sorted(set(mv["area_code"]) - {ENGLAND})

    if not ((mv["period_type"] == "rolling_12m") & (mv["metric_id"] == lead)).any():
        from carewatch.errors import NotEnoughHistory

        months = mv.loc[(mv["period_type"] == "month") & (mv["metric_id"] == lead), "period_start"].nunique()
        name = next(m["name"] for m in metric_cfg["metrics"] if m["id"] == lead)
        raise NotEnoughHistory(
            f"rankings need 12 complete months of {name[:1].lower()}{name[1:]}; the warehouse holds {months}: "
            "load more history (the ingest DAGs' from_period/to_period params, or a backfill)"
        )
    changes = geography.code_changes()
    ranking_metric, ranking_overall = rank_periods(mv, methodology, areas, changes)

    peer_cfg = peers.load_config()
    population = _read(
        con,
        """
        select mid_year, hwb_code as area_code, age, population
        from int_population_age_hwb
        where mid_year >= ?
        """,
        [int(peer_cfg["mid_year"])],
    )
    population = population[population["area_code"].isin(areas)]
    peer_group = peers.with_abolitions(peers.peer_groups(population, peer_cfg), changes)

    ranked_months = ranking_overall.loc[ranking_overall["period_type"] == "rolling_12m", "period_start"]
    latest = ranked_months.max()
    # each month ranked since the month the previous analysis reported last gets its report
    # (a DTOC month published late holds back the rolling years after it; the run that loads
    # it reports each of them), and the league values its peer comparison compares
    months = months_to_report(con, ranked_months, latest)
    league_values = pd.concat([league_table_values(mv, methodology, month, geography.existing_on(areas, month, changes))
                               for month in months], ignore_index=True)

    tracking = track_targets(mv)

    rules = flags.load_rules()
    abolished = geography.boundary_change_days(changes, "old_code").to_dict()
    created = geography.boundary_change_days(changes, "new_code").to_dict()
    # the areas with a figure of the ranked periods' metric (delayed days) each month: the HWB areas of that month
    lead_month = mv[(mv["period_type"] == "month") & (mv["metric_id"] == lead) & (mv["area_code"] != ENGLAND)]
    areas_of_month = lead_month.groupby("period_start")["area_code"].agg(set).to_dict()
    flag_rows, history_rows, history = [], [], None
    rolling = ranking_overall[ranking_overall["period_type"] == "rolling_12m"]
    for month, overall in rolling.groupby("period_start"):
        fired = month_flags(rules, month, overall, mv, tracking, metric_context)
        ranked_now = set(overall.loc[overall["overall_rank"].notna(), "area_code"])
        counted = dict(zip(overall["area_code"], overall["metrics_ranked"].fillna(0).astype(int)))
        present = {area: counted.get(area, 0) for area in areas_of_month.get(pd.Timestamp(month), set())}
        history = flags.update_history(history, fired, month, assessed=ranked_now, abolished=abolished,
                                       present=present, created=created)
        flag_rows.append(fired)
        history_rows.append(history)
    # beside each label, the digest of the file it names (two contents under one label differ here)
    method_digest = provenance.digests(used, "methodology").get(methodology.label)
    rule_set = flags.rule_set_label(rules)
    rule_digest = provenance.digests(used, "review_flags").get(rule_set)
    history = pd.concat(history_rows, ignore_index=True).assign(rule_set=rule_set)
    tables = {
        "ranking_metric": _beside(ranking_metric, "methodology", "methodology_digest", method_digest),
        "ranking_overall": _beside(ranking_overall, "methodology", "methodology_digest", method_digest),
        "peer_group": peer_group,
        "target_tracking": _beside(tracking, "target_set", "target_set_digest",
                                   tracking["target_set"].map(provenance.digests(used, "target_set")) if len(tracking) else None),
        "review_flag": _beside(pd.concat(flag_rows, ignore_index=True), "rule_set", "rule_set_digest", rule_digest),
        "review_flag_history": _beside(history, "rule_set", "rule_set_digest", rule_digest),
    }
    # peer-group aggregates for every period and the latest comparison with peers and England,
    # from the same facts (include/sql/analysis/), in the same transaction: no reader sees new
    # peer groups beside old aggregates
    def after(con):
        provenance.record(con, used)  # in the same transaction, with the same now() as analysis_runs
        for month in months:
            record_reported(con, month.date())

    write_tables(con, tables, then=analysis_sql(), inputs={"league_values": league_values}, after=after)
    tables["peer_comparison"] = _read(con, "select * from peer_comparison")
    if export:
        names = warehouse.area_names(con)
        for month in months:
            export_csv(tables_as_of(tables, month), paths.exports_dir() / month.strftime("%Y-%m"), names=names)
    return tables


def _beside(frame: pd.DataFrame, column: str, name: str, value) -> pd.DataFrame:
    """``frame`` with ``name`` (``value``) right after ``column`` (at the end when it has none)."""
    frame = frame.copy()
    where = frame.columns.get_loc(column) + 1 if column in frame else len(frame.columns)
    frame.insert(where, name, value)
    return frame


def months_to_report(con, ranked_months: pd.Series, latest) -> list[pd.Timestamp]:
    """The months an analysis reports, in order: every rolling-year month ranked after the
    month the previous analysis reported last (``analysis_runs``), up to ``latest``; just
    ``latest`` when nothing was reported before or the report month did not move (a rerun, or
    a run while the next DTOC month is late). The previous analysis's, not the latest month any
    analysis reported: after the report month moved back (its only version rejected) a month
    reported from the rejected figures is reported again once it is ranked again."""
    latest = pd.Timestamp(latest)
    last = con.execute("""select max(month) from analysis_runs
                          where analysed_at = (select max(analysed_at) from analysis_runs)""").fetchone()[0] \
        if warehouse.table_exists(con, "analysis_runs") else None
    if last is None or pd.Timestamp(last) >= latest:
        return [latest]
    return sorted({pd.Timestamp(m) for m in ranked_months if pd.Timestamp(last) < pd.Timestamp(m) <= latest})


def tables_as_of(tables: dict[str, pd.DataFrame], month) -> dict[str, pd.DataFrame]:
    """``tables`` as the report of ``month`` shows them: the periods that begin up to it (the
    peer comparison: of that month); so a month reported beside a later one (a late DTOC
    month's, reported when it loads) holds no figure of a month after it."""
    month = pd.Timestamp(month)
    out = {}
    for name, frame in tables.items():
        if "period_start" in frame:
            starts = pd.to_datetime(frame["period_start"])
            frame = frame[starts == month] if name == "peer_comparison" else frame[starts <= month]
        out[name] = frame
    return out


def league_table_values(mv: pd.DataFrame, methodology: ranking.Methodology, month: pd.Timestamp,
                        areas: list[str] | None = None) -> pd.DataFrame:
    """What ``peer_comparison.sql`` compares: the values the league table of ``month`` ranks
    (:func:`ranking_values`), each with its own period (``value_period_type``,
    ``value_period_start``: a lagged financial year for annual metrics) and ``period_start``
    the league table's month; of ``areas`` (those that existed in the month) and England."""
    values = with_value_period(ranking_values(mv, methodology, month))
    if areas is not None:
        values = values[values["area_code"].isin([*areas, ENGLAND])]
    columns = ["area_code", "metric_id", "value_period_type", "value_period_start", "value", "ci_lower", "ci_upper"]
    return values[columns].assign(period_start=pd.Timestamp(month).date())[["period_start", *columns]]


def analysis_sql() -> tuple[str, ...]:
    """The SQL the analysis step runs after writing its tables, in order (ANALYSIS_MODELS)."""
    return tuple((paths.sql_dir() / f"{model}.sql").read_text() for model in ANALYSIS_MODELS)


RESTATEMENTS_DDL = """create table if not exists restatements (
    table_name varchar not null, period_start date not null, part varchar, areas_changed integer not null,
    recorded_at timestamptz not null, change varchar default 'changed')"""
# what a restatement was: its rows differ from those kept; a month kept before is no longer
# computed at all (said once); such a month is computed again
CHANGES = ("changed", "no longer computed", "computed again")
# one row per analysis and month it reported (several when a late DTOC month held them back)
ANALYSIS_RUNS_DDL = "create table if not exists analysis_runs (analysed_at timestamptz not null, month date not null)"


RESTATED_WORDS = {"ranking_overall": "overall ranking", "target_tracking": "DTOC target tracking", "review_flag_history": "review flags"}


def restated_words(restated: pd.DataFrame) -> list[str]:
    """:func:`restated_by_last_run` in words: "March 2018 overall ranking (16 areas changed)"."""
    out = []
    for row in restated.itertuples():
        part = f" {row.part}" if isinstance(row.part, str) and row.part else ""
        n = f"{row.areas_changed} area{'s' if row.areas_changed != 1 else ''}"
        change = getattr(row, "change", None) or "changed"
        areas = {"no longer computed": f"no longer computed: {n} reported before",
                 "computed again": f"computed again: {n}"}.get(change, f"{n} changed")
        out.append(f"{pd.Timestamp(row.period_start):%B %Y} {RESTATED_WORDS.get(row.table_name, row.table_name)}{part} ({areas})")
    return out


def restated_by_last_run(con) -> pd.DataFrame:
    """The months whose figures differ from what was kept of them, as recorded by the analyses
    since the latest one of an earlier month (so the run for this month, and any rerun of it,
    say what it restated): table_name, period_start, part, areas_changed, change (:data:`CHANGES`).
    Empty before the first analysis of this release."""
    if not (warehouse.table_exists(con, "restatements") and warehouse.table_exists(con, "analysis_runs")):
        return pd.DataFrame(columns=["table_name", "period_start", "part", "areas_changed", "change"])
    change = "change" if "change" in warehouse.columns(con, "restatements") else "'changed'"  # an earlier release's table
    return con.execute(f"""
        with runs as (select analysed_at, max(month) as month from analysis_runs group by analysed_at)
        select table_name, period_start, part, max_by(areas_changed, recorded_at) as areas_changed,
               max_by({change}, recorded_at) as change from restatements
        where recorded_at > coalesce((select max(analysed_at) from runs
                                      where month < (select max_by(month, analysed_at) from runs)), '-infinity'::timestamptz)
        group by table_name, period_start, part order by period_start, table_name, part""").df()


def last_report_flags(con, month) -> tuple[dt.date | None, set[str]]:
    """The month reported last before ``month`` and the areas its report flagged (new or
    continuing), as that report showed them: the rows its runs last kept as reported of it
    (``reported_review_flag_history``), not as the warehouse holds that month now (a revision or
    a change of method recomputes the flags' history). (None, empty) before any report."""
    if not warehouse.table_exists(con, "reported_review_flag_history"):
        return None, set()
    last = con.execute("select max(run_month) from reported_review_flag_history where kind = 'reported' and run_month < $month "
                       "and period_start = run_month", {"month": month}).fetchone()[0]
    if last is None:
        return None, set()
    flagged = con.execute(
        "select area_code from reported_review_flag_history where kind = 'reported' and period_start = $last and run_month = $last "
        "and status in ('new', 'continuing') and reported_at = (select max(reported_at) from reported_review_flag_history "
        "where kind = 'reported' and period_start = $last and run_month = $last)", {"last": last}).fetchall()
    return last, {area for (area,) in flagged}


def since_last_report(flags: pd.DataFrame, last_month, last_flagged: set[str], name_of: dict[str, str]) -> list[str]:
    """What a reader comparing this month's flags (``flags``: review_flag_history of the month,
    with ``area_code`` and ``status``) with the last report (:func:`last_report_flags`) would
    otherwise find unexplained: areas shown as continuing that the last report did not flag, and
    areas it flagged that are neither flagged nor cleared now. Both happen only when earlier
    months were recomputed (a revision, a change of method); empty otherwise."""
    if last_month is None:
        return []
    status = dict(zip(flags["area_code"], flags["status"]))
    continuing = sorted(name_of.get(a, a) for a, s in status.items() if s == "continuing" and a not in last_flagged)
    gone = sorted(name_of.get(a, a) for a in last_flagged if status.get(a) not in ("new", "continuing", "cleared", "not assessed"))
    when = f"{pd.Timestamp(last_month):%B %Y} report"
    out = []
    if continuing:
        out.append(f"Shown as continuing but not flagged in the {when}: {', '.join(continuing)} "
                   "(earlier months recomputed by a revision or a change of method flag them now)")
    if gone:
        out.append(f"Flagged in the {when} and not flagged now, without being cleared: {', '.join(gone)} "
                   "(earlier months recomputed by a revision or a change of method no longer flag them)")
    return out


KEPT_META = ("reported_at", "kind", "run_month", "columns_kept")
# the columns that say which configuration computed a row, not what it reported
LABEL_COLUMNS = ("methodology", "methodology_digest", "rule_set", "rule_set_digest", "target_set", "target_set_digest")


def _kept_table(con, table: str, kept: str) -> list[tuple[str, str]]:
    """Create or upgrade ``kept`` (``reported_<table>``) for ``table``'s columns; returns them
    as (name, type). Rows kept before ``kind`` or ``columns_kept`` existed get 'reported' and the
    columns they were kept with; a column whose type a release changed is renamed
    ``<name>__<old type>`` (``gap__decimal_2_1``) in the rows kept before (not cast), and added afresh."""
    import itertools
    import json
    import re

    columns = warehouse.column_types(con, table)
    con.execute(f"create table if not exists {kept} as select *, now() as reported_at, 'reported' as kind, "
                f"period_start as run_month, '' as columns_kept from {table} limit 0")
    have = dict(warehouse.column_types(con, kept))
    for name, kind in (("kind", "VARCHAR"), ("run_month", "DATE"), ("columns_kept", "VARCHAR")):
        if name not in have:
            con.execute(f'alter table {kept} add column "{name}" {kind}')
    # rows kept before these columns were: each was its run's own month, with the columns it had
    before = json.dumps([[n, t] for n, t in have.items() if n not in KEPT_META])
    con.execute(f"update {kept} set kind = coalesce(kind, 'reported'), run_month = coalesce(run_month, period_start), "
                "columns_kept = coalesce(columns_kept, ?) where kind is null or run_month is null or columns_kept is null", [before])
    for name, kind in columns:
        if name in have and have[name] != kind:
            base = old = f"{name}__{re.sub(r'[^a-z0-9]+', '_', have[name].lower()).strip('_')}"
            for number in itertools.count(2):  # retyped twice from the same type: gap__decimal_2_1_2
                if old not in have:
                    break
                old = f"{base}_{number}"
            con.execute(f'alter table {kept} rename column "{name}" to "{old}"')
            have[old] = have.pop(name)
        if name not in have:  # null in the rows kept before (which their columns_kept says they lacked)
            con.execute(f'alter table {kept} add column "{name}" {kind}')
    return columns


def record_reported(con, month) -> list[str]:
    """Keep what the run for ``month`` reported of each :data:`REPORTED` table in
    ``reported_<table>`` (``kind`` 'reported', ``reported_at`` the transaction's start), unless
    they are the rows last reported for that month (and part): a rerun that changes nothing adds
    nothing. An earlier month kept before whose rows the tables now hold differently (a revision,
    a later population estimate, a change of method) is kept again as ``kind`` 'restated'. Either
    way, a month whose rows differ from the last kept of it gets a ``restatements`` row saying
    how many areas changed: nothing reported is lost, and each run says what it restated. A
    month kept before that is no longer computed at all gets one ``restatements`` row
    (``change`` 'no longer computed', the areas last kept), not one per run; if it is computed
    again, its rows are kept again and a 'computed again' row says so.
    Rows are compared on the columns both they and the rows kept had (``columns_kept``), so a
    column a release adds or retypes is not a restatement; nor is a new label (or digest) of the
    method, rule set or target set that computes the same rows (:data:`LABEL_COLUMNS`: the run's
    own report is kept again under it, nothing is counted as restated). Returns the tables that gained rows."""
    import json

    added = []
    con.execute(RESTATEMENTS_DDL)
    con.execute("alter table restatements add column if not exists change varchar default 'changed'")  # an earlier release's
    con.execute(ANALYSIS_RUNS_DDL)
    # one instant for all the call keeps: the transaction's start in a run (the same now() as
    # its provenance); called outside one, each statement's now() would differ
    at = con.execute("select now()").fetchone()[0]
    con.execute("insert into analysis_runs values (?, ?)", [at, month])
    for table, (where, part) in REPORTED.items():
        kept = f"reported_{table}"
        columns = _kept_table(con, table, kept)
        signature = json.dumps([[n, t] for n, t in columns])
        listed = ", ".join(f'"{name}"' for name, _ in columns)
        part_of = part or "null"
        shown_now = con.execute(f"select {part_of}, max(period_start) from {table} where {where} and period_start <= $month "
                                "group by all order by all", {"month": month}).fetchall()
        kept_before = con.execute(f"select distinct {part_of}, period_start from {kept} where {where}").fetchall()
        earlier = sorted((p, m) for p, m in kept_before if (p, m) not in set(shown_now))
        for (part_value, shown), shown_by_run in [*((key, True) for key in shown_now), *((key, False) for key in earlier)]:
            scope = f"{where} and period_start = $shown and {part_of} is not distinct from $part"
            values = {"shown": shown, "part": part_value}
            # when its rows were last kept, how many areas they had, and whether that month has
            # since been said to be no longer computed (and not kept again after)
            last_kept, areas_kept = con.execute(
                f"select reported_at, count(distinct area_code) from {kept} where {scope} and "
                f"reported_at = (select max(reported_at) from {kept} where {scope}) group by reported_at", values).fetchone() or (None, 0)
            gone_since_kept = last_kept is not None and con.execute(
                "select count(*) from restatements where table_name = $table and period_start = $shown and part is not distinct "
                "from $part and change = 'no longer computed' and recorded_at > $at",
                {**values, "table": table, "at": last_kept}).fetchone()[0] > 0
            if not con.execute(f"select count(*) from {table} where {scope}", values).fetchone()[0]:
                # no longer computed at all (a target set's months cut short, a month left empty):
                # nothing to keep; said once, not by every run after, until it is computed again
                if last_kept is not None and not gone_since_kept:
                    con.execute("insert into restatements values (?, ?, ?, ?, ?, 'no longer computed')",
                                [table, shown, part_value, areas_kept, at])
                continue

            def areas_changed(only: str, labels: bool = True) -> int | None:
                """Areas whose rows differ from the last kept ones (of ``only``); None: none kept.
                Without ``labels``, the figures only: not the method's, rule set's or target
                set's label and digest (a new version that computes the same is no restatement)."""
                last = con.execute(f"select max(reported_at), any_value(columns_kept) from {kept} where {scope} {only} and "
                                   f"reported_at = (select max(reported_at) from {kept} where {scope} {only})", values).fetchone()
                if last[0] is None:
                    return None
                had = {tuple(c) for c in json.loads(last[1] or "[]")}
                common = ", ".join(f'"{n}"' for n, t in columns if (n, t) in had and (labels or n not in LABEL_COLUMNS)) or "area_code"
                now_rows = f"select {common} from {table} where {scope}"
                kept_rows = f"select {common} from {kept} where {scope} and reported_at = $at"
                return con.execute(f"select count(distinct area_code) from (({now_rows} except all {kept_rows}) "
                                   f"union all ({kept_rows} except all {now_rows}))", {**values, "at": last[0]}).fetchone()[0]

            # the run's own report is compared with what was last reported of that month; and any
            # month with what was last kept of it, reported or restated, for what changed since
            since_kept = areas_changed("", labels=False)
            changed_report = areas_changed("and kind = 'reported'") if shown_by_run else None
            keep = (changed_report is None or changed_report > 0) if shown_by_run else bool(since_kept)
            if gone_since_kept:  # back after it was said to be gone: kept again, so a second going is said too
                keep = True
                areas_back = con.execute(f"select count(distinct area_code) from {table} where {scope}", values).fetchone()[0]
                con.execute("insert into restatements values (?, ?, ?, ?, ?, 'computed again')",
                            [table, shown, part_value, areas_back, at])
            if keep:
                kind = "reported" if shown_by_run else "restated"
                con.execute(f"insert into {kept} by name select {listed}, $at as reported_at, '{kind}' as kind, "
                            f"$month as run_month, $signature as columns_kept from {table} where {scope}",
                            {**values, "signature": signature, "month": month, "at": at})
                added.append(kept)
            if since_kept and not gone_since_kept:
                con.execute("insert into restatements values (?, ?, ?, ?, ?, 'changed')", [table, shown, part_value, since_kept, at])
    return sorted(set(added))


def write_tables(con, tables: dict[str, pd.DataFrame], then: tuple[str, ...] = (),
                 inputs: dict[str, pd.DataFrame] | None = None, after=None) -> None:
    """Replace ``tables``, run the ``then`` SQL statements and ``after(con)`` in one
    transaction; ``inputs`` are frames those statements read, by name (not stored)."""
    con.execute("begin transaction")
    try:
        for name, frame in tables.items():
            con.register(f"{name}_frame", frame)
            dates = ", ".join(f'cast("{c}" as date) as "{c}"' for c in date_columns(frame))
            con.execute(f"create or replace table {name} as select * {f'replace ({dates})' if dates else ''} from {name}_frame")
            con.unregister(f"{name}_frame")
        for name, frame in (inputs or {}).items():
            con.register(name, frame)
        for sql in then:
            con.execute(sql)
        if after is not None:
            after(con)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        for name in inputs or {}:
            with contextlib.suppress(Exception):  # never hide the error that ended the transaction
                con.unregister(name)


def date_columns(frame: pd.DataFrame) -> list[str]:
    """Timestamp columns without a zone holding only midnights (months, days): the warehouse's
    DATEs, which pandas reads as timestamps; stored and exported as dates, so tables join
    without casts (the warehouse's instants carry their zone)."""
    return [c for c, kind in frame.dtypes.items() if pd.api.types.is_datetime64_dtype(kind)
            and frame[c].dropna().eq(frame[c].dropna().dt.normalize()).all()]


def labelled(frame: pd.DataFrame, names: dict[str, str] | None, units: dict[str, str] | None = None) -> pd.DataFrame:
    """``frame`` as a file of its own reads: with ``names`` (area code -> name) an ``area_name``
    / ``peer_name`` column for each ``area_code`` / ``peer_code``, and a ``unit`` column for a
    ``metric_id`` (``units``: metric id -> unit, by default config/metrics.yaml's: "proportion"
    says 0.86 is 86%), at the end: the table's own columns keep their places."""
    frame = frame.copy()
    for column in [c for c in ("area_code", "peer_code") if c in frame and names]:
        named = column.replace("_code", "_name")
        if named not in frame:  # e.g. a supplied peer-group file that already names them
            frame[named] = frame[column].map(lambda c: names.get(c, c))
    if "metric_id" in frame and "unit" not in frame:
        units = units if units is not None else {m["id"]: m["unit"] for m in warehouse.metric_config()["metrics"]}
        frame["unit"] = frame["metric_id"].map(lambda m: units.get(str(m).split("__")[0]))
    return frame


SUPERSEDED = "superseded"


def superseded_folder(folder: Path, written_at: str) -> Path:
    """A new, empty ``<folder>/superseded/<written_at>/`` for the outputs a rewrite of
    ``folder`` replaces: ``written_at`` (an ISO instant) as UTC, filesystem-safe
    (``2018-04-12T09-15-02Z``); ``-2``, ``-3``... when taken."""
    import re

    try:
        when = pd.Timestamp(written_at)
        name = (when.tz_convert("UTC") if when.tzinfo else when).strftime("%Y-%m-%dT%H-%M-%SZ")
    except ValueError:
        name = re.sub(r"[^0-9A-Za-z.-]+", "-", written_at).strip("-") or "earlier"
    target, number = folder / SUPERSEDED / name, 2
    while target.exists():
        target, number = folder / SUPERSEDED / f"{name}-{number}", number + 1
    target.mkdir(parents=True)
    return target


def export_csv(tables: dict[str, pd.DataFrame], folder: Path, names: dict[str, str] | None = None) -> Path | None:
    """Each table as CSV (:func:`labelled`), so a file reads on its own. A folder already
    holding the same files is left as it was, ``generated_at.txt`` included: a run whose
    report month did not move and whose figures did not change rewrites nothing. The files a
    rewrite replaces are moved, with the ``generated_at.txt`` they had, into
    ``superseded/<that time>/`` (:func:`superseded_folder`); returns that folder, or None."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "generated_at.txt"
    texts = {name: labelled(frame, names).to_csv(index=False, date_format="%Y-%m-%d") for name, frame in tables.items()}
    changed = [name for name, text in texts.items()
               if not (folder / f"{name}.csv").exists() or (folder / f"{name}.csv").read_text() != text]
    if not changed and stamp.exists():
        return None
    kept = None
    earlier = [folder / f"{name}.csv" for name in changed if (folder / f"{name}.csv").exists()]
    if earlier and stamp.exists():
        kept = superseded_folder(folder, stamp.read_text().strip())
        for path in [*earlier, stamp]:
            path.rename(kept / path.name)
    for name in changed:
        (folder / f"{name}.csv").write_text(texts[name])
    stamp.write_text(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds") + "\n")
    return kept
