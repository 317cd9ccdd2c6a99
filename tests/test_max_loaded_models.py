"""`--max-loaded-models K` on real `sigserve serve` processes and real MLflow models: the first K
load at start, the others on their first request (once, however many ask at once), the least
recently used idle model is evicted, a model that fails to load answers 503 and is tried again,
and metadata, readiness and the V2 repository index answer without loading anything."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from helpers import SigserveServer, free_port, metric_samples, run_cli, save_pyfunc, total, wait_for

FLEET = ["m1", "m2", "m3", "m4", "slow", "broken"]  # served in this order, with --max-loaded-models 2
OFFSETS = {"m1": 1.0, "m2": 2.0, "m3": 3.0, "m4": 4.0, "slow": 10.0, "broken": 20.0}
SLOW_LOAD_SECONDS = 1.5


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real MLflow pyfunc models, each answering x + its offset; `broken`'s pickle is garbage
    (its MLmodel is fine, so it resolves at start and fails only when loaded)."""
    from models.lazy_models import AddOffset
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    root = tmp_path_factory.mktemp("fleet")
    signature = ModelSignature(inputs=Schema([ColSpec("double", "x")]))
    paths = {name: save_pyfunc(root / name, AddOffset(offset, SLOW_LOAD_SECONDS if name == "slow" else 0.0),
                               signature)
             for name, offset in OFFSETS.items()}
    pickle = paths["broken"] / "python_model.pkl"
    (root / "broken.pkl").write_bytes(pickle.read_bytes())
    pickle.write_bytes(b"not a pickle")
    return paths


@pytest.fixture(scope="module")
def server(fleet: dict[str, Path]) -> SigserveServer:
    others = [arg for name in FLEET[1:] for arg in ("-m", str(fleet[name]))]
    with SigserveServer(fleet["m1"], *others, "--max-loaded-models", "2") as running:
        yield running


def score(server: SigserveServer, name: str, x: float = 1.0) -> httpx.Response:
    return httpx.post(f"{server.url}/invocations/{name}", timeout=60,
                      json={"dataframe_split": {"columns": ["x"], "data": [[x]]}})


def answers(server: SigserveServer, name: str) -> None:
    response = score(server, name)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [1.0 + OFFSETS[name]]}, f"{name} answered for another model"


def loaded(server: SigserveServer) -> dict[str, bool]:
    return {entry["served_as"]: entry["loaded"] for entry in httpx.get(server.url + "/metadata").json()["models"]}


def test_only_the_first_k_models_load_at_start(server: SigserveServer) -> None:
    samples = metric_samples(server.url)
    for name in FLEET:
        expected = 1 if name in ("m1", "m2") else 0
        assert total(samples, "sigserve_model_loads_total", model=name, trigger="start") == expected, name
    assert "at most 2 models in memory per worker; m3, m4, slow, broken load on their first request" in server.log()


def test_a_request_loads_its_model_and_evicts_the_least_recently_used(server: SigserveServer) -> None:
    for name in ("m1", "m2", "m1"):  # in memory now: m1 and m2, m2 the least recently used
        answers(server, name)
    assert loaded(server) == {"m1": True, "m2": True, "m3": False, "m4": False, "slow": False, "broken": False}
    before = metric_samples(server.url)

    answers(server, "m3")  # loads m3; evicts m2, used less recently than m1 though loaded after it
    after = metric_samples(server.url)
    assert loaded(server) == {"m1": True, "m2": False, "m3": True, "m4": False, "slow": False, "broken": False}
    delta = [total(after, metric, **labels) - total(before, metric, **labels) for metric, labels in [
        ("sigserve_model_loads_total", {"model": "m3", "trigger": "request"}),
        ("sigserve_model_evictions_total", {"model": "m2"}),
        ("sigserve_model_evictions_total", {"model": "m1"}),
        ("sigserve_model_load_duration_seconds_count", {"model": "m3"}),
    ]]
    assert delta == [1, 1, 0, 1]
    assert total(after, "sigserve_loaded_models") == 2
    assert total(after, "sigserve_model_info", model="m3") == 1
    assert not [labels for (metric, labels) in after if metric == "sigserve_model_info" and ("model", "m2") in labels]

    answers(server, "m2")  # loaded again, answering as itself; m1 is now the least recently used
    again = metric_samples(server.url)
    assert total(again, "sigserve_model_loads_total", model="m2", trigger="request") == \
        total(after, "sigserve_model_loads_total", model="m2", trigger="request") + 1
    assert total(again, "sigserve_model_evictions_total", model="m1") == \
        total(after, "sigserve_model_evictions_total", model="m1") + 1
    assert loaded(server) == {"m1": False, "m2": True, "m3": True, "m4": False, "slow": False, "broken": False}
    assert total(again, "sigserve_loaded_models") == 2
    assert "evicted m1 (m1/local), the least recently used" in server.log()


