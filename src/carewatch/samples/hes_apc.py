"""Write a synthetic record-level HES admitted patient care extract (Parquet), at any scale.

One row per consultant episode with the HES APC field names and codes: multi-episode spells
(admission fields repeated on every episode, ``disdate``/``dismeth`` only on the last),
emergency, elective and other admission methods (including 2A-2D), infants' age codes
7001-7007, deaths (dismeth 4, 5), still in hospital (8, no disdate), unknown (9),
unfinished episodes (epistat 1), residents of Wales, Scotland, unknown and missing
residence, long-tailed lengths of stay and weekend discharges. Written in chunks with a
ParquetWriter, so 25 million episodes need little memory. Deterministic per seed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from carewatch import hospital

SCHEMA = pa.schema([
    ("epikey", pa.int64()), ("susspellid", pa.int64()), ("epiorder", pa.int8()), ("epistat", pa.int8()),
    ("admimeth", pa.string()), ("admidate", pa.date32()), ("epistart", pa.date32()), ("epiend", pa.date32()),
    ("disdate", pa.date32()), ("dismeth", pa.int8()), ("startage", pa.int16()), ("resladst_ons", pa.string()),
])
ADMIMETH = ["21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D", "11", "12", "13", "31", "81"]
ADMIMETH_P = [0.40, 0.08, 0.05, 0.02, 0.02, 0.03, 0.02, 0.01, 0.005, 0.005, 0.20, 0.10, 0.03, 0.02, 0.02]
OUTSIDE = ["W06000015", "W06000023", "S12000036", "X99999998", None]


def _chunk(rng: np.random.Generator, n_spells: int, first_spell: int, first_episode: int, start: dt.date, days: int, districts: np.ndarray, weights: np.ndarray) -> pa.Table:
    per_spell = 1 + rng.poisson(0.35, n_spells)
    n = int(per_spell.sum())
    spell = np.repeat(np.arange(first_spell, first_spell + n_spells), per_spell)
    order = np.concatenate([np.arange(1, k + 1) for k in per_spell]).astype(np.int8)
    last = np.repeat(np.cumsum(per_spell), per_spell) - 1 == np.arange(n)
    base = np.datetime64(start)
    admi = base + rng.integers(0, days, n_spells).astype("timedelta64[D]")
    los = np.minimum(np.floor(rng.lognormal(1.4, 1.1, n_spells)).astype(int), 365)
    los[rng.random(n_spells) < 0.25] = 0  # same-day discharges
    dis = admi + los.astype("timedelta64[D]")
    age = np.where(rng.random(n_spells) < 0.02, rng.integers(7001, 7008, n_spells), rng.integers(0, 106, n_spells))
    age = np.where(rng.random(n_spells) < 0.5, rng.integers(60, 100, n_spells), age)
    meth = rng.choice(ADMIMETH, n_spells, p=np.array(ADMIMETH_P) / sum(ADMIMETH_P))
    outside = rng.random(n_spells) < 0.02
    residence = rng.choice(districts, n_spells, p=weights).astype(object)
    residence[outside] = rng.choice(np.array(OUTSIDE, dtype=object), outside.sum())
    dismeth = rng.choice([1, 2, 3, 4, 5, 8, 9], n_spells, p=[0.86, 0.01, 0.02, 0.06, 0.002, 0.02, 0.028])
    # spell-level values repeated on every episode
    idx = np.repeat(np.arange(n_spells), per_spell)
    admidate, disdate_full = admi[idx], dis[idx]
    frac_start = np.where(order == 1, 0, rng.random(n))
    epistart = admidate + (frac_start * los[idx]).astype("timedelta64[D]")
    epiend = np.where(last, disdate_full, np.maximum(epistart, admidate + (rng.random(n) * los[idx]).astype("timedelta64[D]")))
    still_in = dismeth[idx] == 8
    disdate = np.where(last & ~still_in, disdate_full, np.datetime64("NaT"))
    dm = np.where(last, dismeth[idx], -1)
    epistat = np.where(rng.random(n) < 0.01, 1, 3).astype(np.int8)
    frame = pd.DataFrame({
        "epikey": np.arange(first_episode, first_episode + n, dtype=np.int64),
        "susspellid": spell.astype(np.int64),
        "epiorder": order,
        "epistat": epistat,
        "admimeth": meth[idx],
        "admidate": admidate.astype("datetime64[D]"),
        "epistart": epistart.astype("datetime64[D]"),
        "epiend": np.asarray(epiend).astype("datetime64[D]"),
        "disdate": np.asarray(disdate).astype("datetime64[D]"),
        "dismeth": pd.array(np.where(dm < 0, 0, dm), dtype="Int8").astype("Int8"),
        "startage": age[idx].astype(np.int16),
        "resladst_ons": residence[idx],
    })
    frame.loc[dm < 0, "dismeth"] = pd.NA
    return pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)


def write_apc_extract(path: Path, n_episodes: int, fy: str = "2017-18", seed: int = 0, chunk_spells: int = 500_000) -> Path:
    """About ``n_episodes`` episodes of one financial year (stops at the first chunk past it)."""
    lookup = pd.read_csv(hospital.lookup_path(), dtype=str)
    districts = lookup["district_code"].to_numpy()
    weights = np.random.default_rng(seed).gamma(2.0, 1.0, len(districts))
    weights = weights / weights.sum()
    start = dt.date(int(fy[:4]), 4, 1)
    days = (dt.date(int(fy[:4]) + 1, 4, 1) - start).days
    path.parent.mkdir(parents=True, exist_ok=True)
    written = spells = 0
    with pq.ParquetWriter(str(path), SCHEMA, compression="zstd") as writer:
        chunk = 0
        while written < n_episodes:
            rng = np.random.default_rng([seed, chunk])
            want = max(1, min(chunk_spells, int((n_episodes - written) / 1.35) + 1))
            table = _chunk(rng, want, spells, written, start, days, districts, weights)
            table = table.slice(0, min(table.num_rows, n_episodes - written))
            writer.write_table(table)
            written += table.num_rows
            spells += want
            chunk += 1
    return path
