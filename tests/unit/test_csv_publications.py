"""What the CSV publications (ASCOF, DTOC provider, hospital aggregate) share: how the text is
read. Each case is a real-world damage to an embedded sample, parsed by the source's parser."""

from __future__ import annotations

import pandas as pd
import pytest

from carewatch import parsers, paths, sources
from carewatch.errors import ParseError

SAMPLES = {"ascof": "2016-17", "dtoc_provider": "2019-10", "hes_aggregate": "2018-03"}


def _sample(source: str) -> tuple[bytes, pd.DataFrame]:
    path = paths.samples_dir() / source / f"{SAMPLES[source]}.csv"
    return path.read_bytes(), parsers.parse(sources.parser_for(source), path, SAMPLES[source])


def _parse(source: str, tmp_path, data: bytes) -> pd.DataFrame:
    path = tmp_path / f"{source}.csv"
    path.write_bytes(data)
    return parsers.parse(sources.parser_for(source), path, SAMPLES[source])


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_spreadsheet_leftovers_are_ignored(source, tmp_path):
    data, expected = _sample(source)
    header, _, body = data.partition(b"\n")
    commas = b"," * header.count(b",")
    damaged = b"\r\n\n" + header + b"\n" + body.replace(b"\n", b"\n" + commas + b"\n", 1) + commas + b"\n" + commas + b"\n\n"
    pd.testing.assert_frame_equal(_parse(source, tmp_path, damaged), expected)


NAME_COLUMN = {"ascof": "geo_name", "dtoc_provider": "provider_name", "hes_aggregate": "area_name"}


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_windows_1252_text_is_read(source, tmp_path):
    data, expected = _sample(source)
    text = data.decode("cp1252") if source == "ascof" else data.decode("utf-8-sig")  # the ASCOF sample is cp1252, as published
    first_name = expected[NAME_COLUMN[source]].iloc[0]
    renamed = text.replace(first_name, first_name + " St Mary’s £")  # not UTF-8 once encoded as cp1252
    got = _parse(source, tmp_path, renamed.encode("cp1252"))
    names = got[NAME_COLUMN[source]]
    assert (names == first_name + " St Mary’s £").sum() == (expected[NAME_COLUMN[source]] == first_name).sum() > 0


@pytest.mark.parametrize("source", sorted(SAMPLES))
@pytest.mark.parametrize("content, problem", [
    (b"", "file is empty"),
    (b"  \n \n", "not a readable CSV"),
    ("header", "header but no data rows"),
])
def test_an_empty_file_is_one_clear_error(source, tmp_path, content, problem):
    data, _ = _sample(source)
    if content == "header":
        content = data.partition(b"\n")[0] + b"\n" + b"," * data.partition(b"\n")[0].count(b",") + b"\n"
    with pytest.raises(ParseError, match=problem):
        _parse(source, tmp_path, content)


def test_a_hospital_aggregate_error_names_its_line(tmp_path):
    data, _ = _sample("hes_aggregate")
    lines = data.decode().splitlines()
    fields = lines[3].split(",")
    fields[-1] = "n/a"
    lines[3] = ",".join(fields)
    with pytest.raises(ParseError, match=r"line 5, column 'Weekend Discharges 65\+': 'n/a' is not a number"):
        _parse("hes_aggregate", tmp_path, ("\n" + "\n".join(lines) + "\n").encode())  # a blank line above the header


def test_an_error_names_the_line_an_editor_shows_after_a_cell_spanning_lines(tmp_path):
    data, _ = _sample("hes_aggregate")
    lines = data.decode().splitlines()
    first = lines[1].split(",")
    first[1] = f'"{first[1]}\nsecond line of the same cell"'  # a quoted cell over two lines on line 2
    lines[1] = ",".join(first)
    fields = lines[3].split(",")
    fields[-1] = "n/a"  # the fourth record, on the fifth line of the file
    lines[3] = ",".join(fields)
    with pytest.raises(ParseError, match=r"line 5, column 'Weekend Discharges 65\+': 'n/a' is not a number"):
        _parse("hes_aggregate", tmp_path, ("\n".join(lines) + "\n").encode())


def test_a_hospital_aggregate_row_is_read_measure_by_measure(tmp_path):
    # hand-written in the sample's layout (data/samples/hes_aggregate/2018-03.csv line 2 is
    # "2018-03,E06000001,Hartlepool,314,295,18.0,71"); a suppressed cell, a thousands separator
    # and a month written out
    text = ("Period,Area Code,Area Name,Emergency Admissions 65+,Discharges 65+,LOS P90 Days,Weekend Discharges 65+\n"
            "2018-03,E06000001,Hartlepool,314,295,18.0,71\n"
            "March 2018,E08000025,Birmingham,\"3,120\",\"2,987\",21.5,*\n")
    got = _parse("hes_aggregate", tmp_path, text.encode())
    values = {(r.area_code, r.measure): r.value for r in got.itertuples()}
    assert values[("E06000001", "emergency_admissions_65plus")] == 314
    assert values[("E06000001", "discharges_65plus")] == 295
    assert values[("E06000001", "los_p90_days")] == 18.0
    assert values[("E06000001", "weekend_discharges_65plus")] == 71
    assert values[("E08000025", "emergency_admissions_65plus")] == 3120 and values[("E08000025", "discharges_65plus")] == 2987
    assert pd.isna(values[("E08000025", "weekend_discharges_65plus")])
    assert len(got) == 8 and {str(p) for p in got["period"]} == {"2018-03-01"}


@pytest.mark.parametrize("source", sorted(SAMPLES))
def test_a_utf8_byte_order_mark_before_blank_lines_is_not_the_header(source, tmp_path):
    data, expected = _sample(source)
    text = data.decode("cp1252") if source == "ascof" else data.decode("utf-8-sig")
    got = _parse(source, tmp_path, b"\xef\xbb\xbf" + b"\r\n\r\n" + text.encode("utf-8"))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
