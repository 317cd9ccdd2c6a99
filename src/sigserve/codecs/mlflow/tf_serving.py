"""TF Serving's `inputs`/`instances` data read as a table, for column-based signatures."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import Table
from sigserve.codecs.tables import (
    object_column,
    table_from_column_dict,
    table_from_records,
    table_from_rows,
)
from sigserve.model.schema import ColSpec, Schema


def nested_to_table(value: Any, schema: Schema, what: str) -> Table:
    """Column dicts, records, rows, or one column's values, the way MLflow reads them."""
    if isinstance(value, dict):
        if _is_single_row(value, schema):
            return table_from_column_dict({k: [v] for k, v in value.items()}, what)
        return table_from_column_dict(value, what)
    if isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            return table_from_records(value, what)
        if schema.has_names and len(schema.inputs) == 1:
            return Table({schema.names[0]: object_column(value)}, len(value))
        return table_from_rows(value, None, what)
    return table_from_rows([[value]], None, what)


def _is_single_row(value: dict[str, Any], schema: Schema) -> bool:
    """A list is a column of values, unless its column's type is itself a list type."""
    specs: dict[str, ColSpec] = {spec.name: spec for spec in schema.inputs}  # type: ignore[misc]
    for key, item in value.items():
        spec = specs.get(key)
        if isinstance(item, list) and (spec is None or spec.is_scalar):
            return False
    return True
