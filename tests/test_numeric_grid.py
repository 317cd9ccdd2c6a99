"""The large-numeric-split fast path must give exactly what the general JSON path gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigserve.codecs.mlflow import decode
from sigserve.codecs.numeric_grid import MIN_DATA_BYTES, NumericGrid, parse_with_numeric_grid
from sigserve.enforce import enforce_input
from sigserve.model.schema import parse_schema

SCHEMA = parse_schema(json.dumps([
    {"type": "double", "name": "a"}, {"type": "long", "name": "b"}, {"type": "float", "name": "c"},
]))
ROWS = max(3000, MIN_DATA_BYTES // 20)


def body(rows: list, **extra) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["a", "b", "c"], "data": rows}, **extra}).encode()


def numeric_rows(n: int = ROWS) -> list:
    rng = np.random.default_rng(7)
    return [[float(x), int(y), float(z)] for x, y, z in zip(rng.normal(size=n), rng.integers(-9, 9, n),
                                                             rng.uniform(size=n).round(3))]


def test_large_numeric_split_takes_the_grid_path_and_matches_the_general_path() -> None:
    rows = numeric_rows()
    document = parse_with_numeric_grid(body(rows))
    assert isinstance(document["dataframe_split"]["data"], NumericGrid)
    fast = enforce_input(decode("application/json", body(rows), SCHEMA).data, SCHEMA)
    general = enforce_input(decode("application/json", body(rows[:50]), SCHEMA).data, SCHEMA)
    assert fast.dtypes.to_dict() == general.dtypes.to_dict()
    assert fast.iloc[:50].equals(general)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda rows: rows.__setitem__(5, [1.0, None, 2.0]),
        lambda rows: rows.__setitem__(5, [1.0, "x", 2.0]),
        lambda rows: rows.__setitem__(5, [1.0, 2]),
        lambda rows: rows.__setitem__(5, [1.0, [2], 3.0]),
        lambda rows: rows.__setitem__(5, [True, 2, 3.0]),
    ],
    ids=["null", "string", "ragged", "nested", "boolean"],
)
def test_anything_unusual_falls_back_to_the_general_path(spoil) -> None:
    rows = numeric_rows()
    spoil(rows)
    assert parse_with_numeric_grid(body(rows)) is None


def test_small_bodies_and_other_formats_skip_it() -> None:
    assert parse_with_numeric_grid(body(numeric_rows(10))) is None
    records = json.dumps({"dataframe_records": [{"a": 1.0}] * ROWS}).encode()
    assert parse_with_numeric_grid(records) is None


def test_a_data_key_inside_a_string_does_not_fool_it() -> None:
    rows = numeric_rows()
    tricky = json.dumps({"dataframe_split": {"columns": ["a", "b", "c"], "data": rows[:2]},
                         "params": {"note": '"data": ' + json.dumps(rows)}}).encode()
    assert parse_with_numeric_grid(tricky) is None


def test_fraction_in_an_integer_column_is_still_refused_with_its_row() -> None:
    from sigserve.errors import SchemaError

    rows = numeric_rows()
    rows[1234][1] = 2.5
    with pytest.raises(SchemaError, match="row 1234.*2.5"):
        enforce_input(decode("application/json", body(rows), SCHEMA).data, SCHEMA)


def _with_first_value(token: str) -> bytes:
    rows = numeric_rows()
    rows[0][0] = 7.25
    text = body(rows)
    assert b"[[7.25," in text
    return text.replace(b"[[7.25,", b"[[" + token.encode() + b",")


def test_the_probe_body_takes_the_fast_path_with_a_valid_number() -> None:
    for token in ("-1.5e+3", "1e-05", "0.5", "-0", "1E05"):
        document = parse_with_numeric_grid(_with_first_value(token))
        assert isinstance(document["dataframe_split"]["data"], NumericGrid), token


@pytest.mark.parametrize("token", ["+1", ".5", "1.", "01", "1e", "-", "1e400", "-01", "1e5-", "0x1"])
def test_numbers_json_refuses_are_not_read_by_the_fast_path(token: str) -> None:
    assert parse_with_numeric_grid(_with_first_value(token)) is None


def test_wide_rows_take_the_general_path_which_is_faster_for_them() -> None:
    wide = [[float(i + j) / 7 for j in range(30)] for i in range(2000)]
    document = json.dumps({"dataframe_split": {"columns": [f"c{j}" for j in range(30)], "data": wide}}).encode()
    assert len(document) > MIN_DATA_BYTES
    assert parse_with_numeric_grid(document) is None
    assert isinstance(parse_with_numeric_grid(body(numeric_rows()))["dataframe_split"]["data"], NumericGrid)
