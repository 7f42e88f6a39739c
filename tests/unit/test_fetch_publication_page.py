"""Finding a period's file on its publication page (NHS England's DTOC downloads carry random
suffixes), against a real local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from carewatch import fetch, paths, rawstore, sources
from carewatch.errors import FetchError, NotPublishedYet, PublicationOverdue, PublicationWithdrawn
from tests.unit.test_fetch import BEFORE_DUE, LONG_AFTER, PERIOD, state, tiny_xls

PAGE = "/statistics/delayed-transfers-of-care-data-2016-17/"


@pytest.fixture
def url_list(tmp_path):
    path = tmp_path / "dtoc_la.csv"
    path.write_text("period,url\n")
    yield path
    sources._read_url_list.cache_clear()


@pytest.fixture
def src(url_list):
    """dtoc_la with production's index_page and link_text, served from the local server."""
    production = sources.get("dtoc_la").env_urls("production")
    local = {
        "index_page": "{base_url}/statistics/delayed-transfers-of-care-data-{fy}/",
        "link_text": production["link_text"],
        "url_list": str(url_list),  # an absolute path stays as it is
        "allowed_hosts": ["127.0.0.1", "localhost"],
    }
    return dataclasses.replace(sources.get("dtoc_la"), urls={"test": local},
                               retry={"total": 1, "backoff_factor": 0.01, "status_forcelist": [500]})


@pytest.fixture
def base(httpserver, carewatch_home):
    return httpserver.url_for("").rstrip("/")


def page(*links: tuple[str, str]) -> str:
    """A publication page in the shape of NHS England's: a heading per month, then its links."""
    items = "".join(f'<p><a href="{href}">{text}</a></p>\n' for href, text in links)
    return f"<html><body><h1>Delayed Transfers of Care Data 2016-17</h1>\n<h3>February 2017</h3>\n{items}</body></html>"


def serve_page(httpserver, html: str, status: int = 200):
    httpserver.expect_request(PAGE).respond_with_data(html, status=status, content_type="text/html; charset=utf-8")


def manifest_urls():
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        return con.execute("select period, version, url from raw_manifest order by version").fetchall()


def test_the_month_s_link_is_followed_among_the_other_files_of_the_page(httpserver, base, src):
    body = tiny_xls(7)
    serve_page(httpserver, page(
        ("/uploads/2017/04/LA-Type-B-January-2017-x1Y2z.xls", "Total Delayed Days Local Authority 2016-17 January (XLS, 139KB)"),
        ("/uploads/2017/04/Trust-Type-B-February-2017-QpR4s.xls", "Total Delayed Days Trust 2016-17 February (XLS, 219KB)"),
        # relative link, text split by an inner tag and a line break, different case
        ("../../uploads/2017/04/LA-Type-B-February-2017-3QrLM.xls",
         "Total  Delayed Days <span>LOCAL AUTHORITY</span>\n 2016-17 February (Revised 13.12.18) (XLS, 139KB)"),
        ("/uploads/2017/04/February-2017-CSV-aB3dE.csv", "CSV Format Monthly Delayed Transfers of Care 2016-17 February (CSV, 3MB)"),
    ))
    httpserver.expect_request("/uploads/2017/04/LA-Type-B-February-2017-3QrLM.xls").respond_with_data(body, content_type="application/vnd.ms-excel")
    result = fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    assert result.status == "new_version" and result.sha256 == rawstore.sha256_of(body)
    assert result.url == f"{base}/uploads/2017/04/LA-Type-B-February-2017-3QrLM.xls"
    assert manifest_urls() == [(PERIOD, 1, result.url)]


def test_a_revision_moved_to_another_name_is_a_new_version(httpserver, base, src):
    serve_page(httpserver, page(("/uploads/2017/04/LA-Type-B-February-2017-3QrLM.xls", "Total Delayed Days Local Authority 2016-17 February")))
    httpserver.expect_request("/uploads/2017/04/LA-Type-B-February-2017-3QrLM.xls").respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    httpserver.clear()
    serve_page(httpserver, page(("/uploads/2017/12/LA-Type-B-February-2017-a8wRN.xls",
                                 "Total Delayed Days Local Authority 2016-17 February (Revised 13.12.17) (XLS, 139KB)")))
    httpserver.expect_request("/uploads/2017/12/LA-Type-B-February-2017-a8wRN.xls").respond_with_data(tiny_xls(2), content_type="application/vnd.ms-excel")
    second = fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    assert (second.status, second.version) == ("new_version", 2)
    assert [url.rsplit("/", 1)[1] for _, _, url in manifest_urls()] == ["LA-Type-B-February-2017-3QrLM.xls", "LA-Type-B-February-2017-a8wRN.xls"]


