"""Record-level hospital metrics against an independent pandas implementation and hand counts."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from carewatch import geography, hospital
from carewatch.errors import ParseError
from carewatch.samples import hes_apc

EMERGENCY = {"21", "22", "23", "24", "25", "28", "2A", "2B", "2C", "2D"}


def pandas_metrics(extract) -> pd.DataFrame:
    """The documented definitions, written plainly in pandas (the oracle; not product code)."""
    e = pq.read_table(extract).to_pandas()
    lookup = pd.concat([pd.read_csv(path, dtype=str) for path in hospital.lookup_paths()]).set_index("district_code")["hwb_code"]
    e = e[(e["epistat"] == 3) & e["admimeth"].isin(EMERGENCY) & (e["startage"] >= 65) & (e["startage"] <= 120)].copy()
    e["area_code"] = e["resladst_ons"].map(lookup).fillna("UNMAPPED")
    adm = e[e["epiorder"] == 1].copy()
    adm["period"] = pd.to_datetime(adm["admidate"]).dt.to_period("M").dt.to_timestamp()
    admissions = adm.groupby(["area_code", "period"]).size().rename("emergency_admissions")
    dis = e[e["disdate"].notna() & ~e["dismeth"].isin([4, 5])].copy()
    dis["period"] = pd.to_datetime(dis["disdate"]).dt.to_period("M").dt.to_timestamp()
    dis["los"] = (pd.to_datetime(dis["disdate"]) - pd.to_datetime(dis["admidate"])).dt.days
    dis["weekend"] = pd.to_datetime(dis["disdate"]).dt.dayofweek >= 5

    def nearest_rank_p90(values):
        ordered = np.sort(values.dropna().to_numpy())  # a discharge without an admidate has no stay
        if len(ordered) == 0:
            return np.nan
        return int(ordered[int(np.ceil(0.9 * len(ordered))) - 1])

    discharges = dis.groupby(["area_code", "period"]).agg(
        discharges=("los", "size"), los_p90_days=("los", nearest_rank_p90), weekend_discharges=("weekend", "sum"))
    out = pd.concat([admissions, discharges], axis=1).reset_index()
    out["emergency_admissions"] = out["emergency_admissions"].fillna(0).astype(int)
    out["discharges"] = out["discharges"].fillna(0).astype(int)
    out["weekend_discharges"] = out["weekend_discharges"].fillna(0).astype(int)
    out["period"] = out["period"].dt.strftime("%Y-%m-%d")
    return out[hospital.COLUMNS]


def _normalise(frame):
    frame = frame.copy()
    frame["los_p90_days"] = frame["los_p90_days"].astype("Float64")
    for c in ("emergency_admissions", "discharges", "weekend_discharges"):
        frame[c] = frame[c].astype("int64")
    return frame.sort_values(["period", "area_code"]).reset_index(drop=True)


def test_generated_extract_agrees_exactly_with_the_pandas_implementation(tmp_path):
    extract = hes_apc.write_apc_extract(tmp_path / "apc.parquet", 200_000, seed=3)
    ours = _normalise(hospital.hes_metrics(extract))
    oracle = _normalise(pandas_metrics(extract))
    pd.testing.assert_frame_equal(ours, oracle, check_dtype=False)
    assert (ours["area_code"] == "UNMAPPED").any()


def _hand_extract(path):
    D = dt.date
    hackney = "E09000012"
    rows = [
        # epikey, spell, order, stat, meth, admidate, disdate, dismeth, age, residence
        (1, 1, 1, 3, "21", D(2017, 4, 3), D(2017, 4, 3), 1, 65, hackney),     # admission + same-day discharge (Monday)
        (2, 2, 1, 3, "2A", D(2017, 4, 10), None, None, 80, hackney),          # first episode of a 2-episode spell
        (3, 2, 2, 3, "2A", D(2017, 4, 10), D(2017, 4, 15), 1, 80, hackney),   # its last: 5 days, Saturday
        (4, 3, 1, 3, "21", D(2017, 4, 20), D(2017, 4, 30), 4, 70, hackney),   # died: admission, not a discharge
        (5, 4, 1, 3, "21", D(2017, 4, 21), D(2017, 5, 7), 1, 90, hackney),    # discharged in May (Sunday), 16 days
        (6, 5, 1, 3, "21", D(2017, 4, 22), None, 8, 75, hackney),             # still in hospital
        (7, 6, 1, 3, "11", D(2017, 4, 23), D(2017, 4, 24), 1, 70, hackney),   # elective: nothing
        (8, 7, 1, 3, "21", D(2017, 4, 24), D(2017, 4, 25), 1, 64, hackney),   # aged 64: nothing
        (9, 8, 1, 3, "21", D(2017, 4, 24), D(2017, 4, 25), 1, 7003, hackney), # infant code 7003: nothing
        (10, 9, 1, 1, "21", D(2017, 4, 25), D(2017, 4, 26), 1, 70, hackney),  # unfinished: nothing
        (11, 10, 1, 3, "22", D(2017, 4, 26), D(2017, 4, 29), 1, 121, hackney),# age 121 is out of range
        (12, 11, 1, 3, "21", D(2017, 4, 27), D(2017, 4, 28), 1, 120, "W06000015"),  # Welsh resident, 1 day, Friday
        (13, 12, 1, 3, "28", D(2017, 4, 28), D(2017, 4, 30), 9, 88, None),    # missing residence, 2 days, Sunday
        (14, 13, 2, 3, "21", None, D(2017, 5, 2), 1, 77, hackney),            # no admidate: a discharge (Tuesday) with no stay
    ]
    return _write_extract(path, rows)


def _write_extract(path, rows):
    """Rows of (epikey, spell, order, stat, meth, admidate, disdate, dismeth, age, residence) as an extract."""
    frame = pd.DataFrame(rows, columns=["epikey", "susspellid", "epiorder", "epistat", "admimeth", "admidate", "disdate", "dismeth", "startage", "resladst_ons"])
    frame["epistart"] = frame["admidate"]
    frame["epiend"] = frame["disdate"].fillna(frame["admidate"])
    frame["dismeth"] = frame["dismeth"].astype("Int8")
    table = pa.Table.from_pandas(frame[[f.name for f in hes_apc.SCHEMA]], schema=hes_apc.SCHEMA, preserve_index=False)
    pq.write_table(table, path)
    return path


def test_hand_made_extract_with_every_edge_case(tmp_path):
    got = hospital.hes_metrics(_hand_extract(tmp_path / "hand.parquet")).set_index(["area_code", "period"])
    # Hackney, April 2017: admissions = episodes 1, 2, 4, 5, 6 (first episodes, emergency, 65-120) = 5
    #   discharges in April = episode 1 (0 days, Monday) and 3 (5 days, Saturday) = 2 (4 died, 5 in May)
    #   p90 by nearest rank of [0, 5]: ceil(0.9 * 2) = 2nd value = 5; weekend = 1
    assert tuple(got.loc[("E09000012", "2017-04-01")]) == (5, 2, 5, 1)
    # Hackney, May 2017: no admissions; discharges: episode 5 (Sunday 7 May, 16 days) and
    #   episode 14 (Tuesday 2 May, no admidate so no stay): p90 of [16] = 16; weekend 1
    assert tuple(got.loc[("E09000012", "2017-05-01")]) == (0, 2, 16, 1)
    # Outside England or unknown residence, April: episodes 12 (Wales) and 13 (missing), both
    #   admissions and discharges (1 day Friday, 2 days Sunday): p90 of [1, 2] = 2, weekend 1
    assert tuple(got.loc[("UNMAPPED", "2017-04-01")]) == (2, 2, 2, 1)
    assert len(got) == 3


def test_period_filter_and_cli(tmp_path):
    extract = _hand_extract(tmp_path / "hand.parquet")
    out = subprocess.run([sys.executable, "-m", "carewatch.cli", "hes-metrics", str(extract), "--from", "2017-05", "--to", "2017-05"], capture_output=True, text=True)
    assert out.returncode == 0
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert list(frame.columns) == hospital.COLUMNS
    assert frame.to_dict("records") == [{"area_code": "E09000012", "period": "2017-05-01", "emergency_admissions": 0, "discharges": 2, "los_p90_days": 16, "weekend_discharges": 1}]


def test_samples_writes_a_synthetic_extract_to_try_hes_metrics_on(tmp_path, capsys):
    from carewatch import cli

    for name in ("a.parquet", "b.parquet"):
        assert cli.main(["samples", "--hes-apc", str(tmp_path / name), "--episodes", "5000", "--seed", "4"]) == 0
    assert capsys.readouterr().out.startswith("wrote a synthetic HES APC extract of about 5,000 episodes (2017-18) to ")
    first, second = (pd.read_parquet(tmp_path / name) for name in ("a.parquet", "b.parquet"))
    assert len(first) >= 5000 and set(hospital.NEEDED) <= set(first.columns)
    pd.testing.assert_frame_equal(first, second)  # the same seed writes the same episodes
    assert cli.main(["samples", "--hes-apc", str(tmp_path / "c.parquet"), "--episodes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "carewatch: --episodes 0: give a positive number of episodes"


def test_codes_stored_as_text_and_dates_as_timestamps_give_the_same_figures(tmp_path):
    extract = hes_apc.write_apc_extract(tmp_path / "apc.parquet", 50_000, seed=11)
    table = pq.read_table(extract)
    frame = table.to_pandas()
    for column in ("epistat", "epiorder", "dismeth", "startage"):
        frame[column] = frame[column].astype("Int64").astype("string")  # "3", "1", <NA>, "7003"
    for column in ("admidate", "disdate"):
        frame[column] = pd.to_datetime(frame[column])
    other = tmp_path / "apc-text.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), other)
    assert pa.types.is_large_string(pq.read_schema(other).field("epistat").type)
    assert pa.types.is_timestamp(pq.read_schema(other).field("admidate").type)
    pd.testing.assert_frame_equal(_normalise(hospital.hes_metrics(other)), _normalise(hospital.hes_metrics(extract)))


def _one_admission_per_district(path, codes, when):
    """One emergency admission (aged 80, discharged home the same day) per district code."""
    return _write_extract(path, [(i, i, 1, 3, "21", when, when, 1, 80, code) for i, code in enumerate(codes, start=1)])


def test_district_codes_of_any_vintage_map_to_the_area_that_held_them(tmp_path):
    # A 2017-18 extract carries the districts of 2017: Christchurch and West Dorset were in
    # Dorset county, Corby and Northampton in Northamptonshire, Wycombe in Buckinghamshire,
    # Bournemouth and Poole were unitary; Barnsley's 2019 alias is Barnsley.
    codes = {"E07000048": "E10000009", "E07000052": "E10000009", "E07000150": "E10000021", "E07000154": "E10000021",
             "E07000007": "E10000002", "E06000028": "E06000028", "E06000029": "E06000029", "E08000038": "E08000016",
             # later extracts: BCP and the Northamptonshire unitaries are areas of their own (as in
             # the warehouse); Buckinghamshire and North Yorkshire unitaries are recodes of the county
             "E06000058": "E06000058", "E06000061": "E06000061", "E06000060": "E10000002", "E06000065": "E10000023",
             "E06000063": "E06000063"}
    extract = _one_admission_per_district(tmp_path / "vintages.parquet", list(codes), dt.date(2017, 6, 5))
    got = hospital.hes_metrics(extract).set_index("area_code")["emergency_admissions"]
    expected = pd.Series(codes).value_counts()
    assert "UNMAPPED" not in got.index
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()


def test_district_lookup_follows_the_warehouse_area_rule():
    """Each district's HWB is what the project's area rule gives its council (recodes and
    aliases resolve to the old council; successors of boundary changes are areas of their own).
    The expected areas themselves are hand-written in the test above."""
    lookup = pd.concat([pd.read_csv(path, dtype=str) for path in hospital.lookup_paths()])
    assert lookup["district_code"].is_unique
    rule = lookup["council_code"].map(lambda code: geography.council_to_hwb(geography.resolve_council(code)))
    mismatched = lookup[rule != lookup["hwb_code"]]
    assert mismatched.empty, mismatched


def test_an_extract_without_the_fields_is_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"epikey": [1]}), path)
    with pytest.raises(ParseError, match="missing HES APC column"):
        hospital.hes_metrics(path)


def _two_episodes_frame():
    """Two emergency admissions aged 80 in Hartlepool: admitted Monday 25 June 2018 and
    discharged Sunday 1 July (6 days); admitted Sunday 1 July, discharged Monday 2 July (1 day)."""
    D = dt.date
    rows = [(1, 1, 1, 3, "21", D(2018, 6, 25), D(2018, 7, 1), 1, 80, "E06000001"),
            (2, 2, 1, 3, "21", D(2018, 7, 1), D(2018, 7, 2), 1, 80, "E06000001")]
    return pd.DataFrame(rows, columns=["epikey", "susspellid", "epiorder", "epistat", "admimeth", "admidate", "disdate", "dismeth", "startage", "resladst_ons"])


# by hand: June 1 admission; July 1 admission, 2 discharges (stays 6 and 1: p90 = 6), 1 at the weekend
TWO_EPISODES = [("E06000001", "2018-06-01", 1, 0, None, 0), ("E06000001", "2018-07-01", 1, 2, 6, 1)]


def _rows(frame):
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


@pytest.mark.parametrize("zone, arrow_tz", [("Europe/London", "Europe/London"),
                                             (dt.timezone(dt.timedelta(hours=1)), "+01:00")])  # a fixed offset
def test_time_zone_aware_dates_are_read_in_their_own_zone(tmp_path, zone, arrow_tz):
    # British Summer Time (and +01:00) midnights are 23:00 UTC the day before: read in the
    # machine's zone (UTC here) every date would move back a day, and Sunday 1 July's
    # discharge to Saturday.
    frame = _two_episodes_frame()
    for column in ("admidate", "disdate"):
        frame[column] = pd.to_datetime(frame[column]).dt.tz_localize(zone)
    path = tmp_path / "zoned.parquet"
    frame.to_parquet(path, index=False)
    assert pq.read_schema(path).field("admidate").type.tz == arrow_tz
    assert _rows(hospital.hes_metrics(path)) == TWO_EPISODES


@pytest.mark.parametrize("arrow_tz, hours", [("+0100", 1), ("+01", 1), ("-0530", -5.5), ("Z", 0)])
def test_fixed_offsets_written_without_a_colon_and_z_are_read(tmp_path, arrow_tz, hours):
    # Arrow passes the zone name through as written; DuckDB takes none of these as a zone name
    # (before: a traceback, "Unknown TimeZone '+0100'")
    frame = _two_episodes_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for column in ("admidate", "disdate"):
        local = pd.to_datetime(frame[column])
        utc = local - pd.Timedelta(hours=hours)  # local midnight, as the instant it was
        micros = (utc - pd.Timestamp("1970-01-01")) // pd.Timedelta(microseconds=1)
        table = table.set_column(table.schema.get_field_index(column), column,
                                 pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz=arrow_tz)))
    path = tmp_path / "offset.parquet"
    pq.write_table(table, path)
    assert pq.read_schema(path).field("admidate").type.tz == arrow_tz
    assert _rows(hospital.hes_metrics(path)) == TWO_EPISODES


def test_a_time_zone_duckdb_does_not_know_is_one_line_error(tmp_path):
    frame = _two_episodes_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    stamps = pa.array([0, 0], pa.int64()).cast(pa.timestamp("us", tz="Nowhere/Atlantis"))
    table = table.set_column(table.schema.get_field_index("disdate"), "disdate", stamps)
    path = tmp_path / "atlantis.parquet"
    pq.write_table(table, path)
    out = subprocess.run([sys.executable, "-m", "carewatch.cli", "hes-metrics", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"carewatch: {path}: cannot parse as hes_apc: column disdate: time zone Nowhere/Atlantis is not one DuckDB knows"]


@pytest.mark.parametrize("column, values, stored", [
    ("admidate", pa.array([True, False]), "bool"),
    ("admidate", pa.array([20180625, 20180701], pa.int64()), "int64"),   # yyyymmdd as a number
    ("disdate", pa.array([[1], [2]], pa.list_(pa.int64())), "list<element: int64>"),
    ("startage", pa.array([{"a": 80}, {"a": 80}]), "struct<a: int64>"),
    ("resladst_ons", pa.array([6000001, 6000001], pa.int64()), "int64"),
    ("epistat", pa.array([True, True]), "bool"),
])
def test_a_column_stored_as_a_type_it_cannot_be_read_from_is_refused(tmp_path, column, values, stored):
    # read as missing, each of these would empty the figures silently (exit 0, no admissions,
    # or every episode UNMAPPED)
    table = pa.Table.from_pandas(_two_episodes_frame(), preserve_index=False)
    table = table.set_column(table.schema.get_field_index(column), column, values)
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    with pytest.raises(ParseError, match=rf"column {column} is stored as {re.escape(stored)}, not as "):
        hospital.hes_metrics(path)


def test_codes_and_dates_in_other_encodings_are_read(tmp_path):
    # dictionary-encoded text (pandas categoricals), large strings, binary codes, an all-null column
    frame = _two_episodes_frame()
    frame["admimeth"] = frame["admimeth"].astype("category")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("resladst_ons"), "resladst_ons",
                             table.column("resladst_ons").cast(pa.large_string()))
    table = table.set_column(table.schema.get_field_index("startage"), "startage", pa.array([b"80", b"80"], pa.binary()))
    table = table.set_column(table.schema.get_field_index("dismeth"), "dismeth", pa.nulls(2))
    for column in ("admidate", "disdate"):  # ISO dates as binary (a BLOB to DuckDB)
        as_text = [None if v is None else str(v).encode() for v in frame[column]]
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(as_text, pa.binary()))
    path = tmp_path / "encoded.parquet"
    pq.write_table(table, path)
    assert pa.types.is_dictionary(pq.read_schema(path).field("admimeth").type)
    assert _rows(hospital.hes_metrics(path)) == TWO_EPISODES


def test_a_date_outside_duckdbs_range_is_one_line_error(tmp_path):
    table = pa.Table.from_pandas(_two_episodes_frame(), preserve_index=False)
    table = table.set_column(table.schema.get_field_index("admidate"), "admidate",
                             pa.array([-(2**31), 17707], pa.int32()).cast(pa.date32()))
    path = tmp_path / "far.parquet"
    pq.write_table(table, path)
    with pytest.raises(ParseError, match="DuckDB could not read it: Conversion Error: Date out of range"):
        hospital.hes_metrics(path)


def test_codes_that_are_not_whole_numbers_are_missing_not_rounded(tmp_path):
    frame = _two_episodes_frame()
    frame["startage"] = ["64.5", "80.0"]  # 64.5 is not an age: DuckDB's cast would round it to 65
    frame["epistat"] = ["3", " 3 "]
    frame["admimeth"] = [21.0, 21.0]      # a float column of whole codes reads as '21'
    path = tmp_path / "text.parquet"
    frame.to_parquet(path, index=False)
    # only the second episode counts: July 1 admission, 1 discharge (1 day, Monday)
    assert _rows(hospital.hes_metrics(path)) == [("E06000001", "2018-07-01", 1, 1, 1, 0)]
    # a decimal column of whole codes reads as '21' too (not '21.0', which is no emergency code)
    import decimal

    table = pa.Table.from_pandas(frame, preserve_index=False)
    codes = pa.array([decimal.Decimal("21.0"), decimal.Decimal("21.0")], pa.decimal128(4, 1))
    pq.write_table(table.set_column(table.schema.get_field_index("admimeth"), "admimeth", codes), path)
    assert pa.types.is_decimal(pq.read_schema(path).field("admimeth").type)
    assert _rows(hospital.hes_metrics(path)) == [("E06000001", "2018-07-01", 1, 1, 1, 0)]
    # a float code that is NaN or infinite is missing, not an error for the whole extract
    frame = pd.concat([frame, frame.assign(admimeth=[float("nan"), float("inf")], epikey=[3, 4])], ignore_index=True)
    frame.to_parquet(path, index=False)
    assert _rows(hospital.hes_metrics(path)) == [("E06000001", "2018-07-01", 1, 1, 1, 0)]


def test_months_far_in_the_past_or_future_are_kept_without_a_month_range(tmp_path):
    frame = _two_episodes_frame()
    frame["admidate"] = [dt.date(1800, 1, 1), dt.date(2018, 7, 1)]  # a placeholder date still counts
    frame["disdate"] = [dt.date(1800, 1, 1), dt.date(2999, 12, 31)]
    no_admidate = (3, 3, 1, 3, "21", None, dt.date(2018, 7, 3), 1, 80, "E06000001")  # a discharge, no admission month
    path = tmp_path / "far.parquet"
    _write_extract(path, [*frame.itertuples(index=False, name=None), no_admidate])
    got = hospital.hes_metrics(path)
    assert list(got["period"]) == ["1800-01-01", "2018-07-01", "2999-12-01"]
    assert got.loc[1, ["emergency_admissions", "discharges"]].tolist() == [1, 1]
    assert list(hospital.hes_metrics(path, "2018-07", "2018-07")["period"]) == ["2018-07-01"]


@pytest.mark.parametrize("args, message", [
    (["--from", "201812"], "--from '201812' is not a month (YYYY-MM)"),
    (["--from", "0000-01"], "--from '0000-01' is not a month (YYYY-MM)"),
    (["--to", "2018-13"], "--to '2018-13' is not a month (YYYY-MM)"),
    (["--from", "2018-05", "--to", "2018-04"], "--from 2018-05 is after --to 2018-04"),
])
def test_a_bad_month_range_is_one_line_error(tmp_path, args, message):
    extract = _hand_extract(tmp_path / "hand.parquet")
    out = subprocess.run([sys.executable, "-m", "carewatch.cli", "hes-metrics", str(extract), *args], capture_output=True, text=True)
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [f"carewatch: {message}"]


def test_a_missing_extract_says_so(tmp_path):
    with pytest.raises(ParseError, match="no such file"):
        hospital.hes_metrics(tmp_path / "nope.parquet")
    with pytest.raises(ParseError, match="not a file"):
        hospital.hes_metrics(tmp_path)


def test_an_extract_with_nothing_to_count_says_so_on_stderr(tmp_path):
    frame = _two_episodes_frame().assign(admimeth="11")  # elective: nothing counts
    path = tmp_path / "elective.parquet"
    frame.to_parquet(path, index=False)
    empty = tmp_path / "empty.parquet"
    frame.iloc[:0].to_parquet(empty, index=False)
    for extract, why in ((path, "none of its 2 episodes is an emergency admission or discharge aged 65+"),
                         (empty, "it holds no episodes")):
        out = subprocess.run([sys.executable, "-m", "carewatch.cli", "hes-metrics", str(extract)], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.splitlines() == [",".join(hospital.COLUMNS)]
        assert out.stderr.splitlines() == [f"carewatch: {extract}: no figures: {why}"]


def test_fractional_codes_are_missing_even_where_rounding_would_make_them_count(tmp_path):
    # only the second episode counts (July 1 admission, 1 discharge of 1 day, Monday), as above:
    # "65.5" is no age (rounded it would be 65+), and the float 21.6 no admission method
    # (rounded it would be 22, an emergency code)
    expected = [("E06000001", "2018-07-01", 1, 1, 1, 0)]
    frame = _two_episodes_frame()
    frame["startage"] = ["65.5", "80.0"]
    path = tmp_path / "age.parquet"
    frame.to_parquet(path, index=False)
    assert _rows(hospital.hes_metrics(path)) == expected
    frame = _two_episodes_frame()
    frame["admimeth"] = [21.6, 21.0]
    path = tmp_path / "meth.parquet"
    frame.to_parquet(path, index=False)
    assert _rows(hospital.hes_metrics(path)) == expected


def test_a_month_with_only_later_episodes_of_earlier_admissions_has_no_row(tmp_path):
    """An extract cut by episode end holds spells admitted before it starts: a later episode
    repeats its spell's March admidate, but March had no admission (first episode) and no
    discharge in the extract, so it has no row (no zero rows are added)."""
    D = dt.date
    hackney = "E09000012"
    path = _write_extract(tmp_path / "cut.parquet", [
        # epikey, spell, order, stat, meth, admidate, disdate, dismeth, age, residence
        (1, 1, 2, 3, "21", D(2018, 3, 28), None, None, 80, hackney),          # 2nd episode, admitted in March
        (2, 1, 3, 3, "21", D(2018, 3, 28), D(2018, 4, 9), 1, 80, hackney),    # last: discharged Monday 9 April, 12 days
        (3, 2, 1, 3, "21", D(2018, 4, 2), D(2018, 4, 7), 1, 70, hackney),     # April admission, discharged Saturday, 5 days
    ])
    # April: 1 admission (episode 3); discharges episodes 2 and 3 (12 and 5 days): p90 of [5, 12] = 2nd = 12; weekend 1
    assert _rows(hospital.hes_metrics(path)) == [(hackney, "2018-04-01", 1, 2, 12, 1)]
