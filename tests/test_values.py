"""One focused test per cast rule of the enforce stage.

Untyped values (JSON) convert only when exact; typed values (Parquet) follow MLflow's safe-cast
table on the dtype. Errors name the column, the row and the offending value. Also params, tensors
and the Content-Type rules.

"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigserve.codecs.mlflow import Nested, Table, decode
from sigserve.codecs.tables import object_column, table_from_records, table_from_rows
from sigserve.enforce import enforce_input, enforce_params
from sigserve.enforce.columns import build_frame, convert_column, enforce_columns
from sigserve.enforce.values import Target, convert_untyped
from sigserve.errors import (
    BadRequest,
    InvalidParameter,
    SchemaError,
    SigserveError,
    UnsupportedMediaType,
)
from sigserve.model.schema import DataType, ParamSpec, Schema, parse_schema

COL = "col_a"
JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


# --------------------------------------------------------------------------- helpers


def column_schema(kind: str, name: str = COL) -> Schema:
    schema = parse_schema(json.dumps([{"type": kind, "name": name, "required": True}]))
    assert schema is not None
    return schema


def tensor_schema(dtype: str, shape: list[int], name: str | None = None) -> Schema:
    spec: dict[str, Any] = {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}
    if name is not None:
        spec["name"] = name
    schema = parse_schema(json.dumps([spec]))
    assert schema is not None
    return schema


def json_column(kind: str, values: list[Any]) -> pd.Series:
    """One column sent as `dataframe_split` JSON, decoded and enforced."""
    schema = column_schema(kind)
    body = json.dumps({"dataframe_split": {"columns": [COL], "data": [[v] for v in values]}})
    decoded = decode(JSON, body.encode(), schema)
    assert isinstance(decoded.data, Table) and not decoded.data.typed
    frame = enforce_input(decoded.data, schema)
    assert list(frame.columns) == [COL]
    return frame[COL]


def json_error(kind: str, values: list[Any]) -> str:
    with pytest.raises(SchemaError) as info:
        json_column(kind, values)
    return info.value.message


def parquet_column(kind: str, series: pd.Series) -> pd.Series:
    """One column written by `DataFrame.to_parquet`, decoded (typed) and enforced."""
    schema = column_schema(kind)
    buffer = io.BytesIO()
    pd.DataFrame({COL: series}).to_parquet(buffer, index=False)
    decoded = decode(PARQUET, buffer.getvalue(), schema)
    assert isinstance(decoded.data, Table) and decoded.data.typed
    frame = enforce_input(decoded.data, schema)
    return frame[COL]


def parquet_error(kind: str, series: pd.Series) -> str:
    with pytest.raises(SchemaError) as info:
        parquet_column(kind, series)
    return info.value.message


def csv_column(kind: str, text: str) -> pd.Series:
    schema = column_schema(kind)
    decoded = decode(CSV, text.encode(), schema)
    return enforce_input(decoded.data, schema)[COL]


def assert_long_exact(values: list[Any], exact: list[Any]) -> None:
    """The documented rule: integers (or number strings) in int64's range fit a `long` column
    exactly, whatever else shares the column; neither refused nor rounded through a float."""
    column = json_column("long", values)
    assert column.dtype == np.int64
    assert column.tolist() == exact


def assert_names(message: str, row: int, value: str) -> None:
    """An untyped-conversion error names the column, the row index and the offending value."""
    assert repr(COL) in message, message
    assert f"row {row}" in message, message
    assert value in message, message


# --------------------------------------------------------------------------- untyped: accepted

UNTYPED_ACCEPTED = [
    # id, signature type, JSON values, expected dtype, expected values
    ("long-ints", "long", [1, -2, 3], np.int64, [1, -2, 3]),
    ("long-int64-bounds", "long", [2**63 - 1, -(2**63)], np.int64, [2**63 - 1, -(2**63)]),
    ("long-integral-floats", "long", [1.0, -2.0, 0.0], np.int64, [1, -2, 0]),
    ("long-numeric-strings", "long", ["3", "-4"], np.int64, [3, -4]),
    ("long-integral-float-string", "long", ["3.0"], np.int64, [3]),
    ("integer-int32-bounds", "integer", [1, 2**31 - 1, -(2**31)], np.int32, [1, 2**31 - 1, -(2**31)]),
    ("integer-integral-floats", "integer", [7.0], np.int32, [7]),
    ("float-ints-up-to-2**24", "float", [1, 2**24, -(2**24)], np.float32, [1.0, 2.0**24, -(2.0**24)]),
    ("float-floats", "float", [1.5, -0.25], np.float32, [1.5, -0.25]),
    ("float-numeric-string", "float", ["2.25"], np.float32, [2.25]),
    ("double-ints-up-to-2**53", "double", [1, 2**53, -(2**53)], np.float64, [1.0, 2.0**53, -(2.0**53)]),
    ("double-floats", "double", [0.1, 1e300, -5e-324], np.float64, [0.1, 1e300, -5e-324]),
    ("double-numeric-strings", "double", ["1e3", "-0.5"], np.float64, [1000.0, -0.5]),
    ("boolean-true-false", "boolean", [True, False, True], np.bool_, [True, False, True]),
    ("boolean-0-1", "boolean", [0, 1, 1], np.bool_, [False, True, True]),
    ("boolean-words-any-case", "boolean", ["true", "false", "TRUE", "False", "tRuE", "fAlSe"], np.bool_,
     [True, False, True, False, True, False]),
    ("boolean-words-beside-booleans-and-0-1", "boolean", [True, "false", 0, "TRUE", 1], np.bool_,
     [True, False, False, True, True]),
    ("long-integral-floats-past-2**53", "long", [1e17, -1e17, 2.0**53, 2.0**62], np.int64,
     [10**17, -(10**17), 2**53, 2**62]),
    ("long-integral-floats-past-2**53-beside-ints", "long", [1, 1e17], np.int64, [1, 10**17]),
    ("long-integral-float-strings-past-2**53", "long", ["1e17", "-2.5e17"], np.int64, [10**17, -25 * 10**16]),
    ("binary-base64", "binary", ["aGVsbG8=", ""], object, [b"hello", b""]),
    ("binary-base64-newlines", "binary", ["aGVs\nbG8=\n", " aGk= "], object, [b"hello", b"hi"]),
]


@pytest.mark.parametrize(
    "kind, values, dtype, expected",
    [case[1:] for case in UNTYPED_ACCEPTED],
    ids=[case[0] for case in UNTYPED_ACCEPTED],
)
def test_untyped_accepted(kind: str, values: list[Any], dtype: Any, expected: list[Any]) -> None:
    column = json_column(kind, values)
    assert column.dtype == np.dtype(dtype)
    assert column.tolist() == expected
    for value, want in zip(column.tolist(), expected):
        assert type(value) is type(want)


def test_untyped_string_passes_through() -> None:
    column = json_column("string", ["a", "b c", "1"])
    assert pd.api.types.is_string_dtype(column.dtype)
    assert column.tolist() == ["a", "b c", "1"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05"),
        ("2024-01-02T03:04:05+02:00", "2024-01-02T01:04:05"),
        ("2024-01-02T23:30:00-05:00", "2024-01-03T04:30:00"),
        ("2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05.123456789"),
        ("2024-01-02T03:04:05", "2024-01-02T03:04:05"),
        ("2024-01-02", "2024-01-02T00:00:00"),
    ],
)
def test_untyped_datetime_iso8601_to_naive_utc(text: str, expected: str) -> None:
    column = json_column("datetime", [text])
    assert column.dtype == np.dtype("datetime64[ns]")
    assert column.dt.tz is None
    assert column.iloc[0] == pd.Timestamp(expected)


def test_untyped_datetime_mixed_offsets_in_one_column() -> None:
    column = json_column("datetime", ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05+02:00"])
    assert column.dtype == np.dtype("datetime64[ns]")
    assert column.tolist() == [pd.Timestamp("2024-01-02T03:04:05"), pd.Timestamp("2024-01-02T01:04:05")]


# --------------------------------------------------------------------------- untyped: refused

UNTYPED_REFUSED = [
    # id, signature type, JSON values, offending row, text naming the offending value
    ("long-fraction", "long", [1, 2, 1.5], 2, "1.5"),
    ("long-fraction-string", "long", [1, 2, "3.5"], 2, "3.5"),
    ("long-non-numeric-string", "long", [1, "abc"], 1, "'abc'"),
    ("long-above-int64", "long", [1, 2**63], 1, str(2**63)),
    ("long-object", "long", [1, {"a": 1}], 1, "{'a': 1}"),
    ("integer-above-int32", "integer", [1, 2**31], 1, str(2**31)),
    ("integer-below-int32", "integer", [0, -(2**31) - 1], 1, str(-(2**31) - 1)),
    ("integer-fraction", "integer", [0.5], 0, "0.5"),
    ("float-int-above-2**24", "float", [1, 2**24 + 1], 1, str(2**24 + 1)),
    ("float-int-below-minus-2**24", "float", [0, 0, -(2**24 + 1)], 2, str(-(2**24 + 1))),
    ("float-out-of-range", "float", [1.0, 1e39], 1, "1e+39"),
    ("double-int-above-2**53", "double", [1, 2**53 + 1], 1, str(2**53 + 1)),
    ("double-non-numeric-string", "double", [1.5, "x"], 1, "'x'"),
    ("boolean-2", "boolean", [True, 2], 1, "2"),
    ("boolean-fraction", "boolean", [0, 0.5], 1, "0.5"),
    ("boolean-word", "boolean", [True, "yes"], 1, "'yes'"),
    ("binary-not-base64", "binary", ["aGVsbG8=", "not base64!"], 1, "'not base64!'"),
    ("binary-missing-padding", "binary", ["aGVsbG8"], 0, "'aGVsbG8'"),
    ("binary-not-a-string", "binary", ["aGk=", 1], 1, "1"),
    ("datetime-not-iso", "datetime", ["2024-01-01", "nope"], 1, "'nope'"),
    ("datetime-number", "datetime", ["2024-01-01", 5], 1, "5"),
]


@pytest.mark.parametrize(
    "kind, values, row, shown",
    [case[1:] for case in UNTYPED_REFUSED],
    ids=[case[0] for case in UNTYPED_REFUSED],
)
def test_untyped_refused_names_column_row_value(kind: str, values: list[Any], row: int, shown: str) -> None:
    message = json_error(kind, values)
    assert_names(message, row, shown)
    assert kind in message


def test_untyped_error_names_the_right_column_of_several() -> None:
    schema = parse_schema(json.dumps([
        {"type": "long", "name": "first", "required": True},
        {"type": "double", "name": "second", "required": True},
    ]))
    body = json.dumps({"dataframe_split": {"columns": ["first", "second"], "data": [[1, 1.5], [2, "bad"]]}})
    decoded = decode(JSON, body.encode(), schema)
    with pytest.raises(SchemaError) as info:
        enforce_input(decoded.data, schema)
    assert "'second'" in info.value.message and "'first'" not in info.value.message
    assert "row 1" in info.value.message and "'bad'" in info.value.message


# --------------------------------------------------------------------------- untyped: nulls


def test_null_is_nan_in_double_column() -> None:
    column = json_column("double", [1.5, None, 2.0])
    assert column.dtype == np.float64
    assert column.iloc[0] == 1.5 and math.isnan(column.iloc[1]) and column.iloc[2] == 2.0


def test_null_is_nan_in_float_column() -> None:
    column = json_column("float", [None, 1.0])
    assert column.dtype == np.float32
    assert math.isnan(column.iloc[0]) and column.iloc[1] == 1.0


@pytest.mark.parametrize("kind", ["long", "integer"])
def test_null_refused_in_integer_column_with_hint(kind: str) -> None:
    message = json_error(kind, [1, 2, None])
    assert_names(message, 2, "None")
    assert "missing values" in message


def test_null_kept_as_none_in_boolean_column() -> None:
    column = json_column("boolean", [True, None, False])
    assert column.tolist() == [True, None, False]
    assert column.iloc[1] is None  # not coerced to False


def test_null_kept_in_string_column() -> None:
    values = convert_untyped(object_column(["a", None]), Target.of(DataType.string), "c")
    assert values.tolist() == ["a", None]
    column = json_column("string", ["a", None, "b"])
    assert column.iloc[0] == "a" and column.iloc[2] == "b"
    assert pd.isna(column.iloc[1])  # missing, not the text "None" or ""


def test_null_is_nat_in_datetime_column() -> None:
    column = json_column("datetime", [None, "2024-01-01T00:00:00Z"])
    assert column.dtype == np.dtype("datetime64[ns]")
    assert pd.isna(column.iloc[0]) and column.iloc[1] == pd.Timestamp("2024-01-01")


# --------------------------------------------------------------------------- untyped: known bugs


def test_long_column_mixed_with_floats_keeps_big_ints_exact() -> None:
    assert_long_exact([2**53 + 1, 1.0], [2**53 + 1, 1])


def test_float_column_mixed_with_floats_refuses_inexact_int() -> None:
    message = json_error("float", [1.5, 2**24 + 1])
    assert_names(message, 1, str(2**24 + 1))


def test_double_column_mixed_with_floats_refuses_inexact_int() -> None:
    message = json_error("double", [1.5, 2**53 + 1])
    assert_names(message, 1, str(2**53 + 1))


def test_long_numeric_string_keeps_big_ints_exact() -> None:
    assert_long_exact([str(2**53 + 1)], [2**53 + 1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_long_max_mixed_with_float_does_not_wrap() -> None:
    assert_long_exact([2**63 - 1, 1.0], [2**63 - 1, 1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_long_max_as_string_does_not_wrap() -> None:
    assert_long_exact([str(2**63 - 1)], [2**63 - 1])


def test_long_below_int64_min_refused() -> None:
    """orjson reads an integer below -2**63 as a float, so the message shows the float."""
    message = json_error("long", [0, -(2**63) - 1])
    assert_names(message, 1, repr(float(-(2**63) - 1)))


@pytest.mark.parametrize("text", ["1500-01-01T00:00:00Z", "2262-04-12T00:00:00", "9999-12-31"])
def test_datetime_outside_ns_range_json_refused(text: str) -> None:
    message = json_error("datetime", ["2024-01-01", text])
    assert_names(message, 1, repr(text))


def test_long_takes_integral_floats_strictly_between_minus_and_plus_2_63() -> None:
    """A double with no fraction is an integer, converted exactly, at any magnitude in range.
    2**63 is past int64; -2**63 written as a float is refused too, because orjson reads JSON
    integers just below -2**63 as exactly that float."""
    below = 2.0**63 - 1024  # the largest double below 2**63
    assert json_column("long", [below, -below]).tolist() == [2**63 - 1024, -(2**63 - 1024)]
    assert json_column("long", [-(2**63)]).tolist() == [-(2**63)]  # the integer fits
    assert_names(json_error("long", [1.0, 2.0**63]), 1, "9.223372036854776e+18")
    for values in ([1.0, -(2.0**63)], [1, -(2.0**63)], [1, "-9223372036854775808.0"]):  # vector, per value, text
        message = json_error("long", values)
        assert_names(message, 1, "-9.223372036854776e+18" if isinstance(values[1], float) else values[1])
        assert "-9223372036854775808 instead" in message, message
    assert_names(json_error("long", [0, 1e19]), 1, "1e+19")
    assert json_column("integer", [2147483647.0, -2147483648.0]).tolist() == [2**31 - 1, -(2**31)]
    assert_names(json_error("integer", [0.0, 1e17]), 1, "1e+17")
    assert_names(json_error("long", [1e17, 1e17 + 0.5, 2.5]), 2, "2.5")


def test_boolean_takes_exactly_the_words_true_and_false_in_any_case() -> None:
    column = json_column("boolean", ["true", None, "FALSE"])
    assert column.tolist() == [True, None, False] and column.iloc[1] is None
    for word in ["yes", "no", "1", "0", "t", "f", "", " true", "false ", "truee", "None", "null"]:
        assert_names(json_error("boolean", ["false", word]), 1, repr(word))  # all strings: vectorized
        assert_names(json_error("boolean", [True, word]), 1, repr(word))  # mixed: value by value


def test_long_nan_string_error_names_the_value() -> None:
    message = json_error("long", [1, "nan"])
    assert_names(message, 1, "'nan'")


# --------------------------------------------------------------------------- typed (Parquet)

TYPED_ACCEPTED = [
    # id, source dtype, values, signature type, expected dtype, expected values
    ("int32->long", "int32", [1, -2], "long", np.int64, [1, -2]),
    ("int64->long", "int64", [2**40, -1], "long", np.int64, [2**40, -1]),
    ("int8->long", "int8", [1, -2], "long", np.int64, [1, -2]),
    ("int16->long", "int16", [1, -2], "long", np.int64, [1, -2]),
    ("uint32->long", "uint32", [1, 2**32 - 1], "long", np.int64, [1, 2**32 - 1]),
    ("int16->integer", "int16", [1, -2], "integer", np.int32, [1, -2]),
    ("int32->integer", "int32", [1, -2], "integer", np.int32, [1, -2]),
    ("int8->double", "int8", [1, -2], "double", np.float64, [1.0, -2.0]),
    ("int16->double", "int16", [1, -2], "double", np.float64, [1.0, -2.0]),
    ("int32->double", "int32", [1, -2], "double", np.float64, [1.0, -2.0]),
    ("int64-0/1->double", "int64", [0, 1, 1], "double", np.float64, [0.0, 1.0, 1.0]),
    ("int64-0/1->float", "int64", [0, 1, 1], "float", np.float32, [0.0, 1.0, 1.0]),
    ("float32->double", "float32", [1.5, -0.25], "double", np.float64, [1.5, -0.25]),
    ("float32->float", "float32", [1.5, -0.25], "float", np.float32, [1.5, -0.25]),
    ("float64->double", "float64", [0.1, float("nan")], "double", np.float64, [0.1, float("nan")]),
    ("bool->boolean", "bool", [True, False], "boolean", np.bool_, [True, False]),
]


@pytest.mark.parametrize(
    "source, values, kind, dtype, expected",
    [case[1:] for case in TYPED_ACCEPTED],
    ids=[case[0] for case in TYPED_ACCEPTED],
)
def test_typed_accepted(source: str, values: list[Any], kind: str, dtype: Any, expected: list[Any]) -> None:
    column = parquet_column(kind, pd.Series(values, dtype=source))
    assert column.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(column.to_numpy(), np.array(expected, dtype=dtype))


TYPED_REFUSED = [
    # id, source dtype, values, signature type
    ("int64->double", "int64", [0, 2], "double"),
    ("int64->float", "int64", [0, 2], "float"),
    ("int64->integer", "int64", [1, 2], "integer"),
    ("int32->float", "int32", [1, 2], "float"),
    ("uint64->long", "uint64", [1, 2], "long"),
    ("float64->float", "float64", [1.5, 2.5], "float"),
    ("float64->long", "float64", [1.0, 2.0], "long"),
    ("float32->long", "float32", [1.0, 2.0], "long"),
    ("float64->integer", "float64", [1.0], "integer"),
    ("bool->double", "bool", [True, False], "double"),
    ("int64->boolean", "int64", [0, 1], "boolean"),
]


@pytest.mark.parametrize(
    "source, values, kind",
    [case[1:] for case in TYPED_REFUSED],
    ids=[case[0] for case in TYPED_REFUSED],
)
def test_typed_refused_names_column_and_types(source: str, values: list[Any], kind: str) -> None:
    message = parquet_error(kind, pd.Series(values, dtype=source))
    assert repr(COL) in message
    assert source in message
    assert kind in message


def test_typed_float_with_nan_to_long_refused_with_missing_values_hint() -> None:
    message = parquet_error("long", pd.Series([1.0, float("nan")], dtype="float64"))
    assert repr(COL) in message and "float64" in message
    assert "missing values" in message


def test_typed_nullable_int_with_null_to_long_refused_with_hint() -> None:
    message = parquet_error("long", pd.Series([1, None], dtype="Int64"))
    assert repr(COL) in message and "missing values" in message


def test_typed_string_to_string() -> None:
    column = parquet_column("string", pd.Series(["a", "b"], dtype="str"))
    assert pd.api.types.is_string_dtype(column.dtype)
    assert column.tolist() == ["a", "b"]


def test_typed_string_to_long_refused() -> None:
    message = parquet_error("long", pd.Series(["1", "2"], dtype="str"))
    assert repr(COL) in message and "long" in message


@pytest.mark.parametrize(
    "series",
    [
        pd.Series(pd.to_datetime(["2024-01-02T03:04:05Z"])),
        pd.Series(pd.to_datetime(["2024-01-02T05:04:05+02:00"])),
        pd.Series(pd.to_datetime(["2024-01-02T03:04:05"])).astype("datetime64[ms]"),
    ],
    ids=["utc", "offset", "naive-ms"],
)
def test_typed_datetime_any_precision_to_naive_utc_ns(series: pd.Series) -> None:
    column = parquet_column("datetime", series)
    assert column.dtype == np.dtype("datetime64[ns]")
    assert column.tolist() == [pd.Timestamp("2024-01-02T03:04:05")]


def test_datetime_outside_ns_range_parquet_refused() -> None:
    series = pd.Series([dt.datetime(2024, 1, 1), dt.datetime(1500, 1, 1)], dtype="datetime64[us]")
    message = parquet_error("datetime", series)
    assert repr(COL) in message


def test_typed_binary_bytes_pass() -> None:
    column = parquet_column("binary", pd.Series([b"\x00\x01", b"hi"], dtype=object))
    assert column.tolist() == [b"\x00\x01", b"hi"]


# --------------------------------------------------------------------------- CSV (typed by the signature)


def test_csv_long_and_double_columns() -> None:
    schema = parse_schema(json.dumps([
        {"type": "long", "name": "a", "required": True},
        {"type": "double", "name": "b", "required": True},
    ]))
    decoded = decode(CSV, b"a,b\n1,0.1\n-2,3\n", schema)
    frame = enforce_input(decoded.data, schema)
    assert frame["a"].dtype == np.int64 and frame["a"].tolist() == [1, -2]
    assert frame["b"].dtype == np.float64 and frame["b"].tolist() == [0.1, 3.0]


def test_csv_long_column_with_empty_cell_refused_with_hint() -> None:
    schema = parse_schema(json.dumps([
        {"type": "long", "name": "a", "required": True},
        {"type": "long", "name": "b", "required": True},
    ]))
    decoded = decode(CSV, b"a,b\n1,2\n3,\n", schema)
    with pytest.raises(SchemaError) as info:
        enforce_input(decoded.data, schema)
    assert "'b'" in info.value.message and "missing values" in info.value.message


def test_csv_fraction_in_long_column_refused() -> None:
    with pytest.raises(SigserveError) as info:
        csv_column("long", "col_a\n1\n1.5\n")
    assert "1.5" in info.value.message


def test_csv_conversion_error_names_column_and_row() -> None:
    with pytest.raises(SigserveError) as info:
        csv_column("long", "col_a\n1\n1.5\n")
    assert_names(info.value.message, 1, "1.5")


def test_csv_decimal_text_rounds_to_the_nearest_float32() -> None:
    """CSV numbers are decimal text, read by pyarrow straight into the column's float type,
    as MLflow's `read_csv(dtype=float32)` does: like `"1.1"`, `"16777217"` takes the nearest
    float32. (JSON integers, by contrast, must fit a float column exactly.)"""
    values = csv_column("float", "col_a\n1\n16777217\n")
    assert values.dtype == np.float32
    assert values.tolist() == [1.0, 16777216.0]


def test_csv_boolean_words_in_any_case_and_0_1() -> None:
    """The JSON rule's words, as pandas' reader (MLflow's) takes them, plus 1/0."""
    values = csv_column("boolean", "col_a\ntrue\nFALSE\ntRuE\nfAlse\n1\n0\n")
    assert values.dtype == np.bool_
    assert values.tolist() == [True, False, True, False, True, False]
    with pytest.raises(SigserveError) as info:
        csv_column("boolean", "col_a\ntrue\nyes\n")
    assert_names(info.value.message, 1, "yes")


def test_csv_long_column_takes_integral_floats_past_2_53_and_keeps_integers_exact() -> None:
    """As in JSON: `1e17` fits; an integer written out stays exact even beside a `2.0`, which
    makes pyarrow read its column as doubles; 2**63 and -2**63 as floats are refused."""
    assert csv_column("long", "col_a\n1e17\n2.0\n").tolist() == [10**17, 2]
    assert csv_column("long", "col_a\n2.0\n9007199254740993\n-9223372036854775808\n").tolist() == [
        2, 2**53 + 1, -(2**63)]
    for text, shown in [("1\n9.223372036854776e18", "9.223372036854776e18"),
                        ("2.0\n-9223372036854775809", "-9223372036854775809"),
                        ("2.0\n-9.223372036854776e18", "-9.223372036854776e18")]:
        with pytest.raises(SigserveError) as info:
            csv_column("long", f"col_a\n{text}\n")
        assert_names(info.value.message, 1, shown)


# --------------------------------------------------------------------------- nested values, V2


NESTED_SCHEMA = parse_schema(json.dumps([
    {"type": "array", "items": {"type": "boolean"}, "name": "flags", "required": True},
    {"type": "object", "name": "obj", "required": True, "properties": {
        "on": {"type": "boolean", "required": True}, "n": {"type": "long", "required": True}}},
    {"type": "map", "values": {"type": "boolean"}, "name": "switches", "required": True},
    {"type": "array", "items": {"type": "long"}, "name": "ids", "required": True},
]))


def _nested_row(**override: Any) -> pd.Series:
    record = {"flags": [True], "obj": {"on": True, "n": 1}, "switches": {"k": True}, "ids": [1], **override}
    decoded = decode(JSON, json.dumps({"dataframe_records": [record]}).encode(), NESTED_SCHEMA)
    return enforce_input(decoded.data, NESTED_SCHEMA).iloc[0]


def test_nested_values_take_boolean_words_and_integral_floats_for_longs() -> None:
    row = _nested_row(flags=["true", False, "FALSE"], obj={"on": "false", "n": 1e17},
                      switches={"k": "True"}, ids=[1e17, 2])
    assert [bool(flag) for flag in row["flags"]] == [True, False, False]
    assert row["obj"] == {"on": False, "n": 10**17} and type(row["obj"]["n"]) is not float
    assert row["switches"] == {"k": True}
    assert list(row["ids"]) == [10**17, 2]
    for override, shown in [({"flags": [True, "yes"]}, "'yes'"), ({"obj": {"on": "no", "n": 1}}, "'no'"),
                            ({"ids": [1, 2.0**63]}, "9.223372036854776e+18")]:
        with pytest.raises(SchemaError) as info:
            _nested_row(**override)
        assert shown in info.value.message and repr(next(iter(override))) in info.value.message


def test_v2_bytes_words_fit_a_boolean_column_and_fp64_integral_floats_a_long_one() -> None:
    from sigserve.codecs.v2.decode import decode_v2

    schema = parse_schema(json.dumps([
        {"type": "boolean", "name": "b", "required": True}, {"type": "long", "name": "l", "required": True},
    ]))
    body = {"inputs": [
        {"name": "b", "shape": [3], "datatype": "BYTES", "data": ["true", "FALSE", "false"]},
        {"name": "l", "shape": [3], "datatype": "FP64", "data": [1e17, 2.0, -1e17]},
    ]}
    frame = enforce_input(decode_v2(json.dumps(body).encode(), schema).decoded.data, schema)
    assert frame["b"].tolist() == [True, False, False] and frame["b"].dtype == np.bool_
    assert frame["l"].tolist() == [10**17, 2, -(10**17)] and frame["l"].dtype == np.int64
    body["inputs"][0]["data"] = ["true", "yes", "false"]
    with pytest.raises(SchemaError) as info:
        enforce_input(decode_v2(json.dumps(body).encode(), schema).decoded.data, schema)
    assert "'b'" in info.value.message and "row 1" in info.value.message and "'yes'" in info.value.message


# --------------------------------------------------------------------------- params

PARAMS = (
    ParamSpec("k", DataType.long, 5),
    ParamSpec("temperature", DataType.double, 0.5),
    ParamSpec("ids", DataType.long, [1], (-1,)),
    ParamSpec("name", DataType.string, "a"),
    ParamSpec("flag", DataType.boolean, False),
)
DEFAULTS = {"k": 5, "temperature": 0.5, "ids": [1], "name": "a", "flag": False}


@pytest.mark.parametrize("params", [None, {}])
def test_params_defaults_filled(params: Any) -> None:
    assert enforce_params(params, PARAMS) == DEFAULTS


def test_params_given_values_override_defaults() -> None:
    result = enforce_params({"k": 3, "name": "z", "flag": True}, PARAMS)
    assert result == {**DEFAULTS, "k": 3, "name": "z", "flag": True}


def test_params_int_accepted_for_double() -> None:
    result = enforce_params({"temperature": 1}, PARAMS)
    assert result["temperature"] == 1.0 and isinstance(result["temperature"], float)


@pytest.mark.parametrize(
    "name, value",
    [("k", True), ("k", "3"), ("k", 1.5), ("temperature", "0.5"), ("flag", 1), ("name", 1)],
    ids=["bool-for-long", "str-for-long", "float-for-long", "str-for-double", "int-for-boolean", "int-for-string"],
)
def test_params_wrong_type_refused(name: str, value: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        enforce_params({name: value}, PARAMS)
    assert repr(name) in info.value.message
    assert repr(value) in info.value.message
    assert info.value.status_code == 400 and info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_params_list_for_shape_minus_one() -> None:
    assert enforce_params({"ids": [3, 4, 5]}, PARAMS)["ids"] == [3, 4, 5]


@pytest.mark.parametrize("value", [3, [1, "x"], [[1, 2]]], ids=["scalar", "bad-item", "nested"])
def test_params_shape_minus_one_needs_flat_list_of_type(value: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        enforce_params({"ids": value}, PARAMS)
    assert "'ids'" in info.value.message


def test_params_unknown_keys_ignored() -> None:
    assert enforce_params({"unknown": 1, "k": 2}, PARAMS) == {**DEFAULTS, "k": 2}


@pytest.mark.parametrize("params", [[1, 2], "k=1", 3], ids=["list", "str", "int"])
def test_params_non_dict_refused(params: Any) -> None:
    with pytest.raises(InvalidParameter):
        enforce_params(params, PARAMS)


def test_params_all_problems_reported_together() -> None:
    with pytest.raises(InvalidParameter) as info:
        enforce_params({"k": "x", "temperature": "y"}, PARAMS)
    assert "'k'" in info.value.message and "'temperature'" in info.value.message


def test_params_without_params_schema_are_dropped() -> None:
    assert enforce_params({"a": 1}, None) == {}
    assert enforce_params(None, None) is None


# --------------------------------------------------------------------------- tensors


@pytest.mark.parametrize("value", [[1.0, 2.0], [[[1.0, 2.0]]]], ids=["rank-1", "rank-3"])
def test_tensor_rank_mismatch(value: Any) -> None:
    with pytest.raises(SchemaError) as info:
        enforce_input(Nested(value), tensor_schema("float32", [-1, 2]))
    assert "shape" in info.value.message and "(-1, 2)" in info.value.message


def test_tensor_fixed_dim_mismatch() -> None:
    with pytest.raises(SchemaError) as info:
        enforce_input(Nested([[1.0, 2.0, 3.0]]), tensor_schema("float32", [-1, 2]))
    assert "(1, 3)" in info.value.message and "(-1, 2)" in info.value.message


@pytest.mark.parametrize("rows", [0, 1, 7])
def test_tensor_minus_one_dims_take_any_size(rows: int) -> None:
    value = [[[float(i)] * 3 for _ in range(2)] for i in range(rows)]
    if rows == 0:
        result = enforce_input(Nested(np.zeros((0, 2, 3), dtype=np.float64)), tensor_schema("float64", [-1, -1, 3]))
    else:
        result = enforce_input(Nested(value), tensor_schema("float64", [-1, -1, 3]))
    assert result.shape == (rows, 2, 3) and result.dtype == np.float64


def test_tensor_json_ints_cast_to_float32() -> None:
    result = enforce_input(Nested([[1, 2], [3, -4]]), tensor_schema("float32", [-1, 2]))
    assert result.dtype == np.float32
    assert result.tolist() == [[1.0, 2.0], [3.0, -4.0]]


def test_tensor_int_above_2_24_refused_for_float32() -> None:
    with pytest.raises(SchemaError) as info:
        enforce_input(Nested([[1, 2**24 + 1]]), tensor_schema("float32", [-1, 2]))
    assert str(2**24 + 1) in info.value.message


def test_tensor_fraction_refused_for_int64() -> None:
    with pytest.raises(SchemaError) as info:
        enforce_input(Nested([1, 2, 1.5]), tensor_schema("int64", [-1]))
    assert "1.5" in info.value.message and "int64" in info.value.message


def test_tensor_integral_floats_accepted_for_int64() -> None:
    result = enforce_input(Nested([1.0, 2.0]), tensor_schema("int64", [-1]))
    assert result.dtype == np.int64 and result.tolist() == [1, 2]


def test_tensor_boolean_words_and_int64_integral_floats_past_2_53() -> None:
    flags = enforce_input(Nested([["true", "False"], [True, 0]]), tensor_schema("bool", [-1, 2]))
    assert flags.dtype == np.bool_ and flags.tolist() == [[True, False], [True, False]]
    longs = enforce_input(Nested([1e17, 2]), tensor_schema("int64", [-1]))
    assert longs.dtype == np.int64 and longs.tolist() == [10**17, 2]
    with pytest.raises(SchemaError) as info:
        enforce_input(Nested([["true", "yes"]]), tensor_schema("bool", [-1, 2]))
    assert "'yes'" in info.value.message and "(0, 1)" in info.value.message


def test_datetime_outside_ns_range_tensor_refused() -> None:
    with pytest.raises(SchemaError) as info:
        enforce_input(Nested(["2024-01-01", "1500-01-01"]), tensor_schema("datetime64[ns]", [-1]))
    assert "row 1" in info.value.message and "'1500-01-01'" in info.value.message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_uint64_tensor_max_mixed_with_float_does_not_wrap() -> None:
    """The documented exact rule for tensors: both values fit uint64, neither through a float."""
    result = enforce_input(Nested([2**64 - 1, 1.0]), tensor_schema("uint64", [-1]))
    assert result.dtype == np.uint64 and result.tolist() == [2**64 - 1, 1]


def test_tensor_error_position_is_not_flat_index() -> None:
    with pytest.raises(SchemaError) as info:
        enforce_input(Nested([[1, 2], [3, 1.5]]), tensor_schema("int64", [-1, 2]))
    assert "1.5" in info.value.message
    assert "row 3" not in info.value.message


def test_tensor_named_inputs_missing_and_shape() -> None:
    schema = parse_schema(json.dumps([
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}, "name": "a"},
        {"type": "tensor", "tensor-spec": {"dtype": "int32", "shape": [-1]}, "name": "b"},
    ]))
    result = enforce_input(Nested({"a": [[1, 2]], "b": [1, 2, 3]}), schema)
    assert result["a"].dtype == np.float64 and result["a"].shape == (1, 2)
    assert result["b"].dtype == np.int32 and result["b"].tolist() == [1, 2, 3]
    with pytest.raises(SchemaError, match=r"missing inputs \['b'\]"):
        enforce_input(Nested({"a": [[1, 2]]}), schema)
    with pytest.raises(SchemaError, match="'a'"):
        enforce_input(Nested({"a": [[1, 2, 3]], "b": [1]}), schema)


# --------------------------------------------------------------------------- content type

SPLIT_BODY = b'{"dataframe_split": {"columns": ["x"], "data": [[1]]}}'


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=latin-1",
        "application/json; charset=ISO-8859-1",
        "text/csv; charset=utf-16",
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        None,
        "",
        "application/json; foo=bar",
        "text/csv; header=present",
        "application/json; format=bogus",
        "text/csv; format=pandas-split",
        "application/vnd.apache.parquet; format=pandas-split",
        "text/csv; format=pandas-records",
    ],
)
def test_content_type_415(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        decode(content_type, SPLIT_BODY, None)
    assert info.value.status_code == 415


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8", "Application/JSON"],
)
def test_content_type_json_accepted(content_type: str) -> None:
    decoded = decode(content_type, SPLIT_BODY, None)
    assert decoded.format == "dataframe_split"


