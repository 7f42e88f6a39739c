"""Alert emails sent through Airflow's SMTP hook to a real SMTP server on localhost (aiosmtpd)."""

from __future__ import annotations

import re

import pytest

from carewatch import alerts, mailcatcher, parsers, validation
from carewatch.errors import CarewatchError, PublicationOverdue, PublicationWithdrawn, QualityError
from tests.conftest import FIXTURES

REAL = FIXTURES / "real" / "dtoc-la" / "LA-Type-B-June-2016.xls"


def subject(message) -> str:
    """The subject as a mail client shows it (long headers are folded on the wire)."""
    return " ".join(str(message["Subject"]).split())


@pytest.fixture
def mailbox(tmp_path, monkeypatch):
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, directory):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        yield directory


@pytest.fixture(scope="module")
def bad_report():
    frame = parsers.parse("dtoc_la", REAL)
    frame.loc[(frame["la_name"] == "Derby UA") & (frame["breakdown"] == "care_type") & (frame["category"] == "acute"), "value"] = -12.0
    frame.loc[(frame["la_name"] == "Derby UA") & (frame["breakdown"] == "care_type") & (frame["category"] == "non_acute"), "value"] += 10_000.0
    frame = frame.assign(value=frame["value"].where(frame["la_name"] != "Barnet"))  # a few "-" figures more: under the warning limit, but refused (Barnet was not abolished)
    # England summed from the figures shown: only the checks above object
    keys = ["breakdown", "category", "measure"]
    sums = frame[frame["row_type"] != "england"].groupby(keys)["value"].sum().rename("_sum").reset_index()
    england = frame[frame["row_type"] == "england"].reset_index().merge(sums, on=keys).set_index("index")
    frame.loc[england.index, "value"] = england["_sum"]
    return validation.validate("dtoc_la", frame, period="2016-07")


def test_a_quality_alert_names_source_period_severity_and_each_failure(mailbox, bad_report):
    assert {(r.column, r.severity) for r in bad_report.results if not r.success} == {("period", "blocking"), ("value", "blocking")}
    recipients = alerts.send(alerts.quality_alert(bad_report, file_version=3, sha256="f" * 64, task_url="http://localhost:8080/dags/ingest_dtoc_la/runs/r1/tasks/one_period.validate"))
    [message] = mailcatcher.messages(mailbox)
    assert recipients == ["data-engineering@localhost"] and message["X-Envelope-To"] == "data-engineering@localhost"
    assert subject(message) == "[carewatch] BLOCKING dtoc_la 2016-07: 3 expectations failed"
    body = mailcatcher.body_text(message)
    assert "version 3" in body and "quarantined" in body
    # each failed expectation: what was expected (the suite's words and thresholds) and offending rows
    assert "the period inside the file is the period requested" in body and "value_set=[&#x27;2016-07-01&#x27;]" in body
    assert "delayed days are not negative" in body and "min_value=0" in body and "-12.0" in body
    assert "http://localhost:8080/dags/ingest_dtoc_la/runs/r1/tasks/one_period.validate" in body


def four_times_the_usual(frame):
    """A history in which every council had a quarter of this month's days: one warning (3x its trailing median)."""
    totals = frame[(frame["row_type"] == "council") & (frame["breakdown"] == "agency") & (frame["category"] == "total")
                   & (frame["measure"] == "delayed_days")]
    earlier = totals[["council_code", "value"]].assign(value=totals["value"] / 4)
    return lambda spec: earlier


def test_warnings_only_say_warning_and_loaded(mailbox):
    # (every figure missing was the warning-only file until a figure missing outside an abolished council's row blocked)
    frame = parsers.parse("dtoc_la", REAL)
    report = validation.validate("dtoc_la", frame, period="2016-06", history=four_times_the_usual(frame))
    assert report.ok and report.warnings
    alerts.send(alerts.quality_alert(report))
    [message] = mailcatcher.messages(mailbox)
    assert subject(message).startswith("[carewatch] WARNING dtoc_la 2016-06: 1 expectation failed")
    assert "the batch was loaded" in mailcatcher.body_text(message)


