"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) and the standard
`grpc.health.v1` service, served by each worker on `--grpc-port`.

A `grpc.aio` server on the worker's own event loop, so a gRPC request shares everything a REST
request goes through: the `ScoringApp`'s model choice (name, version, `x-model-alias` and traffic
policies), its scheduler (slots, lanes, micro-batches, timeouts), the models it reloads,
authentication, metrics (`protocol="grpc"`) and the access log. With several workers each binds
the port with SO_REUSEPORT (grpcio's default on Linux) and the kernel spreads connections.
Errors are the REST answers' statuses and messages, as gRPC codes (`grpc_errors.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from sigserve import __version__
from sigserve.codecs.grpc import messages
from sigserve.codecs.grpc.codec import GRPC, parse_request
from sigserve.codecs.protocol import Codec, Incoming
from sigserve.codecs.v2.metadata import v2_model_metadata
from sigserve.errors import BadRequest, ModelNotServed, ModelUnavailable
from sigserve.manager.fleet import ModelGroup, ModelSet, ServedModel
from sigserve.manager.lru import ResidentModels
from sigserve.scoring import Phases, Scored
from sigserve.server.access_log import AccessLog, request_id_of
from sigserve.server.auth import BearerAuth
from sigserve.server.grpc_errors import grpc_error
from sigserve.server.metrics import Metrics
from sigserve.server.paths import ScoringPath
from sigserve.server.settings import GrpcListener, ServerSettings
from sigserve.server.tls import TlsFiles, server_context
from sigserve.server.tracing import Tracer

logger = logging.getLogger("sigserve.grpc")

SERVICE = messages.SERVICE
HEALTH_SERVICE = "grpc.health.v1.Health"
# The REST paths whose openness (auth's probe paths) the gRPC liveness and readiness RPCs share.
PROBE_EQUIVALENTS = {"ServerLive": "/v2/health/live", "ServerReady": "/v2/health/ready"}
# grpcio's message size options are C ints: a larger --max-body-bytes stops at this for gRPC.
MAX_MESSAGE_BYTES = 2**31 - 1
# Metadata values are printable ASCII: the rest of an answer header's text, and `%`, percent-encoded.
METADATA_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
LISTED_NAMES = 20


class ScoringApp(Protocol):
    """What gRPC shares of the HTTP app in `app.py` (which starts this server)."""

    settings: ServerSettings
    models: ModelSet
    residency: ResidentModels | None
    metrics: Metrics | None
    access_log: AccessLog | None
    auth: BearerAuth | None
    tracer: Tracer | None
    draining: bool

    def choose(self, target: ScoringPath, headers: dict[bytes, bytes]) -> Any: ...
    async def score_chosen(self, chosen: Any, codec: Codec, request: Incoming) -> Scored: ...
    def record_inference(self, picked: Any, succeeded: bool, seconds: float, rows: int | None,
                         phases: Phases | None) -> None: ...
    def count_refusal(self, error: Exception) -> None: ...


def check_port_free(listener: GrpcListener) -> str | None:
    """Why the gRPC port cannot be served, or None. Checked once before the models load, with a
    plain bind: it fails while anyone listens there, even another server using SO_REUSEPORT
    (which the workers' own binds would silently share the port with)."""
    try:
        infos = socket.getaddrinfo(listener.host, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen for gRPC on {listener.host}:{listener.port}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        return (f"cannot listen for gRPC on {listener.host}:{listener.port}: {exc.strerror or exc} "
                "(choose another --grpc-port, or 0 to serve no gRPC)")
    return None


class GrpcServer:
    """One worker's gRPC server: started with the app, stopped gracefully when it drains."""

    def __init__(self, app: ScoringApp, listener: GrpcListener) -> None:
        self.app = app
        self.listener = listener
        self.server: grpc.aio.Server | None = None
        self.health = _Health(app)
        self._stopping: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Bind now (a port taken since the start-up check stops the worker) and serve from the
        running event loop."""
        app = self.app
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", min(app.settings.max_body_bytes, MAX_MESSAGE_BYTES)),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ])
        server.add_generic_rpc_handlers([_handlers(_Inference(app))])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = f"{self.listener.host}:{self.listener.port}"
        if ":" in self.listener.host:
            address = f"[{self.listener.host}]:{self.listener.port}"
        if self.listener.tls is not None:
            server.add_secure_port(address, reloading_credentials(self.listener.tls))
        else:
            server.add_insecure_port(address)
        self.server = server
        loop = asyncio.get_running_loop()
        self.health.follow(loop)
        loop.create_task(server.start())

    def drain(self, grace_seconds: float) -> None:
        """SIGTERM: health says NOT_SERVING, new calls are refused, calls in flight get `grace_seconds`."""
        if self.server is None or self._stopping is not None:
            return
        self._stopping = asyncio.get_running_loop().create_task(self._stop(grace_seconds))

    async def _stop(self, grace_seconds: float) -> None:
        await self.health.enter_graceful_shutdown()
        assert self.server is not None
        await self.server.stop(grace_seconds)

    async def stopped(self) -> None:
        """Wait for the drain to finish (or stop now, if the app stops without draining)."""
        if self.server is None:
            return
        if self._stopping is None:
            self.drain(0)
        assert self._stopping is not None
        await self._stopping


def reloading_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """The HTTPS certificate and key, re-read when their files change, as HTTPS re-reads them:
    grpcio asks before each new connection's handshake. A pair that does not load is logged and
    skipped; the previous one stays in use."""
    signature = [_stat(files)]

    def configuration() -> Any:
        return grpc.ssl_server_certificate_configuration(
            [(Path(files.keyfile).read_bytes(), Path(files.certfile).read_bytes())])

    def changed() -> Any:
        try:
            now = _stat(files)
            if now == signature[0]:
                return None
            signature[0] = now  # tried once per change
            server_context(files)  # the pair must load together before connections use it
            return configuration()
        except OSError as exc:  # ssl.SSLError included
            logger.warning("the TLS certificate files changed but do not load for gRPC (%s); the certificate "
                           "loaded before stays in use", getattr(exc, "reason", None) or exc.strerror or exc)
            return None

    return grpc.dynamic_ssl_server_credentials(configuration(), changed)


def _stat(files: TlsFiles) -> tuple[tuple[int, int, int, int], ...]:
    stats = (os.stat(files.certfile), os.stat(files.keyfile))
    return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


class _Health(health_aio.HealthServicer):  # type: ignore[misc]
    """`grpc.health.v1`: "" is the server's liveness (SERVING until it drains), the inference
    service its readiness (every model ready). Both kept in the servicer through its `set()`, so
    `Watch` streams what `Check` answers: readiness is set again whenever a model version comes
    in (reload, or a load under `--max-loaded-models`) and on each Check; the drain's
    `enter_graceful_shutdown` makes both NOT_SERVING for good."""

    def __init__(self, app: ScoringApp) -> None:
        super().__init__()
        self.app = app
        self._refreshing: set[asyncio.Task[None]] = set()  # held until done, or asyncio may drop them

    def follow(self, loop: asyncio.AbstractEventLoop) -> None:
        """Readiness now, and again after every swap (reported from the reload thread too)."""

        def refresh_soon() -> None:
            task = loop.create_task(self.refresh())
            self._refreshing.add(task)
            task.add_done_callback(self._refreshing.discard)

        def swapped(_servable: Any) -> None:
            try:
                loop.call_soon_threadsafe(refresh_soon)
            except RuntimeError:  # the worker's loop has closed: no one is watching
                pass

        refresh_soon()
        for served in self.app.models:
            served.manager.on_swap(swapped)

    async def refresh(self) -> None:
        ready = not self.app.draining and _all_ready(self.app)
        await self.set(SERVICE, health_pb2.HealthCheckResponse.SERVING if ready else
                       health_pb2.HealthCheckResponse.NOT_SERVING)

    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802 - gRPC's name
        if request.service == SERVICE:
            await self.refresh()
        return await super().Check(request, context)


def _all_ready(app: ScoringApp) -> bool:
    return all(served.current.ready for served in app.models)


Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _handlers(service: _Inference) -> grpc.GenericRpcHandler:
    """Messages parsed and serialized by grpcio, except ModelInfer's: its bytes go to the codec."""

    def unary(handler: Handler, request_type: type | None) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=request_type.FromString if request_type else None,
            response_serializer=None if request_type is None else _serialize,
        )

    return grpc.method_handlers_generic_handler(SERVICE, {
        "ServerLive": unary(service.server_live, messages.ServerLiveRequest),
        "ServerReady": unary(service.server_ready, messages.ServerReadyRequest),
        "ModelReady": unary(service.model_ready, messages.ModelReadyRequest),
        "ServerMetadata": unary(service.server_metadata, messages.ServerMetadataRequest),
        "ModelMetadata": unary(service.model_metadata, messages.ModelMetadataRequest),
        "ModelInfer": unary(service.model_infer, None),
    })


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()  # type: ignore[no-any-return]


class _Inference:
    """The six RPCs of `inference.GRPCInferenceService`, over the app's models and scheduler."""

    def __init__(self, app: ScoringApp) -> None:
        self.app = app

    async def _authenticate(self, context: grpc.aio.ServicerContext, method: str) -> None:
        """The REST bearer-token check, on the `authorization` metadata; ServerLive and
        ServerReady are as open as the REST probes they stand for."""
        auth = self.app.auth
        if auth is None:
            return
        refused = auth.refusal(_scope(context, PROBE_EQUIVALENTS.get(method, f"/{SERVICE}/{method}")))
        if refused is not None:
            self.app.count_refusal(refused)
            await _abort(context, refused)

    async def _find(self, context: grpc.aio.ServicerContext, name: str, version: str) -> tuple[ModelGroup, ServedModel]:
        """The model and version named (an empty version: the champion), or NOT_FOUND with REST's message."""
        try:
            group, served = self.app.models.find(name, version or None)
        except ModelNotServed as exc:
            await _abort(context, exc)
        return group, served or group.champion

    async def server_live(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._authenticate(context, "ServerLive")
        return messages.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._authenticate(context, "ServerReady")
        return messages.ServerReadyResponse(ready=not self.app.draining and _all_ready(self.app))

    async def model_ready(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._authenticate(context, "ModelReady")
        _, served = await self._find(context, request.name, request.version)
        return messages.ModelReadyResponse(ready=served.current.ready and not self.app.draining)

    async def server_metadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._authenticate(context, "ServerMetadata")
        return messages.ServerMetadataResponse(name="sigserve", version=__version__, extensions=[])

    async def model_metadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._authenticate(context, "ModelMetadata")
        group, served = await self._find(context, request.name, request.version)
        servable = served.current
        document = v2_model_metadata(servable.meta, group.name, servable.version)
        document["versions"] = [s.current.version for s in group.versions]
        return messages.ModelMetadataResponse(**document)

    async def model_infer(self, body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Read, score and answer one request, counted and logged as REST's are."""
        await self._authenticate(context, "ModelInfer")  # refused before counting, as over REST
        app, metrics = self.app, self.app.metrics
        started = time.perf_counter()
        metadata = _metadata(context)
        request_id = request_id_of({"headers": list(metadata.items())})
        if metrics is not None:
            metrics.request_started()
        status, rows, model_label, payload_format, sent = 499, None, "", GRPC.default_format, 0
        chosen = picked = None
        phases: Phases | None = None
        failure: tuple[grpc.StatusCode, str] | None = None
        error: Exception | None = None
        answer: tuple[bytes, tuple[tuple[str, str], ...]] | None = None
        try:
            try:
                message = parse_request(body)
                if not message.model_name:  # REST always names it; Triton and KServe clients always send it
                    raise BadRequest(f"ModelInfer needs a model_name; this server serves {_names(app.models)}")
                target = ScoringPath(GRPC, message.model_name, message.model_version or None)
                picked = app.choose(target, metadata)
                model_label = picked.served.key
                if app.residency is not None:  # loaded first if it is not in memory, held until released
                    picked.servable = await app.residency.acquire(picked.served)
                chosen = picked
                request = Incoming(body, None, chosen.served.name, chosen.servable.version, parsed=message)
                scored = await app.score_chosen(chosen, GRPC, request)
                status, rows, payload_format, phases = 200, scored.rows, scored.format, scored.phases
                answer = scored.body, _answer_metadata(request_id, chosen.servable.headers)
                sent = len(scored.body)
            except Exception as exc:  # noqa: BLE001 - every error becomes a gRPC status
                status, code, details = grpc_error(exc, GRPC)
                if isinstance(exc, ModelUnavailable):
                    model_label = exc.model
                payload_format = getattr(exc, "payload_format", None) or payload_format
                app.count_refusal(exc)
                failure, error = (code, details), exc
        finally:
            if chosen is not None and app.residency is not None:
                app.residency.release(chosen.served)
            seconds = time.perf_counter() - started
            if metrics is not None:
                metrics.request_finished(status, payload_format, seconds, rows, model_label, protocol="grpc")
            if picked is not None:  # Triton's …/stats count gRPC requests too
                app.record_inference(picked, status == 200, seconds, rows, phases)
            if app.tracer is not None:
                served = chosen or picked
                app.tracer.request(f"{SERVICE}/ModelInfer", app.tracer.context_from(context.invocation_metadata()),
                                   started, {
                    "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "ModelInfer",
                    "sigserve.protocol": "grpc", "sigserve.format": payload_format, "sigserve.status": status,
                    "sigserve.model": served.served.name if served else None,
                    "sigserve.model.key": served.served.key if served else None,
                    "sigserve.model.version": served.servable.version if served else None, "sigserve.rows": rows,
                }, phases, error)
            if app.access_log is not None:
                served = chosen or picked
                app.access_log.record(_log_scope(context), status, sent, seconds, request_id,
                                      served.served.key if served else None,
                                      served.servable.version if served else None)
        if answer is not None:  # sent only now: an error past this point is never followed by an abort
            await context.send_initial_metadata(answer[1])
            return answer[0]
        assert failure is not None
        request_id_entry = ("x-request-id", _metadata_value(request_id))
        await context.abort(failure[0], failure[1], trailing_metadata=(request_id_entry,))
        raise AssertionError("unreachable: abort raises")


async def _abort(context: grpc.aio.ServicerContext, error: Exception) -> NoReturn:
    _, code, details = grpc_error(error, GRPC)
    await context.abort(code, details)
    raise AssertionError("unreachable: abort raises")


def _metadata(context: grpc.aio.ServicerContext) -> dict[bytes, bytes]:
    """The call's metadata as REST's header map: lower-case names, bytes values (binary `-bin`
    entries left out)."""
    found: dict[bytes, bytes] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found.setdefault(key.lower().encode("latin-1"), value.encode("latin-1", "replace"))
    return found


def _scope(context: grpc.aio.ServicerContext, path: str) -> dict[str, Any]:
    """The little of an ASGI scope that the bearer-token check reads."""
    return {"path": path, "headers": list(_metadata(context).items())}


def _log_scope(context: grpc.aio.ServicerContext) -> dict[str, Any]:
    """The access log's fields of a gRPC call: `POST /inference.GRPCInferenceService/ModelInfer HTTP/2`."""
    peer = context.peer() or ""
    client = None
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, port = rest.rpartition(":")
        client = (host.strip("[]").replace("%5B", "").replace("%5D", ""), int(port) if port.isdigit() else 0)
    return {"client": client, "method": "POST", "path": f"/{SERVICE}/ModelInfer", "http_version": "2"}


def _answer_metadata(request_id: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """REST's answer headers as initial metadata: the request ID, the model version that answered."""
    return tuple((key.decode("latin-1"), _metadata_value(value)) for key, value in
                 ((b"x-request-id", request_id), *headers))


def _metadata_value(value: bytes) -> str:
    """A REST header value as a valid gRPC metadata value (printable ASCII): the text an HTTP
    client reads from the header (latin-1), percent-encoded as RFC 3986 says (UTF-8) where it is
    not printable ASCII, and `%` too, so `urllib.parse.unquote` gives that text back."""
    return urllib.parse.quote(value.decode("latin-1"), safe=METADATA_SAFE)


def _names(models: ModelSet) -> str:
    """The served names, at most LISTED_NAMES of them."""
    names = [group.name for group in models.groups.values()]
    more = f" and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else ""
    return f"{names[:LISTED_NAMES]}{more}"
