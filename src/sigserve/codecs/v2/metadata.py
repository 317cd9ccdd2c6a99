"""KServe V2 model metadata: the signature as named, typed, shaped tensors."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.v2.encode import DEFAULT_OUTPUT, datatype_of
from sigserve.model.mlmodel import ModelMeta
from sigserve.model.schema import ColSpec, DataType, Schema, TensorSpec

_COLUMN_DATATYPES = {
    DataType.boolean: "BOOL", DataType.integer: "INT32", DataType.long: "INT64",
    DataType.float: "FP32", DataType.double: "FP64",
}


def v2_mismatch(name: str, version: str, asked_name: str, asked_version: str | None) -> str | None:
    """Why a V2 URL's model is not this server's (name, and version when given), or None."""
    if asked_name == name and asked_version in (None, version):
        return None
    asked = "/".join(part for part in (asked_name, asked_version) if part)
    return f"Model {asked!r} is not served here; this server serves {name!r} version {version!r}"


def v2_model_metadata(meta: ModelMeta, name: str, version: str) -> dict[str, Any]:
    signature = meta.signature
    return {
        "name": name,
        "versions": [version],
        "platform": meta.loader_module or "python_function",
        "inputs": _tensors(signature.inputs if signature else None, "input"),
        "outputs": _tensors(signature.outputs if signature else None, DEFAULT_OUTPUT),
    }


def _tensors(schema: Schema | None, default_name: str) -> list[dict[str, Any]]:
    if schema is None:
        return []
    return [_tensor(spec, f"{default_name}-{i}" if len(schema.inputs) > 1 else default_name)
            for i, spec in enumerate(schema.inputs)]


def _tensor(spec: ColSpec | TensorSpec, fallback: str) -> dict[str, Any]:
    name = spec.name or fallback
    if isinstance(spec, TensorSpec):
        return {"name": name, "datatype": datatype_of(spec.dtype), "shape": list(spec.shape)}
    datatype = _COLUMN_DATATYPES.get(spec.type, "BYTES") if isinstance(spec.type, DataType) else "BYTES"
    shape = [-1] if isinstance(spec.type, DataType) else [-1, -1]
    return {"name": name, "datatype": datatype, "shape": shape}
