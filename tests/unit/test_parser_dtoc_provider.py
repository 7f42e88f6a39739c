"""The DTOC provider-level CSV parser on hand-written fixtures, bad inputs, and the sample writer.

Fixtures in tests/fixtures/dtoc-provider/ are hand-written in the two real period styles;
every expected value below is read off the fixture line noted.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from carewatch import parsers
from carewatch.errors import ParseError
from carewatch.samples import dtoc_provider as provider_sample
from carewatch.samples.world import World
from tests.conftest import FIXTURES

FIX = FIXTURES / "dtoc-provider"
COLUMNS = ["period", "provider_code", "provider_name", "commissioner_code", "la_code", "la_name", "council_code",
           "care_type", "reason", "agency", "patients_delayed", "delayed_days"]


def figures(frame: pd.DataFrame, la_code: str, agency: str) -> tuple:
    rows = frame[(frame["la_code"] == la_code) & (frame["agency"] == agency)]
    return [tuple(r) for r in rows[["care_type", "reason", "patients_delayed", "delayed_days"]].itertuples(index=False)]


def test_msitdt_period_style():
    frame = parsers.parse("dtoc_provider", FIX / "msitdt-2017-09.csv")
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 4 * 3 and set(frame["period"]) == {dt.date(2017, 9, 1)}
    # line 2: RF4,...,07L,...,716,BARKING & DAGENHAM,Acute,A) COMPLETION OF ASSESSMENT,3,87,1,30,0,0
    # line 3: RF4,...,716,...,NON-ACUTE,DII) AWAITING NURSING HOME ...,0,"1,204",2,61,-,-
    assert figures(frame, "716", "nhs") == [("acute", "A", 3.0, 87.0), ("non_acute", "Dii", 0.0, 1204.0)]
    assert figures(frame, "716", "social_care") == [("acute", "A", 1.0, 30.0), ("non_acute", "Dii", 2.0, 61.0)]
    both = figures(frame, "716", "both")
    assert both[0] == ("acute", "A", 0.0, 0.0) and np.isnan(both[1][2]) and np.isnan(both[1][3])
    barking = frame[frame["la_code"] == "716"].iloc[0]
    assert (barking["provider_code"], barking["commissioner_code"], barking["la_name"], barking["council_code"]) == ("RF4", "07L", "BARKING & DAGENHAM", "E09000002")
    assert barking["provider_name"] == "BARKING HAVERING AND REDBRIDGE UNIVERSITY HOSPITALS NHS TRUST"
    # line 4: Bedford's four-character code; blank Social Care cells are nulls
    bedford = frame[frame["la_code"] == "00KB"]
    assert set(bedford["council_code"]) == {"E06000055"}
    assert figures(frame, "00KB", "nhs") == [("acute", "E", 1.0, 15.0)]
    assert bedford.loc[bedford["agency"] == "social_care", ["patients_delayed", "delayed_days"]].isna().all(axis=None)
    # line 5: the special row 9900 keeps its code and name and has no council
    wales = frame[frame["la_code"] == "9900"]
    assert set(wales["la_name"]) == {"RESIDENT IN WALES"} and wales["council_code"].isna().all()
    assert figures(frame, "9900", "nhs") == [("acute", "C", 2.0, 40.0)]


def test_financial_year_and_month_style_with_other_header_spellings():
    frame = parsers.parse("dtoc_provider", FIX / "year-month-2018-01.csv")
    # "2017-18,JANUARY": January of the financial year's second calendar year
    assert set(frame["period"]) == {dt.date(2018, 1, 1)}
    # line 2: ...,608,OXFORDSHIRE,Acute,Di,4,"2,015",10,312,1,"1,000"
    assert figures(frame, "608", "nhs") == [("acute", "Di", 4.0, 2015.0)]
    assert figures(frame, "608", "social_care") == [("acute", "Di", 10.0, 312.0)]
    assert figures(frame, "608", "both") == [("acute", "Di", 1.0, 1000.0)]
    assert set(frame.loc[frame["la_code"] == "608", "council_code"]) == {"E10000025"}
    # line 3: Dorset county's old code 809 before the 2019 reorganisation
    assert set(frame.loc[frame["la_code"] == "809", "council_code"]) == {"E10000009"}
    assert figures(frame, "809", "social_care") == [("non_acute", "G", 0.0, 9.0)]


def test_old_code_kept_by_a_successor_council():
    frame = parsers.parse("dtoc_provider", FIX / "year-month-2019-06.csv")
    assert set(frame["period"]) == {dt.date(2019, 6, 1)}
    # line 2: 809,DORSET UA (the new unitary Dorset); line 3: 738, BCP
    assert set(frame.loc[frame["la_code"] == "809", "council_code"]) == {"E06000059"}
    assert set(frame.loc[frame["la_code"] == "738", "council_code"]) == {"E06000058"}
    assert figures(frame, "809", "both") == [("acute", "O", 0.0, 3.0)]
    assert figures(frame, "738", "social_care") == [("acute", "I", 1.0, 28.0)]


HEADER = "Period,Prov Code,Prov Name,Commissioner Code,Commissioner Name,LA Code,LA Name,Type of Care,Reason For Delay,NHS A,NHS B,Social Care A,Social Care B,Both A,Both B\n"
ROW = "MSitDT-SEPTEMBER-2017,RF4,TRUST,07L,CCG,716,BARKING & DAGENHAM,Acute,A,1,2,3,4,5,6\n"


@pytest.mark.parametrize("content, message", [
    (HEADER.replace("Type of Care,", "") + ROW.replace("Acute,", ""), "missing column(s) care_type"),
    (HEADER.replace(",Both B", "") + ROW[:-3] + "\n", "missing column(s) both B"),
    (HEADER + ROW.replace("MSitDT-SEPTEMBER-2017", "2017-09"), "period '2017-09' (year None) is neither 'MSitDT-MONTH-YYYY'"),
    (HEADER + ROW.replace("MSitDT-SEPTEMBER-2017", "SEPTEMBER"), "period 'SEPTEMBER' (year None)"),
    ("Year," + HEADER + "2017/18," + ROW.replace("MSitDT-SEPTEMBER-2017", "SEPTEMBER"), "period 'SEPTEMBER' (year '2017/18')"),
    (HEADER + ROW.replace(",1,2,3,", ",1,two,3,"), "column 'NHS B' line 2: 'two' is not a number"),
    (HEADER + ROW.replace(",Acute,A,", ",Acute,Z) UNKNOWN,"), "unknown delay reason(s) ['Z) UNKNOWN']"),
    (HEADER + ROW.replace(",Acute,", ",Mental Health,"), "unknown type(s) of care ['Mental Health']"),
    (HEADER, "header but no data rows"),
    (HEADER + ROW.replace("\n", ",7\n"), "a row has more fields than the header"),
    ("<html><body>gone</body></html>", "an HTML page, not the publication's file"),
])
def test_bad_inputs_raise_parse_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ParseError, match="cannot parse as dtoc_provider") as err:
        parsers.parse("dtoc_provider", path)
    assert message in str(err.value)


# --- the sample writer -----------------------------------------------------------------------

def la_month(period: dt.date) -> pd.DataFrame:
    """A hand-written LA month in World.dtoc_month's long form: two councils and Wales."""
    areas = {
        ("council", "E09000002"): {"agency": {"nhs": 300, "social_care": 150, "both": 50},
                                   "reason": {"A": 100, "C": 250, "E": 150}, "care_type": {"acute": 320, "non_acute": 180}},
        ("council", "E06000015"): {"agency": {"nhs": 1234, "social_care": 0, "both": 0},
                                   "reason": {"Di": 1000, "G": 234}, "care_type": {"acute": 1234, "non_acute": 0}},
        ("special", "9900"): {"agency": {"nhs": 12, "social_care": 0, "both": 0},
                              "reason": {"O": 12}, "care_type": {"acute": 5, "non_acute": 7}},
    }
    rows = [(period, row_type, code, breakdown, category, value)
            for (row_type, code), margins in areas.items()
            for breakdown, values in margins.items()
            for category, value in {**values, "total": sum(values.values())}.items()]
    return pd.DataFrame(rows, columns=["period", "row_type", "code", "breakdown", "category", "value"])


