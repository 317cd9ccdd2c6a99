"""Everything but scoring: health (MLflow's and KServe V2's), version, metadata, OpenAPI, metrics,
and the V2 model and repository routes. Handlers reach the app through `request.app.state`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sigserve import __version__
from sigserve.codecs.json_encode import encode_json
from sigserve.codecs.v2.metadata import v2_model_metadata
from sigserve.errors import SigserveError
from sigserve.manager.fleet import ModelGroup, ModelSet, ServedModel
from sigserve.manager.servable import Servable
from sigserve.server.docs_assets import docs_static
from sigserve.server.http_errors import MethodNotAllowedEndpoint, starlette_error
from sigserve.server.metrics import Metrics
from sigserve.server.paths import v2_model_path
from sigserve.server.openapi import docs_html, many_models_document, openapi_document
from sigserve.server.triton import ROUTES as TRITON_ROUTES

JSON = "application/json"


class ServedApp(Protocol):
    """What these routes need of the app in `app.py` (which imports this module)."""

    models: ModelSet
    metrics: Metrics | None
    draining: bool

    def started(self) -> None: ...
    async def close_listeners(self) -> None: ...
    def stopping(self) -> None: ...


def scoring_app(request: Request) -> ServedApp:
    return request.app.state.scoring  # type: ignore[no-any-return]


async def ping(request: Request) -> Response:
    return Response("\n", media_type=JSON)


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    """Every model loaded at start has scored its own example before the app starts (one not in
    memory under `--max-loaded-models` is not unready); a model served with
    `--allow-failing-example` that failed on it is never ready, nor is a draining server."""
    app = scoring_app(request)
    is_ready = not app.draining and all(served.current.ready for served in app.models)
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


async def version(request: Request) -> Response:
    return PlainTextResponse(__version__)


def model_metadata(served: ServedModel) -> dict[str, Any]:
    servable = served.current  # an `Unloaded` while not in memory (--max-loaded-models)
    meta = servable.meta
    resolved = servable.resolved
    return {
        "name": servable.name,
        "served_as": served.name,
        "version": servable.version,
        "alias": servable.alias,
        "model_uri": resolved.uri,
        "registry": resolved.registry,
        "source": resolved.source,
        "flavor": meta.loader_module,
        "loader_module": meta.loader_module,
        "model_id": meta.model_id,
        "signature": meta.signature.raw if meta.signature else None,
        "loaded": servable.loaded,
        "load_seconds": round(servable.load_seconds, 3) if isinstance(servable, Servable) else None,
    }


async def metadata(request: Request) -> Response:
    """The default model's fields at the top, as with one model, and every served model in `models`."""
    app = scoring_app(request)
    document = model_metadata(app.models.default.champion)
    document["models"] = [model_metadata(served) for served in app.models]
    return Response(encode_json(document), media_type=JSON)


async def openapi(request: Request) -> Response:
    app = scoring_app(request)
    documents = []
    for group in app.models.groups.values():
        servable = group.champion.current
        documents.append((group.name, openapi_document(
            servable.meta, name=group.name, version=servable.version, alias=servable.alias)))
    document = documents[0][1] if len(documents) == 1 else many_models_document(documents)
    return Response(encode_json(document), media_type=JSON)


async def docs(request: Request) -> Response:
    names = ", ".join(scoring_app(request).models.groups)
    return HTMLResponse(docs_html("/openapi.json", title=f"sigserve: {names}"))


async def metrics(request: Request) -> Response:
    app = scoring_app(request)
    if app.metrics is None:
        raise HTTPException(404, "Metrics are off on this server")
    body, content_type = app.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)


# The Open Inference Protocol extensions served (Triton's names; `…/config`, `…/stats` in triton.py)
V2_EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]


async def v2_server(request: Request) -> Response:
    return JSONResponse({"name": "sigserve", "version": __version__, "extensions": V2_EXTENSIONS})


def v2_target(request: Request) -> tuple[ModelGroup, ServedModel]:
    """The model and version a V2 path names, or a 404; parsed as the scoring path parses it."""
    found = v2_model_path(request.scope["path"])
    assert found is not None  # the route matched a V2 model path
    group, served = scoring_app(request).models.find(found.name, found.version)
    return group, served or group.champion


async def v2_model(request: Request) -> Response:
    group, served = v2_target(request)
    servable = served.current
    document = v2_model_metadata(servable.meta, group.name, servable.version)
    document["versions"] = [s.current.version for s in group.versions]
    return Response(encode_json(document), media_type=JSON)


async def v2_model_ready(request: Request) -> Response:
    group, served = v2_target(request)
    is_ready = served.current.ready and not scoring_app(request).draining
    return JSONResponse({"name": group.name, "ready": is_ready}, status_code=200 if is_ready else 503)


async def v2_repository_index(request: Request) -> Response:
    """Triton's model repository extension: every served model and version, and its state."""
    app = scoring_app(request)
    index = [{"name": served.name, "version": served.current.version, **repository_state(served)}
             for served in app.models]
    return Response(encode_json(index), media_type=JSON)


def repository_state(served: ServedModel) -> dict[str, str]:
    """READY, or UNAVAILABLE with Triton's reason `unloaded…` for a model not in memory now
    (--max-loaded-models; its next request loads it)."""
    current = served.current
    if not isinstance(current, Servable):
        return {"state": "UNAVAILABLE", "reason": current.reason}
    return {"state": "READY" if current.ready else "UNAVAILABLE", "reason": ""}


ROUTES = [
    Route("/ping", ping, methods=["GET"]),
    Route("/health", ping, methods=["GET"]),
    Route("/v2/health/live", live, methods=["GET"]),
    Route("/v2/health/ready", ready, methods=["GET"]),
    Route("/version", version, methods=["GET"]),
    Route("/metadata", metadata, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Route("/docs/static/{name}", docs_static, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/invocations", MethodNotAllowedEndpoint("POST")),  # POST is answered in app.py
    Route("/invocations/{name}", MethodNotAllowedEndpoint("POST")),
    Route("/v2", v2_server, methods=["GET"]),
    Route("/v2/repository/index", v2_repository_index, methods=["POST"]),
    *TRITON_ROUTES,  # before /v2/models/{name}: `/v2/models/stats` is Triton's
    Route("/v2/models/{name}", v2_model, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}", v2_model, methods=["GET"]),
    Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/ready", v2_model_ready, methods=["GET"]),
    Route("/v2/models/{name}/infer", MethodNotAllowedEndpoint("POST")),
    Route("/v2/models/{name}/versions/{version}/infer", MethodNotAllowedEndpoint("POST")),
]


def starlette_app(app: ServedApp) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        app.started()
        try:
            yield
        finally:
            await app.close_listeners()
            app.stopping()

    starlette = Starlette(
        routes=ROUTES,
        exception_handlers={SigserveError: starlette_error, HTTPException: starlette_error, Exception: starlette_error},
        lifespan=lifespan,
    )
    starlette.state.scoring = app
    return starlette
