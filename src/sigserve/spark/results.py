"""A batch's predictions as the values of the UDF's result type, by `mlflow.pyfunc.spark_udf`'s
rules: a struct picks the predictions' columns by name; an array of arrays converts each row;
otherwise the columns of a compatible dtype are kept (string: all, as text), and an array
gathers them per row where a primitive takes the leftmost."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import types as T

from sigserve.errors import BadRequest, PredictionError

_NUMPY_TYPES = {T.IntegerType: np.int32, T.LongType: np.int64, T.FloatType: np.float32, T.DoubleType: np.float64,
                T.BooleanType: np.bool_, T.StringType: np.str_}
_PYTHON_TYPES = {T.IntegerType: int, T.LongType: int, T.FloatType: float, T.DoubleType: float, T.BooleanType: bool,
                 T.StringType: str}


def result_values(result: Any, result_type: T.DataType) -> pd.Series | pd.DataFrame:
    if isinstance(result, dict):
        result = {key: list(values) for key, values in result.items()}
    if isinstance(result_type, T.ArrayType) and isinstance(result_type.elementType, T.ArrayType):
        return pd.Series(_nested_rows(result, result_type))
    if isinstance(result_type, T.StructType):
        if isinstance(result, list) and result and _is_pydantic(result[0]):
            frame = pd.DataFrame([item.model_dump() for item in result])
        else:
            frame = pd.DataFrame(result)
        return struct_values(frame, result_type)
    if not isinstance(result, pd.DataFrame):
        if isinstance(result_type, T.MapType):
            result = pd.DataFrame([result])
        else:
            result = pd.DataFrame([result]) if np.isscalar(result) else pd.DataFrame(result)
    return _compatible_columns(result, result_type)


def _compatible_columns(result: pd.DataFrame, result_type: T.DataType) -> pd.Series:
    element = result_type.elementType if isinstance(result_type, T.ArrayType) else result_type
    result = compatible_frame(result, element)
    if type(result_type) is T.ArrayType:
        return pd.Series(result.to_numpy().tolist())
    return result[result.columns[0]]


def compatible_frame(result: pd.DataFrame, element: T.DataType) -> pd.DataFrame:
    """The predictions' columns of a dtype the element type takes, converted to it."""
    kind = type(element)
    if kind is T.IntegerType:
        result = result.select_dtypes([np.byte, np.ubyte, np.short, np.ushort, np.int32]).astype(np.int32)
    elif kind is T.LongType:
        result = result.select_dtypes([np.byte, np.ubyte, np.short, np.ushort, int]).astype(np.int64)
    elif kind is T.FloatType:
        result = result.select_dtypes(include=(np.number,)).astype(np.float32)
    elif kind is T.DoubleType:
        result = result.select_dtypes(include=(np.number,)).astype(np.float64)
    elif kind is T.BooleanType:
        result = result.select_dtypes([bool, np.bool_]).astype(bool)
    if len(result.columns) == 0:
        raise BadRequest(f"The model did not produce any values compatible with the requested type '{element}'. "
                         "Consider requesting udf with StringType or Arraytype(StringType).")
    if kind is T.StringType:
        result = result.map(str)
    return result


def _nested_rows(result: Any, result_type: T.ArrayType) -> list[Any]:
    """Each row as the nested array. A 2-D array of predictions (a 2-D output tensor, such as
    class probabilities) gives each row's 1-D values one level short of the type MLflow infers
    for it, `array<array<...>>`: they are wrapped as one, as a 1-D output's values are (where
    spark_udf fails on converting a number as an array)."""
    if isinstance(result, np.ndarray) and result.ndim == _depth(result_type):
        return [_array_values([row], result_type.elementType) for row in result]
    return _array_values(result, result_type)


def _depth(data_type: T.DataType) -> int:
    return 1 + _depth(data_type.elementType) if isinstance(data_type, T.ArrayType) else 0


