"""A small synthetic warehouse (fct_metric_values and friends) for report and analysis tests.

Deterministic; 40 areas, April 2016 to March 2018. Built directly as tables, so tests of the
report and the analysis step do not depend on the ingest pipeline.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

ENGLAND = "E92000001"
METRICS = [
    (1, "emergency_admissions_65plus_per_100k", "Emergency admissions 65+ per 100,000", "admissions per 100,000 aged 65+", "low", "byar", 1e5),
    (2, "los_p90_days_65plus", "90th percentile length of stay 65+", "days", "low", "none", 1.0),
    (3, "delayed_days_per_day_per_100k_18plus", "Delayed days per day per 100,000 18+", "delayed days per day per 100,000 aged 18+", "low", "byar", 1e5),
    (4, "reablement_still_at_home_91d_65plus", "Still at home 91 days after reablement (2B1)", "proportion", "high", "wilson", 1.0),
    (5, "reablement_offered_65plus", "Offered reablement (2B2)", "proportion", "high", "wilson", 1.0),
    (6, "weekend_discharge_share", "Weekend discharges", "proportion", "high", "wilson", 1.0),
]


def build(path, n_areas: int = 40, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    areas = [f"E06{i:06d}" for i in range(n_areas)]
    months = pd.date_range("2016-04-01", "2018-03-01", freq="MS")
    level = {a: rng.uniform(5, 25) for a in areas}
    rows = []
    for a in areas:
        pop18 = int(rng.integers(100_000, 900_000))
        for m in months:
            end = m + pd.offsets.MonthEnd(0)
            rate = level[a] * (1.2 if m.month in (12, 1, 2) else 1.0) * (0.8 if m >= pd.Timestamp("2017-03-01") else 1.0)
            days = round(rate * pop18 * m.days_in_month / 1e5)
            for suffix, share in (("", 1.0), ("__nhs", 0.55), ("__social_care", 0.35), ("__both", 0.10)):
                rows.append((a, "month", m, end, METRICS[2][1] + suffix, round(days * share), pop18 * m.days_in_month, 1e5))
            adm = int(rng.poisson(2000))
            if a == areas[-1]:  # one area far above the rest: a funnel-plot outlier even with overdispersion
                adm = round(adm * 1.3)
            rows.append((a, "month", m, end, METRICS[0][1], adm, 100_000, 1e5))
            rows.append((a, "month", m, end, METRICS[1][1], None, 1800, 1.0, float(rng.uniform(15, 30))))
            rows.append((a, "month", m, end, METRICS[5][1], int(rng.binomial(1800, 0.2)), 1800, 1.0))
    mv = pd.DataFrame([r + (None,) * (9 - len(r)) for r in rows], columns=["area_code", "period_type", "period_start", "period_end", "metric_id", "numerator", "denominator", "multiplier", "value_override"])
    rolled = []
    for (area, metric), g in mv.groupby(["area_code", "metric_id"]):
        g = g.sort_values("period_start")
        for i in range(11, len(g)):
            w = g.iloc[i - 11 : i + 1]
            rolled.append((area, "rolling_12m", w["period_start"].iloc[-1], w["period_end"].iloc[-1], metric,
                           w["numerator"].sum() if w["numerator"].notna().all() else None, w["denominator"].sum(), w["multiplier"].iloc[0],
                           (w["value_override"] * w["denominator"]).sum() / w["denominator"].sum() if w["value_override"].notna().all() else None))
    mv = pd.concat([mv, pd.DataFrame(rolled, columns=mv.columns)], ignore_index=True)
    for metric, p in ((METRICS[3][1], 0.8), (METRICS[4][1], 0.03)):
        for a in areas:
            den = int(rng.integers(100, 2000))
            mv.loc[len(mv)] = (a, "financial_year", pd.Timestamp("2016-04-01"), pd.Timestamp("2017-03-31"), metric, int(rng.binomial(den, p)), den, 1.0, None)
    england = mv.groupby(["period_type", "period_start", "period_end", "metric_id"], as_index=False).agg(
        numerator=("numerator", "sum"), denominator=("denominator", "sum"), multiplier=("multiplier", "first"), value_override=("value_override", "mean"))
    england["area_code"] = ENGLAND
    mv = pd.concat([mv, england[mv.columns]], ignore_index=True)
    mv["value"] = mv["value_override"].fillna(mv["numerator"] / mv["denominator"] * mv["multiplier"])
    mv["ci_lower"], mv["ci_upper"] = mv["value"] * 0.95, mv["value"] * 1.05
    mv = mv.drop(columns="value_override")
    con = duckdb.connect(str(path))
    tables = {
        "fct_metric_values": mv,
        "stg_ons_mye": pd.DataFrame([(2016, a, age, int(rng.integers(500, 5000))) for a in areas for age in range(91)], columns=["mid_year", "area_code", "age", "population"]).assign(source_sha256="c" * 64),
        "ref_hwb_areas": pd.DataFrame({"hwb_code": areas, "hwb_name": [f"Area {i:02d}" for i in range(n_areas)]}),
        "ref_metrics": pd.DataFrame(METRICS, columns=["dashboard_number", "metric_id", "name", "unit", "direction", "ci_method", "multiplier"]),
    }
    for name, frame in tables.items():
        con.register("frame", frame)
        con.execute(f"create or replace table {name} as select * from frame")
        con.unregister("frame")
    con.execute("create or replace table int_area_map as select distinct area_code, area_code as hwb_code from stg_ons_mye")
    build_population(con)
    # data quality: two batches validated, one warning and one quarantined batch
    from carewatch import validation

    con.execute(validation.RESULTS_DDL)
    checks = [
        ("dtoc_la", "2018-03", 1, "a" * 64, "dtoc_la", "expect_column_values_to_be_between", "value", "blocking", True, None, 0, "[]", "min_value=0"),
        ("dtoc_la", "2018-03", 1, "a" * 64, "dtoc_la", "expect_column_values_to_not_be_null", "value", "warning", False, None, 41, "[]", "mostly=0.98"),
        ("hes_aggregate", "2018-02", 2, "b" * 64, "hes_aggregate", "expect_column_values_to_be_in_set", "period", "blocking", False, None, 600, "[]",
         "value_set=['2018-02-01']"),
    ]
    for row in checks:
        con.execute("insert into validation_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), null, null, null, ?)", list(row))
    con.execute("""insert into quarantine (source, period, file_version, sha256, parsed_path, blocking_failures, quarantined_at,
                      last_failed_at, attempts)
                  values ('hes_aggregate', '2018-02', 2, ?, '/x.parquet', 'FAIL blocking ... [period]', now(), now(), 1)""", ["b" * 64])
    # a corrected version 3 of that month was published and loaded since
    con.execute("create table land_hes_aggregate as select '2018-02' as _period, 3 as _version")
    # the files came from this machine, as make run's embedded sample publications do
    from carewatch import fetch

    con.execute(fetch.MANIFEST_DDL)
    con.execute("""insert into raw_manifest values ('dtoc_la', '2018-03', 1, 'http://127.0.0.1:8000/dtoc_la/2018-03.xls', now(),
                   200, 1000, ?, null, null, '/raw/dtoc_la/2018-03.xls')""", ["a" * 64])
    con.close()
    return areas


def build_population(con) -> None:
    """The conformed population tables from ``stg_ons_mye``, by the product's own models, as a
    warehouse build makes them (the analysis and the report read these, not the staging view)."""
    from carewatch import paths

    for model in ("int_population_age_hwb", "int_population_hwb"):
        con.execute((paths.sql_dir() / "conformed" / f"{model}.sql").read_text())
