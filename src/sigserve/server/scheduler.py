"""Where and when scoring runs: the worker's slots, inline on the event loop or in a thread or
merged into a micro-batch, and the request timeout. Knows nothing of protocols or routes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

from sigserve.errors import Overloaded, PredictionError, PredictionTimeout
from sigserve.scoring import Prepared, Scored, Scorer, unexpected_as
from sigserve.server.batching import MicroBatcher
from sigserve.server.inline import InlinePolicy, Timing
from sigserve.server.inline_guard import InlineGuard, InlineOverrun

INLINE_PREPARE_MAX_BYTES = 64 * 1024
PrepareFn = Callable[[Scorer], Prepared]


class ModelLane:
    """One served model's share of the scheduler: what it has proved about its speed (reset when
    a new version comes in), its micro-batcher, and its own concurrency cap."""

    def __init__(self, scheduler: Scheduler, batch_max_size: int, batch_max_wait_seconds: float,
                 max_concurrency: int | None) -> None:
        self.scheduler = scheduler
        self.inline = InlinePolicy(scheduler.timeout_seconds)
        self.max_concurrency = max_concurrency
        self.running = 0
        self.batcher = (
            MicroBatcher(batch_max_size, batch_max_wait_seconds, scheduler.run_uncounted)
            if batch_max_size > 0 else None
        )

    def forget_speed(self) -> None:
        """A new version has to prove itself fast before it runs on the event loop."""
        self.inline = InlinePolicy(self.scheduler.timeout_seconds)


class Scheduler:
    """A worker's scoring slots. A request holds one from the start of scoring until its thread
    finishes, even past a 504, so runaway predictions still count against the limit."""

    def __init__(self, max_concurrency: int, timeout_seconds: float | None) -> None:
        self.max_concurrency = max_concurrency
        self.timeout_seconds = timeout_seconds
        self.inline_guard = InlineGuard()
        self.running = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def lane(self, batch_max_size: int = 0, batch_max_wait_seconds: float = 0.002,
             max_concurrency: int | None = None) -> ModelLane:
        return ModelLane(self, batch_max_size, batch_max_wait_seconds, max_concurrency)

    def has_spare_capacity(self) -> bool:
        """Room for work nobody waits for (shadow scoring): half the slots free."""
        return self.running * 2 < self.max_concurrency

    def start(self) -> None:
        self.inline_guard.install()

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def score(self, lane: ModelLane, scorer: Scorer, prepare: PrepareFn, body_size: int) -> Scored:
        if self.running >= self.max_concurrency:
            raise Overloaded(f"All {self.max_concurrency} scoring slots of this worker are busy; retry shortly")
        if lane.max_concurrency is not None and lane.running >= lane.max_concurrency:
            raise Overloaded(f"All {lane.max_concurrency} scoring slots of this model are busy; retry shortly")
        slot = _LaneSlot(lane)
        try:
            if lane.batcher is not None:
                return await self.with_timeout(self._score_batched(lane.batcher, scorer, prepare, body_size))
            timeout = self.timeout_seconds
            guard = self.inline_guard
            if lane.inline.allowed(body_size) and guard.available and guard.loop_free():
                started = time.perf_counter()
                self.running += 1
                try:
                    with guard.limit():
                        return self._timed_score(lane, scorer, prepare, body_size, True)
                except InlineOverrun:  # too slow for the event loop: score it again in a thread
                    if timeout is not None:
                        timeout = max(0.0, timeout - (time.perf_counter() - started))
                finally:
                    self.running -= 1
            return await self.with_timeout(
                self.run_blocking(lambda: self._timed_score(lane, scorer, prepare, body_size, False), slot=slot),
                timeout,
            )
        finally:
            if not slot.in_thread:
                slot.release()

    def _timed_score(self, lane: ModelLane, scorer: Scorer, prepare: PrepareFn, body_size: int,
                     inline: bool) -> Scored:
        """Scoring time alone, without queueing: what decides whether requests run inline."""
        wall_started, cpu_started = time.perf_counter(), time.thread_time()
        succeeded, contended = False, self.running > 1
        try:
            scored = scorer.run(prepare(scorer))
            succeeded = True
            return scored
        finally:
            cpu, wall = time.thread_time() - cpu_started, time.perf_counter() - wall_started
            contended = contended or self.running > 1
            lane.inline.record(Timing(body_size, cpu, wall, inline, succeeded, contended))

    async def _score_batched(self, batcher: MicroBatcher, scorer: Scorer, prepare: PrepareFn,
                             body_size: int) -> Scored:
        if body_size <= INLINE_PREPARE_MAX_BYTES:  # no model code runs here: cost follows size
            prepared = prepare(scorer)
        else:
            prepared = await self.run_blocking(lambda: prepare(scorer))
        if prepared.unified_llm:  # MLflow's own predict, one request at a time
            return await self.run_blocking(lambda: scorer.run(prepared))
        self.running += 1
        try:
            with unexpected_as(PredictionError, "The model failed to predict on this input"):
                predictions = await batcher.predict(scorer.model, prepared.model_input, prepared.params,
                                                    prepared.phases)
        finally:
            self.running -= 1
        return scorer.finish(prepared, predictions)

    async def run_blocking(self, fn: Callable[[], Any], counted: bool = True, slot: _LaneSlot | None = None) -> Any:
        """Run `fn` in a scoring thread; its slot (and its model's `slot`) is released when the
        thread finishes."""
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(32, self.max_concurrency), thread_name_prefix="sigserve-score"
            )
        if counted:
            self.running += 1
        if slot is not None:
            slot.in_thread = True

        def job() -> Any:
            try:
                return fn()
            finally:
                if counted:
                    loop.call_soon_threadsafe(self._release, slot)

        future = self._executor.submit(job)
        try:
            return await asyncio.wrap_future(future)
        finally:
            if future.cancel() and counted:  # never started: `job` will not release its slot
                self._release(slot)

    async def run_uncounted(self, fn: Callable[[], Any]) -> Any:
        """For the batcher: the requests in a batch already hold their slots."""
        return await self.run_blocking(fn, counted=False)

    def _release(self, slot: _LaneSlot | None = None) -> None:
        self.running -= 1
        if slot is not None:
            slot.release()

    async def with_timeout(self, work: Any, seconds: float | None = None) -> Any:
        try:
            return await asyncio.wait_for(work, self.timeout_seconds if seconds is None else seconds)
        except (asyncio.TimeoutError, TimeoutError):
            raise PredictionTimeout(
                f"Request processing time exceeded the limit of {self.timeout_seconds:g}s"
            ) from None


class _LaneSlot:
    """A request's hold on its model's concurrency: released when the request ends, or, once it
    is handed to a thread, when the thread does (a prediction past its 504 still counts)."""

    def __init__(self, lane: ModelLane) -> None:
        self.lane = lane
        self.in_thread = False
        self._held = True
        lane.running += 1

    def release(self) -> None:
        if self._held:
            self._held = False
            self.lane.running -= 1
