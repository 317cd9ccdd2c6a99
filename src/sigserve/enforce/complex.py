"""Array, Object, Map and Any column types: per-value checks, as their values are not scalars."""

from __future__ import annotations

from typing import Any

import numpy as np

from sigserve.codecs.tables import object_column
from sigserve.enforce.values import Target, convert_untyped
from sigserve.errors import SchemaError
from sigserve.model.schema import AnyType, ArrayType, DataType, MapType, ObjectType, ValueType


def enforce_value(value: Any, value_type: ValueType, required: bool, what: str) -> Any:
    if isinstance(value_type, AnyType):
        return value
    if not required and _is_empty(value):
        return value
    if isinstance(value_type, DataType):
        return _enforce_scalar(value, value_type, what)
    if isinstance(value_type, ArrayType):
        return _enforce_array(value, value_type, required, what)
    if isinstance(value_type, ObjectType):
        return _enforce_object(value, value_type, what)
    return _enforce_map(value, value_type, required, what)


def enforce_values(values: np.ndarray, value_type: ValueType, required: bool, what: str) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = enforce_value(value, value_type, required, f"{what}, row {i}")
    return out


def _is_empty(value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return True
    return isinstance(value, (list, dict, np.ndarray)) and len(value) == 0


def _enforce_scalar(value: Any, data_type: DataType, what: str) -> Any:
    if isinstance(value, (list, dict)):
        raise SchemaError(f"{what}: expected a {data_type.value} scalar, got {type(value).__name__}")
    return convert_untyped(object_column([value]), Target.of(data_type), what)[0]


def _enforce_array(value: Any, array: ArrayType, required: bool, what: str) -> Any:
    if isinstance(array.items, AnyType) and _is_empty(value):
        return value
    if not isinstance(value, (list, np.ndarray)):
        raise SchemaError(f"{what}: expected a list for {array.describe()}, got {type(value).__name__}")
    if isinstance(array.items, DataType):
        if len(value) == 0:
            return value
        if any(isinstance(item, (list, dict)) for item in value):
            raise SchemaError(f"{what}: expected {array.describe()}, found a nested value")
        converted = convert_untyped(object_column(list(value)), Target.of(array.items), what)
        return converted.tolist() if isinstance(value, list) and converted.dtype.kind != "M" else converted
    return [enforce_value(item, array.items, required, f"{what}[{i}]") for i, item in enumerate(value)]


def _enforce_object(value: Any, obj: ObjectType, what: str) -> Any:
    if not isinstance(value, dict):
        raise SchemaError(f"{what}: expected an object for {obj.describe()}, got {type(value).__name__}")
    properties = {prop.name: prop for prop in obj.properties}
    missing = sorted(name for name, prop in properties.items() if prop.required and name not in value)
    if missing:
        raise SchemaError(f"{what}: missing required properties {missing}")
    unknown = sorted(set(value) - set(properties))
    if unknown:
        raise SchemaError(f"{what}: properties not in the schema {unknown}")
    return {
        key: enforce_value(item, properties[key].type, properties[key].required, f"{what}.{key}")
        for key, item in value.items()
    }


def _enforce_map(value: Any, map_type: MapType, required: bool, what: str) -> Any:
    if isinstance(map_type.values, AnyType) and _is_empty(value):
        return value
    if not isinstance(value, dict):
        raise SchemaError(f"{what}: expected an object for {map_type.describe()}, got {type(value).__name__}")
    return {
        key: enforce_value(item, map_type.values, required, f"{what}[{key!r}]")
        for key, item in value.items()
    }
