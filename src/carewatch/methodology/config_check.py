"""Checks of the methodology configuration, in one place: every loader of these files validates
what it reads here, ``carewatch check-config`` runs them all, and ``carewatch run`` runs them
before it starts anything.

The files: ``config/metrics.yaml``, ``config/methodology/in_force.yaml`` and the methodology it
names, ``config/review_flags.yaml``, ``config/targets/*.yaml``, ``config/peer_groups.yaml`` and,
with ``method: file``, the peer-group CSV it names. Each YAML file is a pydantic model: unknown
keys are refused (a misspelt key would otherwise fall back to its default), types are strict (a
string is not a number, ``enabled: "no"`` is not true), enumerations are closed (``direction``
low or high), ranges and cross-references (every metric id is one of ``config/metrics.yaml``)
are checked. Every problem is one line naming the file (relative to the config directory's
parent) and the key, as :class:`carewatch.errors.ConfigError` gathers them:
``config/methodology/dashboard-2018.yaml: metrics[0].weight must be a number, not 'three'``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from carewatch import paths
from carewatch.errors import ConfigError

MAX_LINES_PER_FILE = 20  # a peer file with every row wrong: the first lines and how many more


# ---------------------------------------------------------------- reading and reporting

def shown(path: Path | str) -> str:
    """``path`` as messages name it: relative to the config directory's parent
    (``config/methodology/dashboard-2018.yaml``) when it is in the config directory."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(paths.config_dir().parent))
    except ValueError:
        return str(path)


