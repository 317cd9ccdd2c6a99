"""When to score a request on the event loop instead of handing it to a thread.

Handing a millisecond prediction to a thread pool costs as much again in wake-ups and GIL
hand-offs between the pool and the event loop: with four clients, 1 000-row requests ran at
half the throughput they reach inline. So once the model has proved fast, requests run inline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """One scoring call: its thread's CPU time, its wall time, and where it ran."""

    body_bytes: int
    cpu_seconds: float
    wall_seconds: float
    inline: bool
    succeeded: bool = True
    contended: bool = False  # other scoring work was running at the same time


class InlinePolicy:
    """Inline scoring for requests no larger than ones the model has just scored fast.

    Fast means at most `MAX_CPU_SECONDS` of the scoring thread's CPU: CPU, not wall time,
    because a request in a thread also waits for the GIL behind the others. Wall time still
    bounds it (`MAX_THREAD_WALL_SECONDS` in a thread next to other scoring work,
    `MAX_INLINE_WALL_SECONDS` otherwise), so a model that waits on I/O or on its own threads
    stays in threads.

    Threads running side by side also inflate each other's CPU time: a gradient-boosted model
    that costs 1.1 ms inline averaged 4.5 ms per request in four scoring threads, many over the
    limit. So a request that ran in a thread next to other scoring work and used more than
    `MAX_CPU_SECONDS` but at most `MAX_CONTENDED_CPU_SECONDS` proves nothing either way;
    otherwise such a model would stay in threads because it is in threads.

    `warmup` fast requests in a row switch inline scoring on; one slow request switches it off,
    and `InlineGuard` moves that request to a thread once it holds the event loop too long. A
    slow inline request also doubles the next warm-up and a long fast streak halves it again, so
    a model that is only sometimes slow stays mostly in threads. A timeout under
    `10 * MAX_CPU_SECONDS` turns this off.
    """

    # A pipeline over string columns or a forest spends 3-10 ms in predict: in threads, GIL
    # hand-offs cost them 30-40% of their throughput against an inline floor.
    MAX_CPU_SECONDS = 0.020
    MAX_INLINE_WALL_SECONDS = 0.025  # under InlineGuard.SECONDS, so a fast request is never interrupted
    MAX_THREAD_WALL_SECONDS = 0.200
    MAX_CONTENDED_CPU_SECONDS = 0.080
    WARMUP = 16
    MAX_WARMUP = 4096

    def __init__(self, timeout_seconds: float | None = None) -> None:
        self.enabled = timeout_seconds is None or timeout_seconds >= 10 * self.MAX_CPU_SECONDS
        self.warmup = self.WARMUP
        self.fast_streak = 0
        self.proven_bytes = 0
        self._lock = threading.Lock()

    def allowed(self, body_bytes: int) -> bool:
        return self.enabled and self.fast_streak >= self.warmup and body_bytes <= self.proven_bytes

    def record(self, timing: Timing) -> None:
        """A refusal proves nothing about scoring, so only a success counts as fast; a slow
        failure still counts as slow, unless it is inconclusive."""
        # Queueing for the GIL behind other scoring work stretches wall time; alone, a thread run
        # whose wall time far exceeds its CPU time waits on I/O and must not run inline.
        queued = timing.contended and not timing.inline
        wall_limit = self.MAX_THREAD_WALL_SECONDS if queued else self.MAX_INLINE_WALL_SECONDS
        fast = timing.cpu_seconds <= self.MAX_CPU_SECONDS and timing.wall_seconds <= wall_limit
        if fast and not timing.succeeded:
            return
        if not fast and self._inconclusive(timing):
            return
        with self._lock:  # scoring threads and the event loop record concurrently
            self._record(timing, fast)

    def _inconclusive(self, timing: Timing) -> bool:
        return (
            timing.contended
            and not timing.inline
            and timing.cpu_seconds <= self.MAX_CONTENDED_CPU_SECONDS
            and timing.wall_seconds <= self.MAX_THREAD_WALL_SECONDS
        )

    def _record(self, timing: Timing, fast: bool) -> None:
        if fast:
            self.fast_streak += 1
            self.proven_bytes = max(self.proven_bytes, timing.body_bytes)
            if self.fast_streak % (4 * self.warmup) == 0:
                self.warmup = max(self.WARMUP, self.warmup // 2)
            return
        if timing.inline:
            self.warmup = min(self.warmup * 2, self.MAX_WARMUP)
        self.fast_streak = 0
        self.proven_bytes = 0
