"""The national DTOC time series: the sample writer, the parser, and malformed workbooks.

The parser is called through its module (``carewatch.parsers.dtoc_national``), not the
registry. Malformed workbooks are made by reading a good one and writing it back with xlwt
after an edit (``rewrite``).
"""

from __future__ import annotations

import calendar
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import xlwt

from carewatch.errors import ParseError
from carewatch.parsers import dtoc_national as parser
from carewatch.samples import dtoc_national as sample
from carewatch.samples.world import World

LAST = dt.date(2020, 2, 1)
PUBLISHED = dt.date(2020, 4, 9)
KEYS = ["period", "care_type", "reason", "agency"]


@pytest.fixture(scope="module")
def world():
    return World.from_config(seed=2017)


@pytest.fixture(scope="module")
def series(world):
    return sample.national_series(world, LAST)


@pytest.fixture(scope="module")
def full_file(series, tmp_path_factory) -> Path:
    return sample.write_timeseries(tmp_path_factory.mktemp("national") / "2020-02.xls", LAST, series, published=PUBLISHED)


@pytest.fixture(scope="module")
def parsed(full_file):
    return parser.parse(full_file, "2020-02")


@pytest.fixture(scope="module")
def small_file(series, tmp_path_factory) -> Path:
    """A short release (August 2010 - March 2011), revised, for the malformed-input tests."""
    return sample.write_timeseries(tmp_path_factory.mktemp("national") / "2011-03.xls", dt.date(2011, 3, 1), series,
                                   published=dt.date(2011, 5, 12), status="Revised", revised=dt.date(2011, 11, 10))


def days(frame: pd.DataFrame, **where) -> pd.Series:
    """Delayed days by period for one (care_type, reason, agency) of one breakdown (parsed frame)."""
    rows = frame[frame["measure"] == "delayed_days"]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows.set_index("period")["value"].sort_index()


# --- the series ---------------------------------------------------------------------------------

def test_series_adds_up_and_stays_within_one_percent_of_the_la_tables(world, series):
    cube = series.set_index(KEYS)["delayed_days"]
    assert cube.dtype == "int64" and (cube >= 0).all()
    wide = series.pivot_table(index=["period", "reason", "agency"], columns="care_type", values="delayed_days")
    assert (wide["acute"] + wide["non_acute"] == wide["total"]).all()
    by_agency = series[series["agency"] != "total"].groupby(["period", "care_type", "reason"])["delayed_days"].sum()
    assert by_agency.equals(series[series["agency"] == "total"].set_index(["period", "care_type", "reason"])["delayed_days"].sort_index())
    by_reason = series[series["reason"] != "total"].groupby(["period", "care_type", "agency"])["delayed_days"].sum()
    assert by_reason.equals(series[series["reason"] == "total"].set_index(["period", "care_type", "agency"])["delayed_days"].sort_index())
    # agencies that cannot be responsible for a reason have no rows; O only from April 2017
    assert series[(series["reason"].isin(["C", "I"])) & (series["agency"].isin(["social_care", "both"]))].empty
    assert series[(series["reason"].isin(["Di", "G", "H"])) & (series["agency"] == "both")].empty
    assert series.loc[series["reason"] == "O", "period"].min() == dt.date(2017, 4, 1)
    # provider based: within 1% (and half a day of rounding) of the residence-based LA sum
    differences = set()
    for month in (dt.date(2010, 8, 1), dt.date(2017, 2, 1), dt.date(2019, 4, 1), LAST):
        la = world.dtoc_month(month)
        la_total = la.loc[(la["breakdown"] == "agency") & (la["category"] == "total"), "value"].sum()
        national = cube[(month, "total", "total", "total")]
        assert abs(national - la_total) <= 0.01 * la_total + 0.5
        differences.add(national - la_total)
    assert differences != {0}  # a factor is applied


def test_series_is_cached_and_sliced_consistently(world, series):
    short = sample.national_series(world, dt.date(2016, 4, 1))
    assert short["period"].max() == dt.date(2016, 4, 1)
    assert short.equals(series[series["period"] <= dt.date(2016, 4, 1)].reset_index(drop=True))
    with pytest.raises(ValueError, match="runs from August 2010 to February 2020"):
        sample.national_series(world, dt.date(2020, 3, 1))


