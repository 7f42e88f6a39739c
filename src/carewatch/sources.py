"""The source catalogue (``config/sources.yaml``): publications, periods, URLs, due dates.

Light on imports: DAG files read the catalogue at parse time.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from carewatch import paths

CADENCES = ("monthly", "annual_fy", "annual_mid_year")


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    publisher: str
    cadence: str
    first_period: str
    last_period: str | None
    format: str
    parser: str
    loads_to_warehouse: bool
    schedule: str
    due: dict
    revision_window: int
    max_bytes: int
    content_types: tuple[str, ...]
    urls: dict
    timeout_seconds: dict = field(default_factory=dict)
    retry: dict = field(default_factory=dict)
    grace_days: int = 14
    feeds_metrics: bool = False
    max_sheets: int = 50
    max_cells: int = 2_000_000
    supersedes_earlier: bool = False

    def env_urls(self, env: str | None = None) -> dict:
        env = env or environment()
        if env not in self.urls:
            raise KeyError(f"source {self.name!r} has no URLs for environment {env!r}")
        return self.urls[env]

    def available_from(self, env: str | None = None) -> str:
        return self.env_urls(env).get("available_from") or self.first_period

    def allowed_hosts(self, env: str | None = None) -> list[str]:
        return list(self.env_urls(env).get("allowed_hosts", []))


def environment() -> str:
    return os.environ.get("CAREWATCH_ENV", "embedded")


@lru_cache(maxsize=4)
def _load(config_dir: str) -> tuple[dict, dict[str, Source]]:
    data = yaml.safe_load((paths.config_dir() / "sources.yaml").read_text())
    defaults = data.get("defaults", {})
    out = {}
    for name, entry in data["sources"].items():
        if entry["cadence"] not in CADENCES:
            raise ValueError(f"sources.yaml: {name}: cadence must be one of {CADENCES}")
        out[name] = Source(
            name=name,
            title=entry["title"],
            publisher=entry["publisher"],
            cadence=entry["cadence"],
            first_period=str(entry["first_period"]),
            last_period=None if entry.get("last_period") is None else str(entry["last_period"]),
            format=entry["format"],
            parser=entry["parser"],
            loads_to_warehouse=bool(entry.get("loads_to_warehouse", True)),
            schedule=entry["schedule"],
            due=entry["due"],
            revision_window=int(entry.get("revision_window", 0)),
            max_bytes=int(entry["max_bytes"]),
            content_types=tuple(entry.get("content_types", [])),
            urls=entry["urls"],
            timeout_seconds=entry.get("timeout_seconds", defaults.get("timeout_seconds", {})),
            retry=entry.get("retry", defaults.get("retry", {})),
            grace_days=int(entry.get("grace_days", defaults.get("grace_days", 14))),
            feeds_metrics=bool(entry.get("feeds_metrics", False)),
            max_sheets=int(entry.get("max_sheets", defaults.get("max_sheets", 50))),
            max_cells=int(entry.get("max_cells", defaults.get("max_cells", 2_000_000))),
            supersedes_earlier=bool(entry.get("supersedes_earlier", False)),
        )
    return data, out


def catalogue() -> dict[str, Source]:
    return _load(str(paths.config_dir()))[1]


def metric_sources() -> list[str]:
    """The sources whose landed Assets the metrics DAG waits for (``feeds_metrics: true``), in
    catalogue order."""
    return [name for name, src in catalogue().items() if src.feeds_metrics]


def get(name: str) -> Source:
    try:
        return catalogue()[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(catalogue()))}") from None


def parser_for(name: str) -> str:
    """A source name's parser (a parser name is accepted as itself)."""
    if name in catalogue():
        return catalogue()[name].parser
    from carewatch import parsers

    if name in parsers.names():
        return name
    hint = "; a record-level HES APC extract is read by `carewatch hes-metrics`" if name == "hes_apc" else ""
    raise KeyError(f"unknown source or parser {name!r}; sources: {', '.join(sorted(catalogue()))}{hint}")


