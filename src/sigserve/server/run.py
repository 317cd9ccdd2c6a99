"""Running the app: one uvicorn process, or gunicorn with uvicorn workers forked after load."""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import os
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from sigserve.server.app import ScoringApp
from sigserve.server.draining import serve_single
from sigserve.server.metrics import mark_process_dead
from sigserve.server.settings import DEFAULT_TIMEOUT_SECONDS, DRAIN_GRACE_SECONDS
from sigserve.server.tls import TlsFiles, gunicorn_options, uvicorn_options

WORKER_GRACE_SECONDS = 30  # a worker silent this long past the request timeout is restarted
_M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


TIMEOUT_ENV = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"


def request_timeout(flag: float | None) -> float:
    """`-t`, else MLflow's variable (empty is unset), else 60 s; a ValueError naming the flag or
    the variable for anything but a positive number of seconds, so the CLI refuses it before loading."""
    if flag is not None:
        return _positive_seconds(float(flag), "--timeout")
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    return _positive_seconds(seconds, TIMEOUT_ENV)


def _positive_seconds(seconds: float, source: str) -> float:
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{source} must be positive and finite, got {seconds:g}")
    return seconds


def freeze_startup_heap() -> None:
    """Move everything loaded so far (model, libraries) out of the garbage collector's reach.

    A full collection otherwise walks the whole model and library heap, stalling requests for
    tens of milliseconds; frozen pages also stay shared between forked workers.
    """
    gc.collect()
    gc.freeze()
    release_free_heap()


def release_free_heap() -> None:
    """Give the heap's free pages back before forking. Loading a model frees large temporary
    buffers; once glibc has raised its mmap threshold, the next model's land in the heap and stay
    there: the second of two 190 MB forests cost 570 MB until trimmed."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def limit_private_allocations() -> None:
    """Keep what each worker allocates per request small, so the shared model stays the bulk.

    Left alone, every scoring thread gets its own glibc malloc arena and pyarrow reserves a
    mimalloc region per process; pages they touch stay with the worker. With four workers on a
    200 MB model that private growth, not the model, pushed memory past 1.5 times one worker.
    """
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def run_server(
    app: ScoringApp, host: str, port: int, workers: int, log_level: str = "info", tls: TlsFiles | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, then drain: in-flight requests get their answers first."""
    limit_private_allocations()
    freeze_startup_heap()
    drain_seconds = int(app.timeout_seconds or DEFAULT_TIMEOUT_SECONDS) + DRAIN_GRACE_SECONDS
    limits = app.connection_limits
    if workers <= 1:
        serve_single(app, drain_seconds, host=host, port=port, log_level=log_level, **uvicorn_options(tls))
        return
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "loglevel": log_level,
        "timeout": int(app.timeout_seconds or DEFAULT_TIMEOUT_SECONDS) + WORKER_GRACE_SECONDS,
        "graceful_timeout": drain_seconds,
        "keepalive": math.ceil(limits.keep_alive_seconds),
        "child_exit": _child_exit,
        "logger_class": _SameFormatLogger,
        **gunicorn_options(tls),
    }
    _GunicornApp(app, options).run()


def _child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges (in-flight, model info) must leave the merged metrics."""
    mark_process_dead(worker.pid)


class _SameFormatLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's lines, and uvicorn's in the workers (they reuse gunicorn's handlers), in the
    format sigserve logs in, so `--log-format json` holds for every line."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        root = logging.getLogger().handlers
        if root and root[0].formatter is not None:
            for handler in [*self.error_log.handlers, *self.access_log.handlers]:
                handler.setFormatter(root[0].formatter)


class _GunicornApp(BaseApplication):  # type: ignore[misc]
    """The app object already holds the loaded model, so every forked worker shares it."""

    def __init__(self, app: ScoringApp, options: dict[str, Any]) -> None:
        self.application = app
        self.options = {
            "worker_class": "sigserve.server.draining.SigserveWorker",
            "preload_app": True,
            **options,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> ScoringApp:
        return self.application
