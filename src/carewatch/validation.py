"""Data-quality checks with Great Expectations (GX Core 1.x), called from our own code.

Suites are JSON files in ``expectations/`` (one per source), reviewed like code. Each
expectation's severity is in its ``meta``: ``blocking`` (the batch must not reach the
warehouse) or ``warning`` (loaded, recorded, reported). Values written as ``"$name"`` are
filled in at run time (``$period``: the period requested; ``$council_codes``: councils of the
reference geography, successors included).

GX is imported inside functions: importing it costs seconds and a few hundred MB, which
DAG parsing must not pay.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pandas as pd

from carewatch import paths


@dataclass
class ExpectationResult:
    expectation: str
    column: str | None
    severity: str
    description: str
    success: bool
    observed_value: object
    unexpected_count: int | None
    unexpected_examples: list

    def line(self) -> str:
        status = "PASS" if self.success else "FAIL"
        detail = ""
        if not self.success:
            parts = []
            if self.observed_value is not None:
                parts.append(f"observed {self.observed_value}")
            if self.unexpected_count:
                parts.append(f"{self.unexpected_count} unexpected, e.g. {self.unexpected_examples[:3]}")
            detail = " (" + "; ".join(parts) + ")" if parts else ""
        column = f" [{self.column}]" if self.column else ""
        return f"{status} {self.severity:<8} {self.expectation}{column}: {self.description}{detail}"


@dataclass
class ValidationReport:
    source: str
    suite: str
    period: str | None
    results: list[ExpectationResult] = field(default_factory=list)

    @property
    def blocking_failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == "blocking"]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.blocking_failures


def load_suite(source: str) -> dict:
    path = paths.expectations_dir() / f"{source}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no expectation suite for {source}: {path}")
    return json.loads(path.read_text())


def _runtime_values(period: str | None) -> dict:
    from carewatch import geography

    changes = geography.code_changes()
    council_codes = sorted(set(geography.councils()["council_code"]) | set(changes.loc[~changes["change"].isin(["recode", "alias"]), "new_code"]))
    values = {"$council_codes": council_codes}
    if period:
        values["$period"] = [pd.Timestamp(period + ("-01" if len(period) == 7 else "")).date().isoformat()]
    return values


def _fill(value, runtime: dict):
    if isinstance(value, str) and value.startswith("$"):
        if value not in runtime:
            raise ValueError(f"suite needs {value} at run time (for $period, pass the period requested)")
        return runtime[value]
    if isinstance(value, dict):
        return {k: _fill(v, runtime) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, runtime) for v in value]
    return value


def _with_iso_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Date columns as ISO text, so suites compare them with plain strings ("2017-02-01")."""
    import datetime as dt

    out = frame.copy()
    for column in out.columns:
        sample = out[column].dropna().head(1)
        if len(sample) and isinstance(sample.iloc[0], (dt.date, pd.Timestamp)):
            out[column] = out[column].map(lambda v: v.isoformat()[:10] if v is not None and not pd.isna(v) else None)
    return out


def validate(source: str, frame: pd.DataFrame, *, period: str | None) -> ValidationReport:
    """Run ``source``'s suite on a tidy frame; nothing is written anywhere."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import great_expectations as gx

    frame = _with_iso_dates(frame)

    data = load_suite(source)
    runtime = _runtime_values(period)
    expectations = [{**e, "kwargs": _fill(e["kwargs"], runtime)} for e in data["expectations"]]
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("carewatch")
        .add_dataframe_asset(source)
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(gx.ExpectationSuite(name=data["name"], expectations=expectations, meta=data.get("meta", {})))
    outcome = batch.validate(suite, result_format="SUMMARY")
    report = ValidationReport(source=source, suite=data["name"], period=period)
    for result in outcome.results:
        config = result.expectation_config
        details = result.result or {}
        report.results.append(
            ExpectationResult(
                expectation=config.type,
                column=config.kwargs.get("column"),
                severity=(config.meta or {}).get("severity", "blocking"),
                description=(config.meta or {}).get("description", ""),
                success=bool(result.success),
                observed_value=details.get("observed_value"),
                unexpected_count=details.get("unexpected_count"),
                unexpected_examples=list(details.get("partial_unexpected_list") or [])[:5],
            )
        )
    return report


RESULTS_DDL = """
create table if not exists validation_results (
    source varchar, period varchar, file_version integer, sha256 varchar, suite varchar,
    expectation varchar, "column" varchar, severity varchar, success boolean,
    observed_value varchar, unexpected_count bigint, unexpected_examples varchar,
    validated_at timestamptz
);
create table if not exists quarantine (
    source varchar, period varchar, file_version integer, sha256 varchar, parsed_path varchar,
    blocking_failures varchar, quarantined_at timestamptz
);
"""


def has_suite(source: str) -> bool:
    return (paths.expectations_dir() / f"{source}.json").is_file()


def store(con, report: ValidationReport, *, file_version: int, sha256: str, parsed_path: str) -> None:
    """Record every result (and a quarantine row if anything blocking failed) in one transaction."""
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    con.execute(RESULTS_DDL)
    con.execute("begin transaction")
    try:
        con.execute("delete from validation_results where source = ? and period = ? and sha256 = ?", [report.source, report.period, sha256])
        for r in report.results:
            con.execute(
                "insert into validation_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [report.source, report.period, file_version, sha256, report.suite, r.expectation, r.column, r.severity,
                 r.success, None if r.observed_value is None else str(r.observed_value), r.unexpected_count,
                 json.dumps([str(x) for x in r.unexpected_examples]), now],
            )
        if not report.ok:
            con.execute(
                "insert into quarantine values (?, ?, ?, ?, ?, ?, ?)",
                [report.source, report.period, file_version, sha256, parsed_path,
                 "; ".join(r.line() for r in report.blocking_failures), now],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
