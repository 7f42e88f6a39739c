"""Fetching a publication over HTTP into the raw store, recording it in the manifest.

One call fetches one source and period:

- ``requests`` with a urllib3 ``Retry`` policy (backoff on connection errors, 429 and 5xx,
  honouring Retry-After), connect/read timeouts from the catalogue, and a deadline for each
  download as a whole (``timeout_seconds.download``: :func:`_read_limited`);
- only hosts the catalogue allows for the environment, and in production only https: the
  catalogue's URL, the file a publication page links and every redirect (at most
  :data:`MAX_REDIRECTS`, followed one by one: :func:`_get`) are checked before they are asked;
  ``raw_manifest.url`` is where the file was served from, after any redirect;
- where download names carry random suffixes (NHS England's DTOC files), the period's link is
  read from the publication page (``index_page``, ``link_text``; :func:`find_link`) unless
  the source's ``url_list`` names the URL; a page without the link counts as a 404 below;
- conditional GET (If-None-Match / If-Modified-Since from the last version, sent only to the URL
  it was served from, after the same redirects): a 304, or a 200 with the same sha256, is
  "unchanged" and nothing is stored;
- 404 before the period is due (+ grace days) is "not published yet"; after, an error;
- nothing is accepted before content checks: HTML instead of a file, wrong content type,
  a body shorter than Content-Length (or a Content-Length that is not a number), over
  ``max_bytes``, wrong file signature, a workbook or Parquet file that does not open, a
  workbook of more than ``max_sheets`` sheets or spanning more than ``max_cells`` cells
  (:func:`_check_workbook_size`), the very file another period holds (in any version; a
  reviewed exception: ``config/accepted_files.csv``).
  A refusal raises :class:`FetchError` naming source, period and URL and leaves the raw store
  and the manifest unchanged (it is logged in ``fetch_log``); a body the content checks
  refused is kept for a look under ``refused/<source>/<period>/<sha256>.<format>``
  (``fetch_log.sha256``);
- the warehouse is open only to read the version held and to record the outcome, not during
  the download (DuckDB keeps every other process out of a file open for writing);
- a period already held, refused at the same URL for the same reason (``FetchError.kind``:
  byte counts and connection details aside) as at the end of an
  earlier run whose failure email went out or waits in the outbox for the mail server
  (``run_id``: the Airflow run;
  ``fetch_refusals_reported``, written by the failure callback through
  :func:`record_reported`), raises :class:`AlreadyRefused` instead: the revision re-check is
  skipped, not reported again, and logged as ``already_refused``.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

from carewatch import paths, rawstore, sources
from carewatch.errors import AlreadyRefused, FetchError, NotPublishedYet, PublicationOverdue, PublicationWithdrawn

OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
MANIFEST_DDL = """
create table if not exists raw_manifest (
    source varchar not null, period varchar not null, version integer not null,
    url varchar not null, fetched_at timestamptz not null, http_status integer not null,
    bytes bigint not null, sha256 varchar not null, etag varchar, last_modified varchar,
    raw_path varchar not null,
    primary key (source, period, version)
);
create table if not exists fetch_log (
    source varchar, period varchar, url varchar, attempted_at timestamptz, outcome varchar,
    http_status integer, bytes bigint, sha256 varchar, error varchar
);
alter table fetch_log add column if not exists run_id varchar;
alter table fetch_log add column if not exists refusal varchar;
alter table fetch_log add column if not exists transient boolean;
create table if not exists fetch_refusals_reported (
    source varchar, period varchar, url varchar, error varchar, run_id varchar, reported_at timestamptz
);
alter table fetch_refusals_reported add column if not exists refusal varchar;
"""


def transient_column(con) -> str:
    """SQL for fetch_log's ``transient`` (a refusal the site or the connection caused, after the
    retries), false in a fetch_log from before the column (read-only readers of an older home,
    e.g. ``carewatch status`` before the new release's first run)."""
    from carewatch import warehouse

    return "coalesce(transient, false)" if "transient" in warehouse.columns(con, "fetch_log") else "false"


@dataclass(frozen=True)
class FetchResult:
    source: str
    period: str
    status: str  # new_version | unchanged
    version: int
    sha256: str
    raw_path: str
    url: str
    http_status: int
    bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def session_for(src: sources.Source):
    """A requests Session whose adapter retries transient faults with exponential backoff."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    policy = Retry(
        total=int(src.retry.get("total", 4)),
        connect=int(src.retry.get("total", 4)),
        read=int(src.retry.get("total", 4)),
        status=int(src.retry.get("total", 4)),
        backoff_factor=float(src.retry.get("backoff_factor", 0.5)),
        status_forcelist=tuple(src.retry.get("status_forcelist", (429, 500, 502, 503, 504))),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "carewatch/0.1 (+NHS social care interface pipeline)"
    return session


def _last_version(con, source: str, period: str):
    """The latest version held: version, sha256, etag, last_modified, its file in this home's
    raw store (not the path recorded when it was stored: the home may have moved since, or
    been restored from a backup elsewhere), url."""
    row = con.execute(
        "select version, sha256, etag, last_modified, raw_path, url from raw_manifest where source = ? and period = ? order by version desc limit 1",
        [source, period],
    ).fetchone()
    return row and (*row[:4], str(rawstore.in_this_store(source, period, row[4])), row[5])


def _log(con, source, period, url, outcome, http_status=None, size=None, sha=None, error=None, run_id=None, refusal=None,
         transient=None):
    con.execute(
        """insert into fetch_log (source, period, url, attempted_at, outcome, http_status, bytes, sha256, error, run_id,
                                  refusal, transient)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [source, period, url, dt.datetime.now(dt.timezone.utc), outcome, http_status, size, sha, error, run_id, refusal,
         transient],
    )


