"""Adaptive micro-batching: concurrent requests for one model merged into one predict call.

Only for models whose rows are independent (opt-in): a model that looks across rows would see
other clients' rows. Whenever a merged call cannot be split back faithfully, or fails, every
request is predicted alone, so each gets exactly the answer (or error) it would have without
batching.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sigserve.loaders.loader import LoadedModel
from sigserve.scoring import Phases

logger = logging.getLogger("sigserve.batching")

RunBlocking = Callable[[Callable[[], Any]], Awaitable[Any]]

_ALONE = object()  # a waiter's answer meaning "predict your own input yourself"


@dataclass
class _Request:
    model_input: Any
    rows: int
    future: asyncio.Future[Any]
    phases: Phases | None = None


@dataclass
class _Batch:
    key: Hashable
    loop: asyncio.AbstractEventLoop
    model: LoadedModel
    params: dict[str, Any] | None
    requests: list[_Request] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class MicroBatcher:
    """Merges concurrent row-wise requests; all state is touched on the event loop thread only."""

    def __init__(self, max_size: int, max_wait_seconds: float, run_blocking: RunBlocking | None = None) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_wait_seconds < 0:
            raise ValueError(f"max_wait_seconds must not be negative, got {max_wait_seconds}")
        self.max_size = max_size
        self.max_wait_seconds = max_wait_seconds
        self._run_blocking = run_blocking or _run_in_default_executor
        self._pending: dict[Hashable, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches_run = 0
        self.requests_batched = 0
        self.fallbacks = 0

    async def predict(self, model: LoadedModel, model_input: Any, params: dict[str, Any] | None,
                      phases: Phases | None = None) -> Any:
        """The model's prediction for this one (already enforced) request; `phases` learns when
        the predict it was part of ran, and with how many rows."""
        rows = _batchable_rows(model_input)
        key = _batch_key(model, model_input, params) if rows and rows < self.max_size else None
        if rows is None or key is None:
            return await self._alone(model, model_input, params, phases, rows)
        future = self._enqueue(key, model, model_input, rows, params, phases)
        answer = await future
        if answer is _ALONE:
            return await self._alone(model, model_input, params, phases, rows)
        return answer

    async def _alone(self, model: LoadedModel, model_input: Any, params: dict[str, Any] | None,
                     phases: Phases | None = None, rows: int | None = None) -> Any:
        if phases is None:
            return await self._run_blocking(functools.partial(model.predict, model_input, params))
        phases.predict, phases.batch_size, phases.first_in_batch = time.perf_counter_ns(), rows or 1, True
        try:
            return await self._run_blocking(functools.partial(model.predict, model_input, params))
        finally:
            phases.encode = time.perf_counter_ns()

    def _enqueue(
        self, key: Hashable, model: LoadedModel, model_input: Any, rows: int, params: dict[str, Any] | None,
        phases: Phases | None = None,
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        batch = self._pending.get(key)
        if batch is not None and batch.loop is not loop:
            batch = None  # left by a loop that stopped before its timer fired; its waiters went with it
        elif batch is not None and batch.rows + rows > self.max_size:
            self._flush(batch)
            batch = None
        if batch is None:
            batch = self._pending[key] = _Batch(key, loop, model, params)
            batch.timer = loop.call_later(self.max_wait_seconds, self._flush, batch)
        future: asyncio.Future[Any] = loop.create_future()
        batch.requests.append(_Request(model_input, rows, future, phases))
        batch.rows += rows
        if batch.rows >= self.max_size:
            self._flush(batch)
        return future

    def _flush(self, batch: _Batch) -> None:
        if self._pending.get(batch.key) is batch:
            del self._pending[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
        live = [request for request in batch.requests if not request.future.done()]  # not cancelled
        if len(live) < 2:
            _answer_alone(live)
            return
        task = asyncio.get_running_loop().create_task(self._run(batch.model, batch.params, live))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, model: LoadedModel, params: dict[str, Any] | None, requests: list[_Request]) -> None:
        """One merged predict; on any doubt each request is answered with _ALONE instead."""
        parts: list[Any] | None = None
        inputs, counts = [r.model_input for r in requests], [r.rows for r in requests]
        work = functools.partial(_predict_merged, model, inputs, counts, params)
        started = time.perf_counter_ns()
        try:
            parts = await self._run_blocking(work)
        except Exception as exc:  # noqa: BLE001 - the requests alone will raise it to their callers
            logger.debug("merged predict of %d requests failed; predicting each alone: %r", len(requests), exc)
        finally:
            self.batches_run += 1
            self.requests_batched += len(requests)
            if parts is None:
                self.fallbacks += 1
                _answer_alone(requests)
            else:
                _record_batch(requests, started, time.perf_counter_ns())
                for request, part in zip(requests, parts):
                    if not request.future.done():
                        request.future.set_result(part)


async def _run_in_default_executor(fn: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


def _record_batch(requests: list[_Request], started: int, finished: int) -> None:
    rows = sum(request.rows for request in requests)
    for i, request in enumerate(requests):
        if request.phases is not None:
            phases = request.phases
            phases.predict, phases.encode, phases.batch_size, phases.first_in_batch = started, finished, rows, i == 0


def _answer_alone(requests: list[_Request]) -> None:
    for request in requests:
        if not request.future.done():
            request.future.set_result(_ALONE)


def _batchable_rows(model_input: Any) -> int | None:
    """Row count of an input that can be merged: a default-indexed frame or an array with rows."""
    if isinstance(model_input, pd.DataFrame):
        index = model_input.index
        if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
            return None  # the model may read the index; alone it would see this one
        rows = len(model_input)
    elif isinstance(model_input, np.ndarray) and model_input.ndim >= 1:
        rows = model_input.shape[0]
    else:
        return None
    return rows or None


def _batch_key(model: LoadedModel, model_input: Any, params: dict[str, Any] | None) -> Hashable | None:
    """Requests merge only with the same model, params and column layout; None means alone."""
    try:
        params_key = json.dumps(params, sort_keys=True, default=_canonical)
        if isinstance(model_input, pd.DataFrame):
            layout: Hashable = ("frame", tuple(model_input.columns), tuple(model_input.dtypes))
        else:
            layout = ("array", model_input.dtype, model_input.shape[1:])
        key = (id(model), params_key, layout)
        hash(key)
    except (TypeError, ValueError):
        return None
    return key


def _canonical(value: Any) -> Any:
    """JSON stand-ins for the non-JSON values enforced params hold, tagged with their type."""
    if isinstance(value, np.ndarray):
        return ["ndarray", str(value.dtype), value.tolist()]
    if isinstance(value, np.generic):
        return [type(value).__name__, value.item()]
    if isinstance(value, (dt.date, dt.time, bytes, bytearray)):
        return [type(value).__name__, repr(value)]
    raise TypeError(f"no canonical form for {type(value).__name__}")


def _predict_merged(
    model: LoadedModel, inputs: list[Any], counts: list[int], params: dict[str, Any] | None
) -> list[Any] | None:
    """Runs off the event loop: concatenate, predict once, split; None when it cannot split."""
    merged = _concat(inputs)
    if merged is None:
        return None
    return _split(model.predict(merged, params), counts)


def _concat(inputs: list[Any]) -> Any:
    first = inputs[0]
    if isinstance(first, pd.DataFrame):
        merged = pd.concat(inputs, ignore_index=True)
        return merged if list(merged.dtypes) == list(first.dtypes) else None
    return np.concatenate(inputs, axis=0)


def _split(output: Any, counts: list[int]) -> list[Any] | None:
    spans = list(itertools.pairwise([0, *itertools.accumulate(counts)]))
    if type(output) is dict:
        if not output:
            return None
        columns = {key: _split_value(value, spans) for key, value in output.items()}
        if any(parts is None for parts in columns.values()):
            return None
        return [{key: parts[i] for key, parts in columns.items()} for i in range(len(counts))]  # type: ignore[index]
    return _split_value(output, spans)


def _split_value(value: Any, spans: list[tuple[int, int]]) -> list[Any] | None:
    total = spans[-1][1]
    if isinstance(value, (pd.Series, pd.DataFrame)):
        if len(value) != total:
            return None
        parts = [value.iloc[start:stop] for start, stop in spans]
        if value.index.equals(pd.RangeIndex(total)):  # positional: alone, each would start at 0
            parts = [part.reset_index(drop=True) for part in parts]
        return parts
    if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == total:
        return [value[start:stop] for start, stop in spans]
    if type(value) is list and len(value) == total:  # a subclass would come back a plain list
        return [value[start:stop] for start, stop in spans]
    return None
