"""The decode limits for JSON bodies (MLflow's and KServe V2's).

JSON is parsed into Python objects, which cost far more than their text: 64 MB of `[0.5],`
rows became 1.7 GB, of `[[]],` 2.5 GB. So before parsing, the body's brackets, commas and
quotes give an upper estimate of what its objects will cost, and a body whose estimate is past
the decoded-bytes limit is refused unparsed. The row limit is checked once parsed, before the
rows are turned into columns or tensors.
"""

from __future__ import annotations

from typing import Any

from sigserve.codecs.json_body import field_of
from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.numeric_grid import NumericGrid

WHAT = "The JSON body"
# CPython object sizes as parsed by orjson, rounded up (measured on 64 MB bodies): a value
# with its slot in a list costs up to 64 bytes, a string 64 more than its text, a list 128
# and a dict 256 with their growth.
VALUE_BYTES, QUOTE_BYTES, LIST_BYTES, DICT_BYTES = 64, 32, 128, 256
_MOST_PER_BODY_BYTE = DICT_BYTES + 1


def check_json_size(body: bytes, limits: DecodeLimits, what: str = WHAT) -> None:
    """Refuse, unparsed, a body whose Python objects would cost more than the limit."""
    cap = limits.max_decoded_bytes
    if cap is None or len(body) * _MOST_PER_BODY_BYTE <= cap:  # small bodies: not worth counting
        return
    estimate = (
        len(body)
        + VALUE_BYTES * body.count(b",")
        + QUOTE_BYTES * body.count(b'"')
        + LIST_BYTES * body.count(b"[")
        + DICT_BYTES * body.count(b"{")
    )
    limits.check_decoded(estimate, what, estimated=True)


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


def check_v2_rows(raw_inputs: list[Any], limits: DecodeLimits) -> None:
    """Each V2 input's first dimension (its rows), before its data is flattened and converted."""
    if limits.max_rows is None:
        return
    for item in raw_inputs:
        shape = item.get("shape") if isinstance(item, dict) else None
        if isinstance(shape, list) and shape and isinstance(shape[0], int):
            limits.check_rows(shape[0], f"V2 input {item.get('name')!r} of shape {shape}")