def test_content_type_pandas_split_for_json() -> None:
    decoded = decode("application/json; format=pandas-split", b'{"columns": ["x"], "data": [[1], [2]]}', None)
    assert decoded.format == "pandas-split"
    assert isinstance(decoded.data, Table) and decoded.data.n_rows == 2


def test_plain_json_bare_split_is_a_split_frame() -> None:
    """MLflow 1.x read a bare `{"columns", "data"[, "index"]}` object as a split frame; nothing
    else bare is read without `format=`."""
    schema = column_schema("long")
    for body in ({"columns": [COL], "data": [[1], [2]]}, {"index": [5, 6], "data": [[1], [2]], "columns": [COL]}):
        decoded = decode(JSON, json.dumps(body).encode(), schema)
        assert decoded.format == "pandas-split" and decoded.params is None
        assert enforce_input(decoded.data, schema)[COL].tolist() == [1, 2]
    refused = [
        [{COL: 1}],  # a bare records list needs format=pandas-records
        {"data": [[1]]},
        {"columns": [COL]},
        {"columns": [COL], "data": [[1]], "params": {}},
        {"columns": [COL], "data": [[1]], "extra": 1},
        {"columns": [COL], "data": [[1]], "inputs": [[1]], "instances": [[1]]},
    ]
    for body in refused:
        with pytest.raises(BadRequest):
            decode(JSON, json.dumps(body).encode(), schema)
    with pytest.raises(BadRequest, match="index"):  # still checked as a split frame
        decode(JSON, json.dumps({"columns": [COL], "data": [[1]], "index": [1, 2]}).encode(), schema)


