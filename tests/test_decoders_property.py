"""Property tests: every payload format decodes and enforces to the same DataFrame.

A random frame (long, double, string and boolean columns) and its MLflow-style signature are
encoded as dataframe_split, dataframe_records, instances, inputs, CSV and Parquet; each decoded
and enforced result must equal the one from dataframe_split (same columns, dtypes and values,
doubles compared exactly), which must itself equal the original frame.

Also: junk bodies never raise anything but a SigserveError.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigserve.codecs import decode
from sigserve.enforce import enforce_input, enforce_params
from sigserve.errors import SigserveError
from sigserve.model.schema import Schema, parse_params, parse_schema

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"

KINDS = ("long", "double", "string", "boolean")
PANDAS_DTYPES = {"long": "int64", "double": "float64", "string": "str", "boolean": "bool"}
# No 'n'/'N'/'#'/'/': pyarrow's CSV reader turns "nan", "NA", "null", "None", "#N/A"... into nulls,
# as pandas.read_csv does. Strings are non-empty: CSV cannot tell "" from a null either.
STRING_ALPHABET = "abcdefxyzABCXYZ0123456789 ,.;:'\"-_+é"

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALUES = {
    "long": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "double": st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(alphabet=STRING_ALPHABET, min_size=1, max_size=12),
    "boolean": st.booleans(),
}


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, Schema]:
    names = draw(
        st.lists(
            st.text(alphabet="abcxyz_", min_size=1, max_size=6),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    kinds = [draw(st.sampled_from(KINDS)) for _ in names]
    n_rows = draw(st.integers(min_value=1, max_value=30))
    data = {
        name: pd.Series(
            draw(st.lists(VALUES[kind], min_size=n_rows, max_size=n_rows)),
            dtype=PANDAS_DTYPES[kind],
        )
        for name, kind in zip(names, kinds)
    }
    frame = pd.DataFrame(data)
    signature = [{"type": kind, "name": name, "required": True} for name, kind in zip(names, kinds)]
    schema = parse_schema(json.dumps(signature))
    assert schema is not None
    return frame, schema


def python_columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Plain Python scalars (never numpy ones), so json.dumps writes every value exactly."""
    return {name: frame[name].tolist() for name in frame.columns}


def python_rows(frame: pd.DataFrame) -> list[list[Any]]:
    columns = python_columns(frame)
    return [list(row) for row in zip(*columns.values())]


def python_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(frame.columns, row)) for row in python_rows(frame)]


def json_body(document: Any) -> tuple[str, bytes]:
    return JSON, json.dumps(document, allow_nan=False).encode()


def encode(frame: pd.DataFrame, fmt: str) -> tuple[str, bytes]:
    if fmt == "dataframe_split":
        return json_body({"dataframe_split": {"columns": list(frame.columns), "data": python_rows(frame)}})
    if fmt == "dataframe_records":
        return json_body({"dataframe_records": python_records(frame)})
    if fmt == "instances":
        return json_body({"instances": python_records(frame)})
    if fmt == "inputs":
        return json_body({"inputs": python_columns(frame)})
    if fmt == "csv":
        return CSV, frame.to_csv(index=False).encode()
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return PARQUET, buffer.getvalue()
    raise AssertionError(fmt)


FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs", "csv", "parquet")


def decode_and_enforce(frame: pd.DataFrame, schema: Schema, fmt: str) -> pd.DataFrame:
    content_type, body = encode(frame, fmt)
    decoded = decode(content_type, body, schema)
    result = enforce_input(decoded.data, schema)
    assert isinstance(result, pd.DataFrame)
    return result


def assert_same_frame(actual: pd.DataFrame, expected: pd.DataFrame, fmt: str) -> None:
    assert list(actual.columns) == list(expected.columns), fmt
    assert list(actual.dtypes) == list(expected.dtypes), (fmt, actual.dtypes, expected.dtypes)
    pd.testing.assert_frame_equal(actual, expected, check_exact=True, obj=fmt)


@PROPERTY_SETTINGS
@given(frames())
def test_dataframe_split_round_trips_the_frame(case: tuple[pd.DataFrame, Schema]) -> None:
    frame, schema = case
    enforced = decode_and_enforce(frame, schema, "dataframe_split")
    assert_same_frame(enforced, frame, "dataframe_split")
    for name in frame.columns:
        expected = PANDAS_DTYPES[next(s.type.value for s in schema.inputs if s.name == name)]
        if expected == "str":
            assert pd.api.types.is_string_dtype(enforced[name].dtype)
        else:
            assert enforced[name].dtype == np.dtype(expected)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "dataframe_split"])
@PROPERTY_SETTINGS
@given(case=frames())
def test_every_format_matches_dataframe_split(fmt: str, case: tuple[pd.DataFrame, Schema]) -> None:
    frame, schema = case
    expected = decode_and_enforce(frame, schema, "dataframe_split")
    actual = decode_and_enforce(frame, schema, fmt)
    assert_same_frame(actual, expected, fmt)


