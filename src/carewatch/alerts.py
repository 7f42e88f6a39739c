"""Email alerts through Airflow's SMTP connection (``config/alerts.yaml``).

Four kinds, one format (an HTML body a person can act on, a subject that sorts in a mailbox):

- **quality**: a batch failed its Great Expectations suite. Subject
  ``[carewatch] BLOCKING dtoc_la 2018-03: 2 expectations failed`` (or ``WARNING`` when only
  warnings failed and the batch was loaded); the body lists each failed expectation with what
  was observed against what was expected, a few offending rows, a link to the task in the
  Airflow UI and one to the Data Docs page of that validation.
- **overdue**: a publication has not arrived ``grace_days`` after it was due. Emailed at most
  once every ``overdue_repeat_days`` for one period at one URL (:func:`overdue_emailed_recently`):
  each monthly run reminds, the runs of a backfill do not repeat it.
- **gone**: a period already held answers HTTP 404 (the file moved or was withdrawn): the
  held version stays loaded, its revisions can no longer be checked.
- **task failure**: any other task failure, with the error and the log link; for a file the
  parser refused, the ``carewatch parse`` command that reproduces it on the raw file, and that
  the version of the period already held (if any) stays in the warehouse.

:func:`on_task_failure` is the ``on_failure_callback`` of every task (``dagkit.default_args``);
it never raises, so a mail outage cannot hide the task's own error. An alert the mail server
does not take waits in ``var/outbox/`` and goes out with the next attempt (:func:`send_quietly`).
"""

from __future__ import annotations

import html
import logging
import os
from dataclasses import dataclass
from functools import lru_cache

import yaml

from carewatch import paths
from carewatch.errors import CarewatchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    subject: str
    html: str


@lru_cache(maxsize=1)
def _settings_file() -> dict:
    return yaml.safe_load((paths.config_dir() / "alerts.yaml").read_text()) or {}


def settings() -> dict:
    out = dict(_settings_file())
    override = os.environ.get("CAREWATCH_ALERT_RECIPIENTS")
    if override:
        out["recipients"] = [r.strip() for r in override.split(",") if r.strip()]
    return out


def _subject(text: str) -> str:
    return f"{settings().get('subject_prefix', '[carewatch]')} {text}"


def _docs_link(docs_url: str | None) -> str | None:
    """The Data Docs page as the reader can open it (``data_docs_base_url`` replaces the local root)."""
    if not docs_url:
        return None
    base = settings().get("data_docs_base_url")
    local_root = "file://" + str(paths.home() / "gx" / "uncommitted" / "data_docs" / "local_site")
    if base and docs_url.startswith(local_root):
        return base.rstrip("/") + docs_url[len(local_root):]
    return docs_url


def _link(label: str, url: str | None) -> str:
    if not url:
        return ""
    return f'<p>{html.escape(label)}: <a href="{html.escape(url)}">{html.escape(url)}</a></p>'


def _expected(result) -> str:
    """What the expectation asked for, in words taken from the suite."""
    from carewatch.validation import shown_expected  # pandas with it: alerts stays light to import

    text = html.escape(result.description or result.expectation)
    return text + (f"<br><small>{html.escape(shown_expected(result.expected))}</small>" if result.expected else "")


