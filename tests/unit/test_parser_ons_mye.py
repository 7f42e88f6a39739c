"""The ONS MYE2 parser on the real mid-2016 and mid-2017 workbooks.

Cells noted by hand (sheet "MYE2 - All", spreadsheet row numbers):
mid-2016 row 9 ENGLAND: All ages 55,268,067; age 65 566,478; age 90+ 487,846.
mid-2016 row 94 Derby E06000015: All ages 256,233; age 65 2,165; 90+ 2,218.
mid-2016 row 229 City of London: All ages 9,401. Row 341 Isles of Scilly: All ages 2,308.
mid-2017 row 9 ENGLAND (Geography1 "Country"): All ages 55,619,430; age 90+ 495,244.
mid-2017 row 94 Derby "Unitary Authority": age 65 2,238.
"""

from __future__ import annotations

import io

import pytest
import xlwt

from carewatch import parsers
from carewatch.errors import ParseError
from tests.conftest import FIXTURES

REAL = FIXTURES / "real" / "ons"


@pytest.fixture(scope="module")
def mid2016():
    return parsers.parse("ons_mye", REAL / "ukmidyearestimates2016.xls")


@pytest.fixture(scope="module")
def mid2017():
    return parsers.parse("ons_mye", REAL / "ukmidyearestimates2017finalversion.xls")


def pop(frame, code, age=None):
    rows = frame[frame["area_code"] == code]
    return int(rows["population"].sum() if age is None else rows.loc[rows["age"] == age, "population"].item())


def test_mid_2016(mid2016):
    assert set(mid2016["mid_year"]) == {2016}
    assert pop(mid2016, "E92000001") == 55_268_067
    assert pop(mid2016, "E92000001", 65) == 566_478
    assert pop(mid2016, "E92000001", 90) == 487_846
    assert (pop(mid2016, "E06000015"), pop(mid2016, "E06000015", 65), pop(mid2016, "E06000015", 90)) == (256_233, 2_165, 2_218)
    assert pop(mid2016, "E09000001") == 9_401 and pop(mid2016, "E06000053") == 2_308
    assert mid2016["geography"].isna().all()


def test_mid_2017_with_geography_column(mid2017):
    assert set(mid2017["mid_year"]) == {2017}
    assert pop(mid2017, "E92000001") == 55_619_430 and pop(mid2017, "E92000001", 90) == 495_244
    assert pop(mid2017, "E06000015", 65) == 2_238
    assert mid2017.loc[mid2017["area_code"] == "E06000015", "geography"].iloc[0] == "Unitary Authority"


@pytest.mark.parametrize("which", ["mid2016", "mid2017"])
def test_upper_tier_rows_sum_exactly_to_england(request, which):
    frame = request.getfixturevalue(which)
    upper = frame[frame["area_code"].str[:3].isin(["E06", "E08", "E09", "E10"])]
    assert upper["area_code"].nunique() == 152
    england = frame[frame["area_code"] == "E92000001"].set_index("age")["population"]
    assert upper.groupby("age")["population"].sum().equals(england)


def _book(sheet_name, title, header, rows):
    book = xlwt.Workbook()
    sheet = book.add_sheet(sheet_name)
    sheet.write(0, 0, title)
    for j, h in enumerate(header):
        sheet.write(2, j, h)
    for i, row in enumerate(rows, start=3):
        for j, v in enumerate(row):
            sheet.write(i, j, v)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_mid_2015_layout_persons_uk_upper_case_header(tmp_path):
    header = ["CODE", "NAME", "COUNTRY", "ALL AGES", *[str(a) for a in range(90)], "90+"]
    row = ["E06000015", "Derby", "E", 255_000, *range(90), 7]
    path = tmp_path / "mid2015.xls"
    path.write_bytes(_book("Persons UK", "Population estimates for UK, mid-2015", header, [row]))
    frame = parsers.parse("ons_mye", path)
    assert set(frame["mid_year"]) == {2015}
    assert pop(frame, "E06000015", 90) == 7 and pop(frame, "E06000015", 89) == 89


@pytest.mark.parametrize(
    "sheet,title,header,problem",
    [
        ("Contents", "mid-2016", ["Code"], "no persons-by-single-year sheet"),
        ("MYE2 - All", "mid-2016", ["Code", "Name", "Population"], "no header row"),
        ("MYE2 - All", "estimates", ["Code", "Name", "All ages", *map(str, range(91))], "no 'mid-YYYY'"),
        ("MYE2 - All", "mid-2016", ["Code", "Name", "All ages", "0-17", "18+"], "single-year age columns"),
        ("MYE2 - All", "mid-2016", ["Code", "Name", "All ages", *map(str, range(91))], "non-numeric population for E06000015 at age 5"),
    ],
)
def test_bad_workbooks(tmp_path, sheet, title, header, problem):
    path = tmp_path / "bad.xls"
    ages = [1] * 91
    if problem.startswith("non-numeric"):
        ages[5] = "c"  # a suppressed or damaged cell
    path.write_bytes(_book(sheet, title, header, [["E06000015", "Derby", 1, *ages]]))
    with pytest.raises(ParseError, match=problem):
        parsers.parse("ons_mye", path)


def test_rows_of_every_uk_country_are_kept(mid2016):
    # read with xlrd, "MYE2 - All" of mid-2016: row 6 K02000001 UNITED KINGDOM All ages 65,648,054,
    # 90+ 571,245; row 378 W92000004 WALES 3,113,150; row 401 S92000003 SCOTLAND 5,404,700;
    # row 434 N92000002 NORTHERN IRELAND 1,862,137
    assert pop(mid2016, "K02000001") == 65_648_054 and pop(mid2016, "K02000001", 90) == 571_245
    assert pop(mid2016, "W92000004") == 3_113_150
    assert pop(mid2016, "S92000003") == 5_404_700
    assert pop(mid2016, "N92000002") == 1_862_137
    assert mid2016.loc[mid2016["area_code"] == "N92000002", "area_name"].iloc[0] == "NORTHERN IRELAND"


def test_populations_stored_as_text_with_thousands_separators(tmp_path):
    header = ["Code", "Name", "All ages", *[str(a) for a in range(91)]]
    row = ["E06000015", "Derby", "256,233", *["1,000"] * 90, "2,218"]
    path = tmp_path / "mid2016.xls"
    path.write_bytes(_book("MYE2 - All", "Mid-2016 Population Estimates", header, [row]))
    frame = parsers.parse("ons_mye", path)
    assert pop(frame, "E06000015", 0) == 1_000 and pop(frame, "E06000015", 90) == 2_218
    assert pop(frame, "E06000015") == 90 * 1_000 + 2_218


def test_the_year_is_the_mid_year_not_another_year_in_the_title(tmp_path):
    header = ["Code", "Name", "All ages", *[str(a) for a in range(91)]]
    path = tmp_path / "mid2017.xls"
    path.write_bytes(_book("MYE2 - All", "Released 28 June 2018: population estimates for the UK, mid-2017", header,
                           [["E06000015", "Derby", 91, *([1] * 91)]]))
    assert set(parsers.parse("ons_mye", path)["mid_year"]) == {2017}
