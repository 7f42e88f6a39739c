"""The suites: every embedded sample passes (every DTOC month too); the ASCOF, ONS,
hospital-aggregate and provider-level suites: every bad input fails exactly the intended
expectation (and nothing else)."""

from __future__ import annotations

import pandas as pd
import pytest

from carewatch import parsers, paths, sources, validation

SAMPLES = {
    "dtoc_la": "2018-03",  # (its bad-input cases are in test_validation.py, on a real workbook)
    "ascof": "2017-18",
    "ons_mye": "2017",
    "hes_aggregate": "2018-03",
    "dtoc_provider": "2019-10",
    "dtoc_national": "2018-03",
}


@pytest.fixture(scope="module")
def good():
    out = {}
    for source, period in SAMPLES.items():
        path = next((paths.samples_dir() / source).glob(f"{period}.*"))
        out[source] = parsers.parse(sources.parser_for(source), path, period)
    return out


def failures(source, frame, period=None):
    report = validation.validate(source, frame, period=period or SAMPLES[source])
    return report, {(r.expectation, r.column, r.severity) for r in report.results if not r.success}


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_every_embedded_sample_passes(source):
    for path in sorted((paths.samples_dir() / source).iterdir()):
        period = path.stem
        frame = parsers.parse(sources.parser_for(source), path, period)
        report, failed = failures(source, frame, period)
        assert failed == set(), (path.name, [r.line() for r in report.results if not r.success])


def _first(frame, **where):
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    assert mask.any(), where
    return frame.index[mask][0]


def _ascof(good, case):
    f = good["ascof"].copy()
    if case == "numerator_above_denominator":
        row = _first(f, geo_name="Hartlepool", measure_code="2B1", measure_type="Numerator")
        denominator = f.loc[_first(f, geo_name="Hartlepool", measure_code="2B1", measure_type="Denominator"), "value"]
        f.loc[row, "value"] = denominator + 3
    elif case == "proportion_out_of_range":
        f.loc[_first(f, geo_name="Hartlepool", measure_code="2B1", measure_type="Outcome"), "value"] = 112.5
    elif case == "suppressed_without_marker":
        f.loc[_first(f, geo_name="Hartlepool", measure_code="2B1", measure_type="Denominator"), "value"] = None
    elif case == "wrong_period":
        return f, "2018-19"
    elif case == "unknown_area":
        f.loc[f["geo_name"] == "Hartlepool", "council_code"] = "E06999999"
    elif case == "area_missing":
        f = f[f["geo_name"] != "Hartlepool"]
    elif case == "renamed_column":
        f = f.rename(columns={"geo_name": "geo_description"})
    elif case == "fractional_count":
        row = _first(f, geo_name="Hartlepool", measure_code="2B1", measure_type="Denominator")
        f.loc[row, "value"] += 0.5
    elif case == "headline_measure_missing":
        # a file without the 2B(1) headline rows (measure code "2B1"): its breakdowns (2B16574,
        # 2B1F...) keep measure group 2B1 there, but the warehouse reads the headline alone
        f = f[f["measure_code"] != "2B1"]
    elif case == "council_headline_row_missing":
        f = f.drop(index=_first(f, geo_name="Hartlepool", measure_code="2B1", measure_type="Denominator"))
    elif case == "england_headline_row_missing":
        f = f.drop(index=_first(f, geo_level="England", measure_code="2B2", measure_type="Numerator"))
    elif case == "other_measures_pass_through":
        # the real file holds every ASCOF measure: 1A is a score (numerator: the sum of scores,
        # above the respondents), 2A a rate per 100,000 (outcome above 100)
        extra = f[(f["measure_code"] == "2B1") & (f["geo_level"] == "Council")].copy()
        for group, values in (("1A", {"Numerator": 4520.5, "Denominator": 240.0, "Outcome": 18.8}),
                              ("2A", {"Numerator": 1210.0, "Denominator": 180_000.0, "Outcome": 672.2})):
            rows = extra.assign(measure_group=group, measure_code=group)
            rows["value"] = rows["measure_type"].map(values)
            f = pd.concat([f, rows], ignore_index=True)
    return f, None