def quality_alert(report, *, file_version: int | None = None, sha256: str | None = None, task_url: str | None = None,
                  raw_path: str | None = None, new_versions: list | None = None,
                  waiting_warnings: list | None = None) -> Alert:
    """The email for a validation with failures (``report``: :class:`carewatch.validation.ValidationReport`).
    ``new_versions``, for a warehouse check that refused a build: the versions that build was
    the first to read (:func:`carewatch.warehouse.versions_new_since_last_build`), each with the
    ``carewatch reject`` command that would set it aside.

    For a warehouse check, a blocking failure rolled the build back; a check that only warned
    is emailed by a build that committed (a rolled-back build emails none:
    :func:`carewatch.pipeline.build_warehouse`). ``waiting_warnings``: (check, new warning
    rows) of the other checks of a rolled-back build that only warned; named, not emailed."""
    blocking, warnings = report.blocking_failures, report.warnings
    severity = "BLOCKING" if blocking else "WARNING"
    failed = blocking + warnings
    period = report.period or "(no period)"
    subject = _subject(f"{severity} {report.source} {period}: {len(failed)} expectation{'s' if len(failed) != 1 else ''} failed")
    outcome, what_next = _guidance(report, period, raw_path)
    max_examples = int(settings().get("max_examples", 5))
    rows = []
    for r in failed:
        examples = ", ".join(html.escape(str(x)) for x in r.unexpected_examples[:max_examples])
        observed = [] if r.observed_value is None else [f"observed {html.escape(str(r.observed_value))}"]
        if r.unexpected_count:
            observed.append(f"{r.unexpected_count} offending row{'s' if r.unexpected_count != 1 else ''}")
        rows.append(
            "<tr>"
            f"<td>{r.severity}</td><td><code>{html.escape(r.expectation)}</code>{' [' + html.escape(r.column) + ']' if r.column else ''}</td>"
            f"<td>{_expected(r)}</td><td>{'; '.join(observed) or 'failed'}</td><td>{examples}</td>"
            "</tr>"
        )
    version = f" version {file_version}" if file_version is not None else ""
    body = f"""\
<p><b>{html.escape(report.source)} {html.escape(period)}</b>{version}{' (sha256 ' + sha256[:12] + ')' if sha256 else ''}:
{len(failed)} of {len(report.results)} expectations of suite <code>{html.escape(report.suite)}</code> failed.</p>
<p>{outcome}</p>
<table border="1" cellpadding="4" cellspacing="0">
<tr><th>severity</th><th>expectation</th><th>expected</th><th>observed</th><th>offending rows (examples)</th></tr>
{chr(10).join(rows)}
</table>
{_new_versions(new_versions or [])}
{_waiting_warnings(waiting_warnings or [])}
{_link("Task in the Airflow UI", task_url)}
{_link("Data Docs for this validation", _docs_link(report.docs_url))}
{what_next}
"""
    return Alert(subject, body)


def _new_versions(versions: list, limit: int = 10) -> str:
    """The versions a refused build was the first to read: the likeliest cause when a check
    across sources fails is a new file that passed its own suite."""
    if not versions:
        return ""
    items = []
    for v in versions[:limit]:
        fallback = f"the build would use v{v.previous}" if v.previous is not None else "no earlier version: add --leave-empty"
        items.append(f"<li>{html.escape(v.source)} {html.escape(v.period)} v{v.version}, loaded {v.loaded_at:%Y-%m-%d %H:%M} UTC: "
                     f"<code>carewatch reject {html.escape(v.source)} {html.escape(v.period)} --version {v.version} "
                     f"--reason \"...\"</code> ({fallback})</li>")
    more = f"<li>and {len(versions) - limit} more</li>" if len(versions) > limit else ""
    return (f"<p>This build was the first to read these versions, loaded since the last build that committed; "
            f"if one of them is wrong (it passed its own suite), set it aside:</p>\n<ul>{''.join(items)}{more}</ul>")


def _waiting_warnings(waiting: list) -> str:
    """The warning-only checks of a rolled-back build with rows not emailed before: named here
    (they may explain the refusal), emailed once by the first build that commits with them."""
    if not waiting:
        return ""
    items = "".join(f"<li><code>{html.escape(source)}</code>: {len(rows)} warning row{'s' if len(rows) != 1 else ''} "
                    f"not emailed before</li>" for source, rows in waiting)
    return (f"<p>Other checks of this build only warned:</p>\n<ul>{items}</ul>\n<p>They are not reported now (the "
            f"warehouse they describe was not kept): the first build that commits with those rows emails them, once. "
            f"This build's results are on the Data Docs site.</p>")


