"""pyarrow tables (from CSV or Parquet) as typed Tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from sigserve.codecs.base import Table
from sigserve.codecs.tables import require_unique
from sigserve.errors import BadRequest


# A text value becomes a Python string (49 bytes of header besides its characters); the decode
# limits count that too, as it is what text costs once it reaches pandas.
PYTHON_STR_BYTES = 49


def python_text_bytes(array: pa.Array) -> int:
    """What a string or binary array's values add once they are Python objects; 0 for others."""
    kind = array.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        return 0
    data = array.buffers()[2]
    return (data.size if data is not None else 0) + PYTHON_STR_BYTES * (len(array) - array.null_count)


def arrow_table(table: pa.Table, unread: tuple[str, ...] = ()) -> Table:
    try:
        names = table.column_names
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Column names are not valid UTF-8: {exc}") from None
    require_unique(names, "the table")
    columns = {name: _column_values(column) for name, column in zip(names, table.columns)}
    return Table(columns, table.num_rows, typed=True, unread=unread)


def _column_values(column: pa.ChunkedArray) -> Any:
    """Plain numpy for null-free numbers and booleans (cheap); pandas for everything else."""
    kind = column.type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    if numeric and column.null_count == 0:
        return column.to_numpy()
    return column.to_pandas()