def test_february_2017_by_hand(series):
    """Seed 2017, config/samples.yaml as committed: read off the written workbook by eye."""
    feb = series[series["period"] == dt.date(2017, 2, 1)].set_index(["care_type", "reason", "agency"])["delayed_days"]
    assert feb[("total", "total", "total")] == 208919
    assert [feb[("total", "total", a)] for a in ("nhs", "social_care", "both")] == [116472, 71042, 21405]
    assert feb[("total", "C", "nhs")] == feb[("total", "C", "total")] == 37461
    assert [feb[("total", "A", a)] for a in ("nhs", "social_care", "both", "total")] == [9976, 11616, 5115, 26707]


# --- round trip -------------------------------------------------------------------------------------

def test_round_trip_every_figure(series, parsed):
    assert list(parsed.columns) == parser.COLUMNS
    assert set(parsed["status"]) == {"Published"} and set(parsed["published"]) == {"9th April 2020"}
    assert parsed["revised"].isna().all()
    assert parsed["value"].dtype == "float64"
    assert set(parsed["breakdown"]) == set(sample.SHEETS)
    wide = parsed[(parsed["breakdown"] == "care_type_reason_agency") & (parsed["measure"] == "delayed_days")]
    merged = wide.merge(series, on=KEYS, how="outer", indicator=True)
    # every series figure is in the wide sheet, exactly; the only extra cells are "-" (reason O before April 2017)
    assert (merged.loc[merged["_merge"] == "both", "value"] == merged.loc[merged["_merge"] == "both", "delayed_days"]).all()
    extra = merged[merged["_merge"] == "left_only"]
    assert set(extra["reason"]) == {"O"} and extra["value"].isna().all() and extra["period"].max() == dt.date(2017, 3, 1)
    assert not (merged["_merge"] == "right_only").any()
    # the narrow sheets agree with the series too
    for breakdown in ("care_type", "agency", "reason"):
        part = parsed[(parsed["breakdown"] == breakdown) & (parsed["measure"] == "delayed_days")].dropna(subset=["value"])
        both = part.merge(series, on=KEYS, how="left", validate="one_to_one")
        assert (both["value"] == both["delayed_days"]).all(), breakdown
        assert len(part) == len(series[series[[c for c in ("care_type", "reason", "agency") if c != breakdown]].eq("total").all(axis=1)])


def test_round_trip_sums_and_sheets_agree(parsed):
    assert (days(parsed, breakdown="care_type", care_type="acute") + days(parsed, breakdown="care_type", care_type="non_acute")
            == days(parsed, breakdown="care_type", care_type="total")).all()
    agencies = sum(days(parsed, breakdown="agency", agency=a) for a in ("nhs", "social_care", "both"))
    assert (agencies == days(parsed, breakdown="agency", agency="total")).all()
    reasons = parsed[(parsed["breakdown"] == "reason") & (parsed["reason"] != "total") & (parsed["measure"] == "delayed_days")]
    assert (reasons.groupby("period")["value"].sum() == days(parsed, breakdown="reason", reason="total")).all()
    for breakdown, column, values in (("care_type", "care_type", ("acute", "non_acute", "total")),
                                      ("agency", "agency", ("nhs", "social_care", "both", "total")),
                                      ("reason", "reason", ("A", "C", "Dii", "O", "total"))):
        for value in values:
            where = {"care_type": "total", "reason": "total", "agency": "total", column: value}
            narrow = days(parsed, breakdown=breakdown, **where)
            wide = days(parsed, breakdown="care_type_reason_agency", **where)
            pd.testing.assert_series_equal(narrow, wide, check_names=False)


def test_periods_are_consecutive_and_beds_are_days_per_day(parsed):
    for (breakdown, measure), part in parsed.groupby(["breakdown", "measure"]):
        periods = sorted(set(part["period"]))
        assert periods == sample.months(dt.date(2010, 8, 1), LAST), (breakdown, measure)
    beds = parsed[parsed["measure"] == "delayed_beds"].merge(parsed[parsed["measure"] == "delayed_days"],
                                                             on=["breakdown", *KEYS], suffixes=("_beds", "_days"))
    month_days = beds["period"].map(lambda p: calendar.monthrange(p.year, p.month)[1])
    expected = (beds["value_days"] / month_days).round(1)
    known = beds["value_days"].notna()
    assert ((beds.loc[known, "value_beds"] - expected[known]).abs() < 1e-9).all()
    assert beds["value_beds"].isna().equals(~known)


