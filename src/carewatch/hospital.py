"""Record-level hospital metrics (``carewatch hes-metrics``): DuckDB SQL over a HES APC extract.

The SQL (``include/sql/hospital/hes_apc_metrics.sql``) reads only the needed columns of the
Parquet extract in one scan. Areas come from ``config/geography/district_to_hwb.csv`` (ONS's
2021 LTLA -> UTLA lookup, mapped to HWB areas) and ``config/geography/former_districts.csv``
(district codes from before and after it). Each district code maps to the HWB area that
contained it while the code was in use, by the rule the warehouse uses for councils
(``int_area_map``). A 2017-18 extract's Christchurch is in Dorset county (E10000009). A 2020
extract's Bournemouth, Christchurch and Poole (E06000058) is an area of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from carewatch import paths, sources
from carewatch.errors import CarewatchError, ParseError

COLUMNS = ["area_code", "period", "emergency_admissions", "discharges", "los_p90_days", "weekend_discharges"]


def lookup_path() -> Path:
    """Districts in the ONS 2021 LTLA -> UTLA lookup, with their HWB area."""
    return paths.config_dir() / "geography" / "district_to_hwb.csv"


def former_districts_path() -> Path:
    """District codes not in the 2021 lookup (abolished, recoded, aliases, 2023 unitaries)."""
    return paths.config_dir() / "geography" / "former_districts.csv"


def lookup_paths() -> list[str]:
    return [str(lookup_path()), str(former_districts_path())]


# Canonical type of each needed column. An extract that stores a column differently (codes as
# text, dates as timestamps or ISO strings) is read through a cast; one that already has the
# type is read as is, so the usual extract costs nothing extra.
INTEGER_COLUMNS = ("epistat", "epiorder", "dismeth", "startage")
TEXT_COLUMNS = ("admimeth", "resladst_ons")
DATE_COLUMNS = ("admidate", "disdate")
NEEDED = {*INTEGER_COLUMNS, *TEXT_COLUMNS, *DATE_COLUMNS}

# How each column may be stored (kinds of `_kind`). Anything else (a boolean, a list, a struct,
# integers for a date, a number for an ONS district code) is refused: read as missing, it would
# silently empty the figures.
ACCEPTED = {
    **{name: {"integer", "float", "text", "null"} for name in INTEGER_COLUMNS},
    "admimeth": {"text", "integer", "float", "null"},
    "resladst_ons": {"text", "null"},
    **{name: {"date", "timestamp", "text", "null"} for name in DATE_COLUMNS},
}
_KIND_WORDS = {"integer": "whole numbers", "float": "floats", "text": "text", "date": "dates",
               "timestamp": "timestamps", "null": "nulls"}


def _kind(arrow_type) -> str | None:
    import pyarrow as pa

    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_binary(arrow_type) \
            or pa.types.is_large_binary(arrow_type) or getattr(pa.types, "is_string_view", lambda t: False)(arrow_type):
        return "text"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_null(arrow_type):
        return "null"
    return None


def _stored_type(extract: Path, name: str, arrow_type):
    """The column's type with a dictionary encoding looked through, or ParseError if it is
    stored as a type the column cannot be read from."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if _kind(arrow_type) not in ACCEPTED[name]:
        allowed = " or ".join(words for kind, words in _KIND_WORDS.items() if kind in ACCEPTED[name] and kind != "null")
        raise ParseError("hes_apc", extract, f"column {name} is stored as {arrow_type}, not as {allowed}")
    return arrow_type


# A whole number written as text or as a float ("3", " 07", "64.0"); anything else ("64.5",
# "0x3", "3a") does not convert and is missing. DuckDB's own cast would round "64.5" to 65.
_WHOLE = r"[+-]?[0-9]+(\.0*)?"
# A fixed offset as Arrow may name it: "+01:00", "+0100", "+01"; "Z" is UTC.
_OFFSET = r"([+-])(\d{2}):?(\d{2})?"


def _named_zone(arrow_type) -> str | None:
    """A timestamp's zone when it is a name ("Europe/London"), not UTC or a fixed offset."""
    import pyarrow as pa

    tz = arrow_type.tz if pa.types.is_timestamp(arrow_type) else None
    return tz if tz and tz != "Z" and not re.fullmatch(_OFFSET, tz) else None


