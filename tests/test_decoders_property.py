"""Property tests: every payload format decodes and enforces to the same DataFrame.

A random frame (long, double, string and boolean columns) and its MLflow-style signature are
encoded as dataframe_split, dataframe_records, instances, inputs, CSV and Parquet; each decoded
and enforced result must equal the one from dataframe_split (same columns, dtypes and values,
doubles compared exactly), which must itself equal the original frame.

`dataframe_split_large` is the same document with its `data` array padded with whitespace past
the size where the numeric-grid fast path (pyarrow reading the array as CSV) takes over.

Also: junk bodies never raise anything but a SigserveError.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigserve.codecs.mlflow import decode
from sigserve.codecs import numeric_grid
from sigserve.enforce import enforce_input, enforce_params
from sigserve.errors import BadRequest, SchemaError, SigserveError
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
    database=None,  # no example database: every run starts fresh
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALUES = {
    "long": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "double": st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(alphabet=STRING_ALPHABET, min_size=1, max_size=12),
    "boolean": st.booleans(),
}


@st.composite
def frames(
    draw: st.DrawFn, kinds: tuple[str, ...] = KINDS, min_rows: int = 1, nulls: bool = False
) -> tuple[pd.DataFrame, Schema]:
    names = draw(
        st.lists(
            st.text(alphabet="abcxyz_", min_size=1, max_size=6),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    column_kinds = [draw(st.sampled_from(kinds)) for _ in names]
    n_rows = draw(st.integers(min_value=min_rows, max_value=30))
    data = {
        name: pd.Series(
            draw(st.lists((st.none() | VALUES[kind]) if nulls else VALUES[kind], min_size=n_rows, max_size=n_rows)),
            dtype="Int64" if nulls and kind == "long" else PANDAS_DTYPES[kind],
        )
        for name, kind in zip(names, column_kinds)
    }
    frame = pd.DataFrame(data)
    signature = [{"type": kind, "name": name, "required": True} for name, kind in zip(names, column_kinds)]
    schema = parse_schema(json.dumps(signature))
    assert schema is not None
    return frame, schema


def python_columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Plain Python scalars (never numpy ones), so json.dumps writes every value exactly; a
    missing value (NaN in a double or pandas string column) is sent as JSON null."""
    return {name: [_json_scalar(v) for v in frame[name].tolist()] for name in frame.columns}


def _json_scalar(value: Any) -> Any:
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def python_rows(frame: pd.DataFrame) -> list[list[Any]]:
    columns = python_columns(frame)
    return [list(row) for row in zip(*columns.values())]


def python_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(frame.columns, row)) for row in python_rows(frame)]


def json_body(document: Any) -> tuple[str, bytes]:
    return JSON, json.dumps(document, allow_nan=False).encode()


# Whitespace inside `data` counts towards the fast path's size threshold but not towards the data.
LARGE_PADDING = " " * (getattr(numeric_grid, "MIN_DATA_BYTES", 256 * 1024) + 1024)


def large_split_body(frame: pd.DataFrame) -> tuple[str, bytes]:
    data = json.dumps(python_rows(frame), allow_nan=False)
    columns = json.dumps(list(frame.columns))
    body = '{"dataframe_split": {"columns": %s, "data": %s%s]}}' % (columns, data[:-1], LARGE_PADDING)
    return JSON, body.encode()


def encode(frame: pd.DataFrame, fmt: str) -> tuple[str, bytes]:
    if fmt == "dataframe_split":
        return json_body({"dataframe_split": {"columns": list(frame.columns), "data": python_rows(frame)}})
    if fmt == "dataframe_split_large":
        return large_split_body(frame)
    if fmt == "bare_split":  # MLflow 1.x's plain-JSON body: no format field, no format= parameter
        return json_body({"columns": list(frame.columns), "data": python_rows(frame)})
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


FORMATS = (
    "dataframe_split",
    "dataframe_split_large",
    "bare_split",
    "dataframe_records",
    "instances",
    "inputs",
    "csv",
    "parquet",
)


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


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "dataframe_split"])
@settings(PROPERTY_SETTINGS, max_examples=25)
@given(case=frames(kinds=("double", "string", "long"), nulls=True))
def test_nulls_in_double_and_string_columns_agree_across_formats(fmt: str, case: tuple[pd.DataFrame, Schema]) -> None:
    """Missing doubles are NaN and missing strings are missing, whatever the format (a null in
    a long column is refused by every format alike)."""
    frame, schema = case
    try:
        expected = decode_and_enforce(frame, schema, "dataframe_split")
    except SchemaError as exc:
        assert "missing values" in exc.message
        with pytest.raises(SchemaError, match="missing values"):
            decode_and_enforce(frame, schema, fmt)
        return
    assert_same_frame(decode_and_enforce(frame, schema, fmt), expected, fmt)


