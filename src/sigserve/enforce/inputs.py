"""Route decoded data to the column, tensor or schema-less path."""

from __future__ import annotations

from typing import Any

import numpy as np

from sigserve.codecs.base import ModelData, Table
from sigserve.codecs.tables import (
    object_column,
    table_from_column_dict,
    table_from_records,
    table_from_rows,
)
from sigserve.enforce.columns import enforce_columns, frame_without_schema
from sigserve.enforce.tensors import enforce_tensors
from sigserve.model.schema import ColSpec, Schema


def enforce_input(data: ModelData, schema: Schema | None) -> Any:
    if schema is not None and schema.is_tensor:
        return enforce_tensors(data, schema)
    if schema is None:
        return _without_schema(data)
    table = data if isinstance(data, Table) else nested_to_table(data.value, schema)
    return enforce_columns(table, schema)


def nested_to_table(value: Any, schema: Schema) -> Table:
    """`inputs`/`instances` for a column-based signature, read the way MLflow reads them."""
    what = "inputs"
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


def _without_schema(data: ModelData) -> Any:
    if isinstance(data, Table):
        return frame_without_schema(data)
    value = data.value
    if isinstance(value, dict):
        return {key: _array(item) for key, item in value.items()}
    return _array(value)


def _array(value: Any) -> np.ndarray:
    try:
        return np.array(value)
    except ValueError:
        return np.array(value, dtype=object)
