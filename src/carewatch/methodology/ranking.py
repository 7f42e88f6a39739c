"""Ranking the health and wellbeing board areas, as the 2017-18 dashboard did.

Each area is ranked on each metric in the metric's direction (rank 1 = best); the overall
score combines the metric ranks with the methodology's weights (or, alternatively, weighted
z-scores), and the overall rank orders the scores. Everything a reader may want to change
lives in ``config/methodology/<name>.yaml``; ``config/methodology/in_force.yaml`` names the
file in force (the analysis, the report and the terminal summary all rank with it).

Rules (documented in the methodology file and the report):

- **Ties** share the best rank (competition ranking, ``1, 2, 2, 4``; ``ties: min``).
- **Missing metrics**: an area is ranked on the metrics it has; its weighted score is
  re-normalised over the weights of the metrics present, and it gets no overall rank when
  it has fewer than ``min_metrics`` values.
- **Who is ranked on each metric** (``metric_ranks_among``): ``eligible`` (the shipped
  methodology) ranks only the areas that get an overall rank, so every metric rank of the
  league table counts the same areas and an area without an overall rank does not push the
  others down on the metrics it has (in 2019-20 the old Dorset councils have ASCOF figures
  only); the others keep their values with a null rank. ``all`` (the default of a file
  without the key, as before) ranks every area with a value.
- England and any non-HWB aggregate rows are not ranked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from carewatch import paths
from carewatch.methodology import config_check

ENGLAND = "E92000001"


@dataclass(frozen=True)
class Methodology:
    name: str
    version: int
    method: str
    ties: str
    min_metrics: int
    weights: dict[str, float]
    directions: dict[str, str]
    periods: dict = field(default_factory=dict)
    metric_ranks_among: str = "all"
    period_metric: str | None = None  # the periods ranked are this metric's rolling years and financial years

    @property
    def label(self) -> str:
        return config_check.label(self.name, self.version)


IN_FORCE = "in_force.yaml"


def in_force() -> str:
    """The name of the methodology file in force (``methodology`` in ``config/methodology/in_force.yaml``)."""
    path = paths.config_dir() / "methodology" / IN_FORCE
    if not path.is_file():
        from carewatch.errors import MissingProjectFile

        raise MissingProjectFile(f"no {path}: it names the ranking methodology in force (methodology: <file name without .yaml>)")
    return config_check.in_force_file()


def methodology_path(name: str | None = None) -> Path:
    """The file of methodology ``name`` (a name in ``config/methodology/``, or a path ending in
    .yaml); by default the file in force (:func:`in_force`)."""
    name = name or in_force()
    return Path(name) if name.endswith(".yaml") else paths.config_dir() / "methodology" / f"{name}.yaml"


def load_methodology(name: str | None = None, metrics_config: dict | None = None) -> Methodology:
    """Read ``config/methodology/<name>.yaml`` (by default the file in force: :func:`in_force`);
    directions come from ``config/metrics.yaml``. Checked first (:mod:`config_check`): a
    mistake is a :class:`carewatch.errors.ConfigError` naming the file and the key."""
    path = methodology_path(name)
    if metrics_config is None:
        metrics_config = config_check.metrics_file()
    return _methodology(config_check.methodology_file(path, metrics_config), metrics_config)


def recorded_methodology(content: dict, file: str, metrics_config: dict) -> Methodology:
    """The methodology an analysis ranked with, from its recorded ``content`` (the checked file,
    :mod:`carewatch.provenance`), checked again as :func:`load_methodology` checks the file
    (``file`` names it in messages); directions from the ``metrics_config`` it recorded."""
    return _methodology(config_check.methodology_file(file, metrics_config, data=content), metrics_config)


def _methodology(checked: config_check.MethodologyFile, metrics_config: dict) -> Methodology:
    directions = {m["id"]: m["direction"] for m in metrics_config["metrics"]}
    weights = {m.id: float(m.weight) for m in checked.metrics}
    return Methodology(
        name=checked.name,
        version=checked.version,
        method=checked.method,
        ties=checked.ties,
        min_metrics=checked.min_metrics,
        weights=weights,
        directions={m: directions[m] for m in weights},
        periods=checked.periods.model_dump(exclude_none=True) if checked.periods else {},
        metric_ranks_among=checked.metric_ranks_among,  # a file without the key ranks as version 1 did ("all")
        period_metric=checked.period_metric,
    )


def rank_metrics(values: pd.DataFrame, methodology: Methodology) -> pd.DataFrame:
    """Rank every area on every methodology metric.

    ``values``: one row per area and metric with columns ``area_code``, ``metric_id``,
    ``value`` (one period). Returns those rows (England dropped) with ``metric_rank``
    (1 = best in the metric's direction), ``z_score`` (positive = better) and ``weight``.
    With ``metric_ranks_among: eligible`` the areas with fewer than ``min_metrics`` values
    keep their rows (and values) with a null ``metric_rank`` and ``z_score``.
    """
    frame = values[values["metric_id"].isin(methodology.weights) & (values["area_code"] != ENGLAND)]
    frame = frame.dropna(subset=["value"]).copy()
    ranked = pd.Series(True, index=frame.index)
    if methodology.metric_ranks_among == "eligible":
        ranked = frame.groupby("area_code")["metric_id"].transform("nunique") >= methodology.min_metrics
    ascending = frame["metric_id"].map(lambda m: methodology.directions[m] == "low")
    # Rank "better" descending: flip the sign of metrics where low is better.
    better = frame["value"].where(~ascending, -frame["value"]).where(ranked)
    grouped = better.groupby(frame["metric_id"])
    frame["metric_rank"] = grouped.rank(method=methodology.ties, ascending=False).astype("Int64")
    frame["z_score"] = (better - grouped.transform("mean")) / grouped.transform("std", ddof=0)
    frame["weight"] = frame["metric_id"].map(methodology.weights)
    return frame.sort_values(["metric_id", "metric_rank", "area_code"]).reset_index(drop=True)


def overall_ranking(metric_ranks: pd.DataFrame, methodology: Methodology, areas: list[str] | None = None) -> pd.DataFrame:
    """Combine metric ranks into an overall score and rank.

    ``weighted_ranks``: score = weighted mean of metric ranks (lower is better).
    ``weighted_z``: score = weighted mean of z-scores (higher is better).
    Areas listed in ``areas`` but without enough metrics appear with a null overall rank.
    """
    frame = metric_ranks.copy()
    column = "metric_rank" if methodology.method == "weighted_ranks" else "z_score"
    frame["weighted"] = frame[column].astype(float) * frame["weight"]
    per_area = frame.groupby("area_code").agg(
        weighted_sum=("weighted", "sum"),
        weight_sum=("weight", "sum"),
        metrics_ranked=("metric_id", "nunique"),  # metrics with a value (ranked when eligible)
    )
    per_area["score"] = per_area["weighted_sum"] / per_area["weight_sum"]
    if areas is not None:
        per_area = per_area.reindex(sorted(set(areas) | set(per_area.index)))
        per_area["metrics_ranked"] = per_area["metrics_ranked"].fillna(0).astype(int)
    eligible = per_area["metrics_ranked"] >= methodology.min_metrics
    per_area.loc[~eligible, "score"] = float("nan")
    ascending = methodology.method == "weighted_ranks"
    per_area["overall_rank"] = per_area["score"].rank(method=methodology.ties, ascending=ascending).astype("Int64")
    per_area["methodology"] = methodology.label
    result = per_area.reset_index()[["area_code", "score", "metrics_ranked", "overall_rank", "methodology"]]
    return result.sort_values(["overall_rank", "area_code"], na_position="last").reset_index(drop=True)


def with_change(current: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Add ``previous_rank`` and ``rank_change`` (positive = moved up the table)."""
    result = current.copy()
    if previous is None or previous.empty:
        result["previous_rank"] = pd.array([pd.NA] * len(result), dtype="Int64")
    else:
        result = result.merge(
            previous[["area_code", "overall_rank"]].rename(columns={"overall_rank": "previous_rank"}),
            on="area_code",
            how="left",
        )
    result["rank_change"] = result["previous_rank"] - result["overall_rank"]
    return result
