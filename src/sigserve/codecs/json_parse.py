"""Parsing JSON bodies (MLflow's and KServe V2's) within the decode limits.

JSON is parsed into Python objects, which cost far more than their text: 64 MB of `[0.5],`
rows became 1.7 GB, of `[[]],` 2.5 GB. So before parsing, the body's brackets, commas and
quotes give an upper estimate of what its objects will cost, and a body whose estimate is past
the decoded-bytes limit is refused unparsed. The row limit is checked once parsed, before the
rows are turned into columns or tensors.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from sigserve.codecs.limits import DecodeLimits
from sigserve.errors import BadRequest

UTF_8 = ("utf-8", "utf-8-sig")  # RFC 8259 lets a parser ignore a UTF-8 byte order mark
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


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        encoding = json.detect_encoding(body)
        if encoding not in UTF_8:  # json.loads would read UTF-16/32; the protocol is UTF-8 only
            raise BadRequest(
                f"The request body looks like {encoding.upper()}, not UTF-8: JSON bodies must be UTF-8-encoded"
            ) from None
        try:  # NaN and Infinity tokens, which MLflow's own encoder writes
            return json.loads(body.decode(encoding), parse_float=_finite_float)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(f"Invalid JSON: {exc}") from None


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise BadRequest(f"Invalid JSON: the number {text} is out of range")
    return number