@pytest.mark.parametrize("period, label_columns", [
    (dt.date(2017, 9, 1), ["Period"]),
    (dt.date(2019, 6, 1), ["Year", "Period"]),
])
def test_writer_round_trip_of_a_hand_written_month(tmp_path, period, label_columns):
    path = provider_sample.write_month(tmp_path / "m.csv", period, la_month(period), np.random.default_rng(3))
    assert path.read_text().split(",")[: len(label_columns)] == label_columns
    parsed = parsers.parse("dtoc_provider", path)
    assert set(parsed["period"]) == {period}
    days = parsed.groupby(["la_code", "agency"])["delayed_days"].sum()
    # Barking & Dagenham = 716, Derby = 507 (councils.csv legacy codes)
    assert (days["716", "nhs"], days["716", "social_care"], days["716", "both"]) == (300, 150, 50)
    assert (days["507", "nhs"], days["507", "social_care"], days["507", "both"]) == (1234, 0, 0)
    assert days["9900", "nhs"] == 12
    by_reason = parsed.groupby(["la_code", "reason"])["delayed_days"].sum()
    assert (by_reason["716", "A"], by_reason["716", "C"], by_reason["716", "E"]) == (100, 250, 150)
    by_care = parsed.groupby(["la_code", "care_type"])["delayed_days"].sum()
    assert (by_care["716", "acute"], by_care["716", "non_acute"], by_care["9900", "non_acute"]) == (320, 180, 7)
    assert set(parsed.loc[parsed["la_code"] == "507", "la_name"]) == {"DERBY UA"}
    assert set(parsed["council_code"].dropna()) == {"E09000002", "E06000015"}
    assert (parsed["patients_delayed"] <= parsed["delayed_days"]).all()
    assert ',"1,000",' in path.read_text()  # Derby's acute Di NHS days, with a thousands separator