def test_plain_json_large_bare_split_takes_the_numeric_fast_path() -> None:
    from sigserve.codecs import numeric_grid

    schema = parse_schema(json.dumps([
        {"type": "double", "name": "a", "required": True}, {"type": "long", "name": "b", "required": True},
    ]))
    body = json.dumps({"columns": ["a", "b"], "data": [[1.5, 2], [2.5, 1e17]] * 10000}).encode()
    assert numeric_grid.parse_with_numeric_grid(body) is not None
    decoded = decode(JSON, body, schema)
    assert decoded.format == "pandas-split"
    frame = enforce_input(decoded.data, schema)
    assert frame["b"].dtype == np.int64 and frame["b"].tolist()[:2] == [2, 10**17] and len(frame) == 20000


def test_large_split_keeps_integers_past_2_53_exact_beside_floats() -> None:
    """A big integer literal next to a float in its column is read as a double by the numeric
    fast path, so the fast path steps aside: the answer is the small body's."""
    schema = parse_schema(json.dumps([
        {"type": "double", "name": "a", "required": True}, {"type": "long", "name": "b", "required": True},
    ]))
    padding = [[1.5, 2]] * 20000
    for tail in ([[1.5, 9007199254740993], [1.5, 1e17]], [[1.5, -9223372036854775808], [1.5, 2.0]]):
        body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": padding + tail}}).encode()
        frame = enforce_input(decode(JSON, body, schema).data, schema)
        assert frame["b"].tolist()[-2:] == [int(v) for _, v in tail]
    for tail, shown in [([[9007199254740993, 1], [2.5, 1]], str(2**53 + 1)),
                        ([[1.5, -9223372036854775809], [1.5, 2.0]], "-9.223372036854776e+18")]:
        body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": padding + tail}}).encode()
        with pytest.raises(SchemaError) as info:
            enforce_input(decode(JSON, body, schema).data, schema)
        assert "row 20000" in info.value.message and shown in info.value.message