def _ons(good, case):
    f = good["ons_mye"].copy()
    if case == "suppressed_population":
        f.loc[f.index[10], "population"] = None
    elif case == "negative_count":
        f.loc[f.index[10], "population"] = -4
    elif case == "age_out_of_range":
        f.loc[f.index[10], "age"] = 91
        f.loc[f.index[10], "age"] = 91
    elif case == "wrong_period":
        return f, "2016"
    elif case == "duplicate_rows":
        f = pd.concat([f, f.iloc[[10]]], ignore_index=True)
    elif case == "missing_column":
        f = f.drop(columns=["geography"])
    elif case == "area_missing":
        f = f[f["area_code"] != "E06000001"]
    elif case == "not_a_gss_code":
        f.loc[f["area_code"] == "E06000001", "area_code"] = "00EB"  # an old-style code where GSS is required
    return f, None


def _hes(good, case):
    f = good["hes_aggregate"].copy()
    if case == "numerator_above_denominator":
        discharges = f.loc[_first(f, area_code="E06000001", measure="discharges_65plus"), "value"]
        f.loc[_first(f, area_code="E06000001", measure="weekend_discharges_65plus"), "value"] = discharges + 1
    elif case == "area_missing":
        f = f[f["area_code"] != "E06000001"]
    elif case == "unknown_area":
        f.loc[f["area_code"] == "E06000001", "area_code"] = "E06999999"
    elif case == "length_of_stay_out_of_range":
        f.loc[_first(f, area_code="E06000001", measure="los_p90_days"), "value"] = 400.0
    elif case == "all_null_column":  # every figure suppressed, each with its marker
        f = f.assign(value=float("nan"), suppression="*")
    elif case == "all_null_without_marker":
        f = f.assign(value=float("nan"))
    elif case == "suppressed_with_marker":
        row = _first(f, area_code="E06000001", measure="emergency_admissions_65plus")
        f.loc[row, "value"], f.loc[row, "suppression"] = None, "[c]"
    elif case == "last_row_cut_short":
        # what the parser gives for a download cut short in the last row's fourth figure
        # ("...,Worcestershire,2324,"): its last three measures blank, no marker
        last = f["area_code"] == f["area_code"].iloc[-1]
        f.loc[last & (f["measure"] != "emergency_admissions_65plus"), "value"] = None
    elif case == "blank_length_of_stay_without_discharges":  # nothing to take a percentile of
        for measure in ("discharges_65plus", "weekend_discharges_65plus"):
            f.loc[_first(f, area_code="E06000001", measure=measure), "value"] = 0.0
        f.loc[_first(f, area_code="E06000001", measure="los_p90_days"), "value"] = None
    elif case == "blank_length_of_stay_with_discharges":
        f.loc[_first(f, area_code="E06000001", measure="los_p90_days"), "value"] = None
    elif case == "blank_length_of_stay_beside_suppressed_discharges":  # a small count's percentile goes with it (a review found it refused)
        for measure in ("discharges_65plus", "weekend_discharges_65plus"):
            row = _first(f, area_code="E06000001", measure=measure)
            f.loc[row, "value"], f.loc[row, "suppression"] = None, "*"
        f.loc[_first(f, area_code="E06000001", measure="los_p90_days"), "value"] = None
    elif case == "blank_length_of_stay_beside_blank_discharges":  # no marker on the discharges: refused there
        f.loc[_first(f, area_code="E06000001", measure="discharges_65plus"), "value"] = None
        f.loc[_first(f, area_code="E06000001", measure="los_p90_days"), "value"] = None
    return f, None