def test_a_month_not_on_the_page_is_not_published_yet_before_its_due_date_and_overdue_after(httpserver, base, src):
    # February 2017 was due on 13 April 2017; the page lists January only (and "February 20",
    # a different text that merely starts alike, is not February)
    serve_page(httpserver, page(("/uploads/LA-Type-B-January-2017.xls", "Total Delayed Days Local Authority 2016-17 January"),
                                ("/uploads/other.xls", "Total Delayed Days Local Authority 2016-17 Februaryish")))
    with pytest.raises(NotPublishedYet):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=BEFORE_DUE)
    with pytest.raises(PublicationOverdue, match=r"dtoc_la 2017-02: the publication page has no link starting "
                                                 r"'Total Delayed Days Local Authority 2016-17 February' and the publication "
                                                 r"was due by 2017-04-27: overdue \(http://.*/delayed-transfers-of-care-data-2016-17/\)"):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    assert state() == ({}, [])
    assert {request.path for request, _ in httpserver.log} == {PAGE}


def test_a_missing_financial_year_page_counts_as_not_published(httpserver, base, src):
    serve_page(httpserver, "not found", status=404)
    with pytest.raises(NotPublishedYet):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=BEFORE_DUE)
    with pytest.raises(PublicationOverdue):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)


def test_a_held_month_no_longer_listed_keeps_its_version(httpserver, base, src):
    serve_page(httpserver, page(("/uploads/LA-Type-B-February-2017-3QrLM.xls", "Total Delayed Days Local Authority 2016-17 February")))
    httpserver.expect_request("/uploads/LA-Type-B-February-2017-3QrLM.xls").respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    before = state()
    httpserver.clear()
    serve_page(httpserver, page())
    with pytest.raises(PublicationWithdrawn, match=r"no link starting .*; the version held \(1\) is kept"):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    assert state() == before


def test_two_different_files_for_the_month_are_refused_naming_both(httpserver, base, src):
    serve_page(httpserver, page(("/uploads/2017/04/LA-Type-B-February-2017-3QrLM.xls", "Total Delayed Days Local Authority 2016-17 February"),
                                ("/uploads/2017/12/LA-Type-B-February-2017-a8wRN.xls", "Total Delayed Days Local Authority 2016-17 February (Revised)")))
    with pytest.raises(FetchError, match=r"links 2 different files .*3QrLM\.xls, .*a8wRN\.xls\): list the period's URL"):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    assert state() == ({}, [])
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select outcome, refusal from fetch_log").fetchall() == [("refused", "several links on the publication page")]


def test_the_same_file_linked_twice_is_one_file(httpserver, base, src):
    # the page's month heading and a "latest" box both link the same workbook
    href = "/uploads/LA-Type-B-February-2017-3QrLM.xls"
    serve_page(httpserver, page((href, "Total Delayed Days Local Authority 2016-17 February"),
                                (f"{base}{href}", "Total Delayed Days Local Authority 2016-17 February (XLS, 139KB)")))
    httpserver.expect_request(href).respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    assert fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER).status == "new_version"


def test_a_link_to_a_host_not_allowed_is_refused_without_asking_it(httpserver, base, src):
    serve_page(httpserver, page(("http://downloads.example.org/LA-Type-B-February-2017.xls", "Total Delayed Days Local Authority 2016-17 February")))
    with pytest.raises(FetchError, match="links a file on host 'downloads.example.org', which is not allowed"):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    assert state() == ({}, [])


def test_a_url_list_row_wins_over_the_page(httpserver, base, src, url_list):
    url_list.write_text(f"period,url\n{PERIOD},{base}/listed/LA-Type-B-February-2017.xls\n")
    sources._read_url_list.cache_clear()
    httpserver.expect_request("/listed/LA-Type-B-February-2017.xls").respond_with_data(tiny_xls(4), content_type="application/vnd.ms-excel")
    result = fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
    assert result.url.endswith("/listed/LA-Type-B-February-2017.xls")
    assert {request.path for request, _ in httpserver.log} == {"/listed/LA-Type-B-February-2017.xls"}  # the page was not read


