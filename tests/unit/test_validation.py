"""The dtoc_la Great Expectations suite: every bad input fails exactly the intended expectation."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from carewatch import parsers, validation
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
    assert failures == set() and report.ok and len(report.results) == 9


def with_code(frame, name, code):
    out = frame.copy()
    out.loc[out["la_name"] == name, "council_code"] = code
    return out


@pytest.mark.parametrize(
    "case,expected",
    [
        ("wrong_period", {("expect_column_values_to_be_in_set", "period", "blocking")}),
        ("negative_count", {("expect_column_values_to_be_between", "value", "blocking")}),
        ("unmapped_council", {("expect_column_values_to_not_be_null", "council_code", "blocking")}),
        ("unknown_code", {("expect_column_values_to_be_in_set", "council_code", "blocking")}),
        ("duplicate_rows", {("expect_compound_columns_to_be_unique", None, "blocking")}),
        ("missing_column", {("expect_table_columns_to_match_set", None, "blocking")}),
        ("renamed_column", {("expect_table_columns_to_match_set", None, "blocking")}),
        ("areas_missing", {("expect_column_unique_value_count_to_be_between", "council_code", "blocking")}),
        ("all_null_values", {("expect_column_values_to_not_be_null", "value", "warning")}),
    ],
)
def test_bad_input_fails_the_intended_expectation(good, case, expected):
    frame, period = good, "2016-06"
    if case == "wrong_period":
        period = "2016-07"
    elif case == "negative_count":
        frame = good.copy()
        frame.loc[frame.index[40], "value"] = -5.0
    elif case == "unmapped_council":
        frame = with_code(good, "Derby UA", None)
    elif case == "unknown_code":
        frame = with_code(good, "Derby UA", "E06999999")
    elif case == "duplicate_rows":
        frame = pd.concat([good, good.iloc[[20]]], ignore_index=True)
    elif case == "missing_column":
        frame = good.drop(columns=["status"])
    elif case == "renamed_column":
        frame = good.rename(columns={"revised": "revision"})
    elif case == "areas_missing":
        frame = good[~good["la_name"].isin(["Derby UA", "Derbyshire"])]
    elif case == "all_null_values":
        frame = good.assign(value=float("nan"))
    report, failures = failed(frame, period)
    assert failures == expected
    assert report.ok == all(severity == "warning" for _, _, severity in expected)


def test_cli_validate_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "carewatch.cli", "validate", "dtoc_la", str(REAL), "--period", "2016-06"], capture_output=True, text=True)
    assert ok.returncode == 0 and "0 blocking failures" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "carewatch.cli", "validate", "dtoc_la", str(REAL), "--period", "2016-07"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "FAIL blocking expect_column_values_to_be_in_set [period]" in bad.stdout
