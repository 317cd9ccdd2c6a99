"""Vectorized conversion of untyped values (JSON) to a signature type: exactly or not at all.

`1.0` and `1e17` fit a long column, `1.5` does not; `"true"`/`"false"` (any letter case) fit
a boolean column; base64 is decoded; ISO-8601 (with `Z` or an offset) is parsed, and only a null
is a missing datetime. Typed values (Parquet, CSV) follow `typed.py` instead.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from sigserve.errors import SchemaError
from sigserve.model.schema import DataType

MISSING_VALUES_HINT = (
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
        return cls(dtype, dtype.name, semantic)


_SEMANTIC_TYPES = (DataType.string, DataType.binary, DataType.datetime)
_RELATIVE_DATES = {"now", "today"}


@dataclass(frozen=True)
class Location:
    """Where a value sits, for error messages: a column's row, or a tensor's element."""

    label: str
    shape: tuple[int, ...] | None = None

    def at(self, index: int | None) -> str:
        if index is None:
            return self.label
        if self.shape is not None and len(self.shape) > 1:
            position = tuple(int(i) for i in np.unravel_index(index, self.shape))
            return f"{self.label}, element {position}"
        return f"{self.label}, row {index}"


Where = str | Location


def _fail(what: Where, index: int | None, value: Any, expected: str, hint: str = "") -> SchemaError:
    where = what.at(index) if isinstance(what, Location) else Location(what).at(index)
    value = value.item() if isinstance(value, np.generic) else value
    return SchemaError(f"{where}: value {value!r} cannot be converted to {expected}.{hint}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def convert_untyped(values: np.ndarray, target: Target, what: Where) -> np.ndarray:
    """JSON-like values to the target type, exactly or not at all."""
    if target.semantic == "binary":
        return _to_binary(values, what)
    if target.semantic == "datetime" or target.dtype.kind == "M":
        return _to_datetime(values, what, target)
    if target.semantic == "string" or target.dtype.kind in "OUS":
        return _to_strings(values, target, what)
    if target.dtype.kind == "b":
        return _to_bool(values, what)
    numbers = _vectorizable(values, target)
    if numbers is None:
        return _convert_each(values, target, what)
    if target.dtype.kind in "iu":
        return _to_int(numbers, values, target, what)
    return _to_float(numbers, values, target, what)


def convert_untyped_block(block: np.ndarray, target: Target) -> np.ndarray | None:
    """Several columns (rows x columns) of one numeric target at once, or None to convert them
    one by one: values the vector rules cannot take in one pass, and any refusal, whose message
    must name its column."""
    if target.semantic is not None or target.dtype.kind not in "iuf":
        return None
    values = block.ravel()
    numbers = _vectorizable(values, target)
    if numbers is None:
        return None
    try:
        if target.dtype.kind in "iu":
            converted = _to_int(numbers, values, target, "block")
        else:
            converted = _to_float(numbers, values, target, "block")
    except SchemaError:
        return None
    return converted.reshape(block.shape)


def _to_strings(values: np.ndarray, target: Target, what: Where) -> np.ndarray:
    if target.dtype.kind not in "US":
        return values if values.dtype == object else values.astype(object)
    nested = [i for i, value in enumerate(values) if isinstance(value, (list, dict))]
    if nested:
        raise _fail(what, nested[0], values[nested[0]], target.label)
    return values.astype(target.dtype)


def _exact_limit(target: Target) -> float:
    """Integers up to this magnitude survive a trip through the target's float type."""
    dtype = target.dtype if target.dtype.kind == "f" else np.dtype(np.float64)
    return float(2 ** (np.finfo(dtype).nmant + 1))


def _vectorizable(values: np.ndarray, target: Target) -> np.ndarray | None:
    """A typed array the vector rules can check exactly, or None to check value by value."""
    if values.dtype != object:
        return values
    kind = infer_dtype(values, skipna=True)
    if kind == "integer":
        try:
            return values.astype(np.int64)
        except (OverflowError, TypeError, ValueError):
            return None
    if kind in ("floating", "empty", "boolean"):
        return values.astype(np.float64)
    if kind in ("mixed-integer-float", "integer-na"):
        numbers = values.astype(np.float64)
        finite = numbers[np.isfinite(numbers)]
        if finite.size and np.abs(finite).max() >= _exact_limit(target):
            return None  # ints this large may have been rounded by the float view
        return numbers
    return None