def test_content_type_pandas_records_for_json() -> None:
    decoded = decode("application/json; format=pandas-records", b'[{"x": 1}, {"x": 2}]', None)
    assert decoded.format == "pandas-records"
    assert isinstance(decoded.data, Table) and decoded.data.n_rows == 2


def test_invalid_json_is_bad_request() -> None:
    with pytest.raises(BadRequest) as info:
        decode(JSON, b"{not json", None)
    assert info.value.status_code == 400


def test_csv_integer_column_takes_integral_floats_and_names_the_first_bad_row() -> None:
    assert csv_column("long", "col_a\n2.0\n-3\n").tolist() == [2, -3]
    with pytest.raises(SigserveError) as info:
        csv_column("integer", "col_a\n1.0\n3000000000\n")
    assert "row 1" in info.value.message and "3000000000" in info.value.message


# --------------------------------------------------------------------------- block conversion

_CELLS = st.one_of(
    st.integers(-(2**62), 2**62),
    st.integers(-(2**25), 2**25),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e6, 1e6).map(lambda x: float(round(x))),
    st.booleans(),
    st.none(),
    st.sampled_from(["1", "2.5", "x"]),
)


def _column_by_column(table: Table, schema: Schema) -> pd.DataFrame | str:
    try:
        columns = {
            spec.name: convert_column(table.columns[spec.name], spec, False, f"Column {spec.name!r}")
            for spec in schema.inputs
        }
    except SchemaError as exc:
        return exc.message
    return build_frame(columns, table.n_rows)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["double", "float", "long", "integer"]),
    rows=st.integers(1, 6).flatmap(lambda n: st.lists(st.lists(_CELLS, min_size=n, max_size=n), min_size=2, max_size=4)),
)
def test_columns_of_one_type_convert_as_a_block_exactly_as_one_by_one(kind: str, rows: list[list[Any]]) -> None:
    """The block path is only a shortcut: same values, same dtypes, and the same first refusal."""
    names = [f"c{i}" for i in range(len(rows))]
    schema = parse_schema(json.dumps([{"type": kind, "name": name} for name in names]))
    table = Table({name: object_column(values) for name, values in zip(names, rows)}, len(rows[0]))
    expected = _column_by_column(table, schema)
    try:
        got: pd.DataFrame | str = enforce_columns(table, schema)
    except SchemaError as exc:
        got = exc.message
    if isinstance(expected, str):
        assert got == expected
    else:
        assert isinstance(got, pd.DataFrame)
        pd.testing.assert_frame_equal(got, expected)