@pytest.mark.parametrize("kept", [", 2324,", ", 2324, 2160, 18.0,", ", 2324, 2160,"])
def test_a_hospital_aggregate_cut_short_in_its_last_row_is_refused(tmp_path, kept):
    """A download that stopped mid-row (no Content-Length to notice it by): the last area's
    missing figures have no suppression marker, so the file is refused, not loaded with that
    area's measures empty (the null check alone is a warning)."""
    sample = paths.samples_dir() / "hes_aggregate" / "2018-03.csv"
    text = sample.read_text()
    assert text.endswith("2018-03,E10000034,Worcestershire,2324,2160,18.0,372\n")
    cut = tmp_path / "2018-03.csv"
    cut.write_text(text[: text.rindex("2018-03,E10000034")] + "2018-03,E10000034,Worcestershire" + kept.replace(" ", ""))
    frame = parsers.parse(sources.parser_for("hes_aggregate"), cut, "2018-03")
    last = frame[frame["area_code"] == "E10000034"]
    assert last["value"].isna().any() and last["suppression"].isna().all()  # blank, not suppressed
    report, failed = failures("hes_aggregate", frame)
    assert failed == {(NOTNULL, "suppression", "blocking")} and not report.ok, [r.line() for r in report.results if not r.success]
    assert all(example.startswith("E10000034 / ") for r in report.blocking_failures for example in r.unexpected_examples)


def test_a_hospital_aggregate_keeps_each_suppression_marker(tmp_path):
    text = ("Period,Area Code,Area Name,Emergency Admissions 65+,Discharges 65+,LOS P90 Days,Weekend Discharges 65+\n"
            "2018-03,E06000001,Hartlepool,314,*,[c],..\n"
            "2018-03,E06000002,Middlesbrough,[x],-,,71\n")
    path = tmp_path / "2018-03.csv"
    path.write_text(text)
    got = parsers.parse(sources.parser_for("hes_aggregate"), path, "2018-03")
    marks = {(r.area_code, r.measure): (None if pd.isna(r.value) else r.value, None if pd.isna(r.suppression) else r.suppression) for r in got.itertuples()}
    assert marks[("E06000001", "emergency_admissions_65plus")] == (314.0, None)
    assert marks[("E06000001", "discharges_65plus")] == (None, "*")
    assert marks[("E06000001", "los_p90_days")] == (None, "[c]")
    assert marks[("E06000001", "weekend_discharges_65plus")] == (None, "..")
    assert marks[("E06000002", "emergency_admissions_65plus")] == (None, "[x]")
    assert marks[("E06000002", "discharges_65plus")] == (None, "-")
    assert marks[("E06000002", "los_p90_days")] == (None, None)  # blank: missing, no marker


def _provider(good, case):
    f = good["dtoc_provider"].copy()
    if case == "unknown_reason":
        f.loc[f.index[0], "reason"] = "Z"
    elif case == "negative_count":
        f.loc[f.index[0], "delayed_days"] = -1.0
    elif case == "suppressed_days":
        f.loc[f.index[0], "delayed_days"] = None
    elif case == "duplicate_rows":
        f = pd.concat([f, f.iloc[[0]]], ignore_index=True)
    elif case == "wrong_period":
        return f, "2019-11"
    return f, None


PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
BETWEEN, INSET, NOTNULL = "expect_column_values_to_be_between", "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_null"
COUNT, UNIQUE = "expect_column_unique_value_count_to_be_between", "expect_compound_columns_to_be_unique"
COLUMNS = "expect_table_columns_to_match_set"
CONTAIN = "expect_column_distinct_values_to_contain_set"


