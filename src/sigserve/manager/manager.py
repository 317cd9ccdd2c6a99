"""The manager: which version of one model serves now, and moving to a new one without a gap."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

from sigserve.manager.servable import LoadEvents, Servable
from sigserve.manager.unloaded import NOT_LOADED_YET, Unloaded
from sigserve.sources.resolved import ResolvedModel

logger = logging.getLogger("sigserve.manager")


def release_memory_of_retired_models() -> None:
    """Models loaded before the heap was frozen are out of the cycle collector's reach, and
    estimators often hold reference cycles: thaw, collect once, freeze what is still alive."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelManager:
    """Holds the current servable. Requests read `current` once and keep that servable to the
    end, so a swap never changes the model under a request that has started. With
    `--max-loaded-models`, `current` is an `Unloaded` while the model is not in memory."""

    def __init__(self, servable: Servable | Unloaded, events: LoadEvents | None = None,
                 key: str | None = None) -> None:
        self.current: Servable | Unloaded = servable
        self.events = events
        self.key = key or servable.name  # the name metrics and logs know this model by
        self._swap_listeners: list[Callable[[Servable], None]] = []
        self._retired = False
        self._lock = threading.Lock()  # the reload thread swaps; the event loop loads and evicts
        if events is not None and isinstance(servable, Servable):
            events.model_loaded(self.key, servable.name, servable.version, servable.alias, servable.load_seconds)
            events.model_load_finished(self.key, "start", servable.load_seconds)

    @property
    def loaded(self) -> bool:
        return self.current.loaded

    def on_swap(self, listener: Callable[[Servable], None]) -> None:
        self._swap_listeners.append(listener)

    def release_retired(self) -> None:
        """Called a poll interval after a swap, when requests on the old model are long done."""
        if self._retired:
            self._retired = False
            release_memory_of_retired_models()

    def swap(self, servable: Servable) -> None:
        with self._lock:
            previous = self.current
            if not isinstance(previous, Servable):  # evicted while the new version loaded
                self.current = Unloaded.evicted(servable, previous.reason)
                logger.info("%s was evicted while version %s loaded; its next request loads it",
                            self.key, servable.version)
                return
            self.current = servable
        self._retired = True
        if self.events is not None:  # counted before logged, so a log line implies its metric
            self.events.model_loaded(self.key, servable.name, servable.version, servable.alias, servable.load_seconds)
            self.events.model_load_finished(self.key, "reload", servable.load_seconds)
            self.events.reload_succeeded(self.key)
        logger.info(
            "now serving %s/%s (was %s/%s)", servable.name, servable.version, previous.name, previous.version
        )
        for listener in self._swap_listeners:
            listener(servable)

    def load(self, servable: Servable) -> None:
        """A model that was not in memory comes in, loaded by a request (`--max-loaded-models`)."""
        with self._lock:
            self.current = servable
        if self.events is not None:
            self.events.model_loaded(self.key, servable.name, servable.version, servable.alias, servable.load_seconds)
            self.events.model_load_finished(self.key, "request", servable.load_seconds)
        for listener in self._swap_listeners:
            listener(servable)

    def unload(self, reason: str) -> bool:
        """Evicted: the servable is dropped (requests still on it keep it until they finish)."""
        with self._lock:
            current = self.current
            if not isinstance(current, Servable):
                return False
            self.current = Unloaded.evicted(current, reason)
        if self.events is not None:
            self.events.model_unloaded(self.key)
        return True

    def not_loaded(self, reason: str) -> None:
        """Why it is still not in memory (a load that failed), for the repository index."""
        with self._lock:
            current = self.current
            if isinstance(current, Unloaded):
                self.current = Unloaded(current.resolved, current.meta, current.alias, reason)

    def remember(self, resolved: ResolvedModel) -> bool:
        """The alias of a model not in memory moved: its next request loads the new version.
        Reads the new version's MLmodel (a ModelLoadError if it is not a model); False when the
        model was loaded meanwhile, and the next poll swaps the new version in as usual."""
        pending = Unloaded.of(resolved, NOT_LOADED_YET)
        with self._lock:
            if isinstance(self.current, Servable):
                return False
            self.current = pending
        logger.info("%s is not in memory; its next request loads version %s", self.key, pending.version)
        return True
