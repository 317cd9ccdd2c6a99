"""MLflow's `/invocations` protocol: request body + Content-Type in, model data + params out
(here), predictions out (`encode.py`), both behind `codec.py`. Never imports `codecs.v2`.

One decoder per media type (and, inside JSON, one per top-level field): adding a payload
format is adding a module and listing it here.
"""

from __future__ import annotations

from sigserve.codecs.base import Decoded, Nested, Raw, Table
from sigserve.codecs.content_type import parse_content_type
from sigserve.codecs.mlflow.csv import CsvDecoder
from sigserve.codecs.json_parse import check_json_size, parse_json
from sigserve.codecs.mlflow.json_body import JsonDecoder
from sigserve.codecs.mlflow.json_limits import check_json_rows
from sigserve.codecs.limits import DEFAULT_LIMITS, UNLIMITED, DecodeLimits
from sigserve.codecs.mlflow.mlflow_json import decode_mlflow_json
from sigserve.codecs.numeric_grid import parse_with_numeric_grid
from sigserve.codecs.mlflow.parquet import ParquetDecoder
from sigserve.model.schema import Schema

JSON_DECODER = JsonDecoder()
BODY_DECODERS = {d.media_type: d for d in (JSON_DECODER, CsvDecoder(), ParquetDecoder())}
MEDIA_TYPES = tuple(BODY_DECODERS)


def decode(
    content_type: str | None, body: bytes, schema: Schema | None, *,
    type_hints: bool = False, param_names: frozenset[str] = frozenset(), limits: DecodeLimits = DEFAULT_LIMITS,
) -> Decoded:
    """`type_hints`: the model's signature comes from its type hints (MLflow's `inputs`-only rule);
    `param_names` tell a unified LLM payload's params from its data; `limits` bound what the body
    may decode to."""
    media = parse_content_type(content_type, MEDIA_TYPES)
    if media.type != JSON_DECODER.media_type:
        return BODY_DECODERS[media.type].decode(body, schema, media.params, limits)
    document = _parse_json(body, limits)  # parsed once, whichever rules apply
    check_json_rows(document, media.params.get("format"), limits)
    if not media.params:
        decoded = decode_mlflow_json(document, type_hints=type_hints, param_names=param_names)
        if decoded is not None:
            return decoded
    return JSON_DECODER.decode_document(document, schema, media.params)


def _parse_json(body: bytes, limits: DecodeLimits) -> object:
    """The numeric fast path first (it stores numbers, not Python objects); otherwise the size
    of the objects is estimated before they are made."""
    document = parse_with_numeric_grid(body, limits)
    if document is not None:
        return document
    check_json_size(body, limits)
    return parse_json(body)


__all__ = ["DEFAULT_LIMITS", "UNLIMITED", "DecodeLimits", "Decoded", "Nested", "Raw", "Table", "decode", "MEDIA_TYPES"]
