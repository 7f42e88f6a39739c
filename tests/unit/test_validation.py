"""The dtoc_la Great Expectations suite: every bad input fails exactly the intended expectation."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from carewatch import parsers, paths, validation
from tests.conftest import FIXTURES

REAL = FIXTURES / "real" / "dtoc-la" / "LA-Type-B-June-2016.xls"


@pytest.fixture(scope="module")
def good():
    return parsers.parse("dtoc_la", REAL)


def failed(frame, period="2016-06"):
    report = validation.validate("dtoc_la", frame, period=period)
    return report, {(r.expectation, r.column, r.severity) for r in report.results if not r.success}


def test_the_real_workbook_passes(good):
    report, failures = failed(good)
    assert failures == set() and report.ok and len(report.results) == 20


def set_value(frame, name, breakdown, category, delta):
    out = frame.copy()
    rows = (out["la_name"] == name) & (out["breakdown"] == breakdown) & (out["category"] == category) & (out["measure"] == "delayed_days")
    assert rows.sum() == 1
    out.loc[rows, "value"] += delta
    return out


def history_of(frame, factor):
    """A warehouse history in which every council had ``1/factor`` of this month's total days."""
    totals = frame[(frame["row_type"] == "council") & (frame["breakdown"] == "agency") & (frame["category"] == "total") & (frame["measure"] == "delayed_days")]
    earlier = totals[["council_code", "value"]].assign(value=totals["value"] / factor)
    return lambda spec: earlier


@pytest.mark.parametrize(
    "factor,expected",
    [
        (1.0, set()),
        (4.0, {("expect_column_values_to_be_between", "ratio_to_trailing_median", "warning")}),
        (12.0, {("expect_column_values_to_be_between", "ratio_to_trailing_median", "warning"),
                ("expect_column_values_to_be_between", "ratio_to_trailing_median", "blocking")}),
    ],
)
def test_plausibility_against_the_trailing_median(good, factor, expected):
    report = validation.validate("dtoc_la", good, period="2016-06", history=history_of(good, factor))
    failures = {(r.expectation, r.column, r.severity) for r in report.results if not r.success}
    assert failures == expected
    if expected:
        failing = [r for r in report.results if not r.success][0]
        # every council with delays (a council with a zero median has no ratio) is implausible
        councils = good[(good["row_type"] == "council") & (good["breakdown"] == "agency") & (good["category"] == "total") & (good["value"] > 0)]
        assert failing.unexpected_count == len(councils)


ENGLAND = ("expect_column_values_to_be_between", "rest_minus_england", "blocking")
CONTAINS = ("expect_column_distinct_values_to_contain_set", "council_code", "blocking")
EXACT = (("expect_column_unique_value_count_to_be_between", "council_code", "blocking"),
         ("expect_column_values_to_be_between", "councils_in_sheet", "blocking"))
NOT_NULL = ("expect_column_values_to_not_be_null", "value", "blocking")


def with_code(frame, name, code):
    out = frame.copy()
    out.loc[out["la_name"] == name, "council_code"] = code
    return out


