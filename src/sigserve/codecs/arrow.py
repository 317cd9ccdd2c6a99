"""pyarrow tables (from CSV or Parquet) as typed Tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from sigserve.codecs.base import Table
from sigserve.codecs.tables import require_unique
from sigserve.errors import BadRequest


def arrow_table(table: pa.Table) -> Table:
    try:
        names = table.column_names
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Column names are not valid UTF-8: {exc}") from None
    require_unique(names, "the table")
    columns = {name: _column_values(column) for name, column in zip(names, table.columns)}
    return Table(columns, table.num_rows, typed=True)


def _column_values(column: pa.ChunkedArray) -> Any:
    """Plain numpy for null-free numbers and booleans (cheap); pandas for everything else."""
    kind = column.type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    if numeric and column.null_count == 0:
        return column.to_numpy()
    return column.to_pandas()