def read_yaml(path: Path | str) -> dict:
    """A config file's mapping, or a :class:`ConfigError` line (missing, not YAML, not a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{shown(path)}: no such file"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError([f"{shown(path)}: not valid YAML{where}: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{shown(path)}: must be a mapping of keys (key: value lines), not {_brief(data)}"])
    return data


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(loc: tuple, data: Any, named: dict[str, str]) -> str:
    """A pydantic location as the file writes it: ``metrics[0].weight``; an item of a list of
    ``named`` (discriminated by ``kind``) by its id: ``rule 'funnel_outlier': level``."""
    parts: list[str] = []
    loc = list(loc)
    if loc and loc[0] in named and len(loc) >= 2 and isinstance(loc[1], int):
        items = data.get(loc[0]) if isinstance(data, dict) else None
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        ident = item.get("id") if isinstance(item, dict) else None
        head = f"{named[loc[0]]} {ident!r}" if isinstance(ident, str) else f"{loc[0]}[{loc[1]}]"
        rest = loc[2:]
        if rest and isinstance(item, dict) and rest[0] == item.get("kind"):
            rest = rest[1:]  # the discriminator's tag pydantic puts in the location
        tail = _where(tuple(rest), item, {})
        return f"{head}:" + (f" {tail}" if tail else "")
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


_TYPE_WORDS = {
    "float_type": "a number", "float_parsing": "a number", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text", "list_type": "a list", "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)", "model_attributes_type": "a mapping (key: value lines)",
}


def _line(error: dict, data: Any, named: dict[str, str]) -> str:
    where = _where(error["loc"], data, named)
    kind, ctx = error["type"], error.get("ctx") or {}
    value = error.get("input")
    if kind == "carewatch":
        text = error["msg"]
    elif kind == "missing":
        text = "is missing"
    elif kind == "extra_forbidden":
        text = "is not a known key (misspelt?)"
    elif kind == "literal_error":
        text = f"must be {str(ctx.get('expected', '')).replace(chr(39), '')}, not {_brief(value)}"
    elif kind == "union_tag_invalid":
        text = f"kind must be one of {str(ctx.get('expected_tags', '')).replace(chr(39), '')}, not {ctx.get('tag')!r}"
    elif kind == "union_tag_not_found":
        text = "kind is missing"
    elif kind == "too_short":
        text = "must not be empty"
    elif kind in _TYPE_WORDS:
        text = f"must be {_TYPE_WORDS[kind]}, not {_brief(value)}"
    else:
        text = f"{error['msg']}, not {_brief(value)}"
    if where.endswith(":") or not where:
        return f"{where} {text}".strip()
    return f"{where} {text}"


def validate(model: type[BaseModel], data: dict, path: Path | str, context: dict | None = None,
             named: dict[str, str] | None = None) -> BaseModel:
    """``data`` (read from ``path``) as ``model``, or a :class:`ConfigError` with one line per problem."""
    try:
        return model.model_validate(data, context=context or {})
    except ValidationError as err:
        named = named or {}
        lines = [f"{shown(path)}: {line}" for e in err.errors(include_url=False) for line in _line(e, data, named).splitlines()]
        raise ConfigError(list(dict.fromkeys(lines))) from None


def _fail(template: str, **ctx) -> PydanticCustomError:
    return PydanticCustomError("carewatch", template, ctx)


def _fail_all(problems: list[str]) -> PydanticCustomError:
    """Several problems of a whole file (or list), one line each."""
    return _fail("{text}", text="\n".join(problems))


# ---------------------------------------------------------------- field types

def number(*, ge: float | None = None, gt: float | None = None, lt: float | None = None, le: float | None = None,
           whole: bool = False, what: str | None = None, note: str | None = None):
    """A number (``whole``: an integer), never a string or a boolean, within the bounds given; the
    message says ``must be <what>, not <value>`` (``what`` by default: "a number" and the bounds;
    ``note`` follows the bounds in brackets)."""
    kind = "a whole number" if whole else "a number"
    bounds = [f"at least {ge:g}" if ge is not None else None, f"above {gt:g}" if gt is not None else None,
              f"below {lt:g}" if lt is not None else None, f"at most {le:g}" if le is not None else None]
    ranged = (what or f"{kind} " + " and ".join(b for b in bounds if b)) + (f" ({note})" if note else "")

    def check(value):
        good = isinstance(value, int) if whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not good or (isinstance(value, float) and not math.isfinite(value)):
            if isinstance(value, str) and re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)[eE][+-]?\d+", value.strip()):
                # YAML 1.1 reads 1e-3 (no dot) as text, not as a number
                raise _fail("must be {what}, not {value} (YAML reads it as text: write {dotted})",
                            what=what or kind, value=_brief(value), dotted=repr(float(value)))
            raise _fail("must be {what}, not {value}", what=what or kind, value=_brief(value))
        if ((ge is not None and value < ge) or (gt is not None and value <= gt)
                or (lt is not None and value >= lt) or (le is not None and value > le)):
            raise _fail("must be {what}, not {value}", what=ranged, value=_brief(value))
        return value

    return Annotated[int if whole else float, BeforeValidator(check)]


def _month(value, info: ValidationInfo) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.replace(day=1)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        return dt.date(int(value[:4]), int(value[5:7]), 1)
    if (info.context or {}).get("recorded") and isinstance(value, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-01", value):
        return dt.date.fromisoformat(value)  # the model's own dump, as an analysis recorded it (:func:`labelled_content`)
    raise _fail("must be a month, YYYY-MM, not {value}", value=_brief(value))


Month = Annotated[dt.date, BeforeValidator(_month)]
Text = Annotated[str, Field(min_length=1)]


def _known_metric(value: str, info: ValidationInfo) -> str:
    known = (info.context or {}).get("metrics")
    if known is not None and value not in known:
        raise _fail("{value} is not defined in config/metrics.yaml", value=repr(value))
    return value


MetricId = Annotated[str, AfterValidator(_known_metric)]


def breakdown_ids(metrics: dict) -> set[str]:
    """The ids of each metric's breakdowns, as ``fct_metric_values`` names them:
    ``<id>__<agency>`` (``..._18plus__social_care``) and ``<id>__reason_<reason>``."""
    out = set()
    for metric in metrics["metrics"]:
        breakdowns = metric.get("breakdowns") or {}
        out |= {f"{metric['id']}__{agency}" for agency in breakdowns.get("agency") or []}
        out |= {f"{metric['id']}__reason_{reason}" for reason in breakdowns.get("reason") or []}
    return out


def _known_metric_or_breakdown(value: str, info: ValidationInfo) -> str:
    context = info.context or {}
    known = context.get("metrics")
    if known is not None and value not in known and value not in context.get("breakdown_ids", set()):
        raise _fail("{value} is not defined in config/metrics.yaml, nor a breakdown of a metric there "
                    "(<id>__<agency>, <id>__reason_<reason>)", value=repr(value))
    return value


# a review-flag rule may test a breakdown (the social care share of delayed days) as the rules read fct_metric_values
FlagMetricId = Annotated[str, AfterValidator(_known_metric_or_breakdown)]


def _unique(values: list, what: str) -> list[str]:
    seen, twice = set(), []
    for value in values:
        if value in seen and value not in twice:
            twice.append(value)
        seen.add(value)
    return [f"{what} {value!r}" for value in twice]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------- config/metrics.yaml

class Metric(Strict):
    id: Text
    name: Text
    dashboard_number: number(whole=True, ge=1) | None = None
    unit: Text
    denominator_unit: str | None = None
    direction: Literal["low", "high"]
    source: Text
    ascof_measure_group: str | None = None
    ci_method: Literal["byar", "wilson", "none"]
    multiplier: number(gt=0)
    window_denominator: Literal["sum", "mean"] = "sum"
    definition: Text
    breakdowns: dict[str, list[str]] | None = None


class Population(Strict):
    mid_year_rule: Literal["financial_year_start"]


class MetricsFile(Strict):
    version: number(whole=True, ge=1)
    confidence_level: number(gt=0, lt=1, what="a level between 0 and 1 (0.95 for 95%)")
    metrics: Annotated[list[Metric], Field(min_length=1)]
    population: Population | None = None

    @model_validator(mode="after")
    def _ids_once(self):
        problems = _unique([m.id for m in self.metrics], "metrics: listed twice:")
        if problems:
            raise _fail_all(problems)
        return self


def metrics_file(path: Path | str | None = None, data: dict | None = None) -> dict:
    """``config/metrics.yaml``, checked; the mapping as written. ``data``: its content as an
    analysis recorded it (:mod:`carewatch.provenance`), checked the same way; ``path`` then
    only names it in messages (as every ``data`` argument below)."""
    path = Path(path) if path else paths.config_dir() / "metrics.yaml"
    data = read_yaml(path) if data is None else data
    validate(MetricsFile, data, path)
    return data


# ---------------------------------------------------------------- config/methodology/

class Weighted(Strict):
    id: MetricId
    weight: number(ge=0, note="scores are weighted means: only the weights' ratios matter")


class Lag(Strict):
    annual_lag_months: number(whole=True, ge=0) = 6


class Periods(Strict):
    rolling_12m: Lag | None = None
    financial_year: Lag | None = None


class MethodologyFile(Strict):
    name: Text
    version: number(whole=True, ge=1)
    method: Literal["weighted_ranks", "weighted_z"]
    # integer ranks only: min (competition, 1 2 2 4), dense (1 2 2 3), max (1 3 3 4); not
    # average (half ranks) or first (ties broken by row order)
    ties: Literal["min", "dense", "max"] = "min"
    min_metrics: number(whole=True, ge=1) = 1
    metric_ranks_among: Literal["eligible", "all"] = "all"
    period_metric: MetricId | None = None
    periods: Periods | None = None
    metrics: Annotated[list[Weighted], Field(min_length=1)]

    @model_validator(mode="after")
    def _whole(self):
        problems = _unique([m.id for m in self.metrics], "metrics: listed twice:")
        if sum(m.weight for m in self.metrics) <= 0:
            problems.append("metrics: the weights must not all be 0 (only their ratios matter: a score is a weighted mean)")
        if self.min_metrics > len(self.metrics):
            problems.append(f"min_metrics must be at most the number of metrics ({len(self.metrics)}), not {self.min_metrics}: "
                            "no area could be ranked")
        if problems:
            raise _fail_all(problems)
        return self


class InForce(Strict):
    methodology: Text


def in_force_file() -> str:
    """The name ``config/methodology/in_force.yaml`` names, checked: its file exists."""
    path = paths.config_dir() / "methodology" / "in_force.yaml"
    model = validate(InForce, read_yaml(path), path)
    target = path.parent / f"{model.methodology}.yaml"
    if not target.is_file():
        raise ConfigError([f"{shown(path)}: methodology {model.methodology!r} names no file ({shown(target)} does not exist)"])
    return model.methodology


def methodology_file(path: Path | str, metrics: dict | None = None, data: dict | None = None) -> MethodologyFile:
    """A methodology file, checked; ``metrics``: the metrics config its ids must be in (by
    default ``config/metrics.yaml``, itself checked); ``data``: its content as recorded."""
    metrics = metrics if metrics is not None else metrics_file()
    ids = {m["id"] for m in metrics["metrics"]}
    return validate(MethodologyFile, read_yaml(path) if data is None else data, path, {"metrics": ids})


# ---------------------------------------------------------------- config/review_flags.yaml

class Rule(Strict):
    id: Text
    enabled: bool = True


class BottomN(Rule):
    kind: Literal["bottom_n_overall"]
    n: number(whole=True, ge=1)


class BottomQuartile(Rule):
    kind: Literal["bottom_quartile_with_little_improvement"]
    metric: FlagMetricId
    min_improvement_pct: number()
    after_target_set_ends: Literal["keep_baseline", "stop"] = "keep_baseline"


class TargetMissed(Rule):
    kind: Literal["target_missed_consecutive"]
    margin: number(ge=0)
    months: number(whole=True, ge=1)


class FunnelOutlier(Rule):
    kind: Literal["funnel_outlier"]
    level: number(gt=0, lt=1, what="a level between 0 and 1 (0.998 for 99.8%)")
    period_type: Literal["rolling_12m", "financial_year", "month"] = "rolling_12m"
    overdispersion: bool = False
    winsorise: number(ge=0, lt=0.5, what="a share from 0 to below 0.5") = 0.10
    annual_lag_months: number(whole=True, ge=0) = 6


class Deterioration(Rule):
    kind: Literal["deterioration"]
    metrics: Annotated[list[FlagMetricId], Field(min_length=1)]
    min_relative_change: number(ge=0)


AnyRule = Annotated[Union[BottomN, BottomQuartile, TargetMissed, FunnelOutlier, Deterioration], Field(discriminator="kind")]


class RulesFile(Strict):
    name: Text
    version: number(whole=True, ge=1)
    rules: list[AnyRule]

    @model_validator(mode="after")
    def _ids_once(self):
        problems = _unique([r.id for r in self.rules], "rules: two rules with id")
        if problems:
            raise _fail_all(problems)
        return self


def _rules(path: Path | str, metrics: dict | None = None, data: dict | None = None) -> tuple[dict, RulesFile]:
    metrics = metrics if metrics is not None else metrics_file()
    data = read_yaml(path) if data is None else data
    context = {"metrics": {m["id"] for m in metrics["metrics"]}, "breakdown_ids": breakdown_ids(metrics)}
    return data, validate(RulesFile, data, path, context, named={"rules": "rule"})


def rules_file(path: Path | str, metrics: dict | None = None, data: dict | None = None) -> dict:
    """A review-flag rule set, checked; the mapping as written (``data``: as recorded)."""
    return _rules(path, metrics, data)[0]


# ---------------------------------------------------------------- config/targets/

Component = Literal["total", "nhs", "social_care"]


class TargetTest(Strict):
    id: Text
    description: str | None = None


class MeetsTarget(TargetTest):
    kind: Literal["meets_component_target"]
    component: Component
    period: Month


class ImprovedSince(TargetTest):
    kind: Literal["improved_since"]
    component: Component
    period: Month


class NotBottomQuartile(TargetTest):
    kind: Literal["not_bottom_quartile"]
    component: Component


class AtMost(TargetTest):
    kind: Literal["at_most"]
    component: Component
    threshold: number()


AnyTest = Annotated[Union[MeetsTarget, ImprovedSince, NotBottomQuartile, AtMost], Field(discriminator="kind")]


class Split(Strict):
    method: Literal["proportional_to_baseline"]
    both_to_nhs: number(ge=0, le=1, what="a share from 0 to 1") = 0.5


class TargetFile(Strict):
    name: Text
    version: number(whole=True, ge=1)
    metric: MetricId
    valid_from: Month
    valid_to: Month
    baseline_period: Month
    national_ambition: number(ge=0)
    rule: Literal["reach_ambition_or_hold_baseline"]
    split: Split
    tolerance: number(ge=0) = 0.0
    tests: list[AnyTest] = []

    @model_validator(mode="after")
    def _whole(self):
        problems = _unique([t.id for t in self.tests], "tests: two tests with id")
        if self.valid_to < self.valid_from:
            problems.append(f"valid_to ({self.valid_to:%Y-%m}) is before valid_from ({self.valid_from:%Y-%m}): "
                            "no month would be tracked")
        if problems:
            raise _fail_all(problems)
        return self


def _agency_metric(value: str, info: ValidationInfo) -> str:
    agencies = (info.context or {}).get("agencies", {})
    if value in agencies and not {"nhs", "social_care"} <= set(agencies[value] or []):
        raise _fail("{value} has no agency breakdown (breakdowns: agency: [nhs, social_care, both] in config/metrics.yaml)",
                    value=repr(value))
    return value


class _TrackedMetric(TargetFile):
    metric: Annotated[MetricId, AfterValidator(_agency_metric)]


def target_file(path: Path | str, metrics: dict | None = None, data: dict | None = None) -> TargetFile:
    """A target set, checked: its metric is one of ``config/metrics.yaml`` with an agency
    breakdown. ``data``: its content as recorded (its checked model: months as 2017-09-01)."""
    metrics = metrics if metrics is not None else metrics_file()
    context = {"metrics": {m["id"] for m in metrics["metrics"]}, "recorded": data is not None,
               "agencies": {m["id"]: (m.get("breakdowns") or {}).get("agency") for m in metrics["metrics"]}}
    return validate(_TrackedMetric, read_yaml(path) if data is None else data, path, context, named={"tests": "test"})


def label(name: str, version: int) -> str:
    """A methodology's, rule set's or target set's label, as tables and reports name it: ``name@vN``."""
    return f"{name}@v{version}"


