"""The HTTP app. The scoring routes (`POST /invocations`, KServe V2 `…/infer`) are served by a
bare ASGI handler in front of Starlette: on small requests the routing and middleware layers
cost as much as scoring itself. Everything else is Starlette (`routes.py`); typed errors become
HTTP answers in `http_errors.py`. Every response carries the request ID and the model version
that answered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from sigserve.codecs.v2 import FORMAT as V2_FORMAT
from sigserve.encode import encode_json
from sigserve.errors import BodyTooLarge, Overloaded, PredictionError, PredictionTimeout, SigserveError
from sigserve.manager import ModelManager, ReloadPoller, Servable
from sigserve.scoring import Prepared, Scored, Scorer, unexpected_as
from sigserve.server.access_log import AccessLog, request_id_of
from sigserve.server.batching import MicroBatcher
from sigserve.server.connections import READ_TIMED_OUT
from sigserve.server.http_errors import error_body, v2_error_body
from sigserve.server.inline import InlinePolicy, Timing
from sigserve.server.inline_guard import InlineGuard, InlineOverrun
from sigserve.server.metrics import Metrics
from sigserve.server.routes import starlette_routes
from sigserve.server.settings import ConnectionLimits, ServerSettings
from sigserve.server.v2_metadata import v2_mismatch

logger = logging.getLogger("sigserve.server")

JSON = b"application/json"
INLINE_PREPARE_MAX_BYTES = 64 * 1024
PrepareFn = Callable[[Scorer, bytes], Prepared]


class ScoringApp:
    """ASGI entry point: the scoring route directly, the rest through Starlette."""

    def __init__(
        self,
        manager: ModelManager,
        settings: ServerSettings | None = None,
        metrics: Metrics | None = None,
        poller: ReloadPoller | None = None,
    ) -> None:
        self.manager = manager
        self.settings = settings or ServerSettings()
        self.metrics = metrics
        self.poller = poller
        self.inline = InlinePolicy(self.settings.timeout_seconds)
        self.inline_guard = InlineGuard()
        self.access_log = AccessLog() if self.settings.access_log else None
        self.auth = self.settings.auth
        self.running = 0  # scoring work under way, including threads still running past a 504
        self.draining = False
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.batcher = (
            MicroBatcher(self.settings.batch_max_size, self.settings.batch_max_wait_seconds, self._run_uncounted)
            if self.settings.batch_max_size > 0
            else None
        )
        self.routes = starlette_routes(self, self._started, self._stopping)
        manager.on_swap(self._forget_inline_proof)

    def _forget_inline_proof(self, servable: Servable) -> None:
        """A new version has to prove itself fast before it runs on the event loop."""
        self.inline = InlinePolicy(self.settings.timeout_seconds)

    @property
    def timeout_seconds(self) -> float | None:
        return self.settings.timeout_seconds

    @property
    def connection_limits(self) -> ConnectionLimits:
        return self.settings.connections

    def connection_closed(self, reason: str) -> None:
        """The connection guard cut a client off: `slow_client` or `connection_limit`."""
        if self.metrics is not None:
            self.metrics.rejected(reason)

    def start_draining(self) -> None:
        """SIGTERM: readiness answers 503 from now on, while open connections are still served."""
        self.draining = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.routes(scope, receive, send)
            return
        started = time.perf_counter()
        servable = self.manager.current
        request_id = request_id_of(scope)
        extra = [(b"x-request-id", request_id), *servable.headers]
        if self.draining:  # uvicorn closes the connection after this answer
            extra.append((b"connection", b"close"))
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
            answered = await self._dispatch(scope, receive, send, send_with_headers, servable, extra)
            if answered is not None:
                status, sent = answered
        finally:
            if self.access_log is not None:
                self.access_log.record(scope, status, sent, time.perf_counter() - started, request_id, servable)

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, send_with_headers: Send, servable: Servable,
        extra: list[tuple[bytes, bytes]],
    ) -> tuple[int, int] | None:
        """Scoring routes answer here and say what they sent; the rest go through Starlette."""
        if self.auth is not None and (refused := self.auth.refusal(scope)) is not None:
            self._count_refusal(refused)
            return await self.auth.answer(scope, send, refused, extra)
        path = scope["path"]
        if scope["method"] == "POST" and path == "/invocations":
            content_type = _header(scope, b"content-type")
            status, sent = await self.score_route(
                scope, receive, send, servable, extra,
                lambda scorer, body: scorer.prepare(content_type, body, self.settings.decode_limits), error_body,
                _media_label(content_type),
            )
            return status, sent
        if scope["method"] == "POST" and path.startswith("/v2/models/") and path.endswith("/infer"):
            return await self.v2_infer(scope, receive, send, servable, extra)
        try:
            await self.routes(scope, receive, send_with_headers)
        except Exception:  # noqa: BLE001, S110 - Starlette has answered 500 and our handler logged it
            pass
        return None

    async def v2_infer(
        self, scope: Scope, receive: Receive, send: Send, servable: Servable, extra: list[tuple[bytes, bytes]]
    ) -> tuple[int, int]:
        name, version = self.v2_name(servable), servable.version
        asked_name, asked_version = v2_model_path(scope["path"]) or (scope["path"], None)
        mismatch = v2_mismatch(name, version, asked_name, asked_version)
        if mismatch is not None:
            payload = encode_json({"error": mismatch})
            await _send_json(send, 404, payload, extra)
            return 404, len(payload)
        return await self.score_route(
            scope, receive, send, servable, extra,
            lambda scorer, body: scorer.prepare_v2(body, name, version, self.settings.decode_limits),
            v2_error_body, V2_FORMAT,
        )

    def v2_name(self, servable: Servable) -> str:
        return self.settings.model_name or servable.name

    async def score_route(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        servable: Servable,
        extra: list[tuple[bytes, bytes]],
        prepare: PrepareFn,
        error_to_http: Callable[[Exception], tuple[int, bytes]],
        payload_format: str,
    ) -> tuple[int, int]:
        """Read, score and answer one request of either protocol; refusals are counted."""
        metrics = self.metrics
        if metrics is not None:
            metrics.request_started()
        started = time.perf_counter()
        status, payload, rows = 499, b"", None  # what a cancelled request (drain timeout) is counted as
        try:
            try:
                body = await self._read_body(scope, receive)
                scored = await self._score(servable, prepare, body)
                status, payload, payload_format, rows = 200, scored.body, scored.format, scored.rows
            except _ClientGone:
                status, payload = 499, b""
                if scope.get(READ_TIMED_OUT):  # the connection guard answered 408, closed and counted it
                    status = 408
            except Exception as exc:  # noqa: BLE001 - every error becomes a typed HTTP answer
                status, payload = error_to_http(exc)
                payload_format = getattr(exc, "payload_format", None) or payload_format
                self._count_refusal(exc)
            if status != 499:
                await _send_json(send, status, payload, extra)
        finally:
            if metrics is not None:
                metrics.request_finished(status, payload_format, time.perf_counter() - started, rows)
        return status, len(payload)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"The request body of {declared} bytes is over this server's limit of {limit} bytes")
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

    async def _score(self, servable: Servable, prepare: PrepareFn, body: bytes) -> Scored:
        if self.running >= self.settings.max_concurrency:
            raise Overloaded(
                f"All {self.settings.max_concurrency} scoring slots of this worker are busy; retry shortly"
            )
        if self.batcher is not None:
            return await self._with_timeout(self._score_batched(servable, prepare, body))
        timeout = self.settings.timeout_seconds
        if self.inline.allowed(len(body)) and self.inline_guard.available and self.inline_guard.loop_free():
            started = time.perf_counter()
            self.running += 1
            try:
                with self.inline_guard.limit():
                    return self._timed_score(servable, prepare, body, True)
            except InlineOverrun:  # too slow for the event loop: score it again in a thread
                if timeout is not None:
                    timeout = max(0.0, timeout - (time.perf_counter() - started))
            finally:
                self.running -= 1
        return await self._with_timeout(
            self._run_blocking(lambda: self._timed_score(servable, prepare, body, False)), timeout
        )

    def _timed_score(self, servable: Servable, prepare: PrepareFn, body: bytes, inline: bool) -> Scored:
        """Scoring time alone, without queueing: what decides whether requests run inline."""
        wall_started, cpu_started = time.perf_counter(), time.thread_time()
        succeeded, contended = False, self.running > 1
        try:
            scorer = servable.scorer
            scored = scorer.run(prepare(scorer, body))
            succeeded = True
            return scored
        finally:
            cpu, wall = time.thread_time() - cpu_started, time.perf_counter() - wall_started
            contended = contended or self.running > 1
            self.inline.record(Timing(len(body), cpu, wall, inline, succeeded, contended))

    async def _score_batched(self, servable: Servable, prepare: PrepareFn, body: bytes) -> Scored:
        assert self.batcher is not None
        scorer = servable.scorer
        if len(body) <= INLINE_PREPARE_MAX_BYTES:  # no model code runs here: cost follows size
            prepared = prepare(scorer, body)
        else:
            prepared = await self._run_blocking(lambda: prepare(scorer, body))
        if prepared.unified_llm:  # MLflow's own predict, one request at a time
            return await self._with_timeout(self._run_blocking(lambda: scorer.run(prepared)))
        self.running += 1
        try:
            with unexpected_as(PredictionError, "The model failed to predict on this input"):
                predictions = await self.batcher.predict(scorer.model, prepared.model_input, prepared.params)
        finally:
            self.running -= 1
        return scorer.finish(prepared, predictions)

    async def _run_blocking(self, fn: Callable[[], Any], counted: bool = True) -> Any:
        """Run `fn` in a scoring thread; its slot is released when the thread finishes, even if
        the request timed out long before, so runaway predictions still count against the limit."""
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(32, self.settings.max_concurrency), thread_name_prefix="sigserve-score"
            )
        if counted:
            self.running += 1

        def job() -> Any:
            try:
                return fn()
            finally:
                if counted:
                    loop.call_soon_threadsafe(self._release)

        future = self._executor.submit(job)
        try:
            return await asyncio.wrap_future(future)
        finally:
            if future.cancel() and counted:  # never started: `job` will not release its slot
                self.running -= 1

    async def _run_uncounted(self, fn: Callable[[], Any]) -> Any:
        """For the batcher: the requests in a batch already hold their slots."""
        return await self._run_blocking(fn, counted=False)

    def _release(self) -> None:
        self.running -= 1

    async def _with_timeout(self, work: Any, seconds: float | None = None) -> Scored:
        try:
            return await asyncio.wait_for(work, self.settings.timeout_seconds if seconds is None else seconds)
        except (asyncio.TimeoutError, TimeoutError):
            raise PredictionTimeout(
                f"Request processing time exceeded the limit of {self.settings.timeout_seconds:g}s"
            ) from None

    def _count_refusal(self, error: Exception) -> None:
        if self.metrics is None or not isinstance(error, SigserveError):
            return
        if error.schema_reason is not None:
            self.metrics.schema_error(error.schema_reason)
        elif error.rejection_reason is not None:
            self.metrics.rejected(error.rejection_reason)

    def _started(self) -> None:
        self.inline_guard.install()
        if self.poller is not None:
            self.poller.start()

    def _stopping(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def v2_model_path(path: str) -> tuple[str, str | None] | None:
    """`/v2/models/{name}[/versions/{version}]/…` to (name, version)."""
    parts = path.split("/")
    if len(parts) == 5:
        return parts[3], None
    if len(parts) == 7 and parts[4] == "versions":
        return parts[3], parts[5]
    return None


async def _send_json(send: Send, status: int, payload: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", JSON), (b"content-length", b"%d" % len(payload)), *extra]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class _ClientGone(Exception):
    """The client disconnected before sending its whole request: there is no one to answer."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


_MEDIA_LABELS = {"application/json": "json", "text/csv": "csv", "application/vnd.apache.parquet": "parquet"}


def _media_label(content_type: str | None) -> str:
    """A bounded label for requests that never reached a decoder (metrics must not take raw headers)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return _MEDIA_LABELS.get(media, "other")
