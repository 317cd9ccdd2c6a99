"""KServe V2 (Open Inference Protocol) inference requests, decoded to the same model data as
`/invocations`: named inputs become table columns (column signatures) or tensors (tensor
signatures), request `parameters` become params.

Each input's `data` (flat row-major or nested) must hold values of its declared `datatype`
(integers in range, FP16/FP32 numbers finite in their type, booleans, strings); the values then go
through the same exact rule as JSON sent to `/invocations`, so both protocols give the same
verdicts on the same values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pandas.api.types import infer_dtype

from sigserve.codecs.base import Decoded, ModelData, Nested, Table
from sigserve.codecs.json_parse import check_json_size, parse_json
from sigserve.codecs.limits import DEFAULT_LIMITS, DecodeLimits
from sigserve.codecs.tables import object_column
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8), "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
FORMAT = "v2"
# The largest finite FP16/FP32 values, as clients print them (numpy prints float32's as 3.4028235e38).
FLOAT_LIMITS = {"FP16": 65504.0, "FP32": 3.4028235e38}


@dataclass(frozen=True)
class V2Request:
    decoded: Decoded
    id: str | None
    outputs: list[str] | None  # names the client asked for; None: all


@dataclass(frozen=True)
class V2Input:
    name: str
    shape: tuple[int, ...]
    datatype: str
    values: list[Any]  # flat, row-major


def decode_v2(body: bytes, schema: Schema | None, limits: DecodeLimits = DEFAULT_LIMITS) -> V2Request:
    check_json_size(body, limits, "The V2 request")
    document = parse_json(body)
    if not isinstance(document, dict):
        raise BadRequest("A V2 inference request must be a JSON object with an 'inputs' list")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("A V2 inference request needs a non-empty 'inputs' list")
    check_v2_rows(raw_inputs, limits)
    inputs = [_input(item, i) for i, item in enumerate(raw_inputs)]
    names = [item.name for item in inputs]
    if len(set(names)) != len(names):
        raise BadRequest(f"V2 input names must be unique, got {names}")
    params = document.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadRequest("V2 'parameters' must be an object")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("V2 'id' must be a string")
    return V2Request(Decoded(_model_data(inputs, schema), params, FORMAT), request_id, _output_names(document))


def _input(item: Any, position: int) -> V2Input:
    if not isinstance(item, dict):
        raise BadRequest(f"V2 input {position} must be an object with name, shape, datatype and data")
    missing = [key for key in ("name", "shape", "datatype", "data") if key not in item]
    if missing:
        raise BadRequest(f"V2 input {position} is missing {missing}")
    name, shape, datatype = item["name"], item["shape"], item["datatype"]
    if not isinstance(name, str):
        raise BadRequest(f"V2 input {position}: 'name' must be a string")
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BadRequest(f"V2 input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    if datatype not in DATATYPES:
        raise BadRequest(f"V2 input {name!r}: unknown datatype {datatype!r}; expected one of {sorted(DATATYPES)}")
    values = _flatten(item["data"], name)
    if len(values) != math.prod(shape):
        raise BadRequest(
            f"V2 input {name!r}: shape {shape} holds {math.prod(shape)} values, but 'data' has {len(values)}"
        )
    _check_datatype(name, datatype, values)
    return V2Input(name, tuple(shape), datatype, values)


def _flatten(data: Any, name: str) -> list[Any]:
    """Nested data to the flat row-major list, one C-level pass per level of nesting."""
    if not isinstance(data, list):
        return [data]
    while data:
        kinds = set(map(type, data))
        if list not in kinds:
            return data
        if kinds != {list}:
            raise BadRequest(f"V2 input {name!r}: 'data' mixes nested lists and values at one level")
        data = list(itertools.chain.from_iterable(data))
    return data


def _check_datatype(name: str, datatype: str, values: list[Any]) -> None:
    """The declared datatype is a promise about the JSON values: hold the client to it, with one
    C-level pass over them; only a refusal looks for the offending value in Python."""
    if _fits(datatype, values):
        return
    bad = next((v for v in values if not _fits(datatype, [v])), None)
    limit = FLOAT_LIMITS.get(datatype)
    beyond = f" (out of range: its largest finite value is {limit!r})" if limit and _is_number(bad) else ""
    raise BadRequest(f"V2 input {name!r}: value {bad!r} is not a {datatype}{beyond}")


def _fits(datatype: str, values: list[Any]) -> bool:
    if not values:
        return True
    kind = infer_dtype(object_column(values), skipna=False)
    if datatype == "BYTES":
        return kind == "string"
    if datatype == "BOOL":
        return kind == "boolean"
    if datatype.startswith(("INT", "UINT")):
        if kind != "integer":
            return False
        info = np.iinfo(DATATYPES[datatype])
        try:
            return info.min <= min(values) and max(values) <= info.max
        except TypeError:
            return False
    return kind in ("integer", "floating", "mixed-integer-float") and _in_float_range(datatype, values)


def _in_float_range(datatype: str, values: list[Any]) -> bool:
    """Finite FP16/FP32 values must be finite in that type; explicit inf and NaN are left to enforcement."""
    limit = FLOAT_LIMITS.get(datatype)
    if limit is None:
        return True
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        return False
    magnitudes = np.abs(numbers)
    with np.errstate(invalid="ignore"):
        return bool(((magnitudes <= limit) | ~np.isfinite(magnitudes)).all())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _model_data(inputs: list[V2Input], schema: Schema | None) -> ModelData:
    """Columns when the signature is column-based (or absent and every input is 1-D), tensors otherwise."""
    one_dimensional = all(len(item.shape) == 1 or (len(item.shape) == 2 and item.shape[1] == 1) for item in inputs)
    if (schema is not None and not schema.is_tensor) or (schema is None and one_dimensional):
        return _table(inputs)
    tensors = {item.name: _nested(item) for item in inputs}
    if schema is not None and not schema.has_names and len(inputs) == 1:
        return Nested(next(iter(tensors.values())))
    return Nested(tensors)


def _table(inputs: list[V2Input]) -> Table:
    rows = {item.shape[0] if item.shape else 1 for item in inputs}
    if len(rows) != 1:
        raise BadRequest(f"V2 inputs feeding table columns must have the same first dimension, got {sorted(rows)}")
    columns = {}
    for item in inputs:
        if len(item.shape) > 2 or (len(item.shape) == 2 and item.shape[1] != 1):
            columns[item.name] = object_column(_nested(item))  # one list per row, for Array columns
        else:
            columns[item.name] = object_column(item.values)
    return Table(columns, rows.pop())


def _nested(item: V2Input) -> Any:
    """The flat values back in the declared shape, as nested lists."""
    if not item.shape:
        return item.values[0]
    array = np.empty(len(item.values), dtype=object)
    array[:] = item.values
    return array.reshape(item.shape).tolist()


def _output_names(document: dict[str, Any]) -> list[str] | None:
    outputs = document.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise BadRequest("V2 'outputs' must be a list of objects with a 'name'")
    return [o["name"] for o in outputs]


def check_v2_rows(raw_inputs: list[Any], limits: DecodeLimits) -> None:
    """Each V2 input's first dimension (its rows), before its data is flattened and converted."""
    if limits.max_rows is None:
        return
    for item in raw_inputs:
        shape = item.get("shape") if isinstance(item, dict) else None
        if isinstance(shape, list) and shape and isinstance(shape[0], int):
            limits.check_rows(shape[0], f"V2 input {item.get('name')!r} of shape {shape}")