def test_recipients_come_from_config_or_the_environment(mailbox, bad_report, monkeypatch):
    monkeypatch.setenv("CAREWATCH_ALERT_RECIPIENTS", "ops@localhost, analyst@localhost")
    alerts.send(alerts.quality_alert(bad_report))
    [message] = mailcatcher.messages(mailbox)
    assert message["X-Envelope-To"] == "ops@localhost, analyst@localhost"


def test_an_overdue_publication_and_a_plain_failure(mailbox):
    overdue = PublicationOverdue("dtoc_la", "2018-03", "https://www.england.nhs.uk/x.xls", "HTTP 404 and the publication was due by 2018-05-24: overdue")
    alerts.send(alerts.failure_alert(dag_id="ingest_dtoc_la", task_id="one_period.fetch", error=overdue, map_index=2))
    alerts.send(alerts.failure_alert(dag_id="metrics", task_id="build_warehouse", error=RuntimeError("Binder Error: column x not found"), task_url="http://ui/t"))
    first, second = mailcatcher.messages(mailbox)
    assert subject(first) == "[carewatch] OVERDUE dtoc_la 2018-03: publication not found after its due date"
    assert "config/sources.yaml" in mailcatcher.body_text(first)
    assert subject(second) == "[carewatch] FAILED metrics.build_warehouse: Binder Error: column x not found"
    assert "RuntimeError" in mailcatcher.body_text(second) and "http://ui/t" in mailcatcher.body_text(second)


def test_a_withdrawn_publication_is_not_called_overdue(mailbox):
    from airflow.sdk.exceptions import AirflowFailException

    gone = PublicationWithdrawn("dtoc_la", "2017-02", "https://www.england.nhs.uk/x.xls",
                                "HTTP 404: the file is no longer at this URL; the version held (1) is kept")
    try:  # as the DAG raises it: failed without retries, from the refusal
        raise AirflowFailException(str(gone)) from gone
    except AirflowFailException as wrapped:
        alerts.send(alerts.failure_alert(dag_id="ingest_dtoc_la", task_id="one_period.fetch", error=wrapped, map_index=1))
    [message] = mailcatcher.messages(mailbox)
    assert subject(message) == "[carewatch] GONE dtoc_la 2017-02: a publication held is no longer at its URL"
    body = mailcatcher.body_text(message)
    assert "stays loaded" in body and "config/sources.yaml" in body and "version held (1) is kept" in body


def test_a_refusal_or_a_parse_failure_says_source_period_step_and_problem_in_the_subject(mailbox):
    from airflow.sdk.exceptions import AirflowFailException

    from carewatch.errors import FetchError, ParseError

    # a ParseError's text starts with the raw file's path: 120 characters of it said nothing
    unparsed = ParseError("ascof", "/opt/carewatch/var/raw/ascof/2016-17/" + "7e" * 32 + ".csv", "missing column(s) measure_type",
                          period="2016-17")
    alerts.send(alerts.failure_alert(dag_id="ingest_ascof", task_id="one_period.parse", error=unparsed, map_index=2))
    refused = FetchError("dtoc_la", "2018-04", "http://x/dtoc_la/2018-04.xls", "an HTML page was served instead of a xls file")
    try:  # as the DAG raises it: failed without retries, from the refusal
        raise AirflowFailException(str(refused)) from refused
    except AirflowFailException as wrapped:
        alerts.send(alerts.failure_alert(dag_id="ingest_dtoc_la", task_id="one_period.fetch", error=wrapped, map_index=0))
    parse_mail, fetch_mail = mailcatcher.messages(mailbox)
    assert subject(parse_mail) == "[carewatch] FAILED ascof 2016-17 parse: missing column(s) measure_type"
    assert "7e7e7e.csv: cannot parse as ascof" in mailcatcher.body_text(parse_mail)  # the path stays in the body
    assert subject(fetch_mail) == "[carewatch] FAILED dtoc_la 2018-04 fetch: an HTML page was served instead of a xls file"


