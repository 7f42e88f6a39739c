"""The monthly report as a person sees it: rendered by headless Chromium, offline.

Screenshots of the key sections are written to ``var/test-artifacts/report/`` (kept after
the run: they are part of the test output) and their paths printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from carewatch import analysis, monthly_report, paths
from tests import synthetic_warehouse

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (make test installs it)")
ARTIFACTS = paths.PROJECT_ROOT / "var" / "test-artifacts" / "report"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # anything that tries the network fails to resolve: an offline machine, on purpose
         "--host-resolver-rules=MAP * ~NOTFOUND"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    db = folder / "w.duckdb"
    areas = synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        # one council's reablement suppressed, as ASCOF suppresses small councils: a gap in the league table
        con.execute("""update fct_metric_values set numerator = null, value = null, ci_lower = null, ci_upper = null
                       where area_code = ? and metric_id = 'reablement_still_at_home_91d_65plus'""", [areas[5]])
        analysis.run(con, export=False)
        path = monthly_report.write_report(con, folder / "out")
        flagged = con.execute(
            "select area_code from review_flag_history where status <> 'cleared' and period_start = (select max(period_start) from review_flag_history)"
        ).fetchall()
        ranked = con.execute(
            "select area_code, overall_rank from ranking_overall where period_type = 'rolling_12m' and period_start = (select max(period_start) from ranking_overall)"
        ).fetchall()
        funnel_flagged = con.execute(
            "select hwb_name from review_flag join ref_hwb_areas on hwb_code = area_code "
            "where rule_id = 'funnel_outlier' and period_start = (select max(period_start) from review_flag)"
        ).fetchall()
    return path, {a for (a,) in flagged}, dict(ranked), {name for (name,) in funnel_flagged}


def chromium(args, tmp_path):
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_nothing_is_fetched_from_the_network(report):
    html = Path(report[0]).read_text()
    external = re.findall(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+|url\(\s*["']?https?://|@import""", html)
    assert external == []


