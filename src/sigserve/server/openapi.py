"""The OpenAPI 3.1 document for one served model, and a Swagger UI page that renders it.

The request schemas are built from the model's signature, so a client (or a code generator)
sees the real column names, types and required columns instead of a generic "any JSON". The
schemas describe the canonical JSON forms; the server's exact-conversion rules accept a little
more (numeric strings for numbers, 0/1 for booleans), which the request description says.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from sigserve import __version__
from sigserve.errors import (
    BadRequest,
    BodyTooLarge,
    InvalidParameter,
    Overloaded,
    PredictionTimeout,
    SigserveError,
    UnsupportedMediaType,
)
from sigserve.model.mlmodel import ModelMeta
from sigserve.model.schema import (
    AnyType,
    ArrayType,
    ColSpec,
    DataType,
    MapType,
    ObjectType,
    ParamSpec,
    Schema,
    TensorSpec,
    ValueType,
)
from sigserve.server.docs_assets import asset_url
from sigserve.server.openapi_v2 import SCHEMAS as V2_SCHEMAS
from sigserve.server.openapi_v2 import TAG as V2_TAG
from sigserve.server.openapi_v2 import v2_paths

# No `jsonSchemaDialect`: the default, OpenAPI 3.1's base dialect (JSON Schema 2020-12 and OpenAPI's
# vocabulary), is the one tools read; Swagger UI warns about any other.
OPENAPI_VERSION = "3.1.0"

JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
COMPONENT_NAMES = {
    "dataframe_split": "DataframeSplit",
    "dataframe_records": "DataframeRecords",
    "instances": "Instances",
    "inputs": "Inputs",
}
SEED_MEDIA_TYPES = {
    f"{JSON}; format=pandas-split": "dataframe_split",
    f"{JSON}; format=pandas-records": "dataframe_records",
}
ERROR_RESPONSES = {
    400: "The body could not be read, does not match the model signature, or the model raised",
    413: "The request body is larger than the server accepts",
    415: "An unsupported content type, a charset other than UTF-8, or an unknown parameter",
    503: "Every scoring slot is busy; retry shortly",
    504: "Scoring ran past the request timeout",
}
ERROR_EXAMPLES: tuple[tuple[type[SigserveError], str], ...] = (
    (BadRequest, "Model is missing inputs ['petal width (cm)']."),
    (InvalidParameter, "Invalid parameters: 'k': expected long, got 'seven' (str)"),
    (BodyTooLarge, "The request body is larger than the server's limit"),
    (UnsupportedMediaType, "This predictor only supports the following content types: [...]. Got 'x/y'."),
    (Overloaded, "The server is busy; retry shortly"),
    (PredictionTimeout, "Request processing time exceeded the limit of 60s"),
)
REQUEST_NOTES = (
    "Send exactly one of `dataframe_split`, `dataframe_records`, `instances` or `inputs`, "
    "optionally with `params`. Values are converted to the signature's types only when the "
    "conversion is exact: strings holding numbers are accepted for numeric columns and 0/1 for "
    "booleans; datetimes are ISO-8601 strings and binary values are base64."
)

_INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
_SCALARS: dict[DataType, dict[str, Any]] = {
    DataType.boolean: {"type": "boolean"},
    DataType.integer: {"type": "integer", "format": "int32", **_INT32},
    DataType.long: {"type": "integer", "format": "int64", **_INT64},
    DataType.float: {"type": "number", "format": "float"},
    DataType.double: {"type": "number", "format": "double"},
    DataType.string: {"type": "string"},
    DataType.binary: {"type": "string", "format": "byte", "contentEncoding": "base64"},
    DataType.datetime: {"type": "string", "format": "date-time"},
}
# The server reads null as NaN (floats), None (strings, booleans) or NaT (datetimes); integer
# and binary columns refuse it.
_NULLABLE = {DataType.boolean, DataType.float, DataType.double, DataType.string, DataType.datetime}
# MLflow writes datetime param defaults without an offset, which `format: date-time` (RFC 3339)
# would call invalid, and validators check defaults against formats.
_DATETIME_PARAM = {"type": "string", "description": "An ISO-8601 date or datetime; without an offset, UTC."}
_INDEX = {"type": "array", "description": "Row labels; ignored by the model."}


def openapi_document(
    meta: ModelMeta, *, name: str | None = None, version: str | None = None, alias: str | None = None
) -> dict[str, Any]:
    """The whole document as plain JSON data. It is round-tripped through JSON so that callers
    share no sub-dict with this module's constants or with another part of the document."""
    title = name or meta.path.name or "model"
    version = version or "local"
    signature = meta.signature
    inputs = signature.inputs if signature else None
    formats = _formats(inputs)
    if meta.signature_from_type_hint:  # MLflow's rule: only `inputs`, validated by the model's hints
        formats = {"inputs": formats.get("inputs", {"description": "Validated by the model's type hints."})}
    schemas = {COMPONENT_NAMES[field]: schema for field, schema in formats.items()}
    schemas["Params"] = _params(signature.params if signature else None)
    schemas["InvocationRequest"] = _request(formats)
    schemas["Predictions"] = _predictions(signature.outputs if signature else None)
    schemas["Error"] = _ERROR
    schemas.update(V2_SCHEMAS)
    document = {
        "openapi": OPENAPI_VERSION,
        "info": _info(meta, title, version, alias),
        "tags": [
            {"name": "scoring", "description": "Predictions from the model"},
            {"name": "health", "description": "Liveness and readiness probes"},
            {"name": "model", "description": "What is being served"},
            V2_TAG,
        ],
        "paths": {
            "/invocations": {"post": _invocations(meta, inputs, formats)},
            **_service_paths(meta, title, version, alias),
            **v2_paths([title]),
        },
        "components": {"schemas": schemas},
    }
    return orjson.loads(orjson.dumps(document))