def test_the_failure_body_says_how_many_attempts_or_that_there_were_no_retries(mailbox):
    from airflow.sdk.exceptions import AirflowFailException

    from carewatch.errors import FetchError

    alerts.send(alerts.failure_alert(dag_id="metrics", task_id="build_warehouse", error=RuntimeError("IO Error"), attempts=3))
    alerts.send(alerts.failure_alert(dag_id="metrics", task_id="report", error=RuntimeError("IO Error"), attempts=1))
    refused = FetchError("dtoc_la", "2018-04", "http://x/dtoc_la/2018-04.xls", "an HTML page was served instead of a xls file")
    try:  # as the DAG raises a refusal that a retry cannot mend
        raise AirflowFailException(str(refused)) from refused
    except AirflowFailException as wrapped:
        alerts.send(alerts.failure_alert(dag_id="ingest_dtoc_la", task_id="one_period.fetch", error=wrapped, attempts=1))

    retried, once, at_once = (re.sub(r"<[^>]+>", "", mailcatcher.body_text(m)) for m in mailcatcher.messages(mailbox))
    assert "metrics.build_warehouse failed after 3 attempts." in " ".join(retried.split())
    assert "metrics.report failed after 1 attempt." in " ".join(once.split())
    assert "failed without retries: trying again would fail the same way." in " ".join(at_once.split())
    assert not any("after its retries" in body for body in (retried, once, at_once))


def test_a_quality_alert_gives_the_command_with_the_raw_file(mailbox, bad_report):
    alerts.send(alerts.quality_alert(bad_report, file_version=3, sha256="f" * 64, raw_path="/var/raw/dtoc_la/2016-07/ff.xls"))
    [message] = mailcatcher.messages(mailbox)
    body = mailcatcher.body_text(message)
    assert "carewatch validate dtoc_la /var/raw/dtoc_la/2016-07/ff.xls --period 2016-07" in body


def test_the_failure_callback_uses_the_quality_details(mailbox, bad_report):
    class TI:  # what Airflow hands the callback: only the attributes it reads
        dag_id, task_id, map_index, log_url = "ingest_dtoc_la", "one_period.validate", 0, "http://ui/log"

    error = QualityError("dtoc_la", "2016-07", ["x"], report=bad_report, file_version=1, sha256="a" * 64, raw_path="/raw/a.xls")
    alerts.on_task_failure({"ti": TI(), "exception": error})
    # the metrics DAG fails a blocking warehouse check without retries: Airflow's exception, raised from it
    from airflow.sdk.exceptions import AirflowFailException

    wrapped = AirflowFailException(str(error))
    wrapped.__cause__ = error
    alerts.on_task_failure({"ti": TI(), "exception": wrapped})
    direct, through_airflow = mailcatcher.messages(mailbox)
    for message in (direct, through_airflow):
        assert subject(message).startswith("[carewatch] BLOCKING dtoc_la 2016-07") and "http://ui/log" in mailcatcher.body_text(message)
        assert "carewatch validate dtoc_la /raw/a.xls --period 2016-07" in mailcatcher.body_text(message)


def test_a_mail_outage_never_raises_from_the_callback(carewatch_home, tmp_path, monkeypatch):
    from carewatch import paths

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(mailcatcher.free_port()))  # nothing listens
    assert alerts.send_quietly(alerts.failure_alert(dag_id="d", task_id="t", error="boom")) is True  # kept for later
    assert len(alerts.outbox()) == 1
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(paths, "outbox_dir", lambda: tmp_path / "a-file" / "outbox")  # not even the outbox can take it
    assert alerts.send_quietly(alerts.failure_alert(dag_id="d", task_id="t", error="boom")) is False


