#!/usr/bin/env bash
# A manual check of the production stack's per-person accounts (docs/production.md), without
# Docker: a throwaway Python 3.11 venv with the production lock (requirements-production.txt,
# constraints-production.txt), a temporary AIRFLOW_HOME on SQLite, the auth manager and the
# airflow-init script read from docker-compose.yaml. It runs the init script twice (the second
# run must succeed and leave the admin as it is), creates a Viewer and a User as the doc says,
# starts an API server and checks who may log in and what each role may do, then resets a
# password and deletes a user. Prints ALL CHECKS PASSED, or stops at the first failure.
# Takes a few minutes (most of it the install). Everything is removed at exit, the API server's
# process group killed.
#   scripts/check_production_auth.sh
# CAREWATCH_AUTH_CHECK_VENV=<dir> reuses a venv that already holds the production lock.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
WORK=$(mktemp -d /tmp/carewatch-auth-check.XXXXXX)
API_PID=

cleanup() {
  if [ -n "$API_PID" ]; then
    kill -- "-$API_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$API_PID" 2>/dev/null || break; sleep 1; done
    kill -9 -- "-$API_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '== %s\n' "$*"; }

VENV=${CAREWATCH_AUTH_CHECK_VENV:-}
if [ -z "$VENV" ]; then
  VENV=$WORK/venv
  step "installing the production lock into a throwaway venv"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet -r "$ROOT/requirements-production.txt" -c "$ROOT/constraints-production.txt"
fi
"$VENV/bin/pip" check
export PATH=$VENV/bin:$PATH

export AIRFLOW_HOME=$WORK/home
mkdir -p "$AIRFLOW_HOME/dags"
# the auth manager and airflow-init's script exactly as docker-compose.yaml writes them ($$: compose's escape of $)
AUTH_MANAGER=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["x-airflow-common"]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"])' "$ROOT/docker-compose.yaml")
INIT_SCRIPT=$(python -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1]))["services"]["airflow-init"]["command"]; assert c[0] == "-c", c; print(c[1].replace("$$", "$"))' "$ROOT/docker-compose.yaml")
export AIRFLOW__CORE__AUTH_MANAGER=$AUTH_MANAGER
export AIRFLOW__CORE__LOAD_EXAMPLES=false AIRFLOW__CORE__DAGS_FOLDER=$AIRFLOW_HOME/dags
export AIRFLOW__API_AUTH__JWT_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
export AIRFLOW__API__SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
export AIRFLOW_ADMIN_USER=admin AIRFLOW_ADMIN_EMAIL=admin@example.org
export AIRFLOW_ADMIN_PASSWORD=adm-$(python -c 'import secrets; print(secrets.token_hex(8))')
step "auth manager: $AUTH_MANAGER"
cat > "$AIRFLOW_HOME/dags/probe.py" <<'PY'
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("probe", schedule=None):
    EmptyOperator(task_id="t")
PY

step "airflow-init, first run"
bash -c "$INIT_SCRIPT" > "$WORK/init1.log" 2>&1 || { cat "$WORK/init1.log"; exit 1; }
grep -q 'User "admin" created with role "Admin"' "$WORK/init1.log" || { cat "$WORK/init1.log"; echo "FAILED: init did not create the admin"; exit 1; }
step "airflow-init, second run (the admin exists; the password in .env has changed)"
AIRFLOW_ADMIN_PASSWORD=changed-in-env bash -c "$INIT_SCRIPT" > "$WORK/init2.log" 2>&1 || { cat "$WORK/init2.log"; echo "FAILED: init's second run failed"; exit 1; }
grep "already exists" "$WORK/init2.log"

step "a Viewer (analyst) and a User (data engineer), as docs/production.md says"
airflow users create --role Viewer --username ana --email ana@example.org --firstname Ana --lastname Lyst --password viewer-pw
airflow users create --role User --username eng --email eng@example.org --firstname Data --lastname Engineer --password engineer-pw
airflow users list
airflow dags reserialize > /dev/null 2>&1

PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "API server on 127.0.0.1:$PORT"
setsid airflow api-server --host 127.0.0.1 --port "$PORT" --workers 1 > "$WORK/api.log" 2>&1 &
API_PID=$!

