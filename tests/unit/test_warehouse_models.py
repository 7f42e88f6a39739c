"""The SQL models on small hand-made inputs, with every expected figure worked out by hand.

Reference tables are built by hand here (not from config/), so the figures below depend only
on the SQL in include/sql/.
"""

from __future__ import annotations

import datetime as dt
import os
import re

import duckdb
import pandas as pd
import pytest

from carewatch import warehouse
from carewatch.errors import CarewatchError

HACKNEY, CITY, BARNSLEY, BARNSLEY_2019 = "E09000012", "E09000001", "E08000016", "E08000038"
BOURNEMOUTH, BCP = "E06000028", "E06000058"
ENGLAND = "E92000001"
DTOC = "delayed_days_per_day_per_100k_18plus"
MYE_COLUMNS = ["mid_year", "area_code", "area_name", "geography", "age", "population"]
# mid-2016: Hackney HWB (Hackney and the City of London) 110,000 aged 18+
HACKNEY_HWB_2016 = [(2016, HACKNEY, "Hackney", None, 20, 100_000), (2016, CITY, "City of London", None, 30, 10_000)]


def _ref(con):
    def table(name, frame):
        con.register("f", frame)
        con.execute(f"create or replace table {name} as select * from f")
        con.unregister("f")

    table("ref_councils", pd.DataFrame({
        "council_code": [HACKNEY, CITY, BARNSLEY, BOURNEMOUTH],
        "council_name": ["Hackney", "City of London", "Barnsley", "Bournemouth"],
        "legacy_code": ["", "", "", ""],
        "hwb_code": [HACKNEY, HACKNEY, BARNSLEY, BOURNEMOUTH],
        "region_name": ["London", "London", "Yorkshire", "South West"],
    }))
    table("ref_hwb_areas", pd.DataFrame({"hwb_code": [HACKNEY, BARNSLEY, BOURNEMOUTH], "hwb_name": ["Hackney", "Barnsley", "Bournemouth"], "region_name": ["", "", ""]}))
    table("ref_code_changes", pd.DataFrame({
        "old_code": [BARNSLEY, BOURNEMOUTH],
        "new_code": [BARNSLEY_2019, BCP],
        "effective_from": [dt.date(2019, 4, 1), dt.date(2019, 4, 1)],
        "change": ["alias", "merge"],
        "note": ["", ""],
    }))
    table("ref_legacy_codes", pd.DataFrame({"legacy_code": ["x"], "council_code": [HACKNEY]}))
    table("ref_metrics", pd.DataFrame([
        {"metric_id": "emergency_admissions_65plus_per_100k", "ci_method": "byar", "direction": "low", "multiplier": 1e5, "window_denominator": "mean"},
        {"metric_id": "los_p90_days_65plus", "ci_method": "none", "direction": "low", "multiplier": 1.0, "window_denominator": "sum"},
        {"metric_id": DTOC, "ci_method": "byar", "direction": "low", "multiplier": 1e5, "window_denominator": "sum"},
        {"metric_id": "reablement_still_at_home_91d_65plus", "ci_method": "wilson", "direction": "high", "multiplier": 1.0, "window_denominator": "sum"},
        {"metric_id": "reablement_offered_65plus", "ci_method": "wilson", "direction": "high", "multiplier": 1.0, "window_denominator": "sum"},
        {"metric_id": "weekend_discharge_share", "ci_method": "wilson", "direction": "high", "multiplier": 1.0, "window_denominator": "sum"},
    ]))
    table("ref_settings", pd.DataFrame({"confidence_level": [0.95], "ci_z": [1.959963984540054], "metrics_version": [1]}))
    table("ref_poisson_exact", warehouse.poisson_exact_limits(0.95))


def _load(con, tmp_path, source, period, version, rows, columns, sha256=None):
    frame = pd.DataFrame(rows, columns=columns)
    path = tmp_path / f"{source}-{period}-{version}.parquet"
    frame.to_parquet(path, index=False)
    return warehouse.load_parsed(con, source=source, period=period, version=version,
                                 sha256=sha256 or f"sha-{source}-{period}-v{version}", parsed_path=path)


DTOC_COLUMNS = ["period", "status", "published", "revised", "row_type", "la_code", "ons_code", "la_name", "council_code", "breakdown", "category", "measure", "value"]


def dtoc_rows(period, figures):
    """figures: (row_type, council_code, {category: value}) -> tidy agency rows."""
    rows = []
    for row_type, code, values in figures:
        for category, value in values.items():
            rows.append((pd.Timestamp(period), "Published", "", None, row_type, None, code, code, code, "agency", category, "delayed_days", value))
    return rows


