"""Write the DTOC provider-level CSV from a month of LA figures.

Each council's delayed days (by agency, reason and care type) are spread over one or two
synthetic providers; summing the file's B columns by local authority and agency gives the
LA table's figures back. Period label: "MSitDT-SEPTEMBER-2019" up to November 2019, then a
financial-year column with a month name (both styles occur in real files).
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from carewatch import geography

LEGACY = {"E06000058": "738", "E06000059": "809"}


def write_month(path: Path, period: dt.date, values: pd.DataFrame, rng: np.random.Generator) -> Path:
    """``values``: World.dtoc_month(period)."""
    legacy = geography.councils().set_index("council_code")["legacy_code"]
    councils = values[values["row_type"] == "council"]
    reason = councils[(councils["breakdown"] == "reason") & (councils["category"] != "total")]
    agency = councils[(councils["breakdown"] == "agency") & (councils["category"] != "total")]
    acute = councils[(councils["breakdown"] == "care_type") & (councils["category"] == "acute")].set_index("code")["value"]
    total = councils[(councils["breakdown"] == "agency") & (councils["category"] == "total")].set_index("code")["value"]
    rows = []
    for code, days in total.dropna().items():
        if days <= 0:
            continue
        shares = agency[agency["code"] == code].set_index("category")["value"]
        by_reason = reason[reason["code"] == code].set_index("category")["value"]
        acute_share = acute.get(code, 0) / days
        provider = f"R{zlib.crc32(code.encode()) % 900 + 100:03d}"
        for reason_code, reason_days in by_reason.items():
            if reason_days <= 0:
                continue
            for care, care_share in (("Acute", acute_share), ("Non-Acute", 1 - acute_share)):
                care_days = int(round(reason_days * care_share)) if care == "Acute" else int(reason_days) - int(round(reason_days * acute_share))
                if care_days <= 0:
                    continue
                split = rng.multinomial(care_days, (shares / shares.sum()).to_numpy()) if shares.sum() > 0 else [care_days, 0, 0]
                patients = [int(np.ceil(d / 30)) for d in split]
                rows.append([provider, f"Provider {provider}", f"0{provider[1:]}", LEGACY.get(code) or legacy.get(code, code),
                             geography.name_of(code), care, reason_code, *[x for pair in zip(patients, split) for x in pair]])
    columns = ["Prov Code", "Prov Name", "Commissioner Code", "LA Code", "LA Name", "Type of Care", "Reason",
               "NHS A", "NHS B", "Social Care A", "Social Care B", "Both A", "Both B"]
    out = pd.DataFrame(rows, columns=columns)
    if period < dt.date(2019, 12, 1):
        out.insert(0, "Period", f"MSitDT-{period:%B}-{period:%Y}".upper())
    else:
        fy = period.year if period.month >= 4 else period.year - 1
        out.insert(0, "Period", f"{period:%B}".upper())
        out.insert(0, "Year", f"{fy}-{(fy + 1) % 100:02d}")
    for col in ("NHS B", "Social Care B", "Both B"):
        out[col] = out[col].map(lambda v: f"{int(v):,}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.to_csv(index=False).encode("cp1252"))
    return path
