"""Deadlines and a cap for client connections, which uvicorn does not have.

uvicorn closes a keep-alive connection that stays idle, but waits forever for a connection that
never sends a request, sends its head a byte at a time, or trickles its body: 500 such clients
held every file descriptor of a worker. A sweep twice a second reads the phase each connection
is in from uvicorn's own state and closes those that have spent too long in it, so no request
pays for the bookkeeping (hooking every parser callback would). At the cap, a new
connection pushes out the connection that has waited longest without a complete request, so
clients that send whole requests are still served while slow ones hold the other slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from sigserve.codecs.mlflow.codec import MLFLOW
from sigserve.errors import BadRequest, BodyTimedOut
from sigserve.server.http_errors import codec_for_path, render_error
from sigserve.server.settings import ConnectionLimits

logger = logging.getLogger("sigserve.server")

SWEEP_SECONDS = 0.5
READ_TIMED_OUT = "sigserve.read_timed_out"  # set in the scope of a request whose body was too slow


class Phase(Enum):
    IDLE = "idle"  # between requests; uvicorn's keep-alive timer runs
    HEAD = "head"  # connected, or bytes of a new request arrived, and its head is not complete
    BODY = "body"
    ANSWERING = "answering"  # the whole request is in: the app works on it, or writes the answer


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, admitted under the cap, answering malformed requests in JSON."""

    seen_phase: tuple[Phase, object] | None = None
    seen_since: float = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.seen_phase, self.seen_since = (Phase.HEAD, None), self.loop.time()
        guard = guard_of(self.server_state)
        if guard is not None:
            guard.admit(self)

    def phase(self) -> Phase:
        cycle = self.cycle
        if cycle is None:
            return Phase.HEAD
        if cycle.response_complete:
            # uvicorn drops its keep-alive timer when bytes of the next request arrive
            return Phase.IDLE if self.timeout_keep_alive_task is not None else Phase.HEAD
        return Phase.BODY if cycle.more_body else Phase.ANSWERING

    def send_400_response(self, msg: str) -> None:
        """A malformed request gets the same JSON error shape as every other refusal."""
        self.send_error_and_close(*render_error(BadRequest(msg), MLFLOW))

    def send_error_and_close(self, status: int, body: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete:
            self.transport.close()
            return
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if it is still reading, sees the client gone
            self.cycle.message_event.set()
        self.transport.close()


class ConnectionGuard:
    """Enforces `ConnectionLimits` over one server's connections."""

    def __init__(
        self, limits: ConnectionLimits, connections: set[Any], on_close: Callable[[str], None] = lambda reason: None
    ) -> None:
        self.limits = limits
        self.connections = connections
        self.on_close = on_close
        self.max_connections = limits.effective_max_connections()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep_forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def admit(self, newcomer: GuardedProtocol) -> None:
        self.start()
        if len(self.connections) <= self.max_connections:
            return
        waiting = [c for c in self.connections
                   if c is not newcomer and isinstance(c, GuardedProtocol) and c.phase() is not Phase.ANSWERING]
        if not waiting:
            newcomer.transport.close()
            return
        oldest = min(waiting, key=lambda c: c.seen_since)
        self.on_close("connection_limit")
        oldest.transport.close()

    def sweep(self, now: float) -> None:
        limits = self.limits
        for connection in list(self.connections):
            if not isinstance(connection, GuardedProtocol) or connection.transport.is_closing():
                continue
            phase = connection.phase()
            seen = (phase, connection.cycle)
            if seen != connection.seen_phase:
                connection.seen_phase, connection.seen_since = seen, now
                continue
            waited = now - connection.seen_since
            if phase is Phase.HEAD and waited > limits.header_timeout_seconds:
                self.on_close("slow_client")
                connection.transport.close()  # no request to answer yet, as nginx does
            elif phase is Phase.BODY and waited > limits.body_timeout_seconds:
                self.on_close("slow_client")
                _answer_408(connection, limits.body_timeout_seconds)
            elif phase is Phase.ANSWERING and limits.answer_timeout_seconds and waited > limits.answer_timeout_seconds:
                self.on_close("slow_client")  # it stopped reading its answer
                connection.transport.abort()

    async def _sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                self.sweep(loop.time())
            except Exception:  # noqa: BLE001 - the sweep must outlive any one connection's oddity
                logger.exception("connection sweep failed")


def _answer_408(connection: GuardedProtocol, seconds: float) -> None:
    message = f"The request body was not received within {seconds:g}s"
    scope = connection.cycle.scope if connection.cycle is not None else {}
    if scope:
        scope[READ_TIMED_OUT] = True  # type: ignore[index]
    connection.send_error_and_close(*render_error(BodyTimedOut(message), codec_for_path(scope.get("path", ""))))


def guard_of(server_state: Any) -> ConnectionGuard | None:
    return getattr(server_state, "sigserve_guard", None)


def install_guard(
    server_state: Any, limits: ConnectionLimits, on_close: Callable[[str], None] = lambda reason: None
) -> ConnectionGuard:
    guard = ConnectionGuard(limits, server_state.connections, on_close)
    server_state.sigserve_guard = guard
    return guard
