"""The ASCOF measures CSV parser on hand-written fixtures, bad inputs, and the sample writer.

Fixtures in tests/fixtures/ascof/ are hand-written in the real layouts (Windows-1252 bytes:
"–" is 0x96, "£" is 0xA3); every expected value below is read off the fixture line noted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carewatch import parsers
from carewatch.errors import ParseError
from carewatch.samples import ascof as ascof_sample
from carewatch.samples.world import World
from tests.conftest import FIXTURES

FIX = FIXTURES / "ascof"
COLUMNS = ["year", "geo_code", "geo_name", "geo_level", "ons_code", "council_code", "measure_group", "measure_code",
           "disaggregation", "measure_type", "value", "suppression"]


def one(frame: pd.DataFrame, **where) -> pd.Series:
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, (where, len(rows))
    return rows.iloc[0]


@pytest.fixture(scope="module")
def y1415():
    return parsers.parse("ascof", FIX / "ascof-2014-15.csv", "2014-15")


def test_fixtures_are_windows_1252_bytes():
    raw = (FIX / "ascof-2014-15.csv").read_bytes()
    assert b"\x96" in raw and b"\xa3" in raw  # "–" and "£" as single cp1252 bytes


def test_2014_15_header_without_spaces(y1415):
    assert list(y1415.columns) == COLUMNS
    assert len(y1415) == 10 and set(y1415["year"]) == {"2014-15"}
    # line 2: 716,Barking & Dagenham,Council,E09000002,2B1,Total,Numerator,145
    row = one(y1415, geo_code="716", measure_code="2B1", measure_type="Numerator")
    assert (row["geo_name"], row["geo_level"], row["ons_code"], row["council_code"]) == ("Barking & Dagenham", "Council", "E09000002", "E09000002")
    assert (row["measure_group"], row["disaggregation"], row["value"]) == ("2B1", "Total", 145.0)
    assert pd.isna(row["suppression"])
    # line 4: Outcome 85.3
    assert one(y1415, geo_code="716", measure_code="2B1", measure_type="Outcome")["value"] == 85.3


def test_suppression_markers_become_nulls_with_the_marker(y1415):
    # line 5: 2B185OV,85 and over,Numerator,*
    row = one(y1415, measure_code="2B185OV")
    assert pd.isna(row["value"]) and row["suppression"] == "*" and row["disaggregation"] == "85 and over"
    # line 8: Bedford 2B2 Outcome ".."
    row = one(y1415, geo_code="00KB", measure_type="Outcome")
    assert pd.isna(row["value"]) and row["suppression"] == ".."


def test_thousands_separators(y1415):
    # line 6: Barking 2B2 Denominator "1,635"; line 9: London "61,204"; line 11: England "67,530"
    assert one(y1415, geo_code="716", measure_code="2B2", measure_type="Denominator")["value"] == 1635.0
    assert one(y1415, geo_level="Region", measure_type="Denominator")["value"] == 61204.0
    assert one(y1415, geo_level="England")["value"] == 67530.0


def test_old_code_resolves_without_ons_code_and_names_are_stripped(y1415):
    # line 7: "00KB, Bedford ,Council,,2B2,Total,Numerator,45"
    row = one(y1415, geo_code="00KB", measure_type="Numerator")
    assert row["geo_name"] == "Bedford" and pd.isna(row["ons_code"]) and row["council_code"] == "E06000055"
    assert row["value"] == 45.0


def test_levels_and_measure_types_in_contract_spelling_and_council_code_on_councils_only(y1415):
    # line 10: "LB,London Borough,Council type,,1A,Total,Margin Of Error,0.4"
    row = one(y1415, geo_code="LB")
    assert (row["geo_level"], row["measure_type"], row["value"]) == ("Council Type", "Margin of Error", 0.4)
    assert y1415.loc[y1415["geo_level"] != "Council", "council_code"].isna().all()
    assert one(y1415, geo_level="England")["ons_code"] == "E92000001"


def test_later_header_ons_code_and_bracket_markers():
    frame = parsers.parse("ascof", FIX / "ascof-2019-20.csv", "2019-20")
    # line 2: 507,Derby,...,2B1F,Female,Numerator,[c]
    row = one(frame, measure_code="2B1F", measure_type="Numerator")
    assert row["council_code"] == "E06000015" and row["disaggregation"] == "Female"
    assert pd.isna(row["value"]) and row["suppression"] == "[c]"
    assert one(frame, measure_code="2B1F", measure_type="Denominator")["value"] == 210.0
    assert one(frame, measure_code="2B16574")["suppression"] == "[x]"
    # line 5: a blank value (not applicable / not submitted): null without a marker
    row = one(frame, measure_code="2C1")
    assert pd.isna(row["value"]) and pd.isna(row["suppression"]) and row["measure_group"] == "2C"
    # line 6: the 2019 council BCP keeps its own code; line 7: Barnsley's 2019 alias E08000038 -> E08000016
    assert one(frame, geo_code="738")["council_code"] == "E06000058"
    barnsley = one(frame, geo_code="204")
    assert barnsley["ons_code"] == "E08000038" and barnsley["council_code"] == "E08000016" and barnsley["value"] == 2401.0


def test_year_column_wins_over_missing_period():
    frame = parsers.parse("ascof", FIX / "ascof-year-column.csv", None)
    assert set(frame["year"]) == {"2017-18"}
    assert one(frame, measure_type="Denominator")["value"] == 75.0 and one(frame, measure_type="Numerator")["measure_code"] == "2B1M"


HEADER = "Geographical Code,Geographical Description,Geographical Level,ONS Code,ASCOF Measure Code,Disaggregation Level,Measure Type,Measure Value,Measure Group\n"


@pytest.mark.parametrize("content, period, message", [
    (b"<!DOCTYPE html><html><body>Not found</body></html>", "2016-17", "an HTML page, not the publication's file"),
    (HEADER.replace("Measure Type,", "").encode() + b"716,B,Council,E09000002,2B1,Total,5,2B1\n", "2016-17", "missing column(s) measure_type"),
    (HEADER.encode() + b"716,B,Council,E09000002,2B1,Total,Numerator,n/a,2B1\n", "2016-17", "Measure Value 'n/a' on line 2 is neither a number"),
    (HEADER.encode() + b"716,B,Council,E09000002,2B1,Total,Numerator,5,2B1\n", None, "no year column and no period was given"),
    (HEADER.encode() + b"716,B,Council,E09000002,2B1,Total,Numerator,5,2B1\n", "2016", "year '2016' is not a financial year"),
    (HEADER.encode() + b"716,B,Council,E09000002,2B1,Total,Numerator,5,2B1\n", "2016-18", "year '2016-18' is not a financial year"),
    (b"Year," + HEADER.encode() + b"2015-16,716,B,Council,E,2B1,Total,Numerator,5,2B1\n2016-17,716,B,Council,E,2B1,Total,Denominator,5,2B1\n",
     None, "more than one year in the year column"),
    (HEADER.encode(), "2016-17", "header but no data rows"),
    (HEADER.encode() + b"716,B,Council,E09000002,2B1,Total,Numerator,5,2B1,extra,extra\n", "2016-17", "not a readable CSV"),
])
def test_bad_inputs_raise_parse_error(tmp_path, content, period, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ParseError, match="cannot parse as ascof") as err:
        parsers.parse("ascof", path, period)
    assert message in str(err.value)


# --- the sample writer ---------------------------------------------------------------------

def test_writer_header_drift():
    assert ascof_sample.header("2014-15")[:5] == ["GeographicalCode", "GeographicalDescription", "GeographicalLevel", "ONSAreaCode", "ASCOFMeasureCode"]
    assert ascof_sample.header("2016-17")[3] == "ONS Area Code"
    assert ascof_sample.header("2019-20")[3] == "ONS Code"


def test_writer_small_frame_hand_checked(tmp_path):
    frame = pd.DataFrame({
        "council_code": ["E09000002", "E09000002", "E06000015", "E06000015"],
        "measure_group": ["2B1", "2B2", "2B1", "2B2"],
        "numerator": [40, 50, 70, 80],
        "denominator": [50, 2500, 100, 4000],
    })
    path = ascof_sample.write_ascof(tmp_path / "a.csv", "2015-16", frame, np.random.default_rng(1), suppressed=0)
    assert path.read_bytes().startswith(b"Geographical Code,")  # spaces from 2015-16
    assert b"\x96" in path.read_bytes()  # the en dash of the descriptions, in cp1252
    parsed = parsers.parse("ascof", path, "2015-16")
    headline = parsed[(parsed["measure_code"] == parsed["measure_group"])]
    barking = headline[headline["council_code"] == "E09000002"].set_index(["measure_group", "measure_type"])["value"]
    assert barking[("2B1", "Numerator")] == 40 and barking[("2B2", "Denominator")] == 2500
    assert barking[("2B1", "Outcome")] == 80.0  # 40 / 50
    assert one(parsed, geo_code="716", measure_code="2B1", measure_type="Numerator")["geo_name"] == "Barking and Dagenham"
    england = headline[headline["geo_level"] == "England"].set_index(["measure_group", "measure_type"])["value"]
    assert england[("2B1", "Numerator")] == 110 and england[("2B2", "Denominator")] == 6500  # 40 + 70, 2500 + 4000
    assert england[("2B2", "Outcome")] == 2.0  # 130 / 6500
    london = headline[headline["geo_name"] == "London"].set_index(["measure_group", "measure_type"])["value"]
    assert london[("2B1", "Denominator")] == 50  # Barking only
    assert set(parsed["geo_level"]) == {"Council", "Region", "England"}
    assert parsed["suppression"].isna().all()


@pytest.fixture(scope="module")
def world():
    return World.from_config()


@pytest.mark.parametrize("fy", ["2014-15", "2019-20"])
def test_writer_round_trip_of_a_world_year(tmp_path, world, fy):
    frame = world.ascof_year(fy)
    path = ascof_sample.write_ascof(tmp_path / f"{fy}.csv", fy, frame, np.random.default_rng(7), suppressed=2)
    header_line = path.read_bytes().split(b"\r\n", 1)[0].decode()
    assert ("ONSAreaCode" in header_line) == (fy == "2014-15") and ("ONS Code," in header_line) == (fy == "2019-20")
    parsed = parsers.parse("ascof", path, fy)
    councils = parsed[parsed["geo_level"] == "Council"]
    assert councils["council_code"].notna().all()
    headline = councils[(councils["measure_code"] == councils["measure_group"])]
    wide = headline.pivot_table(index=["council_code", "measure_group"], columns="measure_type", values="value", aggfunc="first")
    expected = frame.set_index(["council_code", "measure_group"])
    assert (wide["Denominator"].reindex(expected.index) == expected["denominator"]).all()
    shown = wide["Numerator"].reindex(expected.index).dropna()
    assert (shown == expected.loc[shown.index, "numerator"]).all()
    # two councils' 2B1 headline numerators (and outcomes) withheld
    withheld = headline[headline["suppression"].notna()]
    assert withheld["council_code"].nunique() == 2 and set(withheld["measure_type"]) == {"Numerator", "Outcome"}
    # disaggregations add up to the headline: age bands and sex, numerator and denominator
    parts = councils[councils["measure_code"] != councils["measure_group"]].copy()
    parts["split"] = np.where(parts["measure_code"].str[-1].isin(["F", "M"]), "sex", "age")
    sums = parts[parts["measure_type"].isin(["Numerator", "Denominator"])].groupby(["council_code", "measure_group", "split", "measure_type"])["value"].sum()
    for split in ("age", "sex"):
        assert (sums.xs(split, level="split").xs("Denominator", level="measure_type") == expected["denominator"]).all()
        assert (sums.xs(split, level="split").xs("Numerator", level="measure_type") == expected["numerator"]).all()
    assert {"2B16574", "2B185OV", "2B1F", "2B1M", "2B2F"} <= set(parts["measure_code"])
    # England = the sum of councils; 2B2 denominators in the thousands, numerators far smaller
    england = parsed[(parsed["geo_level"] == "England") & (parsed["measure_type"] == "Denominator")].set_index("measure_group")["value"]
    assert england["2B2"] == frame.loc[frame["measure_group"] == "2B2", "denominator"].sum()
    two_b_two = frame[frame["measure_group"] == "2B2"]
    assert two_b_two["denominator"].median() > 1000 and two_b_two["numerator"].median() < two_b_two["denominator"].median() / 10


def test_the_year_inside_the_file_wins_over_the_requested_period():
    # ascof-year-column.csv line 2: "2017-18,716,..."; the caller asked for another year
    frame = parsers.parse("ascof", FIX / "ascof-year-column.csv", "2018-19")
    assert set(frame["year"]) == {"2017-18"}


def test_a_four_digit_second_year_is_written_as_two_digits(tmp_path):
    path = tmp_path / "y.csv"
    path.write_bytes(b"Financial Year," + HEADER.encode() + b"2016/2017,716,B,Council,E09000002,2B1,Total,Numerator,5,2B1\n")
    assert set(parsers.parse("ascof", path, None)["year"]) == {"2016-17"}



def test_a_file_without_a_disaggregation_column_holds_headline_figures(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(HEADER.replace("Disaggregation Level,", "").encode() + b"716,B,Council,E09000002,2B1,Numerator,5,2B1\n")
    assert one(parsers.parse("ascof", path, "2016-17"), geo_code="716")["disaggregation"] == "Total"