# --------------------------------------------------------------------------- rows to columns

_ANY_CELL = st.one_of(_CELLS, st.lists(st.integers(0, 9), max_size=3), st.dictionaries(st.sampled_from("ab"), st.integers()))


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(_ANY_CELL, min_size=n, max_size=n), min_size=1, max_size=5)))
def test_rows_become_columns_cell_for_cell(rows: list[list[Any]]) -> None:
    """Lists and objects stay whole cells: no row of equal-length lists turns into a 3-D grid."""
    table = table_from_rows(rows, None, "data")
    assert table.n_rows == len(rows)
    for j, column in table.columns.items():
        assert column.dtype == object and column.shape == (len(rows),)
        assert all(cell is row[j] for cell, row in zip(column, rows))


@pytest.mark.parametrize(("rows", "message"), [
    ([[1, 2], [3]], "data: row 1 has 1 values, expected 2"),
    ([[1, 2], "ab"], "data: row 1 is a string, expected a list of 2 values"),
    ([[1, 2], {"a": 1, "b": 2}], "data: row 1 is an object, expected a list of 2 values"),
    ([[1, 2], None], "data: row 1 is null, expected a list of 2 values"),
])
def test_a_row_that_does_not_fit_is_named(rows: list[Any], message: str) -> None:
    with pytest.raises(BadRequest) as info:
        table_from_rows(rows, None, "data")
    assert info.value.message == message


def test_a_record_that_is_not_an_object_is_named() -> None:
    with pytest.raises(BadRequest) as info:
        table_from_records([{"a": 1}, "a"], "dataframe_records")
    assert info.value.message == "dataframe_records: record 1 is a string, expected an object"
