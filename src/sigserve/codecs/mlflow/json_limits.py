"""The row limit for MLflow JSON bodies, checked once parsed, before rows become columns or tensors."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.mlflow.json_body import field_of
from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.numeric_grid import NumericGrid

WHAT = "The JSON body"


def check_json_rows(document: Any, seed_format: str | None, limits: DecodeLimits) -> None:
    if limits.max_rows is None:
        return
    rows = _rows(document, seed_format)
    if rows is not None:
        limits.check_rows(rows, WHAT)


def _rows(document: Any, seed_format: str | None) -> int | None:
    """The rows a parsed MLflow body holds, in the format field it uses; None when it has none."""
    found = field_of(document, seed_format)
    if found is None:
        return None
    field, value = found
    if field == "dataframe_split":
        return _split_rows(value)
    if field == "inputs" and isinstance(value, dict):  # named columns or tensors: the longest
        return max((len(v) for v in value.values() if isinstance(v, list)), default=None)
    return _length(value)


def _split_rows(split: Any) -> int | None:
    data = split.get("data") if isinstance(split, dict) else None
    if isinstance(data, NumericGrid):
        return data.n_rows
    return _length(data)


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None
