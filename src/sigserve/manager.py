"""Manager stage: which model version serves now, and moving to a new one without a gap.

The source stage says where a URI points, the loader makes a model of it; the manager holds the
current `Servable` and, for URIs that can move (`@alias`, `/latest`, `/<stage>`), polls the
registry and swaps in a new version only once it has loaded and scored its own example.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sigserve.errors import ModelLoadError, SigserveError, UnsafeRegistryValue, WarmUpFailed
from sigserve.model.loader import load_model
from sigserve.model.resolved import ResolvedModel, printable
from sigserve.model.source import resolve
from sigserve.registry.uri import RegisteredModelRef, parse_models_uri
from sigserve.scoring import Scorer

logger = logging.getLogger("sigserve.manager")


@dataclass(frozen=True)
class Servable:
    """A loaded, warmed model and the registry facts that name it in headers and metadata."""

    scorer: Scorer
    resolved: ResolvedModel
    alias: str | None
    load_seconds: float
    example_failure: str | None = None  # served anyway (--allow-failing-example), never ready

    @property
    def ready(self) -> bool:
        return self.example_failure is None

    @property
    def name(self) -> str:
        return self.resolved.name or self.resolved.path.name

    @property
    def version(self) -> str:
        return self.resolved.version or "local"

    @property
    def identity(self) -> tuple[str | None, str | None, str]:
        return self.resolved.name, self.resolved.version, str(self.resolved.path)

    @functools.cached_property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """`X-Model-Version: name/version`, and the alias it was reached by."""
        headers = [(b"x-model-version", printable(f"{self.name}/{self.version}").encode("latin-1", "replace"))]
        if self.alias:
            headers.append((b"x-model-alias", printable(self.alias).encode("latin-1", "replace")))
        return headers


class LoadEvents(Protocol):
    """What the manager reports; `server.metrics.Metrics` implements it."""

    def model_loaded(self, name: str, version: str, alias: str | None, seconds: float) -> None: ...
    def reload_succeeded(self) -> None: ...
    def reload_failed(self, reason: str) -> None: ...
    def registry_error(self) -> None: ...


def alias_of(uri: str) -> str | None:
    """The alias, stage or `latest` a URI follows; None for a URI that names one fixed model."""
    if not uri.startswith("models:"):
        return None
    try:
        ref = parse_models_uri(uri)
    except SigserveError:
        return None
    if not isinstance(ref, RegisteredModelRef) or ref.version:
        return None
    return ref.alias or ref.stage or "latest"


def load_servable(resolved: ResolvedModel, *, allow_failing_example: bool = False) -> Servable:
    """Load, and score the model's own serving example. One rule for start-up and reloads: a
    model that fails on its own example is refused, unless allowed, and then never ready."""
    started = time.perf_counter()
    scorer = Scorer(load_model(resolved.path))
    failure = scorer.example_failure()
    if failure is not None:
        example = scorer.model.meta.serving_input_path
        message = f"the model fails on its own serving input example ({example}): {' '.join(failure.split())}"
        if not allow_failing_example:
            scorer.model.code.withdraw()  # the serving version's modules come back
            raise WarmUpFailed(f"{message} (--allow-failing-example serves it, never ready)")
        logger.error("%s; serving it anyway (--allow-failing-example), but never reporting it ready", message)
    scorer.model.code.keep()  # the previous version's modules are let go
    return Servable(scorer, resolved, alias_of(resolved.uri), time.perf_counter() - started, failure)


def release_memory_of_retired_models() -> None:
    """Models loaded before the heap was frozen are out of the cycle collector's reach, and
    estimators often hold reference cycles: thaw, collect once, freeze what is still alive."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelManager:
    """Holds the current servable. Requests read `current` once and keep that servable to the
    end, so a swap never changes the model under a request that has started."""

    def __init__(self, servable: Servable, events: LoadEvents | None = None) -> None:
        self.current = servable
        self.events = events
        self._swap_listeners: list[Callable[[Servable], None]] = []
        self._retired = False
        if events is not None:
            events.model_loaded(servable.name, servable.version, servable.alias, servable.load_seconds)

    def on_swap(self, listener: Callable[[Servable], None]) -> None:
        self._swap_listeners.append(listener)

    def release_retired(self) -> None:
        """Called a poll interval after a swap, when requests on the old model are long done."""
        if self._retired:
            self._retired = False
            release_memory_of_retired_models()

    def swap(self, servable: Servable) -> None:
        previous, self.current = self.current, servable
        self._retired = True
        if self.events is not None:  # counted before logged, so a log line implies its metric
            self.events.model_loaded(servable.name, servable.version, servable.alias, servable.load_seconds)
            self.events.reload_succeeded()
        logger.info(
            "now serving %s/%s (was %s/%s)", servable.name, servable.version, previous.name, previous.version
        )
        for listener in self._swap_listeners:
            listener(servable)


class ReloadPoller:
    """Polls the registry every `interval` seconds from a daemon thread and swaps in new versions.

    A version that fails to load or warm up is logged, counted and remembered, so it is not
    loaded again on every poll; the current model keeps serving. A registry that cannot be
    reached is logged and counted too, and asked again at the next poll.
    """

    def __init__(
        self, uri: str, registry: str | None, interval: float, manager: ModelManager,
        allow_failing_example: bool = False,
    ) -> None:
        self.uri = uri
        self.registry = registry
        self.interval = interval
        self.manager = manager
        self.allow_failing_example = allow_failing_example
        self._refused: tuple[str | None, str | None, str] | None = None
        self._refused_unsafe: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Poll once before serving, then keep polling in the background. A worker forked after
        the alias moved (a replacement for one that died) must not serve the start-up version."""
        self._poll_safely()
        self._thread = threading.Thread(target=self._run, name="sigserve-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll_safely()

    def _poll_safely(self) -> None:
        """The poller outlives any one bad poll."""
        try:
            self.poll_once()
        except Exception:
            if self.manager.events is not None:
                self.manager.events.registry_error()
            logger.exception("registry poll for %s failed unexpectedly", self.uri)

    def poll_once(self) -> bool:
        """One poll; True when a new version was swapped in."""
        self.manager.release_retired()
        events = self.manager.events
        try:
            resolved = resolve(self.uri, self.registry)
        except UnsafeRegistryValue as exc:  # a version no header or log line may name: refused once, like a load
            if exc.message != self._refused_unsafe:
                self._refused_unsafe = exc.message
                if events is not None:
                    events.reload_failed("load")
                logger.error("the new version of %s was not swapped in; still serving version %s: %s",
                             self.uri, self.manager.current.version, exc.message)
            return False
        except SigserveError as exc:
            if events is not None:
                events.registry_error()
            logger.warning("registry poll for %s failed; still serving the current model: %s", self.uri, exc.message)
            return False
        identity = (resolved.name, resolved.version, str(resolved.path))
        if identity == self.manager.current.identity or identity == self._refused:
            return False
        logger.info("%s now points to version %s; loading it", self.uri, resolved.version)
        try:
            # a ready version is never replaced by one that is not
            allowed = self.allow_failing_example and not self.manager.current.ready
            servable = load_servable(resolved, allow_failing_example=allowed)
        except ModelLoadError as exc:
            self._refused = identity
            if events is not None:
                events.reload_failed("warm_up" if isinstance(exc, WarmUpFailed) else "load")
            logger.error(
                "version %s of %s was not swapped in; still serving version %s: %s",
                resolved.version, resolved.name, self.manager.current.version, exc.message,
            )
            return False
        self.manager.swap(servable)
        return True