def test_a_refused_download_is_recorded_as_reported_only_once_its_email_went_out_or_waits_in_the_outbox(carewatch_home, tmp_path, monkeypatch):
    """What lets the next run skip a held month refused the same way (carewatch.fetch)."""
    import duckdb

    from airflow.sdk.exceptions import AirflowFailException

    from carewatch import paths
    from carewatch.errors import FetchError

    class TI:
        dag_id, task_id, map_index, log_url = "ingest_dtoc_la", "one_period.fetch", 0, "http://ui/log"

    def reported():
        with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
            return con.execute("select source, period, url, error, run_id from fetch_refusals_reported order by run_id").fetchall()

    html = FetchError("dtoc_la", "2017-02", "http://h/x.xls", "an HTML page was served instead of a xls file")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(mailcatcher.free_port()))  # mail down
    real_outbox = paths.outbox_dir
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(paths, "outbox_dir", lambda: tmp_path / "a-file" / "outbox")  # and the outbox unwritable
    alerts.on_task_failure({"ti": TI(), "exception": html, "run_id": "r0"})
    assert not paths.warehouse_path().exists() or reported() == []  # neither emailed nor kept: not reported
    monkeypatch.setattr(paths, "outbox_dir", real_outbox)
    alerts.on_task_failure({"ti": TI(), "exception": html, "run_id": "r1"})  # kept in the outbox: it will go out
    assert len(alerts.outbox()) == 1
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, directory):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        wrapped = AirflowFailException("overdue")  # how the DAG fails an overdue publication without retries
        wrapped.__cause__ = FetchError("dtoc_la", "2017-03", "http://h/y.xls", "HTTP 404")
        alerts.on_task_failure({"ti": TI(), "exception": wrapped, "run_id": "r3"})
        alerts.on_task_failure({"ti": TI(), "exception": RuntimeError("not a download"), "run_id": "r4"})
        delivered = [subject(m) for m in mailcatcher.messages(directory)]
    assert delivered[0] == "[carewatch] FAILED dtoc_la 2017-02 fetch: an HTML page was served instead of a xls file"  # r1's, kept, first
    assert len(delivered) == 3 and alerts.outbox() == []
    assert reported() == [("dtoc_la", "2017-02", "http://h/x.xls", "an HTML page was served instead of a xls file", "r1"),
                          ("dtoc_la", "2017-03", "http://h/y.xls", "HTTP 404", "r3")]


def test_an_overdue_publication_is_emailed_at_most_once_in_overdue_repeat_days(carewatch_home, mailbox, monkeypatch, caplog):
    """A backfill's runs, a month apart in logical dates but minutes apart on the clock, each find
    the same month missing: one email, then a reminder once the days have passed."""
    import duckdb

    from airflow.sdk.exceptions import AirflowFailException

    from carewatch import paths

    class TI:
        dag_id, task_id, map_index, log_url = "ingest_dtoc_la", "one_period.fetch", 0, "http://ui/log"

    def fail(url: str, run_id: str) -> None:  # as the DAG fails it: without retries, from the refusal
        overdue = PublicationOverdue("dtoc_la", "2018-01", url, "HTTP 404 and the publication was due by 2018-03-22: overdue")
        wrapped = AirflowFailException(str(overdue))
        wrapped.__cause__ = overdue
        alerts.on_task_failure({"ti": TI(), "exception": wrapped, "run_id": run_id})

    def emailed() -> list[tuple[str, str]]:  # subject, and the URL the body names
        return [(subject(m), re.search(r"\((http://h/[^)]*)\)", mailcatcher.body_text(m)).group(1)) for m in mailcatcher.messages(mailbox)]

    fail("http://h/jan.xls", "backfill__2018-05-15")
    fail("http://h/jan.xls", "backfill__2018-06-15")  # minutes later: the same refusal
    fail("http://h/jan.xls", "backfill__2018-07-15")
    assert emailed() == [("[carewatch] OVERDUE dtoc_la 2018-01: publication not found after its due date", "http://h/jan.xls")]
    assert "not emailed again" in caplog.text and "by run backfill__2018-05-15" in caplog.text
    fail("http://h/moved/jan.xls", "backfill__2018-08-15")  # a new URL (the file moved): its own first email
    assert [url for _, url in emailed()] == ["http://h/jan.xls", "http://h/moved/jan.xls"]
    # 21 days on (the email's record moved back), the next run reminds
    with duckdb.connect(str(paths.warehouse_path())) as con:
        con.execute("update fetch_refusals_reported set reported_at = reported_at - interval 21 days")
    fail("http://h/jan.xls", "scheduled__2018-09-15")
    fail("http://h/jan.xls", "scheduled__2018-09-15-cleared")
    assert [url for _, url in emailed()] == ["http://h/jan.xls", "http://h/moved/jan.xls", "http://h/jan.xls"]
    monkeypatch.setattr(alerts, "settings", lambda: {**alerts._settings_file(), "overdue_repeat_days": 0})
    fail("http://h/jan.xls", "manual__1")  # 0: every failing run emails
    assert len(emailed()) == 4


