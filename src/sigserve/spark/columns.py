"""The predictions' columns, declared before Spark runs the job (`mapInArrow` needs its output
schema up front): named and typed as `predictions_table` writes them, from the model's output
schema where that decides them, else from the model's predictions on the input's first rows."""

from __future__ import annotations

import pyarrow as pa

from sigserve.batch.chunks import Chunk
from sigserve.batch.frames import DEFAULT_OUTPUT_NAME, FrameScorer
from sigserve.batch.run import Refused, score_or_split
from sigserve.errors import BadRequest
from sigserve.model.schema import AnyType, ArrayType, DataType, MapType, ObjectType, Schema, TensorSpec, ValueType

_ARROW_TYPES = {
    DataType.boolean: pa.bool_(), DataType.integer: pa.int32(), DataType.long: pa.int64(),
    DataType.float: pa.float32(), DataType.double: pa.float64(), DataType.string: pa.string(),
    DataType.binary: pa.binary(), DataType.datetime: pa.timestamp("us"),
}


def schema_columns(output_schema: Schema | None) -> list[pa.Field] | None:
    """None when the output schema leaves the columns open: none, unnamed columns beside others,
    tensors of more than two dimensions, `Any`."""
    if output_schema is None or not output_schema.inputs:
        return None
    specs = output_schema.inputs
    if len(specs) > 1 and not output_schema.has_names:
        return None
    fields = []
    for spec in specs:
        kind = _tensor_type(spec) if isinstance(spec, TensorSpec) else _value_type(spec.type)
        if kind is None:
            return None
        fields.append(pa.field(spec.name or DEFAULT_OUTPUT_NAME, kind))
    return fields


def _tensor_type(spec: TensorSpec) -> pa.DataType | None:
    dtype = spec.dtype
    if dtype.kind in "OUS":
        item = pa.string() if dtype.kind in "OU" else pa.binary()
    else:
        try:
            item = pa.from_numpy_dtype(dtype)
        except (pa.ArrowNotImplementedError, TypeError):
            return None
    if len(spec.shape) == 1:
        return item
    if len(spec.shape) == 2:
        return pa.list_(item)
    return None


def _value_type(value_type: ValueType) -> pa.DataType | None:
    if isinstance(value_type, DataType):
        return _ARROW_TYPES[value_type]
    if isinstance(value_type, ArrayType):
        items = _value_type(value_type.items)
        return None if items is None else pa.list_(items)
    if isinstance(value_type, ObjectType):
        fields = [(prop.name, _value_type(prop.type)) for prop in value_type.properties]
        return None if any(kind is None for _, kind in fields) else pa.struct(fields)
    if isinstance(value_type, MapType):
        values = _value_type(value_type.values)
        return None if values is None else pa.map_(pa.string(), values)
    assert isinstance(value_type, AnyType)
    return None


def sampled_columns(chunk: Chunk, scorer: FrameScorer, keep: list[str]) -> list[pa.Field]:
    """The prediction columns of the first rows the model scores."""
    refusal = None
    for outcome in score_or_split(chunk, scorer, keep, "skip", first=False):
        if isinstance(outcome, Refused):
            refusal = refusal or outcome
            continue
        return [field for field in outcome.table.schema if field.name not in keep]
    if refusal is None:
        return [pa.field(DEFAULT_OUTPUT_NAME, pa.float64())]  # no rows: nothing will be written
    raise BadRequest(f"The model has no output schema that names its columns, and none of the first "
                     f"{chunk.n_rows} rows was scored to find them: row {refusal.row}: {refusal.message}")
