"""Data-quality checks with Great Expectations (GX Core 1.x), called from our own code.

Suites are JSON files in ``expectations/`` (one per source), reviewed like code. Each
expectation's severity is in its ``meta``: ``blocking`` (the batch must not reach the
warehouse) or ``warning`` (loaded, recorded, reported). Values written as ``"$name"`` are
filled in at run time (``$period``: the period requested; ``$council_codes``: councils of the
reference geography, successors included; ``$hwb_codes``: health and wellbeing board areas, successors included; ``$hwb_count`` and
``$council_count``: how many HWB areas and councils were in force (``$council_codes_in_force``:
which councils) when the period started,
or when it was published if the suite's ``meta.geography_as_of`` is ``publication``, or the day
before the period started if it is ``eve_of_period``; ``$council_codes_reporting`` and
``$council_count_reporting``: those as DTOC and ASCOF rows code them (a pure recode keeps its
2017 code: :func:`carewatch.geography.resolve_council`), less the suite's ``meta.councils_without_rows``;
``$council_codes_abolished``: councils a boundary change ended as the period began;
monthly periods also give ``$period_start``, the ISO first day, and ``$months_from_first``,
how many months the catalogue's series holds up to the period).

Checks that span rows (parts adding up to a total, a numerator against its denominator, a
value against the area's own history) are written as *derived columns*: a suite lists in
``meta.derive`` the derivations it needs (:data:`DERIVATIONS`), each adds one column to the
frame, and ordinary column expectations in the suite test it, with their severity and
thresholds in the suite like any other.

GX is imported inside functions: importing it costs seconds and a few hundred MB, which
DAG parsing must not pay.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from carewatch import paths, warehouse
from carewatch.errors import CarewatchError, MissingProjectFile, SuiteError


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
    expected: str = ""
    # every failing row: (its label (the suite's row_label values), its judged values), when
    # asked for (`carewatch check NAME --failing`, the warehouse checks' warnings); not recorded
    failing_rows: list = field(default_factory=list)

    def __post_init__(self):
        # as text, as validation_results records them: a reused result reads the same
        self.unexpected_examples = [str(x) for x in self.unexpected_examples]

    def line(self) -> str:
        status = "PASS" if self.success else "FAIL"
        detail = ""
        if not self.success:
            parts = []
            if self.observed_value is not None:
                parts.append(f"observed {self.observed_value}")
            if self.unexpected_count:
                parts.append(f"{self.unexpected_count} unexpected, e.g. {', '.join(self.unexpected_examples[:3])}")
            detail = " (" + "; ".join(parts) + ")" if parts else ""
        column = f" [{self.column}]" if self.column else ""
        return f"{status} {self.severity:<8} {self.expectation}{column}: {self.description}{detail}"


@dataclass
class ValidationReport:
    source: str
    suite: str
    period: str | None
    docs_url: str | None = None
    results: list[ExpectationResult] = field(default_factory=list)
    # what went into the validation (see :class:`PreparedBatch`); when the report was read back
    # from ``validation_results`` instead of run again, when that validation ran
    key: str | None = None
    reused_from: str | None = None

    @property
    def blocking_failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == "blocking"]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.blocking_failures


def require_suite(source: str) -> Path:
    """The source's suite file; MissingProjectFile when a deployment or a new source lacks it
    (nothing of the source is then validated or loaded)."""
    path = paths.expectations_dir() / f"{source}.json"
    if not path.is_file():
        raise MissingProjectFile(f"no expectation suite for {source}: {path}, so nothing of it is validated or loaded "
                                 f"(see expectations/README.md; deployed, is CAREWATCH_ROOT the project checkout?)")
    return path


def load_suite(source: str) -> dict:
    """The suite's JSON; SuiteError (one line, naming the file) when it is not a suite."""
    path = require_suite(source)
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise SuiteError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("expectations"), list):
        raise SuiteError(f"{path}: not an expectation suite (a JSON object with a name and a list of expectations)")
    return data


def _expectation_name(number: int, expectation) -> str:
    """How an error names an expectation: its place in the suite, its type and column."""
    if not isinstance(expectation, dict):
        return f"expectation {number}"
    kwargs = expectation.get("kwargs") if isinstance(expectation.get("kwargs"), dict) else {}
    column = f" [{kwargs['column']}]" if isinstance(kwargs.get("column"), str) else ""
    return f"expectation {number} ({expectation.get('type', 'no type')}{column})"


