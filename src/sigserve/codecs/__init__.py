"""Decode stage: request body + Content-Type in, model data + params out.

One decoder per media type (and, inside JSON, one per top-level field): adding a payload
format is adding a module and listing it here.
"""

from __future__ import annotations

from sigserve.codecs.base import Decoded, Nested, Raw, Table
from sigserve.codecs.content_type import parse_content_type
from sigserve.codecs.csv import CsvDecoder
from sigserve.codecs.json_body import JsonDecoder
from sigserve.codecs.mlflow_json import decode_mlflow_json
from sigserve.codecs.parquet import ParquetDecoder
from sigserve.model.schema import Schema

JSON_DECODER = JsonDecoder()
BODY_DECODERS = {d.media_type: d for d in (JSON_DECODER, CsvDecoder(), ParquetDecoder())}
MEDIA_TYPES = tuple(BODY_DECODERS)


def decode(
    content_type: str | None, body: bytes, schema: Schema | None, *,
    type_hints: bool = False, param_names: frozenset[str] = frozenset(),
) -> Decoded:
    """`type_hints`: the model's signature comes from its type hints (MLflow's `inputs`-only rule);
    `param_names` tell a unified LLM payload's params from its data."""
    media = parse_content_type(content_type, MEDIA_TYPES)
    if media.type == JSON_DECODER.media_type and not media.params:  # parsed once, whichever rules apply
        document = JSON_DECODER.parse(body)
        decoded = decode_mlflow_json(document, type_hints=type_hints, param_names=param_names)
        return decoded or JSON_DECODER.decode_document(document, schema, media.params)
    return BODY_DECODERS[media.type].decode(body, schema, media.params)


__all__ = ["Decoded", "Nested", "Raw", "Table", "decode", "MEDIA_TYPES"]
