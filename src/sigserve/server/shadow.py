"""Shadow scoring: the challenger scores a copy of a request the champion has already answered.

A copy starts once the champion's answer is ready, only while half the worker's slots are free
and few copies are under way, and runs in the shadow's own threads: it never holds a slot or a
thread a client's request could need, so it never delays, fails or changes the champion's
answer. Under load it is dropped (and counted). Its predictions are compared with the champion's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.protocol import Codec, Incoming
from sigserve.manager.fleet import ServedModel
from sigserve.manager.lru import ResidentModels
from sigserve.manager.servable import Servable
from sigserve.scoring import Scored
from sigserve.server.metrics import Metrics
from sigserve.server.scheduler import Scheduler

logger = logging.getLogger("sigserve.shadow")
MAX_SHADOW_IN_FLIGHT = 4  # per worker, and at most half of --max-concurrency


@dataclass(frozen=True)
class Comparison:
    """Rows compared, rows whose predictions are identical, and for numeric predictions the sum
    of absolute differences over how many values."""

    rows: int
    identical_rows: int
    abs_difference_sum: float = 0.0
    numeric_values: int = 0


def compare(champion: Any, challenger: Any) -> Comparison:
    """Row by row: a row is identical when every value of it (in every named output) is, NaN
    matching NaN. Predictions of different shapes or output names agree on no row. Absolute
    differences are summed over the finite ones of numeric outputs. Never raises."""
    try:
        return _compare(champion, challenger)
    except Exception:  # noqa: BLE001 - predictions numpy cannot compare agree on nothing
        return Comparison(1, 0)


def _compare(champion: Any, challenger: Any) -> Comparison:
    left, right = _outputs(champion), _outputs(challenger)
    first = next(iter(left.values()), np.asarray([]))
    rows = first.shape[0] if first.ndim else 1
    if left.keys() != right.keys():
        return Comparison(rows, 0)
    agreements: list[np.ndarray] = []
    difference_sum, numeric_values = 0.0, 0
    for name, a in left.items():
        b = right[name]
        same = _same(a, b)
        if same is None:
            return Comparison(rows, 0)
        agreements.append(same.reshape(a.shape[0], -1).all(axis=1) if a.ndim and a.size else
                          np.full(a.shape[0] if a.ndim else 1, bool(same.all())))
        if a.dtype.kind in "iufb" and b.dtype.kind in "iufb":
            with np.errstate(invalid="ignore", over="ignore"):
                difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
            finite = np.isfinite(difference)
            difference_sum += float(difference[finite].sum())
            numeric_values += int(finite.sum())
    if all(len(agreement) == rows for agreement in agreements):
        identical = int(np.logical_and.reduce(agreements).sum()) if agreements else rows
    else:  # outputs of different lengths: the prediction is one row
        rows, identical = 1, int(all(agreement.all() for agreement in agreements))
    return Comparison(rows, identical, difference_sum, numeric_values)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Element-wise equality of two arrays of one shape; None when they cannot be compared."""
    if a.shape != b.shape:
        return None
    try:
        same = np.asarray(a == b)
    except (ValueError, TypeError):  # object elements that compare as arrays
        return None
    if same.dtype != np.bool_ or same.shape != a.shape:
        return None
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        same = same | (np.isnan(a) & np.isnan(b))
    return same


def _outputs(predictions: Any) -> dict[str, np.ndarray]:
    """Predictions as named outputs: a dict's keys, a DataFrame's columns, else one unnamed."""
    if isinstance(predictions, pd.DataFrame) and predictions.columns.is_unique:
        return {str(column): predictions[column].to_numpy() for column in predictions.columns}
    if isinstance(predictions, dict) and predictions:
        return {str(name): _as_array(value) for name, value in predictions.items()}
    return {"": _as_array(predictions)}