def test_a_page_error_is_a_clear_refusal(httpserver, base, src):
    serve_page(httpserver, "oops", status=403)
    with pytest.raises(FetchError, match=r"dtoc_la 2017-02: HTTP 403 for the publication page \(http://"):
        fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)


def test_production_reads_the_financial_year_page_of_each_month():
    # January 2017 belongs to the 2016-17 page, April 2017 to 2017-18's; the link texts are
    # those of NHS England's 2017-18 page ("Total Delayed Days Local Authority 2017-18 March
    # (Revised 13.12.18) (XLS, 139KB)", "CSV Format Monthly Delayed Transfers of Care 2017-18 March ...")
    root = "https://www.england.nhs.uk/statistics/statistical-work-areas/delayed-transfers-of-care/delayed-transfers-of-care-data-"
    assert sources.page_link("dtoc_la", "2017-01", "production") == sources.PageLink(
        root + "2016-17/", "Total Delayed Days Local Authority 2016-17 January")
    assert sources.page_link("dtoc_la", "2017-03", "production").page == root + "2016-17/"
    assert sources.page_link("dtoc_la", "2017-04", "production") == sources.PageLink(
        root + "2017-18/", "Total Delayed Days Local Authority 2017-18 April")
    assert sources.page_link("dtoc_provider", "2018-03", "production") == sources.PageLink(
        root + "2017-18/", "CSV Format Monthly Delayed Transfers of Care 2017-18 March")
    assert sources.page_link("dtoc_la", "2018-03", "embedded") is None  # the samples are at fixed URLs


def test_url_lists_are_read_from_the_config_directory_in_use(tmp_path, monkeypatch):
    # CAREWATCH_CONFIG names another config directory: its urls/ lists are the ones read
    import shutil

    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    with (config / "urls" / "ons_mye.csv").open("a") as handle:
        handle.write("2017,https://www.ons.gov.uk/file?uri=/mid2017/ukmidyearestimates2017finalversion.xls\n")
    assert sources.url_for("ons_mye", "2017", "production").endswith("/mid2017/ukmidyearestimates2017.xls")
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    try:
        assert sources.url_for("ons_mye", "2017", "production").endswith("/mid2017/ukmidyearestimates2017finalversion.xls")
    finally:
        sources._read_url_list.cache_clear()


XLS = "/uploads/2017/04/LA-Type-B-February-2017-3QrLM.xls"


def test_a_gzip_compressed_page_with_its_length_is_read_whole(httpserver, base, src):
    # web pages are often served compressed: Content-Length counts the compressed bytes
    import gzip

    from werkzeug import Response

    packed = gzip.compress(page((XLS, "Total Delayed Days Local Authority 2016-17 February (XLS, 139KB)")).encode())
    httpserver.expect_request(PAGE).respond_with_response(Response(packed, headers={
        "Content-Encoding": "gzip", "Content-Type": "text/html; charset=UTF-8", "Content-Length": str(len(packed))}))
    httpserver.expect_request(XLS).respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    assert fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER).url == f"{base}{XLS}"


@pytest.mark.parametrize("content_type,meta", [("text/html", '<meta charset="utf-8">'), ("text/html", ""),
                                               ("text/html; charset=utf-8", "")])
def test_a_utf8_page_is_read_as_utf8_without_a_charset_in_its_header(httpserver, base, src, content_type, meta):
    # a non-breaking space (UTF-8 C2 A0) between words, as content systems write them: read as
    # Latin-1 (requests' guess for text/html without a charset) it is two characters, no match
    from werkzeug import Response

    html = (f"<html><head>{meta}</head><body><a href=\"{XLS}\">Total Delayed Days Local Authority 2016-17\u00a0February "
            "(XLS, 139KB)</a></body></html>").encode("utf-8")
    httpserver.expect_request(PAGE).respond_with_response(Response(html, headers={"Content-Type": content_type}))
    httpserver.expect_request(XLS).respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    assert fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER).url == f"{base}{XLS}"


