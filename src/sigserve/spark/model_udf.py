"""`sigserve.spark.udf`: a drop-in for `mlflow.pyfunc.spark_udf(..., env_manager="local")` that
scores each Arrow batch with sigserve's decode → enforce → predict, the model shipped once and
loaded once per executor Python process, with no MLflow on executors for natively loaded flavors.

An Arrow UDF where pyspark has them (4.1+): the columns reach the model with no pandas round trip
and numeric results leave with no Python list per row; a pandas UDF otherwise, or for result types
Spark converts itself (timestamps, maps, binary).

Not `from __future__ import annotations`, and `typing` generics in the UDF's hints: pandas_udf and
arrow_udf read them as types."""

import functools
from typing import Any, Callable, Iterator, Tuple, Union

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sigserve.batch.chunks import ArrowChunk
from sigserve.batch.frames import FrameScorer
from sigserve.enforce import enforce_params
from sigserve.errors import BadRequest, SchemaError, SigserveError
from sigserve.model.mlmodel import read_mlmodel
from sigserve.model.schema import Schema
from sigserve.scoring import unexpected_as
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve
from sigserve.spark.arrow_results import arrow_friendly, result_array
from sigserve.spark.refusals import first_refused_row
from sigserve.spark.results import result_values
from sigserve.spark.shipping import executor_model, ship_model
from sigserve.spark.types import result_type_for


def udf(spark: Any, model_uri: str, result_type: T.DataType | str | None = None,
        params: dict[str, Any] | None = None, registry_uri: str | None = None,
        arrow: bool | None = None) -> Callable[..., Any]:
    """Use as `df.withColumn("p", u(*cols))`, `u(struct(*cols))` or `u()` (the signature's input
    names). The URI is resolved here, on the driver, once (`registry_uri` over
    MLFLOW_REGISTRY_URI / MLFLOW_TRACKING_URI). `arrow=False` asks for a pandas UDF, as on pyspark
    before 4.1; by default an Arrow UDF for the result types it values as a pandas UDF does."""
    resolved = resolve(model_uri, SourceSettings.from_env(registry_uri=registry_uri))
    meta = read_mlmodel(resolved.path)
    signature = meta.signature
    input_schema = signature.inputs if signature else None
    spark_type = result_type_for(result_type, signature.outputs if signature else None)
    with unexpected_as(BadRequest, "The params do not match the model signature"):
        params = enforce_params(params, signature.params if signature else None)
    use_arrow = arrow_udfs_available() and arrow_friendly(spark_type) if arrow is None else arrow
    if use_arrow and not arrow_udfs_available():
        raise BadRequest("arrow=True needs pyspark 4.1 or later (pyspark.sql.functions.arrow_udf)")
    name = ship_model(spark, resolved.path)
    if use_arrow:
        by_zone: dict[str, Any] = {}

        def current_udf() -> Any:
            """A pandas UDF converts timestamps in the session's zone of the query: so does this."""
            zone = spark.conf.get("spark.sql.session.timeZone")
            if zone not in by_zone:
                by_zone[zone] = _arrow_udf(name, params, spark_type, zone)
            return by_zone[zone]
    else:
        pandas_model_udf = _pandas_udf(name, params, spark_type)

        def current_udf() -> Any:
            return pandas_model_udf

    @functools.wraps(current_udf())
    def with_default_columns(*columns: Any) -> Any:
        return current_udf()(*(columns or default_columns(input_schema)))

    with_default_columns.metadata = meta
    return with_default_columns


def arrow_udfs_available() -> bool:
    return hasattr(F, "arrow_udf")


def _pandas_udf(name: str, params: dict[str, Any] | None, spark_type: T.DataType) -> Any:
    hint = pd.DataFrame if isinstance(spark_type, T.StructType) else pd.Series

    def predict(batches: Iterator[Tuple[Union[pd.Series, pd.DataFrame], ...]]) -> Iterator[hint]:
        yield from _scored(batches, name, params, (pd.Series, pd.DataFrame), input_table,
                           lambda predictions: result_values(predictions, spark_type))

    return F.pandas_udf(predict, spark_type)