def test_a_warehouse_check_alert_says_how_to_rerun_the_check_not_a_file(mailbox, bad_report):
    import pandas as pd

    rows = pd.DataFrame([("dtoc_days_per_100k", "month", "2018-03-01", 150, 148, 2, "E06000058 E06000059")],
                        columns=["metric_id", "period_type", "period_start", "areas_expected", "areas_present",
                                 "areas_missing", "missing_areas"])
    report = validation.validate_check("metric_completeness", rows)
    assert report.ok and len(report.warnings) == 2
    alerts.send(alerts.quality_alert(report))
    alerts.send(alerts.quality_alert(bad_report))
    check, source = (mailcatcher.body_text(m) for m in mailcatcher.messages(mailbox))
    assert "carewatch check metric_completeness</code>" in check and "carewatch check metric_completeness --failing" in check
    assert "include/sql/checks/metric_completeness.sql" in check and "the warehouse build committed" in check
    assert "carewatch validate" not in check and "raw file" not in check and "batch" not in check
    assert "clear the task" not in check  # the build committed: nothing to retry
    assert "carewatch validate dtoc_la &lt;raw file&gt; --period 2016-07" in source and "carewatch check" not in source
    blocking = validation.ValidationReport("check:dtoc_national_vs_la", "dtoc_national_vs_la", "warehouse", results=[
        validation.ExpectationResult("expect_column_values_to_be_between", "relative_difference", "blocking", "", False, None, 1, ["-0.06"])])
    rolled_back = alerts.quality_alert(blocking).html
    assert "The warehouse build was <b>rolled back</b>" in rolled_back and "quarantined" not in rolled_back
    assert "as committed, i.e. the previous build" in rolled_back and "--failing" not in rolled_back
    assert "fix it in review, then clear the task" in rolled_back
    # a wrong file that passed its suite need not hold back every build until its revision
    assert 'carewatch reject SOURCE PERIOD --reason \"...\"</code>, then clear the task' in rolled_back
    assert "carewatch reject" not in check  # a warning: the build committed


def test_an_alert_the_mail_server_refuses_is_kept_and_sent_by_a_later_attempt(tmp_path, monkeypatch, carewatch_home, bad_report):
    # the pipeline records a failure as reported when it fails (a quarantined file, a parse
    # error, a refused download are not emailed again): an outage must delay the email, not lose it
    from carewatch import paths

    closed = mailcatcher.free_port()  # nothing listens there: the connection is refused
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(closed))
    assert alerts.send_quietly(alerts.quality_alert(bad_report))
    assert alerts.send_quietly(alerts.Alert(subject="[carewatch] FAILED x.y: second", html="<p>second</p>"))
    kept = alerts.outbox()
    assert len(kept) == 2 and not list(paths.outbox_dir().glob(".*"))  # whole files, nothing half-written
    assert alerts.flush_outbox() == (0, 2)  # the server still refuses: both wait

    with mailcatcher.catch_mail(tmp_path / "mail") as (port, directory):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        assert alerts.flush_outbox() == (2, 0)
        assert alerts.flush_outbox() == (0, 0)  # sent once
        # a later alert also sends whatever waits before it, oldest first
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(closed))
        alerts.send_quietly(alerts.Alert(subject="[carewatch] FAILED x.y: third", html="<p>third</p>"))
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        alerts.send_quietly(alerts.Alert(subject="[carewatch] FAILED x.y: fourth", html="<p>fourth</p>"))
        subjects = [subject(m) for m in mailcatcher.messages(directory)]
    assert subjects == ["[carewatch] BLOCKING dtoc_la 2016-07: 3 expectations failed", "[carewatch] FAILED x.y: second",
                        "[carewatch] FAILED x.y: third", "[carewatch] FAILED x.y: fourth"]
    assert alerts.outbox() == []