def docs_html(openapi_url: str = "/openapi.json", title: str = "sigserve") -> str:
    """Swagger UI from sigserve's own `/docs/static/` (a package's files), so the page needs no
    internet; no online validator either (`validatorUrl: null`)."""
    url_js = json.dumps(openapi_url).replace("<", "\\u003c")
    url_attr = html.escape(openapi_url, quote=True)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{asset_url("swagger-ui.css")}">
<link rel="icon" type="image/png" href="{asset_url("favicon-32x32.png")}">
</head>
<body>
<noscript>Swagger UI needs JavaScript. The API description is at
<a href="{url_attr}">{url_attr}</a>.</noscript>
<div id="swagger-ui"></div>
<script src="{asset_url("swagger-ui-bundle.js")}"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {url_js},
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null,
}});
</script>
</body>
</html>
"""


def _info(meta: ModelMeta, title: str, version: str, alias: str | None) -> dict[str, Any]:
    described = f"`{title}`" + (f" (alias `@{alias}`)" if alias else "")
    return {
        "title": title,
        "version": version,
        "description": (
            f"Scoring API for the MLflow model {described}, served by sigserve {__version__} "
            f"with loader module `{meta.loader_module}`. Request schemas follow the model signature."
        ),
    }


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


def _json_content(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {JSON: {"schema": schema, **extra}}


# --- /invocations ----------------------------------------------------------------------------


def _invocations(meta: ModelMeta, inputs: Schema | None, formats: dict[str, Any]) -> dict[str, Any]:
    return {
        "tags": ["scoring"],
        "operationId": "invocations",
        "summary": "Score the model",
        "requestBody": {
            "required": True,
            "description": REQUEST_NOTES,
            "content": _request_content(meta, inputs, formats),
        },
        "responses": {
            "200": {"description": "The model's predictions", "content": _json_content(_ref("Predictions"))},
            **_error_responses(),
        },
    }


def _request_content(meta: ModelMeta, inputs: Schema | None, formats: dict[str, Any]) -> dict[str, Any]:
    example = _serving_example(meta)
    content = {JSON: {"schema": _ref("InvocationRequest"), **({"example": example} if example else {})}}
    for media_type, field in SEED_MEDIA_TYPES.items():
        if field in formats:
            content[media_type] = {"schema": _ref(COMPONENT_NAMES[field])}
    content["text/csv"] = {"schema": {"type": "string", "description": _csv_note(inputs)}}
    content[PARQUET] = {"schema": {"type": "string", "format": "binary"}}
    return content


def _error_responses() -> dict[str, Any]:
    responses = {}
    for status, description in ERROR_RESPONSES.items():
        examples = {
            error.error_code: {"value": {"error_code": error.error_code, "message": message}}
            for error, message in ERROR_EXAMPLES
            if error.status_code == status
        }
        content = _json_content(_ref("Error"), examples=examples)
        responses[str(status)] = {"description": description, "content": content}
    return responses


def _serving_example(meta: ModelMeta) -> Any:
    """The request body MLflow saved with the model: the most realistic example there is."""
    path = meta.serving_input_path
    if path is None or not path.is_file():
        return None
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _csv_note(inputs: Schema | None) -> str:
    note = "A CSV table with a header row, as written by `DataFrame.to_csv(index=False)`."
    if inputs is not None and inputs.has_names:
        note += " Columns: " + ", ".join(f"`{n}`" for n in inputs.names) + "."
    return note


def _request(formats: dict[str, Any]) -> dict[str, Any]:
    branches = [
        {
            "title": field,
            "type": "object",
            "required": [field],
            "properties": {field: _ref(COMPONENT_NAMES[field]), "params": _ref("Params")},
        }
        for field in formats
    ]
    return {"description": REQUEST_NOTES, "oneOf": branches}


# --- payload formats per signature kind ------------------------------------------------------


def _formats(inputs: Schema | None) -> dict[str, Any]:
    """Field → schema of its value, for each format this signature can be sent in."""
    if inputs is None:
        formats = _generic_formats()
    elif inputs.is_tensor:
        formats = _tensor_formats(inputs)
    elif inputs.has_names:
        formats = _named_column_formats(inputs)
    else:
        formats = _unnamed_column_formats(inputs)
    return {field: formats[field] for field in FORMATS if field in formats}


def _generic_formats() -> dict[str, Any]:
    return {
        "dataframe_split": _split({"type": "array"}, {"type": "array", "items": {"type": "string"}}, False),
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": "array", "description": "A list of rows, or of `{name: value}` objects."},
        "inputs": {"description": "An array, or an object of name → array."},
    }


def _named_column_formats(inputs: Schema) -> dict[str, Any]:
    columns = {spec.name: _column(spec) for spec in inputs.inputs if isinstance(spec, ColSpec)}
    required = inputs.required_names
    records = {"type": "array", "items": _object(columns, required)}
    names = {"type": "array", "items": {"enum": list(columns)}, "uniqueItems": True,
             "description": "Column names from the signature, in any order."}
    if required:
        names["allOf"] = [{"contains": {"const": name}} for name in required]
    row = {"type": "array", "items": _any_of(columns.values())}
    either = {name: _any_of([{"type": "array", "items": schema}, schema]) for name, schema in columns.items()}
    by_column = _object(either, required)
    by_column["description"] = "Column name → list of values (or one value, for a single row)."
    rows = [records]
    if len(columns) == 1:
        rows.append({"type": "array", "items": next(iter(columns.values()))})
    return {
        "dataframe_split": _split(row, names, True),
        "dataframe_records": records,
        "instances": _any_of(rows),
        "inputs": _any_of([by_column, *rows]),
    }


def _unnamed_column_formats(inputs: Schema) -> dict[str, Any]:
    """Unnamed columns are matched by position, so only the count and the positions count."""
    types = [_column(spec) for spec in inputs.inputs if isinstance(spec, ColSpec)]
    width = {"minItems": len(types), "maxItems": len(types)}
    row = {"type": "array", "prefixItems": types, **width}
    record = {"type": "object", "additionalProperties": _any_of(types),
              "minProperties": len(types), "maxProperties": len(types)}
    labels = {"type": "array", "items": {"type": ["string", "integer"]}, **width}
    rows = {"type": "array", "items": _any_of([row, record])}
    return {
        "dataframe_split": _split(row, labels, False),
        "dataframe_records": {"type": "array", "items": record},
        "instances": rows,
        "inputs": rows,
    }


def _tensor_formats(inputs: Schema) -> dict[str, Any]:
    specs = [spec for spec in inputs.inputs if isinstance(spec, TensorSpec)]
    if inputs.has_names:
        return _named_tensor_formats(specs)
    if len(specs) != 1:
        return _generic_formats()
    spec = specs[0]
    whole = _tensor(spec.dtype, spec.shape)
    formats = {"instances": whole, "inputs": whole}
    if len(spec.shape) == 2:
        cell = _dtype(spec.dtype)
        width = {} if spec.shape[1] == -1 else {"minItems": spec.shape[1], "maxItems": spec.shape[1]}
        labels = {"type": "array", "items": {"type": ["string", "integer"]}, **width}
        formats["dataframe_split"] = _split({"type": "array", "items": cell, **width}, labels, False)
        record = {"type": "object", "additionalProperties": cell}
        formats["dataframe_records"] = {"type": "array", "items": record}
    return formats


def _named_tensor_formats(specs: list[TensorSpec]) -> dict[str, Any]:
    """Rows (records, instances) hold one batch element of each tensor; `inputs` the whole."""
    names = [str(spec.name) for spec in specs]
    whole = {str(spec.name): _tensor(spec.dtype, spec.shape) for spec in specs}
    element = {str(spec.name): _tensor(spec.dtype, spec.shape[1:]) for spec in specs}
    records = {"type": "array", "items": _object(element, names)}
    labels = {"type": "array", "items": {"enum": names}, "uniqueItems": True,
              "allOf": [{"contains": {"const": name}} for name in names]}
    return {
        "dataframe_split": _split({"type": "array", "items": _any_of(element.values())}, labels, True),
        "dataframe_records": records,
        "instances": records,
        "inputs": _object(whole, names),
    }


def _split(row: dict[str, Any], columns: dict[str, Any], columns_required: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["columns", "data"] if columns_required else ["data"],
        "properties": {"columns": columns, "data": {"type": "array", "items": row}, "index": _INDEX},
        "additionalProperties": False,
    }


# --- value schemas ---------------------------------------------------------------------------


def _column(spec: ColSpec) -> dict[str, Any]:
    schema = _value(spec.type)
    if not spec.required and not isinstance(spec.type, DataType):
        return _or_null(schema)
    return schema


def _value(value_type: ValueType) -> dict[str, Any]:
    """One value of a column type, as the server's enforcement reads JSON."""
    if isinstance(value_type, DataType):
        schema = dict(_SCALARS[value_type])
        return _or_null(schema) if value_type in _NULLABLE else schema
    if isinstance(value_type, ArrayType):
        return {"type": "array", "items": _value(value_type.items)}
    if isinstance(value_type, ObjectType):
        return _object_type(value_type)
    if isinstance(value_type, MapType):
        return {"type": "object", "additionalProperties": _value(value_type.values)}
    if isinstance(value_type, AnyType):
        return {}
    raise TypeError(f"unknown value type {value_type!r}")