def labelled_content(role: str, path: Path | str, metrics: dict | None = None) -> dict:
    """A labelled file (``role`` methodology, review_flags or target_set: a ``name@vN``) as
    checked: its model as data, defaults filled in, numbers and months as the code reads them
    (weight 3 and 3.0 alike, a month 2017-09 and 2017-09-01 alike), a methodology's metrics in
    id order (their order ranks nothing). Two files with the same content here configure the
    same analysis: what a label stands for (:mod:`carewatch.provenance`)."""
    if role == "methodology":
        data = methodology_file(path, metrics).model_dump(mode="json")
        data["metrics"] = sorted(data["metrics"], key=lambda m: m["id"])
        return data
    if role == "review_flags":
        return _rules(path, metrics)[1].model_dump(mode="json")
    if role == "target_set":
        return target_file(path, metrics).model_dump(mode="json")
    raise ValueError(f"not a labelled config file: {role}")


def one_file_per_set(files: list[tuple[Path | str, str, int]]) -> list[str]:
    """Problems of target-set files sharing a set name ((path, name, version) each). Every file
    in ``config/targets/`` is tracked, and tables and reports name a set by its label (and the
    restatements compare a set's months across its versions by its name): the same label twice
    (next year's set copied without a new name) could not be told apart, and two versions of
    one set would be tracked at once. A new version of a set replaces its file."""
    first: dict[str, tuple[Path | str, int]] = {}
    problems = []
    for path, name, version in files:
        if name not in first:
            first[name] = (path, version)
        elif first[name][1] == version:
            problems.append(f"{shown(path)}: name and version ({label(name, version)}) are those of {shown(first[name][0])}: "
                            "give it its own name (a new version of a set replaces its file)")
        else:
            problems.append(f"{shown(path)}: {name} is also the set of {shown(first[name][0])} (version "
                            f"{first[name][1]} there, {version} here): a new version of a set replaces its file, "
                            "another set needs its own name")
    return problems


