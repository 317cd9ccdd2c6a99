"""`application/json`: one top-level format field (plus `params`), or a seed-era bare body."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import Decoded, JsonFieldDecoder
from sigserve.codecs.mlflow.dataframe_records import DataframeRecordsDecoder
from sigserve.codecs.mlflow.dataframe_split import DataframeSplitDecoder
from sigserve.codecs.mlflow.instances import InstancesDecoder
from sigserve.codecs.mlflow.inputs import InputsDecoder
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

FIELD_DECODERS: dict[str, JsonFieldDecoder] = {
    decoder.field: decoder
    for decoder in (
        DataframeSplitDecoder(),
        DataframeRecordsDecoder(),
        InstancesDecoder(),
        InputsDecoder(),
    )
}
SEED_FORMAT_FIELDS = {"pandas-split": "dataframe_split", "pandas-records": "dataframe_records"}
# MLflow 1.x read plain `application/json` as a pandas split-oriented frame: a bare object with
# `columns` and `data` (and optionally `index`), and none of the format fields, is still one.
BARE_SPLIT_REQUIRED = frozenset({"columns", "data"})
BARE_SPLIT_KEYS = BARE_SPLIT_REQUIRED | {"index"}
BARE_SPLIT_FORMAT = "pandas-split"  # the metrics label of the seed-era split body, as with format=
REQUIRED = f"The input must be a JSON object with exactly one of the fields {sorted(FIELD_DECODERS)}"


class JsonDecoder:
    """Decodes a parsed body (`codecs.decode` parses it once, within the decode limits)."""

    media_type = "application/json"

    def decode_document(self, document: Any, schema: Schema | None, params: dict[str, str]) -> Decoded:
        seed_format = params.get("format")
        found = field_of(document, seed_format)
        if found is None:
            received = f"fields {list(document)}" if isinstance(document, dict) else kind_of(document)
            raise BadRequest(f"{REQUIRED}. Received {received}.")
        field, value = found
        data = FIELD_DECODERS[field].decode(value, schema)
        if seed_format is not None:
            return Decoded(data, None, seed_format)
        if value is document:
            return Decoded(data, None, BARE_SPLIT_FORMAT)
        return Decoded(data, document.get("params"), field)


def field_of(document: Any, seed_format: str | None) -> tuple[str, Any] | None:
    """Which format field a body uses, and its value: named by `format=`, the body's one format
    field, or a bare split body (the value is then the body itself); None when it is none of these."""
    if seed_format is not None:
        return SEED_FORMAT_FIELDS[seed_format], document
    if not isinstance(document, dict):
        return None
    fields = [key for key in document if key in FIELD_DECODERS]
    if not fields and is_bare_split(document):
        return "dataframe_split", document
    if len(fields) != 1:
        return None
    return fields[0], document[fields[0]]


def is_bare_split(document: Any) -> bool:
    """`{"columns": [...], "data": [...]}` (plus optional `index`) and nothing else."""
    return isinstance(document, dict) and BARE_SPLIT_REQUIRED <= document.keys() <= BARE_SPLIT_KEYS


def kind_of(document: Any) -> str:
    return "a list" if isinstance(document, list) else f"a {type(document).__name__}"