api_checks() {
  python - "$PORT" "$@" <<'PY'
import os
import sys
import time

import requests

base = f"http://127.0.0.1:{sys.argv[1]}"
phase = sys.argv[2]
for _ in range(180):
    try:
        if requests.get(base + "/api/v2/version", timeout=2).ok:
            break
    except requests.ConnectionError:
        pass
    time.sleep(1)
else:
    sys.exit("FAILED: the API server did not answer in 3 minutes")


def check(what, response, expected):
    print(f"  {what}: {response.status_code}")
    if response.status_code != expected:
        sys.exit(f"FAILED: {what}: expected {expected}, got {response.status_code}: {response.text[:300]}")
    return response


def token(user, password):
    return requests.post(base + "/auth/token", json={"username": user, "password": password}, timeout=30)


def session(user, password):
    response = check(f"{user} logs in", token(user, password), 201)
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + response.json()["access_token"]
    return s


if phase == "roles":
    check("wrong password", token("admin", "wrong"), 401)
    check("unknown user", token("nobody", "x"), 401)
    check("no token: list DAGs", requests.get(base + "/api/v2/dags", timeout=10), 401)
    check("admin with the password .env had first", token("admin", os.environ["AIRFLOW_ADMIN_PASSWORD"]), 201)
    check("admin with the password .env has now (init left the user as it was)", token("admin", "changed-in-env"), 401)
    admin = session("admin", os.environ["AIRFLOW_ADMIN_PASSWORD"])
    viewer, engineer = session("ana", "viewer-pw"), session("eng", "engineer-pw")
    for name, s in (("admin", admin), ("viewer", viewer), ("engineer", engineer)):
        r = check(f"{name} lists DAGs", s.get(base + "/api/v2/dags", timeout=10), 200)
        assert [d["dag_id"] for d in r.json()["dags"]] == ["probe"], r.json()
    check("viewer triggers", viewer.post(base + "/api/v2/dags/probe/dagRuns", json={"logical_date": None}, timeout=10), 403)
    check("viewer unpauses", viewer.patch(base + "/api/v2/dags/probe", json={"is_paused": False}, timeout=10), 403)
    check("engineer (User) triggers", engineer.post(base + "/api/v2/dags/probe/dagRuns",
                                                    json={"logical_date": None, "dag_run_id": "by_engineer"}, timeout=10), 200)
    check("admin triggers", admin.post(base + "/api/v2/dags/probe/dagRuns",
                                       json={"logical_date": None, "dag_run_id": "by_admin"}, timeout=10), 200)
    check("viewer reads a run", viewer.get(base + "/api/v2/dags/probe/dagRuns/by_engineer", timeout=10), 200)
    check("viewer clears a run's tasks", viewer.post(base + "/api/v2/dags/probe/clearTaskInstances",
                                                     json={"dry_run": False, "dag_run_id": "by_engineer"}, timeout=10), 403)
    check("engineer (User) clears a run's tasks", engineer.post(base + "/api/v2/dags/probe/clearTaskInstances",
                                                                json={"dry_run": False, "dag_run_id": "by_engineer"}, timeout=10), 200)
    ti = base + "/api/v2/dags/probe/dagRuns/by_engineer/taskInstances/t"
    check("viewer marks a task success", viewer.patch(ti, json={"new_state": "success"}, timeout=10), 403)
    check("engineer (User) marks a task success", engineer.patch(ti, json={"new_state": "success"}, timeout=10), 200)
    check("engineer (User) unpauses", engineer.patch(base + "/api/v2/dags/probe", json={"is_paused": False}, timeout=10), 200)
    check("engineer (User) reads connections (Op and Admin only)", engineer.get(base + "/api/v2/connections", timeout=10), 403)
    check("engineer (User) changes a pool (Op and Admin only)", engineer.patch(base + "/api/v2/pools/default_pool",
                                                                               json={"slots": 1}, timeout=10), 403)
    r = check("admin reads the audit log", admin.get(base + "/api/v2/eventLogs", params={"event": "trigger_dag_run"}, timeout=10), 200)
    triggered = sorted((e["owner"], e["run_id"]) for e in r.json()["event_logs"])
    print("  audit log, trigger_dag_run:", triggered)
    assert {owner for owner, _ in triggered} == {"admin", "eng"}, triggered
    r = check("admin reads the engineer's audit log", admin.get(base + "/api/v2/eventLogs", params={"owner": "eng"}, timeout=10), 200)
    events = sorted({e["event"] for e in r.json()["event_logs"]})
    print("  audit log, the engineer's events:", events)
    assert {"trigger_dag_run", "post_clear_task_instances", "patch_task_instance", "patch_dag"} <= set(events), events
    check("engineer reads the audit log (Admin only)", engineer.get(base + "/api/v2/eventLogs", timeout=10), 403)
    with open(os.environ["ENGINEER_TOKEN_FILE"], "w") as f:
        f.write(engineer.headers["Authorization"])
elif phase == "after-reset-and-delete":
    check("admin with the old password", token("admin", os.environ["AIRFLOW_ADMIN_PASSWORD"]), 401)
    check("admin with the reset password", token("admin", "changed-in-env"), 201)
    check("deleted engineer logs in", token("eng", "engineer-pw"), 401)
    with open(os.environ["ENGINEER_TOKEN_FILE"]) as f:
        stale = f.read()
    # the API server keeps a user it has looked up for [fab] cache_ttl seconds (30): a token issued
    # before the deletion works until then, and is refused after
    deleted_at = float(os.environ["DELETED_AT"])
    while (r := requests.get(base + "/api/v2/dags", headers={"Authorization": stale}, timeout=10)).status_code == 200:
        if time.time() - deleted_at > 45:
            sys.exit("FAILED: the deleted engineer's token still works 45 s after the deletion")
        time.sleep(2)
    check(f"deleted engineer's token from before, {time.time() - deleted_at:.0f} s after the deletion (Invalid JWT token)", r, 403)
    check("viewer still lists DAGs", session("ana", "viewer-pw").get(base + "/api/v2/dags", timeout=10), 200)
PY
}

export ENGINEER_TOKEN_FILE=$WORK/engineer-token
step "logins and roles"
api_checks roles || { tail -30 "$WORK/api.log"; exit 1; }

step "reset the admin's password to the one .env now has; delete the engineer"
airflow users reset-password --username admin --password changed-in-env
airflow users delete --username eng
export DELETED_AT=$(date +%s)
api_checks after-reset-and-delete || { tail -30 "$WORK/api.log"; exit 1; }

echo "ALL CHECKS PASSED"
