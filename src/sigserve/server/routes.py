"""Everything but scoring: health (MLflow's and KServe V2's), version, metadata, OpenAPI, metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sigserve import __version__
from sigserve.encode import encode_json
from sigserve.errors import SigserveError
from sigserve.server.http_errors import MethodNotAllowed, error_body, http_exception_answer, is_v2_path, v2_error_body
from sigserve.server.openapi import docs_html, openapi_document
from sigserve.server.v2_metadata import v2_mismatch, v2_model_metadata

if TYPE_CHECKING:
    from sigserve.manager import Servable
    from sigserve.server.app import ScoringApp

JSON = "application/json"


def starlette_routes(app: ScoringApp, on_startup: Callable[[], None], on_shutdown: Callable[[], None]) -> Starlette:
    async def ping(request: Request) -> Response:
        return Response("\n", media_type=JSON)

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        """The app only starts once its model has loaded and scored its own example; a model
        served with `--allow-failing-example` that failed on it is never ready, nor is a
        server draining after SIGTERM."""
        is_ready = app.manager.current.ready and not app.draining
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def version(request: Request) -> Response:
        return PlainTextResponse(__version__)

    async def metadata(request: Request) -> Response:
        servable = app.manager.current
        meta = servable.scorer.model.meta
        resolved = servable.resolved
        return Response(
            encode_json(
                {
                    "name": servable.name,
                    "version": servable.version,
                    "alias": servable.alias,
                    "model_uri": resolved.uri,
                    "registry": resolved.registry,
                    "source": resolved.source,
                    "flavor": meta.loader_module,
                    "loader_module": meta.loader_module,
                    "model_id": meta.model_id,
                    "signature": meta.signature.raw if meta.signature else None,
                    "load_seconds": round(servable.load_seconds, 3),
                }
            ),
            media_type=JSON,
        )

    async def openapi(request: Request) -> Response:
        servable = app.manager.current
        document = openapi_document(
            servable.scorer.model.meta, name=servable.name, version=servable.version, alias=servable.alias
        )
        return Response(encode_json(document), media_type=JSON)

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_html("/openapi.json", title=f"sigserve: {app.manager.current.name}"))

    async def metrics(request: Request) -> Response:
        if app.metrics is None:
            raise HTTPException(404, "Metrics are off on this server")
        body, content_type = app.metrics.render()
        return Response(body, media_type=content_type)

    async def v2_server(request: Request) -> Response:
        return JSONResponse({"name": "sigserve", "version": __version__, "extensions": []})

    def v2_model_or_404(request: Request) -> tuple[Servable, str] | Response:
        servable = app.manager.current
        name = app.v2_name(servable)
        mismatch = v2_mismatch(name, servable.version, request.path_params["name"], request.path_params.get("version"))
        if mismatch is not None:
            return JSONResponse({"error": mismatch}, status_code=404)
        return servable, name

    async def v2_model(request: Request) -> Response:
        found = v2_model_or_404(request)
        if isinstance(found, Response):
            return found
        servable, name = found
        return Response(encode_json(v2_model_metadata(servable, name)), media_type=JSON)

    async def v2_model_ready(request: Request) -> Response:
        found = v2_model_or_404(request)
        if isinstance(found, Response):
            return found
        is_ready = found[0].ready and not app.draining
        return JSONResponse({"name": found[1], "ready": is_ready}, status_code=200 if is_ready else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        on_startup()
        try:
            yield
        finally:
            on_shutdown()

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/health", ping, methods=["GET"]),
            Route("/v2/health/live", live, methods=["GET"]),
            Route("/v2/health/ready", ready, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metadata", metadata, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/invocations", MethodNotAllowed("POST")),  # POST is answered in app.py
            Route("/v2", v2_server, methods=["GET"]),
            Route("/v2/models/{name}", v2_model, methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}", v2_model, methods=["GET"]),
            Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
            Route("/v2/models/{name}/versions/{version}/ready", v2_model_ready, methods=["GET"]),
            Route("/v2/models/{name}/infer", MethodNotAllowed("POST")),
            Route("/v2/models/{name}/versions/{version}/infer", MethodNotAllowed("POST")),
        ],
        exception_handlers={SigserveError: _starlette_error, HTTPException: http_exception_answer,
                            Exception: _starlette_error},
        lifespan=lifespan,
    )


async def _starlette_error(request: Request, exc: Exception) -> Response:
    status, body = (v2_error_body if is_v2_path(request.scope["path"]) else error_body)(exc)
    return Response(body, status_code=status, media_type=JSON)