# A float at or below -2**63 is refused even for int64, whose minimum it is: orjson (and pyarrow)
# hand integer literals just below -2**63 over as this float, so it may not be what was sent.
_FLOAT_INT_FLOOR = -(2.0**63)
_AMBIGUOUS_FLOAT_HINT = (
    " Hint: -2**63 written as a float is refused, because JSON integers just below -2**63 are read "
    "as exactly this float; send the integer -9223372036854775808 instead."
)


def _float_int_hint(value: Any, target: Target) -> str:
    """The hint for a refused integral float that is -2**63 itself, else none."""
    if isinstance(value, (float, np.floating)) and value == _FLOAT_INT_FLOOR and np.iinfo(target.dtype).min == -(2**63):
        return _AMBIGUOUS_FLOAT_HINT
    return ""


def _to_int(numbers: np.ndarray, values: np.ndarray, target: Target, what: Where) -> np.ndarray:
    """Integers in range; floats with no fractional part, of any magnitude, in range (`1e17` is
    exactly 100000000000000000): a double's integer value converts to int64 exactly."""
    info = np.iinfo(target.dtype)
    if numbers.dtype.kind == "f":
        nan = np.isnan(numbers)
        if nan.any():
            index = _first(nan)
            raise _fail(what, index, values[index], target.label, MISSING_VALUES_HINT)
        bad = (
            (numbers != np.floor(numbers))
            | (numbers < float(info.min))
            | (numbers >= float(info.max) + 1)  # float(2**63 - 1) + 1 is 2**63: refused
            | (numbers <= _FLOAT_INT_FLOOR)
        )
    elif numbers.dtype.kind in "iu":
        bad = (numbers < info.min) | (numbers > info.max)
    else:
        bad = np.zeros(len(numbers), bool)
    if bad.any():
        index = _first(bad)
        raise _fail(what, index, values[index], target.label, _float_int_hint(numbers[index], target))
    return numbers.astype(target.dtype)


def _to_float(numbers: np.ndarray, values: np.ndarray, target: Target, what: Where) -> np.ndarray:
    if numbers.dtype.kind in "iu":
        _check_ints_fit(numbers, values, target, what)
    with np.errstate(over="ignore", invalid="ignore"):
        converted = numbers.astype(target.dtype)
    if target.dtype.itemsize < numbers.dtype.itemsize and numbers.dtype.kind == "f":
        overflow = np.isinf(converted) & np.isfinite(numbers)
        if overflow.any():
            index = _first(overflow)
            raise _fail(what, index, values[index], f"{target.label} (out of range)")
    return converted


def _check_ints_fit(numbers: np.ndarray, values: np.ndarray, target: Target, what: Where) -> None:
    """Integers past the mantissa fit only when representable (2**40 fits float32, 2**24+1 not)."""
    limit = int(_exact_limit(target))
    large = (numbers > limit) | (numbers < -limit)
    if not large.any():
        return
    float64_exact = 2**53
    with np.errstate(over="ignore", invalid="ignore"):
        round_trip = numbers.astype(target.dtype).astype(np.float64)
    moderate = large & (numbers <= float64_exact) & (numbers >= -float64_exact)
    bad = moderate & (round_trip != numbers.astype(np.float64))
    for index in np.flatnonzero(large & ~moderate):  # beyond float64's mantissa: check exactly
        converted = target.dtype.type(int(numbers[index]))
        bad[index] = not np.isfinite(converted) or int(converted) != int(numbers[index])
    if bad.any():
        index = _first(bad)
        raise _fail(what, index, values[index], f"{target.label} without rounding")


def _convert_each(values: np.ndarray, target: Target, what: Where) -> np.ndarray:
    """The exact rule one value at a time: mixed types, number strings, very large integers."""
    out = np.empty(len(values), dtype=target.dtype)
    for i, value in enumerate(values):
        try:
            out[i] = _exact_number(value, target)
        except _Refused as refused:
            raise _fail(what, i, value, refused.expected, refused.hint) from None
    return out


