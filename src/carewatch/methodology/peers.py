"""Similar areas: each area's peer group (its position within it and against England is
worked in SQL: ``include/sql/analysis/peer_comparison.sql``).

Peer groups are the ``k`` nearest neighbours by a weighted Euclidean distance over
standardised characteristics from the ONS estimates (``config/peer_groups.yaml``), or a
supplied file such as CIPFA's nearest neighbours. Deterministic: ties in distance are broken
by area code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from carewatch import geography, paths
from carewatch.methodology import config_check


def load_config(name: str = "peer_groups") -> dict:
    """``config/peer_groups.yaml``, checked (:mod:`config_check`), with the peer-group file it
    names when ``method: file``."""
    path = Path(name) if name.endswith(".yaml") else paths.config_dir() / f"{name}.yaml"
    return config_check.peer_groups_file(path)


def recorded_config(content: dict, file: str) -> dict:
    """The peer-group config an analysis grouped with, from its recorded ``content``
    (:mod:`carewatch.provenance`), checked again as :func:`load_config` checks the file."""
    return config_check.peer_groups_file(file, data=content)


def peer_file(config: dict) -> Path:
    """The supplied peer-group file of a ``method: file`` config, as :func:`peer_groups` reads it
    (``file`` relative to the config directory: :func:`config_check.peer_file_path`)."""
    return config_check.peer_file_path(config["file"])


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
    if config["method"] == "file":  # relative to the config directory; checked (config_check.peer_rows)
        peers = config_check.peer_rows(config["file"])
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
    out = groups.copy()
    out["peer_until"] = out["peer_code"].map(geography.boundary_change_days(code_changes, "old_code"))
    out["peer_from"] = out["peer_code"].map(geography.boundary_change_days(code_changes, "new_code"))
    return out