def test_an_outbox_file_that_is_not_a_kept_alert_is_set_aside(carewatch_home, mailbox):
    from carewatch import paths

    paths.outbox_dir().mkdir(parents=True)
    (paths.outbox_dir() / "20260101T000000000000-abc.json").write_text("{not json")
    assert alerts.flush_outbox() == (0, 0)
    assert [p.name for p in paths.outbox_dir().iterdir()] == ["20260101T000000000000-abc.unreadable"]


def test_an_alert_claimed_by_a_flush_that_died_is_put_back_and_sent(carewatch_home, mailbox):
    import os
    import time

    from carewatch import paths

    paths.outbox_dir().mkdir(parents=True)
    body = '{"subject": "[carewatch] FAILED x.y: kept", "html": "<p>kept</p>"}'
    recent = paths.outbox_dir() / ".20260101T000000000000-abc.json.sending-99999"  # a flush still sending it
    abandoned = paths.outbox_dir() / ".20260101T000000000001-def.json.sending-99998"  # one that died
    for path in (recent, abandoned):
        path.write_text(body)
    old = time.time() - alerts.CLAIM_TIMEOUT_SECONDS - 60
    os.utime(abandoned, (old, old))
    assert alerts.flush_outbox() == (1, 0)
    assert [subject(m) for m in mailcatcher.messages(mailbox)] == ["[carewatch] FAILED x.y: kept"]
    assert sorted(p.name for p in paths.outbox_dir().iterdir()) == [recent.name]  # left to the flush that holds it


def test_a_flush_during_an_outage_tries_the_server_once_not_once_per_waiting_alert(carewatch_home, monkeypatch):
    # each attempt can take the SMTP timeout: the flush stops at the first refusal, oldest first
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(mailcatcher.free_port()))  # nothing listens
    for name in ("first", "second", "third"):
        assert alerts.send_quietly(alerts.Alert(subject=f"[carewatch] FAILED x.y: {name}", html=f"<p>{name}</p>"))
    real_send, tried = alerts.send, []
    monkeypatch.setattr(alerts, "send", lambda alert: tried.append(alert.subject) or real_send(alert))
    assert alerts.flush_outbox() == (0, 3)
    assert tried == ["[carewatch] FAILED x.y: first"]


def test_an_alert_kept_long_ago_is_not_put_back_while_a_flush_is_sending_it(carewatch_home, mailbox, monkeypatch):
    # kept during an outage more than the claim timeout ago: claiming it restarts its clock, so
    # another worker's flush starting mid-send does not take it back and send it a second time
    import os
    import time

    from carewatch import paths

    paths.outbox_dir().mkdir(parents=True)
    kept = paths.outbox_dir() / "20260101T000000000000-abc.json"
    kept.write_text('{"subject": "[carewatch] FAILED x.y: kept", "html": "<p>kept</p>"}')
    old = time.time() - alerts.CLAIM_TIMEOUT_SECONDS - 60
    os.utime(kept, (old, old))
    real_send = alerts.send

    def another_flush_starts_meanwhile(alert):
        alerts._reclaim_abandoned()
        return real_send(alert)

    monkeypatch.setattr(alerts, "send", another_flush_starts_meanwhile)
    assert alerts.flush_outbox() == (1, 0)
    assert alerts.flush_outbox() == (0, 0)
    assert [subject(m) for m in mailcatcher.messages(mailbox)] == ["[carewatch] FAILED x.y: kept"]


def test_a_blocking_failure_with_a_warning_beside_it_is_emailed_as_blocking(mailbox):
    frame = parsers.parse("dtoc_la", REAL)
    # every council at four times its usual days (a warning), a column too many (blocking)
    report = validation.validate("dtoc_la", frame.assign(junk=1), period="2016-06", history=four_times_the_usual(frame))
    assert len(report.blocking_failures) == 1 and len(report.warnings) == 1
    alerts.send(alerts.quality_alert(report))
    [message] = mailcatcher.messages(mailbox)
    assert subject(message) == "[carewatch] BLOCKING dtoc_la 2016-06: 2 expectations failed"
    assert "quarantined" in mailcatcher.body_text(message)