def _embedded_date(key: str) -> dt.date:
    value = _load(str(paths.config_dir()))[0]["embedded"][key]
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def embedded_run_date() -> dt.datetime:
    """The logical date of the monthly run ``make run`` performs on the embedded samples."""
    day = _embedded_date("run_date")
    return dt.datetime(day.year, day.month, day.day, 9, tzinfo=dt.timezone.utc)


def embedded_samples_until() -> dt.date:
    """The embedded samples hold every period published by this date."""
    return _embedded_date("samples_until")


# --- periods -------------------------------------------------------------------------

PERIOD_FORMATS = {"monthly": (r"\d{4}-(0[1-9]|1[0-2])", "YYYY-MM, e.g. 2018-03"),
                  "annual_fy": (r"\d{4}-\d{2}", "YYYY-YY, e.g. 2016-17"),
                  "annual_mid_year": (r"\d{4}", "YYYY, e.g. 2017")}


def check_period(source: str, period: str) -> str:
    """``period`` if it is written as ``source``'s periods are, else a one-line error."""
    import re

    from carewatch.errors import CarewatchError

    pattern, example = PERIOD_FORMATS[get(source).cadence]
    ok = re.fullmatch(pattern, str(period)) is not None
    if ok and get(source).cadence == "annual_fy":
        ok = (int(period[:4]) + 1) % 100 == int(period[5:])
    if not ok:
        raise CarewatchError(f"{source}: period {period!r} should be written {example}")
    return period


def month_start(text: str | None, option: str) -> dt.date | None:
    """``YYYY-MM`` -> its first day; None when not given; a one-line error naming ``option``
    otherwise (the CLI's month arguments)."""
    import re

    from carewatch.errors import CarewatchError

    if text is None:
        return None
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text) or int(text[:4]) == 0:
        raise CarewatchError(f"{option} {text!r} is not a month (YYYY-MM)")
    return dt.date(int(text[:4]), int(text[5:7]), 1)


def period_start(source: str, period: str) -> dt.date:
    cadence = get(source).cadence
    if cadence == "monthly":
        return dt.date(int(period[:4]), int(period[5:7]), 1)
    if cadence == "annual_fy":
        return dt.date(int(period[:4]), 4, 1)
    return dt.date(int(period), 7, 1)  # mid-year estimate: the year from 30 June


def financial_year_start(day: dt.date) -> int:
    """The calendar year in which the financial year (April to March) holding ``day`` starts."""
    return day.year if day.month >= 4 else day.year - 1


def financial_year(day: dt.date) -> str:
    """The financial year holding ``day``, as publications write it: "2016-17"."""
    first = financial_year_start(day)
    return f"{first}-{(first + 1) % 100:02d}"


def period_label(period_type: str, start, month_format: str = "%b %Y") -> str:
    """A fct_metric_values period in words: "2016-17" (financial year), "12 months to Mar 2018"
    (a rolling year, named by its last month), "Mar 2018" (a month)."""
    if period_type == "financial_year":
        return financial_year(start)
    if period_type == "rolling_12m":
        return f"12 months to {start:{month_format}}"
    return f"{start:{month_format}}"


def _format(cadence: str, start: dt.date) -> str:
    if cadence == "monthly":
        return f"{start:%Y-%m}"
    if cadence == "annual_fy":
        return financial_year(start)
    return str(start.year)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def periods(source: str, start: str, end: str | None) -> list[str]:
    """Every period of ``source`` from ``start`` to ``end`` inclusive (``end`` None: up to today)."""
    src = get(source)
    step = 1 if src.cadence == "monthly" else 12
    first = period_start(source, start)
    last = period_start(source, end) if end else dt.date.today()
    out = []
    current = first
    while current <= last:
        out.append(_format(src.cadence, current))
        current = _add_months(current, step)
    return out


