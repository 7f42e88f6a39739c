"""Stress the local Airflow's SQLite metadata DB with repeated backfills under CPU load.

Not part of ``make bench`` (each run takes 6-10 minutes); see ``carewatch.airflow_sqlite``.

Starts ``carewatch airflow`` (standalone) in a temporary home with every ingest DAG's schedule,
unpauses three ingest DAGs, keeps every core busy with one process each, then N times: triggers an
``ingest_ons_mye`` run, POSTs a backfill of ``ingest_dtoc_national`` (36 monthly runs) and
cancels it. It prints the backfill POSTs' status codes and what the standalone log shows:
scheduler loop crashes, heartbeat stalls, tasks failed on execution-API errors, 5xx answers.

Usage: python bench/stress_airflow_sqlite.py [N] [--connect-args MODULE.ATTR]
    the default is the local Airflow's own ``carewatch.airflow_sqlite.CONNECT_ARGS``; to compare,
    ``stress_airflow_sqlite.PLAIN_30``, ``PLAIN_5`` or ``IMMEDIATE_30`` (below).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import multiprocessing
import time
from pathlib import Path

import requests

from carewatch import airflow_sqlite, mailcatcher, paths

# connect args to compare with the local Airflow's own (--connect-args stress_airflow_sqlite.NAME)
PLAIN_30 = {"timeout": 30}  # what CI had when the scheduler crashed
PLAIN_5 = {"timeout": 5}  # Airflow's default
IMMEDIATE_30 = {"timeout": 30, "factory": airflow_sqlite.ImmediateSavepointConnection}


def _burn() -> None:
    while True:
        sum(i * i for i in range(10_000))


def _login(base: str, airflow_home: Path) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            password = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
            answer = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10)
            if answer.ok:
                return {"Authorization": f"Bearer {answer.json()['access_token']}"}
        except (OSError, KeyError, ValueError, requests.ConnectionError):
            pass
        time.sleep(2)
    raise SystemExit("the Airflow API did not come up in 300 s")


def _stress(base: str, headers: dict, n: int) -> list[int]:
    while requests.get(f"{base}/api/v2/dags/ingest_dtoc_national", headers=headers, timeout=10).status_code != 200:
        time.sleep(3)
    for dag_id in ("ingest_dtoc_national", "ingest_ons_mye", "ingest_ascof"):
        requests.patch(f"{base}/api/v2/dags/{dag_id}", json={"is_paused": False}, headers=headers, timeout=60)
    codes = []
    for i in range(n):
        requests.post(f"{base}/api/v2/dags/ingest_ons_mye/dagRuns",
                      json={"logical_date": f"2018-07-{1 + i % 28:02d}T0{i % 10}:00:00Z", "conf": {}}, headers=headers, timeout=60)
        answer = requests.post(f"{base}/api/v2/backfills", headers=headers, timeout=60, json={
            "dag_id": "ingest_dtoc_national", "from_date": "2017-01-01T00:00:00Z", "to_date": "2019-12-30T00:00:00Z",
            "max_active_runs": 1, "run_backwards": False, "dag_run_conf": {}, "reprocess_behavior": "completed"})
        codes.append(answer.status_code)
        if answer.ok:
            requests.put(f"{base}/api/v2/backfills/{answer.json()['id']}/cancel", headers=headers, timeout=60)
        elif answer.status_code == 409:  # an earlier cancel failed: cancel what is still active
            listed = requests.get(f"{base}/api/v2/backfills", params={"dag_id": "ingest_dtoc_national"}, headers=headers, timeout=60)
            for backfill in listed.json().get("backfills", []):
                if backfill["completed_at"] is None:
                    requests.put(f"{base}/api/v2/backfills/{backfill['id']}/cancel", headers=headers, timeout=60)
        time.sleep(0.5)
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=25)
    parser.add_argument("--connect-args", default="carewatch.airflow_sqlite.CONNECT_ARGS")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="carewatch-stress-"))
    config = root / "config"
    shutil.copytree(paths.config_dir(), config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CAREWATCH"))}
    env.update({"AIRFLOW_HOME": str(root / "airflow"), "CAREWATCH_HOME": str(root / "home"), "CAREWATCH_CONFIG": str(config),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": args.connect_args,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))})
    port = mailcatcher.free_port()
    log_path = root / "standalone.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "carewatch.cli", "airflow", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://localhost:{port}"
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(os.cpu_count() or 2)]
    try:
        headers = _login(base, root / "airflow")
        for burner in burners:
            burner.start()
        codes = _stress(base, headers, args.n)
    finally:
        for burner in burners:
            if burner.is_alive():
                burner.terminate()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log_path.read_text(errors="replace")
    finished = [line for line in text.splitlines() if "request finished" in line]
    print(f"connect args {args.connect_args}, {args.n} backfill POSTs: " + ", ".join(f"{codes.count(c)} x {c}" for c in sorted(set(codes))))
    print(f"  scheduler loop crashes: {text.count('Exception when executing SchedulerJob')}")
    print(f"  heartbeat stalls (a component's DB heartbeat late): {text.count('Heartbeat recovered')}")
    print(f"  task log lines failing on an execution-API error: {text.count('API_SERVER_ERROR')}")
    print(f"  API answers 5xx: {sum('status_code=5' in line for line in finished)} of {len(finished)}")
    print(f"  log: {log_path}")


if __name__ == "__main__":
    main()
