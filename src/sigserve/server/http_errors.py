"""The one place errors become HTTP answers: any exception, Starlette's own 404 and 405
included, rendered by the codec of the path's protocol with its status and headers."""

from __future__ import annotations

import http.client
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sigserve.codecs.mlflow.codec import MLFLOW
from sigserve.codecs.protocol import Codec
from sigserve.codecs.v2.codec import V2
from sigserve.errors import EndpointNotFound, MethodNotAllowed, SigserveError

logger = logging.getLogger("sigserve.server")

JSON = "application/json"
_SHOWN_PATH_CHARS = 200
# MLflow's error codes for Starlette's own answers other than 404 and 405.
_HTTP_ERROR_CODES = {413: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}


def codec_for_path(path: str) -> Codec:
    """The Open Inference Protocol under /v2, MLflow's everywhere else."""
    return V2 if path == "/v2" or path.startswith("/v2/") else MLFLOW


def render_error(error: Exception, codec: Codec) -> tuple[int, bytes]:
    """Typed errors carry their status and error code; anything else is a logged 500 whose body
    says nothing about the internals."""
    if isinstance(error, SigserveError):
        return error.status_code, codec.error_document(error.status_code, error.error_code, error.message)
    logger.error("unhandled error", exc_info=error)
    return 500, codec.error_document(500, "INTERNAL_ERROR", "Internal server error")


def error_headers(error: Exception) -> dict[str, str]:
    if isinstance(error, MethodNotAllowed):
        return {"Allow": error.allow}
    if isinstance(error, SigserveError) and error.status_code == 503:
        return {"Retry-After": "1"}
    return {}


def error_response(scope: Scope, error: Exception) -> Response:
    status, body = render_error(error, codec_for_path(scope["path"]))
    return Response(body, status_code=status, headers=error_headers(error), media_type=JSON)


def _request_line(scope: Scope) -> str:
    path = scope["path"]
    return f"{scope['method']} {path[:_SHOWN_PATH_CHARS]}{'...' if len(path) > _SHOWN_PATH_CHARS else ''}"


def from_http_exception(scope: Scope, exc: HTTPException) -> SigserveError:
    """Starlette's refusals as typed errors: a route's own detail, else what was asked and what
    is allowed."""
    headers = dict(exc.headers or {})
    detail = exc.detail if exc.detail and exc.detail != http.client.responses.get(exc.status_code) else None
    if exc.status_code == 404:
        return EndpointNotFound(detail or f"No such endpoint: {_request_line(scope)}")
    if exc.status_code == 405:
        allow = headers.get("Allow", "")
        return MethodNotAllowed(detail or f"Method not allowed: {_request_line(scope)}; allowed: {allow}", allow)
    error = SigserveError(detail or "Error")
    error.status_code = exc.status_code
    fallback = "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR"
    error.error_code = _HTTP_ERROR_CODES.get(exc.status_code, fallback)
    return error


async def starlette_error(request: Request, exc: Exception) -> Response:
    """Starlette's exception handler for every error, its own HTTPExceptions included."""
    if isinstance(exc, HTTPException):
        exc = from_http_exception(request.scope, exc)
    return error_response(request.scope, exc)


class MethodNotAllowedEndpoint:
    """An ASGI endpoint for routes served outside Starlette (`POST /invocations`, V2 `…/infer`):
    Starlette sees every other method of them, and answers each with 405 and `Allow`."""

    def __init__(self, allow: str) -> None:
        self.allow = allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = MethodNotAllowed(f"Method not allowed: {_request_line(scope)}; allowed: {self.allow}", self.allow)
        await error_response(scope, error)(scope, receive, send)