@pytest.mark.parametrize(
    "source,case,expected",
    [
        ("ascof", "numerator_above_denominator", {(PAIR, None, "blocking")}),
        ("ascof", "proportion_out_of_range", {(BETWEEN, "value", "blocking")}),
        ("ascof", "suppressed_without_marker", {(NOTNULL, "suppression", "blocking")}),
        ("ascof", "wrong_period", {(INSET, "year", "blocking")}),
        # the council in force is then also without its headline rows: those checks say so too
        ("ascof", "unknown_area", {(INSET, "council_code", "blocking"), (CONTAIN, "council_code", "blocking")}),
        ("ascof", "area_missing", {(COUNT, "council_code", "blocking"), (CONTAIN, "council_code", "blocking")}),
        ("ascof", "renamed_column", {(COLUMNS, None, "blocking")}),
        ("ascof", "fractional_count", {(BETWEEN, "count_fraction", "blocking")}),
        ("ascof", "other_measures_pass_through", set()),
        # every council and England lose 2B(1): the measure group is still there (breakdowns)
        ("ascof", "headline_measure_missing", {(CONTAIN, "council_code", "blocking"), (CONTAIN, "measure_code", "blocking")}),
        ("ascof", "council_headline_row_missing", {(CONTAIN, "council_code", "blocking")}),
        ("ascof", "england_headline_row_missing", {(CONTAIN, "measure_code", "blocking")}),
        ("ons_mye", "suppressed_population", {(NOTNULL, "population", "blocking")}),
        ("ons_mye", "negative_count", {(BETWEEN, "population", "blocking")}),
        ("ons_mye", "age_out_of_range", {(BETWEEN, "age", "blocking")}),
        ("ons_mye", "wrong_period", {(INSET, "mid_year", "blocking")}),
        ("ons_mye", "duplicate_rows", {(UNIQUE, None, "blocking"), (BETWEEN, "ages_in_area", "blocking")}),
        ("ons_mye", "area_missing", {("expect_column_distinct_values_to_contain_set", "area_code", "blocking")}),
        # the council is then also missing: both say so
        ("ons_mye", "not_a_gss_code", {("expect_column_values_to_match_regex", "area_code", "blocking"), ("expect_column_distinct_values_to_contain_set", "area_code", "blocking")}),
        ("ons_mye", "missing_column", {(COLUMNS, None, "blocking")}),
        ("hes_aggregate", "numerator_above_denominator", {(PAIR, None, "blocking")}),
        ("hes_aggregate", "area_missing", {(COUNT, "area_code", "blocking")}),
        ("hes_aggregate", "unknown_area", {(INSET, "area_code", "blocking")}),
        ("hes_aggregate", "length_of_stay_out_of_range", {(BETWEEN, "value", "blocking")}),
        ("hes_aggregate", "all_null_column", {(NOTNULL, "value", "warning")}),
        ("hes_aggregate", "all_null_without_marker", {(NOTNULL, "value", "warning"), (NOTNULL, "suppression", "blocking")}),
        ("hes_aggregate", "suppressed_with_marker", set()),
        ("hes_aggregate", "last_row_cut_short", {(NOTNULL, "suppression", "blocking")}),
        ("hes_aggregate", "blank_length_of_stay_without_discharges", set()),
        ("hes_aggregate", "blank_length_of_stay_with_discharges", {(NOTNULL, "suppression", "blocking")}),
        ("hes_aggregate", "blank_length_of_stay_beside_suppressed_discharges", set()),
        ("hes_aggregate", "blank_length_of_stay_beside_blank_discharges", {(NOTNULL, "suppression", "blocking")}),
        ("dtoc_provider", "unknown_reason", {(INSET, "reason", "blocking")}),
        ("dtoc_provider", "negative_count", {(BETWEEN, "delayed_days", "blocking")}),
        ("dtoc_provider", "suppressed_days", {(NOTNULL, "delayed_days", "blocking")}),
        ("dtoc_provider", "duplicate_rows", {(UNIQUE, None, "blocking")}),
        ("dtoc_provider", "wrong_period", {(INSET, "period", "blocking")}),
    ],
)
def test_bad_input_fails_the_intended_expectation(good, source, case, expected):
    corrupt = {"ascof": _ascof, "ons_mye": _ons, "hes_aggregate": _hes, "dtoc_provider": _provider}[source]
    frame, period = corrupt(good, case)
    report, failed = failures(source, frame, period)
    assert failed == expected, [r.line() for r in report.results if not r.success]
    assert report.ok == all(severity == "warning" for _, _, severity in expected)