def test_a_page_in_another_declared_encoding_is_read_in_it(httpserver, base, src):
    from werkzeug import Response

    html = (f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252"></head><body>'
            f'<a href="{XLS}">Total Delayed Days Local Authority 2016-17\u00a0February \u2013 revised</a></body></html>').encode("cp1252")
    httpserver.expect_request(PAGE).respond_with_response(Response(html, headers={"Content-Type": "text/html"}))
    httpserver.expect_request(XLS).respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    assert fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER).url == f"{base}{XLS}"


def test_a_revision_taken_back_is_fetched_again_though_older_than_the_held_one(httpserver, base, src):
    # a server without ETags answers If-Modified-Since: the page links A (April), then the
    # revision B (December), then A again. A's date is before B's: asking A "modified since
    # B's date?" would get a 304 and keep B. The held version's validators go only to its own URL.
    from email.utils import parsedate_to_datetime

    from werkzeug import Response

    b_url = "/uploads/2017/12/LA-Type-B-February-2017-a8wRN.xls"
    files = {XLS: (tiny_xls(1), "Thu, 13 Apr 2017 09:30:00 GMT"), b_url: (tiny_xls(2), "Wed, 13 Dec 2017 09:30:00 GMT")}

    def static(path):
        body, modified = files[path]

        def handler(request):
            since = request.headers.get("If-Modified-Since")
            if since and parsedate_to_datetime(since) >= parsedate_to_datetime(modified):
                return Response(status=304)
            return Response(body, content_type="application/vnd.ms-excel", headers={"Last-Modified": modified})
        return handler

    got = []
    for href in (XLS, b_url, XLS, XLS):
        httpserver.clear()
        for path in files:
            httpserver.expect_request(path).respond_with_handler(static(path))
        serve_page(httpserver, page((href, "Total Delayed Days Local Authority 2016-17 February")))
        result = fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
        got.append((result.status, result.version, result.sha256 == rawstore.sha256_of(files[href][0])))
    # the fourth fetch, at the held version's own URL, is a 304
    assert got == [("new_version", 1, True), ("new_version", 2, True), ("new_version", 3, True), ("unchanged", 3, True)]


def test_a_url_list_named_but_missing_is_an_error_not_an_empty_list(src, tmp_path):
    # e.g. a config written before url_list paths were relative to the config directory
    # ("config/urls/dtoc_la.csv"): silently reading nothing would fetch other URLs unnoticed
    missing = dataclasses.replace(src, urls={"test": {**src.urls["test"], "url_list": str(tmp_path / "config/urls/dtoc_la.csv")}})
    with pytest.raises(FileNotFoundError, match="url_list .*config/urls/dtoc_la.csv, which does not exist"):
        sources.page_link(missing, PERIOD, "test", "http://127.0.0.1:9")


