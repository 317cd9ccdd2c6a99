"""Keeps a request scored on the event loop from holding it: the request timeout and health
probes both depend on the loop being free.

A model that proved fast can still turn slow on one input (a branch that sleeps, a lookup that
waits); on the event loop that request would run to the end, past `-t`, with `/ping` stalled.
So an inline call runs under an interval timer: past `seconds`, SIGALRM raises `InlineOverrun`
in it, and the request is scored again in a thread, where the timeout holds. The exception
derives from BaseException so a model's own `except Exception` cannot swallow it. A native call
that does not return to Python is only interrupted when it does, which is why inline scoring
also needs the model to have been fast on requests of this size.

The event loop also goes back to other work after `MAX_HOLD_SECONDS` of inline requests in a
row, so a queue of fast requests cannot delay a probe either.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType


class InlineOverrun(BaseException):
    """An inline call ran past its limit; it is retried in a thread."""


class InlineGuard:
    SECONDS = 0.030
    MAX_HOLD_SECONDS = 0.020
    IDLE_GAP_SECONDS = 0.001  # a gap this long between inline requests means the loop had time

    def __init__(self, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self.available = False
        self._armed = False
        self._hold_started = 0.0
        self._last_finished = 0.0

    def install(self) -> bool:
        """Signals reach only the main thread: elsewhere (an embedded app) nothing runs inline."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            return False
        signal.signal(signal.SIGALRM, self._on_alarm)
        self.available = True
        return True

    def loop_free(self) -> bool:
        """False once inline requests have held the loop for `MAX_HOLD_SECONDS` without a gap."""
        now = time.perf_counter()
        if now - self._last_finished > self.IDLE_GAP_SECONDS:
            self._hold_started = now
        return now - self._hold_started < self.MAX_HOLD_SECONDS

    @contextlib.contextmanager
    def limit(self) -> Iterator[None]:
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            yield
        finally:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._last_finished = time.perf_counter()

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:  # a late alarm after the call finished must not hit the event loop
            self._armed = False
            raise InlineOverrun
