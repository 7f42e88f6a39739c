"""The source catalogue and the sample server."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlparse

import pytest
import requests

from carewatch import paths, sample_server, sources


def test_every_source_has_a_parser_and_both_environments():
    from carewatch import parsers

    for name, src in sources.catalogue().items():
        assert src.parser in parsers.names(), name
        assert {"production", "embedded"} <= set(src.urls), name
        link = sources.page_link(name, src.first_period, "production")
        prod = link.page if link else sources.url_for(name, src.first_period, "production")
        assert urlparse(prod).scheme == "https" and urlparse(prod).hostname in src.allowed_hosts("production"), name
        assert set(src.allowed_hosts("embedded")) <= {"127.0.0.1", "localhost"}


def test_periods_by_cadence():
    assert sources.periods("dtoc_la", "2017-11", "2018-02") == ["2017-11", "2017-12", "2018-01", "2018-02"]
    assert sources.periods("ascof", "2014-15", "2016-17") == ["2014-15", "2015-16", "2016-17"]
    assert sources.periods("ons_mye", "2015", "2017") == ["2015", "2016", "2017"]
    assert len(sources.periods("dtoc_la", "2010-08", "2020-02")) == 115


@pytest.mark.parametrize(("day", "expected"), [
    (dt.date(2017, 4, 1), "2017-18"), (dt.date(2017, 12, 31), "2017-18"), (dt.date(2018, 1, 1), "2017-18"),
    (dt.date(2018, 3, 31), "2017-18"), (dt.date(1999, 4, 30), "1999-00"), (dt.date(2000, 2, 29), "1999-00"),
])
def test_the_financial_year_a_day_falls_in(day, expected):
    assert sources.financial_year(day) == expected
    assert sources.financial_year_start(day) == int(expected[:4])


def test_due_dates():
    # February 2017 DTOC was published on Thursday 13 April 2017 (the second Thursday)
    assert sources.due_date("dtoc_la", "2017-02") == dt.date(2017, 4, 13)
    assert sources.due_date("dtoc_la", "2020-02") == dt.date(2020, 4, 9)
    # the annual sources are due on the first of the month after their publication, so that the
    # run on the 15th of the publication month (the due day + 14 grace days is the 15th) does not
    # call a file published later that month overdue: a financial year starts in April (2016-17,
    # published 25 October 2017: April 2016 + 19 months = 1 November 2017), a mid-year estimate in
    # July (mid-2016, published late June 2017: July 2016 + 12 months = 1 July 2017; 18 gave
    # 1 January 2018, half a year late)
    assert sources.due_date("ascof", "2016-17") == dt.date(2017, 11, 1)
    assert sources.due_date("ons_mye", "2016") == dt.date(2017, 7, 1)


def test_urls():
    assert sources.url_for("dtoc_la", "2017-02", "embedded", "http://127.0.0.1:9") == "http://127.0.0.1:9/dtoc_la/2017-02.xls"
    # a listed production URL wins over the pattern (real names carry random suffixes)
    assert sources.url_for("dtoc_la", "2012-06", "production").endswith("/2013/04/LA-Type-B-June-2012.xls")
    assert sources.page_link("dtoc_la", "2012-06", "production") is None  # so the page is not read
    # a month not listed is found by its link on its financial year's publication page
    # (tests/unit/test_fetch_publication_page.py); there is no pattern to guess its name from
    assert sources.page_link("dtoc_la", "2019-06", "production").page.endswith("/delayed-transfers-of-care-data-2019-20/")
    with pytest.raises(ValueError, match="no pattern"):
        sources.url_for("dtoc_la", "2019-06", "production")


def test_embedded_run_is_the_2018_dashboard_month_and_samples_reach_the_end_of_dtoc():
    run = sources.embedded_run_date().date()
    # the run after March 2018's publication (due 10 May 2018), before April 2018's
    assert sources.due_date("dtoc_la", "2018-03") <= run < sources.due_date("dtoc_la", "2018-04")
    assert sources.embedded_samples_until() >= sources.due_date("dtoc_la", "2020-02")
    # the 2018 dashboard's year of ASCOF and its population estimate are due by then, the next ones not
    assert sources.due_date("ascof", "2016-17") <= run < sources.due_date("ascof", "2017-18")
    assert sources.due_date("ons_mye", "2016") <= run < sources.due_date("ons_mye", "2017")


@pytest.mark.parametrize(("source", "beyond"), [("ascof", "2020-21"), ("ons_mye", "2020")])
def test_the_samples_hold_each_annual_period_due_by_samples_until(source, beyond):
    # config/sources.yaml: "the embedded samples hold every period published by this date"
    until = sources.embedded_samples_until()
    due = {p for p in sources.periods(source, sources.get(source).first_period, beyond) if sources.due_date(source, p) <= until}
    assert {f.stem for f in (paths.samples_dir() / source).iterdir()} == due


def test_sample_server_sends_etags_and_304s(tmp_path):
    (tmp_path / "dtoc_la").mkdir()
    (tmp_path / "dtoc_la" / "2017-02.xls").write_bytes(b"\xd0\xcf\x11\xe0 content")
    with sample_server.serve_samples(tmp_path) as base:
        first = requests.get(f"{base}/dtoc_la/2017-02.xls", timeout=5)
        assert first.status_code == 200 and first.headers["Content-Type"] == "application/vnd.ms-excel"
        etag = first.headers["ETag"]
        again = requests.get(f"{base}/dtoc_la/2017-02.xls", headers={"If-None-Match": etag}, timeout=5)
        assert again.status_code == 304
        assert requests.get(f"{base}/dtoc_la/2099-01.xls", timeout=5).status_code == 404


def test_local_runs_serve_the_samples_at_the_same_urls_each_time(carewatch_home, tmp_path):
    # a refusal is recognised as one already emailed by its URL: on a new random port every run,
    # a local run emailed the same refusal again each time
    import socket

    with sample_server.serve_samples(tmp_path, remember=True) as first:
        pass
    with sample_server.serve_samples(tmp_path, remember=True) as again:
        assert again == first
        port = int(again.rsplit(":", 1)[1])
    with socket.socket() as taken:  # the remembered port is busy: any free one, remembered in turn
        taken.bind(("127.0.0.1", port))
        with sample_server.serve_samples(tmp_path, remember=True) as other:
            assert other != first
    assert sample_server.remembered_port().read_text().strip() == other.rsplit(":", 1)[1]
    sample_server.remembered_port().write_text("70000\n")  # no port at all: any free one
    with sample_server.serve_samples(tmp_path, remember=True) as served:
        assert requests.get(f"{served}/nothing", timeout=5).status_code == 404


@pytest.mark.parametrize("argv, message", [
    (["validate", "dtoc_la", "x.xls", "--period", "2018-13"], "carewatch: dtoc_la: period '2018-13' should be written "),
    (["parse", "ascof", "x.csv", "--period", "2016"], "carewatch: ascof: period '2016' should be written "),
    (["parse", "hes_apc", "x.parquet"], "carewatch: unknown source or parser 'hes_apc'; sources: "),
    (["run", "--logical-date", "2018-13-01"], "carewatch: --logical-date '2018-13-01' is not a date (YYYY-MM-DD) or an ISO timestamp"),
])
def test_cli_refuses_bad_arguments_in_one_line(argv, message, capsys):
    from carewatch import cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def test_cli_interrupted_says_what_it_left_in_one_line_not_a_traceback(capsys, monkeypatch):
    from carewatch import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_run", interrupted)
    assert cli.main(["run"]) == 130  # 128 + SIGINT, as a shell reports it
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.strip().startswith("carewatch: interrupted.") and "run the same command again" in err and err.strip().count("\n") == 0


@pytest.mark.parametrize("port", ["99999", "-1", "65536", "http"])
def test_serve_samples_refuses_a_port_that_is_no_port_as_a_usage_error(port, capsys):
    # was a traceback from bind() (OverflowError: port must be 0-65535)
    from carewatch import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve-samples", "--port", port])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"carewatch serve-samples: error: argument --port: '{port}' is not a port number "
                                            "(0 to 65535; 0 serves on any free port)")
    assert [sample_server.port_number(p) for p in ("0", "8765", "65535")] == [0, 8765, 65535]


@pytest.mark.parametrize("port", ["0", "99999", "-1", "http"])
def test_the_airflow_ui_refuses_a_port_that_is_no_port_as_a_usage_error(port, capsys):
    # was int(): 99999 reached Airflow's API server, which failed to bind far from the cause
    from carewatch import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["airflow", "--port", port])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"carewatch airflow: error: argument --port: '{port}' is not a port number for the Airflow UI (1 to 65535)"
    assert cli._ui_port("8080") == 8080 and cli._ui_port("65535") == 65535


def test_the_airflow_ui_refuses_airflows_own_log_server_ports_in_one_line(carewatch_home, capsys, monkeypatch):
    # found in the Airflow drill: on 8793 every task failed "Not Found", emailed "unknown error"
    from carewatch import cli, runner

    def started(*args, **kwargs):
        raise AssertionError("Airflow was started")

    monkeypatch.setattr(runner.subprocess, "run", started)
    monkeypatch.setattr(runner.subprocess, "call", started)

    for port in ("8793", "8794"):
        assert cli.main(["airflow", "--port", port]) == 2
        assert capsys.readouterr().err.startswith(f"carewatch: --port {port} is Airflow's ")
    monkeypatch.setenv("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "8795")  # moved: that one is refused instead
    assert cli.main(["airflow", "--port", "8795"]) == 2
    assert capsys.readouterr().err == ("carewatch: --port 8795 is Airflow's worker_log_server_port (task logs are served "
                                       "there, so every task would fail \"Not Found\"): give the UI another port, e.g. the "
                                       "default 8080\n")


def test_serve_samples_on_a_port_already_taken_is_one_line(capsys):
    import socket

    from carewatch import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve-samples", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"carewatch: cannot serve the samples on 127.0.0.1:{port}: "), err


def test_cli_validate_needs_the_period(capsys):
    from carewatch import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["validate", "dtoc_la", "x.xls"])
    assert exit_.value.code == 2 and "--period" in capsys.readouterr().err


def test_cli_validate_prints_its_results_and_nothing_on_stderr(carewatch_home, capsys):
    """No GX "Calculating Metrics" progress bars between the results."""
    from carewatch import cli
    from tests.conftest import FIXTURES

    assert cli.main(["validate", "dtoc_la", str(FIXTURES / "real" / "dtoc-la" / "LA-Type-B-June-2016.xls"),
                     "--period", "2016-06"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1].endswith("LA-Type-B-June-2016.xls (dtoc_la 2016-06): 20 expectations, 0 blocking failures, 0 warnings")
    assert err == ""


@pytest.mark.parametrize("verb", ["parse", "validate"])
def test_cli_output_read_by_a_reader_that_goes_away_ends_quietly(verb, tmp_path):
    """`carewatch parse ... | head`: no BrokenPipeError traceback on stderr, whether the pipe
    breaks during a write (parse: thousands of rows) or when the last buffered output is
    flushed (validate: a few lines, all still in the buffer when the command returns)."""
    import os
    import subprocess
    import sys

    from tests.conftest import FIXTURES

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered, as in a shell
    env["CAREWATCH_HOME"] = str(tmp_path)  # no warehouse: validate runs without history
    proc = subprocess.Popen([sys.executable, "-m", "carewatch.cli", verb, "dtoc_la",
                             str(FIXTURES / "real" / "dtoc-la" / "LA-Type-B-June-2016.xls"), "--period", "2016-06"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if verb == "parse":
        assert proc.stdout.readline().startswith(b"period,")  # the CSV header, as `head -1` reads it
    proc.stdout.close()  # ... and goes away with the rest unread
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1 and err == "", err


def test_samples_options_that_do_not_go_together_are_refused(capsys):
    from carewatch import cli

    assert cli.main(["samples", "--episodes", "10"]) == 2
    assert capsys.readouterr().err.strip() == "carewatch: --episodes and --seed go with --hes-apc FILE"
    assert cli.main(["samples", "--hes-apc", "x.parquet", "--out", "elsewhere"]) == 2
    assert capsys.readouterr().err.strip().startswith("carewatch: --hes-apc writes one extract to FILE")


def test_the_embedded_run_ingests_every_catalogue_source_once():
    from carewatch import runner

    order = runner.ingest_order()
    assert sorted(order) == sorted(sources.catalogue()) and order[:2] == ["ons_mye", "ascof"]


def test_the_catalogue_comments_explain_every_key_an_entry_is_read_for():
    # the comments at the top of config/sources.yaml are what README "How to add a source" sends a
    # newcomer to: every key carewatch.sources reads from an entry (and its urls) is explained there
    import re

    header = []
    for line in (paths.config_dir() / "sources.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    explained = " ".join(header)
    code = (paths.PROJECT_ROOT / "src" / "carewatch" / "sources.py").read_text()
    read = set(re.findall(r'entry(?:\["(\w+)"\]|\.get\("(\w+)")', code))
    read = {a or b for a, b in read} | {k for k in re.findall(r'(?:urls|env_urls\(env\))(?:\["|\.get\(")(\w+)"', code)}
    assert {"schedule", "max_bytes", "content_types", "parser", "loads_to_warehouse", "first_period", "last_period",
            "title", "publisher", "cadence", "allowed_hosts", "index_page", "link_text"} <= read  # the pattern finds them
    assert [key for key in sorted(read) if not re.search(rf"\b{key}\b", explained)] == []


def test_the_metrics_wait_for_the_sources_the_catalogue_marks_as_feeding_them(tmp_path, monkeypatch):
    import shutil

    import yaml

    # the shipped catalogue: every source a metric reads; not dtoc_provider, landed for analysts
    assert sorted(sources.metric_sources()) == ["ascof", "dtoc_la", "dtoc_national", "hes_aggregate", "ons_mye"]
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    catalogue = yaml.safe_load((config / "sources.yaml").read_text())
    catalogue["sources"]["dtoc_provider"]["feeds_metrics"] = True
    catalogue["sources"]["nhs_beds"] = {k: v for k, v in catalogue["sources"]["dtoc_national"].items() if k != "feeds_metrics"}
    (config / "sources.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    # a source says so in its entry; one that does not say (nhs_beds) does not feed them
    assert sorted(sources.metric_sources()) == ["ascof", "dtoc_la", "dtoc_national", "dtoc_provider", "hes_aggregate", "ons_mye"]
