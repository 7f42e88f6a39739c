"""Task helpers of carewatch.pipeline that do not need Airflow."""

from carewatch import pipeline


def test_as_list_accepts_what_a_mapped_task_group_hands_over():
    one = {"period": "2018-03"}
    assert pipeline.as_list(None) == []  # expanded over no period
    assert pipeline.as_list(one) == [one]  # one period, under the scheduler: the lone result
    assert pipeline.as_list([one, None, one]) == [one, one]  # skipped instances give nothing
    assert pipeline.as_list((r for r in [one])) == [one]  # a lazy XCom sequence


# --- an unchanged file is not validated, emailed or loaded twice --------------------------

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from carewatch import mailcatcher, parsers, paths, validation  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402

REAL = FIXTURES / "real" / "dtoc-la" / "LA-Type-B-June-2016.xls"


def four_times_the_usual(monkeypatch):
    """The real workbook, with a warehouse history in which every council had a quarter of this
    month's days: it passes with one warning (3x the trailing median). (Every figure missing
    was the warning-only file until a figure missing outside an abolished council's row was
    made blocking.)"""
    frame = parsers.parse("dtoc_la", REAL)
    totals = frame[(frame["row_type"] == "council") & (frame["breakdown"] == "agency") & (frame["category"] == "total")
                   & (frame["measure"] == "delayed_days")]
    earlier = totals[["council_code", "value"]].assign(value=totals["value"] / 4)
    monkeypatch.setattr(validation, "warehouse_history", lambda con, source, period: (lambda spec: earlier))
    return frame


def england_summed(frame):
    """``frame`` with England's figures the sum of the council and special rows' (as a file
    whose councils' figures were wrongly keyed would show them), so only the check under test objects."""
    keys = ["breakdown", "category", "measure"]
    sums = frame[frame["row_type"] != "england"].groupby(keys)["value"].sum().rename("_sum").reset_index()
    out = frame.copy()
    england = out[out["row_type"] == "england"].reset_index().merge(sums, on=keys, how="left").set_index("index")
    out.loc[england.index, "value"] = england["_sum"]
    return out


@pytest.fixture
def mailbox(tmp_path, monkeypatch):
    with mailcatcher.catch_mail(tmp_path / "mail") as (port, directory):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", mailcatcher.connection_uri(port))
        yield directory


def parsed_file(frame, sha256: str) -> dict:
    """What the parse task hands on, for a frame kept as the parsed file of June 2016."""
    target = paths.parsed_path("dtoc_la", "2016-06", sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)
    return {"source": "dtoc_la", "period": "2016-06", "version": 1, "sha256": sha256, "raw_path": str(REAL),
            "parsed_path": str(target), "rows": len(frame), "reused": False}


def recorded_results():
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        return con.execute("select * from validation_results order by all").fetchall()


def test_a_file_that_passed_with_warnings_is_not_validated_or_emailed_again(carewatch_home, mailbox, monkeypatch):
    # every council at four times its usual days: a warning (the batch loads), not a blocking failure
    frame = four_times_the_usual(monkeypatch)
    parsed = parsed_file(frame, "a" * 64)

    first = pipeline.validate_period(parsed)
    assert first["validated"] and not first["validation_reused"] and first["warnings"] == 1
    assert len(mailcatcher.messages(mailbox)) == 1
    results = recorded_results()
    assert len(results) == len(validation.load_suite("dtoc_la")["expectations"]) == 20

    again = pipeline.validate_period(parsed)
    assert again["validation_reused"] and again["warnings"] == 1 and again["docs_url"] == first["docs_url"]
    assert len(mailcatcher.messages(mailbox)) == 1  # no repeat email
    assert recorded_results() == results  # the first validation's record, untouched

    # a different file for the same period is validated (and its warning emailed)
    other = pipeline.validate_period(parsed_file(frame.assign(value=frame["value"]), "b" * 64))
    assert not other["validation_reused"] and len(mailcatcher.messages(mailbox)) == 2


def test_a_failed_file_is_not_validated_or_emailed_again_until_its_validation_changes(carewatch_home, mailbox, tmp_path, monkeypatch):
    import json
    import shutil

    from carewatch.errors import AlreadyQuarantined, QualityError, StillQuarantined

    frame = parsers.parse("dtoc_la", REAL)
    frame.loc[frame["breakdown"] == "care_type", "value"] = -1.0  # negative delayed days: blocking
    frame = england_summed(frame)
    parsed = parsed_file(frame, "c" * 64)
    quarantine = "select sha256, attempts, quarantined_at, last_failed_at, blocking_failures from quarantine"
    with pytest.raises(QualityError) as failure:
        pipeline.validate_period(parsed)
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        [(sha, attempts, first, last, reasons)] = con.execute(quarantine).fetchall()
        recorded = con.execute("select count(*) from validation_results").fetchone()[0]
        # what failed, in words and with its thresholds, for an analyst querying the table
        blocking = con.execute("""select expectation, "column", description, expected from validation_results
                                  where not success and severity = 'blocking'""").fetchall()
    assert (sha, attempts, first) == ("c" * 64, 1, last) and reasons.startswith("FAIL")
    assert ("expect_column_values_to_be_between", "value") in [(e, c) for e, c, _, _ in blocking]
    assert all(description and "min_value=0" in expected for e, _, description, expected in blocking
               if e == "expect_column_values_to_be_between")
    # the same file in the next month's revision window: the same failure, known; no GX run
    with pytest.raises(AlreadyQuarantined, match="dtoc_la 2016-06: this file failed the same validation") as known:
        pipeline.validate_period(parsed)
    assert all(line in str(known.value) for line in failure.value.failures)  # told as fully as the first time
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute(quarantine).fetchall() == [(sha, 1, first, last, reasons)]
        assert con.execute("select count(*) from validation_results").fetchone()[0] == recorded
    # a changed suite validates it again: still failing, one row for the one file
    suites = tmp_path / "expectations"
    shutil.copytree(paths.expectations_dir(), suites)
    suite = json.loads((suites / "dtoc_la.json").read_text())
    suite["meta"]["note"] = "a suite change"
    (suites / "dtoc_la.json").write_text(json.dumps(suite))
    monkeypatch.setattr(paths, "expectations_dir", lambda: suites)
    # the same expectations fail with the same thresholds: already reported, not failed and emailed again
    with pytest.raises(StillQuarantined, match="dtoc_la 2016-06: validated again .* failed only expectations already reported") as still:
        pipeline.validate_period(parsed)
    assert all(line in str(still.value) for line in failure.value.failures)
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        # first failure kept, latest failure and attempts updated
        [(sha, attempts, first_again, last_again, _)] = con.execute(quarantine).fetchall()
    assert (sha, attempts, first_again) == ("c" * 64, 2, first) and last_again > last
    # a threshold of a failing expectation changed: a new reason, failed (and so emailed) again
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_column_values_to_be_between" and expectation["kwargs"].get("column") == "value":
            expectation["kwargs"]["min_value"] = -0.5  # -1 still fails
    (suites / "dtoc_la.json").write_text(json.dumps(suite))
    with pytest.raises(QualityError) as failure_again:
        pipeline.validate_period(parsed)
    assert not isinstance(failure_again.value, StillQuarantined)
    assert any("min_value=-0.5" in r.expected for r in failure_again.value.report.blocking_failures)
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        [(sha, attempts, first_again, _, _)] = con.execute(quarantine).fetchall()
    assert (sha, attempts, first_again) == ("c" * 64, 3, first)