def _object_type(obj: ObjectType) -> dict[str, Any]:
    properties = {
        prop.name: _value(prop.type) if prop.required else _or_null(_value(prop.type))
        for prop in obj.properties
    }
    schema = _object(properties, [prop.name for prop in obj.properties if prop.required])
    schema["additionalProperties"] = False
    return schema


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if not schema or (isinstance(kind, list) and "null" in kind):
        return schema
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _any_of(schemas: Iterable[dict[str, Any]]) -> dict[str, Any]:
    unique: dict[bytes, dict[str, Any]] = {}
    for schema in schemas:
        unique.setdefault(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS), schema)
    if any(not schema for schema in unique.values()):
        return {}
    if len(unique) == 1:
        return next(iter(unique.values()))
    return {"anyOf": list(unique.values())}


def _tensor(dtype: np.dtype, shape: tuple[int, ...]) -> dict[str, Any]:
    """Nested arrays, one level per dimension; a fixed dimension fixes that level's length."""
    schema = _dtype(dtype)
    for size in reversed(shape):
        schema = {"type": "array", "items": schema}
        if size != -1:
            schema.update(minItems=size, maxItems=size)
    return schema


def _dtype(dtype: np.dtype) -> dict[str, Any]:
    kind = dtype.kind
    if kind == "f":
        return {"type": "number", "format": "float" if dtype.itemsize <= 4 else "double"}
    if kind in "iu":
        info = np.iinfo(dtype)
        schema: dict[str, Any] = {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
        if kind == "i" and dtype.itemsize in (4, 8):
            schema["format"] = f"int{dtype.itemsize * 8}"
        return schema
    if kind == "b":
        return {"type": "boolean"}
    if kind == "U":
        return {"type": "string"}
    if kind == "S":
        return dict(_SCALARS[DataType.binary])
    if kind == "M":
        return dict(_SCALARS[DataType.datetime])
    return {}


# --- params, predictions, errors -------------------------------------------------------------


def _params(specs: tuple[ParamSpec, ...] | None) -> dict[str, Any]:
    if not specs:
        return {"type": "object", "description": "This model takes no params; any sent are ignored."}
    return {
        "type": "object",
        "description": "Params left out take their defaults; params not listed here are ignored.",
        "properties": {spec.name: _param(spec) for spec in specs},
    }


def _param(spec: ParamSpec) -> dict[str, Any]:
    if spec.type is DataType.datetime:
        schema: dict[str, Any] = _DATETIME_PARAM
    elif isinstance(spec.type, DataType):
        schema = dict(_SCALARS[spec.type])
    else:
        schema = _object_type(spec.type)
    for size in reversed(spec.shape or ()):
        schema = {"type": "array", "items": schema}
        if size != -1:
            schema.update(minItems=size, maxItems=size)
    return {**schema, "default": spec.default}


def _predictions(outputs: Schema | None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": _output(outputs)},
    }


def _output(outputs: Schema | None) -> dict[str, Any]:
    """The signature's outputs: a frame becomes records, a series or array a list."""
    if outputs is None:
        return {"description": "Whatever the model returns: a list, a list of records or an object."}
    if outputs.is_tensor:
        specs = [spec for spec in outputs.inputs if isinstance(spec, TensorSpec)]
        if outputs.has_names:
            return _object({str(s.name): _tensor(s.dtype, s.shape) for s in specs}, [])
        return _tensor(specs[0].dtype, specs[0].shape) if len(specs) == 1 else {}
    specs = [spec for spec in outputs.inputs if isinstance(spec, ColSpec)]
    columns = {str(i) if spec.name is None else spec.name: _value(spec.type) for i, spec in enumerate(specs)}
    records = {"type": "array", "items": _object(columns, [])}
    if len(specs) == 1:
        return _any_of([{"type": "array", "items": next(iter(columns.values()))}, records])
    return records


_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {
        "error_code": {
            "type": "string",
            "examples": sorted({error.error_code for error, _ in ERROR_EXAMPLES}),
        },
        "message": {"type": "string", "description": "What was wrong, safe to show; never a stack trace."},
    },
}


