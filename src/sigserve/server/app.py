"""The Starlette app: MLflow's endpoints, with typed errors mapped to HTTP here and only here."""

from __future__ import annotations

import asyncio
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sigserve import __version__
from sigserve.encode import encode_json
from sigserve.errors import PredictionTimeout, SigserveError
from sigserve.scoring import Scorer

logger = logging.getLogger("sigserve.server")

JSON = "application/json"


def error_response(error: SigserveError) -> Response:
    body = encode_json({"error_code": error.error_code, "message": error.message})
    return Response(body, status_code=error.status_code, media_type=JSON)


async def _handle_sigserve_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SigserveError)
    return error_response(exc)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s", request.url.path)
    body = encode_json({"error_code": "INTERNAL_ERROR", "message": "Internal server error"})
    return Response(body, status_code=500, media_type=JSON)


def create_app(scorer: Scorer, timeout_seconds: float | None = None) -> Starlette:
    async def ping(request: Request) -> Response:
        return Response("\n", media_type=JSON)

    async def version(request: Request) -> Response:
        return PlainTextResponse(__version__)

    async def invocations(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type")
        work = asyncio.get_running_loop().run_in_executor(None, scorer.score, content_type, body)
        try:
            payload = await asyncio.wait_for(work, timeout_seconds)
        except (asyncio.TimeoutError, TimeoutError):
            raise PredictionTimeout(
                f"Request processing time exceeded the limit of {timeout_seconds:g}s"
            ) from None
        return Response(payload, media_type=JSON)

    async def metadata(request: Request) -> Response:
        meta = scorer.model.meta
        return JSONResponse(
            {
                "loader_module": meta.loader_module,
                "signature": meta.signature.raw if meta.signature else None,
                "model_id": meta.model_id,
            }
        )

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/health", ping, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metadata", metadata, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        exception_handlers={SigserveError: _handle_sigserve_error, Exception: _handle_unexpected},
    )