# ---------------------------------------------------------------- config/peer_groups.yaml and its file

Feature = Literal["log_population_18plus", "share_65plus", "share_85plus", "share_under_18"]


class PeerGroupsFile(Strict):
    method: Literal["nearest_neighbours", "file"]
    k: number(whole=True, ge=1) | None = None
    mid_year: number(whole=True, ge=1971)
    later_areas: Literal["first_mid_year", "none"] = "none"
    features: dict[Feature, number(ge=0)] | None = None
    file: Text | None = None

    @model_validator(mode="after")
    def _by_method(self):
        if self.method == "file" and self.file is None:
            raise _fail("file must name the peer-group CSV when method is file (relative to the config directory)")
        if self.method == "nearest_neighbours":
            if self.k is None:
                raise _fail("k is missing (how many neighbours, with method nearest_neighbours)")
            if not self.features or sum(self.features.values()) <= 0:
                raise _fail("features must give at least one characteristic a weight above 0")
        return self


def peer_file_path(file: str) -> Path:
    """The peer-group CSV ``file:`` names: relative to the config directory (``peers/cipfa.csv``
    is ``config/peers/cipfa.csv``); the earlier form, relative to the project
    (``config/peers/cipfa.csv``), still found when the config directory has no such file."""
    path = Path(file)
    if path.is_absolute():
        return path
    here = paths.config_dir() / path
    if here.exists():
        return here
    old = paths.PROJECT_ROOT / path
    return old if old.exists() else here