def _arrow_udf(name: str, params: dict[str, Any] | None, spark_type: T.DataType, timezone: str) -> Any:
    def predict(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
        yield from _scored(batches, name, params, (pa.Array, pa.ChunkedArray),
                           lambda arrays, schema: arrow_input_table(arrays, schema, timezone),
                           lambda predictions: result_array(predictions, spark_type))

    return F.arrow_udf(predict, spark_type)


def _scored(batches: Iterator[Any], name: str, params: dict[str, Any] | None, single: tuple[type, ...],
            table_of: Callable[[tuple[Any, ...], Schema | None], pa.Table],
            answer_of: Callable[[Any], Any]) -> Iterator[Any]:
    """Each batch of the UDF's arguments (one argument comes alone) answered, counting rows so that
    a refused one is named by its place in the partition."""
    scorer = FrameScorer(executor_model(name), params)
    seen = 0
    for batch in batches:
        args = (batch,) if isinstance(batch, single) else tuple(batch)
        rows = len(args[0])
        if rows:
            yield answer_of(predict_table(scorer, table_of(args, scorer.input_schema), seen))
        seen += rows


def predict_table(scorer: FrameScorer, table: pa.Table, first_row: int) -> Any:
    try:
        return scorer.predict(scorer.decode_arrow(table))
    except SigserveError as exc:
        raise first_refused_row(ArrowChunk(table, first_row), scorer) or exc from None


def input_table(args: tuple[Any, ...], input_schema: Schema | None) -> pa.Table:
    """A pandas UDF's arguments as a table: a lone struct's fields, or the arguments named in order
    by the signature's inputs (by position without one), extra ones dropped."""
    if len(args) == 1 and isinstance(args[0], pd.DataFrame):
        frame = args[0]
    else:
        names = argument_names(len(args), input_schema)
        # a struct among several arguments is one column of dicts
        frame = pd.DataFrame({name: arg if isinstance(arg, pd.Series) else arg.apply(_as_dict, axis=1)
                              for name, arg in zip(names, args)})
    with unexpected_as(BadRequest, "The batch could not be read as an Arrow table"):
        return pa.Table.from_pandas(frame, preserve_index=False)


def arrow_input_table(arrays: tuple[Any, ...], input_schema: Schema | None, timezone: str) -> pa.Table:
    """An Arrow UDF's arguments as the table the same pandas UDF's would give: timestamps, at any
    depth, as naive times in the session's time zone; integer columns with nulls as floats."""
    if len(arrays) == 1 and pa.types.is_struct(arrays[0].type):
        struct = arrays[0].combine_chunks() if isinstance(arrays[0], pa.ChunkedArray) else arrays[0]
        table = pa.Table.from_batches([pa.RecordBatch.from_struct_array(struct)])
    else:
        names = argument_names(len(arrays), input_schema)
        table = pa.Table.from_arrays(list(arrays[:len(names)]), names=names[:len(arrays)])
    return pa.Table.from_arrays([_as_pandas_gives(column, timezone) for column in table.columns],
                                names=table.column_names)


def _as_pandas_gives(column: Any, timezone: str) -> Any:
    if pa.types.is_integer(column.type) and column.null_count:
        return column.cast(pa.float64())
    return local_times(column, timezone)


def local_times(column: Any, timezone: str) -> Any:
    """Spark's timestamps (UTC instants) as the session's wall-clock times, in lists and structs too."""
    if not _has_zoned_times(column.type):
        return column
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    mask = column.is_null() if column.null_count else None
    if pa.types.is_timestamp(kind):
        return pc.local_timestamp(column.cast(pa.timestamp(kind.unit, tz=timezone)))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return type(column).from_arrays(column.offsets, local_times(column.values, timezone), mask=mask)
    fields = [local_times(column.field(i), timezone) for i in range(kind.num_fields)]
    return pa.StructArray.from_arrays(fields, names=[field.name for field in kind], mask=mask)


def _has_zoned_times(kind: pa.DataType) -> bool:
    if pa.types.is_timestamp(kind):
        return kind.tz is not None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_zoned_times(kind.value_type)
    if pa.types.is_struct(kind):
        return any(_has_zoned_times(field.type) for field in kind)
    return False


def argument_names(count: int, input_schema: Schema | None) -> list[str]:
    """The UDF's arguments named in order by the signature's inputs, by position without one."""
    if input_schema is None:
        return [str(i) for i in range(count)]
    names = [spec.name or str(i) for i, spec in enumerate(input_schema.inputs)]
    required = [name for name, spec in zip(names, input_schema.inputs) if getattr(spec, "required", True)]
    if min(count, len(names)) < len(required):
        raise SchemaError(
            f"Model input is missing required columns. Expected {len(names)} required input columns "
            f"{names}, but the model received only {count} unnamed input columns (Since the columns "
            "were passed unnamed they are expected to be in the order specified by the schema).",
            "missing_input")
    return names


def _as_dict(row: pd.Series) -> dict[str, Any]:
    return row.to_dict()


def default_columns(input_schema: Schema | None) -> list[str]:
    """`u()`: the signature's input names, when it names every input and none is optional."""
    if input_schema is None or not input_schema.inputs:
        raise BadRequest("Attempting to apply udf on zero columns because no column names were specified as "
                         "arguments or inferred from the model signature.")
    if any(not getattr(spec, "required", True) for spec in input_schema.inputs):
        raise BadRequest("Cannot apply UDF without column names specified when model signature contains "
                         "optional columns.")
    if not input_schema.has_names:
        raise BadRequest(f"Cannot apply udf because no column names specified. The udf expects "
                         f"{len(input_schema.inputs)} columns with types: {list(input_schema.inputs)}. Input column "
                         "names could not be inferred from the model signature (column names not found).")
    return input_schema.names
