"""Asks a model's source again, every interval, and hands the manager each new version it loads."""

from __future__ import annotations

import logging
import random
import threading

from sigserve.errors import ModelLoadError, SigserveError, UnsafeRegistryValue, WarmUpFailed
from sigserve.manager.manager import ModelManager
from sigserve.manager.servable import load_servable
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve

logger = logging.getLogger("sigserve.manager")


class ReloadPoller:
    """Polls the registry every `interval` seconds from a daemon thread and swaps in new versions.

    A version that fails to load or warm up is logged, counted and remembered, so it is not
    loaded again on every poll; the current model keeps serving. A registry that cannot be
    reached is logged and counted too, and asked again at the next poll.
    """

    def __init__(
        self, uri: str, sources: SourceSettings, interval: float, manager: ModelManager,
        allow_failing_example: bool = False,
    ) -> None:
        self.uri = uri
        self.sources = sources  # where the registry is and how to reach it, read once at start
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
        """Each wait is drawn within 10% of the interval, so many models' polls spread out."""
        while not self._stop.wait(self.interval * random.uniform(0.9, 1.1)):  # noqa: S311 - not security
            self._poll_safely()

    def _poll_safely(self) -> None:
        """The poller outlives any one bad poll."""
        try:
            self.poll_once()
        except Exception:
            if self.manager.events is not None:
                self.manager.events.registry_error(self.manager.key)
            logger.exception("registry poll for %s failed unexpectedly", self.uri)

    def poll_once(self) -> bool:
        """One poll; True when a new version was swapped in."""
        self.manager.release_retired()
        events = self.manager.events
        try:
            resolved = resolve(self.uri, self.sources)
        except UnsafeRegistryValue as exc:  # a version no header or log line may name: refused once, like a load
            if exc.message != self._refused_unsafe:
                self._refused_unsafe = exc.message
                if events is not None:
                    events.reload_failed(self.manager.key, "load")
                logger.error("the new version of %s was not swapped in; still serving version %s: %s",
                             self.uri, self.manager.current.version, exc.message)
            return False
        except SigserveError as exc:
            if events is not None:
                events.registry_error(self.manager.key)
            logger.warning("registry poll for %s failed; still serving the current model: %s", self.uri, exc.message)
            return False
        identity = (resolved.name, resolved.version, str(resolved.path))
        if identity == self.manager.current.identity or identity == self._refused:
            return False
        if not self.manager.loaded:  # not in memory (--max-loaded-models): its next request loads it
            try:
                self.manager.remember(resolved)
            except ModelLoadError as exc:
                self._refused = identity
                if events is not None:
                    events.reload_failed(self.manager.key, "load")
                logger.error("version %s of %s will not be served: %s", resolved.version, resolved.name, exc.message)
            return False
        logger.info("%s now points to version %s; loading it", self.uri, resolved.version)
        try:
            # a ready version is never replaced by one that is not
            allowed = self.allow_failing_example and not self.manager.current.ready
            servable = load_servable(resolved, allow_failing_example=allowed, lineage=self.manager.key)
        except ModelLoadError as exc:
            self._refused = identity
            if events is not None:
                events.reload_failed(self.manager.key, "warm_up" if isinstance(exc, WarmUpFailed) else "load")
            logger.error(
                "version %s of %s was not swapped in; still serving version %s: %s",
                resolved.version, resolved.name, self.manager.current.version, exc.message,
            )
            return False
        self.manager.swap(servable)
        return True
