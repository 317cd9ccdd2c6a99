"""KServe V2 (Open Inference Protocol): the specification's documented example, the metadata
and health endpoints, and round trips against `/invocations` on the same models and values."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from helpers import IRIS, SigserveServer, save_pyfunc

ALL_TYPES_ROW = {
    "i": ("INT32", 7), "l": ("INT64", 2**40), "f": ("FP32", 1.5), "d": ("FP64", 0.1),
    "s": ("BYTES", "hello"), "b": ("BOOL", True), "t": ("BYTES", "2024-05-06T07:08:09Z"),
    "y": ("BYTES", "aGk="),
}


@pytest.fixture(scope="module")
def spec_model(tmp_path_factory, models) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec
    from models.v2_models import SpecExample

    signature = ModelSignature(inputs=Schema([
        TensorSpec(np.dtype("uint32"), (-1, 2), "input0"),
        TensorSpec(np.dtype("bool"), (-1,), "input1"),
    ]))
    path = save_pyfunc(tmp_path_factory.mktemp("v2") / "spec_example", SpecExample(), signature)
    with SigserveServer(path) as server:
        yield server


def infer(server: SigserveServer, name: str, body: dict[str, Any], version: str | None = None) -> httpx.Response:
    prefix = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
    return httpx.post(server.url + prefix + "/infer", json=body, timeout=30)


def column_inputs(row: dict[str, tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": name, "shape": [1], "datatype": datatype, "data": [value]} for name, (datatype, value) in row.items()]


# --------------------------------------------------------------------------- the specification's example

SPEC_REQUEST = {
    "id": "42",
    "inputs": [
        {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
        {"name": "input1", "shape": [2], "datatype": "BOOL", "data": [True, False]},
    ],
    "outputs": [{"name": "output0"}],
}


def test_the_documented_request_gets_the_documented_response(spec_model: SigserveServer) -> None:
    answer = infer(spec_model, "spec_example", SPEC_REQUEST)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["id"] == "42" and document["model_name"] == "spec_example"
    [output] = document["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == ("output0", [3, 2], "FP32")
    assert output["data"] == pytest.approx([1.0, 1.1, 2.0, 2.1, 3.0, 3.1], rel=1e-6)


def test_nested_data_is_read_as_the_same_row_major_tensor(spec_model: SigserveServer) -> None:
    nested = {**SPEC_REQUEST, "inputs": [{**SPEC_REQUEST["inputs"][0], "data": [[1, 2], [3, 4]]}, SPEC_REQUEST["inputs"][1]],
              "outputs": [{"name": "input0_sum"}]}
    flat = {**SPEC_REQUEST, "outputs": [{"name": "input0_sum"}]}
    assert infer(spec_model, "spec_example", nested).json()["outputs"] == infer(spec_model, "spec_example", flat).json()["outputs"]
    assert infer(spec_model, "spec_example", flat).json()["outputs"][0]["data"] == [3, 7]


def test_the_documented_example_as_printed_is_refused_for_its_shape(spec_model: SigserveServer) -> None:
    """The specification's example declares input1 with shape [3] but sends one value."""
    as_printed = {**SPEC_REQUEST, "inputs": [SPEC_REQUEST["inputs"][0],
                                             {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]}]}
    answer = infer(spec_model, "spec_example", as_printed)
    assert answer.status_code == 400
    assert "shape [3] holds 3 values" in answer.json()["error"]


def test_all_outputs_without_a_filter_and_unknown_outputs_refused(spec_model: SigserveServer) -> None:
    everything = infer(spec_model, "spec_example", {k: v for k, v in SPEC_REQUEST.items() if k != "outputs"})
    assert [o["name"] for o in everything.json()["outputs"]] == ["output0", "input0_sum"]
    unknown = infer(spec_model, "spec_example", {**SPEC_REQUEST, "outputs": [{"name": "nope"}]})
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]


def test_server_and_model_metadata_and_readiness(spec_model: SigserveServer) -> None:
    server = httpx.get(spec_model.url + "/v2").json()
    assert server["name"] == "sigserve" and server["version"] and "binary_tensor_data" in server["extensions"]
    metadata = httpx.get(spec_model.url + "/v2/models/spec_example").json()
    assert metadata["name"] == "spec_example" and metadata["versions"] == ["local"]
    assert metadata["inputs"] == [{"name": "input0", "datatype": "UINT32", "shape": [-1, 2]},
                                  {"name": "input1", "datatype": "BOOL", "shape": [-1]}]
    assert httpx.get(spec_model.url + "/v2/models/spec_example/versions/local").json() == metadata
    assert httpx.get(spec_model.url + "/v2/models/spec_example/ready").json() == {"name": "spec_example", "ready": True}
    assert httpx.get(spec_model.url + "/v2/health/ready").status_code == 200
    assert httpx.get(spec_model.url + "/v2/health/live").status_code == 200