def test_cells_where_a_reader_expects_them(full_file):
    """House style: metadata in B/C, "Provider Level Data" caption, Year/Month labels, notes below."""
    raw = pd.read_excel(full_file, sheet_name="By Responsible Org", header=None, engine="calamine", dtype=object)
    assert raw.iloc[4, 1] == "Period:" and raw.iloc[4, 2] == "August 2010 - February 2020"
    assert raw.iloc[6, 1] == "Basis:" and raw.iloc[6, 2] == "Provider"
    assert raw.iloc[12, 1] == "Provider Level Data" and raw.iloc[12, 3] == "Delayed Days"
    assert list(raw.iloc[13, 1:7]) == ["Year", "Month", "NHS", "Social Care", "Both", "Total"]
    feb = raw[(raw[1] == "2016-17") & (raw[2] == "February")].iloc[0]
    assert list(feb[3:7]) == [116472, 71042, 21405, 208919]
    assert feb[11] == round(208919 / 28, 1) == 7461.4  # DTOC Beds, Total
    assert raw[1].astype(str).str.startswith("Notes:").any()
    # "By Reason": older rows hold numbers as text with thousands separators
    reason = pd.read_excel(full_file, sheet_name="By Reason", header=None, engine="calamine", dtype=object)
    assert isinstance(reason.iloc[14, 3], str) and "," in reason.iloc[14, 3]


# --- malformed and shifted workbooks --------------------------------------------------------------

def read_book(path: Path) -> dict[str, pd.DataFrame]:
    return pd.read_excel(path, sheet_name=None, header=None, engine="calamine", dtype=object)


def rewrite(book: dict[str, pd.DataFrame], path: Path) -> Path:
    out = xlwt.Workbook()
    for name, frame in book.items():
        sheet = out.add_sheet(name)
        for i, row in enumerate(frame.itertuples(index=False)):
            for j, cell in enumerate(row):
                if cell is not None and not (isinstance(cell, float) and pd.isna(cell)):
                    sheet.write(i, j, float(cell) if isinstance(cell, (int, float)) else str(cell))
    out.save(str(path))
    return path


def replace(frame: pd.DataFrame, old, new, first_only: bool = True) -> pd.DataFrame:
    frame = frame.copy()
    hits = [(i, j) for i in range(frame.shape[0]) for j in range(frame.shape[1]) if frame.iat[i, j] == old]
    assert hits, old
    for i, j in hits[:1] if first_only else hits:
        frame.iat[i, j] = new
    return frame


def test_small_release_metadata(small_file):
    frame = parser.parse(small_file, "2011-03")
    assert set(frame["status"]) == {"Revised"} and set(frame["revised"]) == {"10th November 2011"}
    assert sorted(set(frame["period"])) == sample.months(dt.date(2010, 8, 1), dt.date(2011, 3, 1))


def test_shifted_table_text_numbers_and_blank_years_parse_the_same(small_file, tmp_path):
    book = read_book(small_file)
    expected = parser.parse(small_file, None)
    for name, frame in book.items():
        # three rows lower, two blank columns more on the left, one inside the table (before D)
        cells = [[None] * frame.shape[1]] * 3 + frame.to_numpy(dtype=object).tolist()
        frame = pd.DataFrame([[None, None, *row[:3], None, *row[3:]] for row in cells], dtype=object)
        for i in range(frame.shape[0]):
            for j in range(frame.shape[1]):
                cell = frame.iat[i, j]
                if isinstance(cell, (int, float)) and not pd.isna(cell) and cell >= 1000:
                    text = f"{cell:,.0f}" if float(cell).is_integer() else f"{cell:,}"
                    frame.iat[i, j] = f" {text} "  # text with thousands separators and spaces
                elif cell == "2010-11" and frame.iat[i, 4] != "August":
                    frame.iat[i, j] = None  # the year only on the first row of each year
                elif cell in ("Year", "Month"):
                    frame.iat[i, j] = f"  {cell.upper()} "
        book[name] = frame
    shifted = parser.parse(rewrite(book, tmp_path / "shifted.xls"), None)
    pd.testing.assert_frame_equal(shifted, expected)


