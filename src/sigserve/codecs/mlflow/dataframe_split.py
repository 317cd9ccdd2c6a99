"""`dataframe_split`: `{"columns": [...], "data": [[...], ...], "index": [...]}`."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import ModelData, Table
from sigserve.codecs.numeric_grid import NumericGrid
from sigserve.codecs.tables import require_unique, table_from_rows
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

_KEYS = {"columns", "data", "index"}


class DataframeSplitDecoder:
    field = "dataframe_split"

    def decode(self, value: Any, schema: Schema | None) -> ModelData:
        if not isinstance(value, dict):
            kind = "list" if isinstance(value, list) else type(value).__name__
            raise BadRequest(f"Dataframe split format must be a dictionary. Got {kind}.")
        if "data" not in value or set(value) - _KEYS:
            raise BadRequest(
                "Dataframe split format must have a 'data' field and optionally 'columns' "
                f"and 'index' fields. Got {sorted(value)}."
            )
        columns = value.get("columns")
        if columns is not None and (
            not isinstance(columns, list) or not all(isinstance(c, (str, int, float)) for c in columns)
        ):
            raise BadRequest(f"dataframe_split.columns must be a list of names, got {columns!r}")
        data = value["data"]
        if isinstance(data, NumericGrid):
            table = table_from_grid(data, columns)
        else:
            table = table_from_rows(data, columns, "dataframe_split.data")
        index = value.get("index")
        if index is not None and (not isinstance(index, list) or len(index) != table.n_rows):
            raise BadRequest(
                f"dataframe_split.index has {len(index) if isinstance(index, list) else 'no'} "
                f"entries for {table.n_rows} rows"
            )
        return table


def table_from_grid(grid: NumericGrid, columns: list[Any] | None) -> Table:
    names = list(range(len(grid.columns))) if columns is None else columns
    if len(names) != len(grid.columns):
        raise BadRequest(
            f"dataframe_split: {len(names)} column names for rows of {len(grid.columns)} values"
        )
    require_unique(names, "dataframe_split")
    return Table(dict(zip(names, grid.columns)), grid.n_rows)
