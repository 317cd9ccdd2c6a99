"""Encode stage for KServe V2: predictions to `{"model_name", "outputs": [...]}`.

A DataFrame gives one output per column, a dict one per key, anything else one output named
`predict`; each with its shape, V2 datatype and row-major data. NaN is written as null and
bytes as base64, as on `/invocations`.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pandas as pd

from sigserve.codecs.json_encode import encode_json
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

DEFAULT_OUTPUT = "predict"
_KIND_DATATYPES = {"b": "BOOL", "O": "BYTES", "U": "BYTES", "S": "BYTES", "M": "BYTES"}


def encode_v2_response(
    predictions: Any,
    model_name: str,
    model_version: str,
    request_id: str | None,
    wanted: list[str] | None,
    default_name: str = DEFAULT_OUTPUT,
) -> bytes:
    outputs = [_output(name, values) for name, values in _named_outputs(predictions, default_name)]
    if wanted is not None:
        known = {output["name"] for output in outputs}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise BadRequest(f"Requested outputs {unknown} are not among the model's outputs {sorted(known)}")
        outputs = [output for output in outputs if output["name"] in wanted]
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if request_id is not None:
        document["id"] = request_id
    return encode_json(document)


def datatype_of(dtype: np.dtype) -> str:
    if dtype.kind in _KIND_DATATYPES:
        return _KIND_DATATYPES[dtype.kind]
    if dtype.kind == "f":
        return f"FP{dtype.itemsize * 8}"
    if dtype.kind in "iu":
        return f"{'U' if dtype.kind == 'u' else ''}INT{dtype.itemsize * 8}"
    return "BYTES"


def output_name(outputs: Schema | None) -> str:
    """A single unnamed output takes the name of the signature's one output, else `predict`."""
    if outputs is not None and len(outputs.inputs) == 1 and outputs.inputs[0].name:
        return str(outputs.inputs[0].name)
    return DEFAULT_OUTPUT


def _named_outputs(predictions: Any, default_name: str) -> list[tuple[str, Any]]:
    if isinstance(predictions, pd.DataFrame):
        return [(str(label), predictions[label].to_numpy()) for label in predictions.columns]
    if isinstance(predictions, pd.Series):
        return [(str(predictions.name) if predictions.name is not None else default_name, predictions.to_numpy())]
    if isinstance(predictions, dict):
        return [(str(key), value) for key, value in predictions.items()]
    return [(default_name, predictions)]


def _output(name: str, values: Any) -> dict[str, Any]:
    array = values if isinstance(values, np.ndarray) else _array(values)
    datatype = datatype_of(array.dtype)
    if array.dtype.kind == "O":
        datatype = _object_datatype(array)
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": _data(array)}


def _array(values: Any) -> np.ndarray:
    try:
        return np.asarray(values)
    except ValueError:  # ragged lists
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array


def _object_datatype(array: np.ndarray) -> str:
    """Object arrays of plain numbers (e.g. from a list with None) are still numbers."""
    kinds = {type(v) for v in array.ravel() if v is not None}
    if kinds and kinds <= {bool}:
        return "BOOL"
    if kinds and kinds <= {int}:
        return "INT64"
    if kinds and kinds <= {int, float}:
        return "FP64"
    return "BYTES"


def _data(array: np.ndarray) -> list[Any]:
    flat = array.ravel()
    if flat.dtype.kind == "f":
        return np.where(np.isnan(flat), None, flat.astype(np.float64)).tolist()  # type: ignore[call-overload]
    if flat.dtype.kind == "M":
        return [None if np.isnat(v) else str(np.datetime_as_string(v)) for v in flat]
    if flat.dtype.kind in "biuU":
        return flat.tolist()
    return [_cell(v) for v in flat]


def _cell(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