def _gx_message(err: Exception) -> str:
    """GX's complaint on one line (a pydantic error lists each field on lines of its own)."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        try:
            return "; ".join(f"{'.'.join(str(part) for part in e['loc'] if part != '__root__') or 'arguments'}: {e['msg']}"
                             for e in errors())
        except (TypeError, KeyError):
            pass
    return " ".join(str(getattr(err, "message", None) or err).split()) or type(err).__name__


def gx_expectations(suite_file: Path, expectations: list) -> list:
    """Each expectation of a suite as a GX expectation, or SuiteError naming the suite file,
    the expectation and GX's message. (GX's own ``ExpectationSuite`` only logs an unknown
    expectation type and leaves the expectation out: the suite would run without it.)"""
    from great_expectations.exceptions import ExpectationNotFoundError, GreatExpectationsError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    built = []
    for number, expectation in enumerate(expectations, start=1):
        try:
            built.append(ExpectationConfiguration(**expectation).to_domain_obj())
        except (GreatExpectationsError, ValueError, TypeError) as err:  # (pydantic's ValidationError is a ValueError)
            problem = f"not an expectation GX knows ({_gx_message(err)})" if isinstance(err, ExpectationNotFoundError) else _gx_message(err)
            raise SuiteError(f"{suite_file}: {_expectation_name(number, expectation)}: {problem}") from None
    return built


def _map_runtime(value, replace):
    """``value`` (an expectation's kwargs: nested dicts and lists) with each run-time value
    (a ``"$name"`` string) replaced by ``replace(name)``."""
    if isinstance(value, str) and value.startswith("$"):
        return replace(value)
    if isinstance(value, dict):
        return {k: _map_runtime(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_runtime(v, replace) for v in value]
    return value


def _names(value) -> set[str]:
    """The run-time values (``"$name"``) a suite's kwargs name."""
    named: set[str] = set()
    _map_runtime(value, named.add)
    return named


def check_suite(name: str) -> int:
    """Check that suite ``name`` builds in GX (each run-time value standing in as a suite
    parameter), names only run-time values and derivations that exist, writing nothing;
    returns how many expectations it has, or raises SuiteError. Validating checks the same
    with the values filled in."""
    from carewatch import sources

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    suite_file = require_suite(name)
    data = load_suite(name)
    meta = data.get("meta", {})
    _check_derivations(suite_file, meta)
    # the values validation fills in for this suite: a source's (its cadence decides which:
    # $period_start only for a monthly one), or a warehouse check's (no period)
    source = sources.catalogue().get(name)
    known = sorted(_runtime_values(source.first_period, name, meta.get("geography_as_of", "period_start"),
                                   meta.get("councils_without_rows", ()))
                   if source is not None else _runtime_values(None))
    for number, spec in enumerate(meta.get("derive", []), start=1):
        unknown = sorted(_names(spec) - set(known))
        if unknown:
            raise SuiteError(f"{suite_file}: meta.derive {number} ({spec.get('name')}): no run-time value "
                             f"{', '.join(unknown)} here (known: {', '.join(known)})")
    for number, e in enumerate(data["expectations"], start=1):
        unknown = sorted(_names(e.get("kwargs")) - set(known)) if isinstance(e, dict) else []
        if unknown:
            raise SuiteError(f"{suite_file}: {_expectation_name(number, e)}: no run-time value {', '.join(unknown)} "
                             f"here (known: {', '.join(known)})")
    # each run-time value standing in as a GX suite parameter: the suite builds without a batch
    as_parameters = [{**e, "kwargs": _map_runtime(e.get("kwargs"), lambda v: {"$PARAMETER": v[1:]})} if isinstance(e, dict) else e
                     for e in data["expectations"]]
    return len(gx_expectations(suite_file, as_parameters))


def _check_derivations(suite_file: Path, meta: dict) -> None:
    for number, spec in enumerate(meta.get("derive", []), start=1):
        if not isinstance(spec, dict) or spec.get("derivation") not in DERIVATIONS:
            what = spec.get("derivation") if isinstance(spec, dict) else spec
            raise SuiteError(f"{suite_file}: meta.derive {number}: unknown derivation "
                             f"{what!r}; known: {', '.join(DERIVATIONS)}")
    if meta.get("geography_as_of", "period_start") not in GEOGRAPHY_AS_OF:
        raise SuiteError(f"{suite_file}: meta.geography_as_of: {meta['geography_as_of']!r} is not one of "
                         f"{', '.join(GEOGRAPHY_AS_OF)}")


def _period_value(period: str):
    """The period requested as the tidy frames write it: ISO date, mid-year or financial year."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", period):
        return period
    if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        return f"{period}-01"
    if re.fullmatch(r"\d{4}", period):
        return int(period)
    return period  # financial year "2017-18"


GEOGRAPHY_AS_OF = ("period_start", "eve_of_period", "publication")


def _runtime_values(period: str | None, source: str | None = None, geography_as_of: str = "period_start",
                    without_rows: tuple[str, ...] | list[str] = ()) -> dict:
    """The run-time values of a suite. ``geography_as_of`` (a suite's ``meta.geography_as_of``):
    the councils in force when the period started (``period_start``), the day before it
    started (``eve_of_period``: a council abolished as the month began still has its row that
    month, as in DTOC's April 2019 files) or at release (``publication``). ``without_rows``
    (``meta.councils_without_rows``): councils the source never has a row for (the Isles of
    Scilly in DTOC), left out of ``$council_codes_reporting`` and ``$council_count_reporting``
    (the councils coded as the DTOC and ASCOF parsers code a row: its 2017 code after a pure
    recode)."""
    from carewatch import geography, sources

    changes = geography.code_changes()
    successors = set(changes.loc[~changes["change"].isin(["recode", "alias"]), "new_code"])
    values = {
        "$council_codes": sorted(set(geography.councils()["council_code"]) | successors),
        "$hwb_codes": sorted(set(geography.hwb_areas()["hwb_code"]) | successors),
    }
    if period:
        values["$period"] = [_period_value(period)]
        # the areas in force when the period started (or, e.g. for ONS estimates, at release)
        start = sources.period_start(source, period)
        on = {"publication": lambda: sources.due_date(source, period),
              "eve_of_period": lambda: start - dt.timedelta(days=1)}.get(geography_as_of, lambda: start)()

        def councils_on(day: dt.date) -> set[str]:
            return {c for h in geography.councils()["council_code"] for c in geography.current_code(h, day)}

        in_force = sorted(councils_on(on))
        values["$council_codes_in_force"] = in_force
        values["$council_count"] = len(in_force)
        values["$council_count_and_england"] = len(in_force) + 1
        # as a DTOC or ASCOF row names them (geography.resolve_council: a pure recode such as
        # Buckinghamshire's E06000060 of 2020 keeps its 2017 code E10000002)
        reporting = sorted({geography.resolve_council(c) or c for c in in_force} - set(without_rows))
        values["$council_codes_reporting"] = reporting
        values["$council_count_reporting"] = len(reporting)
        # councils a boundary change ended as the period began: in force the day before it, not on its first day
        values["$council_codes_abolished"] = sorted(councils_on(start - dt.timedelta(days=1)) - councils_on(start))
        values["$hwb_count"] = len({c for h in geography.hwb_areas()["hwb_code"] for c in geography.current_code(h, on)})
        if sources.get(source).cadence == "monthly":
            values["$period_start"] = f"{period}-01"
            values["$months_from_first"] = len(sources.periods(source, sources.get(source).first_period, period))
    return values


# --- derived columns ------------------------------------------------------------------------
# Each derivation adds one column; rows it does not apply to get null, which column
# expectations ignore. ``history`` is a callable (spec) -> frame of the area's earlier
# periods' values (see :func:`warehouse_history`), or None when there is no warehouse.

def _parts_minus_total(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """On each total row of a breakdown: sum of the breakdown's parts minus the total. The
    total row is the one whose ``spec.category`` column says ``spec.total`` (default "total";
    e.g. ``row_type`` "england": the council and special rows' sum minus England's)."""
    keys = spec["keys"]
    scope = frame[frame.eval(spec["where"])] if spec.get("where") else frame
    part = scope[spec["category"]] != spec.get("total", "total")
    sums = scope[part].groupby(keys, dropna=False)[spec["value"]].sum(min_count=1).rename("_parts")
    totals = scope[~part].join(sums, on=keys)
    out = pd.Series(float("nan"), index=frame.index)
    out.loc[totals.index] = totals["_parts"] - totals[spec["value"]]
    return out


def _matching_value(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """On ``spec.this`` rows (where ``spec.where`` holds): the value of the ``spec.other`` row
    with the same ``spec.keys`` (e.g. a numerator row's denominator)."""
    column, keys, value = spec["column"], spec["keys"], spec["value"]
    scope = frame[frame.eval(spec["where"])] if spec.get("where") else frame
    other = scope[scope[column] == spec["other"]].drop_duplicates(keys).set_index(keys)[value].rename("_other")
    rows = scope[scope[column] == spec["this"]]
    joined = rows.join(other, on=keys)
    out = pd.Series(float("nan"), index=frame.index)
    out.loc[joined.index] = joined["_other"]
    return out


def _fraction(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """The fractional part of a count (0 for whole numbers), on rows where ``spec.where`` holds."""
    values = frame[spec["value"]]
    out = values - values.round()
    if spec.get("where"):
        out = out.where(frame.eval(spec["where"]))
    return out


def _ratio_to_trailing_median(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """On the rows where ``spec.where`` holds: value over the area's median of the previous
    ``spec.months`` months (or ``spec.periods`` periods of the source's cadence, e.g. 1: the
    previous mid-year estimate) in the warehouse (null without history, e.g. an area code new
    after a boundary change). With ``spec.sum_per_area``, the area's rows are summed first,
    in this period and in each earlier one (an area's population aged 18+ from its single
    years of age), and each of its rows carries the area's ratio."""
    out = pd.Series(float("nan"), index=frame.index)
    if history is None:
        return out
    earlier = history(spec)
    if earlier is None or earlier.empty:
        return out
    medians = earlier.groupby(spec["area"])["value"].median().rename("_median")
    rows = frame[frame.eval(spec["where"])]
    if spec.get("sum_per_area"):
        totals = rows.groupby(spec["area"])[spec["value"]].sum(min_count=1).rename("_value")
        rows = rows[[spec["area"]]].join(totals, on=spec["area"]).rename(columns={"_value": spec["value"]})
    joined = rows.join(medians, on=spec["area"])
    ratio = joined[spec["value"]] / joined["_median"].where(joined["_median"] > 0)
    out.loc[joined.index] = ratio
    return out


def _in_set(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """On the rows where ``spec.where`` holds: 1 where ``spec.column`` is one of ``spec.values``
    (e.g. ``$council_codes_abolished``), else 0; null elsewhere."""
    out = frame[spec["column"]].isin(list(spec["values"])).astype("float64")
    if spec.get("where"):
        out = out.where(frame.eval(spec["where"]))
    return out


def _group_size(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """On every row: how many rows share its ``spec.keys`` (e.g. ages per area)."""
    return frame.groupby(spec["keys"], dropna=False)[spec["keys"][0]].transform("size")


def _distinct_in_scope(frame: pd.DataFrame, spec: dict) -> tuple[pd.Series, int]:
    """On the rows where ``spec.where`` holds: how many distinct ``spec.count`` values the rows
    sharing its ``spec.keys`` have (NaN elsewhere); and how many the whole scope has."""
    scope = frame[frame.eval(spec["where"])] if spec.get("where") else frame
    out = pd.Series(float("nan"), index=frame.index)
    out.loc[scope.index] = scope.groupby(spec["keys"], dropna=False)[spec["count"]].transform("nunique")
    return out, scope[spec["count"]].nunique()


def _distinct_count(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """On the rows where ``spec.where`` holds: how many distinct ``spec.count`` values the rows
    sharing its ``spec.keys`` have (e.g. councils per sheet of a workbook)."""
    return _distinct_in_scope(frame, spec)[0]


def _distinct_missing(frame: pd.DataFrame, spec: dict, history) -> pd.Series:
    """On the rows where ``spec.where`` holds: how many of the file's distinct ``spec.count``
    values the rows sharing its ``spec.keys`` lack (e.g. councils a sheet leaves out)."""
    per_group, in_file = _distinct_in_scope(frame, spec)
    return in_file - per_group


DERIVATIONS = {
    "distinct_count": _distinct_count,
    "distinct_missing": _distinct_missing,
    "group_size": _group_size,
    "parts_minus_total": _parts_minus_total,
    "matching_value": _matching_value,
    "fraction": _fraction,
    "in_set": _in_set,
    "ratio_to_trailing_median": _ratio_to_trailing_median,
}


def _derive(frame: pd.DataFrame, specs: list[dict], history) -> pd.DataFrame:
    if not specs:
        return frame
    out = frame.copy()
    for spec in specs:
        if spec["derivation"] not in DERIVATIONS:
            raise ValueError(f"suite asks for unknown derivation {spec['derivation']!r}; known: {', '.join(DERIVATIONS)}")
        if frame.empty:  # nothing to derive from (a header-only file): the row count expectations say so
            out[spec["name"]] = pd.Series(dtype="float64")
            continue
        try:
            out[spec["name"]] = DERIVATIONS[spec["derivation"]](frame, spec, history).astype("float64")
        except (KeyError, AttributeError, pd.errors.UndefinedVariableError, TypeError):
            # a column the derivation needs is missing or mistyped: the column expectations say so
            out[spec["name"]] = float("nan")
    return out


def warehouse_history(con, source: str, period: str | None):
    """A history callable for :func:`validate`: the area's earlier periods of ``source``
    (``spec.months`` before ``period``), each as its latest version not quarantined: the
    loaded one in the warehouse landing table or, for a period whose latest version is fetched
    and parsed but not loaded yet (earlier periods of the same run, e.g. a bootstrap, or a
    revision of a loaded period), its parsed file. So a period is checked against the latest
    figures of the months before it that the run has parsed by then: ``make run`` (DAG.test)
    validates in period order; under the scheduler the validate tasks share a one-slot pool in
    no fixed order, and a month validated before its predecessor's revision was parsed is
    checked against the version before it. A revision parsed but quarantined later counts
    until it is quarantined (its file is then left out)."""
    if con is None or period is None:
        return None

    def history(spec: dict) -> pd.DataFrame | None:
        if "periods" in spec:  # earlier periods of the source's own cadence (a mid-year, a financial year)
            from carewatch import sources

            first, before = sources.earlier_period(source, period, int(spec["periods"])), sources.earlier_period(source, period, 0)
        else:
            current = pd.Timestamp(_period_value(period))
            first, before = (current - pd.DateOffset(months=int(spec["months"]))).strftime("%Y-%m"), current.strftime("%Y-%m")
        # only the columns the derivation reads: the area, the value and the names in `where`
        wanted = {spec["area"], spec["value"], *re.findall(r"[A-Za-z_][A-Za-z0-9_]*", spec.get("where", ""))}
        loaded = _loaded_history(con, source, first, before, wanted)
        held = {} if loaded is None else loaded.groupby("_period")["_version"].max().to_dict()
        newer = _parsed_history(con, source, first, before, held)
        if loaded is not None:  # a period with a newer parsed version is read from that, not from the landing table
            loaded = loaded[~loaded["_period"].isin(newer)]
        frames = [loaded, *(pd.read_parquet(path).assign(_period=p) for p, path in newer.items())]
        frames = [f.drop(columns=["_version"], errors="ignore") for f in frames if f is not None and len(f)]
        if not frames:
            return None
        frame = pd.concat(frames, ignore_index=True)
        frame = frame[frame.eval(spec["where"])]
        if spec.get("sum_per_area"):  # one value per area and earlier period: the sum of its rows
            frame = frame.groupby([spec["area"], "_period"], as_index=False)[spec["value"]].sum(min_count=1)
        return frame[[spec["area"], spec["value"]]].rename(columns={spec["value"]: "value"}).reset_index(drop=True)

    return history


def _loaded_history(con, source: str, first: str, before: str, wanted: set[str]) -> pd.DataFrame | None:
    """Each period's latest loaded version in [first, before): ``_period`` and the columns of
    ``wanted`` that the landing table has."""
    table = warehouse.land_table(source)
    columns = ", ".join(f'"{name}"' for name in warehouse.columns(con, table) if name in wanted)
    if not columns:  # no landing table yet, or the suite names columns it lacks (the column expectations say so)
        return None
    rejected = warehouse.rejection_stands(con, f"'{source}'", "_period", "_version")  # (land_table checked the name)
    return con.execute(
        f"""
        select _period, _version, {columns} from {table}
        where _period >= ? and _period < ? and not {rejected}
        qualify _version = max(_version) over (partition by _period)
        """,
        [first, before],
    ).df()


def _parsed_history(con, source: str, first: str, before: str, held: dict[str, int]) -> dict[str, Path]:
    """Parsed files of periods in [first, before) whose latest fetched version not quarantined
    is newer than the version loaded (``held``: period -> version; a period not loaded is not
    in it), by period; a period whose parsed file is gone keeps its loaded version."""
    if not warehouse.table_exists(con, "raw_manifest"):
        return {}
    quarantined = "and m.sha256 not in (select sha256 from quarantine q where q.source = m.source and q.period = m.period)" \
        if warehouse.table_exists(con, "quarantine") else ""
    quarantined += f" and not {warehouse.rejection_stands(con, 'm.source', 'm.period', 'm.version')}"  # nor one rejected
    latest = con.execute(
        f"""
        with usable as (
            select period, version, sha256 from raw_manifest m
            where source = ? and period >= ? and period < ? {quarantined}
        )
        select period, version, sha256 from usable u
        where version = (select max(version) from usable v where v.period = u.period)
        order by period
        """,
        [source, first, before],
    ).fetchall()
    newer = {p: paths.parsed_path(source, p, sha) for p, version, sha in latest if version > held.get(p, 0)}
    return {p: path for p, path in newer.items() if path.is_file()}


def _fill(value, runtime: dict):
    def filled(name: str):
        if name not in runtime:
            raise ValueError(f"no run-time value {name} here (known: {', '.join(sorted(runtime))}; $period and the values "
                             f"that depend on it need the period requested)")
        return runtime[name]

    return _map_runtime(value, filled)


# suite and expectation meta that only says how results read, not what passes (not in the key)
DISPLAY_ONLY = ("description", "known_gaps", "row_label", "tolerance")


def _judged(meta: dict) -> dict:
    """``meta`` without its wording (``DISPLAY_ONLY``), its derivation specs' included."""
    out = {k: v for k, v in meta.items() if k not in DISPLAY_ONLY}
    if "derive" in out:
        out["derive"] = [_judged(spec) for spec in out["derive"]]
    return out


def _filled_description(meta: dict, runtime: dict) -> dict:
    """The expectation's meta with the run-time numbers its description names filled in
    ("every council in force when the year started ($council_count)" -> "... (152)")."""
    def number(match: re.Match) -> str:
        value = runtime.get(match.group(0))
        return str(value) if isinstance(value, (int, float, str)) else match.group(0)

    if "description" not in meta:
        return meta
    return {**meta, "description": re.sub(r"\$[a-z_]+", number, meta["description"])}


def _with_derived(kind: str, kwargs: dict, derived: list[str]) -> dict:
    """Table-column expectations describe the tidy frame; derived columns are added to them."""
    if kind == "expect_table_columns_to_match_set" and derived:
        return {**kwargs, "column_set": list(kwargs["column_set"]) + derived}
    if kind == "expect_table_columns_to_match_ordered_list" and derived:
        return {**kwargs, "column_list": list(kwargs["column_list"]) + derived}
    return kwargs


def _with_iso_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Date columns as ISO text, so suites compare them with plain strings ("2017-02-01")."""
    out = frame.copy()
    for column in out.columns:
        sample = out[column].dropna().head(1)
        if len(sample) and isinstance(sample.iloc[0], (dt.date, pd.Timestamp)):
            out[column] = out[column].map(lambda v: v.isoformat()[:10] if v is not None and not pd.isna(v) else None)
    return out


@dataclass
class PreparedBatch:
    """Exactly what Great Expectations is given: the frame with its derived columns (dates as
    ISO text) and the suite's expectations with their run-time values filled in. ``key``
    digests both (and the GX version), so an identical key means an identical result."""

    source: str
    suite: str
    period: str | None
    frame: pd.DataFrame
    expectations: list[dict]
    meta: dict
    key: str
    suite_file: Path  # expectations/<name>.json, which error messages name


def prepare(source: str, frame: pd.DataFrame, *, period: str | None, history=None, suite: str | None = None) -> PreparedBatch:
    """The batch and expectations for ``source``'s suite (or the named ``suite``); see :func:`validate`."""
    import hashlib
    from importlib.metadata import version

    data = load_suite(suite or source)
    suite_file = require_suite(suite or source)
    meta = data.get("meta", {})
    _check_derivations(suite_file, meta)
    runtime = _runtime_values(period, source, meta.get("geography_as_of", "period_start"), meta.get("councils_without_rows", ()))
    specs = []
    for number, spec in enumerate(meta.get("derive", []), start=1):
        try:
            specs.append(_fill(spec, runtime))  # a derivation may use run-time values ($council_codes_abolished)
        except ValueError as err:
            raise SuiteError(f"{suite_file}: meta.derive {number} ({spec.get('name')}): {_gx_message(err)}") from None
    frame = _with_iso_dates(_derive(frame, specs, history))
    derived = [spec["name"] for spec in meta.get("derive", [])]
    expectations = []
    for number, e in enumerate(data["expectations"], start=1):
        try:
            expectations.append({**e, "kwargs": _with_derived(e["type"], _fill(e["kwargs"], runtime), derived),
                                 **({"meta": _filled_description(e["meta"], runtime)} if "meta" in e else {})})
        except (KeyError, TypeError, ValueError) as err:  # no type or kwargs, or a run-time value that does not exist
            what = f"no {err.args[0]!r}" if isinstance(err, KeyError) else _gx_message(err)
            raise SuiteError(f"{suite_file}: {_expectation_name(number, e)}: {what}") from None
    # what only changes how results read (descriptions, row labels) is left out of the key: a
    # wording change must not validate every file again and re-send its warnings
    judged = [{**e, "meta": _judged(e["meta"])} if "meta" in e else e for e in expectations]
    digest = hashlib.sha256()
    for part in (version("great_expectations"), version("pandas"), data["name"], json.dumps(_judged(meta), sort_keys=True, default=str),
                 json.dumps(judged, sort_keys=True, default=str),
                 json.dumps([[str(name), str(dtype)] for name, dtype in frame.dtypes.items()])):
        digest.update(part.encode())
        digest.update(b"\0")
    # the batch's values, row by row (pandas' own stable row hashes: a tenth of the time of
    # writing the frame out as CSV, which every reused validation paid)
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return PreparedBatch(source=source, suite=data["name"], period=period, frame=frame, expectations=expectations, meta=meta,
                         key=digest.hexdigest(), suite_file=suite_file)


def validate(
    source: str,
    frame: pd.DataFrame,
    *,
    period: str | None,
    history=None,
    suite: str | None = None,
    data_docs: bool = False,
    run_name: str | None = None,
) -> ValidationReport:
    """Run ``source``'s suite (or the named ``suite``) on a tidy frame.

    ``history``: see :func:`warehouse_history`; without it, checks against history are skipped
    (their derived column is null). ``data_docs``: keep the result in the file-backed GX
    project under ``$CAREWATCH_HOME/gx`` and rebuild its Data Docs site (the pipeline does;
    ``carewatch validate`` does not: it writes nothing).
    """
    return run(prepare(source, frame, period=period, history=history, suite=suite), data_docs=data_docs, run_name=run_name)


def run(batch: PreparedBatch, *, data_docs: bool = False, run_name: str | None = None,
        every_failing_row: bool = False) -> ValidationReport:
    """Validate a prepared batch with Great Expectations. ``every_failing_row``: each result
    lists the label of every row it failed on (``failing_rows``), not only five examples."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    gx_suite = gx.ExpectationSuite(name=batch.suite, expectations=gx_expectations(batch.suite_file, batch.expectations), meta=batch.meta)
    docs_url = None
    # which rows failed, not only their values: the suite's row_label columns go with each example
    label = _row_label(batch.meta, batch.frame)
    detail = "COMPLETE" if every_failing_row and label else "SUMMARY"
    result_format = {"result_format": detail, "unexpected_index_column_names": label} if label else "SUMMARY"
    if data_docs:
        outcome, docs_url = _validate_with_data_docs(gx, batch.suite, gx_suite, batch.frame, run_name or f"{batch.suite} {batch.period}",
                                                     result_format)
    else:
        context = _quiet(gx.get_context(mode="ephemeral"))
        gx_batch = (
            context.data_sources.add_pandas("carewatch")
            .add_dataframe_asset(batch.suite)
            .add_batch_definition_whole_dataframe("whole")
            .get_batch(batch_parameters={"dataframe": batch.frame})
        )
        outcome = gx_batch.validate(context.suites.add(gx_suite), result_format=result_format)
    report = ValidationReport(source=batch.source, suite=batch.suite, period=batch.period, docs_url=docs_url, key=batch.key)
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
                unexpected_examples=_examples(details, _columns_of(config.kwargs), label),
                expected=_expected_text(config.kwargs),
                failing_rows=[(tuple(_plain(row.get(c)) for c in label), tuple(_plain(row.get(c)) for c in _columns_of(config.kwargs)))
                              for row in details.get("unexpected_index_list") or [] if isinstance(row, dict)]
                if detail == "COMPLETE" else [],
            )
        )
    return report


def _row_label(meta: dict, frame: pd.DataFrame) -> list[str]:
    """The suite's ``row_label`` columns that the frame has."""
    return [c for c in meta.get("row_label", []) if c in frame.columns]


def _columns_of(kwargs: dict) -> list[str]:
    """The columns an expectation judges: its column, its pair or its column list."""
    if kwargs.get("column"):
        return [kwargs["column"]]
    if kwargs.get("column_A"):
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list") or [])


def _plain(value):
    """A failing value as Python writes it (``1.0``, ``(1.0, 2.0)``), not numpy's ``np.float64(1.0)``."""
    if isinstance(value, (tuple, list)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, (np.datetime64, pd.Timestamp, dt.datetime)):  # (.item() of a nanosecond datetime64 is an int)
        stamp = pd.Timestamp(value)  # a date, as GX's rows and the frame's give it alike
        return str(stamp) if pd.isna(stamp) or stamp != stamp.normalize() else str(stamp.date())
    if isinstance(value, dt.date):
        return value.isoformat()
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


def _examples(details: dict, columns: list[str], label: list[str], limit: int = 5) -> list:
    """Up to ``limit`` failing values, each with its row's label when the suite names one
    ("Derby UA / agency / nhs: -5.0"; for a pair of columns, "Barnsley / 2B1: numerator 60.0,
    denominator 50.0"), else the value alone."""
    values = [_plain(v) for v in list(details.get("partial_unexpected_list") or [])[:limit]]
    rows = details.get("partial_unexpected_index_list") or []
    if not label or not columns or len(rows) < len(values) or not all(isinstance(r, dict) for r in rows):
        return values
    examples = []
    for row, value in zip(rows, values):
        where = " / ".join(str(_plain(row.get(c))) for c in label)
        if len(columns) == 1:
            examples.append(f"{where}: {_plain(row.get(columns[0], value))}")
        else:  # a pair or a compound key: the columns the label does not already show
            shown = [f"{c} {_plain(row.get(c))}" for c in columns if c not in label]
            examples.append(f"{where}: {', '.join(shown)}" if shown else where)
    return examples


def previous_pass(con, batch: PreparedBatch, *, sha256: str, period: str | None = None) -> ValidationReport | None:
    """The recorded report of an earlier validation of this very batch (same file, same key)
    that passed (no blocking failure), or None. The pipeline does not validate such a batch
    again: the result could not differ, and its warnings were already emailed."""
    report = previous_result(con, batch, sha256=sha256, period=period)
    return report if report is not None and report.ok else None


def previous_result(con, batch: PreparedBatch, *, sha256: str, period: str | None = None) -> ValidationReport | None:
    """The latest recorded validation of this very batch (same file, same key), or None. A
    failed one means the file is still quarantined: validating it again would fail the same
    way and email the same failure every month it stays in the revision window."""
    recorded = warehouse.columns(con, "validation_results")
    if "validation_key" not in recorded:  # a warehouse from before keys were recorded: validate again (store adds the column)
        return None
    # recorded before descriptions and thresholds were: the lines say less, nothing else differs
    wording = "description, expected" if "expected" in recorded else "'' as description, '' as expected"
    period = batch.period if period is None else period
    rows = con.execute(
        f"""
        select suite, expectation, "column", severity, success, observed_value, unexpected_count,
               unexpected_examples, docs_url, validated_at, {wording}
        from validation_results
        where source = ? and period = ? and sha256 = ? and validation_key = ?
        qualify validated_at = max(validated_at) over ()
        order by expectation, "column"
        """,
        [batch.source, period, sha256, batch.key],
    ).fetchall()
    if not rows:
        return None
    report = ValidationReport(source=batch.source, suite=rows[0][0], period=period, docs_url=rows[0][8], key=batch.key,
                              reused_from=str(rows[0][9]))
    for _, expectation, column, severity, success, observed, unexpected, examples, _, _, description, expected in rows:
        report.results.append(ExpectationResult(
            expectation=expectation, column=column, severity=severity, description=description or "", success=bool(success),
            observed_value=observed, unexpected_count=unexpected, unexpected_examples=json.loads(examples or "[]"),
            expected=expected or "",
        ))
    return report


def failure_identity(report: ValidationReport) -> frozenset:
    """What a report's blocking failures are, without what was observed: the expectation, its
    column and its thresholds. Two validations of one file with the same identity failed for
    the same reasons, even if the examples or observed values differ."""
    return frozenset((r.expectation, r.column, r.expected) for r in report.blocking_failures)


def quarantined_since(con, source: str, period: str, sha256: str) -> tuple[str, frozenset] | None:
    """When this file entered quarantine, and every blocking failure (:func:`failure_identity`)
    reported for it since then; None when the file is not in quarantine."""
    if not warehouse.table_exists(con, "quarantine"):
        return None
    reported = "reported_failures" if "reported_failures" in warehouse.columns(con, "quarantine") else "null"
    row = con.execute(f"""select min(quarantined_at), any_value({reported}) from quarantine
                          where source = ? and period = ? and sha256 = ?""", [source, period, sha256]).fetchone()
    if row is None or row[0] is None:
        return None
    if row[1] is not None:
        return str(row[0]), frozenset(tuple(item) for item in json.loads(row[1]))
    # quarantined by a release that did not keep the list: the latest validation's failures
    expected = "expected" if "expected" in warehouse.columns(con, "validation_results") else "''"
    failed = con.execute(
        f"""select expectation, "column", coalesce({expected}, '') from validation_results
            where source = ? and period = ? and sha256 = ? and not success and severity = 'blocking'""",
        [source, period, sha256]).fetchall()
    return str(row[0]), frozenset(failed)


def _expected_text(kwargs: dict) -> str:
    """The expectation's thresholds in one line ("min_value=0, max_value=100"), in full: they
    are part of a failure's identity (:func:`failure_identity`), so a change anywhere in a long
    ``value_set`` is a new reason. Emails show them shortened (:func:`shown_expected`)."""
    skip = {"column", "result_format", "catch_exceptions", "meta", "condition_parser", "batch_id"}
    return ", ".join(f"{key}={value}" for key, value in kwargs.items() if key not in skip and value is not None)


def shown_expected(text: str, limit: int = 200) -> str:
    """Thresholds for a reader: at most ``limit`` characters (a value set of 150 area codes
    is cut, with how much was left out)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()} ... ({len(text) - limit} more characters)"


def data_docs_index() -> Path:
    """The Data Docs site's front page (every validation the pipeline ran, newest first)."""
    return paths.home() / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _quiet(context):
    """No "Calculating Metrics" progress bars on stderr (task logs, ``carewatch validate``):
    GX passes its own setting to tqdm (TQDM_DISABLE does not silence them)."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _validate_with_data_docs(gx, name: str, gx_suite, frame: pd.DataFrame, run_name: str, result_format="SUMMARY"):
    """Validate through a checkpoint of the file-backed GX project (which keeps the result),
    render that result's Data Docs page; returns (suite result, URL of that page)."""
    from great_expectations.core.run_identifier import RunIdentifier

    context = _quiet(gx.get_context(mode="file", project_root_dir=str(paths.home())))
    datasource = context.data_sources.add_or_update_pandas("carewatch")
    asset = next((a for a in datasource.assets if a.name == name), None) or datasource.add_dataframe_asset(name)
    batch_definition = next((b for b in asset.batch_definitions if b.name == "whole"), None) or asset.add_batch_definition_whole_dataframe("whole")
    gx_suite = context.suites.add_or_update(gx_suite)
    definition = context.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch_definition, suite=gx_suite))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(name=name, validation_definitions=[definition], result_format=result_format))
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name))
    identifier, outcome = next(iter(result.run_results.items()))
    # this validation's page now; the site's index once per DAG run (build_data_docs_index):
    # rebuilding the index on every validation costs more the longer the history
    context.build_data_docs(resource_identifiers=[identifier], build_index=False)
    urls = context.get_docs_sites_urls(resource_identifier=identifier)
    return outcome, (urls[0]["site_url"] if urls else None)


def build_data_docs_index() -> Path | None:
    """Rebuild the Data Docs site's index page (every validation kept in the GX project)."""
    if not (paths.home() / "gx" / "great_expectations.yml").is_file():
        return None
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="file", project_root_dir=str(paths.home()))
    # a resource list that matches no page: only the index is built (an empty list means "all")
    context.build_data_docs(build_index=True, resource_identifiers=["index only"])
    return data_docs_index()


RESULTS_DDL = """
create table if not exists validation_results (
    source varchar, period varchar, file_version integer, sha256 varchar, suite varchar,
    expectation varchar, "column" varchar, severity varchar, success boolean,
    observed_value varchar, unexpected_count bigint, unexpected_examples varchar,
    validated_at timestamptz
);
alter table validation_results add column if not exists docs_url varchar;
alter table validation_results add column if not exists validation_key varchar;
alter table validation_results add column if not exists description varchar;
alter table validation_results add column if not exists expected varchar;
create table if not exists quarantine (
    source varchar, period varchar, file_version integer, sha256 varchar, parsed_path varchar,
    blocking_failures varchar, quarantined_at timestamptz
);
alter table quarantine add column if not exists last_failed_at timestamptz;
alter table quarantine add column if not exists attempts integer;
alter table quarantine add column if not exists reported_failures varchar;
"""


def store(con, report: ValidationReport, *, file_version: int, sha256: str, parsed_path: str | None) -> None:
    """Record every result in one transaction, and the file's quarantine state with them.

    ``quarantine`` holds one row per file (source, period, sha256) whose latest validation
    failed a blocking expectation: first failure (``quarantined_at``), latest failure and its
    reasons, how many validations it has failed, and every blocking failure reported for it
    since it entered (``reported_failures``: JSON [expectation, column, thresholds] items; see
    :func:`failure_identity`). A failing file validated again updates its row; a file that
    passes (after a suite or reference fix) leaves the table.
    """
    now = dt.datetime.now(dt.timezone.utc)
    con.execute(RESULTS_DDL)
    earlier = quarantined_since(con, report.source, report.period, sha256)
    reported = (earlier[1] if earlier else frozenset()) | failure_identity(report)
    con.execute("begin transaction")
    try:
        con.execute("delete from validation_results where source = ? and period = ? and sha256 = ?", [report.source, report.period, sha256])
        for r in report.results:
            con.execute(
                """insert into validation_results (source, period, file_version, sha256, suite, expectation, "column",
                       severity, success, observed_value, unexpected_count, unexpected_examples, validated_at, docs_url,
                       validation_key, description, expected)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [report.source, report.period, file_version, sha256, report.suite, r.expectation, r.column, r.severity,
                 r.success, None if r.observed_value is None else str(r.observed_value), r.unexpected_count,
                 json.dumps(r.unexpected_examples), now, report.docs_url, report.key,
                 r.description or None, r.expected or None],
            )
        # a file's row is its own (source, period, sha256); a warehouse check's is the check's,
        # whatever rows it saw (their digest changes with every build): a build that passes
        # clears the row an earlier refused build left
        if report.source.startswith("check:"):
            which, file = "source = ? and period = ?", [report.source, report.period]
        else:
            which, file = "source = ? and period = ? and sha256 = ?", [report.source, report.period, sha256]
        # rows written before attempts were counted (one row per attempt) count one each
        first, attempts = con.execute(
            f"select min(quarantined_at), coalesce(sum(coalesce(attempts, 1)), 0) from quarantine where {which}", file).fetchone()
        con.execute(f"delete from quarantine where {which}", file)
        if not report.ok:
            con.execute(
                """insert into quarantine (source, period, file_version, sha256, parsed_path, blocking_failures,
                       quarantined_at, last_failed_at, attempts, reported_failures)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [report.source, report.period, file_version, sha256, parsed_path,
                 "; ".join(r.line() for r in report.blocking_failures), first or now, now, int(attempts) + 1,
                 json.dumps(sorted(reported, key=lambda item: tuple(str(x) for x in item)))],
            )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def clear_check_quarantine(con, source: str) -> None:
    """Clear a warehouse check's quarantine row (``source`` ``check:<name>``): it passes again,
    reused from an earlier pass of the same rows (:func:`store` is not called for it)."""
    if warehouse.table_exists(con, "quarantine"):
        con.execute("delete from quarantine where source = ?", [source])


QUARANTINE_COLUMNS = ["source", "period", "file_version", "sha256", "blocking_failures", "quarantined_at",
                      "last_failed_at", "attempts", "superseded_by"]


def quarantined(con) -> pd.DataFrame:
    """The files in quarantine, one row each, with ``superseded_by``: the latest later version
    of the same period that is loaded in the landing table and not rejected (``carewatch
    reject``: the builds leave it out), null when none is. Works on a read-only warehouse
    written before attempts were counted."""
    if not warehouse.table_exists(con, "quarantine"):
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    frame = con.execute("select * from quarantine order by source, period, file_version").df()
    if "last_failed_at" not in frame:  # a table from before attempts were counted: one row per attempt
        frame["last_failed_at"] = frame["quarantined_at"]
    frame["attempts"] = frame.get("attempts", pd.Series(1, index=frame.index)).fillna(1).astype(int)
    superseded = [warehouse.later_version_in_use(con, row.source, row.period, row.file_version) for row in frame.itertuples()]
    frame["superseded_by"] = pd.array(superseded, dtype="Int64")
    return frame[QUARANTINE_COLUMNS]


def check_files() -> list[Path]:
    """Warehouse checks: ``include/sql/checks/<name>.sql`` is validated by ``expectations/<name>.json``."""
    return sorted((paths.sql_dir() / "checks").glob("*.sql"))


def check_rows(con, name: str) -> pd.DataFrame:
    """The rows of warehouse check ``name`` (``include/sql/checks/<name>.sql``) on ``con``."""
    return con.execute((paths.sql_dir() / "checks" / f"{name}.sql").read_text()).df()


def _check_batch(name: str, frame: pd.DataFrame) -> PreparedBatch:
    return prepare(f"check:{name}", frame, period=None, suite=name)


def _run_check(batch: PreparedBatch, **options) -> ValidationReport:
    report = run(batch, **options)
    report.period = "warehouse"  # checks are recorded under this period
    return report


def validate_check(name: str, frame: pd.DataFrame, every_failing_row: bool = False) -> ValidationReport:
    """Check ``name``'s rows against its suite, as the warehouse build does; writes nothing
    (``carewatch check``)."""
    return _run_check(_check_batch(name, frame), every_failing_row=every_failing_row)


WARNINGS_REPORTED_DDL = """
create table if not exists check_warnings_reported (
    check_name varchar, expectation varchar, "column" varchar, row_label varchar, reported_at timestamptz
);
alter table check_warnings_reported add column if not exists failing_value varchar;
"""


def warning_rows(report: ValidationReport) -> set[tuple[str, str, str, str]]:
    """Each warning of a check, row by row: (expectation, column, the failing row's label, its
    failing values); a warning about the whole table (a row count) has no row, and its observed
    value instead."""
    def text(values) -> str:
        return " / ".join(str(v) for v in values)

    return {(r.expectation, r.column or "", text(label), text(values))
            for r in report.warnings
            for label, values in (r.failing_rows or [((), (r.observed_value,))])}


def new_warnings(con, report: ValidationReport) -> set[tuple[str, str, str, str]]:
    """The warning rows of a warehouse check not emailed before (``check_warnings_reported``):
    a check re-runs whenever its rows change (every month adds periods), and the same gap (two
    councils without a suppressed ASCOF figure) is emailed once, not every month. A row whose
    failing values change (a gap that widens) is new; rows that no longer fail are forgotten,
    so a gap that clears and comes back is emailed again."""
    current = warning_rows(report)
    con.execute(WARNINGS_REPORTED_DDL)
    columns = 'expectation, "column", row_label, coalesce(failing_value, \'\')'
    reported = set(con.execute(f"select {columns} from check_warnings_reported where check_name = ?", [report.source]).fetchall())
    for cleared in reported - current:
        con.execute(f"delete from check_warnings_reported where check_name = ? and ({columns}) = (?, ?, ?, ?)",
                    [report.source, *cleared])
    return current - reported


def record_warnings_reported(con, report: ValidationReport, rows: set[tuple[str, str, str, str]]) -> None:
    con.execute(WARNINGS_REPORTED_DDL)
    now = dt.datetime.now(dt.timezone.utc)
    con.executemany('insert into check_warnings_reported (check_name, expectation, "column", row_label, failing_value, reported_at) '
                    'values (?, ?, ?, ?, ?, ?)',
                    [[report.source, *row, now] for row in sorted(rows)])


def failing_rows(name: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of check ``name`` that fail any of its expectations, blocking or warning
    (``carewatch check NAME --failing``), matched by the suite's row label; and the lines of
    the failed expectations about the table as a whole (its columns, its row count), which
    no row shows."""
    batch = _check_batch(name, frame)
    report = _run_check(batch, every_failing_row=True)
    label = _row_label(batch.meta, frame)
    if not label:
        raise CarewatchError(f"check {name}: its suite names no row_label, so its failing rows cannot be picked out")
    failed = [result for result in report.results if not result.success]
    failing = {row_label for result in failed for row_label, _ in result.failing_rows}
    keep = [tuple(_plain(v) for v in key) in failing for key in frame[label].itertuples(index=False)]
    return frame.loc[np.array(keep, dtype=bool)], [result.line() for result in failed if not result.failing_rows]


def check_warehouse(con, *, data_docs: bool = False, reuse: bool = False) -> list[tuple[ValidationReport, str]]:
    """Run every warehouse check (cross-source reconciliation, completeness) on ``con``;
    returns (report, sha256 of the checked rows) per check. Writes nothing to the warehouse.
    ``reuse``: a check whose rows and suite are the same as in an earlier passing run is not
    run again; its recorded report comes back with ``reused_from`` set."""
    import hashlib

    out = []
    for sql_file in check_files():
        frame = check_rows(con, sql_file.stem)
        digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
        batch = _check_batch(sql_file.stem, frame)
        report = previous_pass(con, batch, sha256=digest, period="warehouse") if reuse else None
        if report is None:
            report = _run_check(batch, data_docs=data_docs, run_name=f"{sql_file.stem} {digest[:12]}", every_failing_row=True)
        out.append((report, digest))
    return out
