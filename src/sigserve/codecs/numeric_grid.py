"""A fast path for the common large request: `dataframe_split.data` (or a bare split body's
`data`) made only of numbers.

orjson would build one Python object per cell. Instead the `data` array is cut out of the body
and read by pyarrow's CSV reader straight into typed columns (ints stay int64, so the exact
conversion rules still apply) once its bytes are checked to be JSON number syntax; the rest of the document is parsed by orjson as usual. Anything
unusual (strings, nulls, nested lists, ragged rows) falls back to the general path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from sigserve.codecs.arrow_memory import arrow_copy
from sigserve.codecs.limits import DecodeLimits

MIN_DATA_BYTES = 128 * 1024
SCAN_BYTES = 4 * 1024 * 1024
# Wider rows go faster through orjson: at 30 columns the grid cost 2.4x the general path's CPU
# (pyarrow's per-column work and the byte scans grow with the body, orjson's objects do not
# grow faster); at 4 columns it cost 0.6x.
MAX_COLUMNS = 8
_FLOAT64_EXACT = 2.0**53
_DATA_ARRAY = re.compile(rb'"data"\s*:\s*(\[[\d\s.,eE+\-\[\]]*\])')
_WHITESPACE = b" \t\r\n"
_PLACEHOLDER = "\x1fsigserve-numeric-grid"
_READ = pacsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 22)

_DIGIT, _DOT, _EXP, _PLUS, _MINUS, _SEP = 1, 2, 3, 4, 5, 6
_CLASSES = np.zeros(256, np.uint8)
_CLASSES[np.frombuffer(b"0123456789", np.uint8)] = _DIGIT
_CLASSES[np.frombuffer(b".eE+-,\n", np.uint8)] = (_DOT, _EXP, _EXP, _PLUS, _MINUS, _SEP, _SEP)
_ZERO, _COMMA, _POINT, _NEWLINE = ord("0"), ord(","), ord("."), ord("\n")


@dataclass(frozen=True)
class NumericGrid:
    columns: list[np.ndarray]
    n_rows: int


def parse_with_numeric_grid(body: bytes, limits: DecodeLimits | None = None) -> Any | None:
    """The document with `dataframe_split.data` as a NumericGrid, or None to use the general
    path. `limits`: its rows are counted (one byte scan) before any is read."""
    if len(body) < MIN_DATA_BYTES or not _narrow_rows(body):
        return None
    match = _DATA_ARRAY.search(body)
    if match is None or match.end(1) - match.start(1) < MIN_DATA_BYTES:
        return None
    grid = _read_grid(match.group(1), limits)
    if grid is None:
        return None
    envelope = body[: match.start(1)] + orjson.dumps(_PLACEHOLDER) + body[match.end(1) :]
    try:
        document = orjson.loads(envelope)
        # the split object, or the document itself when it is a bare (seed-era) split body
        split = document["dataframe_split"] if "dataframe_split" in document else document
        if split["data"] != _PLACEHOLDER:
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    split["data"] = grid
    return document


def _narrow_rows(body: bytes) -> bool:
    """A cheap look at the first row's width, before any full scan. Only a guess (a column named
    "data" can mislead it), which is enough: it picks the faster path, not the answer."""
    first_row = body.find(b"[", body.find(b"[", body.find(b'"data"') + 1) + 1)
    end = body.find(b"]", first_row)
    return first_row > 0 and end > 0 and body.count(b",", first_row, end) < MAX_COLUMNS


def _read_grid(array_text: bytes, limits: DecodeLimits | None) -> NumericGrid | None:
    compact = array_text.translate(None, _WHITESPACE)
    if not (compact.startswith(b"[[") and compact.endswith(b"]]")):
        return None
    rows = compact[2:-2].replace(b"],[", b"\n")
    if b"[" in rows or b"]" in rows:
        return None
    if limits is not None:
        limits.check_rows(rows.count(b"\n") + 1, "The JSON body")
    if not all(_is_json_numbers(part) for part in _row_aligned(rows)):
        return None
    try:
        table = pacsv.read_csv(arrow_copy(rows), read_options=_READ)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    columns = []
    large_floats = []  # float columns holding magnitudes of 2**53 or more
    for position, column in enumerate(table.columns):
        if column.null_count or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return None
        values = column.to_numpy()
        if values.dtype.kind == "f":
            if not np.isfinite(values).all():
                return None  # 1e400 overflowed: let the general path refuse it
            if (np.abs(values) >= _FLOAT64_EXACT).any():
                large_floats.append(position)
        columns.append(values)
    if large_floats and any(not _long_integer_columns(part).isdisjoint(large_floats) for part in _row_aligned(rows)):
        # an integer of 16 or more digits read into a float column (beside a fraction, or past
        # int64) may have been rounded: the general path keeps it exact or refuses it
        return None
    return NumericGrid(columns, table.num_rows)


def _row_aligned(rows: bytes, size: int = SCAN_BYTES) -> Iterator[bytes]:
    """Whole rows, about `size` bytes at a time: the vectorized scans below make a dozen
    arrays the size of their input, so they look at one part at a time."""
    start = 0
    while True:
        end = rows.find(b"\n", start + size)
        if end < 0:
            yield rows[start:]
            return
        yield rows[start:end]
        start = end + 1


def _long_integer_columns(rows: bytes) -> set[int]:
    """The columns holding an integer literal of 16 or more digits (2**53 has 16), vectorized: a
    run of digits that neither follows a `.` nor ends in a `.` or an exponent."""
    raw = np.frombuffer(rows, np.uint8)
    edges = np.diff(np.concatenate(([0], (_CLASSES[raw] == _DIGIT).view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_runs = ends - starts >= 16
    if not long_runs.any():
        return set()
    starts, ends = starts[long_runs], ends[long_runs]
    before = np.where(starts > 0, raw[np.maximum(starts - 1, 0)], _COMMA)
    after = np.where(ends < len(raw), raw[np.minimum(ends, len(raw) - 1)], _COMMA)
    starts = starts[(before != _POINT) & ((after == _COMMA) | (after == _NEWLINE))]
    if not starts.size:
        return set()
    commas = np.cumsum(raw == _COMMA)
    newline_positions = np.where(raw == _NEWLINE, np.arange(len(raw)), -1)
    row_starts = np.maximum.accumulate(newline_positions)[starts]  # the newline before, or -1
    commas_before_row = np.where(row_starts >= 0, commas[np.maximum(row_starts, 0)], 0)
    return set((commas[starts] - commas_before_row).tolist())


def _is_json_numbers(rows: bytes) -> bool:
    """Comma/newline-separated JSON numbers only: no `+1`, `.5`, `1.`, `01` or empty fields,
    which pyarrow would read but a JSON parser refuses. Vectorized over the bytes."""
    raw = np.frombuffer(rows, np.uint8)
    codes = _CLASSES[raw]
    if not len(codes) or not codes.all() or codes[-1] != _DIGIT:
        return False
    before = np.empty_like(codes)
    before[0], before[1:] = _SEP, codes[:-1]
    after = np.empty_like(codes)
    after[-1], after[:-1] = _SEP, codes[1:]
    after_digit, before_digit = before == _DIGIT, after == _DIGIT
    bad = (codes == _DOT) & ~(after_digit & before_digit)
    bad |= (codes == _EXP) & ~(after_digit & (before_digit | (after == _PLUS) | (after == _MINUS)))
    bad |= (codes == _PLUS) & ~((before == _EXP) & before_digit)
    bad |= (codes == _MINUS) & ~(((before == _SEP) | (before == _EXP)) & before_digit)
    bad |= (codes == _SEP) & ~after_digit
    two_before = np.empty_like(codes)
    two_before[:2], two_before[2:] = _SEP, codes[:-2]
    starts_number = (before == _SEP) | ((before == _MINUS) & (two_before == _SEP))
    bad |= (raw == _ZERO) & starts_number & before_digit  # 01, but not the exponent in 1e-05
    return not bad.any()
