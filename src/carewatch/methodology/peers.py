"""Similar areas: each area's peer group and its position within it and against England.

Peer groups are the ``k`` nearest neighbours by a weighted Euclidean distance over
standardised characteristics from the ONS estimates (``config/peer_groups.yaml``), or a
supplied file such as CIPFA's nearest neighbours. Deterministic: ties in distance are broken
by area code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.spatial.distance import cdist

from carewatch import paths

ENGLAND = "E92000001"


def load_config(name: str = "peer_groups") -> dict:
    path = Path(name) if name.endswith(".yaml") else paths.config_dir() / f"{name}.yaml"
    return yaml.safe_load(path.read_text())


def characteristics(population: pd.DataFrame) -> pd.DataFrame:
    """Per area: the features named in the config, from single-year-of-age populations.

    ``population``: ``area_code``, ``age`` (0-90, 90 = 90+), ``population``.
    """
    pivot = population.pivot_table(index="area_code", columns="age", values="population", aggfunc="sum").fillna(0)
    ages = pivot.columns.to_numpy()
    total = pivot.sum(axis=1)
    out = pd.DataFrame(index=pivot.index)
    out["log_population_18plus"] = np.log(pivot.loc[:, ages >= 18].sum(axis=1))
    out["share_65plus"] = pivot.loc[:, ages >= 65].sum(axis=1) / total
    out["share_85plus"] = pivot.loc[:, ages >= 85].sum(axis=1) / total
    out["share_under_18"] = pivot.loc[:, ages < 18].sum(axis=1) / total
    return out


def nearest_neighbours(features: pd.DataFrame, weights: dict[str, float], k: int) -> pd.DataFrame:
    """``area_code``, ``peer_code``, ``peer_rank`` (1 = nearest), ``distance``."""
    cols = list(weights)
    x = features[cols].astype(float)
    z = (x - x.mean()) / x.std(ddof=0)
    z = z * np.sqrt(np.array([weights[c] for c in cols]))
    codes = list(z.index)
    dist = cdist(z.to_numpy(), z.to_numpy())
    rows = []
    for i, area in enumerate(codes):
        order = sorted((d, code) for j, (d, code) in enumerate(zip(dist[i], codes)) if j != i)
        for rank, (d, code) in enumerate(order[:k], start=1):
            rows.append({"area_code": area, "peer_code": code, "peer_rank": rank, "distance": float(d)})
    return pd.DataFrame(rows)


def peer_groups(population: pd.DataFrame | None = None, config: dict | None = None) -> pd.DataFrame:
    """``area_code``, ``peer_code``, ``peer_rank``, ``distance`` and ``mid_year`` (the estimate
    the group was computed from; null for a supplied file).

    ``population``: ``area_code``, ``age``, ``population`` and, when it holds more than one
    mid-year, ``mid_year``. Groups come from the configured ``mid_year``; with ``later_areas:
    first_mid_year`` an area that estimate does not have (created later: Bournemouth,
    Christchurch and Poole and the Dorset unitary in April 2019) gets its group from the first
    later estimate that has it, among that year's areas (:func:`later_area_groups`).
    """
    config = config or load_config()
    if config["method"] == "file":
        peers = pd.read_csv(paths.PROJECT_ROOT / config["file"], dtype=str)
        if "peer_rank" not in peers:
            peers["peer_rank"] = peers.groupby("area_code").cumcount() + 1
        peers["peer_rank"] = peers["peer_rank"].astype(int)
        return peers.assign(mid_year=pd.array([pd.NA] * len(peers), dtype="Int64"))  # an integer column, as computed groups have
    if config["method"] != "nearest_neighbours":
        raise ValueError(f"peer_groups: unknown method {config['method']!r}")
    year = int(config["mid_year"])
    if "mid_year" not in population:
        population = population.assign(mid_year=year)
    groups = nearest_neighbours(characteristics(population[population["mid_year"] == year]), config["features"], int(config["k"]))
    groups = groups.assign(mid_year=year)
    later = config.get("later_areas", "none")
    if later == "first_mid_year":
        groups = pd.concat([groups, later_area_groups(population[population["mid_year"] > year], groups, config)], ignore_index=True)
    elif later != "none":
        raise ValueError(f"peer_groups: unknown later_areas {later!r} (first_mid_year or none)")
    return groups


def later_area_groups(population: pd.DataFrame, groups: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Groups for the areas of ``population`` (later mid-years) that ``groups`` lacks: each from
    the first mid-year that has it, as its ``k`` nearest neighbours among that year's areas
    (characteristics standardised across them, as for the peer-group year)."""
    have, frames = set(groups["area_code"]), []
    for year, estimate in population.groupby("mid_year", sort=True):
        new = sorted(set(estimate["area_code"]) - have)
        if not new:
            continue
        nearest = nearest_neighbours(characteristics(estimate), config["features"], int(config["k"]))
        frames.append(nearest[nearest["area_code"].isin(new)].assign(mid_year=int(year)))
        have.update(new)
    return pd.concat(frames, ignore_index=True) if frames else groups.iloc[0:0]


