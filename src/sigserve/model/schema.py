"""The signature vocabulary of an MLmodel file: column, tensor and param specs.

Parsed once at start-up into small frozen dataclasses so the request path only reads them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import orjson

from sigserve.errors import ModelLoadError


class DataType(enum.Enum):
    boolean = "boolean"
    integer = "integer"
    long = "long"
    float = "float"
    double = "double"
    string = "string"
    binary = "binary"
    datetime = "datetime"

    @property
    def numpy_dtype(self) -> np.dtype:
        return _NUMPY_DTYPES[self]

    def describe(self) -> str:
        return self.value


_NUMPY_DTYPES = {
    DataType.boolean: np.dtype(np.bool_),
    DataType.integer: np.dtype(np.int32),
    DataType.long: np.dtype(np.int64),
    DataType.float: np.dtype(np.float32),
    DataType.double: np.dtype(np.float64),
    DataType.string: np.dtype(object),
    DataType.binary: np.dtype(object),
    DataType.datetime: np.dtype("datetime64[ns]"),
}


@dataclass(frozen=True)
class ArrayType:
    items: "ValueType"

    def describe(self) -> str:
        return f"Array({self.items.describe()})"


@dataclass(frozen=True)
class Property:
    name: str
    type: "ValueType"
    required: bool = True


@dataclass(frozen=True)
class ObjectType:
    properties: tuple[Property, ...]

    def describe(self) -> str:
        inner = ", ".join(f"{p.name}: {p.type.describe()}" for p in self.properties)
        return f"Object({inner})"


@dataclass(frozen=True)
class MapType:
    values: "ValueType"

    def describe(self) -> str:
        return f"Map(str -> {self.values.describe()})"


@dataclass(frozen=True)
class AnyType:
    def describe(self) -> str:
        return "Any"


ValueType = Union[DataType, ArrayType, ObjectType, MapType, AnyType]


@dataclass(frozen=True)
class ColSpec:
    type: ValueType
    name: str | None = None
    required: bool = True

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.type, DataType)


@dataclass(frozen=True)
class TensorSpec:
    dtype: np.dtype
    shape: tuple[int, ...]
    name: str | None = None


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: DataType | ObjectType
    default: Any
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Schema:
    """An input schema: all column specs or all tensor specs, named or not."""

    inputs: tuple[ColSpec | TensorSpec, ...]
    is_tensor: bool = False

    @property
    def has_names(self) -> bool:
        return bool(self.inputs) and all(spec.name is not None for spec in self.inputs)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.inputs if spec.name is not None]

    @property
    def required_names(self) -> list[str]:
        return [s.name for s in self.inputs if s.name is not None and getattr(s, "required", True)]


@dataclass(frozen=True)
class Signature:
    inputs: Schema | None = None
    outputs: Schema | None = None
    params: tuple[ParamSpec, ...] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def parse_value_type(spec: dict[str, Any]) -> ValueType:
    kind = spec.get("type")
    if kind == "array":
        return ArrayType(parse_value_type(spec["items"]))
    if kind == "object":
        props = tuple(
            Property(name, parse_value_type(prop), bool(prop.get("required", True)))
            for name, prop in spec["properties"].items()
        )
        return ObjectType(props)
    if kind == "map":
        return MapType(parse_value_type(spec["values"]))
    if kind == "any":
        return AnyType()
    try:
        return DataType(kind)
    except ValueError:
        raise ModelLoadError(f"Unsupported signature type {kind!r} in {spec!r}") from None


def parse_schema(text: str | list | None) -> Schema | None:
    if text is None:
        return None
    specs = orjson.loads(text) if isinstance(text, str) else text
    if not specs:
        return None
    if all(spec.get("type") == "tensor" for spec in specs):
        tensors = tuple(
            TensorSpec(
                dtype=np.dtype(spec["tensor-spec"]["dtype"]),
                shape=tuple(int(d) for d in spec["tensor-spec"]["shape"]),
                name=spec.get("name"),
            )
            for spec in specs
        )
        return Schema(tensors, is_tensor=True)
    if any(spec.get("type") == "tensor" for spec in specs):
        raise ModelLoadError("A signature mixes tensor and column specs")
    columns = tuple(
        ColSpec(parse_value_type(spec), spec.get("name"), bool(spec.get("required", True)))
        for spec in specs
    )
    return Schema(columns)


def parse_params(text: str | list | None) -> tuple[ParamSpec, ...] | None:
    if text is None:
        return None
    specs = orjson.loads(text) if isinstance(text, str) else text
    params = []
    for spec in specs:
        shape = spec.get("shape")
        params.append(
            ParamSpec(
                name=spec["name"],
                type=parse_value_type(spec),
                default=spec.get("default"),
                shape=tuple(shape) if shape is not None else None,
            )
        )
    return tuple(params)


def parse_signature(raw: dict[str, Any] | None) -> Signature | None:
    if not raw:
        return None
    return Signature(
        inputs=parse_schema(raw.get("inputs")),
        outputs=parse_schema(raw.get("outputs")),
        params=parse_params(raw.get("params")),
        raw=dict(raw),
    )
