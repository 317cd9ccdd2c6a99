"""KServe V2 (Open Inference Protocol) inference requests over REST: the JSON document, and the
binary tensor data extension (a JSON header of `Inference-Header-Content-Length` bytes, then each
input's raw bytes in input order, sized by its `parameters.binary_data_size`).

Both are read into `InputTensor`s and decoded by `tensors.decode_tensors`, so JSON, binary and
gRPC give the same verdicts on the same values. Each JSON input's `data` (flat row-major or
nested) must hold values of its declared `datatype`; binary data is the declared datatype by
construction and is read zero-copy where it can be.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from sigserve.codecs.base import Decoded
from sigserve.codecs.json_parse import check_json_size, parse_json
from sigserve.codecs.limits import DEFAULT_LIMITS, DecodeLimits
from sigserve.codecs.tensors import (
    BYTES_ELEMENT_COST,
    DATATYPES,
    FORMAT,
    InputTensor,
    check_datatype,
    check_rows,
    check_shape,
    decode_tensors,
    raw_array,
)
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

__all__ = ["DATATYPES", "FORMAT", "V2Request", "decode_v2"]
HEADER = "Inference-Header-Content-Length"
# Request parameters that ask something of the protocol, not of the model: not passed on as params.
PROTOCOL_PARAMETERS = frozenset({"binary_data_output"})


@dataclass(frozen=True)
class V2Request:
    decoded: Decoded
    id: str | None
    outputs: list[str] | None  # names the client asked for; None: all
    binary_outputs: bool = False  # `parameters.binary_data_output`: outputs as binary unless asked otherwise
    binary_by_output: dict[str, bool] | None = None  # each requested output's `parameters.binary_data`


def decode_v2(
    body: bytes, schema: Schema | None, limits: DecodeLimits = DEFAULT_LIMITS, header_length: str | None = None
) -> V2Request:
    """`header_length`: the `Inference-Header-Content-Length` header's value, when sent."""
    header, binary = _split(body, header_length)
    check_json_size(header, limits, "The V2 request")
    try:
        document = parse_json(header)
    except BadRequest:
        if header_length is None:
            _refuse_unannounced_binary(body)
        raise
    if not isinstance(document, dict):
        raise BadRequest("A V2 inference request must be a JSON object with an 'inputs' list")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("A V2 inference request needs a non-empty 'inputs' list")
    check_v2_rows(raw_inputs, limits)
    reader = _BinaryReader(binary, header_length is not None)
    inputs = [_input(item, i, reader, limits) for i, item in enumerate(raw_inputs)]
    reader.finish()
    params = document.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadRequest("V2 'parameters' must be an object")
    binary_outputs = False
    if params is not None and not PROTOCOL_PARAMETERS.isdisjoint(params):
        binary_outputs = _flag(params.get("binary_data_output", False), "'parameters.binary_data_output'")
        params = {key: value for key, value in params.items() if key not in PROTOCOL_PARAMETERS}
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("V2 'id' must be a string")
    names, binary_by_output = _outputs(document)
    return V2Request(decode_tensors(inputs, params, schema, limits), request_id, names, binary_outputs,
                     binary_by_output)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.strip()
    if not text.isdigit():
        raise BadRequest(f"The {HEADER} header must be a non-negative integer, got {header_length!r}")
    length = int(text)
    if length > len(body):
        raise BadRequest(f"The {HEADER} header says the JSON header has {length} bytes, but the body has only "
                         f"{len(body)}")
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def _refuse_unannounced_binary(body: bytes) -> None:
    """A JSON document followed by more bytes is binary tensor data sent without the header."""
    text = body.decode("utf-8", "surrogateescape")
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return
    extra = len(body) - len(text[:end].encode("utf-8", "surrogateescape"))
    if extra:
        raise BadRequest(f"The request body has {extra} bytes after its JSON document: binary tensor data needs the "
                         f"{HEADER} header (the length of the JSON part)")


class _BinaryReader:
    """Hands out each binary input's bytes in input order, and refuses sizes that do not add up."""

    def __init__(self, data: memoryview, announced: bool) -> None:
        self.data, self.announced, self.offset = data, announced, 0

    def take(self, name: str, size: Any) -> memoryview:
        if not self.announced:
            raise BadRequest(f"V2 input {name!r} has 'binary_data_size', but binary tensor data needs the {HEADER} "
                             "header (the length of the JSON part)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"V2 input {name!r}: 'binary_data_size' must be a non-negative integer, got {size!r}")
        end = self.offset + size
        if end > len(self.data):
            raise BadRequest(f"V2 input {name!r}: 'binary_data_size' is {size} bytes, but only "
                             f"{len(self.data) - self.offset} bytes of binary data are left in the body")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def finish(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise BadRequest(f"The request body has {left} bytes of binary data after the inputs' 'binary_data_size' "
                             "(the JSON header's length or an input's size is wrong)")


def _input(item: Any, position: int, reader: _BinaryReader, limits: DecodeLimits) -> InputTensor:
    if not isinstance(item, dict):
        raise BadRequest(f"V2 input {position} must be an object with name, shape, datatype and data")
    name = item.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"V2 input {position}: 'name' must be a string, got {name!r}")
    parameters = item.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"V2 input {name!r}: 'parameters' must be an object, got {parameters!r}")
    binary = parameters is not None and "binary_data_size" in parameters
    missing = [key for key in ("shape", "datatype") if key not in item]
    if not binary and "data" not in item:
        missing.append("data")
    if missing:
        raise BadRequest(f"V2 input {position} is missing {missing}")
    if binary:
        shape = check_shape(name, item["shape"])
        datatype = check_datatype(name, item["datatype"])
        if "data" in item:
            raise BadRequest(f"V2 input {name!r} has both 'data' and 'binary_data_size': send its values one way")
        raw = reader.take(name, parameters["binary_data_size"])
        if datatype == "BYTES":
            limits.check_decoded(len(raw) + BYTES_ELEMENT_COST * math.prod(shape), f"V2 input {name!r}", estimated=True)
        return InputTensor(name, shape, datatype, raw_array(datatype, shape, raw, name))
    # JSON: shape and datatype are checked with the values, by decode_tensors
    shape = item["shape"]
    return InputTensor(name, tuple(shape) if isinstance(shape, list) else shape, item["datatype"],
                       _flatten(item["data"], name))


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


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"V2 {what} must be true or false, got {value!r}")
    return value


def _outputs(document: dict[str, Any]) -> tuple[list[str] | None, dict[str, bool] | None]:
    outputs = document.get("outputs")
    if outputs is None:
        return None, None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise BadRequest("V2 'outputs' must be a list of objects with a 'name'")
    binary: dict[str, bool] = {}
    for output in outputs:
        parameters = output.get("parameters")
        if parameters is None:
            continue
        if not isinstance(parameters, dict):
            raise BadRequest(f"V2 output {output['name']!r}: 'parameters' must be an object, got {parameters!r}")
        if "binary_data" in parameters:
            binary[output["name"]] = _flag(parameters["binary_data"], f"output {output['name']!r}: 'binary_data'")
    return [o["name"] for o in outputs], binary or None


def check_v2_rows(raw_inputs: list[Any], limits: DecodeLimits) -> None:
    """Each V2 input's first dimension (its rows), before its data is flattened and converted."""
    for item in raw_inputs:
        if isinstance(item, dict):
            check_rows(item.get("name"), item.get("shape"), limits)  # type: ignore[arg-type]
