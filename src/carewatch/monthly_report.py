"""The monthly report people read: one self-contained HTML file, plus the tables behind it.

Written to ``var/reports/<YYYY-MM>/report.html`` with every table it shows as CSV and Parquet
in ``tables/`` beside it: the rows the report shows, not the warehouse's history. Each month
ranked since the last report gets one; a month whose report is there with the same figures is
not written again (``figures.json``); one whose figures changed is, and the report it replaces
is kept in ``superseded/`` beside it. It opens from disk with no network (charts are inline SVG, the
league table's sort and search are a few lines of inline script) and prints to A4. What it
says of the configuration (the funnel rule, the annual lag, the tracked metric, the peer groups,
units) is what the analysis of its tables recorded (:func:`carewatch.provenance.analysed`).
Template: ``include/templates/monthly_report.html.j2``.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pandas as pd

from carewatch import analysis, charts, paths, sources, validation, warehouse

ENGLAND = "E92000001"
AGENCIES = {"nhs": "NHS", "social_care": "Social care", "both": "Both"}
AGENCY_ORDER = {"NHS": 0, "Social care": 1, "Both": 2}


def _df(con, sql: str, params=None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def latest_month(con) -> pd.Timestamp:
    """The latest month ranked: the report month of the latest run."""
    return pd.Timestamp(con.execute("select max(period_start) from ranking_overall where period_type = 'rolling_12m'").fetchone()[0])


def gather(con, month=None) -> dict:
    """Read everything the report of ``month`` (by default the latest ranked) shows: its
    league table, flags and peer comparison, and the figures up to it (a month reported beside
    a later one, when a late DTOC month held it back, shows nothing of the months after it)."""
    month = latest_month(con) if month is None else pd.Timestamp(month)
    name_of = warehouse.area_names(con)
    metrics = _df(con, "select * from ref_metrics order by dashboard_number")
    overall = _df(con, "select * from ranking_overall where period_type = 'rolling_12m' and period_start = ?", [month])
    # an area a boundary change abolished before the month is not in its league table (its
    # last financial year's values are no league position), and two areas of one name that
    # both are (the Dorset county council and the Dorset unitary council created from it) say which is which
    from carewatch import geography

    abolished = geography.boundary_change_days(geography.code_changes(), "old_code")
    gone = {area for area, day in abolished.items() if day <= month}
    overall = overall[overall["overall_rank"].notna() | ~overall["area_code"].isin(gone)]
    shown = pd.Series({area: name_of.get(area, area) for area in overall["area_code"]}, dtype=object)
    name_of = {**name_of, **{area: f"{name} ({area})" for area, name in shown[shown.duplicated(keep=False)].items()}}
    ranked = _df(con, "select * from ranking_metric where period_type = 'rolling_12m' and period_start = ?", [month])
    # the areas ranked last month and not now, and the other way round: a change of rank partly
    # reflects them (three councils leaving the table in April 2019 moved 92 areas up)
    before = {a for (a,) in con.execute(
        "select area_code from ranking_overall where period_type = 'rolling_12m' and overall_rank is not null and period_start = ?",
        [month - pd.DateOffset(months=1)]).fetchall()}
    now_ranked = set(overall.loc[overall["overall_rank"].notna(), "area_code"])
    table_changes = {"left": sorted(before - now_ranked), "joined": sorted(now_ranked - before) if before else []}
    league = overall.copy()
    for m in metrics.itertuples():
        part = ranked[ranked["metric_id"] == m.metric_id][["area_code", "value", "metric_rank"]]
        part = part.rename(columns={"value": f"{m.metric_id}__value", "metric_rank": f"{m.metric_id}__rank"})
        league = league.merge(part, on="area_code", how="left")
    league.insert(1, "area_name", league["area_code"].map(lambda c: name_of.get(c, c)))
    league = league.sort_values(["overall_rank", "area_name"], na_position="last")
    for column in ("overall_rank", "previous_rank", "rank_change", *(f"{m}__rank" for m in metrics["metric_id"])):
        if column in league:
            league[column] = league[column].astype("Int64")  # integers with gaps, not floats
    league["period_start"] = pd.to_datetime(league["period_start"]).dt.date
    league = league.astype(object).where(league.notna(), None)

    history = _df(con, "select * from review_flag_history where period_start = ?", [month])
    history.insert(1, "area_name", history["area_code"].map(lambda c: name_of.get(c, c)))
    flagged = history[history["status"].isin(["new", "continuing"])].sort_values(["months_flagged", "area_name"], ascending=[False, True])
    cleared = history[history["status"] == "cleared"]
    not_assessed = history[history["status"] == "not assessed"]

    mv = _df(con, "select * from fct_metric_values where period_start <= ?", [month])
    for col in ("period_start", "period_end"):
        mv[col] = pd.to_datetime(mv[col])
    tracking = (_df(con, "select * from target_tracking where period_start <= ?", [month])
                if warehouse.table_exists(con, "target_tracking") else pd.DataFrame())
    peer = _df(con, "select * from peer_comparison where period_start = ?", [month])
    manifest = _df(con, "select source, period, version, sha256, url, fetched_at, bytes from raw_manifest order by source, period, version") if warehouse.table_exists(con, "raw_manifest") else pd.DataFrame()
    validation_summary = (
        _df(con, "select source, severity, success, count(*) as expectations from validation_results group by all order by all")
        if warehouse.table_exists(con, "validation_results")
        else pd.DataFrame()
    )
    # a warehouse of an earlier release may not have `expected` yet (the next validation adds it)
    expected = "expected" if "expected" in warehouse.columns(con, "validation_results") else "null as expected"
    failed_checks = (
        _df(con, f"""
            select source, period, severity, expectation, "column", {expected}, observed_value, unexpected_count, docs_url
            from validation_results where not success order by severity, source, period, expectation
        """)
        if warehouse.table_exists(con, "validation_results")
        else pd.DataFrame()
    )
    quarantined = validation.quarantined(con)
    methodology = overall["methodology"].iloc[0] if len(overall) else ""
    # the digest of the methodology file the analysis read (an earlier release's table has none)
    digest = overall["methodology_digest"].dropna().iloc[0] if "methodology_digest" in overall and overall["methodology_digest"].notna().any() else None
    from carewatch import provenance
    from carewatch.methodology import targets

    # the configuration the analysis that wrote these tables read, not config/ as it is now
    # (edited since, before this report or a rerun of it): provenance.analysed
    used = provenance.analysed(con)
    league_values = ranking_period_values(mv, used.methodology(), month)
    league_values = league_values[league_values["area_code"].isin([*league["area_code"], ENGLAND])
                                  & league_values["metric_id"].isin(metrics["metric_id"])]
    funnel_rule, funnel_tests = _funnel_tests(mv, month, league, metrics, used.rules())
    target_metric = targets.tracked_metric(used.target_sets())
    latest_estimate = con.execute("select max(mid_year) from int_population_hwb").fetchone()[0]
    flag_history_from = con.execute(  # the first month ranked, so the first whose flags were tested
        "select min(period_start) from ranking_overall where period_type = 'rolling_12m'").fetchone()[0]
    return {
        "month": month,
        "name_of": name_of,
        "metrics": metrics,
        "league": league,
        "table_changes": {side: [name_of.get(a, a) for a in areas] for side, areas in table_changes.items()},
        # earlier months this run recomputed differently from what was reported of them
        "restated": analysis.restated_words(analysis.restated_by_last_run(con)),
        "flagged": flagged,
        "cleared": cleared,
        "not_assessed": not_assessed,
        # flags a reader of the last report would otherwise find unexplained (earlier months recomputed)
        "since_last_report": analysis.since_last_report(history, *analysis.last_report_flags(con, month), name_of),
        # the metric values the report shows (tables/metric_values): its charts and tables read these only
        "mv": report_metric_values(mv, league_values, funnel_tests, [*league["area_code"], ENGLAND], target_metric),
        "funnel_rule": funnel_rule,
        "funnel_tests": funnel_tests,
        "tracking": tracking,
        "target_metric": target_metric,  # drawn by agency against the targets (config/targets/)
        "peer": peer,
        "manifest": manifest,
        "validation": validation_summary,
        "failed_checks": failed_checks,
        "quarantined": quarantined,
        "methodology": methodology,
        "methodology_digest": digest,
        "peer_method": peers_config_text(used.peer_groups()),
        "units": {m["id"]: m["unit"] for m in used.metrics()["metrics"]},  # the tables' unit column
        "population_note": population_note(month, latest_estimate),
        "sample_data": _served_locally(manifest),
        "flag_history_from": flag_history_from,
        # the values the league table ranks (with their intervals and periods) and its weights:
        # those the analysis ranked with (ranking_metric.weight), not the config file's now
        "league_values": league_values,
        "weights": {m: float(w) for m, w in ranked.groupby("metric_id")["weight"].first().items()},
    }


def _funnel_tests(mv: pd.DataFrame, month: pd.Timestamp, league: pd.DataFrame, metrics: pd.DataFrame,
                  rules: dict) -> tuple[dict, list]:
    """The funnel_outlier review rule of ``rules`` (the rule set the analysis flagged with) and
    its test of each metric for the month, on the league table's areas: the rule's own test and
    limits, so a red dot is an area the rule finds worse (config/review_flags.yaml: level,
    period type, overdispersion)."""
    from carewatch.methodology import flags as flag_rules, funnels

    rule = next((r for r in rules["rules"] if r["kind"] == "funnel_outlier"), {"level": 0.998})
    metrics = metrics[metrics["ci_method"] != "none"].set_index("metric_id")
    inputs = flag_rules.FlagInputs(
        period_start=pd.Timestamp(month), overall=league, metric_values=mv, tracking=pd.DataFrame(),
        directions=metrics["direction"].to_dict(),
        statistics={mid: funnels.STATISTIC_OF_CI_METHOD[method] for mid, method in metrics["ci_method"].items()},
        areas=set(league["area_code"]),
    )
    return rule, flag_rules.funnel_tests(rule, inputs)


def report_metric_values(mv: pd.DataFrame, league_values: pd.DataFrame, funnel_tests: list, areas: list[str],
                         target_metric: str | None) -> pd.DataFrame:
    """The rows of ``fct_metric_values`` (``mv``: up to the report's month) the report shows,
    and no other: the values its league table ranks (``league_values``: the rolling year ending
    in the month, or an annual metric's lagged financial year, of its areas and England), those
    its funnel plots test (``funnel_tests``), and the monthly series its delayed-days charts draw
    for England and each area by agency (every month up to the report's). So at most
    (areas + England) x (metrics + agencies x months) rows: not the warehouse's whole history,
    which stays in the warehouse."""
    keys = ["area_code", "metric_id", "period_type", "period_start"]
    funnel = [test.rows[["area_code"]].assign(metric_id=test.metric, period_type=test.period_type, period_start=test.period_start)
              for test in funnel_tests]
    series = mv[(mv["period_type"] == "month") & mv["metric_id"].isin(_agency_ids(target_metric)) & mv["area_code"].isin(areas)]
    wanted = pd.concat([league_values[keys], *funnel, series[keys]], ignore_index=True)
    wanted["period_start"] = pd.to_datetime(wanted["period_start"])
    return mv.merge(wanted.drop_duplicates(), on=keys, how="inner").sort_values(keys, ignore_index=True)


def peers_config_text(config: dict) -> str:
    """How similar areas are chosen, from the peer-group ``config`` (``config/peer_groups.yaml``
    as the analysis read it: :mod:`carewatch.provenance`)."""
    if config["method"] == "file":
        return f"similar areas are the groups listed in <code>{config['file']}</code>"
    return (f"similar areas are each area's {config['k']} nearest neighbours on population size and age structure "
            f"(mid-{config['mid_year']} estimates, <code>config/peer_groups.yaml</code>)")


def _served_locally(manifest: pd.DataFrame) -> bool:
    """Every file came from this machine: the embedded sample publications (``make run``)."""
    from urllib.parse import urlparse

    hosts = {urlparse(url).hostname for url in manifest.get("url", [])}
    return bool(hosts) and hosts <= {"127.0.0.1", "localhost", "::1"}


def metric_legend(data: dict) -> list[dict]:
    """What each league-table column holds: name, unit, which period (the rolling 12 months,
    or the lagged financial year of an annual metric), which way is better, its weight."""
    periods = data["league_values"].drop_duplicates("metric_id").set_index("metric_id")[["period_type", "period_start"]]
    weights = data["weights"]
    legend = []
    for m in data["metrics"].itertuples():
        if m.metric_id in periods.index:
            kind, start = periods.loc[m.metric_id]
            period = ("financial year " if kind == "financial_year" else "") + sources.period_label(kind, pd.Timestamp(start), "%B %Y")
        else:
            period = "no value this month"
        legend.append({"number": m.dashboard_number, "name": m.name, "unit": m.unit, "period": period,
                       "better": "lower is better" if m.direction == "low" else "higher is better",
                       "weight": weights.get(m.metric_id)})
    return legend


def target_summary(data: dict) -> list[dict]:
    """For each target set, the areas on and off track in its latest tracked month up to the report's."""
    tracking = data["tracking"]
    if tracking.empty:
        return []
    rows = tracking[pd.to_datetime(tracking["period_start"]) <= data["month"]]
    out = []
    for target_set, own in rows.groupby("target_set"):
        last = pd.to_datetime(own["period_start"]).max()
        now = own[pd.to_datetime(own["period_start"]) == last]
        on_track = now["on_track"].astype("boolean")  # null: the month has no figure (suppressed)
        out.append({"month": last, "set": target_set, "on_track": int(on_track.eq(True).sum()),
                    "off_track": int(on_track.eq(False).sum()), "unknown": int(on_track.isna().sum()),
                    "ended": last < data["month"]})
    return out


def population_note(month: pd.Timestamp, latest_estimate: int | None) -> str | None:
    """When the month's rates use an older ONS estimate than their financial year's own
    (config/metrics.yaml: population), which one, and that they will be revised."""
    own = sources.financial_year_start(month)
    if latest_estimate is None or latest_estimate >= own:
        return None
    return (f"Rates for months from April {latest_estimate + 1} use the ONS mid-{latest_estimate} population "
            f"estimates, the latest loaded: ONS publishes a mid-year estimate about a year after it, and these "
            f"rates (this month's included) will be revised when mid-{latest_estimate + 1} loads.")


def ranking_period_values(mv: pd.DataFrame, methodology, month: pd.Timestamp) -> pd.DataFrame:
    """The metric values the league table ranks (rolling 12 months; annual metrics' latest year)."""
    mv = mv.copy()
    for col in ("period_start", "period_end"):
        mv[col] = pd.to_datetime(mv[col])
    return analysis.ranking_values(mv, methodology, month)


def _agency_ids(metric: str | None) -> list[str]:
    return [f"{metric}__{a}" for a in AGENCIES] if metric else []


def _dtoc_rates(mv: pd.DataFrame, area: str, metric: str | None) -> pd.DataFrame:
    """Monthly rates of ``metric`` (the target sets', delayed days) by agency for one area
    (``mv``: pre-filtered or all rows)."""
    rows = mv[(mv["area_code"] == area) & (mv["period_type"] == "month") & mv["metric_id"].isin(_agency_ids(metric))]
    out = pd.DataFrame(
        {
            "period_start": pd.to_datetime(rows["period_start"]),
            "agency": rows["metric_id"].str.split("__").str[1].map(AGENCIES),
            "value": rows["value"],
        }
    )
    out["agency_order"] = out["agency"].map(AGENCY_ORDER)
    return out


def _target_line(tracking: pd.DataFrame, area: str) -> pd.DataFrame | None:
    if tracking.empty:
        return None
    rows = tracking[tracking["area_code"] == area]
    return pd.DataFrame({"period_start": pd.to_datetime(rows["period_start"]), "target": rows["target_total"]})


def _england_target(tracking: pd.DataFrame) -> pd.DataFrame | None:
    if tracking.empty:
        return None
    # the national ambition: the target set's target for an area at or above it is the ambition itself
    per_month = tracking.groupby("period_start")["target_total"].max().reset_index()
    return pd.DataFrame({"period_start": pd.to_datetime(per_month["period_start"]), "target": per_month["target_total"]})


def build_charts(data: dict) -> dict:
    mv, name_of = data["mv"], data["name_of"]
    data["peer_by_area"] = {area: g.set_index("metric_id") for area, g in data["peer"].groupby("area_code")}
    latest = data["league_values"]
    data["ci_lookup"] = {(r.area_code, r.metric_id): (r.ci_lower, r.ci_upper) for r in latest.itertuples()}
    metric = data["target_metric"]
    out = {"national_dtoc": charts.to_svg(charts.dtoc_over_time(_dtoc_rates(mv, ENGLAND, metric), _england_target(data["tracking"]), "England"))}
    flagged_now = set(data["flagged"]["area_code"])
    funnel_figures = []
    rule = data["funnel_rule"]
    tests = {test.metric: test for test in data["funnel_tests"]}
    for m in data["metrics"].itertuples():
        test = tests.get(m.metric_id)
        if test is None:
            continue
        worse = "high" if m.direction == "low" else "low"
        points = pd.DataFrame(
            {
                "area_name": test.rows["area_code"].map(lambda c: name_of.get(c, c)),
                "denominator": test.rows["denominator"],
                "value": test.rows["value"],
                "flagged": (test.labels == worse).to_numpy(),
            }
        )
        title = textwrap.wrap(f"{m.name} ({sources.period_label(test.period_type, test.period_start)})", 52)  # whole, on as many lines as it takes
        unit = f"{m.unit} (%)" if m.unit == "proportion" else m.unit
        denominator = getattr(m, "denominator_unit", None)  # None in a warehouse built before it was configured
        denominator = None if pd.isna(denominator) else denominator
        funnel_figures.append({"metric": m.name, "svg": charts.to_svg(
            charts.funnel_plot(points, test, m.multiplier, title, unit, denominator))})
    out["funnels"] = funnel_figures
    out["funnel_rule"] = {"level": f"{float(rule['level']) * 100:g}%", "overdispersion": bool(rule.get("overdispersion", False)),
                          "annual_lag_months": int(rule.get("annual_lag_months", 6))}
    profiles = []
    dtoc_monthly = mv[(mv["period_type"] == "month") & mv["metric_id"].isin(_agency_ids(metric))]
    by_area = dict(tuple(dtoc_monthly.groupby("area_code")))
    tracking_by_area = dict(tuple(data["tracking"].groupby("area_code"))) if len(data["tracking"]) else {}
    area_chart = charts.DtocOverTime("Delayed days against target", width=420, height=120)
    for row in data["league"].itertuples():
        area = row.area_code
        rates = _dtoc_rates(by_area.get(area, dtoc_monthly.iloc[:0]), area, metric)
        target = _target_line(tracking_by_area.get(area, pd.DataFrame()), area) if area in tracking_by_area else None
        dtoc_svg = area_chart.svg(rates, target) if len(rates) else ""
        profiles.append(
            {
                "area_code": area,
                "area_name": row.area_name,
                "overall_rank": row.overall_rank,  # int or None
                "flagged": area in flagged_now,
                "dtoc_svg": dtoc_svg,
                "comparison": _comparison_table(data, area),
            }
        )
    out["profiles"] = profiles
    return out


def _fmt(value, unit: str) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{value * 100:.1f}%" if unit == "proportion" else f"{value:,.1f}"


def _comparison_table(data: dict, area: str) -> list[dict]:
    """The area's six metrics with 95% intervals, against its similar areas and England; a
    metric without a figure (suppressed, or not published for the area) says so."""
    peer = data["peer_by_area"].get(area)
    if peer is None:
        return []
    rows = []
    for m in data["metrics"].itertuples():
        if m.metric_id not in peer.index:
            rows.append({"metric": m.name, "value": "no figure", "interval": "", "peers": "", "england": "",
                         "rank_in_group": "", "vs_england": "not compared", "vs_peers": "not compared"})
            continue
        r = peer.loc[m.metric_id]
        ci = data["ci_lookup"].get((area, m.metric_id), (None, None))
        period = ""
        if "value_period_type" in r.index and not pd.isna(r["value_period_type"]):  # an older warehouse has not got it
            period = f" ({sources.period_label(r['value_period_type'], pd.Timestamp(r['value_period_start']))})"
        rows.append({
            "metric": m.name + period,
            "value": _fmt(r["value"], m.unit),
            "interval": f"{_fmt(ci[0], m.unit)} to {_fmt(ci[1], m.unit)}" if ci[0] is not None and not pd.isna(ci[0]) else "",
            "peers": _fmt(r["peer_value"], m.unit),
            "england": _fmt(r["england_value"], m.unit),
            "rank_in_group": f"{int(r['rank_in_group'])} of {int(r['group_size'])}",
            "vs_england": r["vs_england"],
            "vs_peers": r["vs_peers"],
        })
    return rows


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows for the template, missing values as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """List columns (lineage: source_files) as ';'-joined text for CSV."""
    out = frame.copy()
    for column in out.columns:
        sample = out[column].dropna().head(1)
        if len(sample) and not isinstance(sample.iloc[0], (str, bytes)) and hasattr(sample.iloc[0], "__len__"):
            out[column] = out[column].map(lambda v: ";".join(map(str, v)) if v is not None and hasattr(v, "__len__") else v)
    return out


def _table_ready(frame: pd.DataFrame, name_of: dict[str, str], units: dict[str, str] | None = None) -> pd.DataFrame:
    """A table as the report's tables/ folder holds it: the warehouse's DATE columns as dates
    (:func:`carewatch.analysis.date_columns`), with area names and metric units
    (:func:`carewatch.analysis.labelled`; ``units``: those of the metrics config the analysis read)."""
    out = analysis.labelled(frame, name_of, units)
    for column in analysis.date_columns(out):  # a DATE in Parquet even when empty or all null
        out[column] = out[column].astype("date32[pyarrow]")
    return out


# the tables of a report that hold its figures: a report whose figures are those it already
# shows is not written again (the other tables say what was loaded and checked when it was written)
FIGURES = ("league_table", "review_flags", "review_flags_cleared", "review_flags_not_assessed", "peer_comparison",
           "target_tracking", "metric_values")
STAMP = "figures.json"
LATEST = "latest.txt"  # in var/reports/: the latest report's path


def record_latest(report: Path) -> None:
    """``var/reports/latest.txt``: the latest report's path, relative to the home, so a home
    copied or moved elsewhere points at its own report."""
    home = paths.home()
    try:
        text = str(Path(report).resolve().relative_to(home.resolve()))
    except ValueError:  # a report outside the home (written with out_dir): as it is
        text = str(report)
    (home / "reports" / LATEST).write_text(text + "\n")


def latest_report() -> Path | None:
    """The latest report's path (:func:`record_latest`), or None before the first report. An
    absolute path (as earlier releases wrote it) is read as this home's own report of that
    month when the home has one: a copied home's file still names the original's."""
    latest = paths.home() / "reports" / LATEST
    if not latest.exists():
        return None
    path = Path(latest.read_text().strip())
    if not path.is_absolute():
        return paths.home() / path
    own = paths.home() / "reports" / path.parent.name / path.name
    return own if own.exists() else path


def report_months(con) -> list[tuple[pd.Timestamp, bool]]:
    """The months to report, in order, each with whether the latest analysis reported it
    (``analysis_runs``): those, and the months the earlier analyses of the same report month
    reported (False: written only if missing, so a rerun after a run whose report step failed
    still writes every month that run reported, and restates none of them); the latest ranked
    month before any analysis ran."""
    if not warehouse.table_exists(con, "analysis_runs") or not con.execute("select count(*) from analysis_runs").fetchone()[0]:
        return [(latest_month(con), True)]
    rows = con.execute("""
        with runs as (select analysed_at, max(month) over (partition by analysed_at) as run_month, month from analysis_runs)
        select month, bool_or(analysed_at = (select max(analysed_at) from runs)) from runs
        where run_month = (select max_by(run_month, analysed_at) from runs) group by month order by month""").fetchall()
    return [(pd.Timestamp(m), bool(own)) for m, own in rows]


def read_stamp(folder: Path) -> dict:
    """What ``figures.json`` in a report's folder says: ``figures_sha256`` (of the tables that
    hold its figures), ``written_at``; empty when there is none (a report of an earlier release)."""
    import json

    path = Path(folder) / STAMP
    return json.loads(path.read_text()) if path.exists() else {}


def write_reports(con) -> list[tuple[pd.Timestamp, Path, bool]]:
    """The report of each month the latest analysis reported (:func:`report_months`), in
    order, each in ``var/reports/<YYYY-MM>/``; a month whose report is there with the same
    figures (or, for a month an earlier analysis reported, at all) is left as it was (a rerun, or a run while the next DTOC month is late, rewrites
    nothing unless a figure changed). A report rewritten because its figures changed is not
    lost: :func:`supersede` moves it aside first. Returns (month, report.html, written by this call)."""
    out = []
    for month, own in report_months(con):
        folder = paths.home() / "reports" / month.strftime("%Y-%m")
        if not own and (folder / "report.html").exists():
            out.append((month, folder / "report.html", False))
            continue
        data = gather(con, month)
        digest = figures_digest(data)
        if (folder / "report.html").exists() and read_stamp(folder).get("figures_sha256") == digest:
            out.append((month, folder / "report.html", False))
            continue
        out.append((month, write_report(con, folder, data=data, replaces=supersede(folder)), True))
    return out


# why a report replaced without figures.json (an earlier release's) was rewritten: not a figure changed
EARLIER_RELEASE = "the earlier one, written by an earlier release, recorded no figures to compare with"


def unstamped(kept: Path) -> bool:
    """Whether the report kept in ``kept`` (``superseded/<written_at>/``) had no ``figures.json``:
    written by an earlier release, so it was rewritten without knowing whether a figure changed."""
    return not (kept / STAMP).exists()


def what_became_of(month, report: Path, written: bool) -> str:
    """One line on a report :func:`write_reports` handled, for the report task's log (what the
    Airflow UI shows: a rerun of the task, or of the metrics run, says whether it wrote anything):
    written, rewritten (with where the earlier one is kept) or standing as it was."""
    stamp = read_stamp(report.parent)
    if not written:
        return f"{month:%B %Y} report: the one written at {stamp.get('written_at', 'an earlier run')} stands, not rewritten ({report})"
    if stamp.get("replaces"):
        kept = report.parent / stamp["replaces"]
        why = EARLIER_RELEASE if unstamped(kept) else "figures changed"
        return f"{month:%B %Y} report rewritten ({why}): {report}; the earlier one is kept in {kept}"
    return f"{month:%B %Y} report written: {report}"


def supersede(folder: Path) -> Path | None:
    """Move the report in ``folder`` that is about to be rewritten into
    ``superseded/<its written_at>/`` (:func:`carewatch.analysis.superseded_folder`; the file's
    time for a report without ``figures.json``): its ``report.html`` (self-contained: every
    figure it showed), ``figures.json`` and ``tables/*.parquet`` (the tables behind it, typed;
    not their CSV copies, 9 in 10 of a report folder's bytes). Returns that folder; None when
    there is no report."""
    report = folder / "report.html"
    if not report.exists():
        return None
    written = read_stamp(folder).get("written_at") or dt.datetime.fromtimestamp(report.stat().st_mtime, dt.timezone.utc).isoformat()
    kept = analysis.superseded_folder(folder, written)
    for path in (report, folder / STAMP):
        if path.exists():
            path.rename(kept / path.name)
    tables = sorted((folder / "tables").glob("*.parquet"))
    if tables:
        (kept / "tables").mkdir()
        for path in tables:
            path.rename(kept / "tables" / path.name)
    return kept


def figures_digest(data: dict) -> str:
    """sha256 of the report's figures: its tables that hold them (:data:`FIGURES`) as written."""
    import hashlib

    digest = hashlib.sha256()
    for name, frame in report_tables(data).items():
        if name in FIGURES:
            digest.update(name.encode())
            digest.update(_csv_ready(_table_ready(frame, data["name_of"], data.get("units"))).to_csv(index=False).encode())
    return digest.hexdigest()


def report_tables(data: dict) -> dict[str, pd.DataFrame]:
    """The tables the report's ``tables/`` folder holds, by name."""
    return {
        "league_table": data["league"],
        "review_flags": data["flagged"],
        "review_flags_cleared": data["cleared"],
        "review_flags_not_assessed": data["not_assessed"],
        "peer_comparison": data["peer"],
        "target_tracking": data["tracking"],
        "metric_values": data["mv"],
        "source_files": data["manifest"],
        "validation_summary": data["validation"],
        "validation_failures": data["failed_checks"],
        "quarantine": data["quarantined"],
    }


def write_report(con, out_dir: Path | None = None, month=None, data: dict | None = None, replaces: Path | None = None) -> Path:
    """Render the report of ``month`` (by default the latest ranked), from ``data`` when it
    was gathered already; returns the path of report.html. ``figures.json`` beside it records
    the digest of its figures (:func:`figures_digest`), when it was written and, when it
    ``replaces`` a report moved aside (:func:`supersede`), where that one is kept."""
    import json

    import jinja2

    data = gather(con, month) if data is None else data
    figures = build_charts(data)
    folder = Path(out_dir or paths.home() / "reports" / data["month"].strftime("%Y-%m"))
    tables_dir = folder / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in report_tables(data).items():
        frame = _table_ready(frame, data["name_of"], data.get("units"))
        frame.to_parquet(tables_dir / f"{name}.parquet", index=False)
        _csv_ready(frame).to_csv(tables_dir / f"{name}.csv", index=False)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.PROJECT_ROOT / "include" / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    env.filters["shown_expected"] = validation.shown_expected
    html = env.get_template("monthly_report.html.j2").render(
        month=data["month"],
        generated_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        methodology=data["methodology"],
        methodology_digest=data.get("methodology_digest"),
        population_note=data["population_note"],
        sample_data=data["sample_data"],
        flag_history_from=data["flag_history_from"],
        legend=metric_legend(data),
        peer_method=data["peer_method"],
        targets=target_summary(data),
        metrics=data["metrics"].to_dict("records"),
        league=data["league"].to_dict("records"),
        table_changes=data["table_changes"],
        restated=data["restated"],
        flagged=data["flagged"].to_dict("records"),
        cleared=data["cleared"].to_dict("records"),
        since_last_report=data["since_last_report"],
        # flagged last month, and never flagged (not ranked: e.g. created by a boundary change)
        not_assessed=data["not_assessed"][data["not_assessed"]["first_flagged"].notna()].to_dict("records"),
        not_assessed_unflagged=data["not_assessed"][data["not_assessed"]["first_flagged"].isna()].to_dict("records"),
        manifest=data["manifest"].to_dict("records"),
        validation=data["validation"].to_dict("records"),
        failed_checks=_records(data["failed_checks"]),
        quarantined=_records(data["quarantined"]),
        figures=figures,
        tables=sorted(p.name for p in tables_dir.iterdir()),
    )
    target = folder / "report.html"
    target.write_text(html, encoding="utf-8")
    stamp = {"month": data["month"].strftime("%Y-%m"), "figures_sha256": figures_digest(data),
             "written_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    if replaces is not None:
        stamp["replaces"] = str(Path(replaces).relative_to(folder))  # superseded/<its written_at>
    (folder / STAMP).write_text(json.dumps(stamp) + "\n")
    return target