def test_rendered_dom_shows_the_warehouse_figures(report, tmp_path):
    path, flagged, ranked, _ = report
    dom = chromium(["--virtual-time-budget=5000", "--dump-dom", f"file://{path}"], tmp_path).stdout
    flag_table = dom.split('id="flag-table"')[1].split("</table>")[0]
    assert set(re.findall(r'data-area="([^"]+)"', flag_table)) == flagged
    league = dom.split('id="league-table"')[1].split("</table>")[0]
    rows = re.findall(r'<tr data-area="([^"]+)"[^>]*>\s*<td class="text">[^<]*</td>\s*<td>([^<]*)</td>', league)
    assert len(rows) == len(ranked) == 40
    for area, rank in rows:
        assert rank.strip() == str(ranked[area])
    # every chart rendered as SVG: national DTOC, one funnel per metric with intervals, one per area
    svgs = dom.count("<svg")
    assert svgs >= 1 + 5 + 40
    assert dom.count('<table class="comparison">') == 40
    assert 'id="chart-national-dtoc"><svg' in dom.replace("\n", "")
    # the data-quality section lists exactly the failed expectations and the quarantined batch
    failed = dom.split('id="failed-checks-table"')[1].split("</table>")[0]
    shown = re.findall(r'<tr><td class="text">([^<]+)</td><td class="text">([^<]+)</td><td class="text">([^<]+)</td>', failed)
    assert shown == [("hes_aggregate", "2018-02", "blocking"), ("dtoc_la", "2018-03", "warning")]
    assert "value_set=['2018-02-01']" in failed and "mostly=0.98" in failed  # what was expected
    assert "Quarantined (not loaded): <b>hes_aggregate 2018-02</b> (version 2; version 3 loaded since)" in dom
    # March 2018 (2017-18) with mid-2016 the latest estimate loaded: said, with the revision to come
    note = dom.split('id="population-note">')[1].split("</p>")[0]
    assert note.startswith("Rates for months from April 2017 use the ONS mid-2016 population estimates")
    assert "revised when mid-2017 loads" in note
    # every column of the league table said: which period (reablement: its lagged financial year), which way is better
    legend = dom.split('id="metric-legend"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(\d)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td></tr>", legend)
    by_number = {number: (period, better, weight) for number, _, _, period, better, weight in rows}
    assert len(rows) == 6
    assert by_number["4"] == ("financial year 2016-17", "higher is better", "1")
    assert by_number["3"] == ("12 months to March 2018", "lower is better", "3")  # config/methodology/dashboard-2018.yaml
    # each profile row says which period its value is of
    assert dom.count("Still at home 91 days after reablement (2B1) (2016-17)</td>") == 39  # one suppressed: ...
    suppressed = dom.split('id="area-E06000005"')[1].split("</details>")[0]  # ... its row says so, six rows all the same
    assert '<td class="text">Still at home 91 days after reablement (2B1)</td><td>no figure</td>' in suppressed
    assert suppressed.count("<tr><td") == 6
    assert dom.count("Delayed days per day per 100,000 18+ (12 months to Mar 2018)</td>") == 40
    assert 'id="sample-data"' in dom  # its only download came from this machine


def test_target_summary_and_tables_as_an_analyst_reads_them(report):
    import csv

    path = Path(report[0])
    html = path.read_text()
    with duckdb.connect(str(path.parent.parent / "w.duckdb"), read_only=True) as con:
        on, off = con.execute("""select count(*) filter (where on_track), count(*) filter (where not on_track) from target_tracking
                                 where period_start = (select max(period_start) from target_tracking)""").fetchone()
        first = con.execute("select min(period_start) from ranking_overall where period_type = 'rolling_12m'").fetchone()[0]
    assert f"Flag history starts in {first:%B %Y}, the first month ranked" in html
    summary = html.split('id="target-summary">')[1].split("</p>")[0]
    assert f"<b>{on}</b> areas on track" in summary and f"<b>{off}</b> off track" in summary
    with (path.parent / "tables" / "league_table.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["period_start"] for r in rows} == {"2018-03-01"}  # a date, not a timestamp
    ranks = [v for r in rows for k, v in r.items() if k.endswith("rank")]
    assert "" in ranks and all(v == "" or v.isdigit() for v in ranks)  # integers (29, not 29.0), even beside gaps


def test_funnel_plots_mark_the_areas_the_review_rule_flags(report):
    # red labels on the funnel plots are exactly the areas the funnel_outlier rule flagged this
    # month: the plots draw the rule's own test and limits, not a stricter or looser one
    html = Path(report[0]).read_text()
    figures = [part.split("</figure>")[0] for part in html.split('class="chart funnel"')[1:]]
    assert figures
    labelled = {text for figure in figures for text in re.findall(r'<text[^>]*fill="#d5281b"[^>]*>([^<]+)</text>', figure)}
    assert labelled and labelled == report[3]


def test_funnel_caption_states_the_configured_rule(report, tmp_path, monkeypatch):
    # the caption names the rule's level, overdispersion and annual lag from config, as the
    # plots draw them: the shipped rule, then a changed one (a new version of the rule set)
    # analysed and written to a report. The report follows the rule the analysis read
    # (analysis_config), so the change is analysed first, on a copy of the warehouse
    def caption(html):
        return " ".join(html.split('id="funnels">')[1].split("</p>")[0].split())

    shipped = caption(Path(report[0]).read_text())
    assert "99.8%, widened for overdispersion) and the same test at 95%" in shipped
    assert "latest year that ended 6 months or more ago" in shipped
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    rules = config / "review_flags.yaml"
    text = rules.read_text().replace("version: 1", "version: 2", 1)
    text = text.replace("level: 0.998 ", "level: 0.95  ", 1).replace("overdispersion: true", "overdispersion: false\n    annual_lag_months: 9", 1)
    rules.write_text(text)
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    db = tmp_path / "w.duckdb"
    shutil.copy(Path(report[0]).parent.parent / "w.duckdb", db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        text = caption(monthly_report.write_report(con, tmp_path / "out").read_text())
    assert "(<code>config/review_flags.yaml</code>: 95%) and the same test at 95%" in text
    assert "latest year that ended 9 months or more ago" in text


def test_screenshots_of_the_key_sections(report, tmp_path):
    path = report[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {}
    for name, height in (("top-league-table", 1400), ("full-page", 9000)):
        target = ARTIFACTS / f"{name}.png"
        target.unlink(missing_ok=True)  # a file left by an earlier run must not pass for this one
        done = chromium([f"--window-size=1200,{height}", f"--screenshot={target}", f"file://{path}"], tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert target.exists() and target.stat().st_size > 20_000, target
        shots[name] = target
    pdf = ARTIFACTS / "report-a4.pdf"
    pdf.unlink(missing_ok=True)
    done = chromium([f"--print-to-pdf={pdf}", "--no-pdf-header-footer", f"file://{path}"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert pdf.exists() and pdf.read_bytes()[:4] == b"%PDF"
    print("\nreport screenshots:", *shots.values(), pdf, sep="\n  ")
