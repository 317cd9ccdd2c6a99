"""The conformance table: each request goes to a real sigserve process and to MLflow's own
scoring function on the same model. Same status class and same predictions, except where a row
says why sigserve differs on purpose (each such difference is listed in the README)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from helpers import MlflowScorer, frame_to_csv, frame_to_parquet, same_json

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = {"i": 1, "l": 2, "f": 1.5, "d": 2.5, "s": "x", "b": True, "t": "2020-01-01T00:00:00", "y": "aGk="}
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    body: Any
    content_type: str = "application/json"
    differs: str | None = None  # why sigserve's verdict differs from MLflow's on purpose
    status: int | None = None  # sigserve's status where it differs


def split(row: dict[str, Any], **override: Any) -> dict[str, Any]:
    merged = {**row, **override}
    merged = {k: v for k, v in merged.items() if v is not _DROP}
    return {"dataframe_split": {"columns": list(merged), "data": [list(merged.values())]}}


def records(row: dict[str, Any], **override: Any) -> dict[str, Any]:
    merged = {k: v for k, v in {**row, **override}.items() if v is not _DROP}
    return {"dataframe_records": [merged]}


_DROP = object()
STRICT = "MLflow casts JSON with astype, which is lossy; the documented rule is lossless casts only"
SEED_BARE_SPLIT = "MLflow 1.x documented behaviour: a bare split body with plain application/json is a frame"
LARGEST_FLOAT_BELOW_2_63 = 9223372036854774784.0  # 2**63 - 1024


def echo_type_cases() -> list[Case]:
    cases = []
    same = {
        "all_types": {}, "int_from_1.0": {"i": 1.0}, "int_from_numeric_string": {"i": "5"},
        "int_missing_value": {"i": None}, "long_from_true": {"l": True},
        "double_not_a_number": {"d": "abc"}, "double_numeric_string": {"d": "1.5"},
        "double_from_true": {"d": True}, "double_null": {"d": None}, "string_from_number": {"s": 5},
        "string_null": {"s": None}, "bool_from_1": {"b": 1}, "datetime_unparseable": {"t": "notadate"},
        "datetime_date_only": {"t": "2020-01-01"}, "binary_not_a_string": {"y": 5},
        "missing_required": {"i": _DROP}, "extra_column": {"zz": 1}, "float_from_int": {"f": 3},
        "double_from_big_int": {"d": 2**40},
        "bool_from_true_string": {"b": "true"}, "bool_from_True_string": {"b": "True"},
        "long_from_1e17": {"l": 1e17}, "long_from_largest_float_below_2**63": {"l": LARGEST_FLOAT_BELOW_2_63},
    }
    strict = {
        "int_from_1.5": ({"i": 1.5}, STRICT),
        "int_overflow": ({"i": 3_000_000_000}, "MLflow wraps 3e9 around to a negative int32"),
        "long_from_2.5": ({"l": 2.5}, STRICT),
        "float_overflow": ({"f": 1e300}, "MLflow turns 1e300 into inf in a float32 column"),
        "bool_from_string": ({"b": "yes"}, "MLflow's astype(bool) makes any non-empty string True"),
        "bool_from_2": ({"b": 2}, STRICT),
        "datetime_from_number": ({"t": 5}, "MLflow reads 5 as 5 ns after the epoch; the docs say ISO-8601"),
        "binary_invalid_base64": ({"y": "!!!"}, "MLflow's base64.decodebytes drops invalid characters"),
        "long_from_2**63_float": ({"l": 2.0**63}, "MLflow wraps 2**63 around to -2**63"),
        "long_from_minus_2**63_float": (
            {"l": -(2.0**63)}, "JSON integers just below -2**63 reach sigserve as exactly this float"),
    }
    # sigserve answers 200, with another value than MLflow's or where MLflow refuses
    lossless = {
        "bool_from_false_string": ({"b": "false"}, "MLflow's astype(bool) makes the string 'false' True"),
        "bool_from_FALSE_string": ({"b": "FALSE"}, "MLflow's astype(bool) makes the string 'FALSE' True"),
        "long_from_float_string_1e17": ({"l": "1e17"}, "MLflow's int() refuses '1e17'; the number 1e17 fits"),
        "long_from_float_string_3.0": ({"l": "3.0"}, "MLflow's int() refuses '3.0'; the number 3.0 fits"),
    }
    documented = {
        "datetime_Z": ({"t": "2020-01-01T00:00:00Z"}, "MLflow refuses the documented Z suffix"),
        "datetime_offset": ({"t": "2020-01-01T02:00:00+02:00"}, "MLflow refuses ISO-8601 offsets"),
    }
    for name, override in same.items():
        cases.append(Case(f"echo_split_{name}", "echo", split(ROW, **override)))
        cases.append(Case(f"echo_records_{name}", "echo", records(ROW, **override)))
    for name, (override, why) in strict.items():
        cases.append(Case(f"echo_split_{name}", "echo", split(ROW, **override), differs=why, status=400))
        cases.append(Case(f"echo_records_{name}", "echo", records(ROW, **override), differs=why, status=400))
    for name, (override, why) in lossless.items():
        cases.append(Case(f"echo_split_{name}", "echo", split(ROW, **override), differs=why, status=200))
        cases.append(Case(f"echo_records_{name}", "echo", records(ROW, **override), differs=why, status=200))
    for name, (override, why) in documented.items():
        cases.append(Case(f"echo_split_{name}", "echo", split(ROW, **override), differs=why, status=200))
    return cases


def iris_frame(rows: int = 3) -> pd.DataFrame:
    values = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]
    return pd.DataFrame((values * rows)[:rows], columns=IRIS)


def sklearn_cases() -> list[Case]:
    frame = iris_frame()
    split_body = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    cases = [
        Case("sklearn_split", "sklearn_skops", split_body),
        Case("sklearn_split_pickle", "sklearn_pickle", split_body),
        Case("sklearn_predict_proba_cloudpickle", "sklearn_cloudpickle", split_body),
        Case("sklearn_records", "sklearn_skops", {"dataframe_records": frame.to_dict(orient="records")}),
        Case("sklearn_instances_dicts", "sklearn_skops", {"instances": frame.to_dict(orient="records")}),
        Case("sklearn_inputs_columns", "sklearn_skops", {"inputs": frame.to_dict(orient="list")}),
        Case("sklearn_inputs_single_row", "sklearn_skops", {"inputs": frame.iloc[0].to_dict()}),
        Case("sklearn_csv", "sklearn_skops", frame_to_csv(frame), CSV),
        Case("sklearn_parquet", "sklearn_skops", frame_to_parquet(frame), PARQUET),
        Case("sklearn_split_large_numeric_fast_path", "sklearn_skops",
             {"dataframe_split": iris_frame(6000).to_dict(orient="split", index=False)}),
        Case("sklearn_split_large_with_index", "sklearn_skops",
             {"dataframe_split": iris_frame(6000).to_dict(orient="split")}),
        Case("sklearn_split_index_longer_than_data", "sklearn_skops",
             {"dataframe_split": {"columns": IRIS, "data": [[1, 2, 3, 4]], "index": [5, 6]}},
             differs="pandas broadcasts one row over a longer index; sigserve refuses the mismatch",
             status=400),
        Case("sklearn_split_reordered", "sklearn_skops",
             {"dataframe_split": frame[IRIS[::-1]].to_dict(orient="split", index=False)}),
        Case("sklearn_split_null_value", "sklearn_skops",
             {"dataframe_split": {"columns": IRIS, "data": [[5.1, None, 1.4, 0.2]]}}),
        Case("sklearn_tensor_nan", "sklearn_tensor", '{"inputs": [[5.1, NaN, 1.4, 0.2]]}'),
        Case("sklearn_split_ints_for_doubles", "sklearn_skops",
             {"dataframe_split": {"columns": IRIS, "data": [[5, 3, 1, 0]]}}),
        Case("sklearn_missing_column", "sklearn_skops",
             {"dataframe_split": frame[IRIS[:3]].to_dict(orient="split", index=False)}),
        Case("sklearn_csv_missing_column", "sklearn_skops", frame_to_csv(frame[IRIS[1:]]), CSV),
        Case("sklearn_csv_not_a_number", "sklearn_skops",
             (",".join(IRIS) + "\n1,2,x,4\n").encode(), CSV),
        Case("sklearn_parquet_int32_columns", "sklearn_skops",
             frame_to_parquet(frame.round().astype("int32")), PARQUET),
        Case("sklearn_parquet_int64_columns", "sklearn_skops",
             frame_to_parquet(frame.round().astype("int64")), PARQUET),
        Case("sklearn_parquet_float32_columns", "sklearn_skops",
             frame_to_parquet(frame.astype("float32")), PARQUET),
        Case("sklearn_parquet_string_column", "sklearn_skops",
             frame_to_parquet(frame.astype({IRIS[0]: str})), PARQUET),
        Case("sklearn_not_json", "sklearn_skops", b"{not json"),
        Case("sklearn_json_list", "sklearn_skops", b"[1, 2]"),
        Case("sklearn_two_formats", "sklearn_skops", {"inputs": [1], "instances": [1]}),
        Case("sklearn_no_format", "sklearn_skops", {"data": [1]}),
        Case("sklearn_split_not_dict", "sklearn_skops", {"dataframe_split": [[1, 2]]}),
        Case("sklearn_split_extra_key", "sklearn_skops", {"dataframe_split": {"data": [], "x": 1}}),
        Case("sklearn_records_not_list", "sklearn_skops", {"dataframe_records": {"a": 1}}),
        Case("sklearn_bad_parquet", "sklearn_skops", b"PAR1 not really", PARQUET),
        Case("sklearn_unknown_content_type", "sklearn_skops", b"x", "application/xml"),
        Case("sklearn_charset_latin1", "sklearn_skops", json.dumps(split_body), "application/json; charset=latin-1"),
        Case("sklearn_charset_utf8", "sklearn_skops", json.dumps(split_body), "application/json; charset=UTF-8"),
        Case("sklearn_content_type_upper_case", "sklearn_skops", json.dumps(split_body), "Application/JSON",
             differs="media types are case-insensitive (RFC 9110); MLflow compares them exactly", status=200),
        Case("sklearn_unknown_ct_param", "sklearn_skops", json.dumps(split_body), "application/json; foo=bar"),
        Case("sklearn_seed_pandas_split", "sklearn_skops",
             json.dumps(frame.to_dict(orient="split", index=False)), "application/json; format=pandas-split",
             differs="MLflow 3 dropped the seed-era format parameter; sigserve still accepts it", status=200),
        Case("sklearn_seed_pandas_records", "sklearn_skops",
             json.dumps(frame.to_dict(orient="records")), "application/json; format=pandas-records",
             differs="MLflow 3 dropped the seed-era format parameter; sigserve still accepts it", status=200),
        Case("sklearn_bare_split_plain_json", "sklearn_skops", frame.to_dict(orient="split", index=False),
             differs=SEED_BARE_SPLIT, status=200),
        Case("sklearn_bare_split_with_index_plain_json", "sklearn_skops", frame.to_dict(orient="split"),
             differs=SEED_BARE_SPLIT, status=200),
        Case("sklearn_bare_split_large_plain_json", "sklearn_skops",
             iris_frame(6000).to_dict(orient="split", index=False), differs=SEED_BARE_SPLIT, status=200),
        Case("sklearn_bare_records_plain_json", "sklearn_skops", frame.to_dict(orient="records")),
        Case("sklearn_bare_split_with_params_plain_json", "sklearn_skops",
             {**frame.to_dict(orient="split", index=False), "params": {}}),
    ]
    return cases


def model_cases() -> list[Case]:
    tensor = [[[1.0, 2.0], [3.0, 4.0]]]
    rows = [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]
    lengths = {"columns": IRIS[:3], "data": [row[:3] for row in rows]}
    return [
        Case("sklearn_regressor_split", "sklearn_regressor", {"dataframe_split": lengths}),
        Case("sklearn_regressor_one_row", "sklearn_regressor",
             {"dataframe_split": {**lengths, "data": lengths["data"][:1]}}),
        Case("sklearn_regressor_ints_for_doubles", "sklearn_regressor",
             {"dataframe_split": {**lengths, "data": [[5, 3, 1]]}}),
        Case("sklearn_regressor_parquet_float32", "sklearn_regressor",
             frame_to_parquet(pd.DataFrame(lengths["data"], columns=lengths["columns"]).astype("float32")), PARQUET),
        Case("sklearn_regressor_null_value", "sklearn_regressor",
             {"dataframe_split": {**lengths, "data": [[5.1, None, 1.4]]}}),
        Case("sklearn_tensor_inputs", "sklearn_tensor", {"inputs": rows}),
        Case("sklearn_tensor_instances", "sklearn_tensor", {"instances": rows}),
        Case("sklearn_tensor_split_unnamed", "sklearn_tensor", {"dataframe_split": {"data": rows}}),
        Case("sklearn_tensor_split_named", "sklearn_tensor",
             {"dataframe_split": {"columns": list("abcd"), "data": rows}}),
        Case("sklearn_tensor_ints", "sklearn_tensor", {"inputs": [[5, 3, 1, 0]]}),
        Case("sklearn_tensor_wrong_width", "sklearn_tensor", {"inputs": [[5.1, 3.5, 1.4]]}),
        Case("sklearn_tensor_one_dimensional", "sklearn_tensor", {"inputs": [5.1, 3.5, 1.4, 0.2]}),
        Case("sklearn_tensor_csv", "sklearn_tensor", b"a,b,c,d\n5.1,3.5,1.4,0.2\n", CSV,
             differs="MLflow's CSV parser fails on every tensor signature (pandas_types())", status=200),
        Case("sklearn_tensor_parquet", "sklearn_tensor",
             frame_to_parquet(pd.DataFrame(rows, columns=list("abcd"))), PARQUET),
        Case("custom_loader_split", "custom_loader",
             {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}}),
        Case("custom_loader_params", "custom_loader",
             {"dataframe_records": [{"a": 1, "b": 2, "c": 3}], "params": {"scale": 2}}),
        Case("custom_loader_bad_param", "custom_loader",
             {"dataframe_records": [{"a": 1, "b": 2, "c": 3}], "params": {"scale": "big"}}),
        Case("tensor_inputs", "echo_tensor", {"inputs": tensor}),
        Case("tensor_instances", "echo_tensor", {"instances": tensor}),
        Case("tensor_ints_cast", "echo_tensor", {"inputs": [[[1, 2], [3, 4]]]}),
        Case("tensor_wrong_rank", "echo_tensor", {"inputs": [[1.0, 2.0]]}),
        Case("tensor_wrong_dim", "echo_tensor", {"inputs": [[[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]]}),
        Case("tensor_not_numbers", "echo_tensor", {"inputs": [[["a", "b"], ["c", "d"]]]}),
        Case("tensor_2d_split", "echo_tensor_2d",
             {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}}),
        Case("tensor_2d_split_wrong_width", "echo_tensor_2d",
             {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}),
        Case("tensor_2d_fractional", "echo_tensor_2d", {"inputs": [[1, 2, 3.5]]}, differs=STRICT, status=400),
        Case("named_tensors_inputs", "echo_named_tensors", {"inputs": {"a": [[1.5, 2.5]], "b": [7]}}),
        Case("named_tensors_instances", "echo_named_tensors",
             {"instances": [{"a": [1.5, 2.5], "b": 7}, {"a": [3.5, 4.5], "b": 8}]}),
        Case("named_tensors_fraction_for_int32", "echo_named_tensors",
             {"inputs": {"a": [[1.5, 2.5]], "b": [1.5]}}, differs=STRICT, status=400),
        Case("tensor_split_nested_cells", "echo_tensor", {"dataframe_split": {"data": [[[[1, 2], [3, 4]]]]}}),
        Case("tensor_split_flat_cells", "echo_tensor",
             {"dataframe_split": {"columns": ["a"], "data": [[[1, 2, 3, 4]]]}}),
        Case("params_date_only", "echo_params", {"inputs": {"x": [1.0]}, "params": {"when": "2021-01-01"}}),
        Case("named_tensors_missing", "echo_named_tensors", {"inputs": {"a": [[1.5, 2.5]]}}),
        Case("params_defaults", "echo_params", {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}),
        Case("params_given", "echo_params", {
            "dataframe_split": {"columns": ["x"], "data": [[1.0]]},
            "params": {"k": 3, "temperature": 1, "flag": True, "name": "y", "ids": [4, 5]},
        }),
        Case("params_long_from_string", "echo_params",
             {"inputs": {"x": [1.0]}, "params": {"k": "3"}}),
        Case("params_long_from_float", "echo_params", {"inputs": {"x": [1.0]}, "params": {"k": 1.5}}),
        Case("params_bool_from_int", "echo_params", {"inputs": {"x": [1.0]}, "params": {"flag": 1}}),
        Case("params_list_for_scalar", "echo_params", {"inputs": {"x": [1.0]}, "params": {"k": [1]}}),
        Case("params_scalar_for_list", "echo_params", {"inputs": {"x": [1.0]}, "params": {"ids": 1}}),
        Case("params_unknown_ignored", "echo_params", {"inputs": {"x": [1.0]}, "params": {"zz": 1}}),
        Case("params_not_object", "echo_params", {"inputs": {"x": [1.0]}, "params": [1]}),
        Case("params_datetime", "echo_params",
             {"inputs": {"x": [1.0]}, "params": {"when": "2021-05-06T07:08:09"}}),
        Case("optional_absent", "echo_optional", {"dataframe_records": [{"x": 1.0}]}),
        *[Case(f"csv_{name}", "echo_optional", text.encode(), CSV) for name, text in {
            "integral_float_for_long": "x,k\n1.0,2.0\n", "fraction_for_long": "x,k\n1.5,2.5\n",
            "null_in_long": "x,k\n1.5,\n", "null_in_double": "x,k\n,1\n", "not_a_number": "x,k\nabc,1\n",
            "reordered": "k,x\n1,2.5\n", "extra_column": "x,k,z\n1,2,hello\n", "optional_absent": "x\n1.5\n",
            "exponent": "x,k\n1e5,-3\n", "nan": "x,k\nNaN,1\n", "quoted_number": 'x,k\n"1.5",1\n',
        }.items()],
        Case("csv_infinity_in_predictions", "echo_optional", b"x,k\ninf,1\n", CSV,
             differs="MLflow writes Infinity (invalid JSON); sigserve writes null", status=200),
        Case("optional_present", "echo_optional", {"dataframe_records": [{"x": 1.0, "k": 4}]}),
        Case("unnamed_by_position", "echo_unnamed", {"dataframe_split": {"data": [[1.5, 2], [2.5, 3]]}}),
        Case("unnamed_large_numeric_fast_path", "echo_unnamed",
             {"dataframe_split": {"data": [[1.5, 2], [2.5, -3], [1e3, 2**40]] * 3000}}),
        Case("unnamed_large_fraction_in_long", "echo_unnamed",
             {"dataframe_split": {"data": [[1.5, 2], [2.5, 3.5]] * 5000}}, differs=STRICT, status=400),
        Case("unnamed_large_ragged", "echo_unnamed",
             {"dataframe_split": {"data": [[1.5, 2], [2.5]] * 5000}}),
        Case("unnamed_too_few", "echo_unnamed", {"dataframe_split": {"data": [[1.5]]}}),
        Case("unnamed_extra_dropped", "echo_unnamed", {"dataframe_split": {"data": [[1.5, 2, 9]]}}),
        Case("complex_ok", "echo_complex", {"dataframe_records": [
            {"vec": [1, 2.5], "obj": {"a": 1, "b": "x"}, "counts": {"p": 1}, "anything": [1, "a"]}]}),
        Case("complex_optional_property", "echo_complex", {"dataframe_records": [
            {"vec": [1.0], "obj": {"a": 1}, "counts": {}, "anything": None}]}),
        Case("complex_array_wrong_type", "echo_complex", {"dataframe_records": [
            {"vec": ["a"], "obj": {"a": 1}, "counts": {"p": 1}, "anything": 1}]}),
        Case("complex_object_missing_property", "echo_complex", {"dataframe_records": [
            {"vec": [1.0], "obj": {"b": "x"}, "counts": {"p": 1}, "anything": 1}]}),
        Case("complex_object_extra_property", "echo_complex", {"dataframe_records": [
            {"vec": [1.0], "obj": {"a": 1, "z": 2}, "counts": {"p": 1}, "anything": 1}]}),
        Case("complex_map_wrong_values", "echo_complex", {"dataframe_records": [
            {"vec": [1.0], "obj": {"a": 1}, "counts": {"p": "many"}, "anything": 1}]}),
        Case("complex_any_keeps_inferred_type", "echo_complex", {"dataframe_records": [
            {"vec": [1.5], "obj": {"a": 1}, "counts": {}, "anything": 1}]}),
        Case("complex_array_of_integers_for_doubles", "echo_complex", {"dataframe_records": [
            {"vec": [1, 2], "obj": {"a": 1}, "counts": {"p": 1}, "anything": 1}]},
             differs="MLflow refuses int64 -> float64 inside arrays though it accepts it for columns",
             status=200),
        Case("complex_number_strings_inside_objects", "echo_complex", {"dataframe_records": [
            {"vec": [1.5, "2"], "obj": {"a": "1"}, "counts": {"p": 1.0}, "anything": {}}]},
             differs="number strings are accepted inside objects as in scalar columns; MLflow refuses them",
             status=200),
        Case("complex_long_from_1e17_inside_objects", "echo_complex", {"dataframe_records": [
            {"vec": [1.0], "obj": {"a": 1e17}, "counts": {"p": 1e17}, "anything": 1}]},
             differs="integral floats fit long values inside objects as in scalar columns; MLflow refuses floats",
             status=200),
        Case("complex_bool_words_inside_values", "echo_nested_bool", {"dataframe_records": [
            {"flags": ["true", "False"], "obj": {"on": "false", "n": 1}, "switches": {"k": "TRUE"}, "ids": [1]}]},
             differs="'true'/'false' fit boolean values inside arrays and objects as in scalar columns; "
                     "MLflow refuses strings there", status=200),
        Case("complex_bool_array_word_beside_boolean", "echo_nested_bool", {"dataframe_records": [
            {"flags": [True, "false"], "obj": {"on": True, "n": 1}, "switches": {"k": True}, "ids": [1]}]},
             differs="MLflow's astype(bool) makes 'false' True in a mixed array", status=200),
        Case("complex_long_array_from_1e17", "echo_nested_bool", {"dataframe_records": [
            {"flags": [True], "obj": {"on": True, "n": 1e17}, "switches": {"k": True}, "ids": [1e17, 2]}]},
             differs="integral floats fit long values inside arrays as in scalar columns; MLflow refuses floats",
             status=200),
        Case("tensor_bool_words", "echo_bool_tensor", {"inputs": ["true", "false", "FALSE"]},
             differs="MLflow's astype(bool) makes the string 'false' True", status=200),
        Case("tensor_2d_long_from_1e17", "echo_tensor_2d", {"inputs": [[1e17, -1e17, 2.0]]}),
        Case("complex_inputs_single_row", "echo_complex", {"inputs": {
            "vec": [1.0, 2.0], "obj": {"a": 1}, "counts": {"p": 1}, "anything": "z"}}),
        Case("nosig_split", "echo_nosig", {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}}),
        Case("nosig_inputs", "echo_nosig", {"inputs": [[1, 2], [3, 4]]}),
        Case("nosig_inputs_dict", "echo_nosig", {"inputs": {"a": [1, 2], "b": [[1.5], [2.5]]}}),
        Case("nosig_instances_dicts", "echo_nosig", {"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}),
        Case("nosig_csv", "echo_nosig", b"a,b\n1,x\n2,y\n", CSV),
        Case("series_output", "series_out", {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}),
        Case("float32_output", "float32_out", {"dataframe_split": {"columns": ["x"], "data": [[1.0], [0.1]]}}),
        Case("model_raises", "fails", {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}),
        Case("echo_csv_all_types", "echo", frame_to_csv(pd.DataFrame([ROW])), CSV,
             differs="MLflow's CSV reader fails on every datetime column (pandas refuses dtype datetime64)",
             status=200),
    ]


CASES = echo_type_cases() + sklearn_cases() + model_cases()


@pytest.fixture(scope="module")
def models(models, tmp_path_factory):
    """The suite's models, plus two only this table uses: booleans (and longs) inside nested
    values, and a boolean tensor."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec
    from mlflow.types.schema import Array, Map, Object, Property

    from helpers import save_pyfunc
    from models import pyfunc_models

    root = tmp_path_factory.mktemp("conformance_models")
    nested = Schema([
        ColSpec(Array("boolean"), "flags"),
        ColSpec(Object([Property("on", "boolean"), Property("n", "long")]), "obj"),
        ColSpec(Map("boolean"), "switches"),
        ColSpec(Array("long"), "ids"),
    ])
    bool_tensor = Schema([TensorSpec(np.dtype("bool"), (-1,))])
    return {
        **models,
        "echo_nested_bool": save_pyfunc(root / "echo_nested_bool", pyfunc_models.Echo(), ModelSignature(inputs=nested)),
        "echo_bool_tensor": save_pyfunc(root / "echo_bool_tensor", pyfunc_models.Echo(), ModelSignature(inputs=bool_tensor)),
    }


