"""Prometheus metrics for the scoring server, in one process or summed across gunicorn workers.

prometheus_client chooses where values live (in memory, or in mmap files that every worker
writes and any worker can read) from $PROMETHEUS_MULTIPROC_DIR when it is first imported, and
that may happen before the CLI has chosen a directory. So prometheus_client is only imported
inside functions, and each `Metrics` first makes that choice agree with the environment.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ROW_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_value_class_dir: str | None = None  # the directory prometheus_client's current value class writes to


def prepare_multiprocess_dir(path: str | None = None) -> str:
    """Give the workers an empty shared directory: files left by an earlier run would be summed in.

    Call it in the gunicorn master before workers fork and before any `Metrics` exists.
    """
    created = not (path or os.environ.get(MULTIPROC_ENV))
    path = path or os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="sigserve-metrics-")
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)
    os.environ[MULTIPROC_ENV] = path
    if created:
        atexit.register(_remove_dir, path, os.getpid())
    return path


def _remove_dir(path: str, owner_pid: int) -> None:
    """Forked workers inherit atexit hooks; only the process that made the directory removes it."""
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (in flight, model info); its counters stay in the totals."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)


def _match_value_class(directory: str | None) -> None:
    """Make prometheus_client store values the way the environment says now, not at its import."""
    global _value_class_dir
    from prometheus_client import values

    if directory is None:
        if values.ValueClass._multiprocess:
            values.ValueClass = values.MutexValue
    elif not values.ValueClass._multiprocess or _value_class_dir not in (None, directory):
        # Its open files are cached per process, not per directory: a new directory needs a new class.
        values.ValueClass = values.MultiProcessValue()
    _value_class_dir = directory


class Metrics:
    """The server's metrics: in its own registry, or in $PROMETHEUS_MULTIPROC_DIR when that is set."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        _match_value_class(self.multiprocess_dir)
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # Multiprocess metrics are collected from the files, so they join no registry.
        self.registry: CollectorRegistry | None = None if self.multiprocess_dir else CollectorRegistry()
        registry = self.registry
        self._request_children: dict[tuple[int, str, str, str], tuple[Any, Any]] = {}
        self._version_children: dict[tuple[str, str], Any] = {}
        self._show_lock = threading.Lock()
        self.requests = Counter(
            "sigserve_requests", "Scoring requests answered, by HTTP status (gRPC: the HTTP status of the same "
            "answer over REST), payload format, model and protocol (rest, grpc).",
            ["status", "format", "model", "protocol"], registry=registry,
        )
        self.request_seconds = Histogram(
            "sigserve_request_duration_seconds", "Time to answer a scoring request.",
            ["format", "model", "protocol"], buckets=DURATION_BUCKETS, registry=registry,
        )
        self.request_rows = Histogram(
            "sigserve_request_rows", "Rows in each scored request.", buckets=ROW_BUCKETS, registry=registry
        )
        self.schema_errors = Counter(
            "sigserve_schema_errors", "Requests refused by the model signature.",
            ["reason"], registry=registry,
        )
        self.rejections = Counter(
            "sigserve_rejected_requests", "Requests refused before scoring.", ["reason"], registry=registry
        )
        self.in_flight = Gauge(
            "sigserve_in_flight_requests", "Scoring requests being handled now.",
            multiprocess_mode="livesum", registry=registry,
        )
        # livemax: 1 while any live worker serves that model, 0 once all of them moved on,
        # gone when the workers that served it are marked dead.
        self.model_info = Gauge(
            "sigserve_model_info", "The models being served (value 1), by served name (`model`).",
            ["model", "name", "version", "alias"], multiprocess_mode="livemax", registry=registry,
        )
        self.model_load_seconds = Gauge(
            "sigserve_model_load_seconds", "Time taken to load each model's current version.",
            ["model"], multiprocess_mode="mostrecent", registry=registry,
        )
        self.reloads = Counter("sigserve_model_reloads", "Successful model reloads.", ["model"], registry=registry)
        self.reload_failures = Counter(
            "sigserve_model_reload_failures", "Failed model reloads.", ["model", "reason"], registry=registry
        )
        self.registry_errors = Counter(
            "sigserve_registry_errors", "Failed calls to the model registry.", ["model"], registry=registry
        )
        self.model_loads = Counter(
            "sigserve_model_loads", "Model versions loaded into memory: at `start`, on a `request` "
            "(--max-loaded-models) or by a `reload`.", ["model", "trigger"], registry=registry,
        )
        self.model_load_duration = Histogram(
            "sigserve_model_load_duration_seconds", "Time to load a model version and score its example.",
            ["model"], buckets=LOAD_BUCKETS, registry=registry,
        )
        self.model_load_failures = Counter(
            "sigserve_model_load_failures", "Loads for a request that failed (--max-loaded-models); "
            "the next request tries again.", ["model", "reason"], registry=registry,
        )
        self.model_evictions = Counter(
            "sigserve_model_evictions", "Models evicted from memory as the least recently used "
            "(--max-loaded-models).", ["model"], registry=registry,
        )
        self.loaded_models = Gauge(
            "sigserve_loaded_models", "Models in memory, in the worker that holds the most.",
            multiprocess_mode="livemax", registry=registry,
        )
        self.version_seconds = Histogram(
            "sigserve_version_duration_seconds",
            "Time to score a request, by served model and version (shadow copies included).",
            ["model", "version"], buckets=DURATION_BUCKETS, registry=registry,
        )
        self.shadow_requests = Counter(
            "sigserve_shadow_requests", "Shadow copies sent to a challenger: compared, dropped under load, failed.",
            ["model", "outcome"], registry=registry,
        )
        self.shadow_rows = Counter(
            "sigserve_shadow_rows", "Rows scored by both versions, by whether their predictions are identical.",
            ["model", "agreement"], registry=registry,
        )
        self.shadow_abs_difference = Counter(
            "sigserve_shadow_abs_difference",
            "Sum of absolute differences between numeric predictions of champion and challenger.",
            ["model"], registry=registry,
        )
        self.shadow_values = Counter(
            "sigserve_shadow_compared_values", "Numeric prediction values compared (divides the difference sum).",
            ["model"], registry=registry,
        )
        self._models: dict[str, tuple[str, str, str, str]] = {}
        self._shown: dict[str, tuple[str, str, str, str]] = {}
        self._shown_pid: int | None = None

    def request_started(self) -> None:
        self._show_model_here()
        self.in_flight.inc()

    def request_finished(
        self, status: int, payload_format: str, seconds: float, rows: int | None, model: str = "",
        protocol: str = "rest",
    ) -> None:
        """`model` is a served name (bounded by the configuration), "" for requests naming none;
        `protocol` is `rest` or `grpc`."""
        self.in_flight.dec()
        key = (status, payload_format, model, protocol)
        children = self._request_children.get(key)
        if children is None:  # `labels()` costs as much as the rest of this method; reuse its result
            children = self._request_children[key] = (
                self.requests.labels(str(status), payload_format, model, protocol),
                self.request_seconds.labels(payload_format, model, protocol),
            )
        children[0].inc()
        children[1].observe(seconds)
        if rows is not None:
            self.request_rows.observe(rows)

    def version_scored(self, model: str, version: str, seconds: float) -> None:
        child = self._version_children.get((model, version))
        if child is None:
            child = self._version_children[(model, version)] = self.version_seconds.labels(model, version)
        child.observe(seconds)

    def shadow_outcome(self, model: str, outcome: str) -> None:
        self.shadow_requests.labels(model, outcome).inc()

    def shadow_compared(self, model: str, challenger: str, version: str, seconds: float, rows: int,
                        identical_rows: int, abs_difference_sum: float, numeric_values: int) -> None:
        self.version_scored(challenger, version, seconds)
        self.shadow_requests.labels(model, "compared").inc()
        self.shadow_rows.labels(model, "identical").inc(identical_rows)
        self.shadow_rows.labels(model, "different").inc(rows - identical_rows)
        self.shadow_abs_difference.labels(model).inc(abs_difference_sum)
        self.shadow_values.labels(model).inc(numeric_values)

    def schema_error(self, reason: str) -> None:
        self.schema_errors.labels(reason).inc()

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def model_loaded(self, model: str, name: str, version: str, alias: str | None, seconds: float) -> None:
        """Record the model; in multiprocess mode its info series waits for a process that serves.

        With a preloaded app the gunicorn master loads the model, and the master never dies:
        a series in its file would claim that version for as long as the server runs.
        """
        self.model_load_seconds.labels(model).set(seconds)
        self._models[model] = (model, name, str(version), alias or "")
        if not self.multiprocess_dir or self._shown_pid == os.getpid():
            self._show_model()

    def model_unloaded(self, model: str) -> None:
        """Evicted (`--max-loaded-models`): its info series goes until it is loaded again."""
        self._models.pop(model, None)
        if not self.multiprocess_dir or self._shown_pid == os.getpid():
            self._show_model()

    def model_load_finished(self, model: str, trigger: str, seconds: float) -> None:
        self.model_loads.labels(model, trigger).inc()
        self.model_load_duration.labels(model).observe(seconds)

    def model_load_failed(self, model: str, reason: str) -> None:
        self.model_load_failures.labels(model, reason).inc()

    def model_evicted(self, model: str) -> None:
        self.model_evictions.labels(model).inc()

    def models_in_memory(self, count: int) -> None:
        self.loaded_models.set(count)

    def reload_succeeded(self, model: str) -> None:
        self.reloads.labels(model).inc()

    def reload_failed(self, model: str, reason: str) -> None:
        self.reload_failures.labels(model, reason).inc()

    def registry_error(self, model: str) -> None:
        self.registry_errors.labels(model).inc()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for GET /metrics: this registry, or every worker's files merged; in the
        OpenMetrics format when the scraper's `Accept` asks for it, else the 0.0.4 text format."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        encode, content_type = choose_encoder(accept or "")
        if self.registry is not None:
            return encode(self.registry), content_type
        from prometheus_client.multiprocess import MultiProcessCollector

        self._show_model_here()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return encode(registry), content_type

    def _show_model_here(self) -> None:
        if self.multiprocess_dir and self._shown_pid != os.getpid():
            self._show_model()

    def _show_model(self) -> None:
        with self._show_lock:  # the reload thread and the event loop both publish
            self._publish_model()

    def _publish_model(self) -> None:
        current = dict(self._models)
        for model, previous in self._shown.items():
            if current.get(model) != previous:
                if self.multiprocess_dir:
                    self.model_info.labels(*previous).set(0)  # a worker's file keeps every series it wrote
                else:
                    self.model_info.remove(*previous)
        for labels in current.values():
            self.model_info.labels(*labels).set(1)
        self._shown, self._shown_pid = current, os.getpid()