def check_content(src: sources.Source, period: str, url: str, body: bytes, content_type: str) -> None:
    """Refuse anything that is not a complete file of the catalogued format."""

    def refuse(problem: str):
        raise FetchError(src.name, period, url, problem, body=body)

    if rawstore.looks_like_html(body):
        refuse(f"an HTML page was served instead of a {src.format} file")
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == "text/html":
        refuse(f"unexpected content type {mime} for a {src.format} file")
    if src.content_types and mime and mime not in src.content_types:
        refuse(f"unexpected content type {mime} (expected one of {', '.join(src.content_types)})")
    if not body:
        refuse("empty response body")
    if src.format == "xls":
        if not body.startswith(OLE2_MAGIC):
            refuse("not an .xls workbook (no OLE2 signature)")
        _check_workbook_size(src, period, url, body)
    elif src.format == "parquet":
        if not (body.startswith(b"PAR1") and body.endswith(b"PAR1")):
            refuse("not a complete Parquet file (PAR1 markers missing)")
    elif src.format == "csv":
        if b"\x00" in body[:4096]:
            refuse("binary content where a CSV was expected")
        first_line = body.split(b"\n", 1)[0]
        if b"," not in first_line:
            refuse("no comma-separated header line")


def _check_workbook_size(src: sources.Source, period: str, url: str, body: bytes) -> None:
    """Refuse an .xls workbook that does not open, or of more than ``src.max_sheets`` sheets, or
    whose sheets span more than ``src.max_cells`` cells in all: rows x columns, as the parsers
    (pandas and calamine, every sheet) build them in memory. A few KB can span millions: a
    sheet with one cell in A1 and one in IV65536 is 16.7 million, over a GB once parsed.
    xlrd reads one sheet at a time (``on_demand``), each row only as long as its last cell
    (``ragged_rows``): checking that sheet takes tens of MB."""
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=body, on_demand=True, ragged_rows=True)
    except Exception as err:  # xlrd raises several types for damaged files
        raise FetchError(src.name, period, url, f"workbook is truncated or damaged: {err}",
                         kind="workbook is truncated or damaged", body=body) from err
    try:
        if book.nsheets > src.max_sheets:
            raise FetchError(src.name, period, url, f"workbook too large: {book.nsheets} sheets, over the limit of "
                             f"{src.max_sheets}", kind="workbook too large", body=body)
        cells = 0
        for index in range(book.nsheets):
            try:
                sheet = book.sheet_by_index(index)
            except Exception as err:
                raise FetchError(src.name, period, url, f"workbook is truncated or damaged: {err}",
                                 kind="workbook is truncated or damaged", body=body) from err
            cells += sheet.nrows * sheet.ncols
            if cells > src.max_cells:
                raise FetchError(src.name, period, url, f"workbook too large: its sheets up to {sheet.name!r} span "
                                 f"{cells:,} cells (rows x columns), over the limit of {src.max_cells:,}",
                                 kind="workbook too large", body=body)
            book.unload_sheet(index)
    finally:
        book.release_resources()


