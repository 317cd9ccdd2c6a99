"""Request IDs and one access-log line per request."""

from __future__ import annotations

import itertools
import logging
import os

from starlette.types import Scope

from sigserve.sources.resolved import has_control

logger = logging.getLogger("sigserve.access")

_MAX_ID_LENGTH = 128


def request_id_of(scope: Scope) -> bytes:
    """The client's `X-Request-ID` when it is a sane token, else a new one, so a request can be
    followed from the client's logs through ours."""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            if 0 < len(value) <= _MAX_ID_LENGTH and value.isascii() and all(32 < c < 127 for c in value):
                return value
            break
    return _new_request_id()


_process_prefix: tuple[int, str] = (0, "")
_sequence = itertools.count()


def _new_request_id() -> bytes:
    """A random 16-hex prefix per process plus a counter: unique across workers, and a quarter
    of the cost of a uuid4 on the hot path."""
    global _process_prefix
    pid = os.getpid()
    if _process_prefix[0] != pid:
        _process_prefix = (pid, os.urandom(8).hex())
    return f"{_process_prefix[1]}{next(_sequence):016x}".encode()


class AccessLog:
    """`client "METHOD path HTTP/x" status bytes ms`, with structured fields for the JSON format."""

    def record(
        self, scope: Scope, status: int, sent: int, seconds: float, request_id: bytes,
        model: str | None = None, version: str | None = None,
    ) -> None:
        """`model` is the served name that answered (`churn`, `churn@challenger`), "-" for none."""
        if not logger.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"].encode("unicode_escape").decode("ascii")
        if has_control(path):  # a line must not be split or forged by what it quotes
            path = path.encode("unicode_escape").decode("ascii")
        model_version = f"{model}/{version}" if model is not None else "-"
        if has_control(model_version):
            model_version = model_version.encode("unicode_escape").decode("ascii")
        fields = {
            "client": peer,
            "method": scope["method"],
            "path": path,
            "status": status,
            "bytes": sent,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": request_id.decode("ascii"),
            "model_version": model_version,
        }
        logger.info(
            '%s "%s %s HTTP/%s" %d %dB %.2fms id=%s model=%s',
            peer, scope["method"], path, scope.get("http_version", "1.1"), status, sent,
            seconds * 1000, fields["request_id"], fields["model_version"],
            extra={"access": fields},
        )
