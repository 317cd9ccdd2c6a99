"""OpenTelemetry tracing: real `sigserve serve` processes export OTLP over HTTP to a receiver run
here, which decodes the SDK's `ExportTraceServiceRequest` protobufs. A request's `traceparent`
makes its server span a child of the caller's; its phases are child spans. Without `OTEL_*`,
no span is sent and the worker never imports OpenTelemetry."""

from __future__ import annotations

import gzip
import http.server
import importlib.util
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import TESTS_DIR, ConfigServer, SigserveServer, free_port, wait_for
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SECRET_MARKER = "do-not-export-me"


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on 127.0.0.1: every span received, with its service name."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append({
                            "service": resource.get("service.name"), "name": span.name,
                            "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(), "kind": span.kind,
                            "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                            "attributes": _attributes(span.attributes), "status": span.status.code,
                            "raw": bytes(span.SerializeToString()),
                        })

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [span for span in self.spans if span["trace_id"] == trace_id]


class _ReceiverHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            self.server.add(ExportTraceServiceRequest.FromString(body))  # type: ignore[attr-defined]
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def _attributes(pairs: Any) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tracing_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An sklearn tensor model (served with micro-batching too), and a custom loader model
    reporting the OpenTelemetry modules in its worker; both saved by MLflow."""
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("tracing")
    features, target = load_iris(return_X_y=True)
    features = features.astype(np.float32)
    classifier = LogisticRegression(max_iter=500).fit(features, target)
    mlflow.sklearn.save_model(classifier, root / "iris", pip_requirements=["scikit-learn"],
                              signature=infer_signature(features, classifier.predict(features)))
    mlflow.pyfunc.save_model(
        root / "modules", loader_module="sigtest_modules",
        code_paths=[str(TESTS_DIR / "models" / "custom_loader" / "sigtest_modules.py")], pip_requirements=["numpy"],
        signature=ModelSignature(inputs=Schema([ColSpec("double", "x")])),
    )
    config = root / "models.yaml"
    config.write_text(json.dumps({"models": [
        {"uri": str(root / "iris"), "name": "iris"},
        {"uri": str(root / "iris"), "name": "batched", "batch_max_size": 64, "batch_max_wait_ms": 5},
        {"uri": str(root / "modules"), "name": "modules"},
    ]}))
    return {"iris": root / "iris", "modules": root / "modules", "config": config}


def otel_env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50", **extra}


def without_otel() -> dict[str, str]:
    return {name: "" for name in os.environ if name.startswith("OTEL_")}


@pytest.fixture(scope="module")
def traced(receiver: Receiver, tracing_models: dict[str, Path]) -> Iterator[SigserveServer]:
    """Two gunicorn workers: tracing is set up in each after the fork."""
    with ConfigServer(tracing_models["config"], "-w", "2", "--grpc-port", str(free_port()),
                      env=otel_env(receiver)) as server:
        yield server


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent_id}-{'01' if sampled else '00'}", trace_id, parent_id


ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def test_a_request_span_continues_the_callers_trace_with_a_child_per_phase(
        traced: SigserveServer, receiver: Receiver) -> None:
    header, trace_id, parent_id = traceparent()
    answer = httpx.post(traced.url + "/invocations/iris", json={"inputs": ROWS},
                        headers={"traceparent": header}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert wait_for(lambda: len(receiver.trace(trace_id)) >= 6, timeout=20), receiver.trace(trace_id)
    spans = receiver.trace(trace_id)
    (request,) = [span for span in spans if span["parent_id"] == parent_id]
    assert request["name"] == "POST /invocations/{name}"
    assert request["kind"] == 2  # SPAN_KIND_SERVER
    assert request["service"] == "sigserve"
    attributes = request["attributes"]
    assert attributes["sigserve.model"] == "iris"
    assert attributes["sigserve.model.version"] == "local"
    assert attributes["sigserve.rows"] == 2
    assert attributes["sigserve.format"] == "inputs"  # the payload format, as in metrics
    assert attributes["sigserve.protocol"] == "rest"
    assert attributes["http.response.status_code"] == 200
    children = {span["name"]: span for span in spans if span["parent_id"] == request["span_id"]}
    assert {"queue", "decode", "enforce", "predict", "encode"} <= set(children), sorted(children)
    for name in ("decode", "enforce", "predict", "encode"):
        child = children[name]
        assert request["start"] <= child["start"] <= child["end"] <= request["end"], name
    assert children["decode"]["end"] <= children["enforce"]["start"] <= children["predict"]["start"]
    assert children["predict"]["end"] <= children["encode"]["start"]


def test_batched_v2_requests_have_a_batch_span_and_the_rows_of_their_predict(
        traced: SigserveServer, receiver: Receiver) -> None:
    header, trace_id, parent_id = traceparent()
    body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": sum(ROWS, [])}]}
    answer = httpx.post(traced.url + "/v2/models/batched/infer", json=body, headers={"traceparent": header},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    assert wait_for(lambda: len(receiver.trace(trace_id)) >= 7, timeout=20), receiver.trace(trace_id)
    spans = receiver.trace(trace_id)
    (request,) = [span for span in spans if span["parent_id"] == parent_id]
    assert request["name"] == "POST /v2/models/{name}/infer"
    assert request["attributes"]["sigserve.model"] == "batched"
    children = {span["name"]: span for span in spans if span["parent_id"] == request["span_id"]}
    assert {"queue", "decode", "enforce", "batch", "predict", "encode"} <= set(children), sorted(children)
    assert children["batch"]["end"] <= children["predict"]["start"]
    assert children["predict"]["attributes"]["sigserve.batch.rows"] >= 2


def test_a_refused_request_is_an_error_span_without_the_body(traced: SigserveServer, receiver: Receiver) -> None:
    header, trace_id, parent_id = traceparent()
    answer = httpx.post(traced.url + "/invocations/iris", json={"inputs": [[SECRET_MARKER, 1.0]]},
                        headers={"traceparent": header, "Authorization": f"Bearer {SECRET_MARKER}"}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert wait_for(lambda: receiver.trace(trace_id), timeout=20)
    (request,) = [span for span in receiver.trace(trace_id) if span["parent_id"] == parent_id]
    assert request["status"] == 2  # STATUS_CODE_ERROR
    assert request["attributes"]["http.response.status_code"] == 400
    assert request["attributes"]["error.type"] == "BAD_REQUEST"
    assert all(SECRET_MARKER.encode() not in span["raw"] for span in receiver.trace(trace_id))


def test_the_sdk_sampler_follows_an_unsampled_parent(traced: SigserveServer, receiver: Receiver) -> None:
    unsampled, unsampled_trace, _ = traceparent(sampled=False)
    sampled, sampled_trace, _ = traceparent()
    for header in (unsampled, sampled):
        answer = httpx.post(traced.url + "/invocations/iris", json={"inputs": ROWS}, headers={"traceparent": header},
                            timeout=30)
        assert answer.status_code == 200
    assert wait_for(lambda: len(receiver.trace(sampled_trace)) >= 6, timeout=20)
    assert receiver.trace(unsampled_trace) == []


def test_tracing_is_on_exactly_when_otel_variables_ask_for_it(
        receiver: Receiver, tracing_models: dict[str, Path]) -> None:
    """Off: no span, and not one OpenTelemetry module in the worker; on: spans, and the SDK loaded."""
    service = f"svc-{secrets.token_hex(4)}"
    plain = SigserveServer(tracing_models["modules"], env=without_otel()).launch()
    on = SigserveServer(tracing_models["modules"], env=otel_env(receiver, OTEL_SERVICE_NAME=service)).launch()
    try:
        plain.wait_ready()
        on.wait_ready()
        headers = {"traceparent": traceparent()[0]}
        off_answer = httpx.post(plain.url + "/invocations", json={"inputs": {"x": [1.0]}}, headers=headers, timeout=30)
        on_answer = httpx.post(on.url + "/invocations", json={"inputs": {"x": [1.0]}}, headers=headers, timeout=30)
    finally:
        plain.stop()
        on.stop()
    assert off_answer.json() == {"predictions": [0]}, off_answer.text
    assert on_answer.json()["predictions"][0] > 0
    trace_id = headers["traceparent"].split("-")[1]
    services = {span["service"] for span in receiver.trace(trace_id)}  # `on` flushed on exit
    assert services == {service}


def test_tracing_asked_for_without_its_exporter_is_one_warning_and_the_server_serves(
        receiver: Receiver, tracing_models: dict[str, Path]) -> None:
    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None:
        pytest.skip("the OTLP gRPC exporter is installed here: no missing package to warn about")
    env = otel_env(receiver, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    with SigserveServer(tracing_models["iris"], env=env) as server:
        assert httpx.post(server.url + "/invocations", json={"inputs": ROWS}, timeout=30).status_code == 200
        lines = [line for line in server.log().splitlines() if "OpenTelemetry" in line]
    assert len(lines) == 1, lines
    assert "WARNING" in lines[0] and "sigserve[otel]" in lines[0] and "OTEL_EXPORTER_OTLP_ENDPOINT" in lines[0]
    assert "Traceback" not in server.log()


def test_a_grpc_call_continues_the_callers_trace_from_its_metadata(traced: SigserveServer, receiver: Receiver) -> None:
    import tritonclient.grpc as triton

    header, trace_id, parent_id = traceparent()
    port = traced.extra[traced.extra.index("--grpc-port") + 1]
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    features = triton.InferInput("input", [2, 4], "FP32")
    features.set_data_from_numpy(np.array(ROWS, dtype=np.float32))
    client.infer("iris", [features], headers={"traceparent": header})
    client.close()
    assert wait_for(lambda: len(receiver.trace(trace_id)) >= 6, timeout=20), receiver.trace(trace_id)
    spans = receiver.trace(trace_id)
    (request,) = [span for span in spans if span["parent_id"] == parent_id]
    assert request["name"] == "inference.GRPCInferenceService/ModelInfer"
    assert request["attributes"]["sigserve.protocol"] == "grpc"
    assert request["attributes"]["sigserve.model"] == "iris" and request["attributes"]["sigserve.rows"] == 2
    children = {span["name"] for span in spans if span["parent_id"] == request["span_id"]}
    assert {"queue", "decode", "enforce", "predict", "encode"} <= children, sorted(children)