@pytest.mark.parametrize(("case", "failing"), [
    ("headline_measure_missing", ["the 2B(1) headline numerator row", "the 2B(1) headline denominator row",
                                  "England's 2B(1) and 2B(2) headline numerator rows", "England's 2B(1) and 2B(2) headline denominator rows"]),
    ("council_headline_row_missing", ["the 2B(1) headline denominator row"]),
    ("england_headline_row_missing", ["England's 2B(1) and 2B(2) headline numerator rows"]),
])
def test_ascof_headline_rows_the_warehouse_reads_are_each_checked(good, case, failing):
    # the rows int_ascof_hwb_year.sql and fct_metric_values.sql read (measure code = measure
    # group 2B1/2B2, numerator and denominator): each kind its own blocking check, naming it
    frame, _ = _ascof(good, case)
    report, _ = failures("ascof", frame)
    failed = [r for r in report.results if not r.success]
    assert len(failed) == len(failing) and not report.ok, [r.line() for r in failed]
    for start in failing:
        assert any(r.description.startswith(start) and r.severity == "blocking" for r in failed), (start, [r.description for r in failed])



def test_ascof_headline_rows_are_checked_for_councils_as_the_parser_codes_them(tmp_path):
    # a review found every year from 2020-21 refused: the headline checks compared the rows'
    # council codes (a pure recode keeps its 2017 code: Buckinghamshire E10000002) with the
    # codes in force (E06000060). The 2018-19 sample on 2020-21's councils: Bournemouth, Poole
    # and Christchurch are one (BCP E06000058), the new Dorset is E06000059, Buckinghamshire E06000060
    frame = pd.read_csv(paths.samples_dir() / "ascof" / "2018-19.csv", encoding="cp1252", dtype=str)
    frame = frame[frame["ONS Area Code"] != "E06000029"]
    frame["ONS Area Code"] = frame["ONS Area Code"].replace({"E06000028": "E06000058", "E10000009": "E06000059", "E10000002": "E06000060"})
    path = tmp_path / "2020-21.csv"
    frame.to_csv(path, index=False, encoding="cp1252")
    parsed = parsers.parse("ascof", path, "2020-21")
    assert "E10000002" in set(parsed["council_code"])  # as the warehouse reads Buckinghamshire
    report, failed = failures("ascof", parsed, "2020-21")
    assert failed == set(), [r.line() for r in report.results if not r.success]
    # and a council still missing is refused: Buckinghamshire's rows gone
    report, failed = failures("ascof", parsed[parsed["council_code"] != "E10000002"], "2020-21")
    assert (CONTAIN, "council_code", "blocking") in failed

def _ons_sample(year):
    return parsers.parse(sources.parser_for("ons_mye"), paths.samples_dir() / "ons_mye" / f"{year}.xls", str(year))


def _ons_times(frame, area_code, factor):
    out = frame.copy()
    rows = out["area_code"] == area_code
    out.loc[rows, "population"] = (out.loc[rows, "population"] * factor).round().astype(out["population"].dtype)
    return out


PREVIOUS_YEAR = {(BETWEEN, column, severity) for column in ("adults_to_previous_year", "older_people_to_previous_year")
                 for severity in ("warning", "blocking")}


