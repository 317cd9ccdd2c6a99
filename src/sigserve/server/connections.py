"""Deadlines and a cap for client connections, which uvicorn does not have.

uvicorn closes a keep-alive connection that stays idle, but waits forever for a connection that
never sends a request, sends its head a byte at a time, or trickles its body: 500 such clients
held every file descriptor of a worker. Each connection here is in one phase at a time, and a
sweep twice a second closes those that have spent too long in theirs. At the cap, a new
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

from sigserve.encode import encode_json
from sigserve.server.settings import ConnectionLimits

logger = logging.getLogger("sigserve.server")

SWEEP_SECONDS = 0.5
READ_TIMED_OUT = "sigserve.read_timed_out"  # set in the scope of a request whose body was too slow


class Phase(Enum):
    WAITING = "waiting"  # connected, or between requests, nothing received yet
    HEAD = "head"
    BODY = "body"
    ANSWERING = "answering"  # the whole request is in: the app works on it


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, which also records the phase each connection is in and since when.

    Recording is an attribute write per parser callback, so the sweep, not a timer per request,
    does the enforcing.
    """

    phase: Phase = Phase.WAITING
    phase_since: float = 0.0
    draining: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._enter(Phase.WAITING)
        guard = guard_of(self.server_state)
        if guard is not None:
            guard.admit(self)

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.WAITING:
            self._enter(Phase.HEAD)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._enter(Phase.BODY)
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._enter(Phase.ANSWERING)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        self._enter(Phase.ANSWERING if pipelined else Phase.WAITING)

    def shutdown(self) -> None:
        """uvicorn calls this when it stops: an idle connection closes, a busy one after its answer."""
        self.draining = True
        super().shutdown()

    def drain(self) -> None:
        """Answer what comes on this connection, but with `Connection: close`."""
        self.draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def send_400_response(self, msg: str) -> None:
        """A malformed request gets the same JSON error shape as every other refusal."""
        self.send_error_and_close(400, {"error_code": "BAD_REQUEST", "message": msg})

    def send_error_and_close(self, status: int, document: dict[str, Any]) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        body = encode_json(document)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app, if it is still reading, sees the client gone
            self.cycle.message_event.set()
        self.transport.close()

    def _enter(self, phase: Phase) -> None:
        self.phase = phase
        self.phase_since = self.loop.time()


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
        waiting = [c for c in self.connections if c is not newcomer and c.phase is not Phase.ANSWERING]
        if not waiting:
            newcomer.transport.close()
            return
        oldest = min(waiting, key=lambda c: c.phase_since)
        self.on_close("connection_limit")
        _close_slow(oldest, "this worker is at its limit of %d connections" % self.max_connections)

    def sweep(self, now: float) -> None:
        limits = self.limits
        for connection in list(self.connections):
            if not isinstance(connection, GuardedProtocol):
                continue
            waited, phase = now - connection.phase_since, connection.phase
            if phase is Phase.WAITING and connection.cycle is None and waited > limits.header_timeout_seconds:
                self._expire(connection, "request", limits.header_timeout_seconds)
            elif phase is Phase.HEAD and waited > limits.header_timeout_seconds:
                self._expire(connection, "request head", limits.header_timeout_seconds)
            elif phase is Phase.BODY and waited > limits.body_timeout_seconds:
                self._expire(connection, "request body", limits.body_timeout_seconds)
            elif phase is Phase.ANSWERING and limits.answer_timeout_seconds and waited > limits.answer_timeout_seconds:
                self.on_close("slow_client")  # it stopped reading its answer
                connection.transport.abort()

    def _expire(self, connection: GuardedProtocol, part: str, seconds: float) -> None:
        self.on_close("slow_client")
        _close_slow(connection, f"The {part} was not received within {seconds:g}s")

    async def _sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                self.sweep(loop.time())
            except Exception:  # noqa: BLE001 - the sweep must outlive any one connection's oddity
                logger.exception("connection sweep failed")


def _close_slow(connection: GuardedProtocol, message: str) -> None:
    """A client that sent something hears why it is cut off; a silent one is just closed."""
    if connection.phase is Phase.WAITING:
        connection.transport.close()
        return
    path = connection.scope.get("path", "") if connection.phase is Phase.BODY and connection.scope else ""
    document = {"error": message} if path.startswith("/v2") else {"error_code": "REQUEST_TIMEOUT", "message": message}
    if connection.phase is Phase.BODY and connection.scope is not None:
        connection.scope[READ_TIMED_OUT] = True  # type: ignore[literal-required]
    connection.send_error_and_close(408, document)


def guard_of(server_state: Any) -> ConnectionGuard | None:
    return getattr(server_state, "sigserve_guard", None)


def install_guard(
    server_state: Any, limits: ConnectionLimits, on_close: Callable[[str], None] = lambda reason: None
) -> ConnectionGuard:
    guard = ConnectionGuard(limits, server_state.connections, on_close)
    server_state.sigserve_guard = guard
    return guard
