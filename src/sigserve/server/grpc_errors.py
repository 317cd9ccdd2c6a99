"""The one place errors become gRPC statuses: the HTTP status each error carries (the same as
REST answers, see `http_errors.py`) mapped to a gRPC code, with the REST answer's message, cut
to fit gRPC's metadata (a message echoing a long client value stays the client's error)."""

from __future__ import annotations

import grpc

from sigserve.codecs.protocol import Codec
from sigserve.server.http_errors import render_error

# The details travel percent-encoded in the `grpc-message` trailer: gRPC refuses trailers past
# 16 KiB (and may past 8 KiB) with RESOURCE_EXHAUSTED, so longer details are cut to this, encoded.
MAX_DETAILS_BYTES = 4096
CUT = "…"

# HTTP status -> gRPC code, as gRPC's own HTTP mapping and KServe/Triton answer.
STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.UNAVAILABLE,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(status: int) -> grpc.StatusCode:
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL


def grpc_error(error: Exception, codec: Codec) -> tuple[int, grpc.StatusCode, str]:
    """The HTTP status (for metrics), gRPC code and message of an error: a typed error's own
    message, or a logged 500 that says nothing of the internals."""
    status, details = render_error(error, codec)
    return status, grpc_code(status), capped(details.decode("utf-8"))


def capped(details: str, limit: int = MAX_DETAILS_BYTES) -> str:
    """`details` cut, ending in "…", so that gRPC's percent-encoding of it (each UTF-8 byte
    outside printable ASCII, and `%`, as three) takes at most `limit` bytes."""
    if len(details) * 12 <= limit or _encoded_size(details) <= limit:  # 12: 4 UTF-8 bytes, 3 each
        return details
    budget, size = limit - _encoded_size(CUT), 0
    for position, character in enumerate(details):
        size += _encoded_size(character)
        if size > budget:
            return details[:position] + CUT
    raise AssertionError("unreachable: the details are over the limit")


def _encoded_size(text: str) -> int:
    return sum(1 if " " <= c <= "~" and c != "%" else 3 * len(c.encode("utf-8", "replace")) for c in text)