def test_unknown_model_or_version_is_404_in_the_protocol_error_shape(spec_model: SigserveServer) -> None:
    for answer in (infer(spec_model, "other", SPEC_REQUEST), infer(spec_model, "spec_example", SPEC_REQUEST, "9"),
                   httpx.get(spec_model.url + "/v2/models/other"), httpx.get(spec_model.url + "/v2/models/other/ready")):
        assert answer.status_code == 404 and "spec_example" in answer.json()["error"]
    assert infer(spec_model, "spec_example", SPEC_REQUEST, "local").status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"inputs": []}, "non-empty 'inputs'"),
        ({"inputs": [{"name": "input0", "shape": [1, 2], "datatype": "UINT32", "data": [1, -2]}]}, "-2 is not a UINT32"),
        ({"inputs": [{"name": "input0", "shape": [1, 2], "datatype": "UINT32", "data": [1, 2.5]}]}, "2.5 is not a UINT32"),
        ({"inputs": [{"name": "input0", "shape": [1, 2], "datatype": "COMPLEX", "data": [1, 2]}]}, "unknown datatype"),
        ({"inputs": [{"name": "input0", "shape": [1, 2], "datatype": "UINT32"}]}, "missing ['data']"),
        ([1, 2], "JSON object"),
        ({"inputs": [{"name": "input0", "shape": [1, 3], "datatype": "UINT32", "data": [[1, 2], 3]}]}, "mixes nested lists"),
        ({"inputs": [{"name": "input0", "shape": [1, 2], "datatype": "UINT32", "data": [1, True]}]}, "True is not a UINT32"),
    ],
)
def test_malformed_requests_are_400_with_the_reason(spec_model: SigserveServer, body: Any, fragment: str) -> None:
    answer = infer(spec_model, "spec_example", body)
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]


# --------------------------------------------------------------------------- round trips against /invocations


def test_columns_of_a_scikit_learn_model_predict_as_on_invocations(server_factory, models) -> None:
    server = server_factory(models["sklearn_skops"])
    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]
    columns = list(zip(*rows))
    v2 = infer(server, "sklearn_skops", {"inputs": [
        {"name": name, "shape": [3], "datatype": "FP64", "data": list(values)} for name, values in zip(IRIS, columns)
    ]})
    mlflow_protocol = server.post({"dataframe_split": {"columns": IRIS, "data": rows}})
    assert v2.status_code == 200, v2.text
    [output] = v2.json()["outputs"]
    assert output["data"] == mlflow_protocol.json()["predictions"] == [0, 1, 2]
    assert (output["shape"], output["datatype"]) == ([3], "INT64")


def test_every_column_type_is_enforced_as_on_invocations(server_factory, models) -> None:
    server = server_factory(models["echo"])
    v2 = infer(server, "echo", {"inputs": column_inputs(ALL_TYPES_ROW)})
    split = server.post({"dataframe_split": {"columns": list(ALL_TYPES_ROW),
                                             "data": [[value for _, value in ALL_TYPES_ROW.values()]]}})
    assert v2.status_code == 200 and split.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outputs["input"]["data"][0] == split.json()["predictions"]["input"]


def test_a_refused_value_gets_the_same_verdict_and_message_on_both_protocols(server_factory, models) -> None:
    server = server_factory(models["echo"])
    row = {**ALL_TYPES_ROW, "d": ("BYTES", "not a number")}
    v2 = infer(server, "echo", {"inputs": column_inputs(row)})
    split = server.post({"dataframe_split": {"columns": list(row), "data": [[value for _, value in row.values()]]}})
    assert v2.status_code == split.status_code == 400
    assert v2.json()["error"] == split.json()["message"]


def test_tensors_and_named_tensors_match_invocations(server_factory, models) -> None:
    tensor = server_factory(models["echo_tensor"])
    v2 = infer(tensor, "echo_tensor", {"inputs": [{"name": "x", "shape": [1, 2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"][0] == tensor.post({"inputs": [[[1, 2], [3, 4]]]}).json()["predictions"]["input"]

    named = server_factory(models["echo_named_tensors"])
    v2 = infer(named, "echo_named_tensors", {"inputs": [
        {"name": "a", "shape": [2, 2], "datatype": "FP64", "data": [1.5, 2, 3, 4]},
        {"name": "b", "shape": [2], "datatype": "INT32", "data": [7, 8]},
    ]})
    expected = named.post({"inputs": {"a": [[1.5, 2], [3, 4]], "b": [7, 8]}}).json()["predictions"]["input"]
    assert v2.status_code == 200 and v2.json()["outputs"][0]["data"][0] == expected


def test_request_parameters_become_params(server_factory, models) -> None:
    server = server_factory(models["echo_params"])
    inputs = [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]
    v2 = infer(server, "echo_params", {"inputs": inputs, "parameters": {"k": 7, "flag": True}})
    split = server.post({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}, "params": {"k": 7, "flag": True}})
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o["data"][0] for o in v2.json()["outputs"]}
    assert outputs["params"] == split.json()["predictions"]["params"]
    bad = infer(server, "echo_params", {"inputs": inputs, "parameters": {"k": "seven"}})
    assert bad.status_code == 400 and "k" in bad.json()["error"]


def test_the_v2_name_can_be_set_to_what_kserve_calls_the_model(server_factory, models) -> None:
    server = server_factory(models["sklearn_skops"], "--model-name", "iris-classifier")
    inputs = [{"name": name, "shape": [1], "datatype": "FP64", "data": [value]} for name, value in zip(IRIS, [5.1, 3.5, 1.4, 0.2])]
    answer = infer(server, "iris-classifier", {"inputs": inputs})
    assert answer.status_code == 200 and answer.json()["model_name"] == "iris-classifier"
    assert infer(server, "sklearn_skops", {"inputs": inputs}).status_code == 404
