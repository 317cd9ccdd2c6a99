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
from dataclasses import dataclass
from typing import Any

from sigserve.codecs.base import Decoded
from sigserve.codecs.json_parse import check_json_size, parse_json
from sigserve.codecs.limits import DEFAULT_LIMITS, DecodeLimits
from sigserve.codecs.tensors import (
    DATATYPES,
    FORMAT,
    InputTensor,
    ObjectBudget,
    check_datatype,
    check_rows,
    check_shape,
    decode_tensors,
    raw_array,
    shown,
)
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

__all__ = ["DATATYPES", "FORMAT", "HEADER_LENGTH", "V2Request", "decode_v2"]
# The binary extension's header: the length of the JSON part (on requests and binary answers).
HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_LENGTH_DIGITS = 19  # int64's
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
    except BadRequest as exc:
        if header_length is None:
            _refuse_unannounced_binary(body)
            raise
        raise BadRequest(f"The first {len(header)} bytes of the body ({HEADER_LENGTH}) are not a JSON document: "
                         f"{exc.message.removeprefix('Invalid JSON: ')}") from None
    if not isinstance(document, dict):
        raise BadRequest("A V2 inference request must be a JSON object with an 'inputs' list")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("A V2 inference request needs a non-empty 'inputs' list")
    check_v2_rows(raw_inputs, limits)
    reader = _BinaryReader(binary, header_length is not None)
    budget = ObjectBudget(limits)
    inputs = [_input(item, i, reader, budget) for i, item in enumerate(raw_inputs)]
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
    return V2Request(decode_tensors(inputs, params, schema, limits, budget), request_id, names, binary_outputs,
                     binary_by_output)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()):  # str.isdigit takes '²' and other scripts' digits
        raise BadRequest(f"The {HEADER_LENGTH} header must be a non-negative integer, got {shown(header_length)}")
    if len(text) > MAX_LENGTH_DIGITS:
        raise BadRequest(f"The {HEADER_LENGTH} header has {len(text)} digits; a length has at most {MAX_LENGTH_DIGITS}")
    length = int(text)
    if length > len(body):
        raise BadRequest(f"The {HEADER_LENGTH} header says the JSON header has {length} bytes, but the body has only "
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
                         f"{HEADER_LENGTH} header (the length of the JSON part)")


class _BinaryReader:
    """Hands out each binary input's bytes in input order, and refuses sizes that do not add up."""

    def __init__(self, data: memoryview, announced: bool) -> None:
        self.data, self.announced, self.offset = data, announced, 0

    def take(self, name: str, size: Any) -> memoryview:
        if not self.announced:
            raise BadRequest(f"V2 input {shown(name)} has 'binary_data_size', but binary tensor data needs the "
                             f"{HEADER_LENGTH} header (the length of the JSON part)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"V2 input {shown(name)}: 'binary_data_size' must be a non-negative integer, "
                             f"got {shown(size)}")
        end = self.offset + size
        if end > len(self.data):
            raise BadRequest(f"V2 input {shown(name)}: 'binary_data_size' is {size} bytes, but only "
                             f"{len(self.data) - self.offset} bytes of binary data are left in the body")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def finish(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise BadRequest(f"The request body has {left} bytes of binary data after the inputs' 'binary_data_size' "
                             "(the JSON header's length or an input's size is wrong)")


def _input(item: Any, position: int, reader: _BinaryReader, budget: ObjectBudget) -> InputTensor:
    if not isinstance(item, dict):
        raise BadRequest(f"V2 input {position} must be an object with name, shape, datatype and data")
    name = item.get("name")
    if not isinstance(name, str):
        raise BadRequest(f"V2 input {position}: 'name' must be a string, got {shown(name)}")
    parameters = item.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"V2 input {shown(name)}: 'parameters' must be an object, got {shown(parameters)}")
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
            raise BadRequest(f"V2 input {shown(name)} has both 'data' and 'binary_data_size': send its values one way")
        raw = reader.take(name, parameters["binary_data_size"])
        if datatype == "BYTES":  # each element becomes a Python object: counted before any is made
            budget.add_bytes(name, shape, len(raw))
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
            raise BadRequest(f"V2 input {shown(name)}: 'data' mixes nested lists and values at one level")
        data = list(itertools.chain.from_iterable(data))
    return data


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"V2 {what} must be true or false, got {shown(value)}")
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
            raise BadRequest(f"V2 output {shown(output['name'])}: 'parameters' must be an object, "
                             f"got {shown(parameters)}")
        if "binary_data" in parameters:
            binary[output["name"]] = _flag(parameters["binary_data"], f"output {shown(output['name'])}: 'binary_data'")
    return [o["name"] for o in outputs], binary or None


def check_v2_rows(raw_inputs: list[Any], limits: DecodeLimits) -> None:
    """Each V2 input's first dimension (its rows), before its data is flattened and converted."""
    for item in raw_inputs:
        if isinstance(item, dict):
            check_rows(item.get("name"), item.get("shape"), limits)  # type: ignore[arg-type]