@pytest.mark.parametrize("content_type,meta", [
    ("text/html; charset=zip", ""),           # a codec Python knows, bytes to bytes: LookupError when decoding
    ("text/html; charset=base64", '<meta charset="utf-8">'),
    ("text/html", '<meta charset="zlib">'),
    ("text/html; charset=undefined", ""),     # text encodings that cannot decode with replacement
    ("text/html; charset=idna", ""),
])
def test_a_page_declaring_an_encoding_that_cannot_decode_it_is_read_as_utf8(httpserver, base, src, content_type, meta):
    from werkzeug import Response

    html = (f"<html><head>{meta}</head><body><a href=\"{XLS}\">Total Delayed Days Local Authority 2016-17\u00a0February "
            "(XLS, 139KB)</a></body></html>").encode("utf-8")
    httpserver.expect_request(PAGE).respond_with_response(Response(html, headers={"Content-Type": content_type}))
    httpserver.expect_request(XLS).respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    assert fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER).url == f"{base}{XLS}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost: (server SSLContext, its PEM path for
    the client to trust)."""
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context, str(folder / "cert.pem")


@pytest.mark.parametrize("how", ["link", "redirect"])
def test_production_fetches_over_https_only_a_link_or_redirect_to_http_is_refused_without_asking_it(
        httpserver, carewatch_home, src, tls, how, monkeypatch):
    # an https publication page linking its file over http (or redirecting there): the link's
    # host was checked, never its scheme, and redirects were followed anywhere
    from tests.unit.test_fetch import other_server, redirect

    context, cert = tls
    plain = httpserver.url_for(XLS)  # http://localhost:<port>/...: an allowed host, over http
    httpserver.expect_request(XLS).respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    production = dataclasses.replace(src, urls={"production": src.urls["test"]})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)  # requests trusts the test certificate (alone)
    with other_server("127.0.0.1", ssl_context=context) as secure:
        base = secure.url_for("").rstrip("/")
        assert base.startswith("https://127.0.0.1:")
        if how == "link":
            secure.expect_request(PAGE).respond_with_data(page((plain, "Total Delayed Days Local Authority 2016-17 February")),
                                                          content_type="text/html; charset=utf-8")
            problem, kind = r"the publication page links a file over http, not https \(in production\)", "link not https"
        else:
            secure.expect_request(PAGE).respond_with_data(page((XLS, "Total Delayed Days Local Authority 2016-17 February")),
                                                          content_type="text/html; charset=utf-8")
            secure.expect_request(XLS).respond_with_response(redirect(plain))
            problem, kind = rf"redirected to {plain}, over http, not https \(in production\)", "redirect not https"
        with pytest.raises(FetchError, match=rf"^dtoc_la 2017-02: {problem} \((http|https)://.*{XLS}\)$") as err:
            fetch.fetch(production, PERIOD, env="production", base_url=base, as_of=LONG_AFTER)
        assert [request.path for request, _ in secure.log] == [PAGE] + ([XLS] if how == "redirect" else [])
    assert httpserver.log == []  # the http URL was never asked
    assert err.value.kind == kind and not err.value.transient
    assert state() == ({}, [])


def test_production_accepts_an_https_link_and_the_catalogue_url_must_be_https(carewatch_home, src, tls, monkeypatch):
    from tests.unit.test_fetch import other_server

    context, cert = tls
    production = dataclasses.replace(src, urls={"production": src.urls["test"]})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)  # requests trusts the test certificate (alone)
    with other_server("127.0.0.1", ssl_context=context) as secure:
        base = secure.url_for("").rstrip("/")
        secure.expect_request(PAGE).respond_with_data(page((XLS, "Total Delayed Days Local Authority 2016-17 February")),
                                                      content_type="text/html; charset=utf-8")
        secure.expect_request(XLS).respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
        result = fetch.fetch(production, PERIOD, env="production", base_url=base, as_of=LONG_AFTER)
        assert (result.status, result.url) == ("new_version", f"{base}{XLS}")
        with pytest.raises(FetchError, match=r"^dtoc_la 2017-02: the URL is http, not https \(in production\) \(http://"):
            fetch.fetch(production, PERIOD, env="production", base_url=base.replace("https://", "http://"), as_of=LONG_AFTER)
        assert [request.path for request, _ in secure.log] == [PAGE, XLS]


def test_a_page_that_moved_is_followed_within_the_allowed_hosts_and_its_relative_links_read_from_where_it_is(httpserver, base, src):
    from tests.unit.test_fetch import other_server, redirect

    moved = "/archive/dtoc/2016-17/"
    httpserver.expect_request(PAGE).respond_with_response(redirect(moved, 301))
    httpserver.expect_request(moved).respond_with_data(page(("files/LA-Type-B-February-2017.xls", "Total Delayed Days Local Authority 2016-17 February")),
                                                       content_type="text/html; charset=utf-8")
    httpserver.expect_request(f"{moved}files/LA-Type-B-February-2017.xls").respond_with_data(tiny_xls(1), content_type="application/vnd.ms-excel")
    assert fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER).url == f"{base}{moved}files/LA-Type-B-February-2017.xls"
    # a page redirected to a host not allowed is refused before that host is asked
    httpserver.clear()
    with other_server("127.0.0.2") as elsewhere:
        httpserver.expect_request(PAGE).respond_with_response(redirect(elsewhere.url_for(PAGE)))
        with pytest.raises(FetchError, match=r"redirected to http://127\.0\.0\.2:\d+/statistics/.*, on host '127\.0\.0\.2', which is not allowed") as err:
            fetch.fetch(src, PERIOD, env="test", base_url=base, as_of=LONG_AFTER)
        assert elsewhere.log == [] and err.value.kind == "redirect to a host not allowed"
