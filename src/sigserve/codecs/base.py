"""What every decoder returns, and the one interface a decoder implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sigserve.codecs.limits import DecodeLimits
from sigserve.model.schema import Schema


@dataclass
class Table:
    """Columns by label. `typed` columns carry real dtypes (Parquet, CSV); untyped ones hold
    JSON values, possibly pre-inferred by pandas, still to be converted exactly."""

    columns: dict[Any, Any]
    n_rows: int
    typed: bool = False
    unread: tuple[Any, ...] = ()  # the body's columns left undecoded, as the model cannot use them


@dataclass
class Nested:
    """`inputs`/`instances` data that is not a table: a nested list, a scalar or a dict of those."""

    value: Any


@dataclass
class Raw:
    """A JSON value handed to the model untouched: MLflow validates it itself, from the model's
    type hints or its chat schema, so sigserve's enforcement must not reshape it first."""

    value: Any


ModelData = Table | Nested | Raw


@dataclass
class Decoded:
    data: ModelData
    params: dict[str, Any] | None
    format: str
    unified_llm: bool = False  # answered unwrapped, as MLflow answers chat/completions payloads


class BodyDecoder(Protocol):
    """Decodes a whole request body of one media type."""

    media_type: str

    def decode(
        self, body: bytes, schema: Schema | None, params: dict[str, str], limits: DecodeLimits = ...
    ) -> Decoded: ...


class JsonFieldDecoder(Protocol):
    """Decodes the value of one top-level field of a JSON request (e.g. `dataframe_split`)."""

    field: str

    def decode(self, value: Any, schema: Schema | None) -> ModelData: ...