@pytest.fixture
def built(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _ref(con)
    # ONS: mid-2016 on 2017 codes; mid-2018 on the following year's codes (recoded Barnsley, BCP)
    mye = [
        (2016, HACKNEY, "Hackney", None, 20, 80_000), (2016, HACKNEY, "Hackney", None, 70, 20_000),
        (2016, CITY, "City of London", None, 30, 10_000),
        (2016, BARNSLEY, "Barnsley", None, 40, 50_000), (2016, BARNSLEY, "Barnsley", None, 80, 10_000),
        (2016, BOURNEMOUTH, "Bournemouth", None, 50, 100_000), (2016, BOURNEMOUTH, "Bournemouth", None, 70, 40_000),
        (2016, "E07000001", "a district", None, 40, 999_999),  # lower tier: belongs to no HWB
        (2018, BARNSLEY_2019, "Barnsley", None, 40, 60_000),
        (2018, BCP, "BCP", None, 50, 300_000),
    ]
    _load(con, tmp_path, "ons_mye", "2016", 1, [r for r in mye if r[0] == 2016], MYE_COLUMNS)
    _load(con, tmp_path, "ons_mye", "2018", 1, [r for r in mye if r[0] == 2018], MYE_COLUMNS)
    # DTOC February 2017 (28 days), first published then revised; City of London shows "-"
    feb_v1 = [
        ("council", HACKNEY, {"total": 616.0, "nhs": 400.0, "social_care": 200.0, "both": 16.0}),
        ("council", CITY, {"total": None, "nhs": None, "social_care": None, "both": None}),
        ("council", BARNSLEY, {"total": 84.0, "nhs": 84.0, "social_care": 0.0, "both": 0.0}),
        ("special", None, {"total": 50.0, "nhs": 50.0, "social_care": 0.0, "both": 0.0}),
        ("england", None, {"total": 750.0, "nhs": 534.0, "social_care": 200.0, "both": 16.0}),
    ]
    feb_v2 = [(t, c, dict(v)) for t, c, v in feb_v1]
    feb_v2[0][2].update({"total": 644.0, "nhs": 428.0})
    _load(con, tmp_path, "dtoc_la", "2017-02", 1, dtoc_rows("2017-02-01", feb_v1), DTOC_COLUMNS)
    _load(con, tmp_path, "dtoc_la", "2017-02", 2, dtoc_rows("2017-02-01", feb_v2), DTOC_COLUMNS)
    # April 2018 (30 days): Bournemouth before the merge, Barnsley on its 2017 code
    _load(con, tmp_path, "dtoc_la", "2018-04", 1, dtoc_rows("2018-04-01", [
        ("council", BOURNEMOUTH, {"total": 420.0}), ("council", BARNSLEY, {"total": 180.0}),
    ]), DTOC_COLUMNS)
    # May 2019 (31 days): BCP exists
    _load(con, tmp_path, "dtoc_la", "2019-05", 1, dtoc_rows("2019-05-01", [("council", BCP, {"total": 930.0})]), DTOC_COLUMNS)
    # ASCOF 2016-17: Hackney and City add up; Barnsley's numerator is suppressed
    ascof_cols = ["year", "geo_code", "geo_name", "geo_level", "ons_code", "council_code", "measure_group", "measure_code", "disaggregation", "measure_type", "value", "suppression"]
    ascof = []
    for code, num, den in ((HACKNEY, 80.0, 100.0), (CITY, 5.0, 10.0), (BARNSLEY, None, 50.0)):
        ascof.append(("2016-17", "x", code, "Council", code, code, "2B1", "2B1", "Total", "Numerator", num, "[c]" if num is None else None))
        ascof.append(("2016-17", "x", code, "Council", code, code, "2B1", "2B1", "Total", "Denominator", den, None))
        ascof.append(("2016-17", "x", code, "Council", code, code, "2B1", "2B16574", "65-74", "Numerator", 1.0, None))
    # the file's own England row counts every council, Barnsley's suppressed figures included
    ascof_2015 = [(row[0].replace("2016-17", "2015-16"), *row[1:]) for row in ascof]  # 2015-16: no England row
    ascof.append(("2016-17", "E92000001", "England", "England", "E92000001", None, "2B1", "2B1", "Total", "Numerator", 120.0, None))
    ascof.append(("2016-17", "E92000001", "England", "England", "E92000001", None, "2B1", "2B1", "Total", "Denominator", 160.0, None))
    _load(con, tmp_path, "ascof", "2016-17", 1, ascof, ascof_cols)
    _load(con, tmp_path, "ascof", "2015-16", 1, ascof_2015, ascof_cols)
    # HES aggregate February 2017 for Hackney
    hes_cols = ["period", "area_code", "area_name", "measure", "value"]
    hes = [(pd.Timestamp("2017-02-01"), HACKNEY, "Hackney", m, v) for m, v in (
        ("emergency_admissions_65plus", 500.0), ("discharges_65plus", 150.0), ("los_p90_days", 12.0), ("weekend_discharges_65plus", 30.0))]
    _load(con, tmp_path, "hes_aggregate", "2017-02", 1, hes, hes_cols)
    built = warehouse.build_models(con, reference=False)
    # the tables and views built, each countable (the build task counts them); macros are run, not listed
    assert built[-1] == "fct_metric_values" and "statistics" not in built and "comparison" not in built
    for model in built:  # a macro's name here would raise: no such table
        con.execute(f"select count(*) from {model}")
    yield con
    con.close()


def value(con, area, metric, period_start, period_type="month"):
    row = con.execute(
        "select numerator, denominator, value from fct_metric_values where area_code = ? and metric_id = ? and period_start = ? and period_type = ?",
        [area, metric, period_start, period_type],
    ).fetchone()
    assert row is not None, (area, metric, period_start)
    return row


def test_delayed_days_rate_uses_the_latest_version_and_sums_the_hwb_councils(built):
    numerator, denominator, rate = value(built, HACKNEY, DTOC, dt.date(2017, 2, 1))
    # revised Hackney 644 days (+ City "-" adds nothing) over 28 days and 110,000 aged 18+
    assert numerator == 644
    assert denominator == 110_000 * 28
    assert rate == pytest.approx(644 / 28 / 110_000 * 1e5)  # 20.909
    nhs = value(built, HACKNEY, DTOC + "__nhs", dt.date(2017, 2, 1))[2]
    assert nhs == pytest.approx(428 / 28 / 110_000 * 1e5)


def test_the_multiplier_is_the_metrics_configured_one(built):
    # config/metrics.yaml's multiplier (ref_metrics) scales the value and its interval, the
    # breakdowns' too; a per-1,000 rate instead of per-100,000 is a config change, not SQL
    before = built.execute("select ci_lower, ci_upper from fct_metric_values where area_code = ? and metric_id = ? "
                           "and period_type = 'month' and period_start = '2017-02-01'", [HACKNEY, DTOC]).fetchone()
    built.execute("update ref_metrics set multiplier = 1000 where metric_id = ?", [DTOC])
    built.execute("update ref_metrics set multiplier = 100 where metric_id = 'weekend_discharge_share'")
    warehouse.build_models(built, reference=False)
    rate = value(built, HACKNEY, DTOC, dt.date(2017, 2, 1))[2]
    assert rate == pytest.approx(644 / 28 / 110_000 * 1000)  # 0.209
    assert value(built, HACKNEY, DTOC + "__nhs", dt.date(2017, 2, 1))[2] == pytest.approx(428 / 28 / 110_000 * 1000)
    assert value(built, HACKNEY, "weekend_discharge_share", dt.date(2017, 2, 1))[2] == pytest.approx(30 / 150 * 100)  # 20%
    after = built.execute("select multiplier, ci_lower, ci_upper from fct_metric_values where area_code = ? and metric_id = ? "
                          "and period_type = 'month' and period_start = '2017-02-01'", [HACKNEY, DTOC]).fetchone()
    assert after[0] == 1000
    assert after[1:] == pytest.approx([limit / 100 for limit in before])


def test_england_is_the_sum_of_hwb_areas_not_the_files_england_row(built):
    numerator, denominator, rate = value(built, ENGLAND, DTOC, dt.date(2017, 2, 1))
    # 644 + 84 = 728 days (special rows and the England row excluded) over 170,000 x 28
    assert numerator == 728
    assert rate == pytest.approx(728 / 28 / 170_000 * 1e5)  # 15.294


def test_earlier_versions_are_kept_for_as_of_questions(built):
    v1 = built.execute(
        "select value from land_dtoc_la where _period = '2017-02' and _version = 1 and council_code = ? and category = 'total'",
        [HACKNEY],
    ).fetchone()[0]
    assert v1 == 616


def test_population_vintage_falls_back_across_a_recode_and_a_merge(built):
    # April 2018 is FY 2018-19 -> mid-2018. Bournemouth is not in mid-2018 (published on BCP's
    # code), so its rate uses mid-2016: 420 / 30 / 140,000 x 100,000 = 10.0.
    assert value(built, BOURNEMOUTH, DTOC, dt.date(2018, 4, 1))[2] == pytest.approx(10.0)
    # Barnsley's mid-2018 row carries the 2019 code E08000038, mapped back to the same HWB:
    # 180 / 30 / 60,000 x 100,000 = 10.0
    assert value(built, BARNSLEY, DTOC, dt.date(2018, 4, 1))[2] == pytest.approx(10.0)
    # BCP in May 2019 (FY 2019-20, no mid-2019 loaded) uses mid-2018: 930 / 31 / 300,000 x 100,000 = 10.0
    assert value(built, BCP, DTOC, dt.date(2019, 5, 1))[2] == pytest.approx(10.0)


def test_ascof_two_council_hwb_is_summed_and_suppression_is_not_partial(built):
    numerator, denominator, share = value(built, HACKNEY, "reablement_still_at_home_91d_65plus", dt.date(2016, 4, 1), "financial_year")
    assert (numerator, denominator) == (85, 110)
    assert share == pytest.approx(85 / 110)
    assert value(built, BARNSLEY, "reablement_still_at_home_91d_65plus", dt.date(2016, 4, 1), "financial_year")[2] is None
    # England is the publication's England row: 120 / 160, Barnsley's suppressed figures included
    assert value(built, ENGLAND, "reablement_still_at_home_91d_65plus", dt.date(2016, 4, 1), "financial_year")[:2] == (120, 160)
    # a year without an England row sums the areas with both figures, leaving Barnsley out
    # entirely rather than adding its denominator alone: (80 + 5) / (100 + 10)
    assert value(built, ENGLAND, "reablement_still_at_home_91d_65plus", dt.date(2015, 4, 1), "financial_year")[:2] == (85, 110)


def test_hospital_metrics_from_the_aggregate(built):
    day = dt.date(2017, 2, 1)
    assert value(built, HACKNEY, "emergency_admissions_65plus_per_100k", day)[2] == pytest.approx(500 / 20_000 * 1e5)
    assert value(built, HACKNEY, "weekend_discharge_share", day)[2] == pytest.approx(0.2)
    assert value(built, HACKNEY, "los_p90_days_65plus", day)[2] == pytest.approx(12.0)


def test_confidence_intervals_bracket_the_value_and_lineage_names_the_files(built):
    lower, upper, files = built.execute(
        "select ci_lower, ci_upper, source_files from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'month' and period_start = ?",
        [HACKNEY, DTOC, dt.date(2017, 2, 1)],
    ).fetchone()
    assert lower < 644 / 28 / 110_000 * 1e5 < upper
    assert "sha-dtoc_la-2017-02-v2" in files and "sha-ons_mye-2016-v1" in files
    assert "sha-dtoc_la-2017-02-v1" not in files


def test_rebuilding_is_idempotent(built):
    before = built.execute("select * from fct_metric_values order by all").fetchall()
    warehouse.build_models(built, reference=False)
    assert built.execute("select * from fct_metric_values order by all").fetchall() == before


def test_reloading_a_period_replaces_it_without_duplicates(built, tmp_path):
    rows = dtoc_rows("2019-05-01", [("council", BCP, {"total": 930.0})])
    landed = "select _sha256, value, _loaded_at from land_dtoc_la where _period = '2019-05'"
    before = built.execute(landed).fetchall()
    assert len(before) == 1

    # the same version from the same file: left as it is, _loaded_at included ("as of" answers stay)
    again = _load(built, tmp_path, "dtoc_la", "2019-05", 1, rows, DTOC_COLUMNS)
    assert again == warehouse.Load(rows=1, skipped=True)
    assert built.execute(landed).fetchall() == before

    # the same version from another file (a corrected re-download): replaced, not duplicated
    corrected = dtoc_rows("2019-05-01", [("council", BCP, {"total": 931.0})])
    replaced = _load(built, tmp_path, "dtoc_la", "2019-05", 1, corrected, DTOC_COLUMNS, sha256="sha-corrected")
    assert replaced == warehouse.Load(rows=1, skipped=False)
    assert [(sha, value) for sha, value, _ in built.execute(landed).fetchall()] == [("sha-corrected", 931.0)]


def test_a_failed_load_leaves_the_previous_state(built, tmp_path):
    before = built.execute("select count(*) from land_dtoc_la").fetchone()[0]
    broken = tmp_path / "broken.parquet"
    pd.DataFrame({"period": [pd.Timestamp("2017-03-01")], "value": ["not a number"]}).to_parquet(broken)
    with pytest.raises(duckdb.Error):
        warehouse.load_parsed(built, source="dtoc_la", period="2017-03", version=1, sha256="x", parsed_path=broken)
    assert built.execute("select count(*) from land_dtoc_la").fetchone()[0] == before


def _monthly_history(con) -> None:
    """February 2017 was first published (v1: Hackney 616 days) in April, revised (v2: 644) in
    May; the population estimates were loaded before both; each load's run built the warehouse
    an hour later."""
    con.execute("update land_ons_mye set _loaded_at = '2017-01-05 10:00:00+00'")
    con.execute("update land_dtoc_la set _loaded_at = '2017-04-13 10:00:00+00' where _period = '2017-02' and _version = 1")
    con.execute("update land_dtoc_la set _loaded_at = '2017-05-11 10:00:00+00' where _period = '2017-02' and _version = 2")
    con.execute("delete from warehouse_builds")
    con.execute("insert into warehouse_builds values ('2017-01-05 11:00:00+00'), ('2017-04-13 11:00:00+00'), ('2017-05-11 11:00:00+00')")
    con.execute("update warehouse_builds_since set recorded_from = '2017-01-05 11:00:00+00'")


def test_as_of_answers_with_what_was_loaded_by_then(built):
    _monthly_history(built)
    asked = "select numerator, value from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'month' and period_start = '2017-02-01'"
    with warehouse.as_of(built, "2017-04-30") as then:
        assert then.execute(asked, [HACKNEY, DTOC]).fetchall() == [(616, pytest.approx(616 / 28 / 110_000 * 1e5))]
    with warehouse.as_of(built, "2017-05-31") as later:
        assert later.execute(asked, [HACKNEY, DTOC]).fetchall() == [(644, pytest.approx(644 / 28 / 110_000 * 1e5))]
    with warehouse.as_of(built, "2017-03-31") as before:  # nothing of February published yet
        assert before.execute(asked, [HACKNEY, DTOC]).fetchall() == []
    # a bare date takes the whole day: the revision loaded at 10:00 on 11 May counts on that date
    with warehouse.as_of(built, "2017-05-11") as that_day:
        assert that_day.execute(asked, [HACKNEY, DTOC]).fetchall()[0][0] == 644
    with warehouse.as_of(built, "2017-05-11 09:00:00+00") as that_morning:
        assert that_morning.execute(asked, [HACKNEY, DTOC]).fetchall()[0][0] == 616
    # the warehouse itself is untouched: the latest version
    assert built.execute(asked, [HACKNEY, DTOC]).fetchall() == [(644, pytest.approx(644 / 28 / 110_000 * 1e5))]



def test_a_rejected_version_is_left_out_of_the_builds_until_withdrawn_and_as_of_honours_when(built):
    # a failure drill: a file that passed its suite but was wrong (England doubled) was the
    # latest version, and the cross-source check refused every build until NHS England revised
    # it; an operator can now reject that version: the builds use the period's previous one
    from carewatch.errors import CarewatchError

    asked = "select numerator from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'month' and period_start = '2017-02-01'"
    _monthly_history(built)
    done = warehouse.reject_version(built, source="dtoc_la", period="2017-02", reason="England row doubled")
    assert done == {"version": 2, "in_use": 1}
    assert built.execute(asked, [HACKNEY, DTOC]).fetchall() == [(644,)]  # until the next build
    warehouse.build_models(built, reference=False)
    assert built.execute(asked, [HACKNEY, DTOC]).fetchall() == [(616,)]  # v1 (Hackney 616 days)
    [(version, sha256, reason, withdrawn)] = built.execute("select version, sha256, reason, withdrawn_at from rejected_versions "
                                                           "where source = 'dtoc_la' and period = '2017-02'").fetchall()
    assert (version, sha256, reason, withdrawn) == (2, "sha-dtoc_la-2017-02-v2", "England row doubled", None)
    # what was reported before the rejection still reads v2; after it, v1
    with warehouse.as_of(built, "2017-05-31") as then:
        assert then.execute(asked, [HACKNEY, DTOC]).fetchall() == [(644,)]
    with warehouse.as_of(built, dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)) as now:
        assert now.execute(asked, [HACKNEY, DTOC]).fetchall() == [(616,)]
    # refused: the same version again (named, or the same command twice: it must not reject v1
    # too), a version not loaded, no reason; and leaving no version in use unless meant
    with pytest.raises(CarewatchError, match="v2 is rejected already: England row doubled"):
        warehouse.reject_version(built, source="dtoc_la", period="2017-02", version=2, reason="again")
    with pytest.raises(CarewatchError, match="the latest version, v2, is rejected already .England row doubled.; to reject an earlier one too, name it with --version"):
        warehouse.reject_version(built, source="dtoc_la", period="2017-02", reason="England row doubled")
    with pytest.raises(CarewatchError, match="version 3 is not loaded .loaded: v1, v2."):
        warehouse.reject_version(built, source="dtoc_la", period="2017-02", version=3, reason="x")
    with pytest.raises(CarewatchError, match="needs a reason"):
        warehouse.reject_version(built, source="dtoc_la", period="2017-02", reason=" ")
    with pytest.raises(CarewatchError, match="no version is loaded"):
        warehouse.reject_version(built, source="dtoc_la", period="2016-02", reason="x")
    with pytest.raises(CarewatchError, match="rejecting v1 leaves no version of the period in use.*--leave-empty"):
        warehouse.reject_version(built, source="dtoc_la", period="2017-02", version=1, reason="also wrong")
    assert warehouse.reject_version(built, source="dtoc_la", period="2017-02", version=1, reason="also wrong",
                                    leave_empty=True) == {"version": 1, "in_use": None}
    warehouse.build_models(built, reference=False)
    assert built.execute(asked, [HACKNEY, DTOC]).fetchall() == []
    # withdrawn: the version is used again; the rejection's row stays, withdrawn_at set
    rejected_while_both = dt.datetime.now(dt.timezone.utc)
    assert warehouse.withdraw_rejection(built, source="dtoc_la", period="2017-02", version=2) == {"version": 2, "in_use": 2}
    warehouse.build_models(built, reference=False)
    assert built.execute(asked, [HACKNEY, DTOC]).fetchall() == [(644,)]
    with pytest.raises(CarewatchError, match="v2 is not rejected .rejected: v1."):
        warehouse.withdraw_rejection(built, source="dtoc_la", period="2017-02", version=2)
    # rejected again later: as of any moment, the rejections that stood then (an on-call drill
    # found a withdrawal rewrote what as-of said of the time v2 had been rejected)
    warehouse.withdraw_rejection(built, source="dtoc_la", period="2017-02", version=1)
    withdrawn_both = dt.datetime.now(dt.timezone.utc)
    warehouse.reject_version(built, source="dtoc_la", period="2017-02", version=2, reason="wrong after all")
    assert built.execute("select version, withdrawn_at is null from rejected_versions order by rejected_at").fetchall() == [
        (2, False), (1, False), (2, True)]
    warehouse.build_models(built, reference=False)
    with warehouse.as_of(built, rejected_while_both) as both_rejected:
        assert both_rejected.execute(asked, [HACKNEY, DTOC]).fetchall() == []
    with warehouse.as_of(built, withdrawn_both) as none_rejected:
        assert none_rejected.execute(asked, [HACKNEY, DTOC]).fetchall() == [(644,)]
    with warehouse.as_of(built, dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)) as now:
        assert now.execute(asked, [HACKNEY, DTOC]).fetchall() == [(616,)]



