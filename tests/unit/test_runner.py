"""`carewatch run` and `carewatch airflow` on one CAREWATCH_HOME: one at a time, and a run's
Airflow child does not outlive it."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from carewatch import runner
from carewatch.errors import CarewatchError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its dead parent's reaper) counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def _wait_until(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_second_run_on_the_same_home_is_refused_in_one_line(carewatch_home):
    # two DAG.test runs sharing one Airflow metadata DB: the second deleted the first's DAG runs
    with runner.home_lock("run"):
        second = subprocess.run([sys.executable, "-m", "carewatch.cli", "run"], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "CAREWATCH_HOME": str(carewatch_home)})
        with pytest.raises(CarewatchError, match=r"is in use by carewatch run \(pid \d+"):
            with runner.home_lock("airflow"):
                pass
    assert second.returncode == 2 and second.stdout == ""
    [line] = second.stderr.splitlines()
    assert line.startswith(f"carewatch: {carewatch_home} is in use by carewatch run (pid {os.getpid()}, since ")
    assert line.endswith("wait for it to finish (one run per CAREWATCH_HOME)")
    with runner.home_lock("run"):  # released: free again
        pass


PARENT = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    from carewatch import runner
    if sys.argv[2:] == ["ignoring-sigint"]:  # as a process started with `&` from a script is
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    with runner.home_lock("run") as lock:
        # like Airflow's task runner, the child keeps SIGTERM for itself
        command = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, lambda *_: None); time.sleep(120)"]
        arranged = runner._with_parent(command, runner.RUN_CHILD_DEATH_SIGNAL) if sys.argv[1] == "dies" else command
        child = subprocess.Popen(arranged, pass_fds=(lock,))
        print(child.pid, flush=True)
        time.sleep(120)
""")


@pytest.mark.parametrize("arranged", ["dies", "plain"])
def test_a_killed_run_takes_its_child_with_it_and_the_lock_is_held_until_both_are_gone(carewatch_home, arranged):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, arranged], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "CAREWATCH_HOME": str(carewatch_home)})
    child = int(parent.stdout.readline())
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        if arranged == "dies":  # the child follows its parent
            assert _wait_until(lambda: not _alive(child))
        else:  # a child without it lives on, and keeps the home's lock: no second run beside it
            time.sleep(1)
            assert _alive(child)
            with pytest.raises(CarewatchError, match="is in use by carewatch run"):
                with runner.home_lock("run"):
                    pass
            os.kill(child, signal.SIGKILL)
            assert _wait_until(lambda: not _alive(child))
        assert _wait_until(lambda: _free())
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def _free() -> bool:
    try:
        with runner.home_lock("run"):
            return True
    except CarewatchError:
        return False


def test_a_child_to_be_interrupted_is_even_when_carewatch_started_with_sigint_ignored(carewatch_home):
    # make airflow's standalone stops on SIGINT; started from a script with `&`, SIGINT came
    # ignored, stayed so across exec, and standalone outlived carewatch
    parent = subprocess.Popen([sys.executable, "-c", PARENT.replace("runner.RUN_CHILD_DEATH_SIGNAL", "signal.SIGINT"),
                               "dies", "ignoring-sigint"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "CAREWATCH_HOME": str(carewatch_home)})
    child = int(parent.stdout.readline())
    try:
        time.sleep(1)  # the child is in its sleep, with Python's SIGINT handler
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert _wait_until(lambda: not _alive(child))
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


THREADED_PARENT = textwrap.dedent("""
    import signal, subprocess, sys, threading, time
    from carewatch import runner
    # like carewatch airflow: server threads beside the one that starts the child
    for _ in range(4):
        threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
    count = sys.argv[1]
    command = [sys.executable, "-c",
               "import signal, sys, time\\n"
               "got = []\\n"
               "signal.signal(signal.SIGINT, lambda *_: got.append(1))\\n"
               "open(sys.argv[1] + '.ready', 'w').close()\\n"
               "time.sleep(3)\\n"  # resumed after each handler (PEP 475)
               "open(sys.argv[1], 'w').write(str(len(got)))", count]
    subprocess.Popen(runner._with_parent(command, signal.SIGINT))
    time.sleep(120)
""")