def fetch(
    source: "str | sources.Source",
    period: str,
    *,
    env: str | None = None,
    base_url: str | None = None,
    as_of: dt.date | None = None,
    session=None,
    run_id: str | None = None,
) -> FetchResult:
    """Fetch one period of one source into the raw store (see module docstring).

    ``source`` is a catalogue name or a :class:`sources.Source` (to override limits).
    ``run_id``: the pipeline run (Airflow's run id), recorded with every attempt; a held period
    refused as at the end of another run raises :class:`AlreadyRefused` (without it, every
    refusal is a FetchError).
    """
    from carewatch import warehouse

    src = source if isinstance(source, sources.Source) else sources.get(source)
    source = src.name
    env = env or sources.environment()
    link = sources.page_link(src, period, env, base_url)
    url = link.page if link else sources.url_for(src, period, env, base_url)
    _refuse_unless_allowed(src, period, env, url)
    timeout = (float(src.timeout_seconds.get("connect", 10)), float(src.timeout_seconds.get("read", 60)))
    session = session or session_for(src)
    # the warehouse is opened only to read and to write, never while downloading: DuckDB lets
    # no other process open the file, even to read, while one has it open for writing
    with warehouse.connect() as con:
        con.execute(MANIFEST_DDL)
        last = _last_version(con, source, period)

    def log(*args, **kwargs):
        with warehouse.connect() as con:
            _log(con, source, period, *args, run_id=run_id, **kwargs)

    def missing(where: str, what: str, status: int | None = None):
        """The period's file is not there (HTTP 404, or no link on the publication page)."""
        if last:  # held, so published: not late, gone from where it was
            raise PublicationWithdrawn(source, period, where, f"{what}; the version held ({last[0]}) is kept")
        due = sources.due_date(source, period) + dt.timedelta(days=src.grace_days)
        if (as_of or dt.date.today()) < due:
            log(where, "not_published_yet", status)
            raise NotPublishedYet(source, period, where)
        raise PublicationOverdue(source, period, where, f"{what} and the publication was due by {due:%Y-%m-%d}: overdue")

    try:
        if link:
            found = find_link(session, link, timeout, src, period, env)
            if found is None:
                missing(link.page, f"the publication page has no link starting {link.text!r}")
            url = found
            _refuse_unless_allowed(src, period, env, url, via="link")
        # conditional GET only at the URL the held version came from (where its bytes were
        # served, after any redirect): a file found at another URL (a revision taken back,
        # the page linking the original again) may be older than the held one, and
        # If-Modified-Since would call it unchanged
        validators = {}
        if last:
            if last[2]:
                validators["If-None-Match"] = last[2]
            if last[3]:
                validators["If-Modified-Since"] = last[3]
        started = time.monotonic()
        response, url = _get(session, url, src, period, env, timeout, "request", validators, last[5] if last else None)
        with response:
            status = response.status_code
            if status == 304 and last:
                log(url, "unchanged", status, 0, last[1])
                return FetchResult(source, period, "unchanged", last[0], last[1], last[4], url, status, 0)
            if status == 404:
                missing(url, "HTTP 404: the file is no longer at this URL" if last else "HTTP 404", status)
            if status != 200:
                raise FetchError(source, period, url, f"HTTP {status}", transient=status >= 500 or status == 429)
            body = _read_limited(response, src, period, url, started)
            headers = response.headers
        check_content(src, period, url, body, headers.get("Content-Type", ""))
        digest = rawstore.sha256_of(body)
        if last and last[1] == digest:
            log(url, "unchanged", status, len(body), digest)
            return FetchResult(source, period, "unchanged", last[0], digest, last[4], url, status, len(body))
        with warehouse.connect() as con:
            other = _period_holding(con, source, period, digest)
            if other:  # no two periods of a publication are the same bytes: one of the URLs is wrong
                raise FetchError(source, period, url, f"the very same file as one held for {other} "
                                 f"(sha256 {digest[:12]}): one of the two URLs serves the other's publication",
                                 kind=f"the very same file as {other}", body=body)
            latest = _last_version(con, source, period)  # another fetch may have stored one since
            if latest and latest[1] == digest:
                _log(con, source, period, url, "unchanged", status, len(body), digest, run_id=run_id)
                return FetchResult(source, period, "unchanged", latest[0], digest, latest[4], url, status, len(body))
            raw_path = rawstore.put(source, period, body, src.format)
            version = (latest[0] if latest else 0) + 1
            con.execute("begin transaction")
            try:
                con.execute(
                    "insert into raw_manifest values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [source, period, version, url, dt.datetime.now(dt.timezone.utc), status, len(body), digest,
                     headers.get("ETag"), headers.get("Last-Modified"), str(raw_path)],
                )
                _log(con, source, period, url, "new_version", status, len(body), digest, run_id=run_id)
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
            return FetchResult(source, period, "new_version", version, digest, str(raw_path), url, status, len(body))
    except FetchError as err:  # logged at the URL it is about: the one asked, redirected from, or served from
        kept = err.body  # what was served, kept for a look (not in the raw store)
        sha = rawstore.sha256_of(kept) if kept else None
        if kept:
            try:
                rawstore.put(source, period, kept, src.format, root=paths.refused_dir())
            except OSError as store_err:  # the refusal is what matters: logged and raised all the same
                print(f"{source} {period}: could not keep the refused file: {store_err}")
        with warehouse.connect() as con:
            reported = _reported_before(con, source, period, err.url, err.kind, run_id) if last and run_id else None
            _log(con, source, period, err.url, "already_refused" if reported else "refused",
                 size=len(kept) if kept else None, sha=sha, error=err.problem, run_id=run_id, refusal=err.kind,
                 transient=err.transient)
        if reported is not None:
            raise AlreadyRefused(source, period, err.url, err.problem, reported) from err
        raise