@PROPERTY_SETTINGS
@given(case=frames(), data=st.data())
def test_column_order_follows_the_signature(case: tuple[pd.DataFrame, Schema], data: st.DataObject) -> None:
    """Columns sent in any order come back in signature order, for every format."""
    frame, schema = case
    shuffled = frame[data.draw(st.permutations(list(frame.columns)))]
    expected = decode_and_enforce(frame, schema, "dataframe_split")
    fmt = data.draw(st.sampled_from(FORMATS))
    assert_same_frame(decode_and_enforce(shuffled, schema, fmt), expected, fmt)


# --------------------------------------------------------------------------- junk never escapes

JUNK_SCHEMAS = [
    None,
    parse_schema(json.dumps([
        {"type": "long", "name": "a", "required": True},
        {"type": "double", "name": "b", "required": True},
        {"type": "string", "name": "c", "required": False},
        {"type": "boolean", "name": "d", "required": True},
    ])),
    parse_schema(json.dumps([
        {"type": "binary", "name": "a", "required": True},
        {"type": "datetime", "name": "b", "required": True},
        {"type": "integer", "name": "c", "required": True},
        {"type": "float", "name": "d", "required": True},
    ])),
    parse_schema(json.dumps([{"type": "double"}, {"type": "long"}])),
    parse_schema(json.dumps([
        {"type": "array", "items": {"type": "long"}, "name": "a", "required": True},
        {"type": "object", "properties": {"p": {"type": "string", "required": True}}, "name": "b", "required": False},
        {"type": "map", "values": {"type": "double"}, "name": "c", "required": True},
    ])),
    parse_schema(json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}])),
    parse_schema(json.dumps([
        {"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}, "name": "a"},
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2, -1]}, "name": "b"},
    ])),
]
JUNK_PARAMS = parse_params(json.dumps([
    {"name": "k", "type": "long", "default": 5, "shape": None},
    {"name": "ids", "type": "double", "default": [1.0], "shape": [-1]},
]))

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="abc01.-+eEZT: =/", max_size=8),
    st.sampled_from(["a", "b", "c", "d", "aGk=", "2024-01-01T00:00:00Z", "1", "1.5", "true"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d", "p", "columns", "data", "index"]), inner, max_size=4),
    ),
    max_leaves=20,
)
JSON_FIELDS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode_and_enforce_anything(content_type: str, body: bytes, schema: Schema | None) -> None:
    """The scorer-less request path: only SigserveError subclasses may escape."""
    try:
        decoded = decode(content_type, body, schema)
        enforce_input(decoded.data, schema)
        enforce_params(decoded.params, JUNK_PARAMS)
    except SigserveError:
        pass


@PROPERTY_SETTINGS
@given(
    content_type=st.sampled_from([JSON, CSV, PARQUET]),
    body=st.binary(max_size=300),
    schema=st.sampled_from(JUNK_SCHEMAS),
)
def test_junk_bytes_only_raise_sigserve_errors(content_type: str, body: bytes, schema: Schema | None) -> None:
    decode_and_enforce_anything(content_type, body, schema)


@PROPERTY_SETTINGS
@given(
    field=st.sampled_from(JSON_FIELDS),
    value=JSON_VALUES,
    params=st.one_of(st.none(), JSON_VALUES),
    schema=st.sampled_from(JUNK_SCHEMAS),
)
def test_junk_json_documents_only_raise_sigserve_errors(
    field: str, value: Any, params: Any, schema: Schema | None
) -> None:
    document: dict[str, Any] = {field: value}
    if params is not None:
        document["params"] = params
    decode_and_enforce_anything(JSON, json.dumps(document).encode(), schema)


CSV_TEXT = st.text(alphabet="abcd01.-,\"\n\r eTZ:", max_size=120)


@PROPERTY_SETTINGS
@given(
    header=st.sampled_from(["a,b,c,d\n", "a,b\n", "a,a\n", "", "d,c,b,a\n"]),
    text=CSV_TEXT,
    schema=st.sampled_from(JUNK_SCHEMAS),
)
def test_junk_csv_only_raises_sigserve_errors(header: str, text: str, schema: Schema | None) -> None:
    decode_and_enforce_anything(CSV, (header + text).encode(), schema)


def _valid_parquet() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": ["x", "y", "z"], "d": [True, False, True]}).to_parquet(
        buffer, index=False
    )
    return buffer.getvalue()


VALID_PARQUET = _valid_parquet()


@PROPERTY_SETTINGS
@given(
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(VALID_PARQUET) - 1), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=8,
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=len(VALID_PARQUET))),
    schema=st.sampled_from(JUNK_SCHEMAS),
)
def test_corrupted_parquet_only_raises_sigserve_errors(
    flips: list[tuple[int, int]], cut: int | None, schema: Schema | None
) -> None:
    body = bytearray(VALID_PARQUET)
    for position, byte in flips:
        body[position] = byte
    decode_and_enforce_anything(PARQUET, bytes(body[:cut] if cut is not None else body), schema)