def test_every_staging_model_of_a_landing_table_leaves_rejected_versions_out():
    # a staging model written without the anti join would keep using a rejected version
    # (README "How to add a source", step 3): each model that reads land_<source> names it
    from carewatch import paths

    checked = set()
    for sql in sorted((paths.PROJECT_ROOT / "include" / "sql" / "staging").glob("*.sql")):
        text = sql.read_text()
        for table in set(re.findall(r"\bfrom\s+(land_[a-z_]+)", text)):
            source = table.removeprefix("land_")
            assert "anti join rejected_versions" in text and f"rejected.source = '{source}'" in text, sql.name
            assert "rejected.withdrawn_at is null" in text, sql.name
            checked.add(source)
    assert checked == {"ascof", "dtoc_la", "dtoc_national", "hes_aggregate", "ons_mye"}

def test_carewatch_reject_says_which_version_the_next_build_uses(built, tmp_path, monkeypatch, capsys):
    from carewatch import cli

    built.close()
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(tmp_path / "w.duckdb"))
    assert cli.main(["reject", "dtoc_la", "2017-02", "--reason", "England row doubled"]) == 0
    assert capsys.readouterr().out.startswith("dtoc_la 2017-02 v2: rejected (England row doubled); the next warehouse build uses v1.")
    assert cli.main(["reject", "dtoc_la", "2017-02", "--version", "2", "--withdraw"]) == 0
    assert capsys.readouterr().out.startswith("dtoc_la 2017-02 v2: rejection withdrawn; the next warehouse build uses v2.")
    for argv, error in [
        (["reject", "dtoc_la", "2017-02"], "carewatch: a rejection needs a reason (--reason), kept in rejected_versions"),
        (["reject", "dtoc_la", "2017-02", "--withdraw"], "carewatch: --withdraw takes the --version whose rejection it withdraws, and no --reason or --leave-empty"),
        (["reject", "dtoc_la", "2017-02", "--version", "2", "--withdraw", "--reason", "x"], "carewatch: --withdraw takes the --version whose rejection it withdraws, and no --reason or --leave-empty"),
        (["reject", "dtoc_la", "2017-2", "--reason", "x"], None),
        (["reject", "dtoc_provider", "2019-10", "--reason", "x"], "carewatch: dtoc_provider 2019-10: no version is loaded in land_dtoc_provider"),
        (["reject", "nosuch", "2017-02", "--reason", "x"], None),
    ]:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        if error:
            assert err == error
    # a home that holds no warehouse: said, and no empty warehouse made there
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(tmp_path / "elsewhere" / "w.duckdb"))
    assert cli.main(["reject", "dtoc_la", "2017-02", "--reason", "x"]) == 2
    assert capsys.readouterr().err.startswith("carewatch: no warehouse at ")
    assert not (tmp_path / "elsewhere").exists()

def test_before_the_first_build_nothing_was_reported(built):
    # the population estimates loaded on 5 January, before the warehouse was first built at
    # 11:00: at 10:30 nothing had been reported, though a version had been loaded
    _monthly_history(built)
    asked = "select count(*) from fct_metric_values"
    with warehouse.as_of(built, "2017-01-05 10:30:00+00") as then:
        assert then.execute(asked).fetchone()[0] == 0
    assert warehouse.reported_cutoff(built, warehouse.as_of_cutoff(built, "2017-01-05 10:30:00+00")) == warehouse.NOTHING_REPORTED
    assert warehouse.first_built_at(built) == dt.datetime(2017, 1, 5, 11, tzinfo=dt.timezone.utc)
    assert built.execute("select earlier_builds from warehouse_builds_since").fetchall() == [(False,)]


def test_a_warehouse_of_an_earlier_release_answers_from_load_time_before_its_first_recorded_build(built, tmp_path):
    # its marts were built before builds were recorded: the first recorded build says so, and
    # before it load time stands for report time
    _monthly_history(built)
    built.execute("delete from warehouse_builds where built_at < '2017-05-11'")
    built.execute("drop table warehouse_builds_since")
    built.execute("drop table warehouse_builds")
    warehouse.build_models(built, reference=False)  # the first build of this release (now)
    assert built.execute("select earlier_builds from warehouse_builds_since").fetchall() == [(True,)]
    asked = "select numerator from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'month' and period_start = '2017-02-01'"
    with warehouse.as_of(built, "2017-04-30") as then:
        assert then.execute(asked, [HACKNEY, DTOC]).fetchall() == [(616,)]
    # a new warehouse's first build records that no marts were there before it
    fresh = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    _ref(fresh)
    warehouse.build_models(fresh, reference=False)
    assert fresh.execute("select earlier_builds from warehouse_builds_since").fetchall() == [(False,)]
    warehouse.build_models(fresh, reference=False)
    assert fresh.execute("select count(*) from warehouse_builds_since").fetchone()[0] == 1  # recorded once