# --- the other endpoints ---------------------------------------------------------------------


def _get(tag: str, operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"tags": [tag], "operationId": operation_id, "summary": summary, "responses": responses}}


def _text(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": schema or {"type": "string"}}}}


def _service_paths(meta: ModelMeta, name: str, version: str, alias: str | None) -> dict[str, Any]:
    ready = {"200": {"description": "The model is loaded"}}
    metadata = _json_content(_METADATA, example=_metadata_example(meta, name, version, alias))
    return {
        "/ping": _get("health", "ping", "MLflow's readiness probe", ready),
        "/health": _get("health", "health", "Same as /ping", ready),
        "/v2/health/live": _get("health", "v2HealthLive", "KServe V2 liveness", {
            "200": _flag("The server is up", "live")}),
        "/v2/health/ready": _get("health", "v2HealthReady", "KServe V2 readiness", {
            "200": _flag("The model is loaded and scores its own serving example", "ready"),
            "503": _flag("The model failed on its own serving example (--allow-failing-example)", "ready")}),
        "/version": _get("model", "version", "sigserve's version", {
            "200": _text("The version string", {"type": "string", "examples": [__version__]})}),
        "/metadata": _get("model", "metadata", "What is being served", {
            "200": {"description": "The model's registry facts, loader and signature", "content": metadata}}),
        "/metrics": _get("health", "metrics", "Prometheus metrics", {
            "200": _text("Metrics in the Prometheus text exposition format"),
            "404": _text("Metrics are turned off")}),
        "/openapi.json": _get("model", "openapi", "This document", {
            "200": {"description": "The OpenAPI document", "content": _json_content({"type": "object"})}}),
        "/docs": _get("model", "docs", "Swagger UI for this document", {
            "200": {"description": "An HTML page", "content": {"text/html": {"schema": _TEXT}}}}),
    }


def _flag(description: str, key: str) -> dict[str, Any]:
    schema = {"type": "object", "required": [key], "properties": {key: {"type": "boolean"}}}
    return {"description": description, "content": _json_content(schema, example={key: True})}


_TEXT = {"type": "string"}
_MAYBE_TEXT = {"type": ["string", "null"]}
_SIGNATURE_PART = {"type": ["string", "null"], "description": "JSON-encoded specs, as in the MLmodel file."}
_METADATA = {
    "type": "object",
    "properties": {
        "name": _TEXT,
        "version": _TEXT,
        "alias": _MAYBE_TEXT,
        "model_uri": _TEXT,
        "registry": _MAYBE_TEXT,
        "source": _MAYBE_TEXT,
        "flavor": _TEXT,
        "loader_module": _TEXT,
        "model_id": _MAYBE_TEXT,
        "signature": {
            "type": ["object", "null"],
            "properties": {"inputs": _SIGNATURE_PART, "outputs": _SIGNATURE_PART, "params": _SIGNATURE_PART},
        },
        "load_seconds": {"type": "number"},
    },
}


def _metadata_example(meta: ModelMeta, name: str, version: str, alias: str | None) -> dict[str, Any]:
    """The part of /metadata this document knows; the registry facts come from the server."""
    return {
        "name": name,
        "version": version,
        "alias": alias,
        "flavor": meta.loader_module,
        "loader_module": meta.loader_module,
        "model_id": meta.model_id,
        "signature": meta.signature.raw if meta.signature else None,
    }


def many_models_document(documents: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One document for several served models: the first model's, plus `POST /invocations/{name}`
    for each model with its own request and answer schemas (components prefixed by its name); the
    V2 paths, shared, name every model."""
    document = documents[0][1]
    document["info"]["title"] = "sigserve: " + ", ".join(name for name, _ in documents)
    document["paths"].update(v2_paths([name for name, _ in documents]))
    schemas = document["components"]["schemas"]
    for name, model_document in documents:
        prefix = re.sub(r"[^A-Za-z0-9._-]", "_", name) + "."
        own = {component: schema for component, schema in model_document["components"]["schemas"].items()
               if component not in V2_SCHEMAS}
        renamed = _prefixed_refs(own, prefix)
        schemas.update({prefix + component: schema for component, schema in renamed.items()})
        operation = _prefixed_refs(model_document["paths"]["/invocations"]["post"], prefix)
        operation["operationId"] = f"invocations_{prefix[:-1]}"
        operation["summary"] = f"Score {name}"
        document["paths"][f"/invocations/{name}"] = {"post": operation}
    return document


def _prefixed_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {key: (f"#/components/schemas/{prefix}{value.rsplit('/', 1)[1]}"
                      if key == "$ref" and isinstance(value, str) else _prefixed_refs(value, prefix))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_prefixed_refs(item, prefix) for item in node]
    return node
