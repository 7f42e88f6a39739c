"""Run the pipeline locally through Airflow itself (``make run``) and start the local UI.

``run_embedded`` is what ``make run`` does on a fresh machine, with no internet and no Docker:

1. a local Airflow home under ``var/airflow`` with its SQLite metadata DB and the warehouse pool;
2. the embedded sample publications served over real HTTP on 127.0.0.1 (``sample_server``);
3. every DAG run once through Airflow (``DAG.test``, the same code path as ``airflow dags test``)
   in a child process whose Airflow log goes to ``var/logs/``;
4. a summary of what was fetched, parsed and built, and where the outputs are.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from carewatch import paths

# The order the embedded run ingests in: a preference for a readable log (populations and
# ASCOF before DTOC), not a dependency: each ingest DAG lands its own source, and only the
# metrics DAG, run last, reads across sources. Any other source of the catalogue follows by
# name, so a new source runs without a change here.
INGEST_ORDER = ["ons_mye", "ascof", "dtoc_la", "dtoc_national", "dtoc_provider", "hes_aggregate"]


def ingest_order() -> list[str]:
    from carewatch import sources

    return INGEST_ORDER + sorted(set(sources.catalogue()) - set(INGEST_ORDER))


DOWNSTREAM = ["metrics"]


def airflow_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a local Airflow home inside the project (overridable from outside)."""
    env = dict(os.environ if base is None else base)
    airflow_home = Path(env.get("AIRFLOW_HOME") or paths.home() / "airflow")
    defaults = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(paths.PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        # make run (DAG.test, which ignores pausing) registers every DAG; make airflow on the same
        # home then finds them paused: the samples end in 2020, and a scheduled run for today's
        # month would find nothing to fetch and send overdue alerts
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://localhost:8080/execution/",
        # the UI and API of `make airflow` on this machine only (Airflow's default is every
        # interface: a laptop's UI, one admin login over plain HTTP, on the office network)
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "carewatch.airflow_sqlite.CONNECT_ARGS",
        "GX_ANALYTICS_ENABLED": "false",
        "CAREWATCH_HOME": str(paths.home()),
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def prepare_metadata_db() -> None:
    """Create or migrate the Airflow metadata DB and the warehouse pool (idempotent)."""
    from airflow.models.pool import Pool
    from airflow.utils import db

    from carewatch import dagkit

    db.initdb()
    Pool.create_or_update_pool(
        dagkit.WAREHOUSE_POOL,
        slots=1,
        description="One writer at a time for the DuckDB warehouse",
        include_deferred=False,
    )


def default_logical_date() -> dt.datetime:
    from carewatch import sources

    return sources.embedded_run_date()


def run_date_file() -> Path:
    """Where ``carewatch run`` notes the logical date it last ran for (under the home's ``runs/``,
    so a backup and a restored home keep it): ``carewatch status`` on the embedded samples judges
    what is due as of that date, not ``embedded.run_date``, after a ``--logical-date`` run."""
    return paths.home() / "runs" / "last-run-date.txt"


def note_run_date(when: dt.datetime) -> None:
    """Note ``when`` as the date of this home's latest ``carewatch run`` (written whole, or not at all)."""
    target = run_date_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(f"{when.date().isoformat()}\n")
    partial.replace(target)


def last_run_date() -> dt.date | None:
    """The logical date of this home's latest ``carewatch run``; None before the first (or if the
    note is unreadable: the caller falls back to the configured date)."""
    try:
        return dt.date.fromisoformat(run_date_file().read_text().strip())
    except (OSError, ValueError):
        return None


def run_dags(dag_ids: list[str], logical_date: dt.datetime, conf: dict, run_ids: dict[str, str] | None = None) -> dict[str, str]:
    """Run DAGs one after another through Airflow in this process; returns dag_id -> state
    (and fills ``run_ids``, if given, with dag_id -> the run's id)."""
    from airflow.dag_processing.dagbag import DagBag

    prepare_metadata_db()
    bag = DagBag(dag_folder=str(paths.PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    states = {}
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        run = dag.test(logical_date=logical_date, run_conf=conf)
        states[dag_id] = str(run.state)
        if run_ids is not None:
            run_ids[dag_id] = run.run_id
    return states


def _child_main(argv: list[str]) -> int:
    """Entry point of the child process: ``python -m carewatch.runner DATE CONF DAG...``."""
    logical_date = dt.datetime.fromisoformat(argv[0])
    conf = json.loads(argv[1])
    run_ids: dict[str, str] = {}
    states = run_dags(argv[2:], logical_date, conf, run_ids)
    print("CAREWATCH_DAG_STATES " + json.dumps(states))
    print("CAREWATCH_DAG_RUN_IDS " + json.dumps(run_ids))
    return 0 if all(s == "success" for s in states.values()) else 1


@contextlib.contextmanager
def home_lock(what: str):
    """Hold ``$CAREWATCH_HOME/run.lock`` while ``what`` runs; yields the lock's file descriptor
    (a child given it keeps the lock held until it exits too). A second ``carewatch run`` on
    the same home would share its Airflow metadata DB: Airflow's ``DAG.test`` of one deletes the
    other's DAG runs and crashes it. So it is refused, in one line naming the holder."""
    import fcntl

    from carewatch.errors import CarewatchError

    home = paths.home()
    home.mkdir(parents=True, exist_ok=True)
    path = home / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise CarewatchError(f"{home} is in use by {holder}: wait for it to finish (one run per CAREWATCH_HOME)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"carewatch {what} (pid {os.getpid()}, since {dt.datetime.now():%Y-%m-%d %H:%M:%S})".encode(), 0)
        yield fd
    finally:
        os.close(fd)  # releases the lock (unless a child still holds it)


def die_with_parent(parent: int, death_signal: int = signal.SIGTERM) -> None:
    """Called first thing in a child process: it gets ``death_signal`` when ``parent`` dies
    (Linux's PR_SET_PDEATHSIG, kept across exec), so killing ``carewatch run`` or ``carewatch airflow``
    does not leave their Airflow child running without the sample server and mail catcher it
    was started with. (Done in the child itself, not as a ``preexec_fn``: the parent has
    server threads running, and Python code between fork and exec could deadlock.)"""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(death_signal))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        sys.exit(1)


# SIGKILL: Airflow's task runner keeps a SIGTERM handler once a task has run (it only calls the
# operator's on_kill), so SIGTERM left the orphan running; the probe showed a kill -9 mid-run
# safe (DuckDB recovers from its log, the rerun matches an uninterrupted home)
RUN_CHILD_DEATH_SIGNAL = signal.SIGKILL


def _with_parent(command: list[str], death_signal: int = signal.SIGTERM) -> list[str]:
    """``command`` started through this module, which first arranges for it to get
    ``death_signal`` when this process dies (:func:`_relay_once` for any signal but SIGKILL)."""
    return [sys.executable, "-m", "carewatch.runner", "--with-parent", str(os.getpid()), str(int(death_signal)), *command]


def _relay_once(parent: int, death_signal: int, command: list[str]) -> int:
    """Run ``command`` under this process, which dies with ``parent``; the command gets
    ``death_signal`` once, when this process dies.

    PR_SET_PDEATHSIG fires once per exiting thread of the process that forked, and carewatch
    has server threads: standalone got SIGINT two or three times, and one arriving while it was
    stopping its components left them running. This process has one thread, so its death
    signals the command exactly once. (SIGKILL may come twice: that path execs directly.)"""
    import ctypes

    die_with_parent(parent, signal.SIGKILL)
    me = os.getpid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the command itself (one process group)

    def arrange() -> None:  # between fork and exec: safe, this process has one thread
        signal.signal(death_signal, signal.SIG_DFL)  # ignored where carewatch started (`&`), or above
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(death_signal))  # PR_SET_PDEATHSIG
        if os.getppid() != me:  # this process died before the line above
            os._exit(1)

    child = subprocess.Popen(command, preexec_fn=arrange, close_fds=False)  # the home's lock passes on
    code = child.wait()
    return code if code >= 0 else 128 - code


def run_embedded(logical_date: str | None = None) -> int:
    """``make run``: the monthly pipeline on the embedded samples, through Airflow. The
    methodology config is checked first: a mistake, or a file changed under a label the
    warehouse already used, is refused (:class:`ConfigError`, one line per problem) before
    anything is fetched, written or started."""
    from carewatch import pipeline, provenance
    from carewatch.methodology import config_check

    pipeline.refuse_lost_warehouse()  # before Airflow starts: one line, not six failed DAG runs
    config_check.check_all()
    provenance.check_labels_held()
    with home_lock("run") as lock:
        return _run_embedded(logical_date, lock)


def _run_embedded(logical_date: str | None, lock: int) -> int:
    from carewatch import dagkit, sample_server, summary

    env = airflow_env()
    when = dt.datetime.fromisoformat(logical_date) if logical_date else default_logical_date()
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    log_dir = paths.home() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"run-{dt.datetime.now():%Y%m%dT%H%M%S}.log"
    note_run_date(when)  # before the DAGs: a run that fails or is stopped still handled this date's periods
    dag_ids = [dagkit.ingest_dag_id(name) for name in ingest_order()] + DOWNSTREAM
    # one conf for every DAG (each reads its own params): the ingest runs bootstrap, and the
    # metrics run does not wait for ingest runs in progress, as this run ran them first (an
    # earlier run stopped by Ctrl-C can have left one "running" in the metadata DB)
    conf = {"bootstrap": True, "wait_for_ingest": False}

    print(f"carewatch: monthly run for {when:%Y-%m-%d} through Airflow (AIRFLOW_HOME={env['AIRFLOW_HOME']})")
    print(f"carewatch: Airflow log: {log_file}")
    with sample_server.serve_samples(remember=True) as base_url, _local_mail(env) as mail_dir:
        env["CAREWATCH_BASE_URL"] = base_url
        print(f"carewatch: serving the embedded sample publications at {base_url}")
        with log_file.open("w") as log:
            proc = subprocess.run(
                _with_parent([sys.executable, "-m", "carewatch.runner", when.isoformat(), json.dumps(conf), *dag_ids],
                             death_signal=RUN_CHILD_DEATH_SIGNAL),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lock,),  # the child holds the home's lock too, until it exits
            )
    states = _read_states(log_file)
    summary.print_run_summary(states, log_file, mail_dir, run_ids=_read_states(log_file, "CAREWATCH_DAG_RUN_IDS"))
    return proc.returncode


@contextlib.contextmanager
def _local_mail(env: dict[str, str]):
    """Alerts go to a local mail catcher (``$CAREWATCH_HOME/mail``) unless an SMTP connection is
    configured; yields the catcher's directory (None when a real connection is used)."""
    from carewatch import mailcatcher

    if env.get("AIRFLOW_CONN_SMTP_DEFAULT"):
        yield None
        return
    with mailcatcher.catch_mail(paths.home() / "mail" / dt.datetime.now().strftime("%Y%m%dT%H%M%S")) as (port, directory):
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = mailcatcher.connection_uri(port)
        yield directory


def _read_states(log_file: Path, marker: str = "CAREWATCH_DAG_STATES") -> dict[str, str]:
    """What the child printed last after ``marker`` (each DAG's state; with
    ``CAREWATCH_DAG_RUN_IDS``, each DAG run's id); empty when it printed none (it crashed)."""
    for line in reversed(log_file.read_text(errors="replace").splitlines()):
        if line.startswith(f"{marker} "):
            return json.loads(line.split(" ", 1)[1])
    return {}


def airflow_ui(port: int = 8080) -> int:
    """``make airflow``: ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer)
    on http://localhost:PORT with the project's DAGs, the warehouse pool, alerts caught locally
    and, in the embedded environment, the sample publications served on localhost."""
    with home_lock("airflow") as lock:
        return _airflow_ui(port, lock)


# Airflow's [logging] ports (its defaults): the scheduler's task runner and the triggerer serve
# their task logs there, so the UI on one of them shows every task log as "Not Found"
LOG_SERVER_PORTS = {"worker_log_server_port": 8793, "trigger_log_server_port": 8794}


def _refuse_log_server_port(port: int, env: dict[str, str]) -> None:
    from carewatch.errors import CarewatchError

    for option, default in LOG_SERVER_PORTS.items():
        if port == int(env.get(f"AIRFLOW__LOGGING__{option.upper()}", default)):
            raise CarewatchError(f"--port {port} is Airflow's {option} (task logs are served there, so every task "
                                 "would fail \"Not Found\"): give the UI another port, e.g. the default 8080")


def _airflow_ui(port: int, lock: int) -> int:
    from carewatch import sample_server, sources

    env = airflow_env()
    _refuse_log_server_port(port, env)
    env["AIRFLOW__API__PORT"] = str(port)
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://localhost:{port}/execution/"
    env.setdefault("AIRFLOW__API__BASE_URL", f"http://localhost:{port}")
    airflow = _airflow_on_path(env)
    # the metadata DB and the one-writer pool, before the scheduler starts
    subprocess.run([sys.executable, "-c", "from carewatch import runner; runner.prepare_metadata_db()"], env=env, check=True)
    serve = sources.environment() == "embedded" and not env.get("CAREWATCH_BASE_URL")
    with (sample_server.serve_samples(remember=True) if serve else contextlib.nullcontext(env.get("CAREWATCH_BASE_URL"))) as base_url, _local_mail(env) as mail_dir:
        if serve:
            env["CAREWATCH_BASE_URL"] = base_url
            print(f"carewatch: serving the embedded sample publications at {base_url}; new DAGs start paused")
        if mail_dir:
            print(f"carewatch: alert emails are caught in {mail_dir}")
        print(f"carewatch: Airflow UI on http://localhost:{port} (user admin, password in {env['AIRFLOW_HOME']}/simple_auth_manager_passwords.json.generated)")
        # SIGINT: standalone stops its scheduler, API server and the rest on KeyboardInterrupt
        # (on SIGTERM it would die alone, and they would run on without the home's lock)
        return subprocess.call(_with_parent([airflow, "standalone"], death_signal=signal.SIGINT), env=env, pass_fds=(lock,))


def _airflow_on_path(env: dict[str, str]) -> str:
    """The venv's ``airflow``, first on ``env``'s PATH too (standalone starts its components as
    ``airflow ...`` from PATH: the venv's, even when it is not activated)."""
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return str(Path(sys.executable).with_name("airflow"))


def airflow_cli(args: list[str]) -> int:
    """``carewatch airflow-cli ARGS``: Airflow's own command line on the project's Airflow home
    (``var/airflow``, its DAGs and metadata DB), e.g. ``backfill create`` while ``make airflow``
    runs. A plain ``airflow`` in another shell would use ``~/airflow`` instead."""
    env = airflow_env()
    airflow = _airflow_on_path(env)
    return subprocess.call([airflow, *args], env=env)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--with-parent"]:  # _with_parent: arrange, then become the command
        death_signal = int(sys.argv[3])
        if death_signal != signal.SIGKILL:
            sys.exit(_relay_once(int(sys.argv[2]), death_signal, sys.argv[4:]))
        die_with_parent(int(sys.argv[2]), death_signal)
        os.execv(sys.argv[4], sys.argv[4:])
    sys.exit(_child_main(sys.argv[1:]))