def test_concurrent_first_requests_load_a_model_once(server: SigserveServer) -> None:
    answers(server, "m1")
    answers(server, "m2")
    assert not loaded(server)["slow"]
    before = total(metric_samples(server.url), "sigserve_model_loads_total", model="slow")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # all arrive within its 1.5 s load
        responses = list(pool.map(lambda _: score(server, "slow"), range(8)))

    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert {r.json()["predictions"][0] for r in responses} == {11.0}
    samples = metric_samples(server.url)
    assert total(samples, "sigserve_model_loads_total", model="slow") - before == 1
    assert total(samples, "sigserve_loaded_models") == 2


def test_a_model_that_fails_to_load_answers_503_and_is_tried_again(server: SigserveServer,
                                                                      fleet: dict[str, Path]) -> None:
    before = metric_samples(server.url)
    response = score(server, "broken")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "1"
    error = response.json()
    assert error["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "'broken' could not be loaded" in error["message"] and "tried again" in error["message"]
    assert str(fleet["broken"].parent) not in error["message"] and "Traceback" not in error["message"]

    v2 = httpx.post(server.url + "/v2/models/broken/infer", timeout=60,
                    json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    assert v2.status_code == 503 and set(v2.json()) == {"error"} and "could not be loaded" in v2.json()["error"]
    answers(server, "m4")  # the others keep serving

    after = metric_samples(server.url)
    for metric, labels, expected in [  # not remembered as failed: each request tried to load it
        ("sigserve_model_load_failures_total", {"model": "broken", "reason": "load"}, 2),
        ("sigserve_requests_total", {"model": "broken", "status": "503"}, 2),
        ("sigserve_rejected_requests_total", {"reason": "model_unavailable"}, 2),
        ("sigserve_model_loads_total", {"model": "broken"}, 0),
    ]:
        assert total(after, metric, **labels) - total(before, metric, **labels) == expected, metric
    index = {e["name"]: e for e in httpx.post(server.url + "/v2/repository/index").json()}
    assert index["broken"]["state"] == "UNAVAILABLE" and "last load failed" in index["broken"]["reason"]
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200

    (fleet["broken"] / "python_model.pkl").write_bytes((fleet["broken"].parent / "broken.pkl").read_bytes())
    answers(server, "broken")  # repaired: the next request loads it
    assert total(metric_samples(server.url), "sigserve_model_loads_total", model="broken", trigger="request") == 1


def test_metadata_readiness_and_index_answer_without_loading(server: SigserveServer) -> None:
    answers(server, "m1")
    answers(server, "m2")
    loads_before = total(metric_samples(server.url), "sigserve_model_loads_total")

    metadata = httpx.get(server.url + "/metadata").json()
    assert (metadata["served_as"], metadata["loaded"]) == ("m1", True)
    m3 = next(entry for entry in metadata["models"] if entry["served_as"] == "m3")
    assert (m3["loaded"], m3["load_seconds"], m3["version"]) == (False, None, "local")
    assert '"name": "x"' in m3["signature"]["inputs"]
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    ready = httpx.get(server.url + "/v2/models/m3/ready")
    assert (ready.status_code, ready.json()) == (200, {"name": "m3", "ready": True})
    v2_metadata = httpx.get(server.url + "/v2/models/m3")
    assert v2_metadata.status_code == 200 and [i["name"] for i in v2_metadata.json()["inputs"]] == ["x"]
    assert "/invocations/m3" in httpx.get(server.url + "/openapi.json").json()["paths"]
    index = {e["name"]: e for e in httpx.post(server.url + "/v2/repository/index").json()}
    assert (index["m1"]["state"], index["m1"]["reason"]) == ("READY", "")
    assert index["m3"]["state"] == "UNAVAILABLE" and index["m3"]["reason"].startswith("unloaded")

    assert total(metric_samples(server.url), "sigserve_model_loads_total") == loads_before, "nothing loaded"
    assert loaded(server)["m3"] is False


@pytest.fixture()
def thawed_after() -> Iterator[None]:
    """`freeze_startup_heap` freezes this pytest process's heap: thaw it for the tests after."""
    yield
    gc.unfreeze()


def test_an_evicted_model_is_freed(fleet: dict[str, Path], thawed_after: None) -> None:
    """In process, as the server runs it: the model loaded at start (then frozen out of the
    collector's reach, as before serving) is freed once a request for another evicts it."""
    from sigserve.manager.loading import load_models
    from sigserve.manager.lru import ResidentModels
    from sigserve.serve_config import from_flags
    from sigserve.server.run import freeze_startup_heap
    from sigserve.sources.settings import SourceSettings

    config = from_flags([str(fleet["m1"]), str(fleet["m2"])], [])
    models = load_models(config.models, config.traffic, SourceSettings.from_env(), None, 0, False,
                         max_loaded_models=1)
    first, second = models.get("m1").champion, models.get("m2").champion
    assert (first.loaded, second.loaded) == (True, False)
    evicted = weakref.ref(first.current.scorer.model.impl)
    freeze_startup_heap()
    residency = ResidentModels(models, 1)

    async def score_second() -> list[float]:
        servable = await residency.acquire(second)
        try:
            frame = pd.DataFrame({"x": [1.0]})
            return list(servable.scorer.model.predict(frame, None))
        finally:
            residency.release(second)

    try:
        assert asyncio.run(score_second()) == [3.0]
        assert (first.loaded, second.loaded) == (False, True)
        assert wait_for(lambda: evicted() is None, 10), "the evicted model is still in memory"
    finally:
        residency.stop()


def test_the_flag_is_range_checked_before_anything_loads(fleet: dict[str, Path]) -> None:
    from_env = subprocess.run([sys.executable, "-m", "sigserve", "serve", "-m", str(fleet["m1"])],
                              env={**os.environ, "SIGSERVE_MAX_LOADED_MODELS": "-3"}, capture_output=True, timeout=60)
    assert from_env.returncode == 2 and b"--max-loaded-models must not be negative, got -3" in from_env.stderr


def test_a_model_past_k_that_does_not_resolve_still_stops_the_start(fleet: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = run_cli("serve", "-m", str(fleet["m1"]), "-m", str(missing), "--max-loaded-models", "1",
                     "-p", str(free_port()))
    assert result.returncode == 2, result.stderr.decode()
    assert f"cannot serve {missing}".encode() in result.stderr


NAME = "lazy"


def test_an_alias_move_is_remembered_while_unloaded_and_reloaded_while_loaded(
        fleet: dict[str, Path], tmp_path: Path) -> None:
    """A real SQLite registry in MLflow 3's schema, written by sigserve's own registry (in process)."""
    from sigserve.admin.embedded import EmbeddedRegistry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with EmbeddedRegistry(uri) as registry:
        registry.register(NAME, fleet["m3"], alias="champion")
        registry.register(NAME, fleet["m4"])
    with SigserveServer(fleet["m1"], "-m", f"models:/{NAME}@champion", "--registry-uri", uri,
                        "--max-loaded-models", "1", "--reload-interval", "0.2") as server:
        assert loaded(server) == {"m1": True, NAME: False}

        with EmbeddedRegistry(uri) as registry:
            registry.set_alias(NAME, "champion", 2)
        assert wait_for(lambda: f"{NAME} is not in memory; its next request loads version 2" in server.log(), 30)
        entry = httpx.get(server.url + "/metadata").json()["models"][1]
        assert (entry["version"], entry["loaded"]) == ("2", False)
        assert total(metric_samples(server.url), "sigserve_model_loads_total", model=NAME) == 0, "moved, not loaded"

        response = score(server, NAME)
        assert (response.json(), response.headers["x-model-version"]) == ({"predictions": [5.0]}, f"{NAME}/2")
        assert loaded(server) == {"m1": False, NAME: True}

        with EmbeddedRegistry(uri) as registry:
            registry.set_alias(NAME, "champion", 1)
        assert wait_for(lambda: score(server, NAME).headers["x-model-version"] == f"{NAME}/1", 30)
        assert score(server, NAME).json() == {"predictions": [4.0]}
        samples = metric_samples(server.url)
        assert total(samples, "sigserve_model_loads_total", model=NAME, trigger="request") == 1
        assert total(samples, "sigserve_model_loads_total", model=NAME, trigger="reload") == 1