def test_the_death_signal_reaches_the_command_once_though_carewatch_has_threads(tmp_path):
    # PR_SET_PDEATHSIG fires once per exiting thread of the parent: standalone got SIGINT two or
    # three times, and one arriving while it stopped its components left them running
    for attempt in range(3):
        count = tmp_path / f"count-{attempt}"
        parent = subprocess.Popen([sys.executable, "-c", THREADED_PARENT, str(count)])
        assert _wait_until(lambda: (tmp_path / f"count-{attempt}.ready").exists())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert _wait_until(lambda: count.exists()), "the command did not finish"
        assert count.read_text() == "1", f"attempt {attempt}: SIGINT {count.read_text()} times"


def test_the_summary_gets_each_dag_runs_id_from_the_childs_log(tmp_path):
    # the sources block reads what each ingest run did by its run id (fetch_log), whatever
    # the DAG's outcome: the child prints the ids beside the states
    log = tmp_path / "run.log"
    log.write_text('noise\nCAREWATCH_DAG_STATES {"ingest_dtoc_la": "failed"}\n'
                   'CAREWATCH_DAG_RUN_IDS {"ingest_dtoc_la": "manual__2019-03-15T09:00:00+00:00"}\n')
    assert runner._read_states(log) == {"ingest_dtoc_la": "failed"}
    assert runner._read_states(log, "CAREWATCH_DAG_RUN_IDS") == {"ingest_dtoc_la": "manual__2019-03-15T09:00:00+00:00"}
    log.write_text("the child crashed before printing\n")
    assert runner._read_states(log, "CAREWATCH_DAG_RUN_IDS") == {}


def test_status_on_the_samples_judges_what_is_due_as_of_the_date_the_latest_run_ran_for(carewatch_home, monkeypatch):
    # after `carewatch run --logical-date 2018-07-15` failed dtoc_la 2018-04 as OVERDUE, a plain
    # `carewatch status` judged the periods due as of embedded.run_date (2018-05-15) and said OK
    from carewatch import status, summary

    monkeypatch.delenv("CAREWATCH_ENV", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", "smtp://127.0.0.1:1")  # no mail catcher
    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))  # no Airflow
    monkeypatch.setattr(summary, "print_run_summary", lambda *a, **k: None)
    assert status.default_as_of() == dt.date(2018, 5, 15)  # before any run: config/sources.yaml embedded.run_date
    assert runner._run_embedded("2018-07-15", lock=-1) == 1  # a run that failed still handled that date's periods
    assert status.default_as_of() == dt.date(2018, 7, 15)
    runner._run_embedded(None, lock=-1)  # a later plain run: embedded.run_date again
    assert status.default_as_of() == dt.date(2018, 5, 15)
    monkeypatch.setenv("CAREWATCH_ENV", "production")
    assert status.default_as_of() == dt.date.today()


def test_a_run_on_a_home_whose_warehouse_was_lost_is_refused_in_one_line_before_airflow_starts(carewatch_home, monkeypatch, capsys):
    # the warehouse deleted, the raw store full: the run started a new warehouse, fetched every
    # period again as v1 and lost which version was loaded when, the rejections and what was reported
    from carewatch import cli, pipeline

    (carewatch_home / "raw" / "dtoc_la" / "2018-01").mkdir(parents=True)
    (carewatch_home / "raw" / "dtoc_la" / "2018-01" / "ab.xls").write_bytes(b"x")
    monkeypatch.setattr(runner, "_run_embedded", lambda *a, **k: pytest.fail("the run went ahead"))
    assert cli.main(["run"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (f"carewatch: no warehouse at {carewatch_home / 'warehouse.duckdb'}, though {carewatch_home / 'raw'} "
                    "holds files: it was lost; restore the latest good backup (carewatch restore BACKUP --to NEW_HOME) "
                    "rather than start a new warehouse without its history (to start afresh on purpose, move the raw "
                    "store aside first)")
    (carewatch_home / "warehouse.duckdb").write_bytes(b"")  # one there: the guard is satisfied
    pipeline.refuse_lost_warehouse()
    (carewatch_home / "warehouse.duckdb").unlink()
    (carewatch_home / "raw" / "dtoc_la" / "2018-01" / "ab.xls").unlink()
    pipeline.refuse_lost_warehouse()  # a home never run (no raw file, no warehouse): nothing to refuse