@pytest.mark.parametrize(("year", "case", "expected"), [
    (2017, "as_published", set()),
    # Hartlepool's figures multiplied by 10 (it then ranked 1st overall): beyond a doubling
    (2017, "one_area_times_10", PREVIOUS_YEAR),
    # keyed twice (x2, plus a year's growth): beyond a doubling too
    (2017, "one_area_counted_twice", PREVIOUS_YEAR),
    # 15% more: loaded, with a warning to look at it (the real City of London fell 22% in a year)
    (2017, "one_area_15_percent_up", {(BETWEEN, "adults_to_previous_year", "warning"), (BETWEEN, "older_people_to_previous_year", "warning")}),
    # mid-2018: BCP and the new Dorset have no previous estimate under their codes, and pass
    (2018, "as_published", set()),
])
@pytest.mark.parametrize("previous", ["loaded", "parsed_in_this_run"])
def test_ons_populations_against_the_previous_mid_year_estimate(carewatch_home, year, case, expected, previous):
    """Each area's 18+ and 65+ populations against its previous mid-year estimate, read from the
    warehouse (or the previous year's parsed file, fetched in the same run, not loaded yet)."""
    from carewatch import fetch, warehouse

    frame = _ons_sample(year)
    factor = {"as_published": 1, "one_area_times_10": 10, "one_area_counted_twice": 2, "one_area_15_percent_up": 1.15}[case]
    frame = _ons_times(frame, "E06000001", factor)
    sha = "1" * 64
    target = paths.parsed_path("ons_mye", str(year - 1), sha)
    target.parent.mkdir(parents=True, exist_ok=True)
    _ons_sample(year - 1).to_parquet(target, index=False)
    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        con.execute("insert into raw_manifest values (?, ?, 1, 'http://x', now(), 200, 1, ?, null, null, 'x')", ["ons_mye", str(year - 1), sha])
        if previous == "loaded":
            warehouse.load_parsed(con, source="ons_mye", period=str(year - 1), version=1, sha256=sha, parsed_path=target)
        report = validation.validate("ons_mye", frame, period=str(year), history=validation.warehouse_history(con, "ons_mye", str(year)))
        derived = validation.prepare("ons_mye", frame, period=str(year), history=validation.warehouse_history(con, "ons_mye", str(year))).frame
    adults = derived[derived["age"] >= 18].groupby("area_code")["adults_to_previous_year"].first()
    new_codes = {"E06000058", "E06000059"} if year == 2018 else set()  # BCP and the new Dorset: no history under their codes
    assert adults[sorted(new_codes)].isna().all() and adults.drop(sorted(new_codes)).notna().all()
    failed = {(r.expectation, r.column, r.severity) for r in report.results if not r.success}
    assert failed == expected, [r.line() for r in report.results if not r.success]
    assert report.ok == all(severity == "warning" for _, _, severity in expected)
    for result in (r for r in report.results if not r.success):
        assert all(example.startswith("E06000001 / ") for example in result.unexpected_examples), result.unexpected_examples
    # no warehouse (a fresh machine): no history, null, passes
    derived = validation.prepare("ons_mye", frame, period=str(year), history=validation.warehouse_history(None, "ons_mye", str(year))).frame
    assert derived["adults_to_previous_year"].isna().all()


def test_ons_previous_year_ratio_is_the_area_sum_over_its_previous_sum():
    frame = pd.DataFrame({"area_code": ["A"] * 3 + ["B"] * 3, "age": [10, 20, 70] * 2, "population": [5.0, 100.0, 50.0, 1.0, 30.0, 10.0]})
    earlier = pd.DataFrame({"area_code": ["A"], "value": [75.0]})  # A's 18+ last year; B has no history (a new code)
    specs = [s for s in validation.load_suite("ons_mye")["meta"]["derive"] if s["name"] == "adults_to_previous_year"]
    got = validation._derive(frame, specs, lambda spec: earlier)["adults_to_previous_year"]
    assert pd.isna(got[0]) and got[1] == got[2] == 2.0  # (100 + 50) / 75 on each 18+ row; under 18: no ratio
    assert got[3:].isna().all()