def test_a_parse_failure_gives_the_command_with_the_raw_file_and_says_the_held_version_stays(mailbox):
    from carewatch.errors import ParseError

    raw = "/opt/carewatch/var/raw/ascof/2016-17/" + "7e" * 32 + ".csv"
    unparsed = ParseError("ascof", raw, "missing column(s) measure_type", period="2016-17")
    alerts.send(alerts.failure_alert(dag_id="ingest_ascof", task_id="one_period.parse", error=unparsed, map_index=2, attempts=1))
    body = " ".join(mailcatcher.body_text(mailcatcher.messages(mailbox)[0]).split())
    assert f"<code>carewatch parse ascof {raw} --period 2016-17</code>" in body
    assert "nothing of it was loaded: the version of ascof 2016-17 already in the warehouse, if any, stays there" in body
    assert "Read the task log" not in body  # the plain failure's advice is for errors that name no file


def test_the_smtp_login_is_never_sent_unencrypted_to_a_host_off_this_machine(carewatch_home, tmp_path, monkeypatch):
    # a security review: the compose stack's defaults (disable_tls and disable_ssl both true, for
    # Mailpit) sent a real relay's login and password in clear text once .env named the relay
    # without the TLS flags. A real SMTP server that takes AUTH without TLS, on a loopback address
    # not listed as a plain-SMTP host, stands for that relay.
    import json

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=True)

    port = mailcatcher.free_port()
    relay = Controller(mailcatcher._SaveToDirectory(tmp_path / "mail"), hostname="127.0.0.2", port=port,
                       authenticator=authenticator, auth_require_tls=False)
    relay.start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.2", "port": port, "login": "alerts@example.nhs.uk", "password": "s3cret",
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 1}}))
        alert = alerts.Alert(subject="[carewatch] FAILED x.y: z", html="<p>z</p>")
        with pytest.raises(CarewatchError, match=r"would send its login \(alerts@example.nhs.uk\) unencrypted to 127.0.0.2: use STARTTLS"):
            alerts.send(alert)
        assert alerts.send_quietly(alert) and len(alerts.outbox()) == 1  # it waits; nothing is lost
        assert logins == [] and mailcatcher.messages(tmp_path / "mail") == []  # the password never went out
        # a host listed in plain_smtp_hosts (a catcher on this machine's private network) may take it
        listed = {**alerts.settings(), "plain_smtp_hosts": ["127.0.0.2"]}
        monkeypatch.setattr(alerts, "settings", lambda: listed)
        assert alerts.flush_outbox() == (1, 0)
        assert [row[1:] for row in logins] == [
            (b"alerts@example.nhs.uk", b"s3cret")]
    finally:
        relay.stop()


def test_a_connection_without_a_login_may_use_plain_smtp_anywhere(carewatch_home, tmp_path, monkeypatch):
    # a relay inside the network that takes mail without AUTH (often port 25): nothing secret is sent
    import json

    with mailcatcher.catch_mail(tmp_path / "mail") as (port, directory):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {"disable_tls": True, "disable_ssl": True}}))
        monkeypatch.setattr(alerts, "settings", lambda: {**alerts._settings_file(), "plain_smtp_hosts": []})
        alerts.send(alerts.Alert(subject="[carewatch] FAILED x.y: z", html="<p>z</p>"))
        assert len(mailcatcher.messages(directory)) == 1


def test_a_plain_smtp_host_is_matched_whatever_its_case():
    # a review: "Mailpit" or "LOCALHOST" in a connection were refused; host names ignore case
    from types import SimpleNamespace

    def hook(host):
        return SimpleNamespace(smtp_conn_id="smtp_default", smtp_user="u", smtp_password="p", smtp_starttls=False,
                               use_ssl=False, host=host)

    for host in ("Mailpit", "LOCALHOST", "localhost"):
        alerts.refuse_plain_login(hook(host), {"plain_smtp_hosts": ["mailpit", "Localhost"]})
    with pytest.raises(CarewatchError, match="unencrypted to smtp.example.nhs.uk"):
        alerts.refuse_plain_login(hook("smtp.example.nhs.uk"), {"plain_smtp_hosts": ["mailpit", "Localhost"]})
