"""Error types with messages data engineers can act on.

Every error names the source, the file or URL and what is wrong, on one line.
"""

from __future__ import annotations

import datetime


class CarewatchError(Exception):
    """Base class: ``str(err)`` is one line fit for a terminal or an alert."""


class WarehouseBusy(CarewatchError):
    """Another process holds the warehouse file (DuckDB: one writer, and no reader meanwhile).
    ``waiting``: the line a writer prints while it waits for the file."""

    def __init__(self, message: str, waiting: str = ""):
        super().__init__(message)
        self.waiting = waiting or message


class ParseError(CarewatchError):
    """A publication could not be parsed into its tidy schema."""

    def __init__(self, source: str, file: str, problem: str, period: str | None = None):
        self.source = source
        self.file = str(file)
        self.problem = problem
        self.period = period  # the period the file was fetched for, when the pipeline parsed it
        super().__init__(f"{self.file}: cannot parse as {source}: {problem}")


class FetchError(CarewatchError):
    """A download was refused (bad status, wrong content, too big, truncated...).

    ``kind``: the refusal without what varies from one attempt to the next (byte counts, a
    connection error's details); ``problem`` by default. Two refusals of one kind at one URL
    are the same refusal (:class:`AlreadyRefused`). ``body``: what was served, when it was
    read before being refused (the fetch keeps it under ``refused/``). ``transient``: a fault a
    later try may not meet (the connection failed after urllib3's own retries, the download was
    cut short, the server answered 5xx or 429); every other refusal (what was served is not the
    file) would be refused the same way again, so the task fails without Airflow's retries."""

    def __init__(self, source: str, period: str, url: str, problem: str, kind: str | None = None,
                 body: bytes | None = None, transient: bool = False):
        self.source = source
        self.period = period
        self.url = url
        self.problem = problem
        self.kind = kind or problem
        self.body = body
        self.transient = transient
        super().__init__(f"{source} {period}: {problem} ({url})")


class PublicationOverdue(FetchError):
    """The publication has not appeared ``grace_days`` after it was due (HTTP 404): retrying
    within the run cannot help; the next monthly run tries again. Alerted as OVERDUE."""


class PublicationWithdrawn(FetchError):
    """A period already held answers HTTP 404: the publisher moved or withdrew the file, so its
    revisions cannot be checked. The held version stays, and stays loaded; retrying within
    the run cannot help. Emailed by the first run that meets it (later runs: AlreadyRefused)."""


class AlreadyRefused(CarewatchError):
    """A period already held in the raw store, re-checked for a revision, was refused at the
    same URL for the same reason as in an earlier run whose failure was emailed, and in every
    run since. The held version stays; the task is skipped, not failed and emailed again
    every month. A period not held yet (the month the run is due for) is never skipped so."""

    def __init__(self, source: str, period: str, url: str, problem: str, since):
        self.source = source
        self.period = period
        self.url = url
        self.problem = problem
        since = since.astimezone(datetime.timezone.utc) if getattr(since, "tzinfo", None) else since
        super().__init__(f"{source} {period}: refused as in an earlier run (emailed {since:%Y-%m-%d %H:%M} UTC; "
                         f"the version held is kept): {problem} ({url})")


class NotPublishedYet(CarewatchError):
    """The publication for this period does not exist yet (HTTP 404 on a future period)."""

    def __init__(self, source: str, period: str, url: str):
        self.source = source
        self.period = period
        self.url = url
        super().__init__(f"{source} {period}: not published yet ({url} answered 404)")


class QualityError(CarewatchError):
    """A batch failed a blocking expectation: quarantined, not loaded."""

    def __init__(self, source: str, period: str, failures: list[str], *, report=None, file_version: int | None = None,
                 sha256: str | None = None, raw_path: str | None = None, new_versions: list | None = None,
                 waiting_warnings: list | None = None):
        self.source = source
        # a warehouse check: the versions the refused build was the first to read
        # (carewatch.warehouse.versions_new_since_last_build), named in the email
        self.new_versions = new_versions or []
        # and the other checks of that build that only warned: (check, warning rows not emailed before)
        self.waiting_warnings = waiting_warnings or []
        self.period = period
        self.failures = failures
        self.report = report  # the full ValidationReport, for the alert email
        self.file_version = file_version
        self.sha256 = sha256
        self.raw_path = raw_path  # the raw file validated, named in the email's command
        super().__init__(f"{source} {period}: quarantined, {len(failures)} blocking expectation(s) failed: " + " | ".join(failures))


