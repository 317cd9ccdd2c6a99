"""Encode stage for KServe V2 over REST: predictions to `{"model_name", "outputs": [...]}`.

The outputs come from `tensors.output_tensors` (one per DataFrame column or dict key, else one
named `predict`). Each is written as JSON `data` (NaN as null, bytes as base64, as on
`/invocations`) or, when the request asked for binary outputs, as raw bytes after the JSON header
(the binary tensor data extension), with `Inference-Header-Content-Length` saying where the
header ends.
"""

from __future__ import annotations

from typing import Any

from sigserve.codecs.json_encode import encode_json
from sigserve.codecs.protocol import Encoded
from sigserve.codecs.tensors import (
    DEFAULT_OUTPUT,
    OutputTensor,
    datatype_of,
    json_data,
    output_name,
    output_tensors,
    raw_bytes,
)
from sigserve.codecs.v2.decode import HEADER_LENGTH

__all__ = ["DEFAULT_OUTPUT", "datatype_of", "encode_v2_response", "output_name"]
OCTET_STREAM = b"application/octet-stream"
HEADER_NAME = HEADER_LENGTH.lower().encode("ascii")


def encode_v2_response(
    predictions: Any,
    model_name: str,
    model_version: str,
    request_id: str | None,
    wanted: list[str] | None,
    default_name: str = DEFAULT_OUTPUT,
    binary_outputs: bool = False,
    binary_by_output: dict[str, bool] | None = None,
) -> bytes | Encoded:
    """JSON bytes, or the binary extension's answer when any output is to be binary."""
    tensors = output_tensors(predictions, default_name, wanted)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": []}
    if request_id is not None:
        document["id"] = request_id
    if not binary_outputs and not binary_by_output:
        document["outputs"] = [_json_output(tensor) for tensor in tensors]
        return encode_json(document)
    chosen = binary_by_output or {}
    raw: list[bytes] = []
    for tensor in tensors:
        if chosen.get(tensor.name, binary_outputs):
            data = raw_bytes(tensor)
            raw.append(data)
            document["outputs"].append({**_header(tensor), "parameters": {"binary_data_size": len(data)}})
        else:
            document["outputs"].append(_json_output(tensor))
    header = encode_json(document)
    if not raw:
        return header
    return Encoded(b"".join([header, *raw]), OCTET_STREAM, ((HEADER_NAME, b"%d" % len(header)),))


def _header(tensor: OutputTensor) -> dict[str, Any]:
    return {"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype}


def _json_output(tensor: OutputTensor) -> dict[str, Any]:
    return {**_header(tensor), "data": json_data(tensor)}