def test_a_new_warehouse_whose_first_build_rolled_back_reported_nothing(tmp_path):
    # versions loaded, and the first build refused by a blocking check: no build was committed,
    # so nothing was ever reported (not: everything loaded, by load time)
    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    _ref(con)
    _load(con, tmp_path, "ons_mye", "2016", 1, HACKNEY_HWB_2016, MYE_COLUMNS)
    _load(con, tmp_path, "dtoc_la", "2017-02", 1, dtoc_rows("2017-02-01", [("council", HACKNEY, {"total": 616.0})]), DTOC_COLUMNS)
    with pytest.raises(CarewatchError):
        warehouse.build_models(con, reference=False, check=lambda c: (_ for _ in ()).throw(CarewatchError("refused")))
    assert not warehouse.table_exists(con, "warehouse_builds") and not warehouse.table_exists(con, "fct_metric_values")
    with warehouse.as_of(con, "2100-01-01") as then:
        assert then.execute("select count(*) from fct_metric_values").fetchone()[0] == 0
    warehouse.build_models(con, reference=False)  # committed: now it was reported
    with warehouse.as_of(con, "2100-01-01") as then:
        assert then.execute("select count(*) from fct_metric_values where area_code = ?", [HACKNEY]).fetchone()[0] > 0


def test_as_of_answers_with_what_a_committed_build_read_not_with_a_rolled_back_load(built):
    # February 2017's revision (v2) loaded on 11 May, but the warehouse checks refused it (the
    # build rolled back): what was reported stayed v1 until a build committed with v2 on 1 June
    builds = built.execute("select count(*) from warehouse_builds").fetchone()[0]
    with pytest.raises(CarewatchError):
        warehouse.build_models(built, reference=False, check=lambda con: (_ for _ in ()).throw(CarewatchError("refused")))
    assert built.execute("select count(*) from warehouse_builds").fetchone()[0] == builds  # rolled back with it
    built.execute("delete from warehouse_builds")
    built.execute("update land_ons_mye set _loaded_at = '2017-01-05 10:00:00+00'")
    built.execute("update land_dtoc_la set _loaded_at = '2017-04-13 10:00:00+00' where _period = '2017-02' and _version = 1")
    built.execute("update land_dtoc_la set _loaded_at = '2017-05-11 10:00:00+00' where _period = '2017-02' and _version = 2")
    built.execute("insert into warehouse_builds values ('2017-01-05 11:00:00+00'), ('2017-04-13 11:00:00+00'), ('2017-06-01 08:00:00+00')")
    asked = "select numerator from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'month' and period_start = '2017-02-01'"
    for when, numerator in (("2017-04-12", None),          # loaded the next day
                            ("2017-04-13 10:30:00+00", None),  # loaded, not yet built
                            ("2017-04-13 11:00:00+00", 616),   # the build that read it
                            ("2017-05-31", 616),           # v2 loaded, its build rolled back
                            ("2017-06-01 08:00:00+00", 644)):
        with warehouse.as_of(built, when) as then:
            assert [n for (n,) in then.execute(asked, [HACKNEY, DTOC]).fetchall()] == ([] if numerator is None else [numerator]), when


