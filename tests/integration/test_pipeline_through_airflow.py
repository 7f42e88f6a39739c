"""The DAGs run through Airflow itself, against the embedded samples served over real HTTP."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from carewatch import paths, rawstore

pytestmark = pytest.mark.airflow


ROOT = Path(__file__).resolve().parents[2]


def _about(doc: str, table: str) -> str:
    """What the contract says about one table: the table rows and paragraphs that name it, and
    the sections whose heading names it (a landing or staging table's columns are in its
    source's section; `land_<source>` stands for every landing table; a `reported_<table>` copies
    its table's columns)."""
    names = {table}
    for prefix in ("land_", "stg_"):
        if table.startswith(prefix):
            names |= {table.removeprefix(prefix), prefix + "<source>"}
    if table.startswith("reported_"):
        names.add(table.removeprefix("reported_"))
    units = []
    for block in re.split(r"\n\s*\n", doc):
        units.extend(block.splitlines() if block.lstrip().startswith("|") else [block])
    about = [unit for unit in units if any(f"`{name}`" in unit for name in names)]
    about += [section for section in re.split(r"\n(?=#)", doc) if any(f"`{name}`" in section.splitlines()[0] for name in names)]
    return "\n".join(about)


def _undocumented(con) -> list[str]:
    """Tables of a built warehouse that docs/data-contract.md does not name, and columns it does
    not name (in backticks) where it speaks of their table. `test_<id>` stands for
    target_tracking's columns of the tests in config/targets/."""
    doc = (ROOT / "docs" / "data-contract.md").read_text()
    test_ids = {f"test_{test['id']}" for f in (ROOT / "config" / "targets").glob("*.yaml")
                for test in yaml.safe_load(f.read_text()).get("tests", [])}
    missing = []
    for table, column in con.execute(
        "select table_name, column_name from information_schema.columns where table_schema = 'main' "
        "order by table_name, ordinal_position"
    ).fetchall():
        about = _about(doc, table)
        if not about:
            missing.append(table)
        elif f"`{column}`" not in about and not (table.removeprefix("reported_") == "target_tracking" and column in test_ids):
            missing.append(f"{table}.{column}")
    return sorted(set(missing))


def _manifest():
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        return con.execute("select source, period, version, sha256 from raw_manifest order by all").fetchall()


def test_ingest_dag_fetches_parses_and_loads_then_a_rerun_fetches_nothing(airflow_db, sample_base_url, carewatch_home, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CAREWATCH_BASE_URL", sample_base_url)
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_la")
    when = dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc)
    run = dag.test(logical_date=when, run_conf={"from_period": "2017-01", "to_period": "2017-03"})
    assert str(run.state) == "success"
    manifest = _manifest()
    assert [(s, p, v) for s, p, v, _ in manifest] == [("dtoc_la", "2017-01", 1), ("dtoc_la", "2017-02", 1), ("dtoc_la", "2017-03", 1)]
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        loaded = con.execute(
            "select _period, count(*) from land_dtoc_la where breakdown = 'agency' group by 1 order by 1"
        ).fetchall()
    # England + 151 councils + 3 special rows, each with NHS, social care, both and total
    assert loaded == [("2017-01", 155 * 4), ("2017-02", 155 * 4), ("2017-03", 155 * 4)]
    summary = json.loads((paths.home() / "runs" / "ingest" / "dtoc_la.json").read_text())
    assert summary["files_parsed"] == 3
    # the DAG.test run registered the DAG paused: `make airflow` on this home starts no
    # scheduled run for today's month (the samples end in 2020)
    from airflow.models.dag import DagModel

    assert DagModel.get_dagmodel("ingest_dtoc_la").is_paused

    store = rawstore.listing()
    again = dag.test(logical_date=when + dt.timedelta(days=1), run_conf={"from_period": "2017-01", "to_period": "2017-03"})
    assert str(again.state) == "success"
    assert _manifest() == manifest and rawstore.listing() == store
    summary = json.loads((paths.home() / "runs" / "ingest" / "dtoc_la.json").read_text())
    assert (summary["files_parsed"], summary["files_unchanged"]) == (0, 3)
    # every file passed before, against the same history (then parsed, now loaded): not validated again
    assert (summary["validations_run"], summary["validations_reused"], summary["loads_skipped"]) == (0, 3, 3)


def test_monthly_run_for_a_logical_date_handles_the_due_period_and_its_revision_window(airflow_db, sample_base_url, carewatch_home, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CAREWATCH_BASE_URL", sample_base_url)
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_la")
    # 15 November 2017: September 2017 was due on 9 November; October's is not yet due. The
    # 12 months before it are checked again for revisions (config/sources.yaml)
    run = dag.test(logical_date=dt.datetime(2017, 11, 15, 9, tzinfo=dt.timezone.utc))
    assert str(run.state) == "success"
    expected = ["2016-09", "2016-10", "2016-11", "2016-12"] + [f"2017-{m:02d}" for m in range(1, 10)]
    assert [p for _, p, _, _ in _manifest()] == expected


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """A home built by what `make run` does (every DAG through Airflow on the embedded samples),
    once for the module: (its directory, the run's environment, the finished run)."""
    tmp_path = tmp_path_factory.mktemp("make_run")
    env = dict(os.environ, CAREWATCH_HOME=str(tmp_path / "home"), AIRFLOW_HOME=str(tmp_path / "airflow"))
    env.pop("CAREWATCH_BASE_URL", None)
    first = subprocess.run([sys.executable, "-m", "carewatch.cli", "run"], env=env, capture_output=True, text=True, timeout=900)
    return tmp_path, env, first


def test_make_run_warehouse_matches_the_world_the_samples_were_written_from(make_run):
    """The six dashboard metrics in the warehouse `make run` built, against the same metrics
    computed independently in pandas from the sample world itself (tests/world_truth.py: its
    docstring states each rule and where it is documented): every HWB area and England, every
    month (April 2016 - March 2018), every rolling 12 months (to March 2017 ... March 2018),
    the financial years 2016-17 and 2017-18, and ASCOF's 2014-15 to 2016-17; numerator,
    denominator and value.

    Tolerance: none on numerators and denominators (the sample writers publish the World's
    counts and populations as whole numbers, the hospital aggregate's percentile unrounded,
    and the metrics read ASCOF's counts, not its one-decimal "Outcome"; the window mean of
    twelve whole-number populations is one division, correctly rounded either side). Values
    are quotients of those: equal to a relative 1e-12, which only the order of the floating
    point multiply and divide (numerator / denominator * multiplier) can account for.
    """
    import datetime as dt

    import numpy as np
    import pandas as pd

    from tests.world_truth import COLUMNS, WorldTruth, _months

    tmp_path, _, first = make_run
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    truth = WorldTruth(ROOT)
    last = dt.date(2018, 3, 1)  # the month `make run` reports
    expected = pd.concat(
        [truth.month(m) for m in _months(last, 24)]
        + [truth.rolling_12m(m) for m in _months(last, 13)]
        + [truth.financial_year("2016-17"), truth.monthly_metrics(_months(last), "financial_year", dt.date(2017, 4, 1))]
        + [truth.ascof(fy) for fy in ("2014-15", "2015-16")],
        ignore_index=True,
    )
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as con:
        built = con.execute(f"select {', '.join(COLUMNS)} from fct_metric_values where metric_id = base_metric_id").df()
    built["period_start"] = pd.to_datetime(built["period_start"]).dt.date
    both = expected.merge(built, on=COLUMNS[:4], how="outer", suffixes=("_world", "_built"), indicator=True)
    # the same rows: every area and England in every period compared, and no other period
    missing = both[both["_merge"] != "both"]
    assert missing.empty, missing[COLUMNS[:4] + ["_merge"]].head(20).to_string()
    assert len(both) == 24 * 4 * 151 + 13 * 4 * 151 + 2 * 4 * 151 + 3 * 2 * 151

    def differ(column: str, rtol: float) -> pd.DataFrame:
        world, built = both[f"{column}_world"].astype(float), both[f"{column}_built"].astype(float)
        same = (world.isna() & built.isna()) | (world == built)
        if rtol:
            same |= np.isclose(world, built, rtol=rtol, atol=0)
        return both.loc[~same, COLUMNS[:4] + [f"{column}_world", f"{column}_built"]]

    for column, rtol in (("numerator", 0.0), ("denominator", 0.0), ("value", 1e-12)):
        wrong = differ(column, rtol)
        assert wrong.empty, f"{len(wrong)} {column}s differ from the world's:\n" + wrong.head(20).to_string()
    # not vacuous: the two ASCOF 2B(1) numerators withheld each year are the only nulls
    # besides the p90's numerator
    nulls = both[both["metric_id"] != "los_p90_days_65plus"]["numerator_world"].isna()
    assert nulls.sum() == 3 * int(truth.samples["ascof"]["suppressed_per_year"])


def test_make_run_end_to_end_twice(make_run):
    """What `make run` does: every DAG through Airflow on the embedded samples; then again."""
    tmp_path, env, first = make_run
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Overall ranking of 150 HWB areas" in first.stdout
    assert "Monthly report:" in first.stdout
    db = tmp_path / "home" / "warehouse.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        ranked = con.execute(
            "select count(*) from ranking_overall where period_type = 'rolling_12m' and period_start = date '2018-03-01' and overall_rank is not null"
        ).fetchone()[0]
        facts = con.execute("select * exclude (source_files) from fct_metric_values order by all").fetchall()
        manifest = con.execute("select source, period, version, sha256 from raw_manifest order by all").fetchall()
    assert ranked == 150
    with duckdb.connect(str(db), read_only=True) as con:
        assert _undocumented(con) == [], "docs/data-contract.md does not name these tables or columns"
    report = (tmp_path / "home" / "reports" / "2018-03" / "report.html")
    assert report.exists()

    second = subprocess.run([sys.executable, "-m", "carewatch.cli", "run"], env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select source, period, version, sha256 from raw_manifest order by all").fetchall() == manifest
        assert con.execute("select * exclude (source_files) from fct_metric_values order by all").fetchall() == facts
        fetched = con.execute("select outcome, count(*) from fetch_log group by 1").fetchall()
    outcomes = dict(fetched)
    assert outcomes["new_version"] == len(manifest) and outcomes["unchanged"] == len(manifest)
    # nothing was validated, loaded or emailed twice: every file had passed and was loaded
    for source in ("dtoc_la", "hes_aggregate", "ascof", "ons_mye", "dtoc_national"):
        summary = json.loads((tmp_path / "home" / "runs" / "ingest" / f"{source}.json").read_text())
        assert summary["validations_run"] == 0 and summary["validations_reused"] == len(summary["periods"]) > 0, summary
        assert summary["loads_skipped"] == len(summary["periods"]), summary
    first_mail, second_mail = sorted((tmp_path / "home" / "mail").iterdir())
    assert len(list(first_mail.glob("*.eml"))) >= 1  # the completeness warning of the embedded data
    assert list(second_mail.glob("*.eml")) == []


def _asset_events(uri: str, run_id: str) -> int:
    """Asset events Airflow recorded for ``uri`` from the DAG run ``run_id``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).select_from(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                              .where(AssetModel.uri == uri, AssetEvent.source_run_id == run_id))


def test_a_bad_file_is_quarantined_emailed_and_fails_its_source_while_the_others_load(airflow_db, carewatch_home, tmp_path, monkeypatch):
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    from carewatch import mailcatcher, sample_server

    served = tmp_path / "served"
    (served / "dtoc_la").mkdir(parents=True)
    for month in ("2017-01", "2017-02"):
        shutil.copy(paths.samples_dir() / "dtoc_la" / f"{month}.xls", served / "dtoc_la" / f"{month}.xls")
    # March's URL serves December 2016's workbook: its Period cell says December 2016 (not a
    # file another period holds: that is refused before it is stored, test_fetch)
    shutil.copy(paths.samples_dir() / "dtoc_la" / "2016-12.xls", served / "dtoc_la" / "2017-03.xls")
    shutil.copytree(paths.samples_dir() / "hes_aggregate", served / "hes_aggregate")
    logical = dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc)
    bag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags"))
    with sample_server.serve_samples(served) as base, mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("CAREWATCH_BASE_URL", base)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        bad = bag.get_dag("ingest_dtoc_la").test(logical_date=logical, run_conf={"from_period": "2017-01", "to_period": "2017-03"})
        other = bag.get_dag("ingest_hes_aggregate").test(logical_date=logical, run_conf={"from_period": "2017-01", "to_period": "2017-03"})
        caught = mailcatcher.messages(mailbox)
        # the next run meets the same bad file (still in its revision window): it stays
        # quarantined, its validate task is skipped, nothing is emailed again, and the run
        # succeeds and publishes the source's Asset, so the metrics DAG is not held back
        later = bag.get_dag("ingest_dtoc_la").test(logical_date=logical + dt.timedelta(days=1),
                                                   run_conf={"from_period": "2017-01", "to_period": "2017-03"})
        caught_later = mailcatcher.messages(mailbox)
    assert str(bad.state) == "failed" and str(other.state) == "success"
    # the failed run still publishes the source's Asset (its good months loaded; March was
    # emailed), so the metrics DAG of the month is not held back by one bad file
    bad_states = {(ti.task_id, ti.map_index): str(ti.state) for ti in bad.get_task_instances()}
    assert bad_states[("one_period.validate", 2)] == "failed" and bad_states[("summarise", -1)] == "upstream_failed"
    assert bad_states[("publish_asset", -1)] == "success" and bad_states[("trigger_metrics", -1)] == "skipped"
    assert _asset_events("carewatch://landed/dtoc_la", bad.run_id) == 1
    assert str(later.state) == "success" and len(caught_later) == len(caught)
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in later.get_task_instances()}
    assert states[("one_period.validate", 2)] == "skipped" and states[("one_period.load", 2)] == "skipped"
    assert states[("summarise", -1)] == "success"
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        loaded = [p for (p,) in con.execute("select distinct _period from land_dtoc_la order by 1").fetchall()]
        other_loaded = [p for (p,) in con.execute("select distinct _period from land_hes_aggregate order by 1").fetchall()]
        quarantined = con.execute("select period, blocking_failures from quarantine").fetchall()
        failed_checks = con.execute("select period, expectation, \"column\" from validation_results where not success").fetchall()
        docs = con.execute("select distinct docs_url from validation_results where source = 'dtoc_la' and period = '2017-03'").fetchall()
    assert loaded == ["2017-01", "2017-02"] and other_loaded == ["2017-01", "2017-02", "2017-03"]
    assert [q[0] for q in quarantined] == ["2017-03"] and "[period]" in quarantined[0][1]
    assert failed_checks == [("2017-03", "expect_column_values_to_be_in_set", "period")]

    # one email, for the quarantined period, sent by the validate task's failure callback
    assert [" ".join(m["Subject"].split()) for m in caught] == ["[carewatch] BLOCKING dtoc_la 2017-03: 1 expectation failed"]
    [message] = caught
    assert " ".join(message["Subject"].split()) == "[carewatch] BLOCKING dtoc_la 2017-03: 1 expectation failed"
    assert message["X-Envelope-To"] == "data-engineering@localhost"
    body = mailcatcher.body_text(message)
    assert "the period inside the file is the period requested" in body and "2016-12-01" in body
    assert "/dags/ingest_dtoc_la/runs/" in body and "/tasks/one_period.validate" in body  # the task in the Airflow UI
    [(docs_url,)] = docs
    assert docs_url in body and docs_url.startswith("file://")  # the Data Docs page of this validation
    page = paths.home() / "gx" / "uncommitted" / "data_docs" / "local_site" / docs_url.split("/local_site/", 1)[1].replace("%20", " ")
    assert page.is_file() and "2017-03-01" in page.read_text() and "2016-12-01" in page.read_text()  # expected vs found


def test_killing_carewatch_run_ends_its_airflow_child_and_frees_the_home(tmp_path, monkeypatch):
    # the child, left alone, fetched from a sample server that was gone, sent alerts to a mail
    # catcher that was gone and wrote the warehouse beside the rerun, which it held off; Airflow's
    # task runner keeps SIGTERM for itself once a task has run, so the child is sent SIGKILL
    import signal
    import time

    from carewatch import runner

    env = dict(os.environ, CAREWATCH_HOME=str(tmp_path / "home"), AIRFLOW_HOME=str(tmp_path / "airflow"))
    env.pop("CAREWATCH_BASE_URL", None)
    parent = subprocess.Popen([sys.executable, "-m", "carewatch.cli", "run"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        running = 0
        while running < 3 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.5)
            logs = list((tmp_path / "home" / "logs").glob("run-*.log"))
            running = logs[0].read_text(errors="replace").count("running task <TaskInstance:") if logs else 0
        assert running >= 3, "the run did not start its tasks"
        [child] = [int(pid) for pid in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()]
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not Path(f"/proc/{child}").exists(), "the Airflow child outlived carewatch run"
        monkeypatch.setenv("CAREWATCH_HOME", str(tmp_path / "home"))
        with runner.home_lock("run"):  # free for the rerun
            pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)


def test_a_quality_alert_the_mail_server_refused_goes_out_with_the_next_run(airflow_db, carewatch_home, tmp_path, monkeypatch):
    # the bad file is recorded as reported when it is quarantined (the next run skips it
    # without an email): with the mail server down, its alert waits in the outbox instead of
    # being lost, and the next run's plan_periods sends it, once
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    from carewatch import alerts, mailcatcher, sample_server

    served = tmp_path / "served"
    (served / "dtoc_la").mkdir(parents=True)
    shutil.copy(paths.samples_dir() / "dtoc_la" / "2016-12.xls", served / "dtoc_la" / "2017-03.xls")  # another month's workbook
    logical = dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc)
    bag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags"))
    conf = {"from_period": "2017-03", "to_period": "2017-03"}
    with sample_server.serve_samples(served) as base:
        monkeypatch.setenv("CAREWATCH_BASE_URL", base)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(mailcatcher.free_port()))  # mail down
        down = bag.get_dag("ingest_dtoc_la").test(logical_date=logical, run_conf=conf)
        kept = [json.loads(path.read_text())["subject"] for path in alerts.outbox()]
        with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
            monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
            up = bag.get_dag("ingest_dtoc_la").test(logical_date=logical + dt.timedelta(days=1), run_conf=conf)
            again = bag.get_dag("ingest_dtoc_la").test(logical_date=logical + dt.timedelta(days=2), run_conf=conf)
            caught = [" ".join(m["Subject"].split()) for m in mailcatcher.messages(mailbox)]
    assert str(down.state) == "failed" and str(up.state) == "success" and str(again.state) == "success"
    assert kept == ["[carewatch] BLOCKING dtoc_la 2017-03: 1 expectation failed"]
    assert caught == kept and alerts.outbox() == []  # delivered by the next run, and only once
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in up.get_task_instances()}
    assert states[("one_period.validate", 0)] == "skipped"  # still quarantined, not validated again


@pytest.mark.parametrize("change", ["web_page", "removed"])
def test_a_held_month_whose_file_turned_into_a_web_page_or_went_is_emailed_once_and_keeps_its_version(
        airflow_db, carewatch_home, tmp_path, monkeypatch, change):
    """The revision window re-checks held months every run: the first run that is refused
    fails and emails; later runs skip the re-check (AlreadyRefused) and succeed. A held month
    answering 404 is GONE (not OVERDUE: it was published), failed without retries."""
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    from carewatch import mailcatcher, sample_server

    served = tmp_path / "served"
    (served / "dtoc_la").mkdir(parents=True)
    for month in ("2017-01", "2017-02"):
        shutil.copy(paths.samples_dir() / "dtoc_la" / f"{month}.xls", served / "dtoc_la" / f"{month}.xls")
    logical = dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc)
    conf = {"from_period": "2017-01", "to_period": "2017-02"}
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_la")
    with sample_server.serve_samples(served) as base, mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("CAREWATCH_BASE_URL", base)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        first = dag.test(logical_date=logical, run_conf=conf)
        assert str(first.state) == "success"
        held = _manifest()
        if change == "web_page":
            (served / "dtoc_la" / "2017-01.xls").write_bytes(b"<!DOCTYPE html><html><body>This page has moved</body></html>")
        else:
            (served / "dtoc_la" / "2017-01.xls").unlink()
        refused = dag.test(logical_date=logical + dt.timedelta(days=1), run_conf=conf)
        mail_after_refusal = mailcatcher.messages(mailbox)
        later = dag.test(logical_date=logical + dt.timedelta(days=2), run_conf=conf)
        mail_later = mailcatcher.messages(mailbox)
    assert str(refused.state) == "failed"
    subjects = [" ".join(m["Subject"].split()) for m in mail_after_refusal]
    if change == "web_page":
        assert subjects == ["[carewatch] FAILED dtoc_la 2017-01 fetch: an HTML page was served instead of a xls file"]
    else:
        assert subjects == ["[carewatch] GONE dtoc_la 2017-01: a publication held is no longer at its URL"]
    # the email says the task was not retried (not "after its retries"): Airflow hands the
    # callback the fail-without-retry exception the DAG raised
    assert "without retries: trying again would fail the same way" in mailcatcher.body_text(mail_after_refusal[0])
    # no retry within the run: a web page for a workbook would be refused the same (the DAG's
    # default retries, 2 with 30 s backoff, are for transient faults)
    fetch = [ti for ti in refused.get_task_instances() if ti.task_id == "one_period.fetch" and ti.map_index == 0]
    assert [(str(ti.state), ti.try_number) for ti in fetch] == [("failed", 1)]
    assert str(later.state) == "success" and len(mail_later) == 1  # not emailed again
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in later.get_task_instances()}
    assert states[("one_period.fetch", 0)] == "skipped" and states[("one_period.fetch", 1)] == "success"
    assert states[("summarise", -1)] == "success"
    assert _manifest() == held  # the held version stays, nothing new stored
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        outcomes = con.execute("""select outcome, run_id from fetch_log where period = '2017-01' order by attempted_at""").fetchall()
        reported = con.execute("select period, run_id from fetch_refusals_reported").fetchall()
        loaded = con.execute("select distinct _period from land_dtoc_la order by 1").fetchall()
    assert outcomes == [("new_version", first.run_id), ("refused", refused.run_id), ("already_refused", later.run_id)]
    assert reported == [("2017-01", refused.run_id)]  # recorded by the failure callback once its email went out
    assert loaded == [("2017-01",), ("2017-02",)]


def test_a_run_that_cannot_plan_its_periods_publishes_no_asset(airflow_db, sample_base_url, carewatch_home, monkeypatch):
    # from_period after to_period: plan_periods fails, no period is handled, and the metrics
    # DAG must not be started by a run that did nothing (a failed period, by contrast, does publish)
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CAREWATCH_BASE_URL", sample_base_url)
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_la")
    run = dag.test(logical_date=dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc),
                   run_conf={"from_period": "2017-03", "to_period": "2017-01"})
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and states[("plan_periods", -1)] == "failed"
    assert states[("publish_or_rebuild", -1)] == "skipped"
    assert states[("publish_asset", -1)] == "skipped" and states[("trigger_metrics", -1)] == "skipped"
    assert _asset_events("carewatch://landed/dtoc_la", run.run_id) == 0


def test_a_run_with_no_period_due_succeeds(airflow_db, sample_base_url, carewatch_home, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CAREWATCH_BASE_URL", sample_base_url)
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_provider")
    # the embedded provider CSVs start in September 2019: nothing is due in May 2018
    run = dag.test(logical_date=dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc), run_conf={"bootstrap": True})
    assert str(run.state) == "success"
    summary = json.loads((paths.home() / "runs" / "ingest" / "dtoc_provider.json").read_text())
    assert summary["periods"] == [] and summary["files_parsed"] == 0
    # planned, with nothing to do: the source is settled for the run, its Asset published
    assert {ti.task_id: str(ti.state) for ti in run.get_task_instances()}["publish_asset"] == "success"
    assert _asset_events("carewatch://landed/dtoc_provider", run.run_id) == 1


def test_an_overdue_publication_fails_without_retrying_and_alerts(airflow_db, carewatch_home, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from carewatch import mailcatcher, sample_server

    (tmp_path / "served" / "dtoc_la").mkdir(parents=True)  # the publisher's page: nothing there
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_la")
    with sample_server.serve_samples(tmp_path / "served") as base, mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("CAREWATCH_BASE_URL", base)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        # January 2018 was due on 8 March 2018 (+14 days' grace): by 15 May it is overdue
        run = dag.test(logical_date=dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc), run_conf={"from_period": "2018-01", "to_period": "2018-01"})
        caught = mailcatcher.messages(mailbox)
        # the next run of a backfill, minutes later, meets the same refusal: it fails, not emailed again
        # (overdue_repeat_days); DagBag afresh, as a run's conf stays in the parsed DAG's params
        dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_la")
        again = dag.test(logical_date=dt.datetime(2018, 6, 15, 9, tzinfo=dt.timezone.utc), run_conf={"from_period": "2018-01", "to_period": "2018-01"})
        caught_again = mailcatcher.messages(mailbox)
    assert str(run.state) == "failed"
    fetch = [ti for ti in run.get_task_instances() if ti.task_id == "one_period.fetch"]
    assert [(str(ti.state), ti.try_number) for ti in fetch] == [("failed", 1)]  # no retry within the run
    assert [" ".join(m["Subject"].split()) for m in caught] == ["[carewatch] OVERDUE dtoc_la 2018-01: publication not found after its due date"]
    assert "due by 2018-03-22" in mailcatcher.body_text(caught[0])
    assert str(again.state) == "failed" and [str(ti.state) for ti in again.get_task_instances() if ti.task_id == "one_period.fetch"] == ["failed"]
    assert len(caught_again) == 1


def _set_run_state(run_id: str, state: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagRun).where(DagRun.run_id == run_id).values(state=state))


def _set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))


def test_the_metrics_dag_waits_while_an_ingest_run_of_its_sources_is_running(airflow_db, sample_base_url, carewatch_home, monkeypatch):
    # an Asset event can be older than the ingest run in progress (a re-run's, or a run
    # triggered by hand since the last metrics run): the build must wait for that run to end.
    # The sensor checks every second here (every minute as shipped, for up to 6 hours); the metrics tasks
    # themselves are marked success, what is tested is when they may start.
    import threading

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from carewatch import dagkit

    monkeypatch.setenv("CAREWATCH_BASE_URL", sample_base_url)
    monkeypatch.setattr(dagkit, "INGEST_WAIT_POKE", dt.timedelta(seconds=1))
    monkeypatch.setattr(dagkit, "INGEST_WAIT_TIMEOUT", dt.timedelta(seconds=30))  # a wait that never ends fails, not hangs
    bag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags"))
    ingest = bag.get_dag("ingest_dtoc_national").test(logical_date=dt.datetime(2018, 5, 14, 9, tzinfo=dt.timezone.utc),
                                                       run_conf={"from_period": "2018-03", "to_period": "2018-03"})
    assert str(ingest.state) == "success"
    def metrics():  # parsed afresh for each run: DAG.test runs tasks in this process, and a run's conf stays in the DAG's params
        return DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags" / "metrics.py")).get_dag("metrics")

    assert metrics().task_dict["wait_for_ingest"].poke_interval == 1
    work = "build_warehouse|analyse|report"

    def states(run_id: str) -> dict:
        with create_session() as session:
            run = session.scalar(select(DagRun).where(DagRun.run_id == run_id))
            return {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}

    _set_paused("ingest_dtoc_national", False)  # DAG.test registered it paused
    _set_run_state(ingest.run_id, "running")  # as if still loading
    try:
        # started by that very run's trigger_metrics: it is finishing, not waited for
        started = metrics().test(logical_date=dt.datetime(2018, 5, 14, 10, tzinfo=dt.timezone.utc), mark_success_pattern=work,
                               run_conf={"rerun_of": {"dag_id": "ingest_dtoc_national", "run_id": ingest.run_id}})
        assert str(started.state) == "success"
        # the run below starts while the ingest run is still running; a watcher ends that run
        # once the sensor has been rescheduled (DAG.test itself must run in the main thread)
        when = dt.datetime(2018, 5, 14, 11, tzinfo=dt.timezone.utc)
        seen = []

        def watch():
            deadline = dt.datetime.now() + dt.timedelta(seconds=90)
            while dt.datetime.now() < deadline:
                with create_session() as session:
                    run = session.scalar(select(DagRun).where(DagRun.dag_id == "metrics", DagRun.logical_date == when))
                    now = {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)} if run else {}
                if now.get("wait_for_ingest") == "up_for_reschedule":
                    seen.append(now)
                    break
                threading.Event().wait(0.2)
            _set_run_state(ingest.run_id, "success")

        watcher = threading.Thread(target=watch)
        watcher.start()
        run = metrics().test(logical_date=when, mark_success_pattern=work)
        watcher.join(timeout=5)
    finally:
        _set_run_state(ingest.run_id, "success")
    # the build had not started while the sensor waited; it ran once the ingest run ended
    [waiting] = seen
    assert waiting["build_warehouse"] in ("None", "none"), waiting
    assert str(run.state) == "success" and states(run.run_id)["build_warehouse"] == "success"
    # and a run told not to wait (carewatch run, which ran the ingest DAGs itself) does not
    _set_run_state(ingest.run_id, "running")
    try:
        unwaiting = metrics().test(logical_date=dt.datetime(2018, 5, 14, 12, tzinfo=dt.timezone.utc), mark_success_pattern=work,
                                 run_conf={"wait_for_ingest": False})
    finally:
        _set_run_state(ingest.run_id, "success")
    assert str(unwaiting.state) == "success"
    # nor does a run wait for a paused ingest DAG's run: the scheduler would never finish it
    _set_paused("ingest_dtoc_national", True)
    _set_run_state(ingest.run_id, "running")
    try:
        paused = metrics().test(logical_date=dt.datetime(2018, 5, 14, 13, tzinfo=dt.timezone.utc), mark_success_pattern=work)
    finally:
        _set_run_state(ingest.run_id, "success")
    assert str(paused.state) == "success"


def test_a_methodology_config_mistake_fails_analyse_at_once_and_emails_the_file_and_key(airflow_db, carewatch_home, tmp_path, monkeypatch):
    """A mistake in the methodology config is the same on every retry: analyse fails without
    retrying, and the email names the file and the key (config_check), not a Python error."""
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    from carewatch import mailcatcher

    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    method = config / "methodology" / "dashboard-2018.yaml"
    method.write_text(method.read_text().replace("weight: 3", "weight: three"))
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags" / "metrics.py")).get_dag("metrics")
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        run = dag.test(logical_date=dt.datetime(2018, 5, 20, 9, tzinfo=dt.timezone.utc),
                       mark_success_pattern="wait_for_ingest|build_warehouse", run_conf={"wait_for_ingest": False})
        caught = mailcatcher.messages(mailbox)
    assert str(run.state) == "failed"
    assert [(str(ti.state), ti.try_number) for ti in run.get_task_instances() if ti.task_id == "analyse"] == [("failed", 1)]
    assert [" ".join(m["Subject"].split()) for m in caught] == [
        "[carewatch] FAILED metrics.analyse: config/methodology/dashboard-2018.yaml: metrics[0].weight must be a number, not 'three'"]


@pytest.mark.parametrize("forced, task, nothing", [("validate", "load", "loaded"), ("parse", "validate", "validated")])
def test_a_task_marked_success_by_hand_hands_on_nothing_and_the_next_fails_at_once(airflow_db, carewatch_home, tmp_path, monkeypatch,
                                                                                   forced, task, nothing):
    """An engineer forcing a run on marks a failed validate (or parse) success (the Airflow UI's
    "Mark as success", which reruns the tasks after it): that task handed on no result. The next
    task must load (validate) nothing and fail at once, saying why and what to do, not retry
    twice on a TypeError. (DAG.test's mark_success_pattern marks a task success unrun, as the UI
    does.) March's URL serves December 2016's workbook, which its suite would quarantine."""
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    from carewatch import mailcatcher, sample_server

    (tmp_path / "served" / "dtoc_la").mkdir(parents=True)
    shutil.copy(paths.samples_dir() / "dtoc_la" / "2016-12.xls", tmp_path / "served" / "dtoc_la" / "2017-03.xls")
    dag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags")).get_dag("ingest_dtoc_la")
    with sample_server.serve_samples(tmp_path / "served") as base, mailcatcher.catch_mail(tmp_path / "mail") as (port, mailbox):
        monkeypatch.setenv("CAREWATCH_BASE_URL", base)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        run = dag.test(logical_date=dt.datetime(2018, 5, 15, 9, tzinfo=dt.timezone.utc), mark_success_pattern=rf"one_period\.{forced}",
                       run_conf={"from_period": "2017-03", "to_period": "2017-03"})
        caught = [" ".join(m["Subject"].split()) for m in mailcatcher.messages(mailbox)]
    assert str(run.state) == "failed"
    states = {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    assert states[f"one_period.{forced}"][0] == "success" and states[f"one_period.{task}"] == ("failed", 1)  # no retries
    assert caught == [f"[carewatch] FAILED ingest_dtoc_la.one_period.{task}[0]: dtoc_la 2017-03: nothing {nothing}: {forced} did not "
                      f"pass (marked success by hand?); clear {forced} to run it again"]
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        landed = con.execute("select count(*) from information_schema.tables where table_name = 'land_dtoc_la'").fetchone()[0]
        assert not landed or con.execute("select count(*) from land_dtoc_la").fetchone()[0] == 0