def earlier_period(source: str, period: str, count: int) -> str:
    """The period ``count`` periods of ``source``'s cadence before ``period``, as the source
    writes it (``ons_mye`` "2017", 1 -> "2016"; 0 gives ``period`` itself)."""
    src = get(source)
    step = 1 if src.cadence == "monthly" else 12
    return _format(src.cadence, _add_months(period_start(source, period), -step * count))


def due_date(source: str, period: str) -> dt.date:
    """The day ``period`` of ``source`` is expected to be published."""
    rule = get(source).due
    month = _add_months(period_start(source, period), int(rule["months_after_start"]))
    day = rule.get("day", 1)
    if day == "second_thursday":
        first_thursday = 1 + (calendar.THURSDAY - month.weekday()) % 7
        return month.replace(day=first_thursday + 7)
    return month.replace(day=int(day))


# --- URLs ----------------------------------------------------------------------------

@lru_cache(maxsize=32)
def _read_url_list(full: str) -> dict[str, str]:
    path = Path(full)
    if not path.is_file():  # a list named but not there is a mistake, not "no URLs listed"
        raise FileNotFoundError(f"sources.yaml names the url_list {path}, which does not exist "
                                f"(url_list paths are relative to the config directory, {paths.config_dir()})")
    with path.open(newline="") as handle:
        return {row["period"]: row["url"] for row in csv.DictReader(handle)}


def _url_list(urls: dict) -> dict[str, str]:
    """The environment's per-period URL list (``url_list``: a CSV relative to the config directory)."""
    return _read_url_list(str(paths.config_dir() / urls["url_list"])) if urls.get("url_list") else {}


def _url_fields(source: str, period: str, base_url: str | None) -> dict:
    start = period_start(source, period)
    return {"base_url": (base_url or "").rstrip("/"), "period": period, "start": start,
            "due": due_date(source, period), "fy": financial_year(start)}


@dataclass(frozen=True)
class PageLink:
    """Where a period's file is found: the link on the publication page ``page`` whose text
    starts with ``text`` (case and spacing aside)."""

    page: str
    text: str


def page_link(source: str | Source, period: str, env: str | None = None, base_url: str | None = None) -> PageLink | None:
    """The publication page to read for ``period``'s download link, when the environment has an
    ``index_page`` and its ``url_list`` does not name the period's URL; else None."""
    src = source if isinstance(source, Source) else get(source)
    urls = src.env_urls(env)
    if period in _url_list(urls) or not urls.get("index_page"):
        return None
    fields = _url_fields(src.name, period, base_url)
    return PageLink(urls["index_page"].format(**fields), urls["link_text"].format(**fields))


def accepted_files() -> set[tuple[str, str, str]]:
    """(source, period, sha256) of files a data engineer has checked and accepted for a period
    although another period holds the very same file (``config/accepted_files.csv``)."""
    path = paths.config_dir() / "accepted_files.csv"
    if not path.is_file():
        return set()
    with path.open(newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return {(row["source"], row["period"], row["sha256"]) for row in rows}


def url_for(source: str | Source, period: str, env: str | None = None, base_url: str | None = None) -> str:
    """The period's download URL from the environment's ``url_list`` or its ``pattern`` (a source
    whose files are found on a publication page: :func:`page_link`)."""
    src = source if isinstance(source, Source) else get(source)
    source = src.name
    urls = src.env_urls(env)
    listed = _url_list(urls)
    if period in listed:
        return listed[period]
    pattern = urls.get("pattern")
    if not pattern:
        raise ValueError(f"{source}: the {env or environment()} URLs have no pattern for {period} (and no url_list row)")
    if "{base_url}" in pattern and not base_url:
        raise ValueError(f"{source}: the {env or environment()} URL pattern needs a base_url")
    return pattern.format(**_url_fields(source, period, base_url))
