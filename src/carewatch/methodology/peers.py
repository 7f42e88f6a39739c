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
    config = config or load_config()
    if config["method"] == "file":
        peers = pd.read_csv(paths.PROJECT_ROOT / config["file"], dtype=str)
        if "peer_rank" not in peers:
            peers["peer_rank"] = peers.groupby("area_code").cumcount() + 1
        peers["peer_rank"] = peers["peer_rank"].astype(int)
        return peers
    if config["method"] != "nearest_neighbours":
        raise ValueError(f"peer_groups: unknown method {config['method']!r}")
    return nearest_neighbours(characteristics(population), config["features"], int(config["k"]))


def compare(values: pd.DataFrame, peers: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """Each area's value against its peers and England, for one period.

    ``values``: ``area_code``, ``metric_id``, ``value``, ``ci_lower``, ``ci_upper``,
    ``numerator``, ``denominator`` (England included as E92000001).
    Returns per area and metric: ``peer_value`` (peers' pooled value where numerators exist,
    else their mean), ``england_value``, ``rank_in_group`` (1 = best of the area and its peers),
    ``group_size``, ``vs_england`` and ``vs_peers`` ("better", "worse", "not significant").
    """
    rows = []
    for metric, group in values.groupby("metric_id"):
        by_area = group.set_index("area_code")
        england = by_area["value"].get(ENGLAND, np.nan)
        low_better = directions[metric] == "low"
        for area, own in by_area.drop(index=ENGLAND, errors="ignore").iterrows():
            if pd.isna(own["value"]):
                continue  # suppressed or missing: nothing to compare
            codes = [area] + list(peers.loc[peers["area_code"] == area, "peer_code"])
            members = by_area.reindex(codes).dropna(subset=["value"])
            peer_rows = members.drop(index=area, errors="ignore")
            if peer_rows["numerator"].notna().all() and len(peer_rows) and peer_rows["denominator"].sum() > 0:
                multiplier = own["value"] / (own["numerator"] / own["denominator"]) if own["numerator"] else np.nan
                pooled = peer_rows["numerator"].sum() / peer_rows["denominator"].sum()
                peer_value = pooled * multiplier if np.isfinite(multiplier) else peer_rows["value"].mean()
            else:
                peer_value = peer_rows["value"].mean()
            better_first = members["value"].rank(method="min", ascending=low_better)
            rows.append(
                {
                    "area_code": area,
                    "metric_id": metric,
                    "value": own["value"],
                    "peer_value": peer_value,
                    "england_value": england,
                    "rank_in_group": int(better_first[area]),
                    "group_size": len(members),
                    "vs_england": _significance(own, england, low_better),
                    "vs_peers": _significance(own, peer_value, low_better),
                }
            )
    return pd.DataFrame(rows)


def _significance(own: pd.Series, comparator: float, low_better: bool) -> str:
    lower, upper = own.get("ci_lower"), own.get("ci_upper")
    if pd.isna(comparator) or pd.isna(lower) or pd.isna(upper):
        return "not compared"
    if lower > comparator:
        return "worse" if low_better else "better"
    if upper < comparator:
        return "better" if low_better else "worse"
    return "not significant"