def peer_groups_file(path: Path | str | None = None, data: dict | None = None) -> dict:
    """``config/peer_groups.yaml``, checked (with ``method: file``, the CSV it names too).
    ``data``: its content as recorded; the CSV is then not read (the analysis that recorded it
    checked it, and recorded its rows too)."""
    path = Path(path) if path else paths.config_dir() / "peer_groups.yaml"
    recorded = data is not None
    data = read_yaml(path) if data is None else data
    model = validate(PeerGroupsFile, data, path)
    if model.method == "file" and not recorded:
        peer_rows(model.file, named_by=path)
    return data


def hwb_codes() -> tuple[set[str], set[str]]:
    """(the HWB areas of ``config/geography/hwb_areas.csv``, the areas created later by a code
    change of ``config/geography/code_changes.csv``: BCP and the Dorset unitary from April 2019...)."""
    from carewatch import geography

    areas = set(geography.hwb_areas()["hwb_code"])
    later = set(geography.code_changes()["new_code"]) - areas
    return areas, later


def peer_rows(file: str, named_by: Path | str | None = None):
    """The supplied peer groups (``method: file``), checked: columns ``area_code``, ``peer_code``
    and optionally ``peer_rank`` (whole numbers from 1, each once per area); every code an HWB
    area (``config/geography/hwb_areas.csv``) or one created later (``code_changes.csv``); no
    pair twice, no area its own peer; a group for every area of ``hwb_areas.csv`` (an area
    created later may have one; without it, it has no peer group). Returns the rows with
    ``peer_rank`` as integers (numbered in file order when the column is absent)."""
    import pandas as pd

    path = peer_file_path(file)
    name = shown(path)
    if not path.is_file():
        where = f"{shown(named_by)}: " if named_by else ""
        raise ConfigError([f"{where}file {file!r}: {name} does not exist (a path relative to the config directory)"])
    try:
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError([f"{name}: not a CSV file: {str(err).splitlines()[0]}"]) from None
    problems = []
    missing = [c for c in ("area_code", "peer_code") if c not in rows]
    unknown = [c for c in rows.columns if c not in ("area_code", "peer_code", "peer_rank")]
    if missing:
        problems.append(f"{name}: no column {', '.join(missing)} (columns: area_code, peer_code and optionally peer_rank)")
    if unknown:
        problems.append(f"{name}: unknown column {', '.join(map(repr, unknown))} (columns: area_code, peer_code and optionally peer_rank)")
    if problems:
        raise ConfigError(problems)
    areas, later = hwb_codes()
    known = areas | later
    seen: dict[tuple[str, str], int] = {}
    ranks: dict[tuple[str, int], int] = {}
    for i, row in enumerate(rows.itertuples(index=False), start=2):  # line 1 is the header
        area, peer = row.area_code.strip(), row.peer_code.strip()
        for column, code in (("area_code", area), ("peer_code", peer)):
            if code not in known:
                problems.append(f"{name}: row {i}: {column} {code!r} is not an HWB area (config/geography/hwb_areas.csv, "
                                "or an area created later in code_changes.csv)")
        if area == peer and area:
            problems.append(f"{name}: row {i}: {area} is its own peer")
        if (area, peer) in seen:
            problems.append(f"{name}: row {i}: {peer} is listed again as a peer of {area} (first in row {seen[area, peer]})")
        seen.setdefault((area, peer), i)
        if "peer_rank" in rows:
            text = row.peer_rank.strip()
            if not re.fullmatch(r"[1-9][0-9]*", text):
                problems.append(f"{name}: row {i}: peer_rank must be a whole number from 1, not {text!r}")
            elif (area, int(text)) in ranks:
                problems.append(f"{name}: row {i}: peer_rank {text} of {area} again (first in row {ranks[area, int(text)]})")
            else:
                ranks[(area, int(text))] = i
    without = sorted(areas - {a for a, _ in seen})
    if without:
        shown_codes = ", ".join(without[:10]) + (f" and {len(without) - 10} more" if len(without) > 10 else "")
        problems.append(f"{name}: no peer group for {len(without)} HWB area(s) of config/geography/hwb_areas.csv: {shown_codes}")
    if problems:
        more = len(problems) - MAX_LINES_PER_FILE
        raise ConfigError(problems[:MAX_LINES_PER_FILE] + ([f"{name}: ... and {more} more problems"] if more > 0 else []))
    rows = rows.apply(lambda column: column.str.strip())
    if "peer_rank" not in rows:
        rows["peer_rank"] = rows.groupby("area_code").cumcount() + 1
    rows["peer_rank"] = rows["peer_rank"].astype(int)
    return rows


