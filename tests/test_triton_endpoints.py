"""Triton's extension endpoints, called by tritonclient.http the way Triton users call them:
model configuration, inference statistics (counted across gunicorn workers), the repository
index, and a readable V2 error for the extensions sigserve does not serve."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from helpers import IRIS, ConfigServer, SigserveServer, wait_for
from tritonclient.utils import InferenceServerException

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], dtype=np.float32)


@pytest.fixture(scope="module")
def triton_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tensor classifier (served plain and micro-batched) and a column regressor, saved by MLflow."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression, Ridge

    root = tmp_path_factory.mktemp("triton")
    iris = load_iris(as_frame=True)
    features = iris.data.to_numpy(np.float32)
    classifier = LogisticRegression(max_iter=500).fit(features, iris.target)
    mlflow.sklearn.save_model(classifier, root / "tensor", pip_requirements=["scikit-learn"],
                              signature=infer_signature(features, classifier.predict(features)))
    columns = iris.data[IRIS[:3]]
    regressor = Ridge().fit(columns, iris.data[IRIS[3]])
    mlflow.sklearn.save_model(regressor, root / "columns", pip_requirements=["scikit-learn"],
                              signature=infer_signature(columns, regressor.predict(columns)))
    config = root / "models.yaml"
    config.write_text(json.dumps({"models": [
        {"uri": str(root / "tensor"), "name": "tensor"},
        {"uri": str(root / "tensor"), "name": "batched", "batch_max_size": 64, "batch_max_wait_ms": 20},
        {"uri": str(root / "columns"), "name": "columns"},
    ]}))
    return {"config": config, "tensor": root / "tensor"}


@pytest.fixture(scope="module")
def server(triton_models: dict[str, Path]) -> Iterator[SigserveServer]:
    """Two workers: statistics must add up over both."""
    with ConfigServer(triton_models["config"], "-w", "2") as started:
        yield started


@pytest.fixture(scope="module")
def client(server: SigserveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def infer(client: triton.InferenceServerClient, model: str, rows: np.ndarray) -> np.ndarray:
    tensor = triton.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    output = triton.InferRequestedOutput("predict", binary_data=False)
    return client.infer(model, [tensor], outputs=[output]).as_numpy("predict")


def test_model_config_describes_the_signature_and_batching(client: triton.InferenceServerClient) -> None:
    tensor = client.get_model_config("tensor")
    assert tensor["name"] == "tensor" and tensor["backend"] == "python"
    assert tensor["max_batch_size"] == 0 and "dynamic_batching" not in tensor
    assert tensor["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    assert tensor["output"] == [{"name": "predict", "data_type": "TYPE_INT64", "dims": [-1]}]
    batched = client.get_model_config("batched", "local")
    assert batched["max_batch_size"] == 64  # Triton's convention: dims without the batch dimension
    assert batched["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}]
    assert batched["dynamic_batching"]["max_queue_delay_microseconds"] == 20_000
    columns = client.get_model_config("columns")
    assert [(t["name"], t["data_type"], t["dims"]) for t in columns["input"]] == [
        (name, "TYPE_FP64", [-1]) for name in IRIS[:3]]
    assert {"model_configuration", "statistics"} <= set(client.get_server_metadata()["extensions"])
    index = client.get_model_repository_index()
    assert [(m["name"], m["version"], m["state"]) for m in index] == [
        ("tensor", "local", "READY"), ("batched", "local", "READY"), ("columns", "local", "READY")]


def stats_of(client: triton.InferenceServerClient, model: str, version: str = "") -> dict[str, Any]:
    (entry,) = client.get_inference_statistics(model, version)["model_stats"]
    return entry


def test_statistics_count_every_worker_s_requests_and_time_each_phase(
        server: SigserveServer, client: triton.InferenceServerClient) -> None:
    before_ms = time.time() * 1000
    for i in range(12):
        assert infer(client, "tensor", ROWS[: 1 + i % 3]).shape == (1 + i % 3,)
    with httpx.Client() as fresh:  # new connections spread over both workers
        refused = fresh.post(server.url + "/v2/models/tensor/infer", json={"inputs": [
            {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert refused.status_code == 400
    for _ in range(6):
        assert httpx.post(server.url + "/invocations/tensor", json={"inputs": ROWS[:1].tolist()}).status_code == 200
    after_ms = time.time() * 1000
    assert wait_for(lambda: stats_of(client, "tensor")["inference_stats"]["success"]["count"] == 18, timeout=10)
    assert wait_for(lambda: stats_of(client, "tensor")["inference_stats"]["fail"]["count"] == 1, timeout=10)
    entry = stats_of(client, "tensor", "local")
    assert (entry["name"], entry["version"]) == ("tensor", "local")
    assert entry["inference_count"] == 4 * (1 + 2 + 3) + 6  # rows
    assert entry["execution_count"] == 18
    assert before_ms <= entry["last_inference"] <= after_ms + 1000
    phases = entry["inference_stats"]
    assert phases["fail"]["ns"] > 0
    for phase in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        assert phases[phase]["count"] == 18, phase
        assert phases[phase]["ns"] > 0, phase
    inside = sum(phases[p]["ns"] for p in ("compute_input", "compute_infer", "compute_output"))
    assert inside < phases["success"]["ns"]
    assert entry["batch_stats"] == []
    everything = client.get_inference_statistics()["model_stats"]
    assert [(e["name"], e["version"]) for e in everything] == [
        ("tensor", "local"), ("batched", "local"), ("columns", "local")]
    assert everything[2]["inference_stats"]["success"] == {"count": 0, "ns": 0}


def test_batch_statistics_count_merged_predicts(server: SigserveServer, client: triton.InferenceServerClient) -> None:
    def one(i: int) -> np.ndarray:  # a client per request: tritonclient's are not shared between threads
        return infer(triton.InferenceServerClient(server.url.removeprefix("http://")), "batched", ROWS[: 1 + i % 3])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(24)))
    assert all(answer.shape == (1 + i % 3,) for i, answer in enumerate(answers))
    assert wait_for(lambda: stats_of(client, "batched")["inference_stats"]["success"]["count"] == 24, timeout=10)
    entry = stats_of(client, "batched")
    batches = entry["batch_stats"]
    assert batches, entry
    assert sum(b["batch_size"] * b["compute_infer"]["count"] for b in batches) == entry["inference_count"] == 48
    assert sum(b["compute_infer"]["count"] for b in batches) == entry["execution_count"] <= 24
    assert all(b["compute_infer"]["ns"] > 0 for b in batches)


def test_unknown_models_and_versions_are_v2_404s(client: triton.InferenceServerClient) -> None:
    for call in (lambda: client.get_model_config("nope"), lambda: client.get_model_config("tensor", "7"),
                 lambda: client.get_inference_statistics("nope"),
                 lambda: client.get_inference_statistics("tensor", "7")):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.status() == "404"
        assert "is not served here" in refused.value.message()


@pytest.mark.parametrize("call, extension", [
    (lambda c: c.load_model("tensor"), "model control"),
    (lambda c: c.unload_model("tensor"), "model control"),
    (lambda c: c.get_trace_settings(), "trace settings"),
    (lambda c: c.update_trace_settings("tensor", {"trace_level": ["TIMESTAMPS"]}), "trace settings"),
    (lambda c: c.get_log_settings(), "log settings"),
    (lambda c: c.update_log_settings({"log_verbose_level": 1}), "log settings"),
    (lambda c: c.get_system_shared_memory_status(), "shared memory"),
    (lambda c: c.register_system_shared_memory("r", "/r", 16), "shared memory"),
    (lambda c: c.unregister_cuda_shared_memory(), "shared memory"),
])
def test_unsupported_extensions_answer_an_error_tritonclient_reads(
        client: triton.InferenceServerClient, call: Any, extension: str) -> None:
    with pytest.raises(InferenceServerException) as refused:
        call(client)
    assert refused.value.status() == "400"
    message = refused.value.message()
    assert extension in message and "not supported" in message, message