def test_writer_leaves_out_an_area_of_dashes(tmp_path):
    month = la_month(dt.date(2019, 4, 1))
    month.loc[month["code"] == "E06000015", "value"] = None  # Poole-style row of "-"
    parsed = parsers.parse("dtoc_provider", provider_sample.write_month(tmp_path / "m.csv", dt.date(2019, 4, 1), month, np.random.default_rng(3)))
    assert "507" not in set(parsed["la_code"])


def test_writer_on_a_world_month_sums_back_and_stays_small(tmp_path):
    period = dt.date(2019, 6, 1)
    month = World.from_config().dtoc_month(period)
    path = provider_sample.write_month(tmp_path / "m.csv", period, month, np.random.default_rng(5))
    assert path.stat().st_size < 200_000
    parsed = parsers.parse("dtoc_provider", path)
    la = month[(month["breakdown"] == "agency") & (month["category"] != "total") & month["value"].notna()]
    expected = la.set_index(["code", "category"])["value"].rename_axis(["code", "agency"])
    parsed["code"] = parsed["council_code"].fillna(parsed["la_code"])
    got = parsed.groupby(["code", "agency"])["delayed_days"].sum()
    assert got.reindex(expected.index, fill_value=0).astype("int64").equals(expected.astype("int64"))
    assert {"E06000058", "E06000059"} <= set(parsed["council_code"])


def test_april_opens_the_financial_year_and_the_merger_applies_from_its_first_day(tmp_path):
    # "2019-20,APRIL": April 2019, the month Dorset's old code 809 passed to the new unitary
    # Dorset (E06000059, effective 2019-04-01); "2018-19,MARCH" is March 2019, still the county
    header = "Year,Period,Prov Code,Prov Name,Commissioner Code,Commissioner Name,LA Code,LA Name,Type of Care,Reason For Delay,NHS A,NHS B,Social Care A,Social Care B,Both A,Both B\n"
    path = tmp_path / "april.csv"
    path.write_text(header + "2019-20,APRIL,RDZ,TRUST,11J,CCG,809,DORSET UA,Acute,O) OTHER,1,12,0,0,0,3\n")
    frame = parsers.parse("dtoc_provider", path)
    assert set(frame["period"]) == {dt.date(2019, 4, 1)} and set(frame["council_code"]) == {"E06000059"}
    path.write_text(header + "2018-19,MARCH,RDZ,TRUST,11J,CCG,809,DORSET,Acute,O) OTHER,1,12,0,0,0,3\n")
    frame = parsers.parse("dtoc_provider", path)
    assert set(frame["period"]) == {dt.date(2019, 3, 1)} and set(frame["council_code"]) == {"E10000009"}


def test_local_authority_code_and_name_spelled_out(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(HEADER.replace("LA Code,LA Name", "Local Authority Code,Local Authority Name") + ROW)
    frame = parsers.parse("dtoc_provider", path)
    assert set(frame["la_code"]) == {"716"} and set(frame["council_code"]) == {"E09000002"}
    assert set(frame["la_name"]) == {"BARKING & DAGENHAM"}