def test_carewatch_as_of_prints_what_was_reported(built, tmp_path):
    import shutil
    import subprocess
    import sys

    _monthly_history(built)
    built.execute("update land_ascof set _loaded_at = '2017-01-05 10:00:00+00'")
    built.execute("checkpoint")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(built.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0], copy)
    env = {**__import__("os").environ, "CAREWATCH_WAREHOUSE": str(copy)}
    cmd = [sys.executable, "-m", "carewatch.cli", "as-of", "Hackney", "2017-02", "--as-of", "2017-04-30", "--metric", DTOC]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.strip().splitlines()
    record = dict(zip(header.split(","), row.split(",")))
    assert record["area_code"] == HACKNEY and float(record["numerator"]) == 616 and record["source_files"] == "sha-dtoc_la-2017-02-v1;sha-ons_mye-2016-v1"
    assert record["period_type"] == "month" and record["period_end"] == "2017-02-28"

    # a yearly metric: the financial year holding the month (ASCOF 2016-17: Hackney HWB 80 + 5 of 100 + 10)
    ascof = [sys.executable, "-m", "carewatch.cli", "as-of", "Hackney", "2016-06", "--as-of", "2017-04-30",
             "--metric", "reablement_still_at_home_91d_65plus"]
    out = subprocess.run(ascof, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.strip().splitlines()
    record = dict(zip(header.split(","), row.split(",")))
    assert (record["period_type"], record["period_start"], record["period_end"]) == ("financial_year", "2016-04-01", "2017-03-31")
    assert (float(record["numerator"]), float(record["denominator"])) == (85, 110)
    only_months = subprocess.run([*ascof, "--period-type", "month"], env=env, capture_output=True, text=True)
    assert only_months.returncode == 1 and only_months.stdout == ""

    # before the warehouse was first built (11:00 on 5 January) nothing had been reported
    early = subprocess.run([*ascof[:7], "2017-01-05T10:30:00+00:00", *ascof[8:]], env=env, capture_output=True, text=True)
    assert early.returncode == 1 and early.stdout == ""
    assert early.stderr.strip() == ("carewatch: nothing reported for Hackney in 2016-06 as of 2017-01-05T10:30:00+00:00; "
                                    "the warehouse was first built at 2017-01-05 11:00 UTC")


KILLED_LOADER = """
import sys, time, duckdb
from carewatch import warehouse
from carewatch.errors import CarewatchError

class PausesAfterInsert:
    '''The real connection; after the insert (inside the open transaction) it says so and waits to be killed.'''
    def __init__(self, con):
        self.con = con
    def execute(self, sql, *args):
        result = self.con.execute(sql, *args)
        if sql.lstrip().startswith("insert"):
            print("INSERTED", flush=True)
            time.sleep(120)
        return result

con = duckdb.connect(sys.argv[1])
warehouse.load_parsed(PausesAfterInsert(con), source="dtoc_la", period="2017-02", version=3, sha256="sha-v3", parsed_path=sys.argv[2])
"""


def test_a_load_killed_mid_transaction_leaves_the_previous_state_and_a_rerun_completes(built, tmp_path):
    import signal
    import subprocess
    import sys

    db = built.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]
    before = built.execute("select * exclude (_loaded_at) from land_dtoc_la order by all").fetchall()
    facts = built.execute("select * from fct_metric_values order by all").fetchall()
    built.close()
    third = dtoc_rows("2017-02-01", [("council", HACKNEY, {"total": 700.0, "nhs": 484.0, "social_care": 200.0, "both": 16.0})])
    parquet = tmp_path / "v3.parquet"
    pd.DataFrame(third, columns=DTOC_COLUMNS).to_parquet(parquet, index=False)

    child = subprocess.Popen([sys.executable, "-c", KILLED_LOADER, db, str(parquet)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "INSERTED"  # the rows are written, not committed
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    with duckdb.connect(db) as con:  # recovery from the write-ahead log drops the uncommitted load
        assert con.execute("select * exclude (_loaded_at) from land_dtoc_la order by all").fetchall() == before
        warehouse.build_models(con, reference=False)
        assert con.execute("select * from fct_metric_values order by all").fetchall() == facts
        # rerun: the load completes and the marts take the new version
        assert warehouse.load_parsed(con, source="dtoc_la", period="2017-02", version=3, sha256="sha-v3", parsed_path=parquet) == warehouse.Load(rows=4, skipped=False)
        warehouse.build_models(con, reference=False)
        assert value(con, HACKNEY, DTOC, dt.date(2017, 2, 1))[0] == 700


def _load_mid_2016(con, tmp_path):
    """mid-2016: Hackney HWB 110,000 aged 18+ (20,000 aged 65+), Barnsley 60,000 (10,000 aged 65+)."""
    _load(con, tmp_path, "ons_mye", "2016", 1, [
        (2016, HACKNEY, "Hackney", None, 20, 80_000), (2016, HACKNEY, "Hackney", None, 70, 20_000),
        (2016, CITY, "City of London", None, 30, 10_000),
        (2016, BARNSLEY, "Barnsley", None, 40, 50_000), (2016, BARNSLEY, "Barnsley", None, 80, 10_000),
    ], MYE_COLUMNS)


@pytest.fixture
def year(tmp_path):
    """April 2017 - March 2018 (365 days) for Hackney and Barnsley; Barnsley's October shows "-"."""
    con = duckdb.connect(str(tmp_path / "y.duckdb"))
    _ref(con)
    _load_mid_2016(con, tmp_path)
    hes_cols = ["period", "area_code", "area_name", "measure", "value"]
    for month in pd.date_range("2017-04-01", "2018-03-01", freq="MS"):
        period = month.strftime("%Y-%m")
        barnsley = None if period == "2017-10" else 62.0 * month.days_in_month
        _load(con, tmp_path, "dtoc_la", period, 1, dtoc_rows(month, [
            ("council", HACKNEY, {"total": 10.0 * month.days_in_month}), ("council", BARNSLEY, {"total": barnsley}),
        ]), DTOC_COLUMNS)
        # Hackney: 100 admissions a month; discharges 150 (300 in March) with p90 12 (18 in March)
        march = period == "2018-03"
        hes = [(month, HACKNEY, "Hackney", m, v) for m, v in (
            ("emergency_admissions_65plus", 100.0), ("discharges_65plus", 300.0 if march else 150.0),
            ("los_p90_days", 18.0 if march else 12.0), ("weekend_discharges_65plus", 30.0))]
        _load(con, tmp_path, "hes_aggregate", period, 1, hes, hes_cols)
    warehouse.build_models(con, reference=False)
    yield con
    con.close()


def test_a_years_admission_rate_is_the_years_admissions_over_the_population(year):
    # 12 x 100 = 1,200 admissions over Hackney's 20,000 aged 65+ = 6,000 per 100,000 a year
    for period_type in ("rolling_12m", "financial_year"):
        start = dt.date(2018, 3, 1) if period_type == "rolling_12m" else dt.date(2017, 4, 1)
        numerator, denominator, rate = value(year, HACKNEY, "emergency_admissions_65plus_per_100k", start, period_type)
        assert (numerator, denominator) == (1200, 20_000)
        assert rate == pytest.approx(6000.0)
    # England is Hackney and Barnsley's 65+ (20,000 + 10,000), Barnsley having no HES rows
    assert value(year, ENGLAND, "emergency_admissions_65plus_per_100k", dt.date(2017, 4, 1), "financial_year")[2] == pytest.approx(1200 / 20_000 * 1e5)


def test_a_years_delayed_days_rate_is_per_day_of_the_year(year):
    # 10 days a day for 365 days over 110,000 aged 18+: 3,650 / 365 / 110,000 x 100,000 = 9.0909
    numerator, denominator, rate = value(year, HACKNEY, DTOC, dt.date(2017, 4, 1), "financial_year")
    assert (numerator, denominator) == (3650, 110_000 * 365)
    assert rate == pytest.approx(10 / 110_000 * 1e5)
    assert value(year, HACKNEY, DTOC, dt.date(2018, 3, 1), "rolling_12m")[2] == pytest.approx(10 / 110_000 * 1e5)


def test_weekend_share_and_percentile_over_a_year(year):
    # weekend: 12 x 30 / (11 x 150 + 300) = 360 / 1,950; p90: discharge-weighted (11 x 150 x 12 + 300 x 18) / 1,950
    assert value(year, HACKNEY, "weekend_discharge_share", dt.date(2017, 4, 1), "financial_year")[2] == pytest.approx(360 / 1950)
    assert value(year, HACKNEY, "los_p90_days_65plus", dt.date(2018, 3, 1), "rolling_12m")[2] == pytest.approx((1650 * 12 + 300 * 18) / 1950)


def test_a_year_with_a_suppressed_month_has_no_value(year):
    # Barnsley's "-" in October 2017 would otherwise add 31 days of population without its delays
    assert value(year, BARNSLEY, DTOC, dt.date(2017, 9, 1))[2] == pytest.approx(62 / 60_000 * 1e5)
    assert value(year, BARNSLEY, DTOC, dt.date(2017, 10, 1))[2] is None
    for period_type, start in (("rolling_12m", dt.date(2018, 3, 1)), ("financial_year", dt.date(2017, 4, 1))):
        assert year.execute(
            "select count(*) from fct_metric_values where area_code = ? and metric_id = ? and period_type = ? and period_start = ?",
            [BARNSLEY, DTOC, period_type, start]).fetchone()[0] == 0
    # England leaves Barnsley's October out of both sides, so its year is complete
    assert value(year, ENGLAND, DTOC, dt.date(2017, 4, 1), "financial_year")[0] == 3650 + 62 * (365 - 31)


def test_carewatch_as_of_says_in_one_line_what_is_wrong(tmp_path, monkeypatch, capsys):
    from carewatch import cli

    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(tmp_path / "none.duckdb"))
    assert cli.main(["as-of", "Hackney", "2017-02", "--as-of", "2017-04-30"]) == 2
    assert capsys.readouterr().err.strip().startswith("carewatch: no warehouse at ")
    duckdb.connect(str(tmp_path / "none.duckdb")).close()
    for text in ("last tuesday", "2017-W44-2"):
        assert cli.main(["as-of", "Hackney", "2017-02", "--as-of", text]) == 2
        assert capsys.readouterr().err.strip() == f"carewatch: --as-of {text!r} is not a date (YYYY-MM-DD) or an ISO timestamp"


def test_carewatch_as_of_names_the_mistake(built, tmp_path, monkeypatch, capsys):
    import shutil

    from carewatch import cli

    built.execute("update land_ons_mye set _loaded_at = '2017-01-05 10:00:00+00'")
    built.execute("update land_dtoc_la set _loaded_at = '2017-04-13 10:00:00+00'")
    built.execute("delete from warehouse_builds")
    built.execute("insert into warehouse_builds values ('2017-01-05 11:00:00+00'), ('2017-04-13 11:00:00+00')")
    built.execute("update warehouse_builds_since set recorded_from = '2017-01-05 11:00:00+00'")
    built.execute("checkpoint")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(built.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0], copy)
    with duckdb.connect(str(copy)) as con:  # the old Dorset county and the Dorset unitary, both "Dorset"
        con.execute("insert into ref_hwb_areas values ('E10000009', 'Dorset', 'South West')")
        con.execute("insert into fct_metric_values by name select * replace ('E10000009' as area_code) from fct_metric_values limit 1")
        con.execute("insert into fct_metric_values by name select * replace ('E06000059' as area_code) from fct_metric_values limit 1")
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(copy))

    def error(*argv):
        code = cli.main(["as-of", *argv])
        return code, capsys.readouterr().err.strip()

    assert error("Nowhere", "2017-02", "--as-of", "2017-04-30") == (
        2, "carewatch: unknown area 'Nowhere': give an HWB area code (E08000009) or name (Trafford), or England")
    # part of a name, or a misspelt one: the areas meant are suggested, not guessed
    assert error("hackn", "2017-02", "--as-of", "2017-04-30") == (
        2, "carewatch: unknown area 'hackn': give an HWB area code (E08000009) or name (Trafford), or England; "
           f"did you mean Hackney ({HACKNEY})?")
    assert error("Barnsly", "2017-02", "--as-of", "2017-04-30")[1].endswith(f"; did you mean Barnsley ({BARNSLEY})?")
    assert error("Hackney", "2017-2", "--as-of", "2017-04-30") == (2, "carewatch: period '2017-2' is not a month (YYYY-MM)")
    code, message = error("Hackney", "2017-02", "--as-of", "2017-04-30", "--metric", "delays")
    assert code == 2 and message.startswith("carewatch: unknown metric 'delays'; metrics: ") and DTOC in message
    # a question from before the first build (and so before anything was reported) says when that was
    assert error("Hackney", "2017-02", "--as-of", "2016-12-31") == (
        1, "carewatch: nothing reported for Hackney in 2017-02 as of 2016-12-31; the warehouse was first built at 2017-01-05 11:00 UTC")
    assert error("Dorset", "2019-06", "--as-of", "2019-07-31") == (2, "carewatch: area name 'Dorset' is ambiguous: give its code (E06000059, E10000009)")
    # after the first load, an empty answer does not blame the date
    assert error("Hackney", "2030-01", "--as-of", "2017-04-30") == (1, "carewatch: nothing reported for Hackney in 2030-01 as of 2017-04-30")
    # unless the month asked about was loaded after it, or loaded but not yet built: then it says when each was
    assert error("Hackney", "2017-02", "--as-of", "2017-03-31", "--metric", DTOC) == (
        1, "carewatch: nothing reported for Hackney in 2017-02 as of 2017-03-31; 2017-02's first version was loaded at "
           "2017-04-13 10:00 UTC, first reported by the build at 2017-04-13 11:00 UTC")
    assert error("Hackney", "2017-02", "--as-of", "2017-04-13T10:30:00+00:00", "--metric", DTOC) == (
        1, "carewatch: nothing reported for Hackney in 2017-02 as of 2017-04-13T10:30:00+00:00; 2017-02's first version was loaded at "
           "2017-04-13 10:00 UTC, first reported by the build at 2017-04-13 11:00 UTC")
    # a warehouse of an earlier release, whose first builds went unrecorded: no build to name, load time stands in
    with duckdb.connect(str(copy)) as con:
        con.execute("update warehouse_builds_since set earlier_builds = true")
    assert error("Hackney", "2017-02", "--as-of", "2017-03-31", "--metric", DTOC) == (
        1, "carewatch: nothing reported for Hackney in 2017-02 as of 2017-03-31; 2017-02's first version was loaded at 2017-04-13 10:00 UTC")
    # England by name, as the summary writes it
    assert cli.main(["as-of", "england", "2017-02", "--as-of", "2017-04-30", "--metric", DTOC]) == 0
    assert "E92000001" in capsys.readouterr().out


def test_carewatch_as_of_while_a_task_writes_says_so(built, tmp_path, monkeypatch, capsys):

    path = built.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", path)  # `built` holds the write lock, as a load task would
    code = subprocess_main(["as-of", "Hackney", "2017-02", "--as-of", "2017-04-30"], path)
    assert code == (2, f"carewatch: {path} is busy (a pipeline task is writing it, PID {os.getpid()}); try again when it finishes")