class _Refused(Exception):
    def __init__(self, expected: str, hint: str = "") -> None:
        self.expected = expected
        self.hint = hint


def _exact_number(value: Any, target: Target) -> int | float:
    is_int_target = target.dtype.kind in "iu"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        value = int(value)
    elif isinstance(value, str):
        value = _parse_number(value, target)
    elif value is None:
        value = float("nan")
    elif not isinstance(value, (int, float)):
        raise _Refused(target.label)
    if is_int_target:
        return _exact_int(value, target)
    return _exact_float(value, target)


def _parse_number(text: str, target: Target) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise _Refused(target.label) from None
    if np.isinf(number) and "inf" not in text.lower():
        raise _Refused(f"{target.label} (out of range)")
    return number


def _exact_int(value: int | float, target: Target) -> int:
    info = np.iinfo(target.dtype)
    if isinstance(value, float):
        if value != value:
            raise _Refused(target.label, MISSING_VALUES_HINT)
        if not value.is_integer():
            raise _Refused(target.label)
        if value <= _FLOAT_INT_FLOOR:
            raise _Refused(target.label, _float_int_hint(value, target))
        value = int(value)  # exact: a finite double with no fraction is an integer
    if not info.min <= value <= info.max:
        raise _Refused(f"{target.label} (out of range)")
    return value


def _exact_float(value: int | float, target: Target) -> float:
    try:
        converted = target.dtype.type(value)
    except OverflowError:
        raise _Refused(f"{target.label} (out of range)") from None
    if isinstance(value, int) and (not np.isfinite(converted) or int(converted) != value):
        raise _Refused(f"{target.label} without rounding")
    if np.isinf(converted) and not (isinstance(value, float) and np.isinf(value)):
        raise _Refused(f"{target.label} (out of range)")
    return float(converted)


def _case_variants(word: str) -> list[str]:
    return ["".join(letters) for letters in itertools.product(*((c.lower(), c.upper()) for c in word))]


# "true" and "false" in any letter case, as JSON spells them; not "yes", "1", "t" or " true".
BOOLEAN_WORDS: dict[str, bool] = {
    **{word: True for word in _case_variants("true")},
    **{word: False for word in _case_variants("false")},
}
_WORD_INDEX = pd.Index(list(BOOLEAN_WORDS), dtype=object)
_WORD_FLAGS = np.array(list(BOOLEAN_WORDS.values()), dtype=np.bool_)


def _to_bool(values: np.ndarray, what: Where) -> np.ndarray:
    """Booleans, 0/1 or the strings "true"/"false" (any case); nulls stay None in an object
    column rather than becoming False."""
    if values.dtype.kind == "b":
        return values
    if values.dtype.kind in "US":
        values = values.astype(object)
    if values.dtype == object:
        kind = infer_dtype(values, skipna=True)
        if kind == "boolean":
            return values if pd.isna(values).any() else values.astype(np.bool_)
        if kind == "string":
            return _bools_from_words(values, what)
        if kind not in ("integer", "floating", "empty", "mixed-integer-float", "integer-na"):
            return _bools_each(values, what)
        numbers = values.astype(np.float64)
    else:
        numbers = values
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


def _bools_from_words(values: np.ndarray, what: Where) -> np.ndarray:
    """Strings (and nulls) by one hash lookup each, in C: no per-row Python."""
    positions = _WORD_INDEX.get_indexer(values)
    found = positions >= 0
    nulls = ~found & pd.isna(values)
    bad = ~found & ~nulls
    if bad.any():
        index = _first(bad)
        raise _fail(what, index, values[index], "boolean (true/false)")
    flags = _WORD_FLAGS[positions]
    if nulls.any():
        flags = flags.astype(object)
        flags[nulls] = None
    return flags


def _bools_each(values: np.ndarray, what: Where) -> np.ndarray:
    flags = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and value != value):
            flags[i] = None
        elif isinstance(value, (bool, np.bool_, int, float, np.number)) and value in (0, 1):
            flags[i] = bool(value)
        elif isinstance(value, str) and value in BOOLEAN_WORDS:
            flags[i] = BOOLEAN_WORDS[value]
        else:
            raise _fail(what, i, value, "boolean (true/false)")
    return flags if any(flag is None for flag in flags) else flags.astype(np.bool_)


