"""The one interface every protocol's codec implements: decode a request, encode its answer,
and shape an error the way the protocol's clients parse it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sigserve.codecs.base import Decoded
from sigserve.codecs.limits import DecodeLimits
from sigserve.model.schema import Schema


@dataclass(frozen=True)
class ModelInterface:
    """What a codec needs to know of the model it decodes for: built once per loaded version."""

    input_schema: Schema | None
    param_names: frozenset[str]
    type_hints: bool  # the signature comes from type hints (MLflow's `inputs`-only rule)
    output_schema: Schema | None


@dataclass(slots=True)
class Incoming:
    """One request as the transport received it, and the model name and version it addressed."""

    body: bytes
    content_type: str | None = None
    model_name: str = ""
    model_version: str = ""
    parsed: Any = None  # the request already parsed by its transport (gRPC's ModelInferRequest)
    binary_header_length: str | None = None  # V2's Inference-Header-Content-Length, as sent


@dataclass(frozen=True, slots=True)
class Encoded:
    """An answer that is not a JSON document (V2's binary tensor data): its body, media type and
    the headers that say how to read it."""

    body: bytes
    content_type: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(slots=True)
class DecodedRequest:
    """A decoded request and the encoder of its answer (which may depend on the request: V2's
    `id` and requested outputs, MLflow's unwrapped answer to a unified LLM payload)."""

    decoded: Decoded
    encode: Callable[[Any], bytes | Encoded]  # JSON bytes, or an Encoded answer


class Codec(Protocol):
    """A protocol's two directions. `name` says which protocol (`mlflow`, `v2`); `default_format`
    labels the requests that fail before their format is known."""

    name: str
    default_format: str

    def decode(self, request: Incoming, model: ModelInterface, limits: DecodeLimits) -> DecodedRequest: ...

    def error_document(self, status: int, error_code: str, message: str) -> bytes: ...