def test_carewatch_as_of_on_a_file_that_is_not_a_warehouse_says_so(tmp_path, monkeypatch, capsys):
    from carewatch import cli

    bad = tmp_path / "not.duckdb"
    bad.write_bytes(b"not a database" * 100)
    monkeypatch.setenv("CAREWATCH_WAREHOUSE", str(bad))
    assert cli.main(["as-of", "Hackney", "2017-02", "--as-of", "2017-04-30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"carewatch: {bad}: cannot open the warehouse (") and "busy" not in err


def test_as_of_reads_a_bare_date_in_the_warehouse_sessions_time_zone(built, tmp_path):
    """A bare date is the end of that day where the warehouse's session is (DuckDB's TimeZone,
    the machine's): the versions counted and the "loaded at" hint use the same instant."""
    import shutil

    utc = dt.timezone.utc
    with duckdb.connect() as session:
        def cutoff(zone, when):
            session.execute(f"set TimeZone = '{zone}'")
            return warehouse.as_of_cutoff(session, when)

        assert cutoff("Europe/London", "2017-06-30") == dt.datetime(2017, 6, 30, 23, 0, tzinfo=utc)  # BST
        assert cutoff("Europe/London", "20170630") == dt.datetime(2017, 6, 30, 23, 0, tzinfo=utc)  # a compact date is a date too
        assert cutoff("Europe/London", dt.date(2017, 12, 31)) == dt.datetime(2018, 1, 1, 0, 0, tzinfo=utc)  # GMT
        assert cutoff("Europe/London", "2017-06-30T12:00") == dt.datetime(2017, 6, 30, 11, 0, 0, 1, tzinfo=utc)
        assert cutoff("Europe/London", "2017-06-30T12:00+00:00") == dt.datetime(2017, 6, 30, 12, 0, 0, 1, tzinfo=utc)
        assert cutoff("JST", "2017-06-30") == dt.datetime(2017, 6, 30, 15, 0, tzinfo=utc)  # a zone name only DuckDB knows
        for other in ("2017-W44-2", "2017-W44", "2017-10", "2017-304"):  # week dates, months, ordinal days: not dates here
            with pytest.raises(ValueError):
                cutoff("UTC", other)
        with pytest.raises(CarewatchError, match="^9999-12-31 is outside the dates the warehouse can answer for$"):
            cutoff("UTC", "9999-12-31")
        with pytest.raises(CarewatchError, match="outside the dates"):
            cutoff("America/Los_Angeles", "9999-12-31T23:00")

    # every version loaded at 23:30 UTC on 30 June 2017 (00:30 on 1 July in London), and built at 23:45
    for table in ("land_ons_mye", "land_dtoc_la"):
        built.execute(f"update {table} set _loaded_at = '2017-06-30 23:30:00+00'")
    built.execute("delete from warehouse_builds")
    built.execute("insert into warehouse_builds values ('2017-06-30 23:45:00+00')")
    built.execute("checkpoint")
    copy = tmp_path / "tz.duckdb"
    shutil.copy(built.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0], copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        def hackney_rows(zone):
            con.execute(f"set TimeZone = '{zone}'")
            return len(warehouse.as_of(con, "2017-06-30").execute(
                "select * from fct_metric_values where area_code = ? and period_type = 'month'", [HACKNEY]).fetchall())
        assert hackney_rows("UTC") > 0
        assert hackney_rows("Europe/London") == 0

    def as_of_in(zone):
        import os
        import subprocess
        import sys

        out = subprocess.run([sys.executable, "-m", "carewatch.cli", "as-of", "Hackney", "2017-02", "--as-of", "2017-06-30"],
                             capture_output=True, text=True, env={**os.environ, "CAREWATCH_WAREHOUSE": str(copy), "TZ": zone})
        return out.returncode, out.stderr.strip()

    assert as_of_in("Europe/London") == (
        1, "carewatch: nothing reported for Hackney in 2017-02 as of 2017-06-30; the warehouse was first built at 2017-06-30 23:45 UTC")
    assert as_of_in("UTC")[0] == 0
    # 2017-06-30 ends at 15:00 UTC there: an answer, not a time-zone error
    assert as_of_in("JST") == (
        1, "carewatch: nothing reported for Hackney in 2017-02 as of 2017-06-30; the warehouse was first built at 2017-06-30 23:45 UTC")


def test_a_warehouse_another_process_holds_is_busy_for_readers_and_writers(tmp_path):
    import subprocess
    import sys

    from carewatch.errors import WarehouseBusy

    path = tmp_path / "held.duckdb"
    with pytest.raises(CarewatchError, match=f"^no warehouse at {path}: run the pipeline first"):
        with warehouse.connect(read_only=True, path=path):
            pass
    assert not path.exists()  # reading never creates the file
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
                               str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for read_only, who in ((True, "a pipeline task is writing it"), (False, "another process has it open")):
            with pytest.raises(WarehouseBusy) as busy:
                with warehouse.connect(read_only=read_only, path=path, wait=0):
                    pass
            assert str(busy.value) == f"{path} is busy ({who}, PID {holder.pid}); try again when it finishes"
        # a writer waits (readers never do), then says how long it waited
        with pytest.raises(WarehouseBusy) as busy:
            with warehouse.connect(path=path, wait=0.5):
                pass
        assert str(busy.value) == f"{path} is busy (another process has it open, PID {holder.pid}; waited 0.5 s); try again when it finishes"
    finally:
        holder.communicate("")
    # a file that is not a warehouse is not "busy", whatever its path says
    locked = tmp_path / "lock" / "w.duckdb"
    locked.parent.mkdir()
    locked.write_bytes(b"not a database" * 100)
    with pytest.raises(CarewatchError, match=f"^{locked}: cannot open the warehouse") as bad:
        with warehouse.connect(read_only=True, path=locked):
            pass
    assert not isinstance(bad.value, WarehouseBusy)
    with warehouse.connect(read_only=True, path=path) as con:  # free again
        assert con.execute("select 1").fetchone() == (1,)


def test_a_writer_waits_for_an_analysts_read_only_connection_to_close(tmp_path, monkeypatch):
    """An analyst reading the warehouse keeps writers out (DuckDB): a pipeline task's writer
    waits for the reader to close instead of failing, and says that it waits."""
    import subprocess
    import sys
    import threading

    path = tmp_path / "w.duckdb"
    with warehouse.connect(path=path) as con:
        con.execute("create table t as select 1 as x")
    reader = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
                               "print('ready', flush=True); sys.stdin.readline()", str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    announced, said = threading.Event(), []
    monkeypatch.setattr(warehouse, "_announce_wait", lambda message: (said.append(message), announced.set()))

    def release_when_waiting():  # the reader closes once the writer has said it waits
        if announced.wait(timeout=60):
            reader.stdin.write("done\n")
            reader.stdin.flush()

    try:
        assert reader.stdout.readline().strip() == "ready"
        releaser = threading.Thread(target=release_when_waiting, daemon=True)
        releaser.start()
        with warehouse.connect(path=path, wait=60) as con:
            con.execute("insert into t values (2)")
            assert con.execute("select sum(x) from t").fetchone() == (3,)
        assert said == [f"{path} is busy (another process has it open, PID {reader.pid}); waiting up to 60 s for it to close"]
        releaser.join(timeout=5)
    finally:
        reader.kill()
        reader.wait()


@pytest.mark.parametrize("value", ["2m", "-1", "nan", "inf", ""])
def test_a_writer_wait_that_is_not_a_number_of_seconds_is_one_line_error(tmp_path, monkeypatch, value):
    monkeypatch.setenv("CAREWATCH_WAREHOUSE_WAIT", value)
    with pytest.raises(CarewatchError, match=f"^CAREWATCH_WAREHOUSE_WAIT must be a number of seconds, 0 or more, not '{value}'$"):
        with warehouse.connect(path=tmp_path / "w.duckdb"):
            pass


def subprocess_main(argv, warehouse_path):
    """The CLI in another process (DuckDB's file lock is per process)."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "carewatch.cli", *argv], capture_output=True, text=True,
                         env={**os.environ, "CAREWATCH_WAREHOUSE": warehouse_path})
    return out.returncode, out.stderr.strip()


def test_the_catalogue_decides_which_landing_tables_a_build_creates(tmp_path, monkeypatch):
    # a new source needs its catalogue entry and its DDL, no list in code: the build creates
    # the landing table of every source that loads, so its staging model can be built before
    # any of its periods has loaded; a loading source without its DDL is named in one line
    import shutil

    import yaml

    from carewatch import paths
    from carewatch.errors import MissingProjectFile

    def with_new_source(name: str, loads: bool):
        config = tmp_path / name
        shutil.copytree(paths.config_dir(), config)
        catalogue = yaml.safe_load((config / "sources.yaml").read_text())
        catalogue["sources"]["nhs_beds"] = {**catalogue["sources"]["dtoc_national"], "loads_to_warehouse": loads}
        (config / "sources.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False))
        monkeypatch.setenv("CAREWATCH_CONFIG", str(config))

    with_new_source("loads", True)
    with duckdb.connect() as con:
        with pytest.raises(MissingProjectFile, match=r"no landing table definition for source 'nhs_beds'"):
            warehouse.build_models(con)
        assert not con.execute("select * from information_schema.tables").fetchall()  # rolled back

    with_new_source("does-not-load", False)
    with duckdb.connect() as con:  # nothing loaded yet: every model still builds
        built = warehouse.build_models(con)
        tables = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
    assert {"land_dtoc_la", "land_dtoc_national", "land_dtoc_provider", "land_ascof", "land_ons_mye",
            "land_hes_aggregate"} <= tables and "land_nhs_beds" not in tables
    assert "fct_metric_values" in built


@pytest.fixture
def span(tmp_path):
    """Thirteen months, March 2017 - March 2018, on two ONS estimates, built by hand:
    mid-2016 (Hackney HWB 110,000 aged 18+, 20,000 aged 65+) and mid-2017, whose Hackney rows
    sit on the age boundaries (17, 18, 64, 65). Hackney has 10 delayed days a day every month;
    Barnsley's March 2018 shows "-"; both have hospital activity in March 2018."""
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    _ref(con)
    _load_mid_2016(con, tmp_path)
    # mid-2017 Hackney HWB: 18+ = 9,000 (18) + 90,000 (64) + 5,000 (65) + 20,000 (90+) + City's 10,000
    #   = 134,000 (the 1,000 aged 17 are not adults); 65+ = 5,000 + 20,000 = 25,000
    mid_2017 = [
        (2017, HACKNEY, "Hackney", None, 17, 1_000), (2017, HACKNEY, "Hackney", None, 18, 9_000),
        (2017, HACKNEY, "Hackney", None, 64, 90_000), (2017, HACKNEY, "Hackney", None, 65, 5_000),
        (2017, HACKNEY, "Hackney", None, 90, 20_000), (2017, CITY, "City of London", None, 30, 10_000),
        (2017, BARNSLEY, "Barnsley", None, 40, 50_000), (2017, BARNSLEY, "Barnsley", None, 80, 10_000),
    ]
    # a first release of mid-2017 with 19,000 aged 18, replaced by the second (9,000)
    _load(con, tmp_path, "ons_mye", "2017", 1, [r[:5] + (19_000,) if r[4] == 18 else r for r in mid_2017], MYE_COLUMNS)
    _load(con, tmp_path, "ons_mye", "2017", 2, mid_2017, MYE_COLUMNS)
    for month in pd.date_range("2017-03-01", "2018-03-01", freq="MS"):
        period = month.strftime("%Y-%m")
        days = 10.0 * month.days_in_month
        rows = dtoc_rows(month, [
            ("council", HACKNEY, {"total": days, "nhs": days / 2, "social_care": days / 2, "both": 0.0}),
            ("council", BARNSLEY, {"total": None if period == "2018-03" else 6.0 * month.days_in_month}),
        ])
        if period == "2018-03":
            # the reason sheet (its "total" row is the agency total again) and the "DTOC Beds"
            # block (average beds a day, not days)
            rows += [(month, "Published", "", None, "council", None, HACKNEY, HACKNEY, HACKNEY, "reason", reason, "delayed_days", v)
                     for reason, v in (("A", 100.0), ("E", 210.0), ("total", 310.0))]
            rows += [(month, "Published", "", None, "council", None, HACKNEY, HACKNEY, HACKNEY, "agency", "total", "delayed_beds", 10.0)]
        _load(con, tmp_path, "dtoc_la", period, 1, rows, DTOC_COLUMNS)
    hes_cols = ["period", "area_code", "area_name", "measure", "value"]
    march = pd.Timestamp("2018-03-01")
    hes = [
        (march, HACKNEY, "Hackney", "emergency_admissions_65plus", 500.0), (march, HACKNEY, "Hackney", "discharges_65plus", 300.0),
        (march, HACKNEY, "Hackney", "los_p90_days", 10.0), (march, HACKNEY, "Hackney", "weekend_discharges_65plus", 60.0),
        (march, BARNSLEY, "Barnsley", "emergency_admissions_65plus", 100.0), (march, BARNSLEY, "Barnsley", "discharges_65plus", 100.0),
        (march, BARNSLEY, "Barnsley", "los_p90_days", 20.0), (march, BARNSLEY, "Barnsley", "weekend_discharges_65plus", 25.0),
        # residents of no English HWB area (carewatch hes-metrics' UNMAPPED row): in no area, so not in England
        (march, "UNMAPPED", "", "emergency_admissions_65plus", 50.0), (march, "UNMAPPED", "", "discharges_65plus", 40.0),
        (march, "UNMAPPED", "", "los_p90_days", 30.0), (march, "UNMAPPED", "", "weekend_discharges_65plus", 8.0),
    ]
    # a first version with Hackney's admissions at 400, replaced by the second (500)
    _load(con, tmp_path, "hes_aggregate", "2018-03", 1, [r[:4] + (400.0,) if r[1] == HACKNEY and r[3].startswith("emergency") else r for r in hes], hes_cols)
    _load(con, tmp_path, "hes_aggregate", "2018-03", 2, hes, hes_cols)
    # ASCOF 2016-17: a first version with every figure, then a revision that suppresses City of London's numerator
    ascof_cols = ["year", "geo_code", "geo_name", "geo_level", "ons_code", "council_code", "measure_group", "measure_code", "disaggregation", "measure_type", "value", "suppression"]
    for version, city in ((1, 5.0), (2, None)):
        rows = []
        for code, num, den in ((HACKNEY, 70.0 if version == 1 else 80.0, 100.0), (CITY, city, 10.0)):
            rows.append(("2016-17", "x", code, "Council", code, code, "2B1", "2B1", "Total", "Numerator", num, "[c]" if num is None else None))
            rows.append(("2016-17", "x", code, "Council", code, code, "2B1", "2B1", "Total", "Denominator", den, None))
        _load(con, tmp_path, "ascof", "2016-17", version, rows, ascof_cols)
    warehouse.build_models(con, reference=False)
    yield con
    con.close()


def test_a_month_before_april_uses_the_estimate_of_the_year_its_financial_year_starts(span):
    # March 2017 is in FY 2016-17 -> mid-2016 (110,000 aged 18+), though mid-2017 is loaded:
    # 310 / 31 / 110,000 x 100,000 = 9.0909 (mid-2017's 134,000 would give 7.4627)
    numerator, denominator, rate = value(span, HACKNEY, DTOC, dt.date(2017, 3, 1))
    assert (numerator, denominator) == (310, 110_000 * 31)
    assert rate == pytest.approx(10 / 110_000 * 1e5)
    # April 2017 is FY 2017-18 -> mid-2017: 300 / 30 / 134,000 x 100,000 = 7.4627
    assert value(span, HACKNEY, DTOC, dt.date(2017, 4, 1))[1] == 134_000 * 30


def test_population_bands_include_their_first_year_of_age(span):
    # mid-2017: 18+ counts the 9,000 aged 18 (134,000 in all); 65+ counts the 5,000 aged 65 (25,000)
    row = span.execute("select population_18plus, population_65plus from int_population_hwb where hwb_code = ? and mid_year = 2017",
                       [HACKNEY]).fetchone()
    assert row == (134_000, 25_000)
    # March 2018 admissions: 500 over 25,000 aged 65+ = 2,000 per 100,000
    assert value(span, HACKNEY, "emergency_admissions_65plus_per_100k", dt.date(2018, 3, 1))[1:] == (25_000, pytest.approx(2000.0))


def test_a_rolling_year_is_exactly_twelve_months_when_more_are_loaded(span):
    # the year to March 2018 is April 2017 - March 2018: 3,650 days over 134,000 x 365
    # (March 2017's 310 days and its mid-2016 population are not in it)
    numerator, denominator, rate = value(span, HACKNEY, DTOC, dt.date(2018, 3, 1), "rolling_12m")
    assert (numerator, denominator) == (3650, 134_000 * 365)
    assert rate == pytest.approx(10 / 134_000 * 1e5)  # 7.4627
    # the year to February 2018 is March 2017 - February 2018: 310 days on mid-2016 (31 days)
    # and 3,340 on mid-2017 (334 days)
    assert value(span, HACKNEY, DTOC, dt.date(2018, 2, 1), "rolling_12m")[:2] == (3650, 110_000 * 31 + 134_000 * 334)
    # no rolling year before 12 months are loaded (the first ends February 2018)
    assert span.execute("select min(period_start) from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'rolling_12m'",
                        [HACKNEY, DTOC]).fetchone()[0] == dt.date(2018, 2, 1)


def test_reason_breakdowns_leave_out_the_reason_total_and_beds_are_not_days(span):
    metrics = {m for (m,) in span.execute(
        "select metric_id from fct_metric_values where area_code = ? and period_type = 'month' and period_start = ? and base_metric_id = ?",
        [HACKNEY, dt.date(2018, 3, 1), DTOC]).fetchall()}
    assert metrics == {DTOC, DTOC + "__nhs", DTOC + "__social_care", DTOC + "__both", DTOC + "__reason_A", DTOC + "__reason_E"}
    # reason A: 100 / 31 / 134,000 x 100,000 = 2.4073
    assert value(span, HACKNEY, DTOC + "__reason_A", dt.date(2018, 3, 1))[2] == pytest.approx(100 / 31 / 134_000 * 1e5)
    # the total is the 310 delayed days, not 310 + the "DTOC Beds" block's 10
    assert value(span, HACKNEY, DTOC, dt.date(2018, 3, 1))[0] == 310


def test_england_leaves_out_an_area_without_a_population(tmp_path):
    # May 2019 with only mid-2016 loaded: BCP (a 2019 code) has 930 delayed days but no estimate
    # yet, so no rate; England is the areas with both figures, Hackney alone:
    # 341 / 31 / 110,000 x 100,000 = 10.0 (not 1,271 days over Hackney's and City's population)
    con = duckdb.connect(str(tmp_path / "b.duckdb"))
    _ref(con)
    _load(con, tmp_path, "ons_mye", "2016", 1, HACKNEY_HWB_2016, MYE_COLUMNS)
    _load(con, tmp_path, "dtoc_la", "2019-05", 1, dtoc_rows("2019-05-01", [
        ("council", HACKNEY, {"total": 341.0}), ("council", BCP, {"total": 930.0})]), DTOC_COLUMNS)
    warehouse.build_models(con, reference=False)
    assert value(con, BCP, DTOC, dt.date(2019, 5, 1))[2] is None
    assert value(con, ENGLAND, DTOC, dt.date(2019, 5, 1)) == (341, 110_000 * 31, pytest.approx(10.0))


def test_a_rolling_year_with_a_month_before_the_first_estimate_has_no_value(tmp_path):
    # Delayed days from March 2016, estimates from mid-2016 (as in production, where DTOC starts
    # in 2010 and ONS in 2015): March 2016 is in 2015-16, which no loaded estimate covers, so it
    # has days but no population. The year to February 2017 holds it: no value (its days over
    # 11 months' population would overstate the rate by a twelfth). The year to March 2017 is
    # April 2016 - March 2017, 365 days: 12 x 100 / (110,000 x 365) x 100,000 = 2.98879.
    con = duckdb.connect(str(tmp_path / "r.duckdb"))
    _ref(con)
    _load(con, tmp_path, "ons_mye", "2016", 1, HACKNEY_HWB_2016, MYE_COLUMNS)
    for month in pd.date_range("2016-03-01", "2017-03-01", freq="MS"):
        _load(con, tmp_path, "dtoc_la", f"{month:%Y-%m}", 1, dtoc_rows(f"{month:%Y-%m-%d}", [("council", HACKNEY, {"total": 100.0})]), DTOC_COLUMNS)
    warehouse.build_models(con, reference=False)
    assert value(con, HACKNEY, DTOC, dt.date(2016, 3, 1))[1:] == (None, None)
    for area in (HACKNEY, ENGLAND):
        assert con.execute("""select count(value) from fct_metric_values where area_code = ? and metric_id = ?
                              and period_type = 'rolling_12m' and period_start = '2017-02-01'""", [area, DTOC]).fetchone()[0] == 0, area
        assert value(con, area, DTOC, dt.date(2017, 3, 1), "rolling_12m") == (1200, 110_000 * 365, pytest.approx(2.98879, abs=1e-5)), area
    # and the financial year 2015-16 (only March 2016 loaded) has no value either
    assert con.execute("select count(value) from fct_metric_values where period_type = 'financial_year' and period_start = '2015-04-01'").fetchone()[0] == 0


def test_england_leaves_a_suppressed_area_out_of_the_denominator_and_weights_the_percentile(span):
    # March 2018: Barnsley shows "-", so England is Hackney alone on both sides: 310 / (134,000 x 31)
    numerator, denominator, rate = value(span, ENGLAND, DTOC, dt.date(2018, 3, 1))
    assert (numerator, denominator) == (310, 134_000 * 31)
    assert rate == pytest.approx(10 / 134_000 * 1e5)
    # p90: discharge-weighted (300 x 10 + 100 x 20) / 400 = 12.5, not the plain mean 15 (nor with
    # the UNMAPPED row: (3,000 + 2,000 + 40 x 30) / 440 = 14.09)
    assert value(span, ENGLAND, "los_p90_days_65plus", dt.date(2018, 3, 1))[1:] == (400, pytest.approx(12.5))
    # admissions: (500 + 100) over (25,000 + 10,000) aged 65+; the UNMAPPED 50 are in no area
    assert value(span, ENGLAND, "emergency_admissions_65plus_per_100k", dt.date(2018, 3, 1)) == (600, 35_000, pytest.approx(600 / 35_000 * 1e5))
    assert span.execute("select count(*) from fct_metric_values where area_code is null or area_code = 'UNMAPPED'").fetchone()[0] == 0


def test_rate_intervals_use_the_configured_z_and_lineage_names_the_population_file(span):
    lower, upper, files = span.execute(
        "select ci_lower, ci_upper, source_files from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'month' and period_start = ?",
        [HACKNEY, DTOC, dt.date(2018, 3, 1)],
    ).fetchone()
    # Byar, o = 310, z = 1.959964: 310 x (1 - 1/2,790 - 1.959964 / (3 x 17.6068))^3 = 310 x 0.962535^3 = 276.447;
    # upper 311 x (1 - 1/2,799 + 1.959964 / (3 x 17.6352))^3 = 311 x 1.036690^3 = 346.502; per 134,000 x 31 x 100,000
    assert lower == pytest.approx(276.447 / (134_000 * 31) * 1e5, rel=1e-5)  # 6.65496 (z = 1.645 would give 6.779)
    assert upper == pytest.approx(346.502 / (134_000 * 31) * 1e5, rel=1e-5)  # 8.34141
    assert "sha-ons_mye-2017-v2" in files and "sha-ons_mye-2017-v1" not in files  # the estimate's latest release
    admissions_files = span.execute(
        "select source_files from fct_metric_values where area_code = ? and metric_id = 'emergency_admissions_65plus_per_100k' and period_type = 'month' and period_start = ?",
        [HACKNEY, dt.date(2018, 3, 1)]).fetchone()[0]
    assert sorted(admissions_files) == ["sha-hes_aggregate-2018-03-v2", "sha-ons_mye-2017-v2"]


def test_an_hwb_with_one_of_its_two_councils_suppressed_has_no_figure_in_the_latest_version(span):
    # the revision suppresses City of London's numerator: Hackney HWB's numerator is null, not
    # Hackney's 80 alone; the denominator 100 + 10 = 110 is complete (version 1's 70 + 5 is superseded)
    row = span.execute("select numerator, denominator from int_ascof_hwb_year where hwb_code = ? and financial_year = '2016-17' and measure_group = '2B1'",
                       [HACKNEY]).fetchone()
    assert row == (None, 110)
    assert value(span, HACKNEY, "reablement_still_at_home_91d_65plus", dt.date(2016, 4, 1), "financial_year")[2] is None


def test_a_recoded_councils_estimate_counts_for_its_hwb(built):
    # mid-2018 publishes Barnsley under E08000038 (an alias of E08000016): 60,000 aged 40, so
    # Barnsley's HWB has a mid-2018 population of its own rather than falling back to mid-2016
    assert built.execute("select hwb_code from int_area_map where area_code = ?", [BARNSLEY_2019]).fetchall() == [(BARNSLEY,)]
    assert built.execute("select population_18plus from int_population_hwb where hwb_code = ? and mid_year = 2018",
                         [BARNSLEY]).fetchall() == [(60_000,)]


def test_a_failed_reload_of_a_loaded_version_keeps_the_rows_it_had(built, tmp_path):
    # a corrected re-download of February 2017 v2 (another file, so not skipped) that fails to
    # load: the delete of v2's rows and the insert are one transaction, so v2 stays whole
    landed = "select _sha256, count(*), sum(value) from land_dtoc_la where _period = '2017-02' and _version = 2 group by 1"
    # v2: 5 rows x 4 categories; values 644+428+200+16 + 84+84 + 50+50 + 750+534+200+16 (City's are null)
    assert built.execute(landed).fetchall() == [("sha-dtoc_la-2017-02-v2", 20, 3056.0)]
    broken = tmp_path / "broken-v2.parquet"
    pd.DataFrame({"period": [pd.Timestamp("2017-02-01")], "value": ["not a number"]}).to_parquet(broken)
    with pytest.raises(duckdb.Error):
        warehouse.load_parsed(built, source="dtoc_la", period="2017-02", version=2, sha256="sha-redownload", parsed_path=broken)
    assert built.execute(landed).fetchall() == [("sha-dtoc_la-2017-02-v2", 20, 3056.0)]


def test_a_parser_fix_that_changes_only_which_rows_repeat_reaches_the_warehouse(built, tmp_path):
    # the same file and the same row count, but one row fewer of one kind and one more of
    # another: not the rows loaded, so replaced (a comparison of distinct rows would skip it)
    total, nhs = dtoc_rows("2019-06-01", [("council", BCP, {"total": 930.0, "nhs": 900.0})])
    first = _load(built, tmp_path, "dtoc_la", "2019-06", 1, [total, total, nhs], DTOC_COLUMNS, sha256="sha-june")
    assert first == warehouse.Load(rows=3, skipped=False)
    fixed = _load(built, tmp_path, "dtoc_la", "2019-06", 1, [total, nhs, nhs], DTOC_COLUMNS, sha256="sha-june")
    assert fixed == warehouse.Load(rows=3, skipped=False)
    assert built.execute("select category, count(*) from land_dtoc_la where _period = '2019-06' group by 1 order by 1").fetchall() == [
        ("nhs", 2), ("total", 1)]


def test_as_of_counts_only_builds_and_loads_strictly_before_the_cutoff(built):
    # v1 of February 2017 loaded at the very instant a build began (that build did not read it);
    # a build one microsecond after the moment asked about is not yet counted
    built.execute("delete from warehouse_builds")
    built.execute("update land_ons_mye set _loaded_at = '2017-01-05 10:00:00+00'")
    built.execute("update land_dtoc_la set _loaded_at = '2017-04-13 11:00:00+00' where _period = '2017-02' and _version = 1")
    built.execute("update land_dtoc_la set _loaded_at = '2017-05-11 10:00:00+00' where _period = '2017-02' and _version = 2")
    built.execute("insert into warehouse_builds values ('2017-01-05 11:00:00+00'), ('2017-04-13 11:00:00+00'), "
                  "('2017-06-01 08:00:00.000001+00')")
    asked = "select numerator from fct_metric_values where area_code = ? and metric_id = ? and period_type = 'month' and period_start = '2017-02-01'"
    for when, numerator in (("2017-04-13 11:00:00+00", None),         # loaded as the build began: not read by it
                            ("2017-06-01 08:00:00+00", None),         # the next build began a microsecond later
                            ("2017-06-01 08:00:00.000001+00", 644)):  # that build, which read v1 and v2
        with warehouse.as_of(built, when) as then:
            assert [n for (n,) in then.execute(asked, [HACKNEY, DTOC]).fetchall()] == ([] if numerator is None else [numerator]), when


def test_reloading_an_earlier_version_leaves_the_later_versions_alone(built, tmp_path):
    # a parser fix re-loads February 2017 v1 (same file, Hackney's total now 617) after v2 was
    # loaded: only v1's rows are replaced; v2 (644) stays, and stays what the marts report
    fixed = [(t, c, dict(v)) for t, c, v in [
        ("council", HACKNEY, {"total": 617.0, "nhs": 400.0, "social_care": 200.0, "both": 16.0}),
        ("council", CITY, {"total": None, "nhs": None, "social_care": None, "both": None}),
        ("council", BARNSLEY, {"total": 84.0, "nhs": 84.0, "social_care": 0.0, "both": 0.0}),
        ("special", None, {"total": 50.0, "nhs": 50.0, "social_care": 0.0, "both": 0.0}),
        ("england", None, {"total": 750.0, "nhs": 534.0, "social_care": 200.0, "both": 16.0}),
    ]]
    assert _load(built, tmp_path, "dtoc_la", "2017-02", 1, dtoc_rows("2017-02-01", fixed), DTOC_COLUMNS) == warehouse.Load(rows=20, skipped=False)
    hackney = "select _version, value from land_dtoc_la where _period = '2017-02' and council_code = ? and category = 'total' order by 1"
    assert built.execute(hackney, [HACKNEY]).fetchall() == [(1, 617.0), (2, 644.0)]
    warehouse.build_models(built, reference=False)
    assert value(built, HACKNEY, DTOC, dt.date(2017, 2, 1))[0] == 644


def test_the_landing_table_keeps_fractional_delayed_beds(tmp_path):
    # the "DTOC Beds" block is an average a day (10.5 beds), not a count: landed as published
    con = duckdb.connect(str(tmp_path / "beds.duckdb"))
    rows = [(pd.Timestamp("2018-03-01"), "Published", "", None, "council", None, HACKNEY, HACKNEY, HACKNEY, "agency", "total", "delayed_beds", 10.5)]
    _load(con, tmp_path, "dtoc_la", "2018-03", 1, rows, DTOC_COLUMNS)
    assert con.execute("select value from land_dtoc_la where measure = 'delayed_beds'").fetchone()[0] == 10.5