MAX_REDIRECTS = 5


def _refuse_unless_allowed(src: sources.Source, period: str, env: str, url: str, via: str | None = None,
                           target: str | None = None) -> None:
    """Refuse, before it is asked, a URL on a host ``src`` does not allow in ``env``, or not
    https in production (http or https elsewhere). ``via``: None for the catalogue's URL,
    "link" for the file a publication page links (``url``), "redirect" for where ``url``
    redirects (``target``)."""
    asked = target or url
    parts = urlparse(asked)
    host = parts.hostname or ""
    if host not in src.allowed_hosts(env):
        problem, kind = {
            None: (f"host {host!r} is", None),
            "link": (f"the publication page links a file on host {host!r}, which is", "link to a host not allowed"),
            "redirect": (f"redirected to {asked}, on host {host!r}, which is", "redirect to a host not allowed"),
        }[via]
        raise FetchError(src.name, period, url, f"{problem} not allowed for {src.name} in {env}", kind=kind)
    schemes = ("https",) if env == "production" else ("http", "https")
    if parts.scheme.lower() not in schemes:
        allowed = " or ".join(schemes)
        problem, kind = {
            None: (f"the URL is {parts.scheme or 'without a scheme'}, not {allowed}", f"URL not {allowed}"),
            "link": (f"the publication page links a file over {parts.scheme}, not {allowed}", f"link not {allowed}"),
            "redirect": (f"redirected to {asked}, over {parts.scheme}, not {allowed}", f"redirect not {allowed}"),
        }[via]
        raise FetchError(src.name, period, url, f"{problem} (in {env})", kind=kind)