def test_a_change_far_down_a_long_threshold_list_is_a_new_reason(carewatch_home, tmp_path, monkeypatch):
    """Thresholds are compared in full, not as the email shows them: a column set of 13 names
    whose last name changed is a new reason (emailed), even though the email cuts long lists."""
    import json
    import shutil

    from carewatch.errors import QualityError, StillQuarantined

    frame = parsers.parse("dtoc_la", REAL).assign(junk=1)  # a column too many: blocking
    parsed = parsed_file(frame, "g" * 64)
    with pytest.raises(QualityError) as first:
        pipeline.validate_period(parsed)
    [columns] = [r for r in first.value.report.blocking_failures if r.expectation == "expect_table_columns_to_match_set"]
    assert "'council_code', 'breakdown', 'category', 'measure', 'value'" in columns.expected  # the 9th to 13th names kept
    suites = tmp_path / "expectations"
    shutil.copytree(paths.expectations_dir(), suites)
    monkeypatch.setattr(paths, "expectations_dir", lambda: suites)
    suite = json.loads((suites / "dtoc_la.json").read_text())
    [spec] = [e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_set"]
    assert len(spec["kwargs"]["column_set"]) == 13
    spec["kwargs"]["column_set"][-1] = "figure"  # the file still fails it, for a reason not reported yet
    (suites / "dtoc_la.json").write_text(json.dumps(suite))
    with pytest.raises(QualityError) as again:
        pipeline.validate_period(parsed)
    # a QualityError (not a skip) fails the task, whose callback emails the new reason
    [columns] = [r for r in again.value.report.blocking_failures if r.expectation == "expect_table_columns_to_match_set"]
    assert "'figure'" in columns.expected and "'value'" not in columns.expected
    # validated again under a suite edit that changes no threshold: nothing new, skipped (no email)
    suite["meta"]["note"] = "an edit that changes no threshold"
    (suites / "dtoc_la.json").write_text(json.dumps(suite))
    with pytest.raises(StillQuarantined):
        pipeline.validate_period(parsed)


def test_thresholds_are_shown_shortened():
    long = "value_set=[" + ", ".join(f"'E0600{i:04d}'" for i in range(150)) + "]"
    shown = validation.shown_expected(long)
    assert shown.startswith("value_set=['E06000000', ") and shown.endswith(f"... ({len(long) - 200} more characters)")
    assert validation.shown_expected("min_value=0") == "min_value=0"


def test_a_quarantined_file_validated_against_a_changed_history_is_emailed_again_only_for_new_reasons(carewatch_home, monkeypatch):
    """Month m+1 validated before month m's revision landed, then against the revised history
    in the next run: the same implausible councils are not a second email."""
    import json

    from carewatch.errors import QualityError, StillQuarantined

    frame = parsers.parse("dtoc_la", REAL)
    parsed = parsed_file(frame, "d" * 64)
    totals = frame[(frame["row_type"] == "council") & (frame["breakdown"] == "agency") & (frame["category"] == "total")
                   & (frame["measure"] == "delayed_days")]

    def history(factor):
        """Every council had 1/factor of this month's days in each earlier month."""
        earlier = totals[["council_code", "value"]].assign(value=totals["value"] / factor)
        return lambda con, source, period: (lambda spec: earlier)

    def attempts():
        with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
            return con.execute("select coalesce(max(attempts), 0), count(*) from quarantine").fetchone()

    monkeypatch.setattr(validation, "warehouse_history", history(12.0))  # twelve times the usual: blocking
    with pytest.raises(QualityError) as first:
        pipeline.validate_period(parsed)
    assert ("expect_column_values_to_be_between", "ratio_to_trailing_median") in [
        (r.expectation, r.column) for r in first.value.report.blocking_failures]
    assert attempts() == (1, 1)
    monkeypatch.setattr(validation, "warehouse_history", history(15.0))  # another history: validated again
    with pytest.raises(StillQuarantined):
        pipeline.validate_period(parsed)
    assert attempts() == (2, 1)
    # a new reason besides the old one (a negative figure) fails and emails
    bad = frame.copy()
    bad.loc[bad["breakdown"] == "care_type", "value"] = -1.0
    bad.to_parquet(parsed["parsed_path"], index=False)  # what the same file would parse to under a parser change
    with pytest.raises(QualityError) as new_reason:
        pipeline.validate_period(parsed)
    assert not isinstance(new_reason.value, StillQuarantined)
    assert attempts() == (3, 1)
    # reasons coming and going as the history moves: each was reported, so no more emails
    for factor in (1.0, 12.0, 1.0):  # the negative figure alone, both again, the negative figure alone
        monkeypatch.setattr(validation, "warehouse_history", history(factor))
        with pytest.raises(StillQuarantined):
            pipeline.validate_period(parsed)
    assert attempts() == (6, 1)
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        [(reported,)] = con.execute("select reported_failures from quarantine").fetchall()
    assert {(e, c) for e, c, _ in json.loads(reported)} >= {
        ("expect_column_values_to_be_between", "ratio_to_trailing_median"), ("expect_column_values_to_be_between", "value")}
    # the history back to normal and the original figures: it passes and leaves quarantine
    frame.to_parquet(parsed["parsed_path"], index=False)
    monkeypatch.setattr(validation, "warehouse_history", history(1.0))
    assert pipeline.validate_period(parsed)["validated"]
    assert attempts() == (0, 0)


def test_a_quarantined_file_that_passes_later_leaves_the_quarantine(carewatch_home):
    """E.g. a suite or reference-geography fix: the file validated again passes."""
    from carewatch import warehouse

    failed = validation.ValidationReport("dtoc_la", "dtoc_la", "2016-05", results=[validation.ExpectationResult(
        "expect_x", "value", "blocking", "", False, None, None, [])])
    passed = validation.ValidationReport("dtoc_la", "dtoc_la", "2016-05", results=[validation.ExpectationResult(
        "expect_x", "value", "blocking", "", True, None, None, [])])
    with warehouse.connect() as con:
        validation.store(con, failed, file_version=1, sha256="f" * 64, parsed_path=None)
        validation.store(con, failed, file_version=2, sha256="e" * 64, parsed_path=None)  # another file: its own row
        assert con.execute("select count(*) from quarantine").fetchone()[0] == 2
        validation.store(con, passed, file_version=1, sha256="f" * 64, parsed_path=None)
        assert con.execute("select sha256 from quarantine").fetchall() == [("e" * 64,)]


def test_quarantine_rows_of_the_previous_release_are_merged_into_one_per_file(carewatch_home):
    """Before attempts were counted, every failed validation added a row (no attempts column)."""
    from carewatch import warehouse

    with warehouse.connect() as con:
        con.execute("""create table quarantine (source varchar, period varchar, file_version integer, sha256 varchar,
                       parsed_path varchar, blocking_failures varchar, quarantined_at timestamptz)""")
        for day in ("2017-05-01", "2017-06-01", "2017-07-01"):
            con.execute("insert into quarantine values ('dtoc_la', '2016-05', 1, ?, null, 'old', ?::timestamptz)", ["f" * 64, day])
        failed = validation.ValidationReport("dtoc_la", "dtoc_la", "2016-05", results=[validation.ExpectationResult(
            "expect_x", "value", "blocking", "", False, None, None, [])])
        validation.store(con, failed, file_version=1, sha256="f" * 64, parsed_path=None)
        [(first, attempts)] = con.execute("select quarantined_at::date::varchar, attempts from quarantine").fetchall()
    assert (first, attempts) == ("2017-05-01", 4)


def test_the_validation_key_covers_what_gx_is_given():
    frame = parsers.parse("dtoc_la", REAL)

    def key(f=frame, period="2016-06", history=None):
        return validation.prepare("dtoc_la", f, period=period, history=history).key

    def history(factor):
        totals = frame[(frame["row_type"] == "council") & (frame["breakdown"] == "agency") & (frame["category"] == "total")]
        earlier = totals[["council_code", "value"]].assign(value=totals["value"] / factor)
        return lambda spec: earlier

    assert key() == key()
    assert key(history=history(2.0)) == key(history=history(2.0))
    one_name = frame.copy()
    one_name.loc[one_name.index[-1], "la_name"] = "Somewhere Else"
    changed = {
        "a value": key(f=frame.assign(value=frame["value"] + 1)),
        "one text cell": key(f=one_name),
        "a column's name": key(f=frame.rename(columns={"measure": "measures"})),
        "the period (its run-time values)": key(period="2016-07"),
        "the history": key(history=history(2.0)),
        "another history": key(history=history(3.0)),
    }
    assert len({key(), *changed.values()}) == 7, changed


def test_a_wording_change_in_a_suite_does_not_change_the_validation_key(tmp_path, monkeypatch):
    # descriptions and row labels change how results read, not what passes: files are not
    # validated again (nor their warnings emailed again) for them; a threshold or severity is
    import json
    import shutil

    frame = parsers.parse("dtoc_la", REAL)
    base = validation.prepare("dtoc_la", frame, period="2016-06").key
    suites = tmp_path / "expectations"
    shutil.copytree(paths.expectations_dir(), suites)
    monkeypatch.setattr(paths, "expectations_dir", lambda: suites)
    suite = json.loads((suites / "dtoc_la.json").read_text())

    def key_with(change):
        edited = json.loads(json.dumps(suite))
        change(edited)
        (suites / "dtoc_la.json").write_text(json.dumps(edited))
        return validation.prepare("dtoc_la", frame, period="2016-06").key

    assert key_with(lambda s: None) == base
    assert key_with(lambda s: s["meta"].update(description="reworded", row_label=["la_code"])) == base
    assert key_with(lambda s: s["expectations"][1]["meta"].update(description="reworded")) == base
    assert key_with(lambda s: s["meta"]["derive"][0].update(description="reworded")) == base
    assert key_with(lambda s: s["expectations"][1]["meta"].update(severity="warning")) != base
    assert key_with(lambda s: s["expectations"][6]["kwargs"].update(min_value=1)) != base


def test_a_version_already_loaded_from_the_same_file_is_left_alone(carewatch_home):
    frame = parsers.parse("dtoc_la", REAL)
    parsed = parsed_file(frame, "d" * 64)

    def landed():
        with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
            return con.execute("select _sha256, count(*), min(_loaded_at), max(_loaded_at) from land_dtoc_la group by 1").fetchall()

    first = pipeline.load_period(parsed)
    assert first["loaded_rows"] == len(frame) and not first["load_skipped"]
    before = landed()
    again = pipeline.load_period(parsed)
    assert again["load_skipped"] and again["loaded_rows"] == len(frame)
    assert landed() == before  # same rows, same _loaded_at: "as of" answers do not move

    # a parser fix: the same file now gives one value differently, the same number of rows;
    # the corrected rows replace the old ones (skipped on the row count alone, the fix never
    # reached the warehouse)
    fixed_frame = frame.copy()
    derby_nhs = (fixed_frame["la_name"] == "Derby UA") & (fixed_frame["breakdown"] == "agency") & (fixed_frame["category"] == "nhs")
    fixed_frame.loc[derby_nhs, "value"] += 1
    fixed = parsed_file(fixed_frame, "d" * 64)  # (written where the re-parse would write it)
    refixed = pipeline.load_period(fixed)
    assert not refixed["load_skipped"] and refixed["loaded_rows"] == len(frame)
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        values = con.execute("select value from land_dtoc_la where la_name = 'Derby UA' and breakdown = 'agency' "
                             "and category = 'nhs'").fetchall()
    assert values == [(v,) for v in fixed_frame.loc[derby_nhs, "value"]]
    assert pipeline.load_period(fixed)["load_skipped"]  # and then left alone again

    # the same version from a different file (a corrected re-download) replaces it
    replaced = pipeline.load_period({**parsed, "sha256": "e" * 64})
    assert not replaced["load_skipped"]
    assert [(sha, rows) for sha, rows, _, _ in landed()] == [("e" * 64, len(frame))]


def test_history_includes_earlier_periods_fetched_in_the_same_run_but_not_loaded_yet(carewatch_home):
    """A bootstrap run validates every period before it loads any: the plausibility check
    still compares each month with the months before it, from their parsed files."""
    from carewatch import fetch, warehouse

    frame = parsers.parse("dtoc_la", REAL)
    spec = next(d for d in validation.load_suite("dtoc_la")["meta"]["derive"] if d["derivation"] == "ratio_to_trailing_median")
    councils = frame.query(spec["where"])[["council_code", "value"]].reset_index(drop=True)
    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        for month, sha, factor in (("2016-04", "1" * 64, 1.0), ("2016-05", "2" * 64, 2.0), ("2016-05", "3" * 64, 4.0)):
            target = paths.parsed_path("dtoc_la", month, sha)
            target.parent.mkdir(parents=True, exist_ok=True)
            frame.assign(value=frame["value"] * factor).to_parquet(target, index=False)
        for month, version, sha in (("2016-04", 1, "1" * 64), ("2016-05", 1, "2" * 64), ("2016-05", 2, "3" * 64)):
            con.execute("insert into raw_manifest values (?, ?, ?, 'http://x', now(), 200, 1, ?, null, null, 'x')", ["dtoc_la", month, version, sha])
        history = validation.warehouse_history(con, "dtoc_la", "2016-06")(spec)
        # April as published, and May's latest version (v2, four times the figures)
        expected = pd.concat([councils, councils.assign(value=councils["value"] * 4.0)], ignore_index=True)
        pd.testing.assert_frame_equal(history.reset_index(drop=True), expected)

        # May v2 quarantined: May's latest usable version is v1 (twice the figures)
        validation.store(con, validation.ValidationReport("dtoc_la", "dtoc_la", "2016-05", results=[validation.ExpectationResult(
            "expect_x", None, "blocking", "", False, None, None, [])]), file_version=2, sha256="3" * 64, parsed_path=None)
        history = validation.warehouse_history(con, "dtoc_la", "2016-06")(spec)
        expected = pd.concat([councils, councils.assign(value=councils["value"] * 2.0)], ignore_index=True)
        pd.testing.assert_frame_equal(history.reset_index(drop=True), expected)

        # once April is loaded, the loaded version is used (here: the parsed file, halved)
        warehouse.load_parsed(con, source="dtoc_la", period="2016-04", version=1, sha256="1" * 64,
                              parsed_path=paths.parsed_path("dtoc_la", "2016-04", "1" * 64))
        con.execute("update land_dtoc_la set value = value / 2")
        history = validation.warehouse_history(con, "dtoc_la", "2016-06")(spec)
        expected = pd.concat([councils.assign(value=councils["value"] / 2), councils.assign(value=councils["value"] * 2.0)], ignore_index=True)
        pd.testing.assert_frame_equal(history.reset_index(drop=True), expected)

        # April revised (v2, three times the figures) and parsed in this run, not loaded yet:
        # June is checked against the revision, not the loaded v1 (whatever order the tasks took)
        frame.assign(value=frame["value"] * 3.0).to_parquet(paths.parsed_path("dtoc_la", "2016-04", "4" * 64), index=False)
        con.execute("insert into raw_manifest values (?, ?, ?, 'http://x', now(), 200, 1, ?, null, null, 'x')", ["dtoc_la", "2016-04", 2, "4" * 64])
        history = validation.warehouse_history(con, "dtoc_la", "2016-06")(spec)
        expected = pd.concat([councils.assign(value=councils["value"] * 2.0), councils.assign(value=councils["value"] * 3.0)], ignore_index=True)
        pd.testing.assert_frame_equal(history.sort_values(["council_code", "value"]).reset_index(drop=True),
                                      expected.sort_values(["council_code", "value"]).reset_index(drop=True))

        # April v2 loaded, then rejected by an operator (carewatch reject): v1 again, whether
        # read from the landing table or from the parsed files
        warehouse.load_parsed(con, source="dtoc_la", period="2016-04", version=2, sha256="4" * 64,
                              parsed_path=paths.parsed_path("dtoc_la", "2016-04", "4" * 64))
        warehouse.reject_version(con, source="dtoc_la", period="2016-04", version=2, reason="wrong")
        history = validation.warehouse_history(con, "dtoc_la", "2016-06")(spec)
        expected = pd.concat([councils.assign(value=councils["value"] / 2), councils.assign(value=councils["value"] * 2.0)], ignore_index=True)
        pd.testing.assert_frame_equal(history.sort_values(["council_code", "value"]).reset_index(drop=True),
                                      expected.sort_values(["council_code", "value"]).reset_index(drop=True))


def test_a_warehouse_recorded_before_validation_keys_is_validated_again_and_upgraded(carewatch_home, mailbox):
    from carewatch import warehouse

    with warehouse.connect() as con:  # validation_results as the previous release created it
        con.execute(validation.RESULTS_DDL.split("alter table validation_results add column if not exists validation_key")[0])
        assert "validation_key" not in [c for (c,) in con.execute("select column_name from information_schema.columns where table_name = 'validation_results'").fetchall()]
    parsed = parsed_file(parsers.parse("dtoc_la", REAL), "f" * 64)
    assert not pipeline.validate_period(parsed)["validation_reused"]
    assert pipeline.validate_period(parsed)["validation_reused"]


def test_results_recorded_before_descriptions_were_are_still_reused(carewatch_home, mailbox):
    from carewatch import warehouse

    parsed = parsed_file(parsers.parse("dtoc_la", REAL), "9" * 64)
    assert not pipeline.validate_period(parsed)["validation_reused"]
    with warehouse.connect() as con:  # as the previous release recorded them
        con.execute("alter table validation_results drop column description")
        con.execute("alter table validation_results drop column expected")
    assert pipeline.validate_period(parsed)["validation_reused"]


def test_the_report_reads_results_recorded_before_thresholds_were(tmp_path):
    """A warehouse of the previous release keeps its validation_results until a file is
    validated again (reused validations write nothing): the report still builds."""
    from carewatch import analysis, monthly_report
    from tests import synthetic_warehouse

    db = tmp_path / "w.duckdb"
    synthetic_warehouse.build(db)
    with duckdb.connect(str(db)) as con:
        analysis.run(con, export=False)
        con.execute("alter table validation_results drop column description")
        con.execute("alter table validation_results drop column expected")
        failed = monthly_report.gather(con)["failed_checks"]
    assert len(failed) == 2 and failed["expected"].isna().all()


def test_quarantined_files_say_whether_a_later_version_of_their_period_is_loaded(carewatch_home, tmp_path):
    from carewatch import warehouse

    failed = validation.ValidationReport("dtoc_la", "dtoc_la", "2016-05", results=[validation.ExpectationResult(
        "expect_x", "value", "blocking", "", False, None, None, [])])
    frame = parsers.parse("dtoc_la", REAL)
    parquet = tmp_path / "v2.parquet"
    frame.to_parquet(parquet, index=False)
    with warehouse.connect() as con:
        validation.store(con, failed, file_version=1, sha256="1" * 64, parsed_path=None)  # v1 bad, v2 loaded
        warehouse.load_parsed(con, source="dtoc_la", period="2016-05", version=2, sha256="2" * 64, parsed_path=parquet)
        validation.store(con, validation.ValidationReport("dtoc_la", "dtoc_la", "2016-06", results=failed.results),
                         file_version=3, sha256="3" * 64, parsed_path=None)  # June v3 bad, then v4 loaded, rejected
        warehouse.load_parsed(con, source="dtoc_la", period="2016-06", version=4, sha256="5" * 64, parsed_path=parquet)
        warehouse.reject_version(con, source="dtoc_la", period="2016-06", reason="wrong", leave_empty=True)
        validation.store(con, validation.ValidationReport("check:metric_completeness", "metric_completeness", "warehouse",
                         results=failed.results), file_version=1, sha256="4" * 64, parsed_path=None)  # a check, not a file
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        shown = validation.quarantined(con)
    assert list(shown["source"]) == ["check:metric_completeness", "dtoc_la", "dtoc_la"]
    # June's v4 is rejected: the builds leave it out, so nothing has replaced the quarantined v3
    assert [None if pd.isna(v) else int(v) for v in shown["superseded_by"]] == [None, 2, None]
    assert list(shown["attempts"]) == [1, 1, 1]


def test_quarantined_reads_a_read_only_warehouse_of_the_previous_release(carewatch_home):
    from carewatch import warehouse

    with warehouse.connect() as con:
        con.execute("""create table quarantine (source varchar, period varchar, file_version integer, sha256 varchar,
                       parsed_path varchar, blocking_failures varchar, quarantined_at timestamptz)""")
        con.execute("insert into quarantine values ('dtoc_la', '2016-05', 1, 'f', null, 'FAIL x', '2017-05-01')")
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        [row] = validation.quarantined(con).to_dict("records")
    assert (row["source"], row["attempts"], row["last_failed_at"]) == ("dtoc_la", 1, row["quarantined_at"])
    assert pd.isna(row["superseded_by"])


def test_a_source_without_its_suite_is_refused_not_loaded_unvalidated(carewatch_home, tmp_path, monkeypatch):
    # a deployment whose expectations/ is missing or misplaced must not load data unchecked
    frame = parsers.parse("dtoc_la", REAL)
    parsed = parsed_file(frame, "d" * 64)
    monkeypatch.setattr(paths, "expectations_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no expectation suite"):
        pipeline.validate_period(parsed)


def test_a_parser_or_geography_fix_or_a_reader_upgrade_parses_fetched_files_again(carewatch_home, tmp_path, monkeypatch):
    import shutil

    from carewatch import parsers

    fetched = {"source": "dtoc_la", "period": "2016-06", "version": 1, "sha256": "e" * 64, "raw_path": str(REAL)}
    first = pipeline.parse_period(fetched)
    assert not first["reused"] and pipeline.parse_period(fetched)["reused"]  # same parsers: reused
    # a corrected geography reference file (what the parsers map council names and codes with)
    config = tmp_path / "config"
    shutil.copytree(paths.config_dir(), config)
    with (config / "geography" / "councils.csv").open("a") as handle:
        handle.write("\n")
    monkeypatch.setenv("CAREWATCH_CONFIG", str(config))
    parsers.fingerprint.cache_clear()
    try:
        again = pipeline.parse_period(fetched)
    finally:
        parsers.fingerprint.cache_clear()
    assert not again["reused"] and again["parsed_path"] != first["parsed_path"]
    # an upgraded workbook reader can read cells differently: parsed again too
    real_version = parsers.version
    monkeypatch.setattr(parsers, "version", lambda name: "99.0" if name == "python-calamine" else real_version(name))
    parsers.fingerprint.cache_clear()
    try:
        upgraded = pipeline.parse_period(fetched)
    finally:
        parsers.fingerprint.cache_clear()
    assert not upgraded["reused"] and upgraded["parsed_path"] not in (first["parsed_path"], again["parsed_path"])


def test_backfill_params_are_checked_before_anything_runs():
    from carewatch.errors import CarewatchError

    assert pipeline.periods_to_process("dtoc_la", None, from_period="2018-01", to_period="2018-03") == ["2018-01", "2018-02", "2018-03"]
    with pytest.raises(CarewatchError, match="after to_period"):
        pipeline.periods_to_process("dtoc_la", None, from_period="2018-05", to_period="2018-03")
    with pytest.raises(CarewatchError, match="should be written YYYY-MM"):
        pipeline.periods_to_process("dtoc_la", None, from_period="2018-3")
    with pytest.raises(CarewatchError, match="should be written YYYY-YY"):
        pipeline.periods_to_process("ascof", None, to_period="2016-18")
    # outside what the catalogue says exists: every period would 404 and alert as overdue
    with pytest.raises(CarewatchError, match=r"dtoc_la: from_period 2005-01 is before the first period published \(2010-08"):
        pipeline.periods_to_process("dtoc_la", None, from_period="2005-01", to_period="2016-06")
    with pytest.raises(CarewatchError, match=r"dtoc_la: to_period 2021-01 is after the last period published \(2020-02"):
        pipeline.periods_to_process("dtoc_la", None, from_period="2019-12", to_period="2021-01")
    # one bound given: the message names only that one
    with pytest.raises(CarewatchError, match=r"^dtoc_la: to_period 2015-01 is before the first period available in the embedded environment \(2016-04\); give from_period too$"):
        pipeline.periods_to_process("dtoc_la", None, to_period="2015-01")
    with pytest.raises(CarewatchError, match=r"^dtoc_la: from_period 2021-01 is after the last period published \(2020-02"):
        pipeline.periods_to_process("dtoc_la", None, from_period="2021-01")
    assert pipeline.periods_to_process("dtoc_la", None, to_period="2016-05") == ["2016-04", "2016-05"]
    # the whole published history (carewatch samples --full serves it from August 2010)
    assert pipeline.periods_to_process("dtoc_la", None, from_period="2010-08", to_period="2010-09") == ["2010-08", "2010-09"]


def test_a_file_the_parser_refuses_is_reported_once_and_skipped_after(carewatch_home, tmp_path, monkeypatch):
    from carewatch.errors import AlreadyUnparseable, ParseError

    bad = tmp_path / "not-a-workbook.xls"
    bad.write_bytes(b"<html>Service unavailable</html>")
    fetched = {"source": "dtoc_la", "period": "2016-06", "version": 2, "sha256": "f" * 64, "raw_path": str(bad)}
    with pytest.raises(ParseError) as first:
        pipeline.parse_period(fetched)
    # the next monthly run meets the same file: skipped with the first error, not failed again
    with pytest.raises(AlreadyUnparseable, match="could not be parsed before") as again:
        pipeline.parse_period(fetched)
    assert str(first.value) in str(again.value)
    assert not paths.parsed_path("dtoc_la", "2016-06", "f" * 64).exists()
    # a raw file missing from the store is an operations problem, not the file's: not remembered
    gone = {**fetched, "sha256": "0" * 64, "raw_path": str(tmp_path / "gone.xls")}
    with pytest.raises(FileNotFoundError, match="missing from the raw store"):
        pipeline.parse_period(gone)
    assert not paths.parsed_path("dtoc_la", "2016-06", "0" * 64).with_suffix(".failed").exists()
    # a parser fix (new fingerprint) tries the file again
    monkeypatch.setattr(parsers, "fingerprint", lambda parser: "fixed000000")
    with pytest.raises(ParseError):
        pipeline.parse_period(fetched)



def test_a_parser_fix_parses_again_only_what_that_parser_read(tmp_path, monkeypatch):
    # a fix to one parser, or a new source's parser, must not re-parse every other source's
    # files; a fix to what parsers share (csvtext, the package module) re-parses those using it
    import shutil

    from carewatch import parsers

    package = tmp_path / "parsers"
    shutil.copytree(parsers._PACKAGE, package)
    (tmp_path / "geography.py").write_bytes((parsers._PACKAGE.parent / "geography.py").read_bytes())
    monkeypatch.setattr(parsers, "_PACKAGE", package)

    def fingerprints() -> dict[str, str]:
        parsers.fingerprint.cache_clear()
        return {name: parsers.fingerprint(name) for name in parsers.names()}

    try:
        before = fingerprints()
        assert len(set(before.values())) == len(before)  # each parser its own
        with (package / "dtoc_la.py").open("a") as handle:
            handle.write("\n# a fix\n")
        after_fix = fingerprints()
        assert {name for name in before if after_fix[name] != before[name]} == {"dtoc_la"}
        (package / "nhs_beds.py").write_text("# a new source's parser, not registered yet\n")
        with_new = fingerprints()
        assert {name for name in before if with_new[name] != after_fix[name]} == set(parsers.names())  # shared until registered
        monkeypatch.setitem(parsers._MODULES, "nhs_beds", "carewatch.parsers.nhs_beds")
        registered = fingerprints()
        assert {name: registered[name] for name in after_fix} == after_fix  # registered: its own, nobody else's
        with (package / "csvtext.py").open("a") as handle:
            handle.write("\n# a fix to the shared CSV reader\n")
        shared_fix = fingerprints()
        assert all(shared_fix[name] != registered[name] for name in shared_fix)
    finally:
        parsers.fingerprint.cache_clear()


def test_no_parser_module_imports_another_parsers_module():
    # what parsers.fingerprint relies on: a parser's own module and the shared ones are all it runs
    import re

    from carewatch import parsers

    modules = set(parsers._MODULES.values())
    for name, module in parsers._MODULES.items():
        text = parsers._module_file(module).read_text()
        found = re.findall(r"carewatch\.parsers\.(\w+)|from carewatch\.parsers import (\w+)|from \.(\w+)|from \. import (\w+)"
                           r"|import_module\([\"']carewatch\.parsers\.(\w+)", text)
        imported = {f"carewatch.parsers.{next(name for name in groups if name)}" for groups in found}
        assert not (imported & (modules - {module})), f"{module} imports another parser's module"


def test_a_monthly_run_handles_the_period_due_at_its_logical_date_and_the_revision_window(carewatch_home):
    import datetime as dt

    # (a fresh home: no warehouse, so nothing asked for before and no missing period to add)

    # hes_aggregate: due two months after the period starts, on the second Thursday; window 3.
    # April 2017 is due on Thursday 8 June 2017 (1 June was a Thursday)
    assert pipeline.periods_to_process("hes_aggregate", dt.date(2017, 6, 8)) == ["2017-01", "2017-02", "2017-03", "2017-04"]
    assert pipeline.periods_to_process("hes_aggregate", dt.datetime(2017, 6, 7, 23, 0)) == ["2016-12", "2017-01", "2017-02", "2017-03"]
    # dtoc_la (window 12): June 2016, due Thursday 11 August 2016; the embedded samples start in April 2016
    assert pipeline.periods_to_process("dtoc_la", dt.date(2016, 8, 11)) == ["2016-04", "2016-05", "2016-06"]
    # bootstrap: every period available and due by then, not only the window
    assert pipeline.periods_to_process("hes_aggregate", dt.date(2017, 6, 8), bootstrap=True) == [
        "2016-04", "2016-05", "2016-06", "2016-07", "2016-08", "2016-09", "2016-10", "2016-11", "2016-12",
        "2017-01", "2017-02", "2017-03", "2017-04"]


def _months(first: str, last: str) -> list[str]:
    import pandas as pd

    return [f"{m:%Y-%m}" for m in pd.period_range(first, last, freq="M")]


def test_a_monthly_run_also_asks_for_every_period_never_held_since_the_first_it_asked_for():
    import datetime as dt

    # the drill at 2019-08-15: hes_aggregate's window is 2019-03 to 2019-06 (June due Thursday
    # 8 August 2019, window 3); November 2018 and January 2019 never arrived, and were no longer
    # fetched or reported OVERDUE once they left the window
    held = frozenset(_months("2016-04", "2019-06")) - {"2018-11", "2019-01"}
    history = pipeline.FetchHistory(held=held, first_asked="2016-04")
    assert pipeline.periods_to_process("hes_aggregate", dt.date(2019, 8, 15), history=history) == [
        "2018-11", "2019-01", "2019-03", "2019-04", "2019-05", "2019-06"]
    # every period held: the window alone
    assert pipeline.periods_to_process("hes_aggregate", dt.date(2019, 8, 15), history=pipeline.FetchHistory(
        held=frozenset(_months("2016-04", "2019-06")), first_asked="2016-04")) == ["2019-03", "2019-04", "2019-05", "2019-06"]
    # a missing period inside the window is the window's (listed once)
    assert pipeline.periods_to_process("hes_aggregate", dt.date(2019, 8, 15), history=pipeline.FetchHistory(
        held=frozenset(_months("2016-04", "2019-02")), first_asked="2016-04")) == ["2019-03", "2019-04", "2019-05", "2019-06"]
    # the bootstrap and a backfill's explicit periods are as they were
    assert pipeline.periods_to_process("hes_aggregate", None, from_period="2018-10", to_period="2018-12",
                                       history=history) == ["2018-10", "2018-11", "2018-12"]


def test_a_monthly_run_does_not_chase_what_the_warehouse_never_chose_to_load():
    import datetime as dt

    # dtoc_la (window 12) at 2019-08-15: window 2018-06 to 2019-06. A warehouse backfilled from
    # 2018-01 (not from the samples' 2016-04) misses 2018-02: only that one is added
    history = pipeline.FetchHistory(held=frozenset(_months("2018-01", "2019-06")) - {"2018-02"}, first_asked="2018-01")
    assert pipeline.periods_to_process("dtoc_la", dt.date(2019, 8, 15), history=history) == ["2018-02", *_months("2018-06", "2019-06")]
    # nothing ever asked for (a first monthly run without a bootstrap): the window alone
    assert pipeline.periods_to_process("dtoc_la", dt.date(2019, 8, 15), history=pipeline.FetchHistory(frozenset(), None)) == \
        _months("2018-06", "2019-06")
    # a period asked for but never held (OVERDUE since the backfill) is chased, and so is one
    # before the window that no run ever asked for (the scheduler down for longer than the window)
    history = pipeline.FetchHistory(held=frozenset(_months("2017-03", "2019-06")) - {"2017-05", "2017-06"},
                                    first_asked="2017-02")
    assert pipeline.periods_to_process("dtoc_la", dt.date(2019, 8, 15), history=history) == [
        "2017-02", "2017-05", "2017-06", *_months("2018-06", "2019-06")]
    # never before the environment's available_from (2016-04 for the embedded samples)
    history = pipeline.FetchHistory(held=frozenset(_months("2016-05", "2019-06")), first_asked="2015-01")
    assert pipeline.periods_to_process("dtoc_la", dt.date(2019, 8, 15), history=history) == ["2016-04", *_months("2018-06", "2019-06")]


def test_a_release_that_holds_every_earlier_one_is_not_chased():
    import datetime as dt

    # dtoc_national: each release holds every month since 2010, so a missed one is replaced
    history = pipeline.FetchHistory(held=frozenset(_months("2018-01", "2019-06")) - {"2018-05"}, first_asked="2018-01")
    assert pipeline.periods_to_process("dtoc_national", dt.date(2019, 8, 15), history=history) == ["2019-06"]


def test_the_embedded_samples_are_not_chased_past_their_end(monkeypatch):
    import datetime as dt

    # ascof (annual, window 1) at 2023-01-15: 2021-22 (from April 2021) is due 1 November 2022,
    # so the window is 2020-21 and 2021-22. 2019-20, due 1 November 2020, is never held: the
    # embedded samples end with what was published by 2020-04-15 (samples_until), so it is not
    # asked for there; in production it is
    history = pipeline.FetchHistory(held=frozenset({"2014-15", "2015-16", "2016-17", "2017-18", "2018-19"}), first_asked="2014-15")
    assert pipeline.periods_to_process("ascof", dt.date(2023, 1, 15), history=history) == ["2020-21", "2021-22"]
    monkeypatch.setenv("CAREWATCH_ENV", "production")
    assert pipeline.periods_to_process("ascof", dt.date(2023, 1, 15), history=history) == ["2019-20", "2020-21", "2021-22"]


def test_the_fetch_history_is_what_raw_manifest_holds_and_the_earliest_period_fetch_log_asked_for(carewatch_home):
    import datetime as dt

    from carewatch import fetch, warehouse

    assert pipeline.fetch_history("hes_aggregate") == pipeline.FetchHistory(frozenset(), None)  # no warehouse yet
    now = dt.datetime(2019, 8, 15, tzinfo=dt.timezone.utc)
    with warehouse.connect() as con:
        con.execute(fetch.MANIFEST_DDL)
        for period, version in (("2018-12", 1), ("2018-12", 2), ("2019-02", 1)):
            con.execute("insert into raw_manifest values ('hes_aggregate', ?, ?, 'u', ?, 200, 1, 's', null, null, 'p')",
                        [period, version, now])
        con.execute("insert into raw_manifest values ('dtoc_la', '2016-04', 1, 'u', ?, 200, 1, 's', null, null, 'p')", [now])
        for period, outcome in (("2018-11", "refused"), ("2018-12", "new_version"), ("2019-01", "refused")):
            con.execute("insert into fetch_log (source, period, url, attempted_at, outcome) values ('hes_aggregate', ?, 'u', ?, ?)",
                        [period, now, outcome])
    assert pipeline.fetch_history("hes_aggregate") == pipeline.FetchHistory(frozenset({"2018-12", "2019-02"}), "2018-11")


def test_a_file_that_passes_sends_no_email_and_one_with_only_warnings_is_not_quarantined(carewatch_home, mailbox, monkeypatch):
    clean = pipeline.validate_period(parsed_file(parsers.parse("dtoc_la", REAL), "5" * 64))
    assert clean["warnings"] == 0 and mailcatcher.messages(mailbox) == []  # nothing failed: nothing to email
    frame = four_times_the_usual(monkeypatch)  # a warning only
    warned = pipeline.validate_period(parsed_file(frame, "6" * 64))
    assert warned["warnings"] == 1 and len(mailcatcher.messages(mailbox)) == 1
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select count(*) from quarantine").fetchone()[0] == 0


def test_a_blocking_failure_beside_a_warning_is_not_emailed_by_the_validate_task(carewatch_home, mailbox):
    # the task's failure callback emails the quarantine, warnings included; the task itself
    # sends nothing (a separate WARNING email would say the batch was loaded)
    from carewatch.errors import QualityError

    frame = parsers.parse("dtoc_la", REAL).assign(value=float("nan"), junk=1)  # a warning and a blocking failure
    with pytest.raises(QualityError) as failed:
        pipeline.validate_period(parsed_file(frame, "7" * 64))
    assert failed.value.report.warnings and failed.value.report.blocking_failures
    assert mailcatcher.messages(mailbox) == []


def test_validating_another_file_of_the_period_keeps_the_first_files_record(carewatch_home, mailbox, monkeypatch):
    frame = four_times_the_usual(monkeypatch)  # a warning: emailed once per file
    first = parsed_file(frame, "a" * 64)
    assert not pipeline.validate_period(first)["validation_reused"]
    assert not pipeline.validate_period(parsed_file(frame, "b" * 64))["validation_reused"]
    assert pipeline.validate_period(first)["validation_reused"]  # the revision window meets the first file again
    assert len(mailcatcher.messages(mailbox)) == 2
    with duckdb.connect(str(paths.warehouse_path()), read_only=True) as con:
        assert con.execute("select sha256, count(*) from validation_results group by 1 order by 1").fetchall() == [
            ("a" * 64, 20), ("b" * 64, 20)]


def test_the_run_summary_counts_loads_run_and_skipped_not_sources_that_do_not_load(carewatch_home):
    parsed = [
        {"period": "2019-09", "reused": False, "rows": 10, "loaded_rows": 0},  # a source that does not load to the warehouse
        {"period": "2019-10", "reused": True, "rows": 5, "loaded_rows": 5, "load_skipped": True},
        {"period": "2019-11", "reused": False, "rows": 3, "loaded_rows": 3, "load_skipped": False},
    ]
    summary = pipeline.summarise_ingest("dtoc_provider", parsed)
    assert (summary["loads_run"], summary["loads_skipped"], summary["files_parsed"], summary["files_unchanged"], summary["rows"]) == (1, 1, 2, 1, 18)


def test_history_reads_the_latest_loaded_version_of_each_earlier_period(carewatch_home):
    from carewatch import warehouse

    frame = parsers.parse("dtoc_la", REAL)
    spec = next(d for d in validation.load_suite("dtoc_la")["meta"]["derive"] if d["derivation"] == "ratio_to_trailing_median")
    councils = frame.query(spec["where"])[["council_code", "value"]]
    with warehouse.connect() as con:
        for version, factor in ((1, 1.0), (2, 3.0)):  # May 2016 published, then revised to three times the figures
            target = paths.parsed_path("dtoc_la", "2016-05", str(version) * 64)
            target.parent.mkdir(parents=True, exist_ok=True)
            frame.assign(value=frame["value"] * factor).to_parquet(target, index=False)
            warehouse.load_parsed(con, source="dtoc_la", period="2016-05", version=version, sha256=str(version) * 64, parsed_path=target)
        history = validation.warehouse_history(con, "dtoc_la", "2016-06")(spec)
    expected = councils.assign(value=councils["value"] * 3.0)
    pd.testing.assert_frame_equal(history.sort_values(["council_code", "value"]).reset_index(drop=True),
                                  expected.sort_values(["council_code", "value"]).reset_index(drop=True))
