"""`ModelInfer` both ways: a `ModelInferRequest` (typed `contents` or `raw_input_contents`) into
the V2 tensor core's `InputTensor`s, its answer back as a serialized `ModelInferResponse`.

The core (`decode_tensors`, `output_tensors`) makes the model data and verdicts the same as V2
JSON and binary; this module only reads and writes protobuf. Answers are raw when the request
was (tritonclient.grpc reads only `raw_output_contents`), typed otherwise, and raw whenever an
output is FP16, which has no typed field.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from sigserve.codecs.grpc.messages import ModelInferRequest, ModelInferResponse
from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.protocol import DecodedRequest, Incoming, ModelInterface
from sigserve.codecs.tensors import (
    DATATYPES,
    FORMAT,
    InputTensor,
    ObjectBudget,
    OutputTensor,
    bytes_elements,
    check_datatype,
    check_rows,
    check_shape,
    check_values,
    decode_tensors,
    output_name,
    output_tensors,
    raw_array,
    raw_bytes,
    shown,
)
from sigserve.errors import BadRequest

# The typed `InferTensorContents` field of each datatype, and the dtype protobuf's values come in.
CONTENTS_FIELDS: dict[str, tuple[str, np.dtype]] = {
    "BOOL": ("bool_contents", np.dtype(bool)),
    "INT8": ("int_contents", np.dtype(np.int32)), "INT16": ("int_contents", np.dtype(np.int32)),
    "INT32": ("int_contents", np.dtype(np.int32)), "INT64": ("int64_contents", np.dtype(np.int64)),
    "UINT8": ("uint_contents", np.dtype(np.uint32)), "UINT16": ("uint_contents", np.dtype(np.uint32)),
    "UINT32": ("uint_contents", np.dtype(np.uint32)), "UINT64": ("uint64_contents", np.dtype(np.uint64)),
    "FP32": ("fp32_contents", np.dtype(np.float32)), "FP64": ("fp64_contents", np.dtype(np.float64)),
    "BYTES": ("bytes_contents", np.dtype(object)),
}
RAW_ONLY = frozenset({"FP16"})  # BF16 has no numpy dtype: refused as an unknown datatype


def parse_request(body: bytes) -> Any:
    try:
        return ModelInferRequest.FromString(body)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError, whatever the implementation
        raise BadRequest("The gRPC request is not a valid ModelInferRequest message") from None


class GrpcCodec:
    name = "grpc"
    default_format = FORMAT

    def decode(self, request: Incoming, model: ModelInterface, limits: DecodeLimits) -> DecodedRequest:
        message = request.parsed if request.parsed is not None else parse_request(request.body)
        budget = ObjectBudget(limits)  # one decoded-bytes total for the whole request
        decoded = decode_tensors(request_tensors(message, limits, budget), request_parameters(message.parameters),
                                 model.input_schema, limits, budget)
        encode = functools.partial(
            encode_response, model_name=request.model_name, model_version=request.model_version,
            request_id=message.id, wanted=[output.name for output in message.outputs] or None,
            default_name=output_name(model.output_schema), raw=len(message.raw_input_contents) > 0,
        )
        return DecodedRequest(decoded, encode)

    def error_document(self, status: int, error_code: str, message: str) -> bytes:
        """gRPC carries an error as its status code and details: the details are the message."""
        return message.encode("utf-8")


GRPC = GrpcCodec()


def request_tensors(message: Any, limits: DecodeLimits, budget: ObjectBudget) -> list[InputTensor]:
    """Each input as a flat numpy array of its datatype, from its raw bytes or typed contents;
    rows are counted before any data is converted."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise BadRequest(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs: "
                         "it needs one per input, in the order of 'inputs'")
    tensors = []
    for position, item in enumerate(message.inputs):
        name = item.name
        datatype = check_datatype(name, item.datatype)
        shape = check_shape(name, list(item.shape))
        check_rows(name, shape, limits)
        if datatype == "BYTES":  # each element becomes a Python object: bounded before any is made
            budget.add_bytes(name, shape, len(raw[position]) if raw else item.contents.ByteSize())
        if raw:
            if item.HasField("contents"):
                raise BadRequest(f"V2 input {shown(name)} has typed contents in a request that uses raw_input_contents; "
                                 "send every input one way")
            data = raw_array(datatype, shape, raw[position], name)
        else:
            data = _typed(name, datatype, item.contents)
        tensors.append(InputTensor(name, shape, datatype, data))
    return tensors


def _typed(name: str, datatype: str, contents: Any) -> np.ndarray:
    if datatype in RAW_ONLY:
        raise BadRequest(f"V2 input {shown(name)}: {datatype} has no typed contents field; send it in raw_input_contents")
    field, dtype = CONTENTS_FIELDS[datatype]
    others = [descriptor.name for descriptor, _ in contents.ListFields() if descriptor.name != field]
    if others:  # never silently ignored, whether or not the datatype's own field has values too
        raise BadRequest(f"V2 input {shown(name)}: a {datatype} tensor's values go in contents.{field}, "
                         f"not {', '.join(others)}")
    values = getattr(contents, field)
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array
    array = np.array(values, dtype=dtype)
    wanted = DATATYPES[datatype]
    if wanted == dtype:
        return array
    info = np.iinfo(wanted)  # INT8/16 and UINT8/16 come in 32-bit fields: each value must fit
    if array.size and (array.min() < info.min or array.max() > info.max):
        check_values(name, datatype, array.tolist())  # raises the same refusal as JSON's
    return array.astype(wanted)


def request_parameters(parameters: Any) -> dict[str, Any] | None:
    """`InferParameter` values by name, as JSON's `parameters` object would give them; None if none."""
    if not parameters:
        return None
    return {key: _parameter(value) for key, value in parameters.items()}


def _parameter(value: Any) -> Any:
    which = value.WhichOneof("parameter_choice")
    return None if which is None else getattr(value, which)


def encode_response(
    predictions: Any, model_name: str, model_version: str, request_id: str, wanted: list[str] | None,
    default_name: str, raw: bool,
) -> bytes:
    outputs = output_tensors(predictions, default_name, wanted)
    response = ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id)
    raw = raw or any(output.datatype in RAW_ONLY for output in outputs)  # never both ways in one answer
    for output in outputs:
        tensor = response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        if raw:
            response.raw_output_contents.append(raw_bytes(output))
        else:
            _fill_contents(tensor.contents, output)
    return response.SerializeToString()


def _fill_contents(contents: Any, output: OutputTensor) -> None:
    field = getattr(contents, CONTENTS_FIELDS[output.datatype][0])
    field.extend(bytes_elements(output) if output.datatype == "BYTES" else output.array.tolist())
