"""Micro-batching on real MLflow models: every request gets its unbatched answer."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from helpers import ALL_TYPES, REQUIREMENTS, TESTS_DIR, SigserveServer

from sigserve.codecs.limits import DEFAULT_LIMITS
from sigserve.codecs.mlflow.codec import MLFLOW
from sigserve.codecs.protocol import Incoming
from sigserve.loaders.loader import LoadedModel, load_model
from sigserve.scoring import Scorer
from sigserve.server.batching import MicroBatcher

Request = tuple[Any, dict[str, Any] | None]
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def batch_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from models import batching_models

    x_only = ModelSignature(inputs=Schema([ColSpec("double", "x")]))
    all_types = ModelSignature(inputs=Schema([ColSpec(t, n) for n, t in ALL_TYPES]))
    optional = ModelSignature(inputs=Schema([ColSpec("double", "x"), ColSpec("long", "k", required=False)]))
    specs = {
        "fails_on_negative": (batching_models.FailsOnNegative(), x_only),
        "summary": (batching_models.Summary(), x_only),
        "dict_out": (batching_models.DictOut(), x_only),
        "slow_double": (batching_models.SlowDouble(), x_only),
        "rows_per_call": (batching_models.RowsPerCall(), x_only),
        "frame_echo": (batching_models.FrameEcho(), all_types),
        "frame_echo_optional": (batching_models.FrameEcho(), optional),
        "frame_echo_nosig": (batching_models.FrameEcho(), None),
    }
    root = tmp_path_factory.mktemp("batching_models")
    for name, (python_model, signature) in specs.items():
        mlflow.pyfunc.save_model(root / name, python_model=python_model, signature=signature,
                                 code_paths=[str(TESTS_DIR / "models")], pip_requirements=REQUIREMENTS)
    return {name: root / name for name in specs}


class Counted:
    """The same loaded model with every predict call recorded: rows and thread."""

    def __init__(self, model: LoadedModel) -> None:
        self.rows: list[int] = []
        self.threads: list[str] = []
        predict_fn = model.predict_fn

        def counting(model_input: Any, *args: Any, **kwargs: Any) -> Any:
            self.rows.append(len(model_input))
            self.threads.append(threading.current_thread().name)
            return predict_fn(model_input, *args, **kwargs)

        self.model = dataclasses.replace(model, predict_fn=counting)


def enforced(model: LoadedModel, payload: dict[str, Any]) -> Request:
    """A request as the server hands it over: decoded and enforced against the signature."""
    scorer = Scorer(model)
    request = Incoming(orjson.dumps(payload), "application/json")
    return scorer.enforce(MLFLOW.decode(request, scorer.interface, DEFAULT_LIMITS).decoded)


def x_rows(model: LoadedModel, *xs: float) -> Request:
    return enforced(model, {"dataframe_split": {"columns": ["x"], "data": [[x] for x in xs]}})


def alone(model: LoadedModel, requests: list[Request]) -> list[Any]:
    answers: list[Any] = []
    for model_input, params in requests:
        try:
            answers.append(model.predict(model_input, params))
        except Exception as exc:  # noqa: BLE001 - the reference answer may be an error
            answers.append(exc)
    return answers


def batched(batcher: MicroBatcher, model: LoadedModel, requests: list[Request]) -> list[Any]:
    async def run() -> list[Any]:
        calls = [batcher.predict(model, model_input, params) for model_input, params in requests]
        return await asyncio.gather(*calls, return_exceptions=True)

    return asyncio.run(run())


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Await a condition on the event loop: `helpers.wait_for` for coroutines."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.001)


def assert_same(got: Any, want: Any) -> None:
    """Same type, dtype, shape and index as the request would have got alone; floats to the
    last bit or two, as BLAS may round a bigger matrix product differently."""
    assert type(got) is type(want)
    if isinstance(want, Exception):
        assert str(got) == str(want)
    elif isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=TOLERANCE, atol=0)
    elif isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want, check_exact=False, rtol=TOLERANCE, atol=0)
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=0)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key])
    else:
        assert got == want


def assert_all_same(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for one, other in zip(got, want):
        assert_same(one, other)


def iris_requests(model: LoadedModel, tensor: bool) -> list[Request]:
    from sklearn.datasets import load_iris

    features = load_iris(as_frame=True).data
    rows = features.to_numpy()[::4].tolist()
    if tensor:
        return [enforced(model, {"inputs": [row]}) for row in rows]
    columns = list(features.columns)
    return [enforced(model, {"dataframe_split": {"columns": columns, "data": [row]}}) for row in rows]


@pytest.mark.parametrize("name", ["sklearn_skops", "sklearn_cloudpickle", "sklearn_tensor"])
def test_concurrent_rows_get_their_unbatched_predictions_from_few_calls(models, name: str) -> None:
    model = load_model(models[name])
    requests = iris_requests(model, tensor=name == "sklearn_tensor")
    counted = Counted(model)
    batcher = MicroBatcher(max_size=16, max_wait_seconds=0.05)

    assert_all_same(batched(batcher, counted.model, requests), alone(model, requests))
    assert len(requests) == 38 and len(counted.rows) == 3 and max(counted.rows) <= 16
    assert (batcher.batches_run, batcher.requests_batched, batcher.fallbacks) == (3, 38, 0)


def test_batches_never_exceed_max_size_and_a_bigger_request_goes_alone(models) -> None:
    model = load_model(models["sklearn_skops"])
    iris = iris_requests(model, tensor=False)
    frames = [pd.concat([r[0] for r in iris[i:i + 3]], ignore_index=True) for i in range(0, 30, 3)]
    big = pd.concat([r[0] for r in iris[:10]], ignore_index=True)
    requests: list[Request] = [(frame, None) for frame in frames[:5]] + [(big, None)]
    requests += [(frame, None) for frame in frames[5:]]
    counted = Counted(model)

    got = batched(MicroBatcher(max_size=7, max_wait_seconds=0.05), counted.model, requests)

    assert_all_same(got, alone(model, requests))
    assert counted.rows.count(10) == 1
    assert all(rows <= 7 for rows in counted.rows if rows != 10)
    assert sum(counted.rows) == 40  # every row predicted exactly once


def test_a_lone_request_waits_about_max_wait(models) -> None:
    model = load_model(models["sklearn_skops"])
    model_input, params = iris_requests(model, tensor=False)[0]
    batcher = MicroBatcher(max_size=64, max_wait_seconds=0.2)

    started = time.perf_counter()
    got = asyncio.run(batcher.predict(model, model_input, params))
    elapsed = time.perf_counter() - started

    assert_same(got, model.predict(model_input, params))
    assert 0.1 <= elapsed < 0.2 + 10.0


def test_a_full_batch_does_not_wait_for_max_wait(models) -> None:
    model = load_model(models["sklearn_skops"])
    requests = iris_requests(model, tensor=False)[:8]
    counted = Counted(model)

    started = time.perf_counter()
    got = batched(MicroBatcher(max_size=4, max_wait_seconds=60), counted.model, requests)

    assert time.perf_counter() - started < 10
    assert_all_same(got, alone(model, requests))
    assert counted.rows == [4, 4]


def test_different_params_and_models_make_separate_batches(models) -> None:
    model = load_model(models["custom_loader"])
    other = load_model(models["custom_loader"])
    frame = enforced(model, {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1.0, 2.0, 3.0]]}})[0]
    params_list: list[dict[str, Any] | None] = [
        {"scale": 2.0, "ids": [1, 2]}, {"ids": [1, 2], "scale": 2.0},  # the same params, reordered
        {"scale": 2.0, "ids": [1, 3]}, {"scale": 3.0}, None,
        {"scale": 1.0, "when": dt.datetime(2024, 1, 1)}, {"scale": 1.0, "when": dt.date(2024, 1, 1)},
        {"scale": 1.0, "blob": b"\x00"}, {"scale": 1.0, "v": np.arange(3)}, {"scale": 1.0, "v": [0, 1, 2]},
    ]
    requests: list[Request] = [(frame * (i + 1), params) for i, params in enumerate(params_list)]
    counted, counted_other = Counted(model), Counted(other)
    batcher = MicroBatcher(max_size=64, max_wait_seconds=0.05)

    async def run() -> list[Any]:
        mine = [batcher.predict(counted.model, i, p) for i, p in requests]
        theirs = [batcher.predict(counted_other.model, i, p) for i, p in requests[:2]]
        return await asyncio.gather(*mine, *theirs)

    got = asyncio.run(run())

    assert_all_same(got, alone(model, requests) + alone(model, requests[:2]))
    assert sorted(counted.rows) == [1] * 8 + [2]  # only the reordered pair shared a call
    assert counted_other.rows == [2]


def test_a_bad_row_fails_only_its_own_request(batch_models) -> None:
    model = load_model(batch_models["fails_on_negative"])
    requests = [x_rows(model, x) for x in (1.0, 2.0, -3.0, 4.0, 5.0)] + [x_rows(model, 6.0, 7.0)]
    counted = Counted(model)
    batcher = MicroBatcher(max_size=64, max_wait_seconds=0.05)

    got = batched(batcher, counted.model, requests)

    assert_all_same(got, alone(model, requests))
    assert isinstance(got[2], ValueError) and "negative x: [-3.0]" in str(got[2])
    assert counted.rows[0] == 7 and sorted(counted.rows[1:]) == [1, 1, 1, 1, 1, 2]  # the merged try, then each alone
    assert (batcher.batches_run, batcher.requests_batched, batcher.fallbacks) == (1, 6, 1)


@pytest.mark.parametrize("name", ["summary", "echo"])
def test_an_output_that_does_not_split_by_rows_falls_back_per_request(models, batch_models, name: str) -> None:
    model = load_model({**models, **batch_models}[name])
    if name == "echo":
        row = [1, 2, 1.5, 2.5, "x", True, "2020-01-01", "aGk="]
        columns = [n for n, _ in ALL_TYPES]
        requests = [enforced(model, {"dataframe_split": {"columns": columns, "data": [row] * n}}) for n in (1, 2, 3)]
    else:
        requests = [x_rows(model, *range(n)) for n in (1, 2, 3, 4)]
    batcher = MicroBatcher(max_size=64, max_wait_seconds=0.05)

    assert_all_same(batched(batcher, model, requests), alone(model, requests))
    assert batcher.fallbacks == 1


def test_frame_dtypes_and_frame_outputs_match_unbatched(batch_models) -> None:
    model = load_model(batch_models["frame_echo"])
    columns = [n for n, _ in ALL_TYPES]
    rows = [[i, 2 * i, i + 0.5, i / 3, f"s{i}", i % 2 == 0, f"2020-01-0{i + 1}T10:00:00", "aGk="] for i in range(6)]
    requests = [enforced(model, {"dataframe_split": {"columns": columns, "data": [row]}}) for row in rows]
    requests.append(enforced(model, {"dataframe_split": {"columns": columns, "data": rows[:2]}}))
    counted = Counted(model)

    got = batched(MicroBatcher(max_size=64, max_wait_seconds=0.05), counted.model, requests)

    assert_all_same(got, alone(model, requests))
    assert counted.rows == [8]
    assert list(got[0].index) == [0] and list(got[-1].index) == [0, 1]


@pytest.mark.parametrize("name", ["frame_echo_optional", "frame_echo_nosig"])
def test_frames_with_different_columns_or_dtypes_are_not_merged(batch_models, name: str) -> None:
    model = load_model(batch_models[name])
    with_k = [enforced(model, {"dataframe_split": {"columns": ["x", "k"], "data": [[x, 7]]}}) for x in (1.0, 2.0)]
    whole = [enforced(model, {"dataframe_split": {"columns": ["x"], "data": [[x]]}}) for x in (3, 4)]
    fractional = [x_rows(model, x) for x in (3.5, 4.5)]
    requests = [with_k[0], whole[0], fractional[0], with_k[1], whole[1], fractional[1]]
    counted = Counted(model)
    batcher = MicroBatcher(max_size=64, max_wait_seconds=0.05)

    got = batched(batcher, counted.model, requests)

    assert_all_same(got, alone(model, requests))
    assert sorted(counted.rows) == ([2, 2, 2] if name == "frame_echo_nosig" else [2, 4])
    assert batcher.fallbacks == 0


def test_series_and_dict_outputs_are_split_per_request(models, batch_models) -> None:
    for model in (load_model(models["series_out"]), load_model(batch_models["dict_out"])):
        requests = [x_rows(model, *range(n)) for n in (1, 3, 2)]
        counted = Counted(model)
        batcher = MicroBatcher(max_size=64, max_wait_seconds=0.05)

        got = batched(batcher, counted.model, requests)

        assert_all_same(got, alone(model, requests))
        assert counted.rows == [6] and batcher.fallbacks == 0


def test_inputs_that_are_not_rows_are_predicted_alone(models) -> None:
    model = load_model(models["echo_named_tensors"])
    requests = [enforced(model, {"inputs": {"a": [[1.0, 2.0]] * n, "b": [3] * n}}) for n in (1, 2)]
    batcher = MicroBatcher(max_size=64, max_wait_seconds=5)

    started = time.perf_counter()
    got = batched(batcher, model, requests)

    assert time.perf_counter() - started < 5  # not held back waiting for company
    assert_all_same(got, alone(model, requests))
    assert batcher.batches_run == 0


def test_run_blocking_decides_where_predict_runs(models) -> None:
    model = load_model(models["sklearn_skops"])
    requests = iris_requests(model, tensor=False)[:5]
    counted = Counted(model)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-pool") as pool:

        def run_blocking(fn: Callable[[], Any]) -> Awaitable[Any]:
            return asyncio.get_running_loop().run_in_executor(pool, fn)

        got = batched(MicroBatcher(5, 0.05, run_blocking), counted.model, requests + requests[:1])

    assert_all_same(got, alone(model, requests + requests[:1]))
    assert counted.rows == [5, 1]
    assert all(name.startswith("batch-pool") for name in counted.threads)


def test_cancelled_waiters_do_not_break_the_others(batch_models) -> None:
    model = load_model(batch_models["slow_double"])
    requests = [x_rows(model, x) for x in range(7)]
    want = alone(model, requests)
    counted = Counted(model)
    batcher = MicroBatcher(max_size=4, max_wait_seconds=2.0)

    async def run() -> list[Any]:
        tasks = [asyncio.ensure_future(batcher.predict(counted.model, *request)) for request in requests]
        await until(lambda: counted.rows)  # the first four are predicting (0.3 s), the last three still waiting
        tasks[1].cancel()
        tasks[5].cancel()
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        answers.append(await batcher.predict(counted.model, *requests[0]))  # still serving
        return answers

    got = asyncio.run(run())

    assert isinstance(got[1], asyncio.CancelledError) and isinstance(got[5], asyncio.CancelledError)
    for i in (0, 2, 3, 4, 6):
        assert_same(got[i], want[i])
    assert_same(got[7], want[0])
    assert counted.rows == [4, 2, 1]  # the waiting cancelled row was left out of its batch
    assert not batcher._pending and not batcher._tasks


def test_a_batch_whose_waiters_all_left_is_not_predicted(batch_models) -> None:
    model = load_model(batch_models["slow_double"])
    counted = Counted(model)
    batcher = MicroBatcher(max_size=64, max_wait_seconds=1.0)

    async def run() -> None:
        tasks = [asyncio.ensure_future(batcher.predict(counted.model, *x_rows(model, x))) for x in (1.0, 2.0)]
        await until(lambda: sum(batch.rows for batch in batcher._pending.values()) == 2)  # both waiting
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(1.2)  # past max_wait: the time in which the batch must not be predicted

    asyncio.run(run())

    assert counted.rows == [] and batcher.batches_run == 0 and not batcher._pending


def test_a_batch_left_by_a_stopped_loop_does_not_hold_up_the_next(models) -> None:
    model = load_model(models["sklearn_skops"])
    model_input, params = iris_requests(model, tensor=False)[0]
    batcher = MicroBatcher(max_size=64, max_wait_seconds=0.05)

    async def leave_a_waiter() -> None:
        asyncio.ensure_future(batcher.predict(model, model_input, params))
        await asyncio.sleep(0)

    asyncio.run(leave_a_waiter())  # the loop stops, cancelling the waiter, before the timer fires
    got = asyncio.run(asyncio.wait_for(batcher.predict(model, model_input, params), 10))

    assert_same(got, model.predict(model_input, params))


def test_micro_batching_over_http_shares_predict_calls_and_answers_each_its_own_rows(batch_models) -> None:
    """A real server: concurrent one-row requests share predict calls (each answer says how many
    rows its call had; all 1 without batching), never above --batch-max-size, and every client
    gets its own row back."""
    xs = [float(i) for i in range(32)]
    server = SigserveServer(batch_models["rows_per_call"], "--batch-max-size", "8", "--batch-max-wait-ms", "200")
    with server:
        barrier = threading.Barrier(len(xs))

        def one(x: float) -> dict[str, list]:
            barrier.wait()
            response = server.post({"dataframe_split": {"columns": ["x"], "data": [[x]]}})
            assert response.status_code == 200, response.text
            return response.json()["predictions"]

        with ThreadPoolExecutor(len(xs)) as pool:
            answers = list(pool.map(one, xs))

    assert [answer["double"] for answer in answers] == [[2 * x] for x in xs]
    sizes = [rows for answer in answers for rows in answer["rows_in_call"]]
    assert max(sizes) > 1, f"every request was predicted alone: {sizes}"
    assert all(1 <= size <= 8 for size in sizes), sizes
    assert all(sizes.count(size) % size == 0 for size in sizes), f"a call of n rows answers n requests: {sizes}"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        MicroBatcher(0, 0.01)
    with pytest.raises(ValueError, match="max_wait_seconds"):
        MicroBatcher(8, -1)
