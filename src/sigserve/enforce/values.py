"""Vectorized conversion of one column (or flattened tensor) to a signature type.

Two rules, chosen by where the values came from:
- untyped values (JSON, CSV text): converted when the conversion is exact; `1.0` fits an
  integer column, `1.5` does not. Base64 is decoded, ISO-8601 (with `Z` or an offset) parsed.
- typed values (Parquet): MLflow's safe-cast table, applied to the dtype, not the values.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from sigserve.errors import SchemaError
from sigserve.model.schema import DataType

_NUMERIC_KINDS = ("integer", "floating", "mixed-integer-float", "boolean", "empty", "integer-na")
_MISSING_VALUES_HINT = (
    " Hint: integer columns cannot hold missing values; declare the column as double "
    "if it may have missing values."
)


@dataclass(frozen=True)
class Target:
    """What a column must become: a numpy dtype plus the string/binary/datetime meaning."""

    dtype: np.dtype
    label: str
    semantic: str | None = None

    @classmethod
    def of(cls, data_type: DataType) -> Target:
        semantic = data_type.value if data_type in _SEMANTIC_TYPES else None
        return cls(data_type.numpy_dtype, data_type.value, semantic)

    @classmethod
    def of_tensor(cls, dtype: np.dtype) -> Target:
        semantic = "datetime" if dtype.kind == "M" else None
        return cls(dtype, str(dtype), semantic)


_SEMANTIC_TYPES = (DataType.string, DataType.binary, DataType.datetime)


def _fail(what: str, index: int | None, value: Any, expected: str, hint: str = "") -> SchemaError:
    where = f"{what}, row {index}" if index is not None else what
    value = value.item() if isinstance(value, np.generic) else value
    return SchemaError(f"{where}: value {value!r} cannot be converted to {expected}.{hint}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def convert_untyped(values: np.ndarray, target: Target, what: str) -> np.ndarray:
    """JSON-like values to the target type, exactly or not at all."""
    if target.semantic == "binary":
        return _to_binary(values, what)
    if target.semantic == "datetime" or target.dtype.kind == "M":
        return _to_datetime(values, what, target)
    if target.semantic == "string" or target.dtype.kind in "OUS":
        return _to_strings(values, target)
    numbers = _to_numbers(values, target, what)
    if target.dtype.kind == "b":
        return _to_bool(values, numbers, what)
    if target.dtype.kind in "iu":
        return _to_int(numbers, target, what)
    return _to_float(numbers, target, what)


def _to_strings(values: np.ndarray, target: Target) -> np.ndarray:
    if target.dtype.kind in "US":
        return values.astype(target.dtype)
    return values if values.dtype == object else values.astype(object)


def _to_numbers(values: np.ndarray, target: Target, what: str) -> np.ndarray:
    """Any numeric-looking input to an int64/float64/bool array (NaN for nulls)."""
    if values.dtype != object:
        return values
    kind = infer_dtype(values, skipna=True)
    if kind == "integer":
        try:
            return values.astype(np.int64)
        except OverflowError:
            too_big = np.array([abs(v) >= 2**63 for v in values])
            raise _fail(what, _first(too_big), values[_first(too_big)], target.label) from None
        except TypeError:
            return _parse_numbers(values, target, what)
    if kind == "boolean" and target.dtype.kind == "b":
        return values
    if kind in _NUMERIC_KINDS:
        try:
            return values.astype(np.float64)
        except (TypeError, ValueError):
            pass
    return _parse_numbers(values, target, what)


def _parse_numbers(values: np.ndarray, target: Target, what: str) -> np.ndarray:
    numbers = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and value != value):
            numbers[i] = np.nan
        elif isinstance(value, (bool, int, float, np.number)):
            numbers[i] = value
        elif isinstance(value, str):
            try:
                numbers[i] = float(value)
            except ValueError:
                raise _fail(what, i, value, target.label) from None
        else:
            raise _fail(what, i, value, target.label)
    return numbers


def _to_bool(values: np.ndarray, numbers: np.ndarray, what: str) -> np.ndarray:
    """Booleans (or 0/1); nulls stay None in an object column rather than becoming False."""
    if numbers.dtype.kind == "b":
        return numbers
    if numbers.dtype == object:
        nulls = pd.isna(numbers)
        return numbers if nulls.any() else numbers.astype(np.bool_)
    nulls = np.isnan(numbers) if numbers.dtype.kind == "f" else np.zeros(len(numbers), bool)
    bad = ~nulls & ~np.isin(numbers, (0, 1))
    if bad.any():
        index = _first(bad)
        raise _fail(what, index, values[index], "boolean (true/false)")
    if nulls.any():
        flags = numbers.astype(np.bool_).astype(object)
        flags[nulls] = None
        return flags
    return numbers.astype(np.bool_)


def _to_int(numbers: np.ndarray, target: Target, what: str) -> np.ndarray:
    info = np.iinfo(target.dtype)
    if numbers.dtype.kind == "f":
        nan = np.isnan(numbers)
        if nan.any():
            raise _fail(what, _first(nan), None, target.label, _MISSING_VALUES_HINT)
        bad = (numbers != np.floor(numbers)) | (numbers < info.min) | (numbers > info.max)
    elif numbers.dtype.kind in "iu":
        bad = (numbers < info.min) | (numbers > info.max)
    else:
        bad = np.zeros(len(numbers), bool)
    if bad.any():
        index = _first(bad)
        raise _fail(what, index, numbers[index].item(), target.label)
    return numbers.astype(target.dtype)


def _to_float(numbers: np.ndarray, target: Target, what: str) -> np.ndarray:
    if numbers.dtype.kind in "iu":
        limit = 2 ** (np.finfo(target.dtype).nmant + 1)
        bad = np.abs(numbers) > limit
        if bad.any():
            index = _first(bad)
            raise _fail(what, index, numbers[index].item(), f"{target.label} without rounding")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = numbers.astype(target.dtype)
    if target.dtype.itemsize < numbers.dtype.itemsize and numbers.dtype.kind == "f":
        overflow = np.isinf(converted) & np.isfinite(numbers)
        if overflow.any():
            index = _first(overflow)
            raise _fail(what, index, numbers[index].item(), f"{target.label} (out of range)")
    return converted


def _to_binary(values: np.ndarray, what: str) -> np.ndarray:
    decoded = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, (bytes, bytearray)):
            decoded[i] = bytes(value)
            continue
        if not isinstance(value, str):
            raise _fail(what, i, value, "binary (a base64 string)")
        try:
            decoded[i] = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(what, i, value, "binary (a base64 string)") from None
    return decoded


def _to_datetime(values: np.ndarray, what: str, target: Target) -> np.ndarray:
    if values.dtype.kind == "M":
        return _naive_ns(pd.Series(values)).to_numpy()
    if values.dtype != object or infer_dtype(values, skipna=True) not in ("string", "empty", "datetime"):
        bad = np.array([not (isinstance(v, str) or v is None or v != v) for v in values])
        index = _first(bad) if bad.any() else None
        raise _fail(what, index, values[index] if index is not None else values, "datetime (an ISO-8601 string)")
    try:
        parsed = pd.to_datetime(pd.Series(values), format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        for i, value in enumerate(values):
            try:
                pd.to_datetime(pd.Series([value]), format="ISO8601", utc=True)
            except (ValueError, TypeError, OverflowError):
                raise _fail(what, i, value, "datetime (an ISO-8601 string)") from None
        raise
    return _naive_ns(parsed).to_numpy()


def _naive_ns(series: pd.Series) -> pd.Series:
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.astype("datetime64[ns]")


def convert_typed(values: Any, data_type: DataType, what: str) -> Any:
    """MLflow's safe-cast table for typed columns (Parquet, CSV read with types)."""
    if isinstance(values, pd.Series):
        values = values.to_numpy() if not isinstance(values.dtype, pd.DatetimeTZDtype) else values
    target = Target.of(data_type)
    if isinstance(values, pd.Series) or values.dtype.kind == "M":
        if data_type is DataType.datetime:
            return _naive_ns(pd.Series(values)).to_numpy()
        raise _incompatible(what, values.dtype, target)
    if values.dtype == object:
        if data_type in (DataType.string, DataType.binary, DataType.datetime, DataType.boolean):
            return convert_untyped(values, target, what)
        inferred = pd.Series(values).infer_objects().to_numpy()
        if inferred.dtype == object:
            raise _incompatible(what, values.dtype, target)
        values = inferred
    wanted = target.dtype
    if values.dtype == wanted:
        return values
    if _is_safe_cast(values, wanted):
        return values.astype(wanted)
    hint = _MISSING_VALUES_HINT if values.dtype.kind == "f" and wanted.kind in "iu" and np.isnan(values).any() else ""
    raise _incompatible(what, values.dtype, target, hint)


def _is_safe_cast(values: np.ndarray, wanted: np.dtype) -> bool:
    have = values.dtype
    if have.kind == wanted.kind:
        return have.itemsize <= wanted.itemsize
    if have.kind == "u" and wanted.kind == "i":
        return have.itemsize < wanted.itemsize
    if have.kind in "iu" and wanted == np.float64 and have.itemsize <= 6:
        return True
    if have == np.int64 and wanted.kind == "f":
        return bool(np.isin(values, (0, 1)).all())
    return False


def _incompatible(what: str, have: Any, target: Target, hint: str = "") -> SchemaError:
    return SchemaError(
        f"{what}: incompatible input type {have}; cannot safely convert it to {target.label} "
        f"({target.dtype}).{hint}"
    )