def _get(session, url: str, src: sources.Source, period: str, env: str, timeout, what: str,
         validators: dict | None = None, validators_at: str | None = None):
    """GET ``url`` (streamed), following at most :data:`MAX_REDIRECTS` redirects one by one:
    each target is checked (:func:`_refuse_unless_allowed`) before it is asked, so nothing is
    requested from a host the catalogue does not allow, nor over http in production.
    ``validators`` (If-None-Match, If-Modified-Since) go only to a hop at ``validators_at``.
    Returns the last response (not a redirect) and its URL: where the body comes from.
    A request that fails (after urllib3's retries) is a FetchError naming the hop asked;
    ``what``: "request", or "publication page request"."""
    import requests

    hops = 0
    while True:
        try:
            response = session.get(url, headers=validators if validators and url == validators_at else None,
                                   timeout=timeout, stream=True, allow_redirects=False)
            if response.is_redirect and hops == MAX_REDIRECTS:
                response.close()
                raise requests.TooManyRedirects(f"Exceeded {MAX_REDIRECTS} redirects.", response=response)
        except requests.RequestException as err:
            raise FetchError(src.name, period, url, f"{what} failed after retries: {err.__class__.__name__}: {err}",
                             kind=f"{what} failed after retries: {err.__class__.__name__}", transient=_transient(err)) from err
        if not response.is_redirect:
            return response, url
        # requests works out the target as it would follow it (relative, fragment, quoting)
        # and has read and closed the redirect's own body
        target = response.next.url if response.next is not None else urljoin(url, response.headers["Location"])
        response.close()
        _refuse_unless_allowed(src, period, env, url, via="redirect", target=target)
        url, hops = target, hops + 1


def _transient(err) -> bool:
    """A request fault a later try may not meet: the connection or a timeout, not a
    certificate the host does not match, a redirect loop or a malformed URL."""
    import requests

    return isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)) \
        and not isinstance(err, requests.exceptions.SSLError)


