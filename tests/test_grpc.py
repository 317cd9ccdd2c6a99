"""The Open Inference Protocol over gRPC (`--grpc-port`): real `sigserve serve` processes, real
clients (tritonclient.grpc, the kserve SDK's gRPC client, grpcio's health checking client), and
REST V2 on the same server as the reference for answers, verdicts and messages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import (
    REQUIREMENTS,
    TESTS_DIR,
    SigserveServer,
    children_of,
    free_port,
    metric_samples,
    run_cli,
    save_pyfunc,
    total,
    wait_for,
)
from kserve_sdk import run_kserve_script
from tritonclient.utils import InferenceServerException

from sigserve.demo import DEMO_MODEL_DIR

TOKEN = "grpc-test-token"
MAX_ROWS = 1000
MAX_DECODED_BYTES = 300_000
# Every V2 datatype, three values each, at the edges of their ranges.
ALL_TYPES: dict[str, tuple[str, np.ndarray]] = {
    "b": ("BOOL", np.array([True, False, True])),
    "u8": ("UINT8", np.array([0, 7, 255], np.uint8)),
    "u16": ("UINT16", np.array([0, 7, 65535], np.uint16)),
    "u32": ("UINT32", np.array([0, 7, 2**32 - 1], np.uint32)),
    "u64": ("UINT64", np.array([0, 7, 2**64 - 1], np.uint64)),
    "i8": ("INT8", np.array([-128, 0, 127], np.int8)),
    "i16": ("INT16", np.array([-32768, 0, 32767], np.int16)),
    "i32": ("INT32", np.array([-2**31, 0, 2**31 - 1], np.int32)),
    "i64": ("INT64", np.array([-2**63, 0, 2**63 - 1], np.int64)),
    "f16": ("FP16", np.array([0.5, -1.25, 65504.0], np.float16)),
    "f32": ("FP32", np.array([1.5, -2.25, 3.4028235e38], np.float32)),
    "f64": ("FP64", np.array([0.1, -1e300, 2.5], np.float64)),
    "s": ("BYTES", np.array(["héllo", "", "x y"], dtype=object)),
}
CITIES = ["paris", "lyon", "nice"]
MORE_MODELS = ("identity_typed", "doubled", "echo_params", "pipeline", "forest", "wide")  # served beside `identity`
WIDE = [f"température_{i:04d}" for i in range(1000)]  # a model's many features, all named when missing


# --------------------------------------------------------------------------- models and servers

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Every model these tests serve, saved once by the real MLflow."""
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
    from models.binary_models import Doubled, Identity
    from models.grpc_models import NegativeRefused, Pid
    from models.pyfunc_models import Echo
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("grpc-models")
    paths = {}
    dtypes = {"BOOL": "bool", "BYTES": "object"}
    identity = Schema([TensorSpec(np.dtype(dtypes.get(datatype, values.dtype)), (-1,), name)
                       for name, (datatype, values) in ALL_TYPES.items()])
    paths["identity"] = save_pyfunc(root / "identity", Identity(), ModelSignature(inputs=identity))
    typed = Schema([spec for spec in identity.inputs if spec.name != "f16"])  # FP16 has no typed contents field
    paths["identity_typed"] = save_pyfunc(root / "identity_typed", Identity(), ModelSignature(inputs=typed))
    paths["doubled"] = save_pyfunc(root / "doubled", Doubled(),
                                   ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 2))])))
    params = ParamSchema([ParamSpec("k", "long", 5), ParamSpec("temperature", "double", 0.5),
                          ParamSpec("flag", "boolean", False), ParamSpec("name", "string", "x")])
    paths["echo_params"] = save_pyfunc(root / "echo_params", Echo(),
                                       ModelSignature(inputs=Schema([ColSpec("double", "x")]), params=params))
    paths["pid"] = save_pyfunc(root / "pid", Pid(), ModelSignature(inputs=Schema([ColSpec("double", "x")])))
    paths["wide"] = save_pyfunc(root / "wide", Pid(), ModelSignature(inputs=Schema([ColSpec("double", name)
                                                                                    for name in WIDE])))
    paths["modèle"] = Path(shutil.copytree(paths["pid"], root / "modèle"))  # a name gRPC metadata cannot carry as is
    paths["unready"] = root / "unready"  # fails on its own example: served with --allow-failing-example, never ready
    mlflow.pyfunc.save_model(paths["unready"], python_model=NegativeRefused(),
                             input_example=pd.DataFrame({"x": [-1.0]}),
                             signature=ModelSignature(inputs=Schema([ColSpec("double", "x")])),
                             code_paths=[str(TESTS_DIR / "models")], pip_requirements=REQUIREMENTS)

    frame = pd.DataFrame({"city": CITIES * 10, "x": np.arange(30, dtype=float)})
    labels = (frame["city"] == "lyon") | (frame["x"] > 20)
    pipeline = Pipeline([
        ("encode", ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough")),
        ("classify", LogisticRegression(max_iter=500)),
    ]).fit(frame, labels)
    paths["pipeline"] = root / "pipeline"
    mlflow.sklearn.save_model(pipeline, paths["pipeline"], signature=infer_signature(frame, pipeline.predict(frame)),
                              serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    iris = load_iris(as_frame=True)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(iris.data, iris.target)
    paths["forest"] = root / "forest"
    mlflow.sklearn.save_model(forest, paths["forest"], signature=infer_signature(iris.data, forest.predict(iris.data)),
                              serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    return paths


class GrpcServer(SigserveServer):
    def __init__(self, model: Path, *extra: str, **kwargs: Any) -> None:
        self.grpc_port = free_port()
        super().__init__(model, *extra, "--grpc-port", str(self.grpc_port), **kwargs)
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"

    def client(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(self.grpc_url)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.grpc_url)


@pytest.fixture(scope="module")
def servers(built) -> dict[str, GrpcServer]:
    """Started together: every model on one server; auth on; two workers."""
    started = {
        "main": GrpcServer(built["identity"], *(arg for name in MORE_MODELS for arg in ("-m", str(built[name]))),
                           "--max-rows", str(MAX_ROWS), "--max-decoded-bytes", str(MAX_DECODED_BYTES)),
        "auth": GrpcServer(built["pid"], "--max-body-bytes", "4096", env={"SIGSERVE_AUTH_TOKENS": TOKEN}),
        "workers": GrpcServer(built["pid"], "-m", str(built["modèle"]), "--workers", "2"),
    }
    for server in started.values():
        server.launch()
    try:
        for server in started.values():
            server.wait_ready(timeout=120)
            assert wait_for(lambda s=server: _live(s), timeout=30), server.log()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def server(servers) -> GrpcServer:
    return servers["main"]


@pytest.fixture(scope="module")
def unready(built) -> GrpcServer:
    """A model never ready, and a body limit past what grpcio's options (C ints) hold."""
    with GrpcServer(built["unready"], "--allow-failing-example", "--max-body-bytes", str(3 * 2**30)) as started:
        assert wait_for(lambda: _live(started), timeout=30), started.log()
        yield started


def _live(server: GrpcServer) -> bool:
    try:
        return server.client().is_server_live()
    except InferenceServerException:
        return False


# --------------------------------------------------------------------------- helpers

def triton_inputs(values: dict[str, tuple[str, Any]]) -> list[triton.InferInput]:
    inputs = []
    for name, (datatype, data) in values.items():
        array = np.asarray(data, dtype=object if datatype == "BYTES" else None)
        item = triton.InferInput(name, list(array.shape), datatype)
        item.set_data_from_numpy(array)
        inputs.append(item)
    return inputs


def rest_infer(server: GrpcServer, model: str, values: dict[str, tuple[str, Any]], **extra: Any) -> httpx.Response:
    inputs = [{"name": name, "shape": list(np.shape(data)), "datatype": datatype,
               "data": np.asarray(data).ravel().tolist()} for name, (datatype, data) in values.items()]
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json={"inputs": inputs, **extra}, timeout=30)


def grpc_refusal(server: GrpcServer, model: str, values: dict[str, tuple[str, Any]], **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as refused:
        server.client().infer(model, triton_inputs(values), **kwargs)
    return refused.value.status(), refused.value.message()


def rest_refusal(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]


def infer_stub(channel: grpc.Channel) -> Any:
    from sigserve.codecs.grpc import messages

    return channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=messages.ModelInferResponse.FromString)


def typed_request(model: str, values: dict[str, tuple[str, Any]]) -> Any:
    """A ModelInferRequest with typed `contents`, as the kserve SDK sends lists."""
    from sigserve.codecs.grpc import messages
    from sigserve.codecs.grpc.codec import CONTENTS_FIELDS

    request = messages.ModelInferRequest(model_name=model)
    for name, (datatype, data) in values.items():
        array = np.asarray(data)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        field = getattr(tensor.contents, CONTENTS_FIELDS.get(datatype, ("fp32_contents",))[0])  # FP16: has none
        field.extend([v.encode() for v in array.ravel()] if datatype == "BYTES" else array.ravel().tolist())
    return request


# --------------------------------------------------------------------------- the protocol's files

def test_the_committed_descriptor_is_the_proto_file(tmp_path) -> None:
    """grpc_predict_v2_descriptor.py is what grpcio-tools' protoc makes of the .proto, so editing
    one without regenerating the other fails here."""
    grpc_tools = pytest.importorskip("grpc_tools.protoc")
    from google.protobuf import descriptor_pb2

    import sigserve.codecs.grpc as package
    from sigserve.codecs.grpc.grpc_predict_v2_descriptor import SERIALIZED

    folder = Path(package.__file__).parent
    out = tmp_path / "set.desc"
    assert grpc_tools.main(["protoc", f"-I{folder}", f"--descriptor_set_out={out}", "grpc_predict_v2.proto"]) == 0
    [generated] = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    generated.name = "sigserve/grpc_predict_v2.proto"
    assert descriptor_pb2.FileDescriptorProto.FromString(SERIALIZED) == generated


def test_the_grpc_port_defaults_to_8081_and_is_range_checked(monkeypatch) -> None:
    from sigserve.cli import build_parser

    monkeypatch.delenv("SIGSERVE_GRPC_PORT", raising=False)
    assert build_parser().parse_args(["serve", "-m", "x"]).grpc_port == 8081
    monkeypatch.setenv("SIGSERVE_GRPC_PORT", "9001")
    assert build_parser().parse_args(["serve", "-m", "x"]).grpc_port == 9001
    result = run_cli("serve", "-m", str(DEMO_MODEL_DIR), "--grpc-port", "70000")
    assert result.returncode == 2 and b"--grpc-port must be a port number from 0 to 65535, got 70000" in result.stderr


@pytest.mark.parametrize("reuseport", [False, True], ids=["plain", "so_reuseport"])
def test_a_taken_grpc_port_stops_the_start_in_one_line(reuseport: bool) -> None:
    """Also when the holder uses SO_REUSEPORT (another sigserve), which would otherwise share it silently."""
    with socket.socket() as holder:
        if reuseport:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "-m", str(DEMO_MODEL_DIR), "-p", str(free_port()), "--grpc-port", str(port))
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and lines[0].startswith(f"sigserve: cannot listen for gRPC on 127.0.0.1:{port}: "), lines


# --------------------------------------------------------------------------- health and metadata

def test_liveness_readiness_and_metadata_match_rest(server: GrpcServer) -> None:
    client = server.client()
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("pipeline") and client.is_model_ready("identity", "local")
    metadata = client.get_server_metadata()
    assert (metadata.name, metadata.version) == ("sigserve", httpx.get(server.url + "/version").text)
    for name in ("identity", "pipeline", "forest"):
        rest = httpx.get(f"{server.url}/v2/models/{name}").json()
        model = {"inputs": [], "outputs": [], **client.get_model_metadata(name, as_json=True)}  # empty: left out
        for tensor in (*model["inputs"], *model["outputs"]):
            tensor["shape"] = [int(d) for d in tensor["shape"]]  # int64s are strings in protobuf's JSON
        assert model == rest


def test_the_standard_health_service_answers_serving(server: GrpcServer) -> None:
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def _watched(server: GrpcServer, service: str) -> int:
    """The first status `Watch` streams for `service`."""
    with server.channel() as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=service), timeout=30)
        try:
            return next(stream).status  # type: ignore[no-any-return]
        finally:
            stream.cancel()


