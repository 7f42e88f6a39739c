"""`make airflow` as the README says: Airflow standalone on localhost with the project's DAGs.

Starts `carewatch airflow` (what `make airflow` runs) with its own Airflow and carewatch
homes, logs in through the REST API, lists the DAGs, triggers a run that must succeed, then
backfills three months through Airflow's own backfill (bounded parallelism) and checks what
landed in the warehouse.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import requests
import yaml
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from carewatch import mailcatcher, paths

pytestmark = pytest.mark.airflow

STARTUP_TIMEOUT = 240
RUN_TIMEOUT = 420

# standalone keeps its metadata in SQLite: while the scheduler writes, the API server can
# answer 500/503 for a moment ("database is locked"; carewatch.airflow_sqlite removes the cause
# that once failed a backfill POST and crashed the scheduler). Reads and PATCHes (idempotent)
# retry with backoff; POSTs are retried only where a second one cannot create twice (_trigger,
# _create_backfill). Production runs on Postgres (docker-compose.yaml).
HTTP = requests.Session()
HTTP.mount("http://", HTTPAdapter(max_retries=Retry(total=5, backoff_factor=0.5, status_forcelist=[500, 502, 503],
                                                    allowed_methods={"GET", "PATCH"}, raise_on_status=False)))


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    root = tmp_path_factory.mktemp("standalone")
    port = mailcatcher.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CAREWATCH"))}
    # nothing runs until the test says so: DAGs start paused, and in this test's copy of the
    # config only dtoc_national (backfilled below: a backfill needs a schedule) keeps its
    # monthly cron schedule, so unpausing another ingest DAG starts no run by itself (the
    # README's `make airflow` keeps every schedule); asset scheduling is intact
    config = root / "config"
    shutil.copytree(paths.config_dir(), config)
    catalogue = yaml.safe_load((config / "sources.yaml").read_text())
    for name, entry in catalogue["sources"].items():
        if name != "dtoc_national":
            entry["schedule"] = None
    (config / "sources.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    env.update({
        "AIRFLOW_HOME": str(root / "airflow"),
        "CAREWATCH_HOME": str(root / "home"),
        "CAREWATCH_CONFIG": str(config),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    })
    log = (root / "standalone.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "carewatch.cli", "airflow", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://localhost:{port}"
    try:
        token = _login(base, root / "airflow", proc, root / "standalone.log")
        api = {"base": base, "headers": {"Authorization": f"Bearer {token}"}, "home": root / "home", "log": root / "standalone.log",
               "pid": proc.pid, "proc": proc, "config": config}
        # metrics listens from the start: asset events only queue runs for unpaused DAGs
        _wait_for(api, "/api/v2/dags/metrics", lambda body: True, "parsing the metrics DAG")
        HTTP.patch(f"{base}/api/v2/dags/metrics", json={"is_paused": False}, headers=api["headers"], timeout=10).raise_for_status()
        yield api
    finally:
        with contextlib.suppress(ProcessLookupError):  # (the last test ends it)
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        # every component goes, not only the standalone: a scheduler still stopping when its
        # parent exited was left running (orphaned) after the suite
        deadline = time.monotonic() + 30
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _login(base: str, airflow_home: Path, proc, log_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    passwords = airflow_home / "simple_auth_manager_passwords.json.generated"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"carewatch airflow exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if passwords.exists() and HTTP.get(f"{base}/api/v2/monitor/health", timeout=5).ok:
                password = json.loads(passwords.read_text())["admin"]
                answer = HTTP.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10)
                if answer.ok:
                    return answer.json()["access_token"]
        except requests.ConnectionError:
            pass
        time.sleep(2)
    pytest.fail(f"the Airflow UI did not come up in {STARTUP_TIMEOUT}s:\n{log_path.read_text()[-3000:]}")


def _wait_for(api, path: str, done, what: str):
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        answer = HTTP.get(f"{api['base']}{path}", headers=api["headers"], timeout=10)
        if answer.status_code == 404:  # not there yet (a DAG still being parsed)
            time.sleep(3)
            continue
        answer.raise_for_status()
        body = answer.json()
        if done(body):
            return body
        time.sleep(3)
    pytest.fail(f"{what} did not finish in {RUN_TIMEOUT}s:\n{_log_excerpt(api['log'])}")


def _log_excerpt(log: Path) -> str:
    """The scheduler's last lines (a scheduler that died or stopped logging shows here, even when
    the API server's polling fills the end of the log), then the log's last lines."""
    lines = log.read_text(errors="replace").splitlines()
    scheduler = [line for line in lines if line.startswith("scheduler")][-25:]
    return "\n".join(["--- the scheduler's last lines:", *scheduler, "--- the log's last lines:", *lines[-20:]])


def _trigger(api, dag_id: str, logical_date: str, conf: dict) -> str:
    """Unpause and trigger a run under a run id of our own, so a POST answered 5xx (SQLite
    busy) can be retried safely: a run that was in fact created answers 409 the second time."""
    HTTP.patch(f"{api['base']}/api/v2/dags/{dag_id}", json={"is_paused": False}, headers=api["headers"], timeout=10).raise_for_status()
    run_id = f"manual__test_{dag_id}_{logical_date[:10]}"
    for attempt in range(5):
        answer = HTTP.post(f"{api['base']}/api/v2/dags/{dag_id}/dagRuns",
                           json={"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}, headers=api["headers"], timeout=10)
        if answer.status_code < 500:
            break
        time.sleep(1 + attempt)
    if not (answer.status_code == 409 and attempt > 0):  # 409 on a retry: the first POST did create it
        answer.raise_for_status()
    return run_id


def _create_backfill(api, body: dict) -> dict:
    """POST a backfill. Creation refused on a SQLite lock (503) is what carewatch.airflow_sqlite
    prevents: it fails the test. Another 5xx (the audit log's lock wait) may come after the
    backfill was made, so look for it (same DAG and dates, still active) before trying again."""
    for attempt in range(3):
        answer = HTTP.post(f"{api['base']}/api/v2/backfills", json=body, headers=api["headers"], timeout=60)
        if answer.status_code < 500 or answer.status_code == 503:
            break
        listed = HTTP.get(f"{api['base']}/api/v2/backfills", params={"dag_id": body["dag_id"]}, headers=api["headers"], timeout=10)
        listed.raise_for_status()
        ours = [b for b in listed.json()["backfills"] if b["completed_at"] is None
                and (b["from_date"][:10], b["to_date"][:10]) == (body["from_date"][:10], body["to_date"][:10])]
        if ours:
            return ours[0]
        time.sleep(5 * (attempt + 1))
    assert answer.ok, f"POST /api/v2/backfills: {answer.status_code} {answer.text}\n{_log_excerpt(api['log'])}"
    return answer.json()


def _planned(api, dag_id: str, run_id: str) -> list[str]:
    """The periods a run planned (its plan_periods task's return value, through the REST API)."""
    from urllib.parse import quote

    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/plan_periods/xcomEntries/return_value"
    answer = HTTP.get(f"{api['base']}{path}", params={"deserialize": True}, headers=api["headers"], timeout=10)
    answer.raise_for_status()
    value = answer.json()["value"]
    return json.loads(value) if isinstance(value, str) else list(value)


def _loaded(api, source: str) -> set[str]:
    with duckdb.connect(str(api["home"] / "warehouse.duckdb"), read_only=True) as con:
        return {p for (p,) in con.execute(f"select distinct _period from land_{source}").fetchall()}


def test_the_rest_api_lists_the_project_dags(standalone):
    # one ingest DAG per entry of the catalogue the standalone reads (read here as plain YAML,
    # not through the code that generates the DAGs from it), metrics and backup
    catalogue = yaml.safe_load((standalone["config"] / "sources.yaml").read_text())
    expected = {f"ingest_{name}" for name in catalogue["sources"]} | {"metrics", "backup"}

    def all_parsed(body):  # both DAG files parsed (dags/ingest.py makes every ingest DAG at once)
        return {"metrics", "ingest_dtoc_la", "ingest_ons_mye"} <= {d["dag_id"] for d in body["dags"]}

    body = _wait_for(standalone, "/api/v2/dags?limit=100", all_parsed, "DAG parsing")
    dags = {d["dag_id"]: d for d in body["dags"]}
    assert set(dags) == expected
    assert all(d["owners"] == ["data-engineering"] and "carewatch" in {t["name"] for t in d["tags"]} for d in dags.values())


def test_the_ui_listens_on_this_machine_only(standalone):
    # a security review: Airflow's API server listens on every interface by default, so a
    # laptop's `make airflow` (one admin login over plain HTTP) was open to its network. Every
    # 127.x address is this machine's loopback: a server on all interfaces answers 127.0.0.2 too
    port = int(standalone["base"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=5).close()


def test_a_triggered_run_succeeds(standalone):
    api = standalone
    run_id = _trigger(api, "ingest_ons_mye", "2018-07-15T09:00:00Z", {"bootstrap": True})
    run = _wait_for(api, f"/api/v2/dags/ingest_ons_mye/dagRuns/{run_id}", lambda b: b["state"] in ("success", "failed"), "the triggered run")
    assert run["state"] == "success"
    # bootstrap at 2018-07-15: every mid-year estimate due by then (mid-2017 was published in
    # late June 2018 and is due on 1 July: config/sources.yaml)
    assert _planned(api, "ingest_ons_mye", run_id) == ["2015", "2016", "2017"]
    assert _loaded(api, "ons_mye") == {"2015", "2016", "2017"}


def test_a_backfill_of_three_months_through_airflow(standalone):
    api = standalone
    HTTP.patch(f"{api['base']}/api/v2/dags/ingest_dtoc_national", json={"is_paused": False}, headers=api["headers"], timeout=10).raise_for_status()
    # unpausing starts the latest scheduled run (the February 2020 release): let it finish first
    _wait_for(api, "/api/v2/dags/ingest_dtoc_national/dagRuns?limit=50",
              lambda b: any(r["run_type"] == "scheduled" and r["state"] in ("success", "failed") for r in b["dag_runs"]),
              "the scheduled run started by unpausing")
    _create_backfill(api, {"dag_id": "ingest_dtoc_national", "from_date": "2018-04-01T00:00:00Z", "to_date": "2018-06-30T00:00:00Z",
                           "max_active_runs": 2, "run_backwards": False, "dag_run_conf": {}, "reprocess_behavior": "none"})

    def finished(body):
        runs = [r for r in body["dag_runs"] if r["run_type"] == "backfill"]
        return len(runs) == 3 and all(r["state"] in ("success", "failed") for r in runs)

    body = _wait_for(api, "/api/v2/dags/ingest_dtoc_national/dagRuns?limit=50", finished, "the backfill")
    backfill = sorted((r["logical_date"][:10], r["state"], r["dag_run_id"]) for r in body["dag_runs"] if r["run_type"] == "backfill")
    # the schedule is the 15th of each month: three monthly runs
    assert [(day, state) for day, state, _ in backfill] == [("2018-04-15", "success"), ("2018-05-15", "success"), ("2018-06-15", "success")]
    # each run fetches the release due by its logical date (published on the second Thursday,
    # two months on); a release holds the whole series, so there is no revision window
    planned = [_planned(api, "ingest_dtoc_national", run_id) for _, _, run_id in backfill]
    assert planned == [["2018-02"], ["2018-03"], ["2018-04"]]
    # (unpausing also started the latest scheduled run, the February 2020 release)
    assert {"2018-02", "2018-03", "2018-04"} <= _loaded(api, "dtoc_national")


def test_landed_assets_trigger_the_metrics_dag(standalone):
    """The scheduler starts `metrics` by itself once every source it is scheduled on has
    published its Asset (the earlier tests landed ons_mye and dtoc_national; here ascof,
    dtoc_la, hes_aggregate), even when a period failed: dtoc_la's March 2016 is not served (the
    samples start in April 2016), so it is OVERDUE and its run fails, and April 2016 loads."""
    api = standalone
    headers = api["headers"]
    runs = {}
    for dag_id, conf in (("ingest_ascof", {"from_period": "2016-17", "to_period": "2016-17"}),
                         ("ingest_dtoc_la", {"from_period": "2016-03", "to_period": "2016-04"}),
                         ("ingest_hes_aggregate", {"from_period": "2016-04", "to_period": "2016-04"})):
        runs[dag_id] = _trigger(api, dag_id, "2018-05-15T09:00:00Z", conf)
    for dag_id, run_id in runs.items():
        run = _wait_for(api, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", lambda b: b["state"] in ("success", "failed"), dag_id)
        assert run["state"] == ("failed" if dag_id == "ingest_dtoc_la" else "success"), dag_id
    from urllib.parse import quote

    failed_run = HTTP.get(f"{api['base']}/api/v2/dags/ingest_dtoc_la/dagRuns/{quote(runs['ingest_dtoc_la'], safe='')}/taskInstances",
                          headers=headers, timeout=10).json()["task_instances"]
    states = {(t["task_id"], t["map_index"]): t["state"] for t in failed_run}
    assert states[("one_period.fetch", 0)] == "failed" and states[("one_period.load", 1)] == "success"
    assert states[("publish_asset", -1)] == "success" and states[("summarise", -1)] == "upstream_failed"

    def asset_triggered_finished(body):
        triggered = [r for r in body["dag_runs"] if r["run_type"] == "asset_triggered"]
        return triggered and triggered[0]["state"] in ("success", "failed")

    body = _wait_for(api, "/api/v2/dags/metrics/dagRuns?limit=10", asset_triggered_finished, "the asset-triggered metrics run")
    [run] = [r for r in body["dag_runs"] if r["run_type"] == "asset_triggered"]
    assert run["state"] == "success"
    tasks = HTTP.get(f"{api['base']}/api/v2/dags/metrics/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances",
                         headers=headers, timeout=10).json()["task_instances"]
    # one month of delayed transfers: the warehouse is built; ranking (12 months) waits, skipped
    assert {t["task_id"]: t["state"] for t in tasks} == {"wait_for_ingest": "success", "build_warehouse": "success",
                                                         "analyse": "skipped", "report": "skipped"}
    with duckdb.connect(str(api["home"] / "warehouse.duckdb"), read_only=True) as con:
        months = con.execute("select distinct period_start from fct_metric_values where metric_id = 'delayed_days_per_day_per_100k_18plus' and period_type = 'month'").fetchall()
    assert [str(m) for (m,) in months] == ["2016-04-01"]



def test_clearing_a_failed_task_reruns_its_source_and_starts_the_metrics_dag_itself(standalone):
    """What the DAG docs tell an operator after fixing a failed period: clear its task (the
    UI's Clear keeps "downstream" ticked). The re-run publishes no second Asset event (it would
    count toward next month's metrics run, which could then start before this source's next
    run had loaded): publish_or_rebuild sends it to trigger_metrics, which starts the metrics
    DAG itself, and the metrics sensor does not wait for the ingest run that started it.
    (March 2016 is still not served: its fetch fails again, as a fix that did not work would.)"""
    from urllib.parse import quote

    api = standalone
    headers = api["headers"]
    dag_run = "manual__test_ingest_dtoc_la_2018-05-15"  # test_landed_assets_trigger_the_metrics_dag's
    run_path = f"/api/v2/dags/ingest_dtoc_la/dagRuns/{quote(dag_run, safe='')}"

    def events() -> int:
        return _wait_for(api, f"/api/v2/assets/events?source_dag_id=ingest_dtoc_la&source_run_id={quote(dag_run, safe='')}",
                         lambda body: True, "asset events")["total_entries"]

    def tasks() -> dict:
        body = _wait_for(api, f"{run_path}/taskInstances", lambda body: True, "task instances")
        return {(t["task_id"], t["map_index"]): (t["state"], t["try_number"]) for t in body["task_instances"]}

    assert events() == 1 and tasks()[("trigger_metrics", -1)][0] == "skipped"
    metrics_before = {r["dag_run_id"] for r in _wait_for(api, "/api/v2/dags/metrics/dagRuns?limit=50", lambda b: True, "metrics runs")["dag_runs"]}
    body = {"dry_run": False, "dag_run_id": dag_run, "task_ids": [["one_period.fetch", 0]], "include_downstream": True, "only_failed": False}
    for attempt in range(5):  # clearing twice clears the same tasks: safe to retry a 5xx
        answer = HTTP.post(f"{api['base']}/api/v2/dags/ingest_dtoc_la/clearTaskInstances", json=body, headers=headers, timeout=30)
        if answer.status_code < 500:
            break
        time.sleep(1 + attempt)
    answer.raise_for_status()
    cleared = {(t["task_id"], t["map_index"]) for t in answer.json()["task_instances"]}
    assert {("one_period.fetch", 0), ("publish_or_rebuild", -1), ("publish_asset", -1), ("trigger_metrics", -1)} <= cleared

    def rerun_done(_body) -> bool:
        now = tasks()
        # (the first pass ran publish_or_rebuild once and skipped the tasks after it)
        return now[("publish_or_rebuild", -1)][1] >= 2 and all(now[(t, -1)][0] in ("success", "failed", "skipped")
                                                               for t in ("publish_or_rebuild", "publish_asset", "trigger_metrics"))

    _wait_for(api, run_path, rerun_done, "the re-run of ingest_dtoc_la")
    now = tasks()
    assert now[("one_period.fetch", 0)][0] == "failed" and now[("one_period.load", 1)] == ("success", 1)  # not cleared
    assert now[("publish_or_rebuild", -1)][0] == "success"
    assert now[("publish_asset", -1)][0] == "skipped" and now[("trigger_metrics", -1)][0] == "success"
    assert events() == 1

    def started(body):
        return [r for r in body["dag_runs"] if r["dag_run_id"] not in metrics_before and r["state"] in ("success", "failed")]

    [run] = started(_wait_for(api, "/api/v2/dags/metrics/dagRuns?limit=50", started, "the metrics run trigger_metrics started"))
    assert run["run_type"] == "operator_triggered" and run["state"] == "success", run
    assert run["conf"]["rerun_of"] == {"dag_id": "ingest_dtoc_la", "run_id": dag_run}
    assert run["note"] == "Rebuild after a re-run of ingest_dtoc_la"
    metrics_tasks = HTTP.get(f"{api['base']}/api/v2/dags/metrics/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances",
                             headers=headers, timeout=10).json()["task_instances"]
    assert {t["task_id"]: t["state"] for t in metrics_tasks} == {"wait_for_ingest": "success", "build_warehouse": "success",
                                                                  "analyse": "skipped", "report": "skipped"}

def test_killing_carewatch_airflow_stops_every_airflow_process_and_frees_the_home(standalone, monkeypatch):
    # (last in this module: it ends the standalone) standalone gets SIGINT when carewatch dies,
    # and stops its scheduler, API server, DAG processor and triggerer; none runs on without
    # the home's lock beside a later make run
    from carewatch import runner

    os.kill(standalone["pid"], signal.SIGKILL)
    standalone["proc"].wait(timeout=30)  # reaped: not a zombie of the group
    deadline = time.monotonic() + 90
    while _group_alive(standalone["pid"]) and time.monotonic() < deadline:
        time.sleep(1)
    left = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(standalone["pid"])], capture_output=True, text=True).stdout
    assert not _group_alive(standalone["pid"]), f"still running:\n{left}"
    monkeypatch.setenv("CAREWATCH_HOME", str(standalone["home"]))
    with runner.home_lock("run"):
        pass
