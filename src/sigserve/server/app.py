"""The HTTP app. The scoring routes (`POST /invocations[/{name}]`, KServe V2 `…/infer`) are
served by a bare ASGI handler in front of Starlette: on small requests the routing and middleware
layers cost as much as scoring itself. Each reads as one line — pick the model, read the body,
let the scheduler run decode → enforce → predict → encode with the protocol's codec, answer.
Everything else is Starlette (`routes.py`); errors become answers in `http_errors.py`. Every
response carries the request ID, and scoring answers the model version that answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import Message, Receive, Scope, Send

from sigserve.codecs.protocol import Codec, Incoming
from sigserve.codecs.v2.decode import HEADER_LENGTH
from sigserve.errors import BodyTooLarge, ModelUnavailable, SigserveError
from sigserve.manager.fleet import ModelSet, ServedModel
from sigserve.manager.lru import ResidentModels
from sigserve.manager.servable import Servable
from sigserve.scoring import Phases, Prepared, Scored, Scorer
from sigserve.server import tracing
from sigserve.server.access_log import AccessLog, request_id_of
from sigserve.server.connections import READ_TIMED_OUT
from sigserve.server.http_errors import error_headers, render_error
from sigserve.server.metrics import Metrics
from sigserve.server.paths import ScoringPath, media_label, scoring_path
from sigserve.server.routes import starlette_app
from sigserve.server.scheduler import ModelLane, Scheduler
from sigserve.server.settings import DEFAULT_TIMEOUT_SECONDS, DRAIN_GRACE_SECONDS, ConnectionLimits, ServerSettings
from sigserve.server.shadow import ShadowRunner
from sigserve.server.stats import InferenceStats

if TYPE_CHECKING:
    from sigserve.server.grpc_server import GrpcServer

JSON = b"application/json"
MODEL_ALIAS_HEADER = b"x-model-alias"
INFERENCE_HEADER_LENGTH = HEADER_LENGTH.lower().encode("ascii")  # V2 binary tensor data


@dataclass(slots=True)
class Chosen:
    """The model version a request goes to, and the one scoring a shadow copy of it."""

    served: ServedModel
    servable: Servable
    shadow: ServedModel | None = None
    compared: bool = False  # the name is served in several versions


class ScoringApp:
    """ASGI entry point: the scoring routes directly, the rest through Starlette."""

    def __init__(
        self, models: ModelSet, settings: ServerSettings | None = None, metrics: Metrics | None = None,
        residency: ResidentModels | None = None,
    ) -> None:
        self.models = models
        self.residency = residency  # --max-loaded-models: which models are in memory, loading the others
        self.settings = settings or ServerSettings()
        self.metrics = metrics
        self.scheduler = Scheduler(self.settings.max_concurrency, self.settings.timeout_seconds)
        self.access_log = AccessLog() if self.settings.access_log else None
        self.auth = self.settings.auth
        self.draining = False
        self.lanes: dict[str, ModelLane] = {}
        for served in models:
            self.add_lane(served)
        self.shadow = ShadowRunner(self.scheduler, metrics, self.settings.decode_limits, residency)
        self.stats = InferenceStats(metrics.multiprocess_dir if metrics is not None else None)  # Triton's …/stats
        self.tracer: tracing.Tracer | None = None  # set per worker in `started` when OTEL_* ask for traces
        self.grpc: GrpcServer | None = None  # per worker, from `started` (--grpc-port)
        tracing.warn_if_unavailable()
        self.routes = starlette_app(self)

    def add_lane(self, served: ServedModel) -> None:
        options, settings = served.spec.options, self.settings
        lane = self.scheduler.lane(
            settings.batch_max_size if options.batch_max_size is None else options.batch_max_size,
            settings.batch_max_wait_seconds if options.batch_max_wait_ms is None else options.batch_max_wait_ms / 1000,
            options.max_concurrency,
        )
        self.lanes[served.key] = lane
        served.manager.on_swap(lambda _servable: lane.forget_speed())

    @property
    def timeout_seconds(self) -> float | None:
        return self.settings.timeout_seconds

    @property
    def connection_limits(self) -> ConnectionLimits:
        return self.settings.connections

    @property
    def running(self) -> int:
        """Scoring work under way, including threads still running past a 504 (the drain waits on it)."""
        return self.scheduler.running + self.shadow.running

    def connection_closed(self, reason: str) -> None:
        """The connection guard cut a client off: `slow_client` or `connection_limit`."""
        if self.metrics is not None:
            self.metrics.rejected(reason)

    def start_draining(self) -> None:
        """SIGTERM: readiness answers 503 from now on, while open connections are still served."""
        self.draining = True
        if self.grpc is not None:  # new calls refused, those in flight finish
            self.grpc.drain((self.timeout_seconds or DEFAULT_TIMEOUT_SECONDS) + DRAIN_GRACE_SECONDS)

    def started(self) -> None:
        self.tracer = tracing.start()
        self.stats.start_publishing()
        self.scheduler.start()
        if self.settings.grpc is not None:  # imported only when served: grpcio is not free
            from sigserve.server.grpc_server import GrpcServer

            self.grpc = GrpcServer(self, self.settings.grpc)
            self.grpc.start()
        self.models.start_polling()
        if self.residency is not None:
            self.residency.start()
        elif self.metrics is not None:
            self.metrics.models_in_memory(len(self.models))

    async def close_listeners(self) -> None:
        """Before stopping: the gRPC server's calls in flight finish (it stops now if not draining)."""
        if self.grpc is not None:
            await self.grpc.stopped()

    def stopping(self) -> None:
        self.models.stop_polling()
        self.scheduler.stop()
        if self.residency is not None:
            self.residency.stop()
        self.shadow.stop()
        self.stats.stop_publishing()
        if self.tracer is not None:
            self.tracer.shutdown()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.routes(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        extra = [(b"x-request-id", request_id)]
        if self.draining:  # uvicorn closes the connection after this answer
            extra.append((b"connection", b"close"))
        status, sent, model, version = 500, 0, None, None
        try:
            if self.auth is not None and (refused := self.auth.refusal(scope)) is not None:
                self.count_refusal(refused)
                status, sent = await self.auth.answer(scope, send, refused, extra)
                return
            target = scoring_path(scope["method"], scope["path"])
            if target is not None:
                status, sent, chosen = await self.score_route(scope, receive, send, target, extra)
                if chosen is not None:
                    model, version = chosen.served.key, chosen.servable.version
                return
            if len(self.models) == 1:  # one model: every answer names it, as before models were many
                served = self.models.default.champion
                model, version = served.key, served.current.version
                extra.extend(served.current.headers)
            status, sent = await self._starlette(scope, receive, send, extra)
        finally:
            if self.access_log is not None:
                self.access_log.record(scope, status, sent, time.perf_counter() - started, request_id, model, version)

    async def _starlette(self, scope: Scope, receive: Receive, send: Send,
                         extra: list[tuple[bytes, bytes]]) -> tuple[int, int]:
        status, sent = 500, 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.routes(scope, receive, send_with_headers)
        except Exception:  # noqa: BLE001, S110 - Starlette has answered 500 and our handler logged it
            pass
        return status, sent

    def choose(self, target: ScoringPath, headers: dict[bytes, bytes]) -> Chosen:
        """The served model a scoring request names, its version by path or `X-Model-Alias`, and
        the traffic policy's draw (under `--max-loaded-models`, `score_route` then loads it)."""
        group, served = self.models.find(target.model, target.version)
        shadow = None
        if served is None:
            alias = headers.get(MODEL_ALIAS_HEADER, b"").strip()
            sticky_header = group.traffic.sticky_header
            sticky = headers.get(sticky_header.encode("latin-1")) if sticky_header else None
            served, shadow = group.choose(alias.decode("latin-1") if alias else None, sticky)
        return Chosen(served, served.current, shadow, len(group.versions) > 1)

    async def score_route(
        self, scope: Scope, receive: Receive, send: Send, target: ScoringPath, extra: list[tuple[bytes, bytes]]
    ) -> tuple[int, int, Chosen | None]:
        """Read, score and answer one request of either protocol; refusals are counted."""
        codec = target.codec
        request_headers = dict(scope["headers"])
        raw_content_type = request_headers.get(b"content-type")
        content_type = raw_content_type.decode("latin-1") if raw_content_type is not None else None
        payload_format = codec.default_format
        metrics = self.metrics
        if metrics is not None:
            metrics.request_started()
        started = time.perf_counter()
        status, payload, rows, model_label = 499, b"", None, ""  # 499: a cancelled request (drain timeout)
        chosen: Chosen | None = None
        picked: Chosen | None = None
        phases: Phases | None = None
        error: Exception | None = None
        decoded_format: str | None = None  # once decoded: the label of a request that fails after that
        headers = extra
        media = JSON
        try:
            try:
                picked = self.choose(target, request_headers)
                model_label = picked.served.key
                body = await self._read_body(request_headers.get(b"content-length"), receive)
                if self.residency is not None:  # loaded first if it is not in memory, held until released
                    picked.servable = await self.residency.acquire(picked.served)
                chosen = picked  # from here on released in `finally`
                headers = [*extra, *chosen.servable.headers]
                binary_header = request_headers.get(INFERENCE_HEADER_LENGTH) if codec.name == "v2" else None
                request = Incoming(body, content_type, chosen.served.name, chosen.servable.version,
                                   binary_header_length=binary_header.decode("latin-1") if binary_header else None)

                def remember(decoded: str) -> None:
                    nonlocal decoded_format
                    decoded_format = decoded

                scored = await self.score_chosen(chosen, codec, request, remember)
                status, payload, payload_format, rows = 200, scored.body, scored.format, scored.rows
                phases = scored.phases
                if scored.answer is not None:  # not JSON: V2 binary tensor data
                    media, headers = scored.answer.content_type, [*headers, *scored.answer.headers]
            except _ClientGone:
                status, payload = 499, b""
                if scope.get(READ_TIMED_OUT):  # the connection guard answered 408, closed and counted it
                    status = 408
            except Exception as exc:  # noqa: BLE001 - every error becomes a typed HTTP answer
                status, payload = render_error(exc, codec)
                error = exc
                if isinstance(exc, ModelUnavailable):
                    model_label = exc.model
                payload_format = getattr(exc, "payload_format", None) or decoded_format or (
                    media_label(content_type) if payload_format == "json" else payload_format)
                headers = [*headers, *((k.lower().encode(), v.encode()) for k, v in error_headers(exc).items())]
                self.count_refusal(exc)
            if status != 499:
                await _send_json(send, status, payload, headers, media)
        finally:
            if chosen is not None and self.residency is not None:
                self.residency.release(chosen.served)
            elapsed = time.perf_counter() - started
            if metrics is not None:
                metrics.request_finished(status, payload_format, elapsed, rows, model_label)
            if picked is not None:
                self.record_inference(picked, status == 200, elapsed, rows, phases)
            if self.tracer is not None:
                self._trace(scope, started, status, picked, payload_format, rows, phases, error)
        return status, len(payload), chosen or picked

    async def score_chosen(self, chosen: Chosen, codec: Codec, request: Incoming,
                           decoded: Callable[[str], None] | None = None) -> Scored:
        """Any protocol's request on the version chosen for it: the scheduler runs decode → enforce →
        predict → encode, then a champion and challenger's latency is kept and a shadow copy sent.
        `decoded` hears the payload format once the body is decoded: the label of a request that
        fails after that (the model raised, the timeout struck)."""
        limits = self.settings.decode_limits

        def prepare(scorer: Scorer) -> Prepared:
            prepared = scorer.prepare_request(codec, request, limits)
            if decoded is not None:
                decoded(prepared.format)
            return prepared

        scoring_started = time.perf_counter()
        scored = await self.scheduler.score(self.lanes[chosen.served.key], chosen.servable.scorer, prepare,
                                            len(request.body))
        if scored.phases is not None:
            scored.phases.submitted = round(scoring_started * 1e9)  # perf_counter's clock in ns
        if chosen.compared and self.metrics is not None:  # a champion and challenger: latency per version
            self.metrics.version_scored(chosen.served.key, chosen.servable.version,
                                        time.perf_counter() - scoring_started)
        if chosen.shadow is not None:
            self.shadow.submit(chosen.shadow, codec, request, scored, chosen.served.key)
        return scored

    def record_inference(self, picked: Chosen, succeeded: bool, seconds: float, rows: int | None,
                         phases: Phases | None) -> None:
        """Triton's statistics (`…/stats`) for a scoring request of any protocol, REST or gRPC."""
        if succeeded:
            self.stats.succeeded(picked.served.name, picked.servable.version, seconds, phases, rows)
        else:
            self.stats.failed(picked.served.name, picked.servable.version, seconds)

    def _trace(self, scope: Scope, started: float, status: int, picked: Chosen | None, payload_format: str,
               rows: int | None, phases: Phases | None, error: Exception | None) -> None:
        assert self.tracer is not None
        path = scope["path"]
        route = (("/invocations/{name}" if path != "/invocations" else path) if path.startswith("/invocations") else
                 "/v2/models/{name}/versions/{version}/infer" if "/versions/" in path else "/v2/models/{name}/infer")
        self.tracer.request(f"{scope['method']} {route}", self.tracer.context_from(scope["headers"]), started, {
            "http.request.method": scope["method"], "http.route": route, "url.path": path,
            "http.response.status_code": status, "sigserve.protocol": "rest", "sigserve.format": payload_format,
            "sigserve.model": picked.served.name if picked is not None else None,
            "sigserve.model.key": picked.served.key if picked is not None else None,
            "sigserve.model.version": picked.servable.version if picked is not None else None,
            "sigserve.rows": rows,
        }, phases, error)

    async def _read_body(self, declared: bytes | None, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"The request body of {declared.decode()} bytes is over this server's limit of {limit} "
                               "bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"The request body is over this server's limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def count_refusal(self, error: Exception) -> None:
        """A refusal's schema-error or rejection metric, for either protocol."""
        if self.metrics is None or not isinstance(error, SigserveError):
            return
        if error.schema_reason is not None:
            self.metrics.schema_error(error.schema_reason)
        elif error.rejection_reason is not None:
            self.metrics.rejected(error.rejection_reason)


async def _send_json(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]],
                     media: bytes = JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media), (b"content-length", b"%d" % len(payload)), *headers]})
    await send({"type": "http.response.body", "body": payload})


class _ClientGone(Exception):
    """The client disconnected before sending its whole request: there is no one to answer."""