def _array_values(values: Any, result_type: T.DataType) -> Any:
    if not isinstance(result_type, T.ArrayType):
        raise BadRequest(f"result_type must be ArrayType, got {result_type.simpleString()}")
    element = result_type.elementType
    if type(element) in _NUMPY_TYPES:
        # a None or NaN for an array is a null array (mlflow/mlflow#8986)
        return None if _is_none_or_nan(values) else np.array(values, dtype=_NUMPY_TYPES[type(element)])
    if isinstance(element, T.ArrayType):
        return [_array_values(value, element) for value in values]
    if isinstance(element, T.StructType):
        return [struct_values(value, element) for value in values]
    if _is_variant(element):
        return values
    raise BadRequest(f"Unsupported array type field with element type {element.simpleString()} in Array type.")


def struct_values(result: pd.DataFrame | dict[str, Any], result_type: T.StructType) -> Any:
    """The struct's fields taken from the predictions' columns (or a dict's keys) of their names."""
    if not isinstance(result, (dict, pd.DataFrame)):
        raise PredictionError(f"Unsupported result type {type(result)}, expected dict or pandas DataFrame")
    frame = isinstance(result, pd.DataFrame)
    fields: dict[str, Any] = {}
    for name in result_type.fieldNames():
        field_type = result_type[name].dataType
        try:
            values = result[name]
        except KeyError:
            raise PredictionError(f"The result type has a field {name!r} the predictions do not have "
                                  f"(they have {', '.join(map(str, _keys(result)))})") from None
        if type(field_type) in _NUMPY_TYPES:
            numpy_type = _NUMPY_TYPES[type(field_type)]
            if frame:
                if not all(_is_none_or_nan(value) for value in values):
                    values = values.astype(numpy_type)
            else:
                values = None if _is_none_or_nan(values) else np.array(values, dtype=numpy_type).item()
        elif isinstance(field_type, T.ArrayType):
            values = pd.Series(_array_values(value, field_type) for value in values) if frame \
                else _array_values(values, field_type)
        elif isinstance(field_type, T.StructType):
            if frame:
                values = pd.Series([struct_values(value, field_type) for value in values])
            else:
                values = struct_values(values.model_dump() if _is_pydantic(values) else values, field_type)
        elif isinstance(field_type, T.MapType):
            if frame:
                values = pd.Series([{key: _python_value(item, field_type.valueType) for key, item in value.items()}
                                    for value in values]).astype(object)
            else:
                values = {key: _python_value(item, field_type.valueType) for key, item in values.items()}
        elif _is_variant(field_type):
            return values
        else:
            raise BadRequest(f"Unsupported field type {field_type.simpleString()} in struct type.")
        fields[name] = values
    return pd.DataFrame(fields) if frame else fields


def _python_value(value: Any, spark_type: T.DataType) -> Any:
    if type(spark_type) in _PYTHON_TYPES:
        return None if _is_none_or_nan(value) else _PYTHON_TYPES[type(spark_type)](value)
    if isinstance(spark_type, T.StructType):
        return struct_values(value, spark_type)
    if isinstance(spark_type, T.ArrayType):
        return [_python_value(item, spark_type.elementType) for item in value]
    if isinstance(spark_type, T.MapType):
        return {key: _python_value(value[key], spark_type.valueType) for key in value}
    if _is_variant(spark_type):
        return value
    raise BadRequest(f"Unsupported type {spark_type} for value {value}")


def _keys(result: pd.DataFrame | dict[str, Any]) -> list[Any]:
    return list(result.columns) if isinstance(result, pd.DataFrame) else list(result)


def _is_none_or_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _is_pydantic(value: Any) -> bool:
    """A pydantic model (what a type-hinted PythonModel may return), without importing pydantic."""
    return callable(getattr(value, "model_dump", None)) and hasattr(type(value), "model_fields")


def _is_variant(spark_type: T.DataType) -> bool:
    return type(spark_type).__name__ == "VariantType"
