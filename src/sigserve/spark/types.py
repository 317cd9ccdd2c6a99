"""The UDF's Spark result type, by `mlflow.pyfunc.spark_udf`'s rules: inferred from the model's
output schema (double without one), or the caller's, given as a type or a DDL string and
limited to what the conversion of predictions handles."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyspark.sql import types as T

from sigserve.errors import BadRequest
from sigserve.model.schema import AnyType, ArrayType, ColSpec, DataType, MapType, ObjectType, Schema, TensorSpec, \
    ValueType

logger = logging.getLogger("sigserve.spark")

_SPARK_TYPES = {
    DataType.boolean: T.BooleanType, DataType.integer: T.IntegerType, DataType.long: T.LongType,
    DataType.float: T.FloatType, DataType.double: T.DoubleType, DataType.string: T.StringType,
    DataType.binary: T.BinaryType, DataType.datetime: T.TimestampType,
}
# MLflow's `DataType.from_numpy_type`: a tensor's dtype equal to a column type's numpy dtype
_TENSOR_TYPES = {np.dtype("bool"): DataType.boolean, np.dtype("int32"): DataType.integer,
                 np.dtype("int64"): DataType.long, np.dtype("float32"): DataType.float,
                 np.dtype("float64"): DataType.double, np.dtype("str"): DataType.string,
                 np.dtype("bytes"): DataType.binary, np.dtype("datetime64[ns]"): DataType.datetime}
PRIMITIVE_TYPES = (T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.StringType, T.BooleanType)


def result_type_for(result_type: T.DataType | str | None, output_schema: Schema | None) -> T.DataType:
    if result_type is None:
        if output_schema is not None:
            return inferred_result_type(output_schema)
        logger.warning("No result_type given and the model has no output schema: the result type is double")
        return T.DoubleType()
    if isinstance(result_type, str):
        result_type = parse_type(result_type)
    if not supported(result_type):
        raise BadRequest(
            f"Invalid result type {result_type.simpleString()}: use int, long, float, double, string or "
            "boolean, an array of those (or of arrays or structs of them), or a struct of those, e.g. "
            "struct<a:int, b:array<int>>"
        )
    return result_type


def inferred_result_type(output_schema: Schema) -> T.DataType:
    """One output: its type; several: a struct of them, each named by its name or position."""
    if len(output_schema.inputs) == 1:
        return _output_spec_type(output_schema.inputs[0])
    return T.StructType([T.StructField(spec.name or str(i), _output_spec_type(spec))
                         for i, spec in enumerate(output_schema.inputs)])


def _output_spec_type(spec: ColSpec | TensorSpec) -> T.DataType:
    if isinstance(spec, ColSpec):
        return spark_type(spec.type)
    data_type = _TENSOR_TYPES.get(spec.dtype)
    if data_type is None:
        raise BadRequest(f"The model's output tensor of type {spec.dtype} has no Spark result type")
    if len(spec.shape) == 1:
        return T.ArrayType(spark_type(data_type))
    if len(spec.shape) == 2:
        return T.ArrayType(T.ArrayType(spark_type(data_type)))
    raise BadRequest(f"Only 1-D or 2-D output tensors have a Spark result type, but the model's output "
                     f"{spec.name or ''!r} has shape {spec.shape}")


def spark_type(value_type: ValueType) -> T.DataType:
    if isinstance(value_type, DataType):
        return _SPARK_TYPES[value_type]()
    if isinstance(value_type, ArrayType):
        return T.ArrayType(spark_type(value_type.items))
    if isinstance(value_type, ObjectType):
        return T.StructType([T.StructField(prop.name, spark_type(prop.type)) for prop in value_type.properties])
    if isinstance(value_type, MapType):
        return T.MapType(T.StringType(), spark_type(value_type.values))
    if isinstance(value_type, AnyType) and hasattr(T, "VariantType"):
        return T.VariantType()
    raise BadRequest(f"The output type {value_type.describe()} has no Spark type in this pyspark")


def parse_type(text: str) -> T.DataType:
    """A DDL string as Spark parses a UDF's return type ("bool" meaning boolean, as in MLflow)."""
    from pyspark.sql.functions import udf
    from pyspark.sql.session import SparkSession

    text = "boolean" if text == "bool" else text
    identity = udf(_identity, returnType=text, useArrow=False)  # a plain UDF: no eval type from hints
    parsed = identity.returnType
    if parsed.typeName() == "unparseddata":  # pyspark 3.5 leaves it to the session to parse
        return SparkSession.active().range(0).select(identity("id")).schema[0].dataType
    return parsed


def _identity(value: Any) -> Any:
    return value


def supported(data_type: T.DataType) -> bool:
    if isinstance(data_type, PRIMITIVE_TYPES):
        return True
    if isinstance(data_type, T.ArrayType):
        return supported(data_type.elementType)
    if isinstance(data_type, T.StructType):
        return all(supported(field.dataType) for field in data_type.fields)
    if isinstance(data_type, T.MapType):
        return isinstance(data_type.keyType, T.StringType) and supported(data_type.valueType)
    return False