def _as_array(predictions: Any) -> np.ndarray:
    if isinstance(predictions, (pd.DataFrame, pd.Series)):
        return predictions.to_numpy()
    try:
        return np.asarray(predictions)
    except (ValueError, TypeError):  # ragged lists
        array = np.empty(len(predictions), dtype=object)
        array[:] = list(predictions)
        return array


class ShadowRunner:
    """A worker's shadow copies: at most `max_in_flight` at once, each in a shadow thread."""

    def __init__(self, scheduler: Scheduler, metrics: Metrics | None, limits: DecodeLimits,
                 residency: ResidentModels | None = None) -> None:
        self.scheduler = scheduler
        self.residency = residency  # --max-loaded-models: the challenger may not be in memory
        self.metrics = metrics
        self.limits = limits
        self.max_in_flight = max(1, min(MAX_SHADOW_IN_FLIGHT, scheduler.max_concurrency // 2))
        self.running = 0  # copies whose thread has not finished, timed out or not
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, challenger: ServedModel, codec: Codec, request: Incoming, answered: Scored, model: str) -> None:
        """Called once the champion's answer is ready; returns at once."""
        if self.running >= self.max_in_flight or not self.scheduler.has_spare_capacity():
            self._count(model, "dropped")
            return
        if self._executor is None:  # made in the worker, after the fork
            self._executor = concurrent.futures.ThreadPoolExecutor(self.max_in_flight, "sigserve-shadow")
        loop = asyncio.get_running_loop()
        servable = challenger.current if self.residency is None else self.residency.hold(challenger)
        if not isinstance(servable, Servable):  # not in memory: loading now, for the next copies
            self._count(model, "dropped")
            return
        shadow_request = replace(request, model_version=servable.version)
        self.running += 1
        try:
            future = self._executor.submit(self._score, servable, codec, shadow_request, answered.predictions)
        except RuntimeError:  # shut down: the worker is stopping
            self._release(challenger)
            self._count(model, "dropped")
            return
        future.add_done_callback(lambda _: self._finished(loop, challenger))
        task = loop.create_task(self._await(future, challenger, servable, model))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _score(self, servable: Servable, codec: Codec, request: Incoming,
               champion_predictions: Any) -> tuple[Comparison, float]:
        """In a shadow thread: score the copy, compare, and time the challenger's scoring alone."""
        started = time.perf_counter()
        scorer = servable.scorer
        scored = scorer.run(scorer.prepare_request(codec, request, self.limits))
        seconds = time.perf_counter() - started
        return compare(champion_predictions, scored.predictions), seconds

    async def _await(self, future: concurrent.futures.Future[tuple[Comparison, float]], challenger: ServedModel,
                     servable: Servable, model: str) -> None:
        timeout = self.scheduler.timeout_seconds
        try:
            comparison, seconds = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except Exception as exc:  # noqa: BLE001 - a challenger's failure is counted, never raised
            reason = (f"no answer within {timeout:g}s" if isinstance(exc, (asyncio.TimeoutError, TimeoutError))
                      else getattr(exc, "message", None) or type(exc).__name__)
            logger.warning("shadow version %s/%s of %s failed: %s", servable.name, servable.version, model, reason)
            self._count(model, "failed")
            return
        if self.metrics is not None:
            self.metrics.shadow_compared(model, challenger.key, servable.version, seconds, comparison.rows,
                                         comparison.identical_rows, comparison.abs_difference_sum,
                                         comparison.numeric_values)

    def _finished(self, loop: asyncio.AbstractEventLoop, challenger: ServedModel) -> None:
        """From the shadow thread (or a cancel): the copy's thread, and the model it held, are
        free again (a copy that timed out holds both until its thread ends)."""
        try:
            loop.call_soon_threadsafe(self._release, challenger)
        except RuntimeError:  # the loop has closed: the worker is exiting
            pass

    def _release(self, challenger: ServedModel) -> None:
        self.running -= 1
        if self.residency is not None:
            self.residency.release(challenger)

    def _count(self, model: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shadow_outcome(model, outcome)