def with_abolitions(groups: pd.DataFrame, code_changes: pd.DataFrame) -> pd.DataFrame:
    """Add ``peer_until``: the day a peer stopped existing (its council was merged or split
    away, ``config/geography/code_changes.csv``), null while it exists; and ``peer_from``: the
    day a peer made by a merge or split came into existence, null for one that existed before.
    Peer groups are fixed on the areas of the peer-group mid-year; from ``peer_until`` on an
    area's group is the peers that remain (Bournemouth, Poole and the old Dorset county leave
    their peers' groups in April 2019 instead of nulling every peer value after it). A group
    from a later estimate (:func:`later_area_groups`) can hold a peer made the same day (the
    Dorset unitary's group holds BCP): before ``peer_from`` it is not in the group."""
    changed = code_changes[code_changes["change"].isin(["merge", "split"])]
    out = groups.copy()
    out["peer_until"] = out["peer_code"].map(pd.to_datetime(changed.groupby("old_code")["effective_from"].min()))
    out["peer_from"] = out["peer_code"].map(pd.to_datetime(changed.groupby("new_code")["effective_from"].min()))
    return out


def compare(values: pd.DataFrame, peers: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """Each area's value against its peers and England, for one period.

    ``values``: ``area_code``, ``metric_id``, ``value``, ``ci_lower``, ``ci_upper``,
    ``numerator``, ``denominator`` (England included as E92000001).
    ``peers``: ``area_code``, ``peer_code`` and optionally ``peer_until`` and ``peer_from``
    (:func:`with_abolitions`); with ``period_start`` in ``values`` each value is compared
    with the peers that existed at its period's start (the league table's reablement is a
    lagged year, when peers abolished since still existed), as ``fct_peer_group_values``.
    Returns per area and metric: ``peer_value`` (peers' pooled value where every peer has a
    numerator, scaled by the area's own value-to-proportion multiplier, else the peers'
    denominator-weighted mean; null when a peer of the group has no value or no denominator,
    as in ``fct_peer_group_values``),
    ``england_value``, ``rank_in_group`` (1 = best of the area and its peers with a value,
    ties share the best rank), ``group_size``, ``vs_england`` and ``vs_peers`` ("better",
    "worse", "not significant", "not compared"). Areas without a value are left out.
    """
    columns = ["area_code", "metric_id", "value", "peer_value", "england_value", "rank_in_group", "group_size", "vs_england", "vs_peers"]
    present = values[values["value"].notna()]
    own = present[present["area_code"] != ENGLAND]
    if own.empty:
        return pd.DataFrame(columns=columns)
    england = present[present["area_code"] == ENGLAND].drop_duplicates("metric_id").set_index("metric_id")["value"]
    low_better = own["metric_id"].map(lambda m: directions[m] == "low").astype(bool)

    # one row per (area, metric, member of the group in that value's period)
    dates = [c for c in ("peer_until", "peer_from") if c in peers] if "period_start" in own else []
    links = peers[["area_code", "peer_code", *dates]].merge(
        own[["area_code", "metric_id", "value", *(["period_start"] if dates else []), *(["period_type"] if "period_type" in own else [])]],
        on="area_code")
    if dates:  # a rolling year's period_start is its last month: its window begins 11 months earlier
        links["window_start"] = pd.to_datetime(links["period_start"])
        if "period_type" in links:
            rolling = links["period_type"].eq("rolling_12m")
            links.loc[rolling, "window_start"] -= pd.DateOffset(months=11)
    if "peer_until" in dates:
        links = links[links["peer_until"].isna() | (pd.to_datetime(links["peer_until"]) > pd.to_datetime(links["period_start"]))]
    if "peer_from" in dates:  # a peer made by a change counts once it existed for the whole period
        links = links[links["peer_from"].isna() | (pd.to_datetime(links["peer_from"]) <= links["window_start"])]
    members = links.groupby(["area_code", "metric_id"]).size().rename("members")
    # ... and of those, the peers with a value
    links = links.merge(
        present[["area_code", "metric_id", "value", "numerator", "denominator"]].rename(columns={"area_code": "peer_code", "value": "peer"}),
        on=["peer_code", "metric_id"],
    )
    links["low_better"] = links["metric_id"].map(lambda m: directions[m] == "low").astype(bool)
    links["peer_is_better"] = links["peer"].lt(links["value"]).where(links["low_better"], links["peer"].gt(links["value"]))
    links["has_numerator"] = links["numerator"].notna()
    links["has_denominator"] = links["denominator"].notna()
    links["weighted"] = links["peer"] * links["denominator"]
    per_group = links.groupby(["area_code", "metric_id"]).agg(
        peers_with_value=("peer", "size"),
        peers_better=("peer_is_better", "sum"),
        peers_with_numerator=("has_numerator", "sum"),
        peers_with_denominator=("has_denominator", "sum"),
        numerator_sum=("numerator", "sum"),
        denominator_sum=("denominator", "sum"),
        weighted_sum=("weighted", "sum"),
    )
    out = own.join(per_group, on=["area_code", "metric_id"]).join(members, on=["area_code", "metric_id"])
    peers_with_value = out["peers_with_value"].fillna(0).astype(int)

    with np.errstate(divide="ignore", invalid="ignore"):
        own_proportion = out["numerator"] / out["denominator"]
        multiplier = (out["value"] / own_proportion).where(out["numerator"].ne(0))
        pooled = out["numerator_sum"] / out["denominator_sum"] * multiplier
    # as fct_peer_group_values: every peer needs a value and a denominator (else null, not
    # partial), and the denominators must not sum to zero
    complete = peers_with_value.eq(out["members"]) & out["peers_with_denominator"].eq(peers_with_value) \
        & out["denominator_sum"].gt(0)
    can_pool = out["peers_with_numerator"].eq(peers_with_value)
    # without numerators (the p90 length of stay): the denominator-weighted mean, as
    # fct_peer_group_values and the rolling figures weigh it
    weighted_mean = out["weighted_sum"] / out["denominator_sum"]
    out["peer_value"] = pooled.where(can_pool & np.isfinite(multiplier), weighted_mean).where(complete)
    out["england_value"] = out["metric_id"].map(england)
    out["rank_in_group"] = out["peers_better"].fillna(0).astype(int) + 1
    out["group_size"] = peers_with_value + 1
    out["vs_england"] = _significance(out, out["england_value"], low_better)
    out["vs_peers"] = _significance(out, out["peer_value"], low_better)
    return out.sort_values("metric_id", kind="stable")[columns].reset_index(drop=True)


def _significance(own: pd.DataFrame, comparator: pd.Series, low_better: pd.Series) -> pd.Series:
    """"better"/"worse" when the area's confidence interval lies wholly on one side of the
    comparator, "not significant" when it contains it, "not compared" without either."""
    lower, upper = own["ci_lower"], own["ci_upper"]
    above, below = lower > comparator, upper < comparator
    verdict = np.select(
        [comparator.isna() | lower.isna() | upper.isna(), above & low_better, above, below & low_better, below],
        ["not compared", "worse", "better", "better", "worse"],
        "not significant",
    )
    return pd.Series(verdict, index=own.index)