def test_watch_streams_the_status_check_answers(server: GrpcServer, unready: GrpcServer) -> None:
    """Readiness is not a status fixed at start: a model that failed its own example is never ready."""
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    for each, ready in ((server, serving), (unready, not_serving)):
        with each.channel() as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            assert check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == serving
            assert check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"),
                         timeout=10).status == ready
        assert _watched(each, "") == serving
        assert _watched(each, "inference.GRPCInferenceService") == ready
    assert httpx.get(unready.url + "/v2/health/ready").status_code == 503


def test_a_body_limit_past_grpcios_maximum_serves_grpc(unready: GrpcServer) -> None:
    """--max-body-bytes 3 GiB: gRPC takes messages up to grpcio's 2 GiB - 1 instead of stopping every worker."""
    answer = unready.client().infer("unready", triton_inputs({"x": ("FP64", [2.0])}))
    assert answer.as_numpy("x").tolist() == [2.0]
    assert "OverflowError" not in unready.log()


def test_unknown_models_and_versions_are_not_found_with_rests_message(server: GrpcServer) -> None:
    values = {"x": ("FP64", [1.0])}
    for name, version in (("nope", ""), ("pipeline", "99")):
        status, message = grpc_refusal(server, name, values, model_version=version)
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
        rest = httpx.post(f"{server.url}{path}/infer", json={"inputs": [
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
        assert (status, message) == ("StatusCode.NOT_FOUND", rest_refusal(rest)[1])
        assert rest.status_code == 404
    with pytest.raises(InferenceServerException) as metadata:
        server.client().get_model_metadata("nope")
    assert metadata.value.status() == "StatusCode.NOT_FOUND"
    assert metadata.value.message() == httpx.get(server.url + "/v2/models/nope").json()["error"]


def test_model_infer_needs_a_model_name(server: GrpcServer) -> None:
    """Not the default model's answer: REST always names the model, and ModelReady("") is NOT_FOUND."""
    status, message = grpc_refusal(server, "", ALL_TYPES)  # the default model's inputs
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert message == ("ModelInfer needs a model_name; this server serves "
                       "['identity', 'identity_typed', 'doubled', 'echo_params', 'pipeline', 'forest', 'wide']")


def test_a_model_name_outside_ascii_is_answered_with_percent_encoded_metadata(servers) -> None:
    """gRPC metadata is printable ASCII: `x-model-version` carries REST's header text percent-encoded."""
    server = servers["workers"]
    before = metric_samples(server.url)
    with server.channel() as channel:
        answer, call = infer_stub(channel).with_call(typed_request("modèle", {"x": ("FP64", [1.0])}), timeout=30,
                                                     metadata=(("x-request-id", "accent-1"),))
    rest = httpx.post(f"{server.url}/v2/models/modèle/infer", json={"inputs": [
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    assert rest.status_code == 200 and rest.headers["x-model-version"] == "modèle/local"
    assert answer.model_name == "modèle" and answer.outputs[0].contents.int64_contents[0] in children_of(
        server.process.pid)
    metadata = dict(call.initial_metadata())
    assert metadata == {"x-request-id": "accent-1", "x-model-version": "mod%C3%A8le/local"}
    assert unquote(metadata["x-model-version"]) == rest.headers["x-model-version"]
    grown = total(metric_samples(server.url), "sigserve_requests_total", protocol="grpc", model="modèle") - total(
        before, "sigserve_requests_total", protocol="grpc", model="modèle")
    assert grown == 1 and "Traceback" not in server.log()


# --------------------------------------------------------------------------- scoring

def test_every_datatype_round_trips_raw_as_over_rest(server: GrpcServer) -> None:
    """tritonclient sends raw_input_contents and reads raw_output_contents."""
    result = server.client().infer("identity", triton_inputs(ALL_TYPES))
    rest = {o["name"]: o for o in rest_infer(server, "identity", ALL_TYPES).json()["outputs"]}
    answer = result.get_response()
    assert len(answer.raw_output_contents) == len(ALL_TYPES) and answer.model_name == "identity"
    for name, (datatype, values) in ALL_TYPES.items():
        output = result.get_output(name)
        got = result.as_numpy(name)
        assert (output.datatype, list(output.shape)) == (datatype, [3]) == (rest[name]["datatype"], rest[name]["shape"])
        if datatype == "BYTES":
            assert [v.decode() for v in got] == list(values) == rest[name]["data"]
        else:
            assert got.dtype == values.dtype and got.tolist() == values.tolist() == rest[name]["data"], name


def test_every_datatype_but_fp16_round_trips_in_typed_contents(server: GrpcServer) -> None:
    typed = {name: spec for name, spec in ALL_TYPES.items() if spec[0] != "FP16"}
    fp16 = {"f16": ("FP16", [0.5])}
    with server.channel() as channel:
        answer, call = infer_stub(channel).with_call(typed_request("identity_typed", typed), timeout=30,
                                                     metadata=(("x-request-id", "typed-1"),))
        with pytest.raises(grpc.RpcError) as refused:
            infer_stub(channel)(typed_request("identity", {**typed, **fp16}), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "V2 input 'f16': FP16 has no typed contents field; send it in raw_input_contents"
    assert not answer.raw_output_contents
    assert dict(call.initial_metadata()) == {"x-request-id": "typed-1", "x-model-version": "identity_typed/local"}
    outputs = {output.name: output for output in answer.outputs}
    from sigserve.codecs.grpc.codec import CONTENTS_FIELDS

    for name, (datatype, values) in typed.items():
        contents = list(getattr(outputs[name].contents, CONTENTS_FIELDS[datatype][0]))
        assert outputs[name].datatype == datatype
        assert contents == ([v.encode() for v in values] if datatype == "BYTES" else values.tolist()), name


KSERVE_CLIENT = r"""
import asyncio, json, sys
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

async def infer(client, model, spec):
    inputs = []
    for name, (datatype, shape, data, raw) in spec.items():
        item = InferInput(name=name, shape=shape, datatype=datatype, data=None if raw else data)
        if raw:  # binary: raw_input_contents
            item.set_data_from_numpy(np.asarray(data, dtype=object if datatype == "BYTES" else None).reshape(shape))
        inputs.append(item)
    try:
        response = await client.infer(InferRequest(model_name=model, infer_inputs=inputs))
    except Exception as exc:
        code = getattr(exc, "code", None)
        return {"error": str(code() if callable(code) else exc),
                "details": exc.details() if hasattr(exc, "details") else str(exc)}
    out = {}
    for output in response.outputs:
        values = output.as_numpy().ravel().tolist()
        out[output.name] = {"datatype": output.datatype, "shape": list(output.shape),
                            "data": [v.decode() if isinstance(v, bytes) else v for v in values]}
    return out

async def main(url, model, specs):
    client = InferenceGRPCClient(url=url, timeout=30)
    try:
        print(json.dumps([await infer(client, model, spec) for spec in specs]))
    finally:
        await client.close()

asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
"""


def kserve_infer(server: GrpcServer, model: str, *specs: dict[str, tuple[str, list[int], list[Any], bool]]) -> list:
    """The kserve SDK's gRPC client, in its own environment (tests/kserve_sdk.py): its generated
    `inference.*` messages and tritonclient's cannot be loaded into one process either. One
    process, one client, a request per spec (importing kserve takes seconds)."""
    return run_kserve_script(KSERVE_CLIENT, server.grpc_url, model, json.dumps(specs))


def test_the_kserve_sdk_client_scores_typed_and_raw_tensors(server: GrpcServer) -> None:
    row = {"city": ("BYTES", [2], ["lyon", "paris"]), "x": ("FP64", [2], [1.0, 25.0])}
    rest = rest_infer(server, "pipeline", {k: (d, v) for k, (d, _, v) in row.items()}).json()["outputs"]
    *answers, refused = kserve_infer(server, "pipeline",
                                     *({k: (d, s, v, raw) for k, (d, s, v) in row.items()} for raw in (False, True)),
                                     {"city": ("BYTES", [1], ["lyon"], False)})
    for raw, answer in zip((False, True), answers):
        assert answer == {o["name"]: {k: o[k] for k in ("datatype", "shape", "data")} for o in rest}, raw
    assert refused == {"error": "StatusCode.INVALID_ARGUMENT",
                       "details": rest_refusal(rest_infer(server, "pipeline", {"city": ("BYTES", ["lyon"])}))[1]}


def test_a_column_signature_pipeline_scores_strings_as_over_rest(server: GrpcServer) -> None:
    values = {"city": ("BYTES", np.array(CITIES * 2, dtype=object)), "x": ("FP64", np.arange(6, dtype=float) * 5)}
    result = server.client().infer("pipeline", triton_inputs(values))
    [rest] = rest_infer(server, "pipeline", values).json()["outputs"]
    [output] = result.get_response().outputs
    assert (output.name, output.datatype) == (rest["name"], rest["datatype"])
    assert result.as_numpy(output.name).tolist() == rest["data"]
    assert len(set(rest["data"])) == 2  # both classes: the strings reached the encoder


def test_a_random_forest_scores_as_over_rest(server: GrpcServer) -> None:
    from helpers import IRIS

    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    values = {name: ("FP64", rows[:, i]) for i, name in enumerate(IRIS)}
    result = server.client().infer("forest", triton_inputs(values))
    [rest] = rest_infer(server, "forest", values).json()["outputs"]
    assert result.as_numpy(rest["name"]).tolist() == rest["data"] == [0, 2, 1]


def test_an_unnamed_tensor_and_its_version_field(server: GrpcServer) -> None:
    values = {"anything": ("FP32", np.array([[1.5, 2.0], [3.0, -4.0]], np.float32))}
    result = server.client().infer("doubled", triton_inputs(values), model_version="local", request_id="r-1")
    [rest] = rest_infer(server, "doubled", values).json()["outputs"]
    answer = result.get_response()
    assert (answer.model_name, answer.model_version, answer.id) == ("doubled", "local", "r-1")
    assert result.as_numpy(rest["name"]).tolist() == [[3.0, 4.0], [6.0, -8.0]]
    assert rest["data"] == [3.0, 4.0, 6.0, -8.0] and rest["shape"] == [2, 2]


def test_requested_outputs_are_the_only_ones_answered(server: GrpcServer) -> None:
    result = server.client().infer("identity", triton_inputs(ALL_TYPES),
                                   outputs=[triton.InferRequestedOutput("i8"), triton.InferRequestedOutput("s")])
    assert [o.name for o in result.get_response().outputs] == ["i8", "s"]
    status, message = grpc_refusal(server, "identity", ALL_TYPES, outputs=[triton.InferRequestedOutput("nope")])
    rest = rest_infer(server, "identity", ALL_TYPES, outputs=[{"name": "nope"}])
    assert (status, message) == ("StatusCode.INVALID_ARGUMENT", rest_refusal(rest)[1])


def test_request_parameters_become_params_as_over_rest(server: GrpcServer) -> None:
    values = {"x": ("FP64", [1.0])}

    def rest_params(params: dict[str, Any]) -> Any:
        outputs = rest_infer(server, "echo_params", values, parameters=params).json()["outputs"]
        return next(o for o in outputs if o["name"] == "params")["data"][0]

    params = {"k": 3, "flag": True, "name": "grpc"}  # tritonclient sends no double parameter
    result = server.client().infer("echo_params", triton_inputs(values), parameters=params)
    assert json.loads(result.as_numpy("params")[()]) == rest_params(params) == {**params, "temperature": 0.5}
    request = typed_request("echo_params", values)
    for key, kind, value in (("k", "int64_param", 4), ("temperature", "double_param", 0.25),
                             ("flag", "bool_param", False), ("name", "string_param", "typed")):
        setattr(request.parameters[key], kind, value)
    with server.channel() as channel:
        answer = infer_stub(channel)(request, timeout=30)
    [echoed] = next(o for o in answer.outputs if o.name == "params").contents.bytes_contents
    assert json.loads(echoed) == {"k": 4, "temperature": 0.25, "flag": False, "name": "typed"}
    status, message = grpc_refusal(server, "echo_params", values, parameters={"k": "three"})
    rest_answer = rest_infer(server, "echo_params", values, parameters={"k": "three"})
    assert (status, message) == ("StatusCode.INVALID_ARGUMENT", rest_refusal(rest_answer)[1])


REFUSALS = {
    "wrong datatype for the column": ("pipeline", {"city": ("BYTES", ["lyon"]), "x": ("BYTES", ["one"])}),
    "missing input": ("pipeline", {"city": ("BYTES", ["lyon"])}),
    "integers for a string column": ("pipeline", {"city": ("INT64", [1]), "x": ("FP64", [1.0])}),
    "tensor of the wrong type": ("doubled", {"t": ("BYTES", [["a", "b"]])}),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_refusals_carry_the_rest_message(server: GrpcServer, case: str) -> None:
    model, values = REFUSALS[case]
    status, message = grpc_refusal(server, model, values)
    rest_status, rest_message = rest_refusal(rest_infer(server, model, values))
    assert rest_status == 400 and status == "StatusCode.INVALID_ARGUMENT"
    assert message == rest_message
    assert "Traceback" not in message and "/site-packages/" not in message


def test_typed_values_out_of_their_datatype_are_refused_as_json_values_are(server: GrpcServer) -> None:
    values = {**{k: v for k, v in ALL_TYPES.items() if k != "i8"}, "i8": ("INT8", [1, 300, 2])}
    with server.channel() as channel, pytest.raises(grpc.RpcError) as refused:
        infer_stub(channel)(typed_request("identity", {k: v for k, v in values.items() if v[0] != "FP16"}), timeout=30)
    rest = rest_infer(server, "identity", values)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == rest_refusal(rest)[1] == "V2 input 'i8': value 300 is not a INT8"


def test_typed_values_in_another_datatypes_field_are_refused(server: GrpcServer) -> None:
    """Never silently dropped: only the datatype's own contents field may be filled."""
    request = typed_request("doubled", {"t": ("FP32", np.ones((1, 2), np.float32))})
    request.inputs[0].contents.int_contents.extend([7, 8])
    with server.channel() as channel, pytest.raises(grpc.RpcError) as refused:
        infer_stub(channel)(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == ("V2 input 't': a FP32 tensor's values go in contents.fp32_contents, "
                                       "not int_contents")


def test_long_details_are_cut_to_fit_grpcs_metadata(server: GrpcServer) -> None:
    """A message naming 999 missing features stays INVALID_ARGUMENT (not gRPC's own RESOURCE_EXHAUSTED
    for metadata past 16 KiB), its first 4 KiB as gRPC sends it (percent-encoded); REST's is whole."""
    values = {WIDE[0]: ("FP64", [1.0])}
    status, details = grpc_refusal(server, "wide", values)
    rest_status, rest_message = rest_refusal(rest_infer(server, "wide", values))
    assert (status, rest_status) == ("StatusCode.INVALID_ARGUMENT", 400)
    assert rest_message.startswith("Model is missing inputs ['température_0001', ") and WIDE[-1] in rest_message
    assert details.endswith("…") and rest_message.startswith(details[:-1])
    encoded = sum(1 if " " <= c <= "~" and c != "%" else 3 * len(c.encode()) for c in details)
    assert 4000 < encoded <= 4096


def test_too_many_rows_is_resource_exhausted_with_rests_message(server: GrpcServer) -> None:
    values = {"city": ("BYTES", np.array(["lyon"] * (MAX_ROWS + 1), dtype=object)),
              "x": ("FP64", np.zeros(MAX_ROWS + 1))}
    status, message = grpc_refusal(server, "pipeline", values)
    rest_status, rest_message = rest_refusal(rest_infer(server, "pipeline", values))
    assert (rest_status, status) == (413, "StatusCode.RESOURCE_EXHAUSTED") and message == rest_message


def test_bytes_decoding_past_the_limit_is_refused_as_rest_binary_refuses_it(server: GrpcServer) -> None:
    """10 000 one-byte elements cost far more as Python objects than their 50 KB on the wire."""
    import tritonclient.http as triton_http

    values = {**ALL_TYPES, "s": ("BYTES", np.array([["x"] * 10_000], dtype=object))}
    status, message = grpc_refusal(server, "identity", values)
    inputs = []
    for name, (datatype, data) in values.items():
        array = np.asarray(data, dtype=object if datatype == "BYTES" else None)
        inputs.append(triton_http.InferInput(name, list(array.shape), datatype))
        inputs[-1].set_data_from_numpy(array)  # binary, tritonclient's default
    with pytest.raises(InferenceServerException) as rest:
        triton_http.InferenceServerClient(server.url.removeprefix("http://")).infer("identity", inputs)
    assert status == "StatusCode.RESOURCE_EXHAUSTED" and message == rest.value.message()
    assert message.startswith("V2 input 's' would decode to about") and f"({MAX_DECODED_BYTES} bytes)" in message


def test_malformed_raw_contents_are_invalid_arguments_naming_the_input(server: GrpcServer) -> None:
    from sigserve.codecs.grpc import messages

    def request(raw: list[bytes], shape: list[int], datatype: str = "FP64") -> Any:
        message = messages.ModelInferRequest(model_name="forest", raw_input_contents=raw)
        message.inputs.add(name="sepal length (cm)", datatype=datatype, shape=shape)
        return message

    cases = {
        "16 bytes of FP64 data do not fit shape [3]": request([np.zeros(2).tobytes()], [3]),
        "raw_input_contents has 2 entries for 1 inputs": request([b"", b""], [0]),
        "BYTES element 0 of 9 bytes runs past the end": request([b"\x09\x00\x00\x00abc"], [1], "BYTES"),
        "unknown datatype 'FP8'": request([b"\x00"], [1], "FP8"),
    }
    with server.channel() as channel:
        stub = infer_stub(channel)
        for expected, message in cases.items():
            with pytest.raises(grpc.RpcError) as refused:
                stub(message, timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert expected in refused.value.details()
        garbage = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as unreadable:
            garbage(b"\xff\xff\xff", timeout=30)
    assert unreadable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert unreadable.value.details() == "The gRPC request is not a valid ModelInferRequest message"


def test_grpc_requests_are_counted_with_protocol_grpc(server: GrpcServer) -> None:
    before = metric_samples(server.url)
    values = {"anything": ("FP32", np.ones((1, 2), np.float32))}
    server.client().infer("doubled", triton_inputs(values))
    grpc_refusal(server, "doubled", {"t": ("BYTES", [["a", "b"]])})
    grpc_refusal(server, "nope", values)
    rest_infer(server, "doubled", values)
    after = metric_samples(server.url)

    def grown(**labels: str) -> float:
        return total(after, "sigserve_requests_total", **labels) - total(before, "sigserve_requests_total", **labels)

    assert grown(protocol="grpc", status="200", format="v2", model="doubled") == 1
    assert grown(protocol="grpc", status="400", format="v2", model="doubled") == 1
    assert grown(protocol="grpc", status="404", format="v2", model="") == 1
    assert grown(protocol="rest", status="200", format="v2", model="doubled") == 1
    assert grown(protocol="grpc") == 3
    histogram = "sigserve_request_duration_seconds_count"
    assert total(after, histogram, protocol="grpc", model="doubled") - total(
        before, histogram, protocol="grpc", model="doubled") == 2
    assert "/inference.GRPCInferenceService/ModelInfer HTTP/2\" 200" in server.log()


# --------------------------------------------------------------------------- authentication, limits, workers

def test_with_auth_on_every_rpc_but_the_probes_needs_the_token(servers) -> None:
    server = servers["auth"]
    client = server.client()
    values = {"x": ("FP64", [1.0])}
    assert client.is_server_live() and client.is_server_ready()  # open, as /v2/health/live and /ready
    with server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    rest = httpx.post(server.url + "/v2/models/pid/infer", json={"inputs": [
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    assert grpc_refusal(server, "pid", values) == ("StatusCode.UNAUTHENTICATED", rest_refusal(rest)[1])
    wrong = grpc_refusal(server, "pid", values, headers={"authorization": "Bearer wrong"})
    assert wrong == ("StatusCode.UNAUTHENTICATED", "The bearer token is not valid")
    for call in (lambda: client.get_server_metadata(), lambda: client.get_model_metadata("pid"),
                 lambda: client.is_model_ready("pid")):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert client.infer("pid", triton_inputs(values), headers=bearer).as_numpy("pid").tolist() == [server.process.pid]
    assert client.get_model_metadata("pid", headers=bearer).name == "pid"
    assert TOKEN not in server.log()


def test_a_message_over_the_body_limit_is_resource_exhausted(servers) -> None:
    server = servers["auth"]
    values = {"x": ("FP64", np.zeros(1000))}  # 8000 bytes, over --max-body-bytes 4096
    status, _ = grpc_refusal(server, "pid", values, headers={"authorization": f"Bearer {TOKEN}"})
    assert status == "StatusCode.RESOURCE_EXHAUSTED"


def test_every_worker_serves_grpc(servers) -> None:
    """gunicorn's workers each bind the port (SO_REUSEPORT): new connections reach both."""
    server = servers["workers"]
    workers = children_of(server.process.pid)
    seen: set[int] = set()

    def another_connection() -> bool:
        client = server.client()  # a new channel: a new connection
        try:
            seen.update(client.infer("pid", triton_inputs({"x": ("FP64", [1.0])})).as_numpy("pid").tolist())
        finally:
            client.close()
        return len(seen) == 2

    assert len(workers) == 2
    assert wait_for(another_connection, timeout=60, every=0.01), seen
    assert seen == workers
    samples = metric_samples(server.url)
    assert total(samples, "sigserve_requests_total", protocol="grpc", status="200", model="pid") >= 2


# --------------------------------------------------------------------------- the demo, TLS, draining

def test_the_demo_serves_grpc_too(tmp_path) -> None:
    http_port, grpc_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "sigserve", "demo", "-h", "127.0.0.1", "-p", str(http_port),
                                "--grpc-port", str(grpc_port)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")

        def ready() -> bool:
            try:
                return client.is_model_ready("sigserve-demo-iris")
            except InferenceServerException:
                return process.poll() is not None

        assert wait_for(ready, timeout=120) and process.poll() is None
        values = {"sepal_length": ("FP64", [5.1]), "sepal_width": ("FP64", [3.5]),
                  "petal_length": ("FP64", [1.4]), "petal_width": ("FP64", [0.2])}
        assert client.infer("sigserve-demo-iris", triton_inputs(values)).as_numpy("species").tolist() == [b"setosa"]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_tls_serves_grpc_with_the_https_certificate_and_follows_its_renewal(built, tmp_path) -> None:
    from test_auth_tls import Authority, replace_file

    (tmp_path / "renewed").mkdir()
    authority, renewed = Authority(tmp_path), Authority(tmp_path / "renewed")
    cert, key = authority.issue("127.0.0.1")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server = GrpcServer(built["pid"], "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"))
    server.url = server.url.replace("http://", "https://")
    server.launch()
    try:
        assert wait_for(lambda: _tls_live(server, authority), timeout=120), server.log()
        client = triton.InferenceServerClient(server.grpc_url, ssl=True, root_certificates=str(authority.ca_file))
        assert client.infer("pid", triton_inputs({"x": ("FP64", [1.0])})).as_numpy("pid").tolist() == [
            server.process.pid]
        assert not _live(server)  # no plaintext
        cert, key = renewed.issue("127.0.0.1")  # by another authority: only the new certificate passes
        replace_file(tmp_path / "key.pem", key)
        replace_file(tmp_path / "cert.pem", cert)
        assert wait_for(lambda: _tls_live(server, renewed), timeout=30), server.log()
        assert not _tls_live(server, authority)
    finally:
        server.stop()


def _tls_live(server: GrpcServer, authority: Any) -> bool:
    try:
        client = triton.InferenceServerClient(server.grpc_url, ssl=True, root_certificates=str(authority.ca_file))
        return client.is_server_live()
    except InferenceServerException:
        return False


def test_sigterm_lets_a_grpc_call_in_flight_finish(built, tmp_path) -> None:
    """The drain stops new calls and health, not the ones being scored."""
    from models.pyfunc_models import Slow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    slow = built["pid"].parent / "slow"
    if not slow.exists():
        save_pyfunc(slow, Slow(), ModelSignature(inputs=Schema([ColSpec("double", "x")])))
    marker = tmp_path / "started"
    server = GrpcServer(slow, "--timeout", "20", env={"SIGSERVE_TEST_STARTED_MARKER": str(marker)})
    server.start()
    try:
        assert wait_for(lambda: _live(server), timeout=30)
        client = triton.InferenceServerClient(server.grpc_url)
        answers: list[Any] = []
        client.async_infer("slow", triton_inputs({"x": ("FP64", [1.5])}),
                           callback=lambda result, error: answers.append(error or result))
        assert wait_for(marker.exists, timeout=30)  # the call is being scored
        with server.channel() as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"), timeout=30)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            os.killpg(server.process.pid, signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING  # watchers learn of the drain
            watch.cancel()
        assert wait_for(lambda: answers, timeout=30)
        [answer] = answers
        assert not isinstance(answer, Exception), answer
        assert answer.as_numpy("predict").tolist() == [0.0]
        server.process.wait(timeout=30)
        assert server.process.returncode == 0
    finally:
        server.stop()