# Line breaks (MIME base64, as MLflow's `base64.encodebytes` writes it) and surrounding blanks are
# ignored; a blank inside is refused: "YW Jj" may be "YW+Jj" after a form decoder turned + into a space.
_LINE_BREAKS = str.maketrans("", "", "\r\n")


def _to_binary(values: np.ndarray, what: Where) -> np.ndarray:
    decoded = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, (bytes, bytearray)):
            decoded[i] = bytes(value)
            continue
        if not isinstance(value, str):
            raise _fail(what, i, value, "binary (a base64 string)")
        try:
            decoded[i] = base64.b64decode(value.strip().translate(_LINE_BREAKS), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(what, i, value, "binary (a base64 string)") from None
    return decoded


def _to_datetime(values: np.ndarray, what: Where, target: Target) -> np.ndarray:
    if values.dtype.kind == "M":
        return _with_precision(naive_ns(pd.Series(values), what).to_numpy(), target, what, values)
    if values.dtype != object or infer_dtype(values, skipna=True) not in ("string", "empty", "datetime"):
        bad = np.array([not (isinstance(v, str) or v is None or v != v) for v in values])
        index = _first(bad) if bad.any() else None
        raise _fail(what, index, values[index] if index is not None else values, "datetime (an ISO-8601 string)")
    relative = [i for i, value in enumerate(values) if isinstance(value, str) and value.strip().lower() in _RELATIVE_DATES]
    if relative:
        raise _fail(what, relative[0], values[relative[0]], "datetime (an ISO-8601 string)")
    _refuse_leading_blanks(values, what)
    try:
        parsed = pd.to_datetime(pd.Series(values), format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        for i, value in enumerate(values):
            try:
                pd.to_datetime(pd.Series([value]), format="ISO8601", utc=True)
            except (ValueError, TypeError, OverflowError):
                raise _fail(what, i, value, "datetime (an ISO-8601 string)") from None
        raise
    _refuse_text_read_as_missing(parsed, values, what)
    return _with_precision(naive_ns(parsed, what, values).to_numpy(), target, what, values)


def _refuse_leading_blanks(values: np.ndarray, what: Where) -> None:
    """pandas' ISO-8601 parser skips leading blanks (" 2020-01-01"); ISO-8601 has none. One C
    pass over each value's first character (a trailing blank pandas refuses itself)."""
    blank = np.char.isspace(values.astype("U1"))
    if blank.any():
        index = _first(blank)
        raise _fail(what, index, values[index], "datetime (an ISO-8601 string)")


def _refuse_text_read_as_missing(parsed: pd.Series, values: np.ndarray, what: Where) -> None:
    """pandas reads "", "NaT" and "nan" as missing; only a JSON null is a missing datetime."""
    missing = np.asarray(parsed.array.isna())  # the array's own mask: a Series' isna() costs 20 µs
    if not missing.any():
        return
    for index in np.flatnonzero(missing).tolist():
        if isinstance(values[index], str):
            raise _fail(what, index, values[index], "datetime (an ISO-8601 string; null for a missing one)")


def _with_precision(stamps: np.ndarray, target: Target, what: Where, originals: np.ndarray) -> np.ndarray:
    """Columns take any precision as nanoseconds; a tensor's unit must hold the value exactly."""
    if target.dtype != stamps.dtype:
        coarse = stamps.astype(target.dtype)
        lost = (coarse.astype(stamps.dtype) != stamps) & ~np.isnat(stamps)
        if lost.any():
            index = _first(lost)
            raise _fail(what, index, originals[index], f"{target.label} without losing precision")
        return coarse
    return stamps


def naive_ns(series: pd.Series, what: Where = "datetime", originals: Any = None) -> pd.Series:
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return series.astype("datetime64[ns]")
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        bad = (series < pd.Timestamp.min) | (series > pd.Timestamp.max)
        index = _first(bad.to_numpy()) if bad.any() else None
        value = None if index is None else originals[index] if originals is not None else str(series.iloc[index])
        raise _fail(what, index, str(value), f"datetime (between {pd.Timestamp.min} and {pd.Timestamp.max})") from None
