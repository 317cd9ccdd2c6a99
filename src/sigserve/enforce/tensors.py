"""Tensor-based signatures: build arrays of the spec dtype, then check rank and fixed dims."""

from __future__ import annotations

from typing import Any

import numpy as np

from sigserve.codecs.base import Nested, Table
from sigserve.enforce.values import Location, Target, convert_untyped
from sigserve.errors import SchemaError
from sigserve.model.schema import Schema, TensorSpec


def enforce_tensors(data: Table | Nested, schema: Schema) -> np.ndarray | dict[str, np.ndarray]:
    specs: list[TensorSpec] = list(schema.inputs)  # type: ignore[arg-type]
    if isinstance(data, Table):
        return _from_table(data, specs, schema.has_names)
    value = data.value
    if not schema.has_names:
        if isinstance(value, dict):
            raise SchemaError(
                "This model's signature has one unnamed tensor input: send a single "
                f"n-dimensional array, not an object with keys {list(value)}"
            )
        return to_tensor(value, specs[0], "Input")
    if not isinstance(value, dict):
        if len(specs) == 1:
            return {specs[0].name: to_tensor(value, specs[0], f"Input {specs[0].name!r}")}
        raise SchemaError(
            f"This model's signature has named tensor inputs {[s.name for s in specs]}: send an "
            "object mapping each name to an array"
        )
    _check_missing(value, specs)
    return {spec.name: to_tensor(value[spec.name], spec, f"Input {spec.name!r}") for spec in specs}


def _check_missing(present: Any, specs: list[TensorSpec]) -> None:
    missing = [spec.name for spec in specs if spec.name not in present]
    if missing:
        raise SchemaError(f"Model is missing inputs {missing}.", reason="missing_input")


def to_tensor(value: Any, spec: TensorSpec, what: str) -> np.ndarray:
    raw = value if isinstance(value, np.ndarray) and value.dtype != object else _object_array(value, what)
    if raw.dtype == object and _is_ragged(raw):
        return _ragged(raw, spec, what)
    array = raw
    if raw.dtype != spec.dtype:
        where = Location(what, raw.shape)
        array = convert_untyped(raw.ravel(), Target.of_tensor(spec.dtype), where).reshape(raw.shape)
    check_shape(array, spec, what)
    return array


def _object_array(value: Any, what: str) -> np.ndarray:
    try:
        return np.array(value, dtype=object)
    except ValueError as exc:
        raise SchemaError(f"{what}: not a rectangular array ({exc})", reason="shape") from None


def _is_ragged(raw: np.ndarray) -> bool:
    return raw.size > 0 and isinstance(raw.flat[0], (list, dict))


def _ragged(raw: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
    ragged_ok = (spec.shape == (-1,) and spec.dtype == object) or (
        len(spec.shape) > 1 and -1 in spec.shape[1:] and raw.ndim == 1
    )
    if not ragged_ok:
        raise SchemaError(
            f"{what}: nested lists have unequal lengths; expected shape {spec.shape}", reason="shape"
        )
    return raw


def check_shape(array: np.ndarray, spec: TensorSpec, what: str) -> None:
    if array.ndim != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, array.shape)
    ):
        raise SchemaError(
            f"{what}: shape {array.shape} does not match expected shape {spec.shape} "
            "(-1 means any size).",
            reason="shape",
        )


def _from_table(table: Table, specs: list[TensorSpec], named: bool) -> Any:
    if named:
        _check_missing(table.columns, specs)
        return {spec.name: _column_to_tensor(table.columns[spec.name], spec, f"Column {spec.name!r}") for spec in specs}
    if table.n_rows == 0:
        raise SchemaError("Input DataFrame is empty.")
    spec = specs[0]
    columns = list(table.columns.values())
    if len(columns) == 1:
        return _column_to_tensor(columns[0], spec, "Input")
    if spec.shape != (-1, len(columns)):
        raise SchemaError(
            f"This model has one unnamed tensor input of shape {spec.shape}; a table of "
            f"{len(columns)} columns must match shape (-1, {len(columns)})."
        )
    grid = np.empty((table.n_rows, len(columns)), dtype=object)
    for j, column in enumerate(columns):
        grid[:, j] = np.asarray(column, dtype=object)
    return to_tensor(grid, spec, "Input")


def _column_to_tensor(column: Any, spec: TensorSpec, what: str) -> np.ndarray:
    if spec.shape[:1] != (-1,) or -1 in spec.shape[1:]:
        raise SchemaError(
            f"{what}: a table column can only feed a tensor whose first dimension is -1 and "
            f"other dimensions are fixed; the signature's shape is {spec.shape}."
        )
    cells = np.asarray(column, dtype=object) if not isinstance(column, np.ndarray) else column
    if cells.dtype == object and len(cells) and isinstance(cells[0], (list, np.ndarray)):
        if len(cells[0]) and not np.isscalar(cells[0][0]):
            raise SchemaError(
                f"{what}: each cell must be a flat list of scalars, reshaped to {spec.shape}; "
                "nested lists are not accepted in a table column"
            )
        stacked = to_tensor(list(cells), TensorSpec(spec.dtype, (-1, -1), spec.name), what)
        try:
            array = stacked.reshape(spec.shape)
        except ValueError:
            raise SchemaError(
                f"{what}: the values could not be reshaped to {spec.shape}; each row must hold "
                "the same number of elements"
            ) from None
        if len(array) != len(cells):
            raise SchemaError(f"{what}: the values could not be reshaped to {spec.shape}")
        return array
    if spec.shape not in ((-1,), (-1, 1)):
        raise SchemaError(
            f"{what} holds scalar values, which need a tensor shape of (-1,) or (-1, 1); "
            f"the signature's shape is {spec.shape}."
        )
    array = to_tensor(cells, TensorSpec(spec.dtype, (-1,), spec.name), what)
    return array.reshape(spec.shape)

