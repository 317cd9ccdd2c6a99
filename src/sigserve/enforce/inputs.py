"""Route decoded data to the column, tensor or schema-less path."""

from __future__ import annotations

from typing import Any

import numpy as np

from sigserve.codecs.base import ModelData, Raw, Table
from sigserve.enforce.columns import enforce_columns, frame_without_schema
from sigserve.enforce.tensors import enforce_tensors
from sigserve.model.schema import Schema


def enforce_input(data: ModelData, schema: Schema | None) -> Any:
    if isinstance(data, Raw):
        return data.value
    if schema is None:
        return _without_schema(data)
    if schema.is_tensor:
        return enforce_tensors(data, schema)
    if not isinstance(data, Table):
        raise TypeError("column-based signatures are enforced on tables; the decoder builds them")
    return enforce_columns(data, schema)


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
