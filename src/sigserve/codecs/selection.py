"""Which of a CSV or Parquet body's columns to decode: only those the model can use.

A signature that names its inputs needs only those columns (others are ignored, as MLflow
ignores them), so a body with 100 000 columns costs what its few useful ones cost. Unnamed
column inputs are taken by position, so only the first ones are needed. Otherwise (no
signature, or one unnamed tensor) every column is the model's, and their number is limited.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.tables import require_unique
from sigserve.model.schema import Schema


@dataclass(frozen=True)
class Selection:
    read: list[str]  # in the body's order
    unread: tuple[str, ...]


def select_columns(names: list[str], schema: Schema | None, limits: DecodeLimits, what: str) -> Selection:
    require_unique(names, what)
    if schema is not None and schema.has_names:
        wanted = set(schema.names)
        read = [name for name in names if name in wanted]
    elif schema is not None and not schema.is_tensor and schema.inputs:
        read = names[: len(schema.inputs)]
    else:
        limits.check_columns(len(names), what)
        return Selection(names, ())
    chosen = set(read)
    return Selection(read, tuple(name for name in names if name not in chosen))
