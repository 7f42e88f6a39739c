"""Reading a published CSV as text, shared by the CSV parsers (ASCOF, DTOC provider, hospital
aggregate): UTF-8 with or without BOM, else Windows-1252; every cell as
stripped text; rows with no value at all (the ",,,,," lines a spreadsheet export leaves at the
end) dropped. The frame is indexed by each row's first line in the file (:func:`line`), counted
as an editor counts them: blank lines above the header and cells spanning lines included.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import pandas as pd

from carewatch.errors import ParseError


def read_text(path: Path, source: str) -> str:
    """The file's text: UTF-8 (with or without BOM) if it decodes as such, else Windows-1252."""
    raw = Path(path).read_bytes()  # (an HTML page is refused before: parsers.parse)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as err:
        raise ParseError(source, path, f"neither UTF-8 nor Windows-1252 text (byte {raw[err.start]:#x} at offset {err.start})") from None


def read_csv_table(path: Path, source: str) -> pd.DataFrame:
    """Every cell as stripped text, rows with no value dropped; ParseError if the CSV is malformed."""
    lines = read_text(path, source).splitlines(keepends=True)
    above = next((i for i, text in enumerate(lines) if text.strip()), len(lines))  # blank lines above the header
    text = "".join(lines[above:])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False, skip_blank_lines=False)
    except pd.errors.ParserWarning:
        raise ParseError(source, path, "not a readable CSV (a row has more fields than the header)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ParseError(source, path, f"not a readable CSV ({str(err).splitlines()[0]})") from None
    frame = frame.apply(lambda column: column.str.strip())
    starts = _record_lines(text)
    if len(starts) == len(frame) + 1:  # the header, then one start per row
        frame.index = [above + start for start in starts[1:]]
    else:  # the csv module and pandas disagree on the records (not met): count rows as lines
        frame.index = frame.index + above + 2
    return frame[(frame != "").any(axis=1)] if len(frame.columns) else frame


def _record_lines(text: str) -> list[int]:
    """The line (1 = the text's first) on which each CSV record of ``text`` starts."""
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, read = [], 0
    try:
        for _ in reader:
            starts.append(read + 1)
            read = reader.line_num
    except csv.Error:
        return []
    return starts


def line(index) -> int:
    """The line in the file of a row of :func:`read_csv_table`'s frame."""
    return int(index)