REAL = sorted((paths.PROJECT_ROOT / "tests" / "fixtures" / "real").glob("*/*.xls"))


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_every_real_publication_passes_and_a_corrupted_copy_fails_the_intended_expectation(path):
    """Real workbooks (one DTOC LA workbook per layout era, two ONS releases): clean as published."""
    source = "ons_mye" if path.parent.name == "ons" else "dtoc_la"
    frame = parsers.parse(source, path)
    period = str(frame["mid_year"].iloc[0]) if source == "ons_mye" else str(frame["period"].iloc[0])[:7]
    report, failed = failures(source, frame, period)
    assert failed == set(), [r.line() for r in report.results if not r.success]

    corrupt = frame.copy()
    if source == "ons_mye":  # a keying error: one age's population deleted
        corrupt.loc[corrupt.index[corrupt["area_code"] == "E08000025"][30], "population"] = None
        expected = {(NOTNULL, "population", "blocking")}
    else:  # one council's NHS days changed but not its total
        row = corrupt.index[(corrupt["row_type"] == "council") & (corrupt["breakdown"] == "agency") & (corrupt["category"] == "nhs") & (corrupt["measure"] == "delayed_days")][10]
        corrupt.loc[row, "value"] += 25
        # (and England's NHS figure is no longer the sum of the rows under it)
        expected = {(BETWEEN, "agency_parts_minus_total", "blocking"), (BETWEEN, "rest_minus_england", "blocking")}
    report, failed = failures(source, corrupt, period)
    assert failed == expected and not report.ok



def test_descriptions_show_the_run_time_numbers_not_their_names(good):
    # "every council in force when the year started ($council_count)" read so in emails
    report, _ = failures("ascof", good["ascof"])
    completeness = next(r for r in report.results if r.description.startswith("completeness: every council in force"))
    assert completeness.description == "completeness: every council in force when the year started (152)"  # 2017-18: 152 councils
    report, _ = failures("hes_aggregate", good["hes_aggregate"])
    completeness = next(r for r in report.results if r.description.startswith("completeness: every HWB area"))
    assert completeness.description == "completeness: every HWB area in force that month (150)"  # March 2018
    for source in SAMPLES:
        report, _ = failures(source, good[source])
        assert not [r.description for r in report.results if "$" in r.description]


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_an_empty_frame_fails_its_completeness_checks_not_the_validation(good, source):
    report, failed = failures(source, good[source].iloc[:0])
    assert failed and report.ok == (source == "dtoc_provider")  # the provider file's completeness is a warning


def test_derived_columns_of_an_empty_frame_are_empty_not_an_error():
    # the hospital parser's frame of a header-only file: text in pandas' Arrow-backed str of
    # zero chunks (a concat of empty frames); the derivations' pandas join raised ArrowInvalid
    # ("cannot construct ChunkedArray from empty vector"), which the CLI blamed on the warehouse
    import pyarrow as pa

    def no_chunks():
        return pd.Series(pd.array(pa.chunked_array([], type=pa.large_string()), dtype="str"))

    empty = pd.DataFrame({"period": pd.Series([], dtype=object), "area_code": no_chunks(), "area_name": no_chunks(),
                          "measure": no_chunks(), "value": pd.Series([], dtype="float64")})
    report, failed = failures("hes_aggregate", empty, "2017-11")
    assert ("expect_column_unique_value_count_to_be_between", "area_code", "blocking") in failed


def test_a_pair_or_compound_failure_is_shown_with_its_row_and_plain_values(good):
    # a pair check's example once read "(np.float64(100.0), np.float64(120.0))"
    frame, _ = _hes(good, "numerator_above_denominator")
    discharges = good["hes_aggregate"].loc[_first(good["hes_aggregate"], area_code="E06000001", measure="discharges_65plus"), "value"]
    report, _ = failures("hes_aggregate", frame)
    [pair] = [r for r in report.results if not r.success]
    assert pair.unexpected_examples == [f"E06000001 / weekend_discharges_65plus: discharges_of_weekend {discharges}, value {discharges + 1}"]
    frame, _ = _provider(good, "duplicate_rows")
    report, _ = failures("dtoc_provider", frame)
    [duplicate] = [r for r in report.results if not r.success]
    first = good["dtoc_provider"].iloc[0]  # the duplicated row: its label, then the key column the label leaves out
    label = " / ".join(str(first[c]) for c in ("provider_code", "la_name", "care_type", "reason", "agency"))
    assert duplicate.unexpected_examples == [f"{label}: la_code {first['la_code']}"] * 2