@pytest.mark.parametrize(
    "case,expected",
    [
        ("wrong_period", {("expect_column_values_to_be_in_set", "period", "blocking")}),
        # England's acute figure is no longer the councils' sum either (ENGLAND: England = the rest)
        ("negative_count", {("expect_column_values_to_be_between", "value", "blocking"), ENGLAND}),
        # Derby's rows then count as no council: one council short on every sheet (exact completeness)
        ("unmapped_council", {("expect_column_values_to_not_be_null", "council_code", "blocking"), *EXACT, CONTAINS}),
        ("unknown_code", {("expect_column_values_to_be_in_set", "council_code", "blocking"), CONTAINS}),
        ("duplicate_rows", {("expect_compound_columns_to_be_unique", None, "blocking"), ENGLAND}),
        ("missing_column", {("expect_table_columns_to_match_set", None, "blocking")}),
        ("renamed_column", {("expect_table_columns_to_match_set", None, "blocking")}),
        # two councils fewer on every sheet: 149 in the file and on each sheet
        ("areas_missing", {("expect_column_unique_value_count_to_be_between", "council_code", "blocking"),
                           ("expect_column_values_to_be_between", "councils_in_sheet", "blocking"), CONTAINS, ENGLAND}),
        # a sheet cut short (its last 100 councils lost): the file still has every council
        ("sheet_cut_short", {("expect_column_values_to_be_between", "councils_in_sheet", "blocking"),
                             ("expect_column_values_to_be_between", "councils_missing_from_sheet", "blocking"), ENGLAND}),
        # one council left off one sheet: 150 there, not the file's councils (nor the 151 in force)
        ("council_missing_from_one_sheet", {("expect_column_values_to_be_between", "councils_missing_from_sheet", "blocking"),
                                            ("expect_column_values_to_be_between", "councils_in_sheet", "blocking"), ENGLAND}),
        # left off the type-of-care sheet, which leaves out councils with no delays that month:
        # Derby had delays, so England is no longer the sum of that sheet's rows
        ("council_with_delays_missing_from_care_type", {ENGLAND}),
        # no figure is an abolished council's "-": blocking, besides the warning
        ("all_null_values", {("expect_column_values_to_not_be_null", "value", "warning"), NOT_NULL}),
        ("agency_parts_do_not_add_up", {("expect_column_values_to_be_between", "agency_parts_minus_total", "blocking"), ENGLAND}),
        ("reason_parts_do_not_add_up", {("expect_column_values_to_be_between", "reason_parts_minus_total", "blocking"), ENGLAND}),
        ("fractional_days", {("expect_column_values_to_be_between", "value_fraction", "blocking")}),
    ],
)
def test_bad_input_fails_the_intended_expectation(good, case, expected):
    frame, period = good, "2016-06"
    if case == "wrong_period":
        period = "2016-07"
    elif case == "negative_count":
        # acute days negative, non-acute up by as much: the care-type total still adds up
        acute = good.loc[(good["la_name"] == "Derby UA") & (good["breakdown"] == "care_type") & (good["category"] == "acute") & (good["measure"] == "delayed_days"), "value"].iloc[0]
        frame = set_value(good, "Derby UA", "care_type", "acute", -acute - 5)
        frame = set_value(frame, "Derby UA", "care_type", "non_acute", acute + 5)
    elif case == "unmapped_council":
        frame = with_code(good, "Derby UA", None)
    elif case == "unknown_code":
        frame = with_code(good, "Derby UA", "E06999999")
    elif case == "duplicate_rows":
        care_type_row = good.index[(good["breakdown"] == "care_type") & (good["row_type"] == "council")][0]
        frame = pd.concat([good, good.loc[[care_type_row]]], ignore_index=True)
    elif case == "missing_column":
        frame = good.drop(columns=["status"])
    elif case == "renamed_column":
        frame = good.rename(columns={"revised": "revision"})
    elif case == "areas_missing":
        frame = good[~good["la_name"].isin(["Derby UA", "Derbyshire"])]
    elif case == "sheet_cut_short":
        reason_councils = good.loc[(good["breakdown"] == "reason") & (good["row_type"] == "council"), "la_name"].unique()
        frame = good[~((good["breakdown"] == "reason") & good["la_name"].isin(reason_councils[-100:]))]
    elif case == "council_missing_from_one_sheet":
        frame = good[~((good["breakdown"] == "reason") & (good["la_name"] == "Derby UA"))]
    elif case == "council_with_delays_missing_from_care_type":
        frame = good[~((good["breakdown"] == "care_type") & (good["la_name"] == "Derby UA"))]
    elif case == "all_null_values":
        frame = good.assign(value=float("nan"))
    elif case == "agency_parts_do_not_add_up":
        frame = set_value(good, "Derby UA", "agency", "social_care", +7)
    elif case == "reason_parts_do_not_add_up":
        frame = set_value(good, "Derby UA", "reason", "E", +7)
    elif case == "fractional_days":
        frame = set_value(good, "Derby UA", "agency", "nhs", +0.5)
        frame = set_value(frame, "Derby UA", "agency", "total", +0.5)
    report, failures = failed(frame, period)
    assert failures == expected
    assert report.ok == all(severity == "warning" for _, _, severity in expected)


def test_cli_validate_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "carewatch.cli", "validate", "dtoc_la", str(REAL), "--period", "2016-06"], capture_output=True, text=True)
    assert ok.returncode == 0 and "0 blocking failures" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "carewatch.cli", "validate", "dtoc_la", str(REAL), "--period", "2016-07"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "FAIL blocking expect_column_values_to_be_in_set [period]" in bad.stdout
    assert bad.stderr.splitlines() == [f"carewatch: {REAL}: fails the dtoc_la suite for 2016-07: "
                                       "the period inside the file is the period requested"]