def _column_expression(name: str, arrow_type) -> str:
    """DuckDB expression reading the column in its canonical type (a named time zone must be
    one DuckDB knows: checked before)."""
    import pyarrow as pa

    if name in INTEGER_COLUMNS:
        if pa.types.is_integer(arrow_type):
            return name
        text = f"trim({name}::varchar)"
        return f"case when regexp_full_match({text}, '{_WHOLE}') then try_cast(try_cast({text} as double) as integer) end as {name}"
    if name in TEXT_COLUMNS:
        if pa.types.is_string(arrow_type):
            return name
        if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):  # 21.0 -> '21'; NaN, inf: missing
            return f"case when isfinite({name}::double) and {name} = floor({name}) then try_cast({name} as bigint)::varchar end as {name}"
        return f"{name}::varchar as {name}"
    assert name in DATE_COLUMNS, name
    if pa.types.is_date(arrow_type):
        return name
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz:
        # the calendar date where the timestamp was written, not in the machine's time zone
        zone = "UTC" if arrow_type.tz == "Z" else arrow_type.tz
        offset = re.fullmatch(_OFFSET, zone)
        if offset:  # a fixed offset ("+01:00"), which DuckDB does not take as a zone name
            sign, hours, minutes = offset.groups()
            return f"(timezone('UTC', {name}) + to_minutes({sign}{int(hours) * 60 + int(minutes or 0)}))::date as {name}"
        return f"timezone('{zone}', {name})::date as {name}"
    if pa.types.is_timestamp(arrow_type):
        return f"{name}::date as {name}"
    return f"try_cast({name}::varchar as date) as {name}"  # text (a BLOB is not cast to a date as text is)


def hes_metrics(extract: str | Path, from_period: str | None = None, to_period: str | None = None,
                threads: int | None = None, memory_limit: str = "350MB") -> pd.DataFrame:
    """One row per HWB area (and 'UNMAPPED') and month, as the definitions in the SQL say."""
    import duckdb
    import pyarrow.parquet as pq

    first, last = sources.month_start(from_period, "--from"), sources.month_start(to_period, "--to")
    if first and last and first > last:
        raise CarewatchError(f"--from {from_period} is after --to {to_period}")
    extract = Path(extract)
    if not extract.is_file():
        raise ParseError("hes_apc", extract, "not a file" if extract.exists() else "no such file")
    try:
        schema = pq.ParquetFile(extract).schema_arrow
    except Exception as err:
        raise ParseError("hes_apc", extract, f"not a readable Parquet file ({err.__class__.__name__})") from None
    missing = sorted(NEEDED - set(schema.names))
    if missing:
        raise ParseError("hes_apc", extract, f"missing HES APC column(s): {', '.join(missing)}")
    stored = {name: _stored_type(extract, name, schema.field(name).type) for name in sorted(NEEDED)}
    sql = (paths.sql_dir() / "hospital" / "hes_apc_metrics.sql").read_text()
    con = duckdb.connect()
    try:
        con.execute(f"set memory_limit = '{memory_limit}'")
        con.execute("set enable_progress_bar = false")
        con.execute("set TimeZone = 'UTC'")  # nothing depends on the machine's time zone
        if threads:
            con.execute(f"set threads = {int(threads)}")
        named = {name: zone for name, arrow_type in stored.items() if (zone := _named_zone(arrow_type))}
        if named:
            known = {zone for (zone,) in con.execute("select name from pg_timezone_names()").fetchall()}
            for name, zone in named.items():
                if zone not in known:
                    raise ParseError("hes_apc", extract, f"column {name}: time zone {zone} is not one DuckDB knows")
        columns = [_column_expression(name, arrow_type) for name, arrow_type in stored.items()]
        con.read_parquet(str(extract)).select(", ".join(columns)).create_view("hes_apc_episodes")
        try:
            frame = con.execute(sql, {"lookup": lookup_paths()}).df()
        except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.IOException) as err:
            # e.g. a date outside DuckDB's range, or a file damaged past its footer
            problem = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
            raise ParseError("hes_apc", extract, f"DuckDB could not read it: {problem}") from None
    finally:
        con.close()
    # The month range is applied to the small result: pushed into the SQL it would be evaluated
    # against every episode (DuckDB moves it below the aggregations).
    # An admission without a readable admidate has no month: its group (period null) is dropped.
    months = pd.to_datetime(frame["period"])
    keep = months.notna()
    if first is not None:
        keep &= months.dt.date >= first
    if last is not None:
        keep &= months.dt.date <= last
    frame = frame[keep].assign(period=months[keep].dt.strftime("%Y-%m-%d")).reset_index(drop=True)
    return frame[COLUMNS]
