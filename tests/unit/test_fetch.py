"""Fetching against a real local HTTP server (pytest-httpserver), not mocked requests.

Every refused download must leave the raw store and the manifest exactly as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import socket
import threading
import time

import duckdb
import pytest
import xlwt
from werkzeug import Response

from carewatch import fetch, paths, rawstore, sources
from carewatch.errors import FetchError, NotPublishedYet

PERIOD = "2017-02"
BEFORE_DUE = dt.date(2017, 4, 1)   # February 2017 DTOC was due on 13 April 2017
LONG_AFTER = dt.date(2018, 1, 1)


def tiny_xls(value: int = 1) -> bytes:
    book = xlwt.Workbook()
    book.add_sheet("LA - by responsible org").write(0, 0, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def src():
    # small retry backoff so tests stay quick; everything else as catalogued
    return dataclasses.replace(sources.get("dtoc_la"), retry={"total": 3, "backoff_factor": 0.01, "status_forcelist": [429, 500, 502, 503, 504]})


@pytest.fixture
def base(httpserver, carewatch_home):
    return httpserver.url_for("").rstrip("/")


def state():
    """The raw store's files and the manifest's rows."""
    db = paths.warehouse_path()
    rows = []
    if db.exists():
        with duckdb.connect(str(db), read_only=True) as con:
            tables = {t for (t,) in con.execute("show tables").fetchall()}
            if "raw_manifest" in tables:
                rows = con.execute("select source, period, version, sha256 from raw_manifest order by all").fetchall()
    return rawstore.listing(), rows


def serve(httpserver, body, status=200, content_type="application/vnd.ms-excel", headers=None):
    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_data(body, status=status, content_type=content_type, headers=headers)


def test_new_file_is_stored_by_hash_and_recorded(httpserver, base, src):
    body = tiny_xls()
    serve(httpserver, body)
    result = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert result.status == "new_version" and result.version == 1
    assert result.sha256 == rawstore.sha256_of(body)
    assert result.raw_path.endswith(f"dtoc_la/{PERIOD}/{result.sha256}.xls")
    files, manifest = state()
    assert list(files.values()) == [result.sha256]
    assert manifest == [("dtoc_la", PERIOD, 1, result.sha256)]


def test_unchanged_publication_is_a_304_and_stores_nothing(httpserver, base, src):
    body = tiny_xls()
    etag = '"v1"'

    def handler(request):
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, content_type="application/vnd.ms-excel", headers={"ETag": etag})

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(handler)
    fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    before = state()
    again = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert again.status == "unchanged" and again.http_status == 304 and again.version == 1
    assert state() == before


def test_same_bytes_without_validators_is_unchanged(httpserver, base, src):
    serve(httpserver, tiny_xls())
    fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    before = state()
    assert fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER).status == "unchanged"
    assert state() == before


def test_a_revision_is_a_new_version_beside_the_old(httpserver, base, src):
    serve(httpserver, tiny_xls(1))
    first = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    httpserver.clear()
    serve(httpserver, tiny_xls(2))
    second = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert (second.status, second.version) == ("new_version", 2)
    files, manifest = state()
    assert sorted(files.values()) == sorted([first.sha256, second.sha256])
    assert rawstore.sha256_of(open(first.raw_path, "rb").read()) == first.sha256  # old version untouched
    assert [row[2] for row in manifest] == [1, 2]


def test_404_before_due_is_not_published_yet(httpserver, base, src):
    serve(httpserver, b"not found", status=404, content_type="text/plain")
    with pytest.raises(NotPublishedYet, match="not published yet"):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=BEFORE_DUE)
    assert state() == ({}, [])


def test_404_long_after_due_is_an_overdue_error(httpserver, base, src):
    serve(httpserver, b"not found", status=404, content_type="text/plain")
    with pytest.raises(FetchError, match="overdue"):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert state() == ({}, [])


def test_404_for_a_held_period_is_a_withdrawn_publication_not_an_overdue_one(httpserver, base, src):
    """The revision window re-checks held months: one answering 404 was published (it is held),
    so it is not late but gone from the URL; the held version stays."""
    from carewatch.errors import PublicationOverdue, PublicationWithdrawn

    serve(httpserver, tiny_xls(3))
    fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=BEFORE_DUE)  # published early: held
    before = state()
    httpserver.clear()
    serve(httpserver, b"not found", status=404, content_type="text/plain")
    for as_of in (BEFORE_DUE, LONG_AFTER):
        with pytest.raises(PublicationWithdrawn, match=r"dtoc_la 2017-02: HTTP 404: the file is no longer at this URL; "
                                                       r"the version held \(1\) is kept") as gone:
            fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=as_of)
        assert not isinstance(gone.value, PublicationOverdue)
    assert state() == before


def test_500_then_200_succeeds_through_the_retry_policy(httpserver, base, src):
    calls = []

    def handler(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("boom", status=500)
        return Response(tiny_xls(), content_type="application/vnd.ms-excel")

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(handler)
    assert fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER).status == "new_version"
    assert len(calls) == 2


def test_429_honours_retry_after(httpserver, base, src):
    calls = []

    def handler(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response(tiny_xls(), content_type="application/vnd.ms-excel")

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(handler)
    fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.9


def test_persistent_5xx_is_a_clear_error(httpserver, base, src):
    serve(httpserver, b"down", status=503, content_type="text/plain")
    with pytest.raises(FetchError, match=r"dtoc_la 2017-02: .*(HTTP 503|retries)") as err:
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert err.value.transient  # a later try may succeed: the task keeps Airflow's retries
    assert state() == ({}, [])


def test_timeout_is_a_clear_error(httpserver, base, src):
    def slow(request):
        time.sleep(1.5)
        return Response(tiny_xls(), content_type="application/vnd.ms-excel")

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(slow)
    quick = dataclasses.replace(src, timeout_seconds={"connect": 1, "read": 0.3}, retry={"total": 1, "backoff_factor": 0.01})
    with pytest.raises(FetchError, match="request failed after retries") as err:
        fetch.fetch(quick, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert base in str(err.value) and err.value.transient
    assert state() == ({}, [])


@pytest.mark.parametrize(
    "body,content_type,problem",
    [
        (b"<!DOCTYPE html><html><body>Page moved</body></html>", "text/html", "HTML page was served"),
        (b"\n  <html><head></head></html>", "application/vnd.ms-excel", "HTML page was served"),
        (tiny_xls(), "application/json", "unexpected content type application/json"),
        (tiny_xls()[:700], "application/vnd.ms-excel", "truncated or damaged"),
        (b"PK\x03\x04 a zip, not xls", "application/vnd.ms-excel", "no OLE2 signature"),
    ],
)
def test_bad_content_is_refused_and_nothing_changes(httpserver, base, src, body, content_type, problem):
    serve(httpserver, tiny_xls(9))
    fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)  # an earlier good version
    before = state()
    httpserver.clear()
    serve(httpserver, body, content_type=content_type)
    with pytest.raises(FetchError, match=problem) as err:
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    message = str(err.value)
    assert message.startswith("dtoc_la 2017-02:") and f"{base}/dtoc_la/{PERIOD}.xls" in message
    assert not err.value.transient  # served whole and not the file: a retry would be refused the same
    assert state() == before


def test_oversize_file_is_refused(httpserver, base, src):
    serve(httpserver, tiny_xls())
    small = dataclasses.replace(src, max_bytes=1000)
    with pytest.raises(FetchError, match="over the 1,000 byte limit|exceeds the 1,000 byte limit"):
        fetch.fetch(small, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert state() == ({}, [])


def test_disallowed_host_is_refused_before_any_request(carewatch_home, src):
    with pytest.raises(FetchError, match="not allowed"):
        fetch.fetch(src, PERIOD, env="embedded", base_url="http://example.org", as_of=LONG_AFTER)
    assert state() == ({}, [])


def test_a_held_period_refused_with_a_varying_error_text_is_the_same_refusal(httpserver, base, src):
    """Byte counts and connection details change from one attempt to the next; the refusal is
    matched on its kind, so an oversize file of another size, or the host down again with
    another socket in the message, is not emailed again."""
    from carewatch import mailcatcher
    from carewatch.errors import AlreadyRefused

    held = tiny_xls(9)
    src = dataclasses.replace(src, max_bytes=len(held) + 100)
    serve(httpserver, held)
    fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER, run_id="run 1")
    before = state()

    def refused(run_id, base_url=base):
        with pytest.raises(FetchError) as err:
            fetch.fetch(src, PERIOD, env="embedded", base_url=base_url, as_of=LONG_AFTER, run_id=run_id)
        return err.value

    httpserver.clear()
    serve(httpserver, held + b"\0" * 500)
    first = refused("run 2")
    assert first.problem == f"file is {len(held) + 500:,} bytes, over the {len(held) + 100:,} byte limit"
    fetch.record_reported(first, "run 2")  # its email went out
    httpserver.clear()
    serve(httpserver, held + b"\0" * 900)  # another size: another text, the same refusal
    with pytest.raises(AlreadyRefused, match=f"file is {len(held) + 900:,} bytes"):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER, run_id="run 3")

    down = f"http://localhost:{mailcatcher.free_port()}"  # nothing listens: the host is down
    first = refused("run 4", down)
    assert first.problem.startswith("request failed after retries: ConnectionError: ")
    fetch.record_reported(first, "run 4")
    with pytest.raises(AlreadyRefused, match="request failed after retries: ConnectionError"):
        fetch.fetch(src, PERIOD, env="embedded", base_url=down, as_of=LONG_AFTER, run_id="run 5")
    assert state() == before
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        logged = con.execute("select run_id, outcome, refusal from fetch_log where outcome <> 'new_version' order by attempted_at").fetchall()
    assert logged == [("run 2", "refused", f"file over the {len(held) + 100:,} byte limit"),
                      ("run 3", "already_refused", f"file over the {len(held) + 100:,} byte limit"),
                      ("run 4", "refused", "request failed after retries: ConnectionError"),
                      ("run 5", "already_refused", "request failed after retries: ConnectionError")]


def test_refusals_are_logged_and_what_was_served_is_kept_for_a_look(httpserver, base, src):
    page = b"<html>Service unavailable</html>"
    serve(httpserver, page, content_type="text/html")
    with pytest.raises(FetchError):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    sha = rawstore.sha256_of(page)
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select outcome, error, bytes, sha256 from fetch_log").fetchall() == [
            ("refused", "an HTML page was served instead of a xls file", len(page), sha)
        ]
    kept = paths.refused_dir() / "dtoc_la" / PERIOD / f"{sha}.xls"
    assert kept.read_bytes() == page
    assert state() == ({}, [])  # not in the raw store, not in the manifest


def test_a_held_period_refused_as_in_an_earlier_emailed_run_is_not_reported_again(httpserver, base, src):
    """The revision window re-checks a held month every run: a file that turned into an HTML
    page is emailed by the run that first meets it (the failure callback records the email),
    then skipped; the held version stays."""
    from carewatch.errors import AlreadyRefused

    def attempt(run_id, period=PERIOD, base_url=base):
        return fetch.fetch(src, period, env="embedded", base_url=base_url, as_of=LONG_AFTER, run_id=run_id)

    def final_failure(run_id, period=PERIOD, emailed=True, base_url=base):
        """A run whose fetch task fails after its three tries; its failure email goes out, or not."""
        for _ in range(3):  # the task's tries within one run all fail: only the last is emailed
            with pytest.raises(FetchError, match="HTML page") as err:
                attempt(run_id, period, base_url)
        if emailed:
            fetch.record_reported(err.value, run_id)

    serve(httpserver, tiny_xls(9))
    attempt("run 1")  # held: version 1
    before = state()
    httpserver.clear()
    serve(httpserver, b"<html>moved</html>", content_type="text/html")
    final_failure("run 2", emailed=False)  # the mail server was down: nothing was reported
    final_failure("run 3")  # so the next run reports it
    for run in ("run 4", "run 5"):  # and the runs after it skip it
        with pytest.raises(AlreadyRefused, match=r"dtoc_la 2017-02: refused as in an earlier run \(emailed .* UTC; the "
                                                 r"version held is kept\): an HTML page was served") as again:
            attempt(run)
        assert not isinstance(again.value, FetchError)
    assert state() == before
    with pytest.raises(FetchError, match="HTML page"):  # outside a pipeline run: an ordinary refusal
        attempt(None)
    # the URL was changed (say config/sources.yaml was edited) and is refused too: not reported yet
    moved = base.replace("localhost", "127.0.0.1")
    assert moved != base
    final_failure("run 6", base_url=moved)
    with pytest.raises(AlreadyRefused):
        attempt("run 7", base_url=moved)
    # another problem is reported again
    httpserver.clear()
    serve(httpserver, tiny_xls()[:700])
    with pytest.raises(FetchError, match="truncated or damaged"):
        attempt("run 8", base_url=moved)
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        logged = con.execute("select run_id, outcome from fetch_log where period = ? order by attempted_at", [PERIOD]).fetchall()
    assert logged == ([("run 1", "new_version")] + [("run 2", "refused")] * 3 + [("run 3", "refused")] * 3
                      + [("run 4", "already_refused"), ("run 5", "already_refused"), (None, "refused")]
                      + [("run 6", "refused")] * 3 + [("run 7", "already_refused"), ("run 8", "refused")])

    # a period not held yet fails every run, even once its refusal was emailed
    httpserver.expect_request("/dtoc_la/2017-03.xls").respond_with_data(b"<html></html>", content_type="text/html")
    final_failure("run 9", period="2017-03")
    with pytest.raises(FetchError, match="HTML page"):
        attempt("run 10", period="2017-03")
    assert state() == before


def test_the_very_file_another_period_holds_is_refused_until_a_data_engineer_accepts_it(httpserver, base, src, tmp_path, monkeypatch):
    """No two periods of a publication are the same bytes (ASCOF's CSV names no year: a URL
    serving another year's file would load as both). The period already holding the file keeps
    it; the other is refused, what it served kept under refused/, even after the holding
    period is revised; accepted only when listed in config/accepted_files.csv."""
    import shutil

    march = tiny_xls(3)
    httpserver.expect_request("/dtoc_la/2017-03.xls").respond_with_data(march, content_type="application/vnd.ms-excel")
    fetch.fetch(src, "2017-03", env="embedded", base_url=base, as_of=LONG_AFTER)
    serve(httpserver, march)  # February's URL serves March's file
    before = state()
    with pytest.raises(FetchError, match=r"^dtoc_la 2017-02: the very same file as one held for 2017-03 "
                                         r"\(sha256 [0-9a-f]{12}\): one of the two URLs serves the other's publication"):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert state() == before
    sha = rawstore.sha256_of(march)
    assert (paths.refused_dir() / "dtoc_la" / PERIOD / f"{sha}.xls").read_bytes() == march
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select outcome, sha256 from fetch_log where period = ?", [PERIOD]).fetchall() == [("refused", sha)]
    # March's own re-check is unchanged, not refused
    assert fetch.fetch(src, "2017-03", env="embedded", base_url=base, as_of=LONG_AFTER).status == "unchanged"
    # March revised: its old file is still not February's
    httpserver.clear()
    httpserver.expect_request("/dtoc_la/2017-03.xls").respond_with_data(tiny_xls(33), content_type="application/vnd.ms-excel")
    assert fetch.fetch(src, "2017-03", env="embedded", base_url=base, as_of=LONG_AFTER).version == 2
    serve(httpserver, march)
    with pytest.raises(FetchError, match="the very same file as one held for 2017-03"):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    # a data engineer checks it: it was March's URL that was wrong, the file is February's
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    with (config / "accepted_files.csv").open("a") as handle:
        handle.write(f"dtoc_la,{PERIOD},{sha},March's URL served February's file until corrected\n")
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    assert fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER).status == "new_version"


def test_unchanged_by_last_modified_alone_is_a_304(httpserver, base, src):
    # a server that sends no ETag, only Last-Modified: the next fetch asks If-Modified-Since
    body = tiny_xls()
    stamp = "Wed, 12 Apr 2017 09:30:00 GMT"
    asked = []

    def handler(request):
        asked.append(request.headers.get("If-Modified-Since"))
        if request.headers.get("If-Modified-Since") == stamp:
            return Response(status=304)
        return Response(body, content_type="application/vnd.ms-excel", headers={"Last-Modified": stamp})

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(handler)
    fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    before = state()
    again = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert asked == [None, stamp]
    assert (again.status, again.http_status, again.version) == ("unchanged", 304, 1)
    assert state() == before


def test_a_404_is_asked_once_not_retried(httpserver, base, src):
    calls = []

    def handler(request):
        calls.append(request.path)
        return Response("not found", status=404, content_type="text/plain")

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(handler)
    with pytest.raises(NotPublishedYet):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=BEFORE_DUE)
    assert len(calls) == 1


@pytest.mark.parametrize("as_of, outcome", [
    (dt.date(2017, 4, 20), NotPublishedYet),  # a week after the due day (13 April 2017): within 14 grace days
    (dt.date(2017, 4, 26), NotPublishedYet),  # the last day before due + 14 = 27 April
    (dt.date(2017, 4, 27), FetchError),       # due + 14 days: no longer "before due + grace_days", overdue
])
def test_404_within_the_grace_days_after_the_due_day_is_not_published_yet(httpserver, base, src, as_of, outcome):
    assert sources.due_date("dtoc_la", PERIOD) == dt.date(2017, 4, 13) and src.grace_days == 14
    serve(httpserver, b"not found", status=404, content_type="text/plain")
    with pytest.raises(outcome) as raised:
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=as_of)
    assert ("overdue" in str(raised.value)) == (outcome is FetchError)


def test_a_file_of_exactly_the_byte_limit_is_accepted(httpserver, base, src):
    body = tiny_xls()
    serve(httpserver, body)  # Content-Length is len(body)
    exact = dataclasses.replace(src, max_bytes=len(body))
    assert fetch.fetch(exact, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER).status == "new_version"


def test_a_streamed_file_without_a_length_is_cut_off_at_the_byte_limit(httpserver, base, src):
    # no Content-Length (chunked transfer): the limit is enforced while reading
    body = tiny_xls()
    assert len(body) > 1000

    def handler(request):
        return Response(iter([body[:600], body[600:]]), content_type="application/vnd.ms-excel", direct_passthrough=True)

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(handler)
    small = dataclasses.replace(src, max_bytes=1000)
    with pytest.raises(FetchError, match="exceeds the 1,000 byte limit"):
        fetch.fetch(small, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert state() == ({}, [])


def test_a_download_cut_short_is_a_transient_refusal(httpserver, base, src):
    # the server declares 4,096 bytes and closes after 1,000: the next try may get the whole file
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve_short():
        for _ in range(4):  # the first try and urllib3's retries of it
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ms-excel\r\nContent-Length: 4096\r\n\r\n" + b"\xd0" * 1000)
            conn.close()

    threading.Thread(target=serve_short, daemon=True).start()
    try:
        with pytest.raises(FetchError, match="download truncated") as err:
            fetch.fetch(src, PERIOD, env="embedded", base_url=f"http://127.0.0.1:{listener.getsockname()[1]}", as_of=LONG_AFTER)
    finally:
        listener.close()
    assert err.value.transient and err.value.kind == "download truncated"
    assert state()[1] == []


def test_a_redirect_loop_or_a_failed_tls_handshake_is_not_transient(httpserver, base, src):
    # a retry meets the same loop and the same handshake: the task fails without Airflow's retries
    from werkzeug import Response

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_response(
        Response(status=302, headers={"Location": f"/dtoc_la/{PERIOD}.xls"}))
    with pytest.raises(FetchError, match="request failed after retries: TooManyRedirects") as loop:
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    with pytest.raises(FetchError, match="request failed after retries: SSLError") as tls:  # https to a plain HTTP port
        fetch.fetch(src, PERIOD, env="embedded", base_url=base.replace("http://", "https://"), as_of=LONG_AFTER)
    assert not loop.value.transient and not tls.value.transient
    assert state()[1] == []



@contextlib.contextmanager
def raw_http(answer: bytes, connections: int = 1):
    """A server on 127.0.0.1 that answers each of ``connections`` connections with the raw bytes
    ``answer`` (headers a real server's framework would not send as given), then closes it;
    yields its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def answer_all():
        for _ in range(connections):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(answer)
            conn.close()

    threading.Thread(target=answer_all, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize("length", ["12abc", "1_000", "-5", ""])
def test_a_malformed_content_length_is_a_logged_refusal(carewatch_home, src, length):
    # int() raised ValueError (or read "1_000" as 1000): an error outside FetchError, not
    # logged in fetch_log, retried and emailed as a generic task failure
    body = tiny_xls()
    answer = (f"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ms-excel\r\nContent-Length: {length}\r\n"
              "Connection: close\r\n\r\n").encode() + body
    with raw_http(answer) as base:
        with pytest.raises(FetchError, match=rf"^dtoc_la 2017-02: malformed Content-Length header '{length}' \(http://") as err:
            fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert err.value.kind == "malformed Content-Length header" and not err.value.transient
    assert state() == ({}, [])
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select outcome, refusal, transient from fetch_log").fetchall() == [
            ("refused", "malformed Content-Length header", False)]


def spanning_xls(sheets: int, last_row: int = 65535, last_col: int = 255) -> bytes:
    """A workbook of a few KB whose every sheet has a cell in A1 and one at (last_row, last_col):
    the parsers build each sheet's whole grid (IV65536: 16.7 million cells, over a GB)."""
    book = xlwt.Workbook()
    for index in range(sheets):
        sheet = book.add_sheet(f"s{index}")
        sheet.write(0, 0, "x")
        sheet.write(last_row, last_col, 1)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("body,problem", [
    (spanning_xls(1), r"workbook too large: its sheets up to 's0' span 16,777,216 cells \(rows x columns\), "
                      r"over the limit of 2,000,000"),
    # sheets each under the limit, over it together: pandas reads every sheet
    (spanning_xls(3, 9999, 99), r"workbook too large: its sheets up to 's2' span 3,000,000 cells \(rows x columns\), "
                                r"over the limit of 2,000,000"),
    (spanning_xls(51, 1, 1), r"workbook too large: 51 sheets, over the limit of 50"),
])
def test_a_small_workbook_spanning_millions_of_cells_is_refused(httpserver, base, src, body, problem):
    assert len(body) < 100_000
    serve(httpserver, body)
    with pytest.raises(FetchError, match=rf"^dtoc_la 2017-02: {problem} \(http://") as err:
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert err.value.kind == "workbook too large" and not err.value.transient
    assert state() == ({}, [])
    assert (paths.refused_dir() / "dtoc_la" / PERIOD / f"{rawstore.sha256_of(body)}.xls").read_bytes() == body


def test_every_real_and_sample_workbook_is_well_within_the_workbook_limits():
    # each passes at a third of the catalogue's sheet limit and a tenth of its cell limit (the
    # largest, ONS mid-2017: 13 sheets spanning 167,403 cells; the limits are 50 and 2,000,000)
    from tests.conftest import FIXTURES

    books = sorted(FIXTURES.glob("**/*.xls")) + sorted(paths.samples_dir().glob("**/*.xls"))
    assert len(books) >= 80
    for book in books:
        src = sources.get({"ons": "ons_mye", "dtoc-la": "dtoc_la"}.get(book.parent.name, book.parent.name))
        assert src.format == "xls" and (src.max_sheets, src.max_cells) == (50, 2_000_000)
        strict = dataclasses.replace(src, max_sheets=src.max_sheets // 3, max_cells=src.max_cells // 10)
        fetch.check_content(strict, "any", str(book), book.read_bytes(), "application/vnd.ms-excel")


@contextlib.contextmanager
def other_server(host: str = "127.0.0.1", ssl_context=None):
    """A second real HTTP server (pytest-httpserver's), for a redirect's or a link's target."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host=host, port=0, ssl_context=ssl_context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def redirect(location: str, status: int = 302) -> Response:
    return Response(status=status, headers={"Location": location})


def test_a_redirect_to_a_host_not_allowed_is_refused_without_asking_it(httpserver, base, src):
    # requests followed up to 30 redirects anywhere: the catalogue's allowed_hosts held for the
    # first URL only, and raw_manifest named that URL, not the host the file came from
    assert "127.0.0.2" not in src.allowed_hosts("embedded")
    with other_server("127.0.0.2") as elsewhere:
        elsewhere.expect_request("/evil.xls").respond_with_data(tiny_xls(5), content_type="application/vnd.ms-excel")
        target = elsewhere.url_for("/evil.xls")
        httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_response(redirect(target))
        with pytest.raises(FetchError, match=rf"^dtoc_la 2017-02: redirected to {target}, on host '127.0.0.2', which is not "
                                             rf"allowed for dtoc_la in embedded \({base}/dtoc_la/{PERIOD}.xls\)$") as err:
            fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
        assert elsewhere.log == []  # not asked at all
    assert err.value.kind == "redirect to a host not allowed" and not err.value.transient
    assert state() == ({}, [])
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select outcome, url, refusal from fetch_log").fetchall() == [
            ("refused", f"{base}/dtoc_la/{PERIOD}.xls", "redirect to a host not allowed")]


def test_a_redirect_within_the_allowed_hosts_is_followed_and_the_file_s_own_url_recorded(httpserver, base, src):
    # localhost -> 127.0.0.1 (both allowed) -> a relative Location; the held version's
    # validators go to the URL its bytes came from, not to the URL that redirected there
    body = tiny_xls(6)
    final = "/files/LA-Type-B-February-2017-x1Y2z.xls"
    numeric = base.replace("localhost", "127.0.0.1")
    asked = []

    def file(request):
        asked.append((request.host.split(":")[0], request.path, request.headers.get("If-None-Match")))
        if request.headers.get("If-None-Match") == '"v6"':
            return Response(status=304, headers={"ETag": '"v6"'})
        return Response(body, content_type="application/vnd.ms-excel", headers={"ETag": '"v6"'})

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_response(redirect(f"{numeric}/moved/{PERIOD}.xls", 301))
    httpserver.expect_request(f"/moved/{PERIOD}.xls").respond_with_response(redirect(final, 307))
    httpserver.expect_request(final).respond_with_handler(file)
    first = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert (first.status, first.url) == ("new_version", f"{numeric}{final}")
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select url from raw_manifest").fetchall() == [(f"{numeric}{final}",)]
    again = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert (again.status, again.http_status, again.url) == ("unchanged", 304, f"{numeric}{final}")
    assert asked == [("127.0.0.1", final, None), ("127.0.0.1", final, '"v6"')]
    assert [request.headers.get("If-None-Match") for request, _ in httpserver.log if request.path != final] == [None] * 4


def test_redirects_are_followed_five_times_at_most(httpserver, base, src):
    for hop in range(6):
        httpserver.expect_request(f"/hop{hop}").respond_with_response(redirect(f"/hop{hop + 1}"))
    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_response(redirect("/hop0"))
    with pytest.raises(FetchError, match=r"request failed after retries: TooManyRedirects: Exceeded 5 redirects\. \(.*/hop4\)"):
        fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert [request.path for request, _ in httpserver.log] == [f"/dtoc_la/{PERIOD}.xls"] + [f"/hop{hop}" for hop in range(5)]


@pytest.mark.parametrize("framing", ["until-close", "content-length"])
def test_a_server_dripping_the_file_is_cut_off_at_the_download_deadline(httpserver, base, src, framing):
    # the read timeout bounds each wait for bytes: a server sending some every 0.1 s was never
    # cut off. The test server answers HTTP/1.0, the body ending when it closes the connection
    # or at its Content-Length; either way urllib3 waits for a full 64 KB chunk (this file is
    # less): only the socket shut down at the deadline ends that wait before the server is done
    assert sources.get("dtoc_la").timeout_seconds == {"connect": 10, "read": 60, "download": 600}
    body = tiny_xls()
    done, finished = threading.Event(), threading.Event()

    def drip():
        for start in range(0, len(body), 100):
            if done.wait(0.1):  # the test is over: stop
                return
            yield body[start:start + 100]
        finished.set()

    headers = {"Content-Length": str(len(body))} if framing == "content-length" else {}
    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(
        lambda request: Response(drip(), content_type="application/vnd.ms-excel", headers=headers, direct_passthrough=True))
    hasty = dataclasses.replace(src, timeout_seconds={"connect": 5, "read": 5, "download": 0.5})
    try:
        with pytest.raises(FetchError, match=r"^dtoc_la 2017-02: download too slow: not complete 0\.5 s after the request "
                                             r"\(timeout_seconds\.download\) \(http://") as err:
            fetch.fetch(hasty, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
        assert not finished.is_set()  # cut off while the server was still sending
    finally:
        done.set()
    assert err.value.kind == "download too slow" and err.value.transient
    assert state() == ({}, [])
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select outcome, refusal, transient from fetch_log").fetchall() == [("refused", "download too slow", True)]


def test_the_warehouse_is_not_held_open_during_the_download(httpserver, base, src):
    # DuckDB lets no other process open the file, even to read, while one has it open for
    # writing: the fetch held it from before its request to the end of a download, however slow,
    # keeping analysts and every load out
    import subprocess
    import sys

    body = tiny_xls(8)
    serving, release = threading.Event(), threading.Event()

    def halves():
        yield body[:1000]
        serving.set()
        release.wait(30)
        yield body[1000:]

    httpserver.expect_request(f"/dtoc_la/{PERIOD}.xls").respond_with_handler(
        lambda request: Response(halves(), content_type="application/vnd.ms-excel", headers={"Content-Length": str(len(body))},
                                 direct_passthrough=True))
    outcome = {}

    def download():
        try:
            outcome["result"] = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
        except BaseException as err:
            outcome["error"] = err

    fetching = threading.Thread(target=download)
    fetching.start()
    try:
        assert serving.wait(30)  # the first half is sent, the rest waits
        # another process: an analyst reading, then a writer: here another fetch of the period
        # storing its version 1 meanwhile, which this one's must follow
        probe = subprocess.run([sys.executable, "-c", """if True:
            import sys, duckdb
            duckdb.connect(sys.argv[1], read_only=True).close()
            with duckdb.connect(sys.argv[1]) as con:
                con.execute("insert into raw_manifest values ('dtoc_la', ?, 1, 'http://elsewhere', now(), 200, 1, 'another', "
                            "null, null, 'x')", [sys.argv[2]])
            """, str(paths.warehouse_path()), PERIOD], capture_output=True, text=True, timeout=120)
    finally:
        release.set()
        fetching.join(60)
    assert probe.returncode == 0, probe.stderr.strip().splitlines()[-1:]
    assert "error" not in outcome and (outcome["result"].status, outcome["result"].version) == ("new_version", 2)
    assert state()[1] == [("dtoc_la", PERIOD, 1, "another"), ("dtoc_la", PERIOD, 2, rawstore.sha256_of(body))]


def test_a_home_moved_or_restored_elsewhere_finds_its_raw_files_in_its_own_store(httpserver, base, src, tmp_path, monkeypatch):
    # raw_manifest records where a file was stored; a home restored from a backup to another
    # path (or moved) must read the file from its own raw store, not the old home's path,
    # which may hold nothing, or another home's files
    import shutil

    serve(httpserver, tiny_xls())
    first = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    moved = tmp_path / "moved-home"
    shutil.move(str(paths.home()), str(moved))
    monkeypatch.setenv("CAREWATCH_HOME", str(moved))
    again = fetch.fetch(src, PERIOD, env="embedded", base_url=base, as_of=LONG_AFTER)
    assert again.status == "unchanged" and again.sha256 == first.sha256
    assert again.raw_path == str(moved / "raw" / "dtoc_la" / PERIOD / f"{first.sha256}.xls")
    assert rawstore.sha256_of(open(again.raw_path, "rb").read()) == first.sha256
