"""The one mapping from exceptions to an HTTP status and JSON body."""

from __future__ import annotations

import logging

from sigserve.encode import encode_json
from sigserve.errors import SigserveError

logger = logging.getLogger("sigserve.server")


def error_body(error: Exception) -> tuple[int, bytes]:
    """Typed errors carry their status and MLflow error code; anything else is a logged 500
    whose body says nothing about the internals."""
    if isinstance(error, SigserveError):
        return error.status_code, encode_json({"error_code": error.error_code, "message": error.message})
    logger.error("unhandled error", exc_info=error)
    return 500, encode_json({"error_code": "INTERNAL_ERROR", "message": "Internal server error"})


def v2_error_body(error: Exception) -> tuple[int, bytes]:
    """The same status, in the Open Inference Protocol's error shape: `{"error": message}`."""
    status, _ = error_body(error)
    message = error.message if isinstance(error, SigserveError) else "Internal server error"
    return status, encode_json({"error": message})
