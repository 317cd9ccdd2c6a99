"""`--max-loaded-models K`: at most K served models in memory per worker, for fleets of small models.

Models past the first K load on their first request, in one loading thread per worker (one model
at a time, and once however many requests ask for it at once); then the least recently used idle
model is evicted. A model with requests under way is never evicted: while every loaded model is
busy the worker holds more than K, and evicts as soon as one is idle. A load that fails answers
503 and is tried again by the next request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import logging
from collections import OrderedDict
from typing import Protocol

from sigserve.errors import ModelUnavailable, SigserveError, WarmUpFailed
from sigserve.manager.fleet import ModelSet, ServedModel
from sigserve.manager.manager import release_memory_of_retired_models
from sigserve.manager.servable import LoadEvents, Servable, load_servable
from sigserve.manager.unloaded import EVICTED
from sigserve.redact import redact_text, without_paths

logger = logging.getLogger("sigserve.manager")


class ResidencyEvents(LoadEvents, Protocol):
    """What loading on request and evicting report; `server.metrics.Metrics` implements it."""

    def model_load_failed(self, model: str, reason: str) -> None: ...
    def model_evicted(self, model: str) -> None: ...
    def models_in_memory(self, count: int) -> None: ...


class ResidentModels:
    """Which served models are in memory in this worker, least recently used first. Used from the
    event loop only; loading runs in its own thread."""

    def __init__(self, models: ModelSet, capacity: int, events: ResidencyEvents | None = None, *,
                 allow_failing_example: bool = False, load_timeout: float | None = None) -> None:
        self.models = models
        self.capacity = capacity
        self.events = events
        self.allow_failing_example = allow_failing_example
        self.load_timeout = load_timeout  # how long a request waits for its model to load
        self._recent: OrderedDict[str, ServedModel] = OrderedDict((s.key, s) for s in models if s.loaded)
        self._frozen = set(self._recent)  # loaded before the heap was frozen and the workers forked
        self._in_flight: dict[str, int] = {}
        self._loading: dict[str, asyncio.Future[Servable]] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def start(self) -> None:
        """In each worker, once it serves (the master's count would never leave the metrics)."""
        self._report()

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def acquire(self, served: ServedModel) -> Servable:
        """The model in memory for one request, loaded first if it is not; `release` it after."""
        key = served.key
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            current = served.current
            servable = current if isinstance(current, Servable) else await self._loaded(served)
        except BaseException:
            self.release(served)
            raise
        self._recent[key] = served
        self._recent.move_to_end(key)
        return servable

    def release(self, served: ServedModel) -> None:
        key = served.key
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)
        if len(self._recent) > self.capacity:  # over K while every model was busy: evict now
            self._evict()

    def hold(self, served: ServedModel) -> Servable | None:
        """For work nobody waits for (a shadow copy): the model if it is in memory, held until
        `release`; else None, and it starts loading for the next time."""
        current = served.current
        if not isinstance(current, Servable):
            self._loading_of(served)
            return None
        self._in_flight[served.key] = self._in_flight.get(served.key, 0) + 1
        self._recent[served.key] = served
        self._recent.move_to_end(served.key)
        return current

    async def _loaded(self, served: ServedModel) -> Servable:
        """A request that gives up waiting (timeout, disconnect) leaves the load running for the others."""
        key = served.key
        try:
            return await asyncio.wait_for(asyncio.shield(self._loading_of(served)), self.load_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ModelUnavailable(f"Model {key!r} is still loading after {self.load_timeout:g}s; "
                                   "retry shortly", key) from None

    def _loading_of(self, served: ServedModel) -> asyncio.Future[Servable]:
        """One load per model however many requests wait for it."""
        key = served.key
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(served))
            loading.add_done_callback(functools.partial(self._load_done, key))
        return loading

    def _load_done(self, key: str, loading: asyncio.Future[Servable]) -> None:
        del self._loading[key]
        if not loading.cancelled():
            loading.exception()  # retrieved: a failure was logged and answered already

    async def _load(self, served: ServedModel) -> Servable:
        key, pending = served.key, served.current
        if isinstance(pending, Servable):  # loaded while this request waited its turn
            return pending
        logger.info("loading %s (%s/%s) for a request; %d of at most %d models in memory",
                    key, pending.name, pending.version, len(self._recent), self.capacity)
        load = functools.partial(load_servable, pending.resolved, allow_failing_example=self.allow_failing_example,
                                 lineage=served.key)
        try:
            servable: Servable = await asyncio.get_running_loop().run_in_executor(self._loader(), load)
        except Exception as exc:  # noqa: BLE001 - any failure to load is this model's 503, not the server's
            message = exc.message if isinstance(exc, SigserveError) else redact_text(f"{type(exc).__name__}: {exc}")
            if self.events is not None:
                self.events.model_load_failed(key, "warm_up" if isinstance(exc, WarmUpFailed) else "load")
            logger.error("could not load %s (%s/%s); its next request tries again: %s",
                         key, pending.name, pending.version, message)
            shown = without_paths(" ".join(message.split()))
            served.manager.not_loaded(f"unloaded: its last load failed ({shown}); its next request tries again")
            raise ModelUnavailable(f"Model {key!r} could not be loaded: {shown}; "
                                   "it is tried again on the next request", key) from None
        served.manager.load(servable)
        self._recent[key] = served
        logger.info("loaded %s (%s/%s) in %.2fs", key, servable.name, servable.version, servable.load_seconds)
        self._evict()
        return servable

    def _evict(self) -> None:
        """Least recently used first, past the ones with requests under way, down to K."""
        evicted, thaw = False, False
        for key in list(self._recent):
            if len(self._recent) <= self.capacity:
                break
            if self._in_flight.get(key):
                continue
            served = self._recent.pop(key)
            if served.manager.unload(EVICTED):
                evicted = True
                thaw = thaw or key in self._frozen
                self._frozen.discard(key)
                if self.events is not None:
                    self.events.model_evicted(key)
                logger.info("evicted %s (%s/%s), the least recently used, to keep at most %d models in memory",
                            key, served.current.name, served.current.version, self.capacity)
        if evicted:  # estimators hold reference cycles only a collection frees
            # Thawing the frozen heap (for a model loaded before the fork) writes to every shared
            # object's header, so each worker copies those pages: only when such a model goes.
            with contextlib.suppress(RuntimeError):  # the worker is stopping: nothing to free for
                self._loader().submit(release_memory_of_retired_models if thaw else gc.collect)
        self._report()

    def _loader(self) -> concurrent.futures.ThreadPoolExecutor:
        """Made in the worker that loads: threads do not survive a fork."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sigserve-load")
        return self._executor

    def _report(self) -> None:
        if self.events is not None:
            self.events.models_in_memory(len(self._recent))