def _guidance(report, period: str, raw_path: str | None = None) -> tuple[str, str]:
    """What happened to the data, and how to look into it: a source file (quarantined or
    loaded) is checked again with ``carewatch validate``; a warehouse check (source
    ``check:<name>``, run inside the build task) on the warehouse with ``carewatch check``."""
    blocking = bool(report.blocking_failures)
    recorded = "the results are recorded in <code>validation_results</code>."
    suite = f"<code>expectations/{html.escape(report.suite)}.json</code>"
    if not report.source.startswith("check:"):
        outcome = ("The batch was <b>quarantined</b>: nothing of it reached the warehouse, and the validate task failed."
                   if blocking else f"Only warnings failed: the batch was loaded; {recorded}")
        return outcome, (
            f"<p>Check the file by hand: <code>carewatch validate {html.escape(report.source)} "
            f"{html.escape(str(raw_path)) if raw_path else '&lt;raw file&gt;'} "
            f"--period {html.escape(period)}</code>.\nIf the publication is wrong, wait for its revision; if the "
            f"suite is wrong, fix {suite} in review, then clear the task.</p>")
    name = html.escape(report.source.split(":", 1)[1])
    if blocking:  # the rows that failed were never committed: the examples above show them
        outcome = "The warehouse build was <b>rolled back</b>: readers still see the previous warehouse, and the build task failed."
        rerun = (f"<code>carewatch check {name}</code> runs it on the warehouse as committed, i.e. the previous "
                 f"build, not the rows that failed: those are the examples above and on the Data Docs page.")
    else:
        outcome = f"Only warnings failed: the warehouse build committed; {recorded}"
        rerun = (f"Run it again with <code>carewatch check {name}</code>; see the rows that fail with "
                 f"<code>carewatch check {name} --failing</code>, every row with <code>--rows</code>.")
    return outcome, (
        f"<p>This is a check across the warehouse, not a file: <code>include/sql/checks/{name}.sql</code>. "
        f"{rerun} If the data is wrong at its source, wait for the revision"
        + (" (meanwhile a loaded file that passed its suite but is wrong can be left out of the builds: "
           "<code>carewatch reject SOURCE PERIOD --reason \"...\"</code>, then clear the task: the build uses the "
           "period's previous version)" if blocking else "")
        + f"; if the check or {suite} is wrong, fix it in review{', then clear the task' if blocking else ''}.</p>")


def _cause(error, kind: type | tuple[type, ...]):
    """``error`` if it is a ``kind``, or the ``kind`` it wraps (Airflow's fail-without-retry
    exception is raised from it); else None."""
    for candidate in (error, getattr(error, "__cause__", None)):
        if isinstance(candidate, kind):
            return candidate
    return None


def _failed_at_once(error) -> bool:
    """Airflow's fail-without-retry exception: the task raised it because trying again would fail the same way."""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover - the alerts are always sent from an Airflow install
        return False
    return isinstance(error, AirflowFailException)


def failure_alert(*, dag_id: str, task_id: str, error: BaseException | str, task_url: str | None = None,
                  logical_date=None, map_index: int | None = None, attempts: int | None = None) -> Alert:
    """The email for a task failure that is not a quality failure (overdue or withdrawn publications included).

    ``attempts``: how many times the task ran (the task instance's try number), said in the body
    unless the task failed at once, without its retries."""
    from carewatch.errors import FetchError, ParseError, PublicationOverdue, PublicationWithdrawn

    at_once = _failed_at_once(error)
    error = _cause(error, (PublicationOverdue, PublicationWithdrawn)) or error
    # a refused download or a parse failure names its source, period and problem: the subject
    # says those (a ParseError's text starts with the raw file's long path)
    named = _cause(error, (FetchError, ParseError))
    text = str(error)
    what = f"{dag_id}.{task_id}" + (f"[{map_index}]" if map_index is not None and map_index >= 0 else "")
    if isinstance(error, PublicationOverdue):
        subject = _subject(f"OVERDUE {error.source} {error.period}: publication not found after its due date")
        advice = ("The publication has not appeared. Check the publisher's page; if the file moved, update "
                  "<code>config/sources.yaml</code> (or its URL list) and clear the task. The next monthly run retries.")
    elif isinstance(error, PublicationWithdrawn):
        subject = _subject(f"GONE {error.source} {error.period}: a publication held is no longer at its URL")
        advice = ("The version held stays loaded, but its revisions cannot be checked. Check the publisher's page; if "
                  "the file moved, update <code>config/sources.yaml</code> (or its URL list). Later runs skip this "
                  "period while it answers the same; a new URL is tried and reported afresh.")
    else:
        if named is not None and getattr(named, "period", None):
            step = task_id.rsplit(".", 1)[-1]
            subject = _subject(f"FAILED {named.source} {named.period} {step}: {named.problem.splitlines()[0][:120]}")
        else:
            subject = _subject(f"FAILED {what}: {text.splitlines()[0][:120] if text else type(error).__name__}")
        if isinstance(named, ParseError):
            advice = _parse_advice(named)
        else:
            advice = "Read the task log (link below) and the DAG's documentation in the Airflow UI (what to do when it fails), fix, then clear the task."
    when = f" (logical date {logical_date})" if logical_date else ""
    if at_once:
        how = " without retries: trying again would fail the same way"
    elif attempts:
        how = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    else:
        how = ""
    body = f"""\
<p>Task <b>{html.escape(what)}</b> failed{html.escape(when)}{html.escape(how)}.</p>
<pre>{html.escape(type(error).__name__ if not isinstance(error, str) else 'Error')}: {html.escape(text)}</pre>
<p>{advice}</p>
{_link("Task in the Airflow UI", task_url)}
"""
    return Alert(subject, body)


