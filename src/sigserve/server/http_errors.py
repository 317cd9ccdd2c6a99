"""The one mapping from exceptions to an HTTP status and JSON body."""

from __future__ import annotations

import http.client
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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


# MLflow's error codes for answers that are not SigserveErrors (unknown routes, wrong methods).
_HTTP_ERROR_CODES = {404: "ENDPOINT_NOT_FOUND", 413: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}
_SHOWN_PATH_CHARS = 200


def is_v2_path(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def protocol_error_body(path: str, status: int, message: str) -> bytes:
    """`{"error": …}` under /v2 (the Open Inference Protocol), MLflow's shape everywhere else."""
    if is_v2_path(path):
        return encode_json({"error": message})
    code = _HTTP_ERROR_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    return encode_json({"error_code": code, "message": message})


def _request_line(scope: Scope) -> str:
    path = scope["path"]
    return f"{scope['method']} {path[:_SHOWN_PATH_CHARS]}{'...' if len(path) > _SHOWN_PATH_CHARS else ''}"


def _http_message(scope: Scope, status: int, detail: str | None, allow: str | None) -> str:
    """A route's own detail, else what was asked and what is allowed."""
    if detail and detail != http.client.responses.get(status):
        return detail
    if status == 404:
        return f"No such endpoint: {_request_line(scope)}"
    if status == 405:
        return f"Method not allowed: {_request_line(scope)}; allowed: {allow}"
    return detail or "Error"


async def http_exception_answer(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method) as JSON in the route's protocol shape,
    with their headers (`Allow` on a 405)."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    message = _http_message(request.scope, exc.status_code, exc.detail, headers.get("Allow"))
    body = protocol_error_body(request.scope["path"], exc.status_code, message)
    return Response(body, status_code=exc.status_code, headers=headers, media_type="application/json")


class MethodNotAllowed:
    """An ASGI endpoint for routes served outside Starlette (`POST /invocations`, V2 `…/infer`):
    Starlette sees every other method of them, and answers each with 405 and `Allow`."""

    def __init__(self, allow: str) -> None:
        self.allow = allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = _http_message(scope, 405, None, self.allow)
        response = Response(protocol_error_body(scope["path"], 405, message), status_code=405,
                            headers={"Allow": self.allow}, media_type="application/json")
        await response(scope, receive, send)
