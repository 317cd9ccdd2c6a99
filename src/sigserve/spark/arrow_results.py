"""A batch's predictions as the Arrow array an Arrow UDF returns, for the result types
`arrow_friendly` admits, valued as `results.result_values` values them for a pandas UDF. Numbers,
and arrays of numbers, go from numpy to Arrow at once (an array type as offsets over the values)
where a pandas UDF builds and converts a Python list per row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type

from sigserve.spark.results import compatible_frame, result_values

_NUMERIC = (T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.BooleanType)


def arrow_friendly(spark_type: T.DataType) -> bool:
    """Result types whose values reach Arrow here as Spark's own conversion takes them from a pandas
    UDF: numbers, booleans and strings, arrays of them, structs of them. The rest (nested arrays,
    structs holding arrays, timestamps, maps, binary) stay with a pandas UDF: Spark hands its Arrow
    conversion numpy scalars from them (a float32 NaN stays NaN there, where Arrow nulls it in an array)."""
    if isinstance(spark_type, T.ArrayType):
        return _primitive(spark_type.elementType)
    if isinstance(spark_type, T.StructType):
        return all(_primitive(field.dataType) for field in spark_type.fields)
    return _primitive(spark_type)


def _primitive(spark_type: T.DataType) -> bool:
    return isinstance(spark_type, (*_NUMERIC, T.StringType))


def result_array(result: Any, spark_type: T.DataType) -> pa.Array:
    arrow_type = to_arrow_type(spark_type)
    element = spark_type.elementType if type(spark_type) is T.ArrayType else spark_type
    if isinstance(element, _NUMERIC) and _numbers(result):
        values = compatible_frame(result if isinstance(result, pd.DataFrame) else pd.DataFrame(result),
                                  element).to_numpy()
        if type(spark_type) is T.ArrayType:
            return _rows(values, arrow_type)
        return pa.array(values[:, 0], type=arrow_type, from_pandas=True)
    return _from_pandas(result_values(result, spark_type), arrow_type)


def _numbers(result: Any) -> bool:
    """Predictions whose columns are all of numpy's number or boolean dtypes."""
    if isinstance(result, np.ndarray):
        return result.ndim in (1, 2) and result.dtype.kind in "biuf"
    if isinstance(result, pd.Series):
        return isinstance(result.dtype, np.dtype) and result.dtype.kind in "biuf"
    if isinstance(result, pd.DataFrame):
        return len(result.columns) > 0 and all(isinstance(dtype, np.dtype) and dtype.kind in "biuf"
                                               for dtype in result.dtypes)
    return False


def _rows(values: np.ndarray, arrow_type: pa.ListType) -> pa.Array:
    count, width = values.shape
    offsets = pa.array(np.arange(0, count * width + 1, width, dtype=np.int32))
    flat = pa.array(np.ravel(values, order="C"), type=arrow_type.value_type, from_pandas=True)
    return pa.ListArray.from_arrays(offsets, flat, type=arrow_type)


def _from_pandas(values: pd.Series | pd.DataFrame, arrow_type: pa.DataType) -> pa.Array:
    """As Spark converts a pandas UDF's answer: missing values null, casts unchecked (Spark's
    default, `spark.sql.execution.pandas.convertToArrowArraySafely` false)."""
    if isinstance(values, pd.DataFrame):
        fields = list(arrow_type)
        return pa.StructArray.from_arrays([_from_pandas(values.iloc[:, i], field.type) for i, field in enumerate(fields)],
                                          fields=fields)
    return pa.Array.from_pandas(values, type=arrow_type, safe=False)
