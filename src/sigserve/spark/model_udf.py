"""`sigserve.spark.udf`: a drop-in for `mlflow.pyfunc.spark_udf(..., env_manager="local")` that
scores each Arrow batch with sigserve's decode → enforce → predict, the model shipped once and
loaded once per executor Python process, with no MLflow on executors for natively loaded flavors.

Not `from __future__ import annotations`, and `typing` generics in the UDF's hints: pandas_udf
reads them as types."""

import functools
from typing import Any, Callable, Iterator, Tuple, Union

import pandas as pd
import pyarrow as pa
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sigserve.batch.chunks import ArrowChunk
from sigserve.batch.frames import FrameScorer
from sigserve.enforce import enforce_params
from sigserve.errors import BadRequest, SchemaError, SigserveError
from sigserve.model.mlmodel import read_mlmodel
from sigserve.model.schema import Schema
from sigserve.scoring import unexpected_as
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve
from sigserve.spark.refusals import first_refused_row
from sigserve.spark.results import result_values
from sigserve.spark.shipping import executor_model, ship_model
from sigserve.spark.types import result_type_for


def udf(spark: Any, model_uri: str, result_type: T.DataType | str | None = None,
        params: dict[str, Any] | None = None, registry_uri: str | None = None) -> Callable[..., Any]:
    """Use as `df.withColumn("p", u(*cols))`, `u(struct(*cols))` or `u()` (the signature's input
    names). The URI is resolved here, on the driver, once (`registry_uri` over
    MLFLOW_REGISTRY_URI / MLFLOW_TRACKING_URI)."""
    resolved = resolve(model_uri, SourceSettings.from_env(registry_uri=registry_uri))
    meta = read_mlmodel(resolved.path)
    signature = meta.signature
    input_schema = signature.inputs if signature else None
    spark_type = result_type_for(result_type, signature.outputs if signature else None)
    with unexpected_as(BadRequest, "The params do not match the model signature"):
        params = enforce_params(params, signature.params if signature else None)
    name = ship_model(spark, resolved.path)
    hint = pd.DataFrame if isinstance(spark_type, T.StructType) else pd.Series

    def predict(batches: Iterator[Tuple[Union[pd.Series, pd.DataFrame], ...]]) -> Iterator[hint]:
        scorer = FrameScorer(executor_model(name), params)
        seen = 0
        for batch in batches:
            args = (batch,) if isinstance(batch, (pd.Series, pd.DataFrame)) else tuple(batch)
            rows = len(args[0])
            if rows:
                yield score_batch(scorer, input_table(args, scorer.input_schema), spark_type, seen)
            seen += rows

    model_udf = pandas_udf(predict, spark_type)

    @functools.wraps(model_udf)
    def with_default_columns(*columns: Any) -> Any:
        return model_udf(*(columns or default_columns(input_schema)))

    with_default_columns.metadata = meta
    return with_default_columns


def score_batch(scorer: FrameScorer, table: pa.Table, spark_type: T.DataType, first_row: int) -> Any:
    try:
        predictions = scorer.predict(scorer.decode_arrow(table))
    except SigserveError as exc:
        raise first_refused_row(ArrowChunk(table, first_row), scorer) or exc from None
    return result_values(predictions, spark_type)


def input_table(args: tuple[Any, ...], input_schema: Schema | None) -> pa.Table:
    """The UDF's arguments as a table: a lone struct's fields, or the arguments named in order by
    the signature's inputs (by position without one), extra ones dropped."""
    if len(args) == 1 and isinstance(args[0], pd.DataFrame):
        frame = args[0]
    else:
        names = [str(i) for i in range(len(args))]
        if input_schema is not None:
            names = [spec.name or str(i) for i, spec in enumerate(input_schema.inputs)]
            required = [name for name, spec in zip(names, input_schema.inputs) if getattr(spec, "required", True)]
            args = args[:len(names)]
            if len(args) < len(required):
                raise SchemaError(
                    f"Model input is missing required columns. Expected {len(names)} required input columns "
                    f"{names}, but the model received only {len(args)} unnamed input columns (Since the columns "
                    "were passed unnamed they are expected to be in the order specified by the schema).",
                    "missing_input")
        # a struct among several arguments is one column of dicts
        frame = pd.DataFrame({names[i]: arg if isinstance(arg, pd.Series) else arg.apply(_as_dict, axis=1)
                              for i, arg in enumerate(args)})
    with unexpected_as(BadRequest, "The batch could not be read as an Arrow table"):
        return pa.Table.from_pandas(frame, preserve_index=False)


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
