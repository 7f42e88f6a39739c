"""The run summary's data-quality block (``carewatch.summary.print_quality``)."""

from __future__ import annotations

from carewatch import summary, validation, warehouse


def report(period: str, success: bool, severity: str = "blocking") -> validation.ValidationReport:
    return validation.ValidationReport("dtoc_la", "dtoc_la", period, results=[validation.ExpectationResult(
        "expect_column_values_to_be_between", "value", severity, "", success, None, 0 if success else 3, [])])


def test_quality_block_counts_batches_and_lists_each_quarantined_file_once(carewatch_home, capsys):
    with warehouse.connect() as con:
        validation.store(con, report("2017-01", True), file_version=1, sha256="a" * 64, parsed_path=None)
        validation.store(con, report("2017-02", False, "warning"), file_version=1, sha256="b" * 64, parsed_path=None)
        for _ in range(3):  # the same bad file, validated by three runs
            validation.store(con, report("2017-03", False), file_version=2, sha256="c" * 64, parsed_path=None)
    summary.print_quality()
    out = capsys.readouterr().out.splitlines()
    assert out[-2].split() == ["dtoc_la", "3", "3", "1", "1"]  # batches, checks, warnings, blocking
    [quarantined] = [line for line in out if "QUARANTINED" in line]
    assert quarantined.startswith("  QUARANTINED dtoc_la 2017-03 v2, failed 3 validations since ")
    assert "expect_column_values_to_be_between [value]" in quarantined
    assert "loaded since" not in quarantined  # no later version of March is loaded
