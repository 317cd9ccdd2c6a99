"""The production runtime, on real processes: limits, drain, request IDs, logs, metrics, workers.

Alias hot-reload has its own module (`test_reload.py`).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers import (
    IRIS,
    ONE_ROW,
    SigserveServer,
    children_of,
    free_port,
    metric_samples,
    total,
    wait_answering,
    wait_for,
)
from openapi_spec_validator import validate


@pytest.fixture(scope="module")
def iris(models):
    with SigserveServer(models["sklearn_skops"], "--max-body-bytes", "4096") as server:
        yield server


# --------------------------------------------------------------------------- headers and endpoints


def test_every_answer_carries_the_request_id_and_the_model_version(iris: SigserveServer) -> None:
    echoed = httpx.post(iris.url + "/invocations", json=ONE_ROW, headers={"X-Request-ID": "trace-42"})
    assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "trace-42"
    assert echoed.headers["x-model-version"] == "sklearn_skops/local"
    generated = {httpx.get(iris.url + "/ping").headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3 and all(len(rid) == 32 for rid in generated)
    refused = httpx.post(iris.url + "/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[1]]}},
                         headers={"X-Request-ID": "bad input"})
    assert refused.status_code == 400
    assert refused.headers["x-request-id"] != "bad input", "an ID with a space is not echoed into logs"
    assert refused.headers["x-model-version"] == "sklearn_skops/local"


def test_v2_health_metadata_and_version(iris: SigserveServer) -> None:
    assert httpx.get(iris.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(iris.url + "/v2/health/ready").json() == {"ready": True}
    metadata = httpx.get(iris.url + "/metadata").json()
    assert metadata["name"] == "sklearn_skops" and metadata["version"] == "local"
    assert metadata["flavor"] == "mlflow.sklearn"
    assert [c["name"] for c in json.loads(metadata["signature"]["inputs"])] == IRIS
    assert httpx.get(iris.url + "/version").text


def test_openapi_document_is_valid_openapi_3_with_the_real_columns(iris: SigserveServer) -> None:
    document = httpx.get(iris.url + "/openapi.json").json()
    validate(document)
    text = json.dumps(document)
    assert all(json.dumps(column) in text for column in IRIS)
    assert "/invocations" in document["paths"]
    docs = httpx.get(iris.url + "/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


# --------------------------------------------------------------------------- limits


def test_a_body_over_the_limit_is_refused_with_413_declared_or_streamed(iris: SigserveServer) -> None:
    big = json.dumps({"dataframe_split": {"columns": IRIS, "data": [[5.1, 3.5, 1.4, 0.2]] * 400}})
    declared = httpx.post(iris.url + "/invocations", content=big, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413
    assert "4096" in declared.json()["message"]

    def chunks():
        for start in range(0, len(big), 1000):
            yield big[start:start + 1000].encode()

    streamed = httpx.post(iris.url + "/invocations", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert httpx.post(iris.url + "/invocations", json=ONE_ROW).status_code == 200


def test_saturated_worker_answers_503_with_retry_after(models, tmp_path) -> None:
    marker = tmp_path / "started"
    env = {"SIGSERVE_TEST_STARTED_MARKER": str(marker)}
    with SigserveServer(models["slow"], "--max-concurrency", "1", env=env) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(server.post, {"dataframe_split": {"columns": ["x"], "data": [[5.0]]}})
            assert wait_for(marker.exists, 20)
            busy = server.post({"dataframe_split": {"columns": ["x"], "data": [[0.0]]}})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert busy.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            assert slow.result().status_code == 200
        assert server.post({"dataframe_split": {"columns": ["x"], "data": [[0.0]]}}).status_code == 200
        samples = metric_samples(server.url)
        assert total(samples, "sigserve_rejected_requests_total", reason="overloaded") == 1
        assert total(samples, "sigserve_requests_total", status="503") == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_drains_in_flight_requests_before_exit(models, tmp_path, workers: str) -> None:
    marker = tmp_path / "started"
    server = SigserveServer(models["slow"], "-w", workers, env={"SIGSERVE_TEST_STARTED_MARKER": str(marker)})
    with server:
        body = {"dataframe_split": {"columns": ["x"], "data": [[1.5]]}}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(server.post, body) for _ in range(4)]
            assert wait_for(lambda: marker.exists() and marker.read_text().count("started") == 4, 20)
            os.kill(server.process.pid, signal.SIGTERM)
            statuses = [answer.result().status_code for answer in answers]
        assert statuses == [200] * 4
        assert server.process.wait(timeout=30) == 0
    assert "Finished server process" in server.log() or "Shutting down: Master" in server.log()


# --------------------------------------------------------------------------- logs and metrics


def test_access_log_lines_are_json_with_the_request_fields(models) -> None:
    with SigserveServer(models["sklearn_skops"], "--log-format", "json") as server:
        httpx.post(server.url + "/invocations", json=ONE_ROW, headers={"X-Request-ID": "json-log-1"})
        assert wait_for(lambda: "json-log-1" in server.log(), 10)
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("request_id") == "json-log-1"]
    assert len(access) == 1
    assert access[0]["status"] == 200 and access[0]["path"] == "/invocations" and access[0]["duration_ms"] > 0
    assert access[0]["model_version"] == "sklearn_skops/local"


def test_metrics_count_requests_formats_rows_and_refusals(iris: SigserveServer) -> None:
    before = metric_samples(iris.url)
    httpx.post(iris.url + "/invocations", json={"dataframe_split": {"columns": IRIS, "data": [[5.1, 3.5, 1.4, 0.2]] * 3}})
    httpx.post(iris.url + "/invocations", json={"dataframe_records": [dict(zip(IRIS, [1, 2, 3, 4]))]})
    httpx.post(iris.url + "/invocations", json={"dataframe_split": {"columns": IRIS[:2], "data": [[1, 2]]}})
    httpx.post(iris.url + "/invocations", json={"dataframe_split": {"columns": IRIS, "data": [["a", 1, 2, 3]]}})
    after = metric_samples(iris.url)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("sigserve_requests_total", status="200", format="dataframe_split") == 1
    assert delta("sigserve_requests_total", status="200", format="dataframe_records") == 1
    assert delta("sigserve_requests_total", status="400") == 2
    assert delta("sigserve_schema_errors_total", reason="missing_input") == 1
    assert delta("sigserve_schema_errors_total", reason="type") == 1
    assert delta("sigserve_request_rows_sum") == 4
    assert delta("sigserve_request_duration_seconds_count", format="dataframe_split") == 3
    assert total(after, "sigserve_in_flight_requests") == 0
    assert total(after, "sigserve_model_info", name="sklearn_skops", version="local") == 1


# --------------------------------------------------------------------------- workers


def test_workers_share_one_load_are_replaced_when_killed_and_metrics_add_up(models) -> None:
    with SigserveServer(models["sklearn_skops"], "-w", "2") as server:
        assert wait_for(lambda: len(children_of(server.process.pid)) == 2, 30)
        assert server.log().count("loaded ") == 1, "the model is loaded once, in the master, before the fork"
        for _ in range(20):
            assert httpx.post(server.url + "/invocations", json=ONE_ROW).status_code == 200

        workers = children_of(server.process.pid)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: (kids := children_of(server.process.pid)) and victim not in kids and len(kids) == 2, 30)
        for _ in range(10):
            assert httpx.post(server.url + "/invocations", json=ONE_ROW).status_code == 200
        assert server.log().count("loaded ") == 1, "a replacement worker forks from the loaded master"

        def requests_counted() -> float:  # a worker counts a request just after answering it
            return total(metric_samples(server.url), "sigserve_requests_total", status="200")

        assert wait_for(lambda: requests_counted() == 30, 10), f"{requests_counted()} counted: every worker's, dead ones too"
        assert total(metric_samples(server.url), "sigserve_model_info", name="sklearn_skops") >= 1


def test_unknown_route_and_health_do_not_count_as_scoring(iris: SigserveServer) -> None:
    before = total(metric_samples(iris.url), "sigserve_requests_total")
    httpx.get(iris.url + "/ping")
    httpx.get(iris.url + "/nope")
    assert total(metric_samples(iris.url), "sigserve_requests_total") == before



def test_a_container_configures_the_server_by_environment_alone(models) -> None:
    port = free_port()
    env = {**os.environ, "MODEL_URI": str(models["sklearn_skops"]), "SIGSERVE_PORT": str(port),
           "SIGSERVE_MAX_BODY_BYTES": "200", "SIGSERVE_ACCESS_LOG": "false", "SIGSERVE_LOG_FORMAT": "json"}
    process = subprocess.Popen([sys.executable, "-m", "sigserve", "serve"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_answering(url + "/ping", 60, process), "the server never answered"
        assert httpx.post(url + "/invocations", json=ONE_ROW).status_code == 200
        too_big = {"dataframe_split": {"columns": IRIS, "data": [[5.1, 3.5, 1.4, 0.2]] * 10}}
        assert httpx.post(url + "/invocations", json=too_big).status_code == 413
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and not [line for line in lines if line["logger"] == "sigserve.access"]


def test_a_batched_request_takes_one_scoring_slot(models, tmp_path) -> None:
    marker = tmp_path / "started"
    env = {"SIGSERVE_TEST_STARTED_MARKER": str(marker)}
    server = SigserveServer(models["slow"], "--max-concurrency", "2", "--batch-max-size", "1", env=env)
    with server, concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(server.post, {"dataframe_split": {"columns": ["x"], "data": [[5.0]]}})
        assert wait_for(marker.exists, 20)
        assert server.post({"dataframe_split": {"columns": ["x"], "data": [[0.0]]}}).status_code == 200
        assert not slow.done(), "the second request was scored while the batched one held its slot"
        assert slow.result().status_code == 200


def test_a_path_cannot_forge_an_access_log_line(iris: SigserveServer) -> None:
    httpx.get(iris.url + "/forged%0A127.0.0.1:1%20%22GET%20/invocations%20HTTP/1.1%22%20200")
    assert wait_for(lambda: "/forged%0A127.0.0.1" in iris.log(), 10)
    assert not [line for line in iris.log().splitlines() if line.startswith("127.0.0.1:1 ")]


@pytest.fixture(scope="module")
def thread_pools_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    import mlflow.pyfunc

    path = tmp_path_factory.mktemp("thread_pools") / "model"
    mlflow.pyfunc.save_model(path, loader_module="sigtest_thread_pools", pip_requirements=["scikit-learn"],
                             code_paths=[str(Path(__file__).parent / "models" / "custom_loader" / "sigtest_thread_pools.py")])
    return str(path)


@pytest.mark.parametrize(("extra", "env", "pools"), [
    ((), {"OMP_NUM_THREADS": ""}, {"openmp": 1, "blas": 1}),
    (("--native-threads", "2"), {}, {"openmp": 2, "blas": 2}),
    ((), {"OMP_NUM_THREADS": "2,1"}, {"openmp": 2, "blas": 2}),
    ((), {"OMP_NUM_THREADS": "", "OPENBLAS_NUM_THREADS": "2"}, {"openmp": 1, "blas": 2}),
    (("--native-threads", "2", "-w", "2"), {}, {"openmp": 1, "blas": 1}),
], ids=["one_by_default", "flag", "omp_num_threads_kept", "blas_setting_kept", "one_with_forked_workers"])
def test_native_thread_pools_are_sized_per_worker(thread_pools_model: str, extra: tuple, env: dict,
                                                  pools: dict) -> None:
    """The pools as the scoring thread sees them, past the inline warm-up: one thread unless asked.
    Forked workers always get one; the model has run OpenMP in the master before the fork."""
    with SigserveServer(thread_pools_model, *extra, env=env) as server:
        for _ in range(40):
            response = server.post({"inputs": [1]}, timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["predictions"] == pools
        if "-w" in extra:
            assert "--native-threads 2 ignored with 2 workers" in server.log()


@pytest.mark.parametrize(("env", "message"), [
    ({"SIGSERVE_NATIVE_THREADS": "0"}, "--native-threads must be at least 1"),
    ({"SIGSERVE_LOG_LEVEL": "verbose"}, "log level 'verbose'"),
    ({"SIGSERVE_MAX_CONCURRENCY": "0"}, "--max-concurrency must be at least 1"),
    ({"SIGSERVE_TIMEOUT": "0"}, "--timeout must be positive"),
])
def test_bad_settings_from_the_environment_are_usage_errors(models, env: dict, message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "sigserve", "serve", "-m", str(models["sklearn_skops"])],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
