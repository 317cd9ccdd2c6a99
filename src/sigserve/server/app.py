"""The HTTP app: MLflow's endpoints, with typed errors mapped to HTTP here and only here.

`POST /invocations` is served by a bare ASGI handler in front of Starlette: on small requests
the routing and middleware layers cost as much as scoring itself. Everything else is Starlette.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sigserve import __version__
from sigserve.encode import encode_json
from sigserve.errors import PredictionTimeout, SigserveError
from sigserve.scoring import Scorer
from sigserve.server.inline import InlinePolicy, Timing

logger = logging.getLogger("sigserve.server")

JSON = "application/json"


def error_body(error: Exception) -> tuple[int, bytes]:
    """The one mapping from exceptions to HTTP status and body."""
    if isinstance(error, SigserveError):
        return error.status_code, encode_json({"error_code": error.error_code, "message": error.message})
    logger.error("unhandled error", exc_info=error)
    return 500, encode_json({"error_code": "INTERNAL_ERROR", "message": "Internal server error"})


async def _starlette_error(request: Request, exc: Exception) -> Response:
    status, body = error_body(exc)
    return Response(body, status_code=status, media_type=JSON)


class ScoringApp:
    """ASGI entry point: the scoring route directly, the rest through Starlette."""

    def __init__(self, scorer: Scorer, timeout_seconds: float | None = None) -> None:
        self.scorer = scorer
        self.timeout_seconds = timeout_seconds
        self.inline = InlinePolicy(timeout_seconds)
        self.routes = _starlette_routes(scorer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/invocations" and scope["method"] == "POST":
            await self.invocations(scope, receive, send)
        else:
            await self.routes(scope, receive, send)

    async def invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client went away; there is no one to answer
        try:
            payload = await self._score(_header(scope, b"content-type"), body)
            status = 200
        except Exception as exc:  # noqa: BLE001 - every error becomes a typed HTTP answer
            status, payload = error_body(exc)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _score(self, content_type: str | None, body: bytes) -> bytes:
        if self.inline.allowed(len(body)):
            return self._timed_score(content_type, body, True)
        return await self._score_in_thread(content_type, body)

    def _timed_score(self, content_type: str | None, body: bytes, inline: bool) -> bytes:
        """Scoring time alone, without queueing: what decides whether requests run inline."""
        wall_started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            return self.scorer.score(content_type, body)
        finally:
            cpu, wall = time.thread_time() - cpu_started, time.perf_counter() - wall_started
            self.inline.record(Timing(len(body), cpu, wall, inline))

    async def _score_in_thread(self, content_type: str | None, body: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(None, self._timed_score, content_type, body, False)
        try:
            return await asyncio.wait_for(work, self.timeout_seconds)
        except (asyncio.TimeoutError, TimeoutError):
            raise PredictionTimeout(
                f"Request processing time exceeded the limit of {self.timeout_seconds:g}s"
            ) from None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _starlette_routes(scorer: Scorer) -> Starlette:
    async def ping(request: Request) -> Response:
        return Response("\n", media_type=JSON)

    async def version(request: Request) -> Response:
        return PlainTextResponse(__version__)

    async def metadata(request: Request) -> Response:
        meta = scorer.model.meta
        return JSONResponse(
            {
                "loader_module": meta.loader_module,
                "signature": meta.signature.raw if meta.signature else None,
                "model_id": meta.model_id,
            }
        )

    async def invocations_method_not_allowed(request: Request) -> Response:
        return PlainTextResponse("Method Not Allowed", status_code=405, headers={"Allow": "POST"})

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/health", ping, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metadata", metadata, methods=["GET"]),
            Route("/invocations", invocations_method_not_allowed),
        ],
        exception_handlers={SigserveError: _starlette_error, Exception: _starlette_error},
    )