@pytest.mark.parametrize("edit, message", [
    (lambda book: book.pop("By Reason"), "missing sheet(s) 'By Reason'"),
    (lambda book: book.update({"By Type of Care": replace(book["By Type of Care"], "Year", "Yr")}),
     "sheet 'By Type of Care': no header row with 'Year' and 'Month'"),
    (lambda book: book.update({"By Responsible Org": replace(book["By Responsible Org"], "Social Care", "Council")}),
     "sheet 'By Responsible Org' row 14: unexpected column header 'Council'"),
    (lambda book: book.update({"By Reason": replace(book["By Reason"], "October", "Octobre")}),
     "sheet 'By Reason' row 17: 'Octobre' is not a month name"),
    (lambda book: book.update({"By Type, Reason and Org": replace(book["By Type, Reason and Org"], "2010-11", "2010-12")}),
     "sheet 'By Type, Reason and Org' row 17: financial year '2010-12' is not like '2016-17'"),
    (lambda book: book.update({"By Type of Care": replace(book["By Type of Care"], "2010-11", "2010", first_only=False)}),
     "financial year '2010' is not like '2016-17'"),
    (lambda book: book.update({"By Type of Care": book["By Type of Care"].drop(index=range(14, 22)).reset_index(drop=True)}),
     "sheet 'By Type of Care': no data rows under the header on row 14"),
    (lambda book: book.update({"By Type, Reason and Org": replace(book["By Type, Reason and Org"], "Acute", "Sharp")}),
     "sheet 'By Type, Reason and Org' row 16: column 4 ('NHS') is under 'Sharp'"),
    (lambda book: book.update({"By Type of Care": replace(book["By Type of Care"], 92992, "lots")}),
     "sheet 'By Type of Care' row 15 column 4: 'lots' is not a number"),
])
def test_malformed_workbooks_raise_parse_error(small_file, tmp_path, edit, message):
    book = read_book(small_file)
    edit(book)
    bad = rewrite(book, tmp_path / "bad.xls")
    with pytest.raises(ParseError) as err:
        parser.parse(bad, "2011-03")
    assert err.value.source == "dtoc_national" and err.value.file == str(bad)
    assert message in err.value.problem, err.value.problem
    assert "\n" not in str(err.value)


def test_not_a_workbook(tmp_path):
    path = tmp_path / "x.xls"
    path.write_text("year,month\n2016-17,April\n")
    with pytest.raises(ParseError, match="not a readable"):
        parser.parse(path, None)


@pytest.mark.parametrize("marker", ["NA", " NA "])  # padded text is not turned into NaN by the reader
def test_na_where_an_agency_cannot_be_responsible_is_null(small_file, tmp_path, marker):
    # the England tables write "NA" where an agency cannot be responsible (e.g. reason C is NHS only)
    book = read_book(small_file)
    expected = parser.parse(small_file, None)
    book["By Type of Care"] = replace(book["By Type of Care"], 92992, marker)  # row 15 column 4
    got = parser.parse(rewrite(book, tmp_path / "na.xls"), None)
    changed = got["value"].isna() & expected["value"].notna()
    assert changed.sum() == 1 and expected.loc[changed, "value"].item() == 92992
    assert got.loc[~changed].equals(expected.loc[~changed])


def test_the_2019_band_average_number_of_people_delayed_per_day_is_beds(small_file, tmp_path):
    # from May 2019 the second block is headed "Average Number of People Delayed per Day"
    book = read_book(small_file)
    expected = parser.parse(small_file, None)
    for name, frame in book.items():
        if (frame == "DTOC Beds").any(axis=None):
            book[name] = replace(frame, "DTOC Beds", "Average Number of People Delayed per Day", first_only=False)
    got = parser.parse(rewrite(book, tmp_path / "people.xls"), None)
    assert (got["measure"] == "delayed_beds").sum() > 0
    pd.testing.assert_frame_equal(got, expected)