# ---------------------------------------------------------------- everything at once

def check_all(every_methodology: bool = False) -> list[str]:
    """Check every methodology config file (``every_methodology``: each file of
    ``config/methodology/``, not only the one in force); returns the files checked, or raises a
    :class:`ConfigError` with every problem found, one line each."""
    problems: list[str] = []
    checked: list[str] = []
    config = paths.config_dir()

    def attempt(path, check):
        checked.append(shown(path))
        try:
            return check()
        except ConfigError as err:
            problems.extend(err.problems)
            return None

    metrics = attempt(config / "metrics.yaml", metrics_file)
    usable = metrics if metrics is not None else {"metrics": []}
    name = attempt(config / "methodology" / "in_force.yaml", in_force_file)
    files = sorted((config / "methodology").glob("*.yaml")) if every_methodology else (
        [config / "methodology" / f"{name}.yaml"] if name else [])
    for path in files:
        if path.name != "in_force.yaml":
            attempt(path, lambda path=path: methodology_file(path, usable) if metrics is not None else None)
    attempt(config / "review_flags.yaml", lambda: rules_file(config / "review_flags.yaml", usable) if metrics is not None else None)
    tracked, labels = set(), []
    for path in sorted((config / "targets").glob("*.yaml")):
        target = attempt(path, lambda path=path: target_file(path, usable) if metrics is not None else None)
        if target is not None:
            tracked.add(target.metric)
            labels.append((path, target.name, target.version))
    problems.extend(one_file_per_set(labels))
    if len(tracked) > 1:
        problems.append(f"{shown(config / 'targets')}: the target sets track different metrics ({', '.join(sorted(tracked))}); "
                        "the report draws one metric against its targets")
    attempt(config / "peer_groups.yaml", peer_groups_file)
    if problems:
        raise ConfigError(problems)
    return checked