def test_every_committed_suite_builds_in_gx_with_every_expectation():
    # GX's ExpectationSuite only logs an expectation type it does not know and leaves it out:
    # every expectation of every suite must build, or the suite would run without it
    import json

    for suite_file in sorted(paths.expectations_dir().glob("*.json")):
        written = len(json.loads(suite_file.read_text())["expectations"])
        assert validation.check_suite(suite_file.stem) == written, suite_file.name


@pytest.mark.parametrize(("suite", "name", "known"), [
    ("ascof", "$months_from_first", False),   # a yearly source has no month count
    ("ascof", "$period_start", False),
    ("ascof", "$council_count", True),
    ("dtoc_la", "$months_from_first", True),  # a monthly one has
    ("metric_completeness", "$period", False),  # a warehouse check has no period
    ("metric_completeness", "$hwb_codes", True),
])
def test_a_suite_may_name_only_the_run_time_values_validation_fills_in_for_it(suite, name, known, tmp_path, monkeypatch):
    import json
    import shutil

    from carewatch.errors import SuiteError

    suites = tmp_path / "expectations"
    shutil.copytree(paths.expectations_dir(), suites)
    data = json.loads((suites / f"{suite}.json").read_text())
    data["expectations"].append({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": name}})
    (suites / f"{suite}.json").write_text(json.dumps(data))
    monkeypatch.setattr(paths, "expectations_dir", lambda: suites)
    if known:
        assert validation.check_suite(suite) == len(data["expectations"])
    else:
        with pytest.raises(SuiteError, match=f"no run-time value \\{name} here"):
            validation.check_suite(suite)


BROKEN = {  # an authoring mistake, the expectation as written, and what GX says of it
    "one-column compound key": ({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["geo_code"]}},
                                "(expect_compound_columns_to_be_unique): column_list: column_list must contain at least two columns."),
    "unknown type": ({"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "value", "min_value": 0}},
                     "(expect_column_values_to_be_betwen [value]): not an expectation GX knows"),
    "misspelt argument": ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "value", "min_valu": 0, "max_value": 9}},
                          "(expect_column_values_to_be_between [value]): min_valu: extra fields not permitted"),
    "unknown run-time value": ({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "year", "value_set": "$perod"}},
                               "(expect_column_values_to_be_in_set [year]): no run-time value $perod"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_expectation_is_one_line_naming_the_suite_and_the_expectation(case, carewatch_home, tmp_path, monkeypatch, capsys):
    import json
    import shutil

    from carewatch import cli
    from carewatch.errors import SuiteError

    suites = tmp_path / "expectations"
    shutil.copytree(paths.expectations_dir(), suites)
    suite = json.loads((suites / "ascof.json").read_text())
    suite["expectations"].append(BROKEN[case][0])
    (suites / "ascof.json").write_text(json.dumps(suite))
    monkeypatch.setattr(paths, "expectations_dir", lambda: suites)
    where = f"{suites / 'ascof.json'}: expectation {len(suite['expectations'])} {BROKEN[case][1]}"
    with pytest.raises(SuiteError) as checked:
        validation.check_suite("ascof")
    assert str(checked.value).startswith(where)
    # `carewatch validate` on a good file: the one line, exit 2, no traceback and no results,
    # with or without a warehouse to read the history from (not a note that it is unreadable)
    sample = next((paths.samples_dir() / "ascof").glob("2017-18.*"))
    for warehouse_there in (False, True):
        if warehouse_there:
            import duckdb

            paths.warehouse_path().parent.mkdir(parents=True, exist_ok=True)
            duckdb.connect(str(paths.warehouse_path())).close()
        assert cli.main(["validate", "ascof", str(sample), "--period", "2017-18"]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") == 1 and err.startswith(f"carewatch: {where}"), err