@PROPERTY_SETTINGS
@given(case=frames(kinds=("long", "double"), min_rows=2))
def test_numeric_grid_fast_path_matches_general_path(case: tuple[pd.DataFrame, Schema]) -> None:
    """All-numeric frames: the padded body goes through the numeric grid and must agree."""
    frame, schema = case
    _, body = large_split_body(frame)
    assert numeric_grid.parse_with_numeric_grid(body) is not None  # the fast path is really taken
    expected = decode_and_enforce(frame, schema, "dataframe_split")
    assert_same_frame(decode_and_enforce(frame, schema, "dataframe_split_large"), expected, "dataframe_split_large")


@PROPERTY_SETTINGS
@given(case=frames(kinds=("long", "double"), min_rows=2), with_index=st.booleans())
def test_large_bare_split_takes_the_numeric_grid_and_matches_dataframe_split(
    case: tuple[pd.DataFrame, Schema], with_index: bool
) -> None:
    """The bare (seed-era) split body, padded past the fast path's threshold, plain JSON."""
    frame, schema = case
    _, body = large_split_body(frame)
    body = body.replace(b'{"dataframe_split": ', b"", 1)[:-1]
    if with_index:
        body = body[:-1] + b', "index": ' + json.dumps(list(range(len(frame)))).encode() + b"}"
    assert numeric_grid.parse_with_numeric_grid(body) is not None
    decoded = decode(JSON, body, schema)
    assert decoded.format == "pandas-split"
    actual = enforce_input(decoded.data, schema)
    assert_same_frame(actual, decode_and_enforce(frame, schema, "dataframe_split"), "bare_split_large")


def _every_letter_case(draw: st.DrawFn, flag: bool) -> str:
    word = "true" if flag else "false"
    return "".join(c.upper() if draw(st.booleans()) else c for c in word)


@pytest.mark.parametrize("fmt", ["dataframe_split", "bare_split", "dataframe_records", "instances", "inputs", "csv"])
@PROPERTY_SETTINGS
@given(case=frames(kinds=("boolean", "long", "string")), data=st.data())
def test_boolean_words_in_any_case_are_the_booleans(fmt: str, case: tuple[pd.DataFrame, Schema], data: st.DataObject) -> None:
    """A boolean column sent as "true"/"false" strings, each in a random letter case, gives the
    frame its JSON booleans give, in every JSON format and in CSV."""
    frame, schema = case
    words = frame.copy()
    for name in frame.columns:
        if frame[name].dtype == np.bool_:
            words[name] = pd.Series([_every_letter_case(data.draw, flag) for flag in frame[name]], dtype=object)
    assert_same_frame(decode_and_enforce(words, schema, fmt), decode_and_enforce(frame, schema, "dataframe_split"), fmt)


INTEGRAL_FLOATS = st.one_of(
    st.floats(min_value=-(2.0**63), max_value=2.0**63, exclude_min=True, exclude_max=True).map(math.floor).map(float),
    st.integers(min_value=53, max_value=62).map(lambda e: float(2**e)),
    st.sampled_from([1e17, -1e17, 2.0**63 - 1024, -(2.0**63) + 1024, 0.0, -0.0]),
)


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_split_large", "bare_split", "dataframe_records",
                                 "instances", "inputs", "csv"])
@PROPERTY_SETTINGS
@given(values=st.lists(INTEGRAL_FLOATS, min_size=2, max_size=20))
def test_integral_floats_fit_a_long_column_exactly(fmt: str, values: list[float]) -> None:
    """Any double with no fraction strictly between -2**63 and 2**63 is its integer in a long
    column, at any magnitude (past 2**53 too), in every format."""
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64"), "y": pd.Series([0.5] * len(values))})
    schema = parse_schema(json.dumps([{"type": "long", "name": "x"}, {"type": "double", "name": "y"}]))
    enforced = decode_and_enforce(frame, schema, fmt)
    assert enforced["x"].dtype == np.int64
    assert enforced["x"].tolist() == [int(v) for v in values]


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "inputs", "csv"])
@PROPERTY_SETTINGS
@given(values=st.lists(INTEGRAL_FLOATS, min_size=1, max_size=5), bad=st.sampled_from([2.0**63, -(2.0**63), 1e19, -1e300, 0.5]),
       position=st.integers(min_value=0, max_value=5))
