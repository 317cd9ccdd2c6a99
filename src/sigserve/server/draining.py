"""uvicorn's server and gunicorn worker, with a drain on SIGTERM that loses no request.

uvicorn closes idle keep-alive connections the moment it is told to stop, so a request a
client writes on one just then is cut off: 16 to 32 per run under load. Here SIGTERM stops
accepting connections and turns readiness to 503 at once, but every connection already open
is still answered, with `Connection: close`, until it closes (an idle one when its keep-alive
time runs out) or the drain window ends. Then uvicorn's own shutdown finishes what is in
flight, and the process exits with status 0.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import sys
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from gunicorn.arbiter import Arbiter

from sigserve.server.connections import ConnectionGuard, GuardedProtocol, Phase, install_guard
from sigserve.server.settings import ConnectionLimits

with warnings.catch_warnings():  # uvicorn points at the separate uvicorn-worker package
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker

DRAIN_MARGIN_SECONDS = 1.0


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining on the first SIGTERM or SIGINT instead of closing idle
    connections, and never re-raising the signal (uvicorn would exit with -15)."""

    def __init__(self, config: uvicorn.Config, app: Any, drain_seconds: float) -> None:
        super().__init__(config)
        self.graceful_seconds = float(config.timeout_graceful_shutdown or 0)
        self.on_drain: Callable[[], None] = app.start_draining
        self.drain_seconds = drain_seconds
        self.drain_requested = False
        self.drain_deadline: float | None = None
        self.guard: ConnectionGuard = install_guard(self.server_state, app.connection_limits, app.connection_closed)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A signal handler: only flags here; the next tick drains. A second signal stops now."""
        if self.drain_requested:
            self.should_exit = True
            if sig == signal.SIGINT:
                self.force_exit = True
            return
        self.drain_requested = True

    async def on_tick(self, counter: int) -> bool:
        if self.drain_requested and not self.should_exit:
            self._drain_step()
        return await super().on_tick(counter)

    def _drain_step(self) -> None:
        now = asyncio.get_running_loop().time()
        connections = self.server_state.connections
        if self.drain_deadline is None:
            self.drain_deadline = now + self.drain_seconds
            for server in getattr(self, "servers", ()):
                stop_listening(server)
            self.on_drain()  # from now on every answer says `Connection: close`
            for connection in list(connections):
                cycle = getattr(connection, "cycle", None)
                if cycle is not None and not cycle.response_complete:
                    cycle.keep_alive = False
            return
        mid_request = any(isinstance(c, GuardedProtocol) and c.phase() in (Phase.HEAD, Phase.BODY)
                          for c in connections)
        if not connections or now >= self.drain_deadline and not mid_request or now >= self.drain_deadline + 1:
            self.guard.stop()
            self.should_exit = True
            # what is still in flight gets the rest of the grace period, not a second one
            elapsed = now - (self.drain_deadline - self.drain_seconds)
            self.config.timeout_graceful_shutdown = max(1, math.ceil(self.graceful_seconds - elapsed))


def stop_listening(server: asyncio.base_events.Server) -> None:
    """Stop the listening socket itself, not only this process's descriptor of it: with several
    workers, one that closed only its own descriptor would leave the socket accepting connections
    for the others, and connections still queued when the last one closes are reset unanswered."""
    for listener in server.sockets or ():
        try:
            with socket.socket(fileno=os.dup(listener.fileno())) as shared:
                shared.shutdown(socket.SHUT_RD)
        except OSError:  # already shut down by another worker
            pass
    server.close()


def uvicorn_config(app: Any, limits: ConnectionLimits, graceful_seconds: float, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, http=GuardedProtocol, timeout_keep_alive=limits.keep_alive_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=math.ceil(graceful_seconds), log_config=None, access_log=False,
        proxy_headers=False, **options,
    )


def drain_window(limits: ConnectionLimits, graceful_seconds: float) -> float:
    """Long enough for every idle keep-alive connection to close on its own timer."""
    return min(limits.keep_alive_seconds + DRAIN_MARGIN_SECONDS, graceful_seconds)


def serve_single(app: Any, graceful_seconds: float, **options: Any) -> None:
    limits = app.connection_limits
    config = uvicorn_config(app, limits, graceful_seconds, **options)
    server = DrainingServer(config, app, drain_window(limits, graceful_seconds))
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


class SigserveWorker(UvicornWorker):  # type: ignore[misc]
    """gunicorn's uvicorn worker, with sigserve's protocol and drain."""

    CONFIG_KWARGS = {"loop": "auto", "http": GuardedProtocol}

    async def _serve(self) -> None:
        app = self.wsgi
        self.config.app = app
        limits: ConnectionLimits = app.connection_limits
        graceful = float(self.cfg.graceful_timeout)
        self.config.timeout_keep_alive = limits.keep_alive_seconds
        server = DrainingServer(self.config, app, drain_window(limits, graceful))
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