def test_failing_values_are_shown_with_the_row_they_are_on(good):
    frame = set_value(good, "Derby UA", "agency", "social_care", -10_000)
    frame = set_value(frame, "Derby UA", "agency", "nhs", +10_000)  # the total still adds up
    report, _ = failed(frame)
    negative = next(r for r in report.blocking_failures if r.column == "value")
    social_care = good.loc[(good["la_name"] == "Derby UA") & (good["breakdown"] == "agency") & (good["category"] == "social_care")
                           & (good["measure"] == "delayed_days"), "value"].iloc[0]
    assert negative.unexpected_examples == [f"Derby UA / agency / social_care / delayed_days: {social_care - 10_000}"]
    assert f"e.g. Derby UA / agency / social_care / delayed_days: {social_care - 10_000}" in negative.line()


def test_cli_validate_without_the_suite_is_one_line(tmp_path, monkeypatch, capsys):
    # a new source whose suite is not written yet, or a deployment missing expectations/
    from carewatch import cli, paths

    monkeypatch.setattr(paths, "expectations_dir", lambda: tmp_path / "nowhere")
    assert cli.main(["validate", "dtoc_la", str(REAL), "--period", "2016-06"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"carewatch: no expectation suite for dtoc_la: {tmp_path / 'nowhere' / 'dtoc_la.json'}, so nothing of it is validated "
        "or loaded (see expectations/README.md; deployed, is CAREWATCH_ROOT the project checkout?)"]


def test_failing_values_and_row_labels_read_as_python_writes_them():
    import numpy as np

    assert validation._plain(np.datetime64("2018-03-01")) == "2018-03-01"  # not nanoseconds since 1970
    assert validation._plain(np.datetime64("2018-03-01T10:30")) == "2018-03-01 10:30:00"
    assert validation._plain((np.float64(1.5), np.int64(2))) == (1.5, 2) and repr(validation._plain(np.float64(1.5))) == "1.5"
    assert validation._plain({"a": np.bool_(True)}) == {"a": True}


def test_the_suites_derived_columns_by_hand():
    """The dtoc_la suite's derivations on a hand-made month: two councils, A and B."""
    rows = [  # row_type, la_name, council_code, breakdown, category, value
        ("council", "A", "E1", "agency", "nhs", 10.0), ("council", "A", "E1", "agency", "social_care", 5.0),
        ("council", "A", "E1", "agency", "both", 2.0), ("council", "A", "E1", "agency", "total", 20.0),
        ("council", "B", "E2", "agency", "nhs", None), ("council", "B", "E2", "agency", "social_care", None),
        ("council", "B", "E2", "agency", "both", None), ("council", "B", "E2", "agency", "total", 30.5),
        ("council", "A", "E1", "reason", "A", 4.0), ("council", "A", "E1", "reason", "total", 4.0),
    ]
    frame = pd.DataFrame(rows, columns=["row_type", "la_name", "council_code", "breakdown", "category", "value"]).assign(measure="delayed_days")
    # earlier months: A 10, 10, 40 (median 10, mean 20); B 0, 0, 5 (median 0: no ratio)
    earlier = pd.DataFrame({"council_code": ["E1"] * 3 + ["E2"] * 3, "value": [10.0, 10.0, 40.0, 0.0, 0.0, 5.0]})
    specs = validation.load_suite("dtoc_la")["meta"]["derive"]
    got = validation._derive(frame, specs, lambda spec: earlier)
    a_total, b_total = 3, 7
    # A: NHS + social care + both - total = 17 - 20 = -3; B's parts are all missing: no sum, not 0 - 30.5
    assert got.loc[a_total, "agency_parts_minus_total"] == -3.0
    assert pd.isna(got.loc[b_total, "agency_parts_minus_total"])
    assert got.loc[9, "reason_parts_minus_total"] == 0.0  # 4 - 4
    # A: 20 over the median 10 = 2.0 (the mean, 20, would give 1.0); B: no ratio over a zero median
    assert got.loc[a_total, "ratio_to_trailing_median"] == 2.0
    assert pd.isna(got.loc[b_total, "ratio_to_trailing_median"])
    # 30.5 has a fractional part of 0.5; whole counts none; a missing count none either
    assert got.loc[b_total, "value_fraction"] == 0.5 and got.loc[a_total, "value_fraction"] == 0.0
    assert pd.isna(got.loc[4, "value_fraction"])
    # the agency sheet has both councils, the reason sheet only A: one council missing from it
    assert got["councils_in_sheet"].tolist() == [2.0] * 8 + [1.0] * 2
    assert got["councils_missing_from_sheet"].tolist() == [0.0] * 8 + [1.0] * 2


def test_an_expectation_whose_meta_names_no_severity_is_blocking(good, tmp_path, monkeypatch):
    # expectations/README.md: "severity blocking unless marked": a suite edit that drops the
    # severity must not let a failing file load as a warning
    import json
    import shutil

    from carewatch import paths

    suites = tmp_path / "expectations"
    shutil.copytree(paths.expectations_dir(), suites)
    suite = json.loads((suites / "dtoc_la.json").read_text())
    unmarked = [e for e in suite["expectations"]
                if e["type"] == "expect_column_values_to_be_between" and e["kwargs"].get("column") == "value"]
    assert unmarked
    for expectation in unmarked:
        del expectation["meta"]["severity"]
    (suites / "dtoc_la.json").write_text(json.dumps(suite))
    monkeypatch.setattr(paths, "expectations_dir", lambda: suites)
    bad = good.copy()
    bad.loc[bad["breakdown"] == "care_type", "value"] = -1.0
    report, failures = failed(bad)
    assert ("expect_column_values_to_be_between", "value", "blocking") in failures and not report.ok


# --- the file checked as a whole: the councils of its month, each once, its figures, England ----

REAL_ALL = sorted((FIXTURES / "real" / "dtoc-la").glob("*.xls"))
SAMPLES = paths.samples_dir() / "dtoc_la"
KEYS = ["breakdown", "category", "measure"]
COUNCIL_COUNT = ("expect_column_unique_value_count_to_be_between", "council_code", "blocking")
SHEET_COUNT = ("expect_column_values_to_be_between", "councils_in_sheet", "blocking")
ONE_ROW_PER_COUNCIL = "no two rows resolve to the same council"


def parsed(path):
    frame = parsers.parse("dtoc_la", path)
    return frame, str(frame["period"].iloc[0])[:7]


def descriptions(report):
    return {r.description for r in report.results if not r.success}


def england_as_published(frame, rows, sign):
    """``frame`` with ``rows``' figures added to (sign 1) or taken from (-1) England's: a file
    whose England row was summed from what it shows, so only the check under test can object."""
    delta = rows.groupby(KEYS)["value"].sum().rename("_delta").reset_index()
    out = frame.copy()
    england = out[out["row_type"] == "england"].reset_index().merge(delta, on=KEYS, how="left").set_index("index")
    out.loc[england.index, "value"] += sign * england["_delta"].fillna(0)
    return out


def without_council(frame, code):
    gone = frame[frame["council_code"] == code]
    assert len(gone)
    return england_as_published(frame.drop(gone.index), gone, -1)


@pytest.mark.parametrize("path", [*REAL_ALL, SAMPLES / "2018-02.xls", SAMPLES / "2019-04.xls", SAMPLES / "2019-05.xls"],
                         ids=lambda p: p.name)
def test_a_workbook_one_council_short_is_refused_in_every_era(path):
    # the drill: Derby UA's rows absent (England summed without it); 150 councils passed the
    # old 150-151 range in every month, but the month's councils are exact
    frame, period = parsed(path)
    assert failed(frame, period)[1] == set()
    report, failures = failed(without_council(frame, "E06000015"), period)
    assert failures == {COUNCIL_COUNT, CONTAINS, SHEET_COUNT} and not report.ok



@pytest.mark.parametrize("path", [*REAL_ALL, SAMPLES / "2019-04.xls"], ids=lambda p: p.name)
def test_a_council_with_no_delays_left_off_the_type_of_care_sheet_passes(path):
    # domain.md: "LA - by Type of Care" leaves out councils with no delays that month (City of
    # London in many months); the completeness checks once refused such a month. Derby with
    # no delays: every figure 0 (England as published without them) and no type-of-care rows
    frame, period = parsed(path)
    derby = frame["council_code"] == "E06000015"
    zeroed = england_as_published(frame, frame[derby], -1)
    zeroed.loc[derby & zeroed["value"].notna(), "value"] = 0.0
    report, failures = failed(zeroed[~(derby & (zeroed["breakdown"] == "care_type"))], period)
    assert failures == set(), [r.line() for r in report.results if not r.success]

def test_the_councils_are_those_in_force_the_day_before_the_month_around_the_dorset_change():
    april, _ = parsed(SAMPLES / "2019-04.xls")
    june, _ = parsed(FIXTURES / "real" / "dtoc-la" / "LA-Type-B-June-2019.xls")
    poole = april[april["council_code"] == "E06000029"]
    assert len(poole) and poole["value"].isna().all()  # April 2019: Poole's row of "-"
    # April 2019 on May's boundaries (without Poole's row): a council short
    report, failures = failed(without_council(april, "E06000029"), "2019-04")
    assert failures == {COUNCIL_COUNT, CONTAINS, SHEET_COUNT}
    # June 2019 still carrying Poole's row: 151 councils where 150 were in force, and its "-"
    # figures are no abolished council's any more
    report, failures = failed(pd.concat([june, poole.assign(period=june["period"].iloc[0])], ignore_index=True), "2019-06")
    assert failures == {COUNCIL_COUNT, SHEET_COUNT, NOT_NULL}


def test_two_rows_that_resolve_to_one_council_are_refused(good):
    # Leicester's row carrying Leicestershire's codes (E10000018, 508)
    frame = good.copy()
    leicester = frame["la_name"] == "Leicester UA"
    assert leicester.any()
    frame.loc[leicester, ["ons_code", "la_code", "council_code"]] = ["E10000018", "508", "E10000018"]
    report, failures = failed(frame)
    assert failures == {("expect_compound_columns_to_be_unique", None, "blocking"), COUNCIL_COUNT, CONTAINS, SHEET_COUNT}
    assert any(d.startswith(ONE_ROW_PER_COUNCIL) for d in descriptions(report))
    # "Derby" beside "Derby UA" (England counting it twice as well): every council is there once
    # by name, but Derby twice
    derby = good[good["la_name"] == "Derby UA"]
    frame = england_as_published(pd.concat([good, derby.assign(la_name="Derby")], ignore_index=True), derby, 1)
    report, failures = failed(frame)
    assert failures == {("expect_compound_columns_to_be_unique", None, "blocking")} and not report.ok
    assert [d for d in descriptions(report)] == [next(d for d in descriptions(report) if d.startswith(ONE_ROW_PER_COUNCIL))]


def test_a_missing_figure_that_is_not_an_abolished_councils_dash_is_refused(good):
    # "*" in every agency cell of Derby's (the parser reads it as null: nothing to add up),
    # England summed from the figures shown: a warning only, before
    cells = (good["la_name"] == "Derby UA") & (good["breakdown"] == "agency")
    frame = england_as_published(good.assign(value=good["value"].where(~cells)), good[cells], -1)
    report, failures = failed(frame)
    assert failures == {NOT_NULL} and not report.ok
    # Poole's row of "-" passes in April 2019 (the month it was abolished: every sample passes,
    # test_suites), not in March 2019, when Poole was still a council
    march, _ = parsed(SAMPLES / "2019-03.xls")
    poole = march["council_code"] == "E06000029"
    frame = england_as_published(march.assign(value=march["value"].where(~poole)), march[poole], -1)
    assert failed(frame, "2019-03")[1] == {NOT_NULL}


@pytest.mark.parametrize("path", [*REAL_ALL, SAMPLES / "2019-04.xls"], ids=lambda p: p.name)
def test_england_is_the_sum_of_the_council_and_special_rows_and_a_doubled_england_is_refused(path):
    frame, period = parsed(path)
    spec = next(s for s in validation.load_suite("dtoc_la")["meta"]["derive"] if s["name"] == "rest_minus_england")
    difference = validation._derive(frame, [spec], None)["rest_minus_england"]
    england = frame["row_type"] == "england"
    # every England figure (days and, from April 2017, beds; every sheet) is checked, and the
    # real workbooks add up exactly but for float rounding of the averages (< 3e-12)
    assert difference[england].notna().all() and difference[~england].isna().all()
    assert difference.abs().max() < 1e-9
    doubled = frame.copy()
    doubled.loc[england, "value"] *= 2
    report, failures = failed(doubled, period)
    assert failures == {ENGLAND} and not report.ok