def test_floats_outside_plus_minus_2_63_or_with_a_fraction_are_refused(
    fmt: str, values: list[float], bad: float, position: int
) -> None:
    values = [*values]
    values.insert(min(position, len(values)), bad)
    frame = pd.DataFrame({"x": pd.Series(values, dtype="float64")})
    schema = parse_schema(json.dumps([{"type": "long", "name": "x"}]))
    with pytest.raises(SigserveError) as info:
        decode_and_enforce(frame, schema, fmt)
    assert "'x'" in info.value.message and f"row {values.index(bad)}" in info.value.message


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
# Values a well-formed table might hold for the junk schemas, mixed with junk.
PLAUSIBLE_CELLS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["x", "aGk=", "aGVs\nbG8=", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00+05:30", "1500-01-01"]),
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
COLUMN_NAMES = st.sampled_from(["a", "b", "c", "d", "p"])
CELLS = st.one_of(PLAUSIBLE_CELLS, PLAUSIBLE_CELLS, JSON_VALUES)


@st.composite
def table_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Table-shaped documents (mostly right, sometimes not) in each JSON format."""
    width = draw(st.integers(min_value=0, max_value=5))
    names = draw(st.lists(COLUMN_NAMES | JSON_VALUES, min_size=width, max_size=width))
    n_rows = draw(st.integers(min_value=0, max_value=4))
    rows = [
        draw(st.lists(CELLS, min_size=width, max_size=width) | st.lists(CELLS, max_size=6))
        for _ in range(n_rows)
    ]
    field = draw(st.sampled_from(JSON_FIELDS))
    if field == "dataframe_split":
        split: dict[str, Any] = {"data": rows}
        if draw(st.booleans()):
            split["columns"] = names
        if draw(st.booleans()):
            split["index"] = draw(st.lists(JSON_SCALARS, max_size=5))
        return {field: split}
    hashable = [name for name in names if isinstance(name, (str, int, float, bool)) or name is None]
    keys = [str(name) for name in hashable]
    if field == "inputs" and draw(st.booleans()):
        return {field: {key: [row[i] for row in rows if i < len(row)] for i, key in enumerate(keys)}}
    if field == "inputs":
        return {field: rows}
    return {field: [dict(zip(keys, row)) for row in rows]}


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
    content_type=st.sampled_from([JSON, PARQUET]),
    body=st.binary(max_size=300),
    schema=st.sampled_from(JUNK_SCHEMAS),
)
def test_junk_bytes_only_raise_sigserve_errors(content_type: str, body: bytes, schema: Schema | None) -> None:
    decode_and_enforce_anything(content_type, body, schema)


@PROPERTY_SETTINGS
@given(
    header=st.text(alphabet="abcd,; _.-01é\t", max_size=30),
    body=st.binary(max_size=300),
    schema=st.sampled_from(JUNK_SCHEMAS),
)
def test_junk_csv_bytes_only_raise_sigserve_errors(header: str, body: bytes, schema: Schema | None) -> None:
    """A plausible header line, then any bytes."""
    decode_and_enforce_anything(CSV, header.encode() + b"\n" + body, schema)


@pytest.mark.parametrize(
    "split",
    [{"columns": [[1]], "data": [[1]]}, {"columns": ["a", {"b": 1}], "data": []}],
    ids=["list-name", "dict-name-no-rows"],
)
def test_dataframe_split_unhashable_column_names_is_bad_request(split: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        decode(JSON, json.dumps({"dataframe_split": split}).encode(), None)


@pytest.mark.parametrize("body", [b"a,a\n", b"a,b,a\n1,2,3\n"], ids=["header-only", "with-rows"])
def test_csv_duplicate_column_names_is_bad_request(body: bytes) -> None:
    with pytest.raises(SigserveError):
        decode(CSV, body, None)


@pytest.mark.parametrize("body", [b"\x80\n", b"a,\xff\n1,2\n"], ids=["lone-byte", "in-second-name"])
def test_csv_non_utf8_header_is_bad_request(body: bytes) -> None:
    with pytest.raises(SigserveError):
        decode(CSV, body, None)


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


@PROPERTY_SETTINGS
@given(document=table_documents(), schema=st.sampled_from(JUNK_SCHEMAS))
def test_table_shaped_json_only_raises_sigserve_errors(document: dict[str, Any], schema: Schema | None) -> None:
    decode_and_enforce_anything(JSON, json.dumps(document).encode(), schema)


CSV_TEXT = st.text(alphabet="abcd01.-,\"\n\r eTZ:", max_size=120)


@PROPERTY_SETTINGS
@given(
    header=st.sampled_from(["a,b,c,d\n", "a,b\n", "a,b,c,d,e\n", "", "d,c,b,a\n"]),
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