@pytest.fixture(scope="module")
def mlflow_scorers(models):
    cache: dict[str, MlflowScorer] = {}

    def get(name: str) -> MlflowScorer:
        if name not in cache:
            cache[name] = MlflowScorer(models[name])
        return cache[name]

    return get


def _body(case: Case) -> bytes | str:
    return case.body if isinstance(case.body, (bytes, str)) else json.dumps(case.body)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_verdict_as_mlflow(case: Case, models, server_factory, mlflow_scorers) -> None:
    server = server_factory(models[case.model])
    response = server.post(_body(case), case.content_type)
    mlflow_status, mlflow_result = mlflow_scorers(case.model).score(_body(case), case.content_type)

    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text and "stack_trace" not in response.text
    if response.status_code >= 400:
        error = response.json() if response.status_code != 415 else None
        if error is not None:
            assert error["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
            assert error["message"]

    if case.differs:
        assert response.status_code == case.status, response.text
        if mlflow_status == 200 and response.status_code == 200:
            assert not same_json(response.json()["predictions"], mlflow_result["predictions"])
        else:
            assert mlflow_status // 100 != response.status_code // 100, "MLflow agrees now"
        return
    assert response.status_code // 100 == mlflow_status // 100, (response.text, mlflow_result)
    if mlflow_status == 200:
        ours = response.json()["predictions"]
        assert same_json(ours, mlflow_result["predictions"]), (ours, mlflow_result["predictions"])
    else:
        assert response.status_code == mlflow_status


def test_documented_datetime_forms_agree_on_value(models, server_factory) -> None:
    """`Z` and `+02:00` are UTC instants; sigserve hands the model naive UTC datetimes."""
    server = server_factory(models["echo"])
    for text in ("2020-01-01T00:00:00Z", "2020-01-01T02:00:00+02:00", "2020-01-01T00:00:00"):
        response = server.post(split(ROW, t=text))
        values = response.json()["predictions"]["input"]["values"][0]
        assert values[6] == "2020-01-01T00:00:00", text


def test_binary_is_decoded_to_bytes(models, server_factory) -> None:
    server = server_factory(models["echo"])
    payload = base64.b64encode(b"\x00\xffhello").decode()
    for body in (split(ROW, y=payload), records(ROW, y=payload)):
        response = server.post(body)
        assert response.json()["predictions"]["input"]["values"][0][7] == {"bytes": b"\x00\xffhello".hex()}
