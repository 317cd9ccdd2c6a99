"""Triton's HTTP extensions that its clients call: model configuration (`…/config`), statistics
(`…/stats`), and a V2 error naming what sigserve does instead for the ones it does not serve
(model control, trace and log settings, shared memory), so tritonclient raises a readable error."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sigserve.codecs.json_encode import encode_json
from sigserve.codecs.v2.metadata import v2_model_metadata
from sigserve.errors import BadRequest
from sigserve.manager.fleet import ModelGroup, ModelSet, ServedModel
from sigserve.server.scheduler import ModelLane
from sigserve.server.stats import InferenceStats

JSON = "application/json"
_UNSUPPORTED = {
    "repository": "Triton's model control (load and unload) is not supported: sigserve serves the models "
                  "given at start (-m or --config) and reloads registry versions itself (--reload-interval)",
    "trace": "Triton's trace settings are not supported: sigserve traces with OpenTelemetry, configured by "
             "the standard OTEL_* environment variables",
    "logging": "Triton's log settings are not supported: sigserve logs as --log-level and --log-format say",
    "shared_memory": "Triton's shared memory extensions are not supported: send tensors in the request "
                     "(JSON or binary tensor data)",
}


class TritonApp(Protocol):
    """What these routes need of the app in `app.py`."""

    models: ModelSet
    lanes: dict[str, ModelLane]
    stats: InferenceStats


def _app(request: Request) -> TritonApp:
    return request.app.state.scoring  # type: ignore[no-any-return]


def _named(request: Request) -> tuple[ModelGroup, list[ServedModel]]:
    """The versions a path names: one (`/versions/{v}`) or every one served under the name; 404 otherwise."""
    params = request.path_params
    group, served = _app(request).models.find(params["name"], params.get("version"))
    return group, [served] if served is not None else list(group.versions)


async def model_config(request: Request) -> Response:
    group, versions = _named(request)
    app = _app(request)
    served = versions[0]
    return Response(encode_json(triton_config(group, served, app.lanes[served.key])), media_type=JSON)


def triton_config(group: ModelGroup, served: ServedModel, lane: ModelLane) -> dict[str, Any]:
    """The served version's signature as a Triton model configuration. With micro-batching on,
    `max_batch_size` is its batch size and dims leave out the batch dimension, as in Triton."""
    servable = served.current
    metadata = v2_model_metadata(servable.meta, group.name, servable.version)
    batcher = lane.batcher
    max_batch_size = batcher.max_size if batcher is not None else 0
    versions = [s.current.version for s in group.versions]
    config: dict[str, Any] = {
        "name": group.name,
        "platform": "",
        "backend": "python",
        "version_policy": ({"specific": {"versions": [int(v) for v in versions]}}
                           if all(v.isdigit() for v in versions) else {"latest": {"num_versions": len(versions)}}),
        "max_batch_size": max_batch_size,
        "input": [_config_tensor(t, max_batch_size) for t in metadata["inputs"]],
        "output": [_config_tensor(t, max_batch_size) for t in metadata["outputs"]],
        "instance_group": [{"name": group.name, "kind": "KIND_CPU", "count": 1}],
        "parameters": {"loader_module": {"string_value": servable.meta.loader_module or ""}},
    }
    if batcher is not None:
        config["dynamic_batching"] = {
            "max_queue_delay_microseconds": round(batcher.max_wait_seconds * 1_000_000), "preferred_batch_size": []}
    return config


def _config_tensor(tensor: dict[str, Any], max_batch_size: int) -> dict[str, Any]:
    dims = list(tensor["shape"])
    if max_batch_size and dims and dims[0] == -1:
        dims = dims[1:]
    datatype = tensor["datatype"]
    return {"name": tensor["name"], "data_type": "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}",
            "dims": dims}


async def model_stats(request: Request) -> Response:
    """Every served version's statistics, those of one name, or of one version."""
    app = _app(request)
    if "name" in request.path_params:
        versions = _named(request)[1]
    else:
        versions = list(app.models)
    totals = app.stats.totals()
    entries = []
    for served in versions:
        key = (served.name, served.current.version)
        entries.append(app.stats.model_stats(*key, totals.get(key)))
    return Response(encode_json({"model_stats": entries}), media_type=JSON)


def _unsupported(extension: str) -> Any:
    async def refuse(request: Request) -> Response:
        raise BadRequest(_UNSUPPORTED[extension])

    return refuse


# Before `/v2/models/{name}`, which `/v2/models/stats` would otherwise match, as in Triton.
ROUTES = [
    Route("/v2/models/stats", model_stats, methods=["GET"]),
    Route("/v2/models/{name}/stats", model_stats, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/stats", model_stats, methods=["GET"]),
    Route("/v2/models/{name}/config", model_config, methods=["GET"]),
    Route("/v2/models/{name}/versions/{version}/config", model_config, methods=["GET"]),
    Route("/v2/repository/models/{name}/load", _unsupported("repository"), methods=["GET", "POST"]),
    Route("/v2/repository/models/{name}/unload", _unsupported("repository"), methods=["GET", "POST"]),
    Route("/v2/trace/setting", _unsupported("trace"), methods=["GET", "POST"]),
    Route("/v2/models/{name}/trace/setting", _unsupported("trace"), methods=["GET", "POST"]),
    Route("/v2/logging", _unsupported("logging"), methods=["GET", "POST"]),
    Route("/v2/systemsharedmemory/{rest:path}", _unsupported("shared_memory"), methods=["GET", "POST"]),
    Route("/v2/cudasharedmemory/{rest:path}", _unsupported("shared_memory"), methods=["GET", "POST"]),
]