class _Links(HTMLParser):
    """Every ``<a href>`` of a page with its text (tags inside the link included)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open.append((dict(attrs).get("href") or "", []))

    def handle_data(self, data):
        for _href, text in self._open:
            text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._open:
            href, text = self._open.pop()
            if href:
                self.links.append((href, "".join(text)))


def _page_encoding(content_type: str, body: bytes) -> str:
    """A web page's character encoding: the header's charset, else the page's own
    ``<meta charset>`` (or http-equiv), else UTF-8 (requests would guess Latin-1 for any
    text/html without a charset, which turns UTF-8's non-breaking spaces into two characters).
    A name Python does not know, or knows as a codec that is not a text encoding ("zip",
    "base64": bytes to bytes), is passed over."""
    import codecs
    import re

    for found in (re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.I),
                  re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", body[:4096], re.I)):
        if found:
            name = found.group(1)
            name = name.decode("ascii", "replace") if isinstance(name, bytes) else name
            try:
                codec = codecs.lookup(name)
            except LookupError:
                continue
            if getattr(codec, "_is_text_encoding", True):  # CPython marks bytes-to-bytes codecs False
                return codec.name
    return "utf-8"


def _page_text(content_type: str, body: bytes) -> str:
    """The page as text, in :func:`_page_encoding`; as UTF-8 where that encoding cannot decode
    with replacement characters (Python's "idna", "punycode" and "undefined" raise instead)."""
    try:
        return body.decode(_page_encoding(content_type, body), errors="replace")
    except UnicodeError:
        return body.decode("utf-8", errors="replace")


def _words(text: str) -> str:
    return " ".join(text.split()).casefold()


def find_link(session, link: sources.PageLink, timeout, src: sources.Source, period: str,
              env: str | None = None) -> str | None:
    """The URL of the one file the publication page ``link.page`` links with text starting
    ``link.text`` (case and spacing aside, followed by nothing or by a non-alphanumeric
    character: "... 2017-18 March (Revised 13.12.18) (XLS, 139KB)"); None when the page is
    404 or has no such link. Several different files so linked are refused: the page cannot
    say which is the period's (a data engineer lists the right one in the source's url_list).
    The page's redirects are followed as the file's are (:func:`_get`); its links are relative
    to where it was served."""
    started = time.monotonic()
    response, page = _get(session, link.page, src, period, env or sources.environment(), timeout,
                          "publication page request")
    with response:
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise FetchError(src.name, period, page, f"HTTP {response.status_code} for the publication page",
                             transient=response.status_code >= 500 or response.status_code == 429)
        body = _read_limited(response, src, period, page, started)
    parser = _Links()
    parser.feed(_page_text(response.headers.get("Content-Type", ""), body))
    wanted = _words(link.text)
    found = sorted({urljoin(page, href.strip()) for href, text in parser.links
                    if _words(text).startswith(wanted) and not _words(text)[len(wanted):len(wanted) + 1].isalnum()})
    if len(found) > 1:
        raise FetchError(src.name, period, page, f"the publication page links {len(found)} different files with text starting "
                         f"{link.text!r} ({', '.join(found)}): list the period's URL in the source's url_list",
                         kind="several links on the publication page")
    return found[0] if found else None


def _period_holding(con, source: str, period: str, sha256: str) -> str | None:
    """Another period of ``source`` that holds this very file, in any of its versions (a file
    that names no period, such as ASCOF's CSV, would otherwise load as both; a later revision of
    that period does not make the old file this period's). The bytes cannot say which URL was
    wrong: when it was the other period's, and this file is this period's after all, a data
    engineer lists it in ``config/accepted_files.csv`` after checking it."""
    if (source, period, sha256) in sources.accepted_files():
        return None
    row = con.execute(
        "select period from raw_manifest where source = ? and period <> ? and sha256 = ? order by period limit 1",
        [source, period, sha256],
    ).fetchone()
    return row[0] if row else None


def _reported_before(con, source: str, period: str, url: str, kind: str, run_id: str):
    """When this refusal (same URL, same kind: :attr:`FetchError.kind`) was emailed, if every
    attempt of other runs since then was this refusal too; else None. Tries within this run do
    not count (its final failure is the one reported), nor do attempts outside a run (they
    report nothing). Rows logged before kinds were recorded count by their error text."""
    streak = []
    for outcome, refusal, logged_url, other_run in con.execute(
        """select outcome, coalesce(refusal, error), url, run_id from fetch_log
           where source = ? and period = ? and run_id <> ? order by attempted_at desc""",
        [source, period, run_id]).fetchall():
        if outcome not in ("refused", "already_refused") or refusal != kind or logged_url != url:
            break
        streak.append(other_run)
    if not streak:
        return None
    return con.execute(
        """select min(reported_at) from fetch_refusals_reported
           where source = ? and period = ? and url = ? and coalesce(refusal, error) = ? and list_contains(?, run_id)""",
        [source, period, url, kind, streak]).fetchone()[0]


def record_reported(err: FetchError, run_id: str | None) -> None:
    """The failure email for refusal ``err`` of run ``run_id`` went out (called by the task's
    failure callback, :func:`carewatch.alerts.on_task_failure`)."""
    from carewatch import warehouse

    with warehouse.connect() as con:
        con.execute(MANIFEST_DDL)
        con.execute("""insert into fetch_refusals_reported (source, period, url, error, run_id, reported_at, refusal)
                       values (?, ?, ?, ?, ?, ?, ?)""",
                    [err.source, err.period, err.url, err.problem, run_id, dt.datetime.now(dt.timezone.utc), err.kind])


def reported_since(err: FetchError, since: dt.datetime) -> tuple | None:
    """The latest email of this very refusal (same source, period, URL and kind) sent at or
    after ``since``: (``reported_at``, ``run_id``), or None."""
    from carewatch import warehouse

    with warehouse.connect() as con:
        con.execute(MANIFEST_DDL)
        return con.execute(
            """select reported_at, run_id from fetch_refusals_reported
               where source = ? and period = ? and url = ? and coalesce(refusal, error) = ? and reported_at >= ?
               order by reported_at desc limit 1""",
            [err.source, err.period, err.url, err.kind, since]).fetchone()


DOWNLOAD_SECONDS = 600  # the default of timeout_seconds.download


def _read_limited(response, src: sources.Source, period: str, url: str, started: float) -> bytes:
    """The response's body, refused over ``src.max_bytes``, cut short, or not complete
    ``timeout_seconds.download`` seconds after ``started`` (``time.monotonic()`` when the
    request was sent). The read timeout bounds each wait for a byte only: a server sending one
    every few seconds would never be cut off. A timer shuts the socket down at the deadline
    (urllib3's ``HTTPResponse.shutdown``, meant to interrupt a read blocked in another thread),
    so a read waiting for a full chunk ends too."""
    import re
    import threading

    import requests

    declared = response.headers.get("Content-Length")
    if declared is not None:
        if not re.fullmatch(r"[0-9]+", declared.strip()):  # not int(): it takes "+1", "1_000", " 1 "
            raise FetchError(src.name, period, url, f"malformed Content-Length header {declared[:40]!r}",
                             kind="malformed Content-Length header")
        declared = int(declared)
    if declared is not None and declared > src.max_bytes:
        raise FetchError(src.name, period, url, f"file is {declared:,} bytes, over the {src.max_bytes:,} byte limit",
                         kind=f"file over the {src.max_bytes:,} byte limit")
    limit = float(src.timeout_seconds.get("download", DOWNLOAD_SECONDS))

    def too_slow():  # transient: the server's pace, not what it serves; a later try may find it quicker
        return FetchError(src.name, period, url, f"download too slow: not complete {limit:g} s after the request "
                          "(timeout_seconds.download)", kind="download too slow", transient=True)

    cut_off = threading.Event()

    def shut_down():
        cut_off.set()
        try:
            response.raw.shutdown()
        except Exception:  # (ValueError, RuntimeError, OSError): already read whole, released or closed
            pass

    timer = threading.Timer(max(0.0, started + limit - time.monotonic()), shut_down)
    timer.daemon = True
    timer.start()
    buffer = io.BytesIO()
    try:
        for chunk in response.iter_content(chunk_size=1 << 16):
            if cut_off.is_set():
                raise too_slow()
            buffer.write(chunk)
            if buffer.tell() > src.max_bytes:
                raise FetchError(src.name, period, url, f"file exceeds the {src.max_bytes:,} byte limit",
                                 kind=f"file over the {src.max_bytes:,} byte limit")
    except FetchError:
        raise
    except Exception as err:
        if cut_off.is_set():  # the read the timer interrupted
            raise too_slow() from err
        if isinstance(err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
            raise FetchError(src.name, period, url, f"download truncated: {err.__class__.__name__}", kind="download truncated",
                             transient=True) from err
        raise
    finally:
        timer.cancel()
    if cut_off.is_set():  # the read interrupted ended as if the body had (no length to tell)
        raise too_slow()
    body = buffer.getvalue()
    # Content-Length counts the bytes on the wire: a compressed response (Content-Encoding:
    # gzip, as web pages often are) is longer once decoded, so compare what was read off the wire
    received = len(body) if response.headers.get("Content-Encoding", "identity").lower() == "identity" else response.raw.tell()
    if declared is not None and received != declared:
        raise FetchError(src.name, period, url, f"download truncated: {received:,} of {declared:,} bytes",
                         kind="download truncated", transient=True)
    return body
