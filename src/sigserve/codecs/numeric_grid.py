"""A fast path for the common large request: `dataframe_split.data` made only of numbers.

orjson would build one Python object per cell. Instead the `data` array is cut out of the body
and read by pyarrow's CSV reader straight into typed columns (ints stay int64, so the exact
conversion rules still apply); the rest of the document is parsed by orjson as usual. Anything
unusual (strings, nulls, nested lists, ragged rows) falls back to the general path.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

MIN_DATA_BYTES = 128 * 1024
_DATA_ARRAY = re.compile(rb'"data"\s*:\s*(\[[\d\s.,eE+\-\[\]]*\])')
_ROW_BREAK = re.compile(rb"\],\[")
_WHITESPACE = b" \t\r\n"
_PLACEHOLDER = "\x1fsigserve-numeric-grid"
_READ = pacsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 22)


@dataclass(frozen=True)
class NumericGrid:
    columns: list[np.ndarray]
    n_rows: int


def parse_with_numeric_grid(body: bytes) -> Any | None:
    """The document with `dataframe_split.data` as a NumericGrid, or None to use the general path."""
    if len(body) < MIN_DATA_BYTES:
        return None
    match = _DATA_ARRAY.search(body)
    if match is None or match.end(1) - match.start(1) < MIN_DATA_BYTES:
        return None
    grid = _read_grid(match.group(1))
    if grid is None:
        return None
    envelope = body[: match.start(1)] + orjson.dumps(_PLACEHOLDER) + body[match.end(1) :]
    try:
        document = orjson.loads(envelope)
        split = document["dataframe_split"]
        if split["data"] != _PLACEHOLDER:
            return None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    split["data"] = grid
    return document


def _read_grid(array_text: bytes) -> NumericGrid | None:
    compact = array_text.translate(None, _WHITESPACE)
    if not (compact.startswith(b"[[") and compact.endswith(b"]]")):
        return None
    rows = _ROW_BREAK.sub(b"\n", compact[2:-2])
    if b"[" in rows or b"]" in rows:
        return None
    try:
        table = pacsv.read_csv(io.BytesIO(rows), read_options=_READ)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    columns = []
    for column in table.columns:
        if column.null_count or not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return None
        columns.append(column.to_numpy())
    return NumericGrid(columns, table.num_rows)
