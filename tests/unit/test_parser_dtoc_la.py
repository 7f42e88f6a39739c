"""The DTOC LA Type B parser on the six real workbooks, one per layout era.

Every expected value below was read off the workbook by hand (cell noted in the comment).
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys

import pandas as pd
import pytest
import xlwt

from carewatch import parsers
from carewatch.errors import ParseError
from tests.conftest import FIXTURES

REAL = FIXTURES / "real" / "dtoc-la"


@pytest.fixture(scope="module")
def parsed():
    return {f.stem: parsers.parse("dtoc_la", f) for f in sorted(REAL.glob("*.xls"))}


def pick(frame, name, breakdown, category, measure="delayed_days"):
    rows = frame[(frame["la_name"] == name) & (frame["breakdown"] == breakdown) & (frame["category"] == category) & (frame["measure"] == measure)]
    assert len(rows) == 1, (name, breakdown, category, measure, len(rows))
    return rows.iloc[0]


def test_era1_june_2012_sha_code_name(parsed):
    f = parsed["LA-Type-B-June-2012"]
    assert set(f["period"]) == {dt.date(2012, 6, 1)}
    # "LA - by responsible org" row 15: England 71236 | 31510 | 7602 | 110348
    assert [pick(f, "England", "agency", c)["value"] for c in ("nhs", "social_care", "both", "total")] == [71236, 31510, 7602, 110348]
    # row 17: "- | 716 | Barking & Dagenham | 474 | 67 | 137 | 678"
    barking = pick(f, "Barking & Dagenham", "agency", "total")
    assert barking["value"] == 678 and barking["la_code"] == "716" and barking["council_code"] == "E09000002"
    # a four-character old code: "00KB | Bedford | 255 | 2 | 0 | 257"
    bedford = pick(f, "Bedford", "agency", "nhs")
    assert bedford["value"] == 255 and bedford["council_code"] == "E06000055" and pd.isna(bedford["ons_code"])
    # "LA - by reason": England "A) COMPLETION OF ASSESSMENT" 21993; Barking A 367
    assert pick(f, "England", "reason", "A")["value"] == 21993
    assert pick(f, "Barking & Dagenham", "reason", "A")["value"] == 367
    assert pick(f, "York UA", "reason", "total")["value"] == 1155
    # "LA - by Type of Care": England Acute 66702, Non-Acute 43646
    assert pick(f, "England", "care_type", "non_acute")["value"] == 43646
    assert "O" not in set(f.loc[f["breakdown"] == "reason", "category"])  # no "Other" reason in 2012
    assert set(f["measure"]) == {"delayed_days"}


def test_era2_june_2014_region_code_name_with_a_blank_column(parsed):
    f = parsed["LA-Type-B-June-2014"]
    # "LA - by Type of Care" row 17: "East Midlands | (blank) | 507 | Derby UA | 191 | 103 | 294"
    assert [pick(f, "Derby UA", "care_type", c)["value"] for c in ("acute", "non_acute", "total")] == [191, 103, 294]
    assert pick(f, "Derby UA", "care_type", "total")["council_code"] == "E06000015"
    assert pick(f, "England", "reason", "A")["value"] == 24399


def test_era3_june_2016_with_ons_codes_and_special_rows(parsed):
    f = parsed["LA-Type-B-June-2016"]
    derby = f[(f["la_name"] == "Derby UA") & (f["breakdown"] == "agency")].set_index("category")["value"]
    assert derby.to_dict() == {"nhs": 399, "social_care": 66, "both": 0, "total": 465}
    assert pick(f, "Derby UA", "agency", "total")["ons_code"] == "E06000015"
    wales = pick(f, "Resident In Wales", "agency", "total")
    assert (wales["row_type"], wales["la_code"], wales["value"]) == ("special", "9900", 525)
    assert pd.isna(wales["council_code"])
    assert pick(f, "England", "agency", "total")["value"] == 173122
    agency = f[(f["breakdown"] == "agency") & (f["category"] == "total")]
    assert (agency["row_type"].value_counts().to_dict()) == {"council": 151, "special": 3, "england": 1}


def test_era4_june_2018_delayed_days_and_dtoc_beds(parsed):
    f = parsed["LA-Type-B-June-2018"]
    # "LA - by type of care": Delayed Days block England Acute 89096; DTOC Beds block Acute 2969.87
    assert pick(f, "England", "care_type", "acute")["value"] == 89096
    assert pick(f, "England", "care_type", "acute", "delayed_beds")["value"] == pytest.approx(2969.8667, abs=1e-3)
    assert pick(f, "Derby UA", "care_type", "total", "delayed_beds")["value"] == pytest.approx(12.4667, abs=1e-3)
    # "LA - by reason": Derby UA B) 45, O) Other 0, Total 374
    assert pick(f, "Derby UA", "reason", "B")["value"] == 45
    assert pick(f, "Derby UA", "reason", "O")["value"] == 0
    assert pick(f, "Derby UA", "reason", "total")["value"] == 374


def test_era5_january_2019(parsed):
    f = parsed["LA-Type-B-January-2019"]
    assert set(f["period"]) == {dt.date(2019, 1, 1)}
    assert [pick(f, "England", "care_type", c)["value"] for c in ("acute", "non_acute", "total")] == [86474, 48954, 135428]
    assert pick(f, "Derby UA", "care_type", "acute")["value"] == 92


def test_era6_june_2019_people_delayed_per_day_and_bcp(parsed):
    f = parsed["LA-Type-B-June-2019"]
    assert pick(f, "England", "agency", "nhs")["value"] == 84676
    assert pick(f, "England", "agency", "total", "delayed_beds")["value"] == pytest.approx(4502.967, abs=1e-3)
    bcp = pick(f, "Bournemouth, Christchurch and Poole UA", "agency", "total")
    assert (bcp["la_code"], bcp["ons_code"], bcp["council_code"], bcp["value"]) == ("738", "E06000058", "E06000058", 1040)
    dorset = pick(f, "Dorset UA", "agency", "total")
    assert (dorset["la_code"], dorset["council_code"], dorset["value"]) == ("809", "E06000059", 1190)
    assert pick(f, "Sheffield", "agency", "total")["council_code"] == "E08000019"
    assert (f["status"] == "Published").all() and (f["revised"] == "12th September 2019").all()


def test_every_council_row_resolves_to_a_council(parsed):
    for name, f in parsed.items():
        councils = f[f["row_type"] == "council"]
        assert councils["council_code"].notna().all(), name


def _workbook(sheets: dict[str, list[list]]) -> bytes:
    book = xlwt.Workbook()
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if value is not None:
                    sheet.write(i, j, value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _sheet(period="February 2017", header=("Region", "ONS Geography", "Code", "Name", "NHS", "Social Care", "Both", "Total"), rows=None):
    top = [[None, "Title:", "Delayed Transfer of Care"], [None, "Period:", period], [None, "Status:", "Revised"]]
    body = rows or [
        [None, "-", "-", "-", "England", "1,200", "300", "0", "1,500"],
        [],
        [None, "East Midlands", "E06000015", "507", "Derby UA", "1,000", "200", "-", "1,200"],
        [None, "-", "-", "9900", "Resident In Wales", 200, 100, 0, 300],
        [],
        [None, "Notes:"],
    ]
    return top + [[]] * 10 + [[None, *header]] + body


# the "LA - by reason" sheet a workbook needs beside the sheet a test is about: one council
MINIMAL_REASON_SHEET = _sheet(header=("Region", "ONS Geography", "Code", "Name", "TOTAL"), rows=[[None, "x", "E06000015", "507", "Derby UA", 1]])


def _parse_org_sheet(tmp_path, org_sheet: list[list]):
    """Parse a workbook of ``org_sheet`` as "LA - by responsible org" and the minimal reason sheet."""
    path = tmp_path / "x.xls"
    path.write_bytes(_workbook({"LA - by responsible org": org_sheet, "LA - by reason": MINIMAL_REASON_SHEET}))
    return parsers.parse("dtoc_la", path)


def test_numbers_as_text_with_thousands_separators_and_dashes(tmp_path):
    path = tmp_path / "x.xls"
    path.write_bytes(_workbook({"LA - by responsible org": _sheet(), "LA - BY REASON": _sheet(header=("Region", "ONS Geography", "Code", "Name", "A) x", "TOTAL"), rows=[[None, "-", "-", "-", "England", "1,500", "1,500"], [None, "East Midlands", "E06000015", "507", "Derby UA", "1,200", "1,200"]])}))
    f = parsers.parse("dtoc_la", path)
    assert pick(f, "Derby UA", "agency", "nhs")["value"] == 1000
    assert pd.isna(pick(f, "Derby UA", "agency", "both")["value"])
    assert pick(f, "England", "agency", "total")["value"] == 1500
    assert set(f["status"]) == {"Revised"}
    assert pick(f, "Derby UA", "reason", "A")["value"] == 1200


def test_a_blank_row_inside_the_table_does_not_cut_it_short(tmp_path):
    # before: the table ended at the first blank row after a council, and every council
    # below it was silently lost from that sheet
    rows = [
        [None, "-", "-", "-", "England", "1,200", "300", "0", "1,500"],
        [None, "East Midlands", "E06000015", "507", "Derby UA", "1,000", "200", "-", "1,200"],
        [],
        [],
        [None, "East Midlands", "E06000016", "508", "Leicester UA", 20, 10, 0, 30],
        [None, "-", "-", "9900", "Resident In Wales", 200, 100, 0, 300],
        [],
        [None, None, None, None, "Note: a council code in the notes", "1"],  # a note in the Name column ends it
        [None, "East Midlands", "E06000017", "509", "Rutland UA", 1, 1, 1, 3],
    ]
    f = _parse_org_sheet(tmp_path, _sheet(rows=rows))
    agency = f[f["breakdown"] == "agency"]
    assert list(dict.fromkeys(agency["la_name"])) == ["England", "Derby UA", "Leicester UA", "Resident In Wales"]
    assert pick(f, "Leicester UA", "agency", "total")["value"] == 30


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"<html>not a workbook</html>", "an HTML page, not the publication's file"),
        (b"PK\x03\x04 not a workbook", "not a readable .xls"),
        ("no_sheets", "missing sheet"),
        ("no_period", "no 'Period:' cell"),
        ("bad_period", "not a month"),
        ("no_header", "no header row"),
        ("bad_measure", "unexpected measure column 'Patients'"),
        ("bad_number", "'lots' is not a number"),
    ],
)
def test_bad_input_raises_one_clear_error(tmp_path, content, problem):
    path = tmp_path / "bad.xls"
    reason = MINIMAL_REASON_SHEET
    variants = {
        "no_sheets": {"Sheet1": [["hello"]]},
        "no_period": {"LA - by responsible org": _sheet()[3:], "LA - by reason": reason},
        "bad_period": {"LA - by responsible org": _sheet(period="Q3 2017"), "LA - by reason": reason},
        "no_header": {"LA - by responsible org": _sheet()[:3], "LA - by reason": reason},
        "bad_measure": {"LA - by responsible org": _sheet(header=("Region", "ONS Geography", "Code", "Name", "Patients")), "LA - by reason": reason},
        "bad_number": {"LA - by responsible org": _sheet(rows=[[None, "x", "E06000015", "507", "Derby UA", "lots", 1, 1, 1]]), "LA - by reason": reason},
    }
    path.write_bytes(content if isinstance(content, bytes) else _workbook(variants[content]))
    with pytest.raises(ParseError, match=problem) as err:
        parsers.parse("dtoc_la", path)
    assert str(err.value).startswith(f"{path}: cannot parse as dtoc_la:")


def test_cli_parse_prints_tidy_csv_and_fails_with_one_line(tmp_path):
    good = subprocess.run([sys.executable, "-m", "carewatch.cli", "parse", "dtoc_la", str(REAL / "LA-Type-B-June-2016.xls"), "--period", "2016-06"], capture_output=True, text=True)
    assert good.returncode == 0
    frame = pd.read_csv(io.StringIO(good.stdout), dtype={"la_code": str})
    assert list(frame.columns)[:3] == ["period", "status", "published"]
    assert frame[(frame["la_name"] == "Derby UA") & (frame["category"] == "total") & (frame["breakdown"] == "agency")]["value"].item() == 465
    bad = tmp_path / "page.xls"
    bad.write_text("<html>moved</html>")
    failed = subprocess.run([sys.executable, "-m", "carewatch.cli", "parse", "dtoc_la", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.count("\n") == 1 and str(bad) in failed.stderr and "dtoc_la" in failed.stderr


def test_metadata_value_is_the_next_non_empty_cell_on_the_row(tmp_path):
    # label in column B, an empty column C, the value in column D (a merged or shifted block)
    sheet = _sheet()
    sheet[0:3] = [[None, "Title:", None, "Delayed Transfer of Care"], [None, "Period:", None, "March 2018"],
                  [None, "Status:", None, "Revised"], [None, "Revised:", None, "10th May 2018"]]
    f = _parse_org_sheet(tmp_path, sheet)
    assert set(f["period"]) == {dt.date(2018, 3, 1)}
    assert set(f["status"]) == {"Revised"} and set(f["revised"]) == {"10th May 2018"}


def test_an_asterisk_is_a_suppressed_figure_not_a_number_or_an_error(tmp_path):
    rows = [
        [None, "-", "-", "-", "England", 1500, 300, 0, 1800],
        [None, "East Midlands", "E06000015", "507", "Derby UA", "*", 200, " * ", 1200],
    ]
    f = _parse_org_sheet(tmp_path, _sheet(rows=rows))
    assert pd.isna(pick(f, "Derby UA", "agency", "nhs")["value"]) and pd.isna(pick(f, "Derby UA", "agency", "both")["value"])
    assert pick(f, "Derby UA", "agency", "social_care")["value"] == 200


def test_an_abbreviated_month_in_the_period_cell(tmp_path):
    assert set(_parse_org_sheet(tmp_path, _sheet(period="Feb 2017"))["period"]) == {dt.date(2017, 2, 1)}


def test_every_reason_column_maps_to_its_own_code(parsed):
    # read with xlrd, "LA - by reason" row 17 (June 2016): "East Midlands | E06000015 | 507 | Derby UA |
    # 31 | 0 | 74 | 14 | 9 | 77 | 25 | 211 | 14 | 10 | 465" under "A) ..." to "I) HOUSING ..." and "TOTAL"
    derby = parsed["LA-Type-B-June-2016"]
    derby = derby[(derby["la_name"] == "Derby UA") & (derby["breakdown"] == "reason")].set_index("category")["value"]
    assert derby.to_dict() == {"A": 31, "B": 0, "C": 74, "Di": 14, "Dii": 9, "E": 77, "F": 25, "G": 211, "H": 14, "I": 10, "total": 465}
    # June 2019 row 15, England: mixed-case headers "Di) Awaiting residential ...", "Dii) Awaiting nursing ...", "O) Other"
    england = parsed["LA-Type-B-June-2019"]
    england = england[(england["row_type"] == "england") & (england["breakdown"] == "reason")].set_index("category")["value"]
    assert england.to_dict() == {"A": 15622, "B": 4028, "C": 24777, "Di": 15801, "Dii": 17453, "E": 27719, "F": 3861,
                                 "G": 17394, "H": 971, "I": 5606, "O": 1857, "total": 135089}


def test_a_footnote_under_a_blank_row_ends_the_table_whatever_it_starts_with(tmp_path):
    # a numbered footnote in the Name column, no code: not a council
    rows = [
        [None, "-", "-", "-", "England", 1500, 300, 0, 1800],
        [],
        [None, "East Midlands", "E06000015", "507", "Derby UA", 1000, 200, 0, 1200],
        [],
        [None, None, None, None, "1. Derby's figures were revised in May", None, None, None, None],
    ]
    f = _parse_org_sheet(tmp_path, _sheet(rows=rows))
    assert list(dict.fromkeys(f.loc[f["breakdown"] == "agency", "la_name"])) == ["England", "Derby UA"]


def test_an_england_row_in_capitals_is_the_england_row(tmp_path):
    # names vary in case between releases ("City Of London", "Resident In Wales")
    rows = [[None, "-", "-", "-", "ENGLAND", 1500, 300, 0, 1800], [None, "East Midlands", "E06000015", "507", "Derby UA", 1000, 200, 0, 1200]]
    f = _parse_org_sheet(tmp_path, _sheet(rows=rows))
    england = pick(f, "ENGLAND", "agency", "total")
    assert (england["row_type"], england["value"]) == ("england", 1800) and pd.isna(england["la_code"]) and pd.isna(england["council_code"])


def test_the_ons_placeholder_dash_is_no_ons_code(parsed):
    # read with xlrd, June 2016 "LA - by responsible org": row 15 "- | - | - | England", row 169
    # "- | - | 9900 | Resident In Wales": the ONS Geography cell holds "-", not a code
    f = parsed["LA-Type-B-June-2016"]
    assert pd.isna(pick(f, "England", "agency", "total")["ons_code"])
    assert pd.isna(pick(f, "Resident In Wales", "agency", "total")["ons_code"])
    assert pick(f, "York UA", "agency", "total")["ons_code"] == "E06000014"  # row 167


def test_a_source_line_right_under_the_last_row_ends_the_table(tmp_path):
    rows = [
        [None, "-", "-", "-", "England", 1500, 300, 0, 1800],
        [None, "East Midlands", "E06000015", "507", "Derby UA", 1000, 200, 0, 1200],
        [None, None, None, None, "Source: NHS England, MSitDT", None, None, None, None],
    ]
    f = _parse_org_sheet(tmp_path, _sheet(rows=rows))
    assert list(dict.fromkeys(f.loc[f["breakdown"] == "agency", "la_name"])) == ["England", "Derby UA"]


def test_a_blank_row_between_the_header_and_an_england_row_without_codes(tmp_path):
    # nothing has been read yet: a blank row there cannot end the table, even when the
    # England row carries no code placeholders
    rows = [
        [],
        [None, None, None, None, "England", 1500, 300, 0, 1800],
        [],
        [None, "East Midlands", "E06000015", "507", "Derby UA", 1000, 200, 0, 1200],
    ]
    f = _parse_org_sheet(tmp_path, _sheet(rows=rows))
    assert list(dict.fromkeys(f.loc[f["breakdown"] == "agency", "la_name"])) == ["England", "Derby UA"]
    assert pick(f, "Derby UA", "agency", "total")["value"] == 1200
