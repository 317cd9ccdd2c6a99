"""The Open Inference Protocol (KServe V2) part of the OpenAPI document: server and model
metadata, readiness, inference (JSON, and the binary tensor data extension), the repository
index and Triton's `…/config` and `…/stats`. Errors have the protocol's `{"error": …}` shape."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.tensors import DATATYPE_NAMES
from sigserve.codecs.v2.decode import HEADER_LENGTH

TAG = {"name": "v2", "description": "The Open Inference Protocol (KServe V2, Triton's HTTP API)"}
JSON = "application/json"
BINARY = "application/octet-stream"
BINARY_NOTE = (
    f"**Binary tensor data extension:** send the JSON request followed by the inputs' raw bytes, with "
    f"`{HEADER_LENGTH}: <length of the JSON part>` and, per input, `parameters.binary_data_size`. Tensors are "
    "flat, row-major and little-endian; each BYTES element has a 4-byte little-endian length prefix; BOOL is "
    "one byte per element. Ask for binary outputs with `parameters.binary_data: true` on an output, or "
    "`parameters.binary_data_output: true` on the request: the answer is then the JSON response followed by "
    f"the outputs' bytes, with `{HEADER_LENGTH}` and per-output `binary_data_size`."
)

_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": -1}}
_PARAMETERS = {"type": "object", "additionalProperties": {"type": ["string", "number", "integer", "boolean"]}}
_DATA = {"type": "array", "description": "The tensor's elements, flat (row-major) or nested by shape."}
SCHEMAS: dict[str, Any] = {
    "V2Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "V2TensorMetadata": {
        "type": "object", "required": ["name", "datatype", "shape"],
        "properties": {"name": {"type": "string"}, "datatype": {"enum": DATATYPE_NAMES}, "shape": _SHAPE},
    },
    "V2ServerMetadata": {
        "type": "object", "required": ["name", "version", "extensions"],
        "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                       "extensions": {"type": "array", "items": {"type": "string"}}},
    },
    "V2ModelMetadata": {
        "type": "object", "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string", "description": "The MLflow loader module"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2TensorMetadata"}},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2TensorMetadata"}},
        },
    },
    "V2Ready": {"type": "object", "required": ["name", "ready"],
                "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}}},
    "V2RequestInput": {
        "type": "object", "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"}, "shape": _SHAPE, "datatype": {"enum": DATATYPE_NAMES},
            "parameters": {**_PARAMETERS, "properties": {"binary_data_size": {
                "type": "integer", "minimum": 0, "description": "Bytes of this input after the JSON part"}}},
            "data": _DATA,
        },
    },
    "V2RequestOutput": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": {**_PARAMETERS, "properties": {
            "binary_data": {"type": "boolean", "description": "Answer this output as binary tensor data"}}}},
    },
    "V2InferenceRequest": {
        "type": "object", "required": ["inputs"],
        "description": "One tensor per signature input (by name; unnamed signatures by position). " + BINARY_NOTE,
        "properties": {
            "id": {"type": "string"},
            "parameters": {**_PARAMETERS, "description": "The model's params (its signature's `params`), and "
                           "`binary_data_output`.", "properties": {"binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2RequestInput"}},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2RequestOutput"}},
        },
    },
    "V2InferenceResponse": {
        "type": "object", "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name", "shape", "datatype"],
                "properties": {"name": {"type": "string"}, "shape": _SHAPE, "datatype": {"enum": DATATYPE_NAMES},
                               "parameters": {**_PARAMETERS, "properties": {
                                   "binary_data_size": {"type": "integer", "minimum": 0}}},
                               "data": _DATA}}},
        },
    },
    "V2RepositoryIndex": {
        "type": "array",
        "items": {"type": "object", "required": ["name", "version", "state"], "properties": {
            "name": {"type": "string"}, "version": {"type": "string"},
            "state": {"enum": ["READY", "UNAVAILABLE"]},
            "reason": {"type": "string",
                       "description": "Why not READY (e.g. not in memory under --max-loaded-models)"}}},
    },
    "V2ModelConfig": {
        "type": "object", "required": ["name", "max_batch_size", "input", "output"],
        "description": "Triton's model configuration, from the signature.",
        "properties": {
            "name": {"type": "string"}, "platform": {"type": "string"}, "backend": {"type": "string"},
            "max_batch_size": {"type": "integer", "minimum": 0,
                               "description": "The micro-batch size when batching is on, else 0"},
            "input": {"type": "array", "items": {"$ref": "#/components/schemas/V2ConfigTensor"}},
            "output": {"type": "array", "items": {"$ref": "#/components/schemas/V2ConfigTensor"}},
        },
    },
    "V2ConfigTensor": {
        "type": "object", "required": ["name", "data_type", "dims"],
        "properties": {"name": {"type": "string"}, "data_type": {"type": "string", "examples": ["TYPE_FP64"]},
                       "dims": _SHAPE},
    },
    "V2Duration": {"type": "object", "required": ["count", "ns"],
                   "properties": {"count": {"type": "integer"}, "ns": {"type": "integer"}}},
    "V2ModelStats": {
        "type": "object", "required": ["model_stats"],
        "description": "Triton's statistics extension: counts and nanoseconds per phase, per model version.",
        "properties": {"model_stats": {"type": "array", "items": {
            "type": "object", "required": ["name", "version", "inference_count", "execution_count", "inference_stats"],
            "properties": {
                "name": {"type": "string"}, "version": {"type": "string"},
                "last_inference": {"type": "integer", "description": "Milliseconds since the epoch"},
                "inference_count": {"type": "integer"}, "execution_count": {"type": "integer"},
                "inference_stats": {"type": "object", "additionalProperties": {
                    "$ref": "#/components/schemas/V2Duration"}},
                "batch_stats": {"type": "array", "items": {"type": "object"}},
            }}}},
    },
}
ERRORS = {
    400: "The body could not be read (JSON or binary), does not match the model signature, or the model raised",
    404: "No model of this name or version is served",
    413: "The request body is larger than the server accepts",
    415: "An unsupported content type",
    503: "Every scoring slot is busy; retry shortly",
    504: "Scoring ran past the request timeout",
}


def v2_paths(names: list[str]) -> dict[str, Any]:
    """Every V2 path; `{model_name}` lists the served names."""
    name = _path_parameter("model_name", "A served model's name", {"type": "string", "enum": list(names)})
    version = _path_parameter("model_version", "A served version (its registry version, or `local`)",
                              {"type": "string"})
    paths: dict[str, Any] = {
        "/v2": {"get": _operation("v2ServerMetadata", "Server metadata and protocol extensions",
                                  {"200": _json("The server's name, version and extensions", "V2ServerMetadata")})},
        "/v2/repository/index": {"post": {
            **_operation("v2RepositoryIndex", "Every served model version and its state",
                         {"200": _json("The served versions", "V2RepositoryIndex")}),
            "requestBody": {"required": False, "content": {JSON: {"schema": {
                "type": "object", "properties": {"ready": {"type": "boolean"}}}}}},
        }},
        "/v2/models/stats": {"get": _operation("v2AllModelStats", "Inference statistics of every served version",
                                               {"200": _json("Statistics", "V2ModelStats")})},
    }
    for prefix, params, suffix, what in (
        ("/v2/models/{model_name}", [name], "", "the model (its newest served version)"),
        ("/v2/models/{model_name}/versions/{model_version}", [name, version], "Version", "this version"),
    ):
        paths[prefix] = {"get": _operation(f"v2Model{suffix}Metadata", f"Tensor metadata of {what}",
                                           {"200": _json("Inputs and outputs as tensors", "V2ModelMetadata"),
                                            **_errors(404)}, params)}
        paths[prefix + "/ready"] = {"get": _operation(f"v2Model{suffix}Ready", f"Readiness of {what}", {
            "200": _json("Ready", "V2Ready"), "503": _json("Not ready (or the server is draining)", "V2Ready"),
            **_errors(404)}, params)}
        paths[prefix + "/infer"] = {"post": _infer(f"v2Model{suffix}Infer", f"Score {what}", params)}
        paths[prefix + "/config"] = {"get": _operation(
            f"v2Model{suffix}Config", f"Triton model configuration of {what}",
            {"200": _json("The configuration", "V2ModelConfig"), **_errors(404)}, params)}
        paths[prefix + "/stats"] = {"get": _operation(f"v2Model{suffix}Stats", f"Inference statistics of {what}",
                                                      {"200": _json("Statistics", "V2ModelStats"),
                                                       **_errors(404)}, params)}
    return paths


def _infer(operation_id: str, summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    header = {"name": HEADER_LENGTH, "in": "header", "required": False, "schema": {"type": "integer", "minimum": 0},
              "description": "Binary tensor data extension: the length of the JSON part of the body"}
    response_header = {HEADER_LENGTH: {"description": "Present when outputs follow as binary data",
                                       "schema": {"type": "integer"}}}
    return {
        **_operation(operation_id, summary, {
            "200": {"description": "The outputs", "headers": response_header, "content": {
                JSON: {"schema": _ref("V2InferenceResponse")},
                BINARY: {"schema": {"type": "string", "format": "binary",
                                    "description": "The JSON response followed by binary outputs"}}}},
            **_errors(*ERRORS)}, [*params, header]),
        "description": BINARY_NOTE,
        "requestBody": {"required": True, "content": {
            JSON: {"schema": _ref("V2InferenceRequest")},
            BINARY: {"schema": {"type": "string", "format": "binary",
                                "description": f"The JSON request ({HEADER_LENGTH} bytes) then the inputs' bytes"}},
        }},
    }


def _operation(operation_id: str, summary: str, responses: dict[str, Any],
               parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    operation = {"tags": [TAG["name"]], "operationId": operation_id, "summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _path_parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


def _json(description: str, component: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(component)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(ERRORS[status], "V2Error") for status in statuses}