def _parse_advice(error) -> str:
    """What a parse failure did to the data, and the command that reproduces it (as
    :func:`_guidance` gives for a quarantined file)."""
    source, period = html.escape(error.source), error.period
    held = f"{source} {html.escape(period)}" if period else source
    command = f"carewatch parse {source} {html.escape(error.file)}" + (f" --period {html.escape(period)}" if period else "")
    return (f"The file could not be parsed, so nothing of it was loaded: the version of {held} already in the "
            f"warehouse, if any, stays there and the reports go on using it.</p>\n"
            f"<p>Reproduce it: <code>{command}</code>.\nIf the publication is malformed, wait for its revision; if the "
            f"parser is wrong, fix it in review (a changed parser parses the file again), then clear the task. Later "
            f"runs skip this file without another email, and the run summary lists it (PARSE FAILED) until a later "
            f"version of the period loads.")


def send(alert: Alert) -> list[str]:
    """Send through Airflow's SMTP connection; returns the recipients."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    config = settings()
    recipients = list(config.get("recipients") or [])
    if not recipients:
        log.warning("no alert recipients configured; not sending %r", alert.subject)
        return []
    hook = SmtpHook(smtp_conn_id=config.get("smtp_conn_id", "smtp_default"))
    hook.smtp_connection = hook.get_connection(hook.smtp_conn_id)
    refuse_plain_login(hook, config)
    with hook:
        hook.send_email_smtp(to=recipients, subject=alert.subject, html_content=alert.html, from_email=config.get("from_email"))
    log.info("alert sent to %s: %s", ", ".join(recipients), alert.subject)
    return recipients


# Hosts a login may reach over plain SMTP when alerts.yaml does not say (a mail catcher on
# this machine or the compose stack's Mailpit, never leaving the host or its private network).
PLAIN_SMTP_HOSTS = ["localhost", "127.0.0.1", "::1", "mailpit"]


def refuse_plain_login(hook, config: dict) -> None:
    """Refuse to send the SMTP login in clear text: the connection logs in (a login and a
    password) with neither STARTTLS nor implicit TLS (both ``disable_tls`` and ``disable_ssl``)
    to a host not in ``plain_smtp_hosts``. Judged by the hook's own reading of the connection,
    before it connects; the alert then waits in the outbox (:func:`send_quietly`)."""
    logs_in = bool(hook.smtp_user and hook.smtp_password)
    plain_hosts = {host.lower() for host in config.get("plain_smtp_hosts", PLAIN_SMTP_HOSTS)}  # names ignore case
    if logs_in and not hook.smtp_starttls and not hook.use_ssl and hook.host.lower() not in plain_hosts:
        raise CarewatchError(
            f"the SMTP connection {hook.smtp_conn_id} would send its login ({hook.smtp_user}) unencrypted to "
            f"{hook.host}: use STARTTLS (disable_tls false; compose: CAREWATCH_SMTP_DISABLE_TLS=false) or "
            f"implicit TLS (disable_ssl false), or list the host in plain_smtp_hosts (config/alerts.yaml) "
            f"if it is on this machine's private network")


def send_quietly(alert: Alert) -> bool:
    """Send, logging (not raising) any error: an alert must never mask the failure it reports.

    An alert the mail server does not take is kept in the outbox (``var/outbox/``) and sent by
    a later attempt (:func:`flush_outbox`: before every alert, and at the start of every ingest
    run), so a mail outage delays an alert but never loses it: the pipeline records a failure
    as reported when it fails, and does not email it again. Returns True when the alert was
    sent or kept; False only when it could be neither (the error is logged)."""
    flush_outbox()
    try:
        send(alert)
        return True
    except Exception as err:  # noqa: BLE001 - any mail problem is logged, the task's own outcome stands
        log.exception("could not send alert %r", alert.subject)
        return _keep(alert, err)


def _keep(alert: Alert, err: Exception) -> bool:
    import datetime as dt
    import hashlib
    import json

    outbox = paths.outbox_dir()
    try:
        outbox.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.timezone.utc)
        body = json.dumps({"subject": alert.subject, "html": alert.html, "kept_at": now.isoformat(),
                           "error": f"{err.__class__.__name__}: {err}"})
        name = f"{now:%Y%m%dT%H%M%S%f}-{hashlib.sha256(body.encode()).hexdigest()[:12]}.json"
        partial = outbox / f".{name}.partial"
        partial.write_text(body)
        partial.rename(outbox / name)  # whole or absent: a flush never reads half a message
    except Exception:  # noqa: BLE001 - logged; the task's own outcome stands
        log.exception("could not keep alert %r in the outbox %s either: it is lost", alert.subject, outbox)
        return False
    log.warning("alert %r kept in %s: a later run sends it", alert.subject, outbox / name)
    return True


def outbox() -> list:
    """The alerts waiting in the outbox, oldest first (their files)."""
    directory = paths.outbox_dir()
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


CLAIM_TIMEOUT_SECONDS = 600  # far beyond an SMTP attempt (its connection times out in 30 s)


def _reclaim_abandoned() -> None:
    """Put back alerts claimed by a flush that died mid-send (a killed task): claimed more than
    ``CLAIM_TIMEOUT_SECONDS`` ago (workers on other machines share the outbox, so not by pid)."""
    import time

    for claimed in paths.outbox_dir().glob(".*.json.sending-*"):
        try:
            if time.time() - claimed.stat().st_mtime > CLAIM_TIMEOUT_SECONDS:
                claimed.rename(claimed.with_name(claimed.name[1:].rsplit(".sending-", 1)[0]))
                log.warning("put back alert %s: the flush that claimed it did not finish", claimed.name)
        except FileNotFoundError:  # finished or put back meanwhile
            continue


def flush_outbox() -> tuple[int, int]:
    """Send the alerts waiting in the outbox, oldest first, until the mail server refuses one;
    returns (sent, still waiting). Each is claimed by a rename first, so two tasks flushing at
    once do not send it twice; one that fails goes back for the next attempt."""
    import json

    sent = 0
    try:
        _reclaim_abandoned()
        for kept in outbox():
            claimed = kept.with_name(f".{kept.name}.sending-{os.getpid()}")
            try:
                kept.rename(claimed)
                os.utime(claimed)  # when it was claimed: see _reclaim_abandoned
            except FileNotFoundError:  # another task claimed it
                continue
            try:
                message = json.loads(claimed.read_text())
                alert = Alert(subject=message["subject"], html=message["html"])
            except (ValueError, KeyError, TypeError):  # not one we wrote whole: set aside, not retried forever
                claimed.rename(kept.with_suffix(".unreadable"))
                log.error("outbox file %s is not a kept alert; set aside as %s", kept.name, kept.with_suffix(".unreadable").name)
                continue
            try:
                send(alert)
            except Exception:  # noqa: BLE001 - the server still refuses: keep it and the rest for later
                claimed.rename(kept)
                log.warning("the outbox's alerts wait for the mail server: %d still to send", len(outbox()))
                break
            claimed.unlink()
            sent += 1
            log.info("sent the alert kept at %s: %s", kept.name, alert.subject)
    except OSError:  # the outbox itself is unreadable: the alerts wait; the task's own work goes on
        log.exception("could not go through the outbox %s", paths.outbox_dir())
    return sent, len(outbox())


def notify_warnings(report, *, file_version: int | None = None, sha256: str | None = None, task_url: str | None = None,
                    raw_path: str | None = None) -> bool:
    """Email a validation whose only failures are warnings (the batch loaded), if configured to."""
    if not report.warnings or not settings().get("email_warnings", True):
        return False
    return send_quietly(quality_alert(report, file_version=file_version, sha256=sha256, task_url=task_url, raw_path=raw_path))


def on_task_failure(context) -> None:
    """Airflow ``on_failure_callback``: a quality email for a quarantined batch, else a failure
    email (an overdue publication's not repeated within ``overdue_repeat_days``)."""
    import datetime as dt
    from carewatch.errors import QualityError

    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception") or "unknown error (see the task log)"
    task_url = getattr(ti, "log_url", None)
    emailed = overdue_emailed_recently(error)
    if emailed is not None:
        reported_at, run_id = emailed
        log.warning("not emailed again: this OVERDUE refusal (same period, URL and reason) was emailed at %s UTC by "
                    "run %s, less than overdue_repeat_days (config/alerts.yaml) ago; a later run reminds",
                    f"{reported_at.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M}", run_id)
        return
    quality = _cause(error, QualityError)  # (a failed build's check fails without retries: wrapped)
    if quality is not None and quality.report is not None:
        alert = quality_alert(quality.report, file_version=quality.file_version, sha256=quality.sha256, task_url=task_url,
                              raw_path=getattr(quality, "raw_path", None), new_versions=getattr(quality, "new_versions", None),
                              waiting_warnings=getattr(quality, "waiting_warnings", None))
    else:
        alert = failure_alert(
            dag_id=getattr(ti, "dag_id", "?"), task_id=getattr(ti, "task_id", "?"), error=error, task_url=task_url,
            logical_date=context.get("logical_date"), map_index=getattr(ti, "map_index", None),
            attempts=getattr(ti, "try_number", None),
        )
    if send_quietly(alert):
        _record_refusal(error, context.get("run_id"))


OVERDUE_REPEAT_DAYS = 20  # the default of overdue_repeat_days


def overdue_emailed_recently(error) -> tuple | None:
    """When ``error`` is an overdue publication whose very refusal (same source, period, URL and
    reason) was emailed less than ``overdue_repeat_days`` ago: (when, by which run); else None.
    Monthly runs are a month apart, so each still reminds; the runs of a backfill, or a task
    cleared the same day, do not repeat the email. The task fails all the same. If the record
    cannot be read, None: better a repeated email than a silent failure."""
    import datetime as dt

    from carewatch.errors import PublicationOverdue

    overdue = _cause(error, PublicationOverdue)
    if overdue is None:
        return None
    days = settings().get("overdue_repeat_days", OVERDUE_REPEAT_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        log.error("overdue_repeat_days in config/alerts.yaml is %r, not a whole number of days: emailing", days)
        return None
    if days == 0:
        return None
    try:
        from carewatch import fetch

        return fetch.reported_since(overdue, dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days))
    except Exception:  # noqa: BLE001 - unknown: email it
        log.exception("could not read whether %s %s's OVERDUE was emailed recently: emailing", overdue.source, overdue.period)
        return None


def _record_refusal(error, run_id) -> None:
    """A refused download was emailed (or kept in the outbox, to go out with the next attempt):
    later runs refused the same way skip it (:mod:`carewatch.fetch`)."""
    from carewatch.errors import FetchError

    refusal = _cause(error, FetchError)
    if refusal is None:
        return
    try:
        from carewatch import fetch

        fetch.record_reported(refusal, run_id)
    except Exception:  # noqa: BLE001 - the email went out; without the record the next run emails again
        log.exception("could not record that %s %s's refusal was emailed", refusal.source, refusal.period)