class AlreadyQuarantined(CarewatchError):
    """This very file failed this very validation before: still quarantined, not loaded, and
    not validated or emailed again (the ingest task is skipped, so the run goes on)."""

    def __init__(self, source: str, period: str, when: str, failures: list[str]):
        self.source = source
        self.period = period
        super().__init__(f"{source} {period}: {self._what(when)}: " + " | ".join(failures))

    @staticmethod
    def _what(when: str) -> str:
        return f"this file failed the same validation at {when} (already reported; still quarantined, not loaded)"


class StillQuarantined(AlreadyQuarantined):
    """This quarantined file was validated again, because its validation changed (history,
    suite, reference data or parser), and failed only blocking expectations, with thresholds,
    already reported since it was quarantined (``when``): still quarantined, not loaded, not
    emailed again."""

    @staticmethod
    def _what(when: str) -> str:
        return (f"validated again (its history, suite, reference data or parser changed) and failed only "
                f"expectations already reported since it was quarantined at {when} (still quarantined, not loaded)")


class AlreadyUnparseable(CarewatchError):
    """This very file failed this very parser before (same sha256, same parser fingerprint):
    not parsed or emailed again; the ingest task is skipped so the run goes on. A new version
    of the file, or a parser fix, is parsed afresh."""

    def __init__(self, source: str, period: str, marker: str, message: str):
        self.source = source
        self.period = period
        super().__init__(f"{source} {period}: this file could not be parsed before (already reported; "
                         f"not loaded; {marker}): {message}")


class SuiteError(CarewatchError, ValueError):
    """An expectation suite (``expectations/<name>.json``) that cannot be used as written: not
    JSON, an expectation GX does not know or refuses (a misspelt or missing argument, a value
    out of its domain), a run-time value or a derivation that does not exist. Names the suite
    file, the expectation and what is wrong, on one line; nothing is validated with it."""


class NoUpstreamResult(CarewatchError):
    """A per-period ingest task was handed no result by the task before it (fetch -> parse ->
    validate -> load): that task did not run to success, it was marked success by hand (the
    Airflow UI's "Mark as success", which also reruns the tasks after it). Nothing is done
    with the period: a file is loaded only after its own validate passed."""

    def __init__(self, source: str, period: str | None, task: str, upstream: str):
        self.source = source
        self.period = period
        where = f"{source} {period}" if period else source
        super().__init__(f"{where}: nothing {_DONE.get(task, task + 'd')}: {upstream} did not pass (marked success by hand?); "
                         f"clear {upstream} to run it again")


_DONE = {"parse": "parsed", "validate": "validated", "load": "loaded"}


class NotEnoughHistory(CarewatchError):
    """The warehouse does not yet hold the periods a step needs (e.g. 12 complete months to rank)."""



class MissingProjectFile(CarewatchError, FileNotFoundError):
    """A file the project itself must provide for a source (its expectation suite, its landing
    table's DDL) is not where it should be: a deployment or a new source is incomplete. Nothing
    of that source is validated or loaded without it."""


class ConfigError(CarewatchError, ValueError):
    """Methodology configuration (``config/metrics.yaml``, ``config/methodology/``,
    ``config/review_flags.yaml``, ``config/targets/``, ``config/peer_groups.yaml`` and a peer-group
    file) that cannot be used as written. ``problems``: one line each, naming the file and the key
    (``config/methodology/dashboard-2018.yaml: metrics[0].weight must be a number, not 'three'``);
    ``str(err)`` is those lines. The same file would be refused again: a task fails without retries."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ConfigChangedUnderLabel(ConfigError):
    """A methodology, review-flag rule set or target set file whose parsed content differs from
    what an earlier analysis recorded under the same ``name@vN`` (``analysis_config``): it is
    refused, not published under the old label. Retrying cannot help: the metrics DAG fails
    the task at once (as any :class:`ConfigError`); bumping ``version`` in the file (or
    restoring it) is the fix."""

    def __init__(self, message: str):
        super().__init__([message])
