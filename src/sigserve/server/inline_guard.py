"""Keeps a request scored on the event loop from holding it: the request timeout and health
probes both depend on the loop being free.

A model that proved fast can still turn slow on one input (a branch that sleeps, a lookup that
waits); on the event loop that request would run to the end, past `-t`, with `/ping` stalled.
So an inline call runs under an interval timer: past `seconds`, SIGALRM raises `InlineOverrun`
in it, and the request is scored again in a thread, where the timeout holds. The exception
derives from BaseException so a model's own `except Exception` cannot swallow it. A native call
that does not return to Python is only interrupted when it does, which is why inline scoring
also needs the model to have been fast on requests of this size.

A queue of fast requests must not delay a probe either. A heartbeat on the event loop every
`BEAT_SECONDS` measures how long a callback now waits for its turn; while that lag is over
`MAX_LAG_SECONDS`, new requests go to threads, which empties the queue. With a few clients the
lag stays small and everything fast runs inline.
"""

from __future__ import annotations

import asyncio
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
    BEAT_SECONDS = 0.010
    MAX_LAG_SECONDS = 0.050

    def __init__(self, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self.available = False
        self._armed = False
        self._last_beat = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> bool:
        """From the running event loop. Signals reach only the main thread: elsewhere (an
        embedded app) nothing runs inline."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            return False
        signal.signal(signal.SIGALRM, self._on_alarm)
        self._loop = asyncio.get_running_loop()
        self._beat()
        self.available = True
        return True

    def loop_free(self) -> bool:
        """False while callbacks on the event loop wait longer than `MAX_LAG_SECONDS` for their turn."""
        return time.monotonic() - self._last_beat < self.BEAT_SECONDS + self.MAX_LAG_SECONDS

    def _beat(self) -> None:
        assert self._loop is not None
        self._last_beat = time.monotonic()
        self._loop.call_later(self.BEAT_SECONDS, self._beat)

    @contextlib.contextmanager
    def limit(self) -> Iterator[None]:
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            yield
        finally:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:  # a late alarm after the call finished must not hit the event loop
            self._armed = False
            raise InlineOverrun
