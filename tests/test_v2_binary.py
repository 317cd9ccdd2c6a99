"""KServe V2 binary tensor data extension over HTTP, with the clients people use at their default
settings (binary on): tritonclient.http and the kserve SDK's REST client. Every datatype, named
and unnamed tensors, column signatures, params, refusals with the same messages as JSON V2, and
malformed binary bodies (each a 400 naming the problem)."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from helpers import SigserveServer, save_pyfunc
from kserve_sdk import run_kserve_script

from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.tensors import InputTensor, decode_tensors
from sigserve.codecs.v2.decode import decode_v2
from sigserve.errors import RequestLimitExceeded
from sigserve.model.mlmodel import read_mlmodel

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

MiB = 1024 * 1024
MAX_DECODED = 32 * MiB  # the module server's --max-decoded-bytes

NUMPY_DTYPES = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
ECHO_COLUMNS = [("i", "integer"), ("l", "long"), ("f", "float"), ("d", "double"),
                ("s", "string"), ("b", "boolean"), ("t", "datetime"), ("y", "binary")]
# One row of every column type, as a V2 client would type it (binary: raw bytes; JSON: base64).
ECHO_ROW: dict[str, tuple[str, Any]] = {
    "i": ("INT32", 7), "l": ("INT64", 2**40), "f": ("FP32", 1.5), "d": ("FP64", 0.1),
    "s": ("BYTES", "hello"), "b": ("BOOL", True), "t": ("BYTES", "2024-05-06T07:08:09Z"), "y": ("BYTES", b"hi"),
}


def tensor_values(datatype: str) -> np.ndarray:
    """A 2x2 tensor of the datatype holding values near its edges."""
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    if datatype == "BYTES":
        return np.array([["a", "é"], ["", "line\nbreak"]], dtype=object)
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array([[info.min, info.max], [0, 1]], dtype=dtype)
    info = np.finfo(dtype)
    return np.array([[info.min, info.max], [-0.5, 1.25]], dtype=dtype)


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
    from models.binary_models import Doubled, Identity
    from models.pyfunc_models import Echo
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    root = tmp_path_factory.mktemp("v2_binary")
    dtypes = Schema([TensorSpec(np.dtype(numpy), (-1, 2), datatype.lower()) for datatype, numpy in NUMPY_DTYPES.items()])
    echo = ModelSignature(inputs=Schema([ColSpec(t, n) for n, t in ECHO_COLUMNS]),
                          params=ParamSchema([ParamSpec("k", "long", 5), ParamSpec("name", "string", "x")]))
    frame = pd.DataFrame({"color": ["red", "green", "blue", "red", "blue", "green"],
                          "size": [1.0, 2.5, 3.0, 0.5, 2.0, 1.5]})
    pipeline = Pipeline([
        ("encode", ColumnTransformer([("color", OneHotEncoder(), ["color"])], remainder="passthrough")),
        ("classify", LogisticRegression()),
    ]).fit(frame, [0, 1, 2, 0, 2, 1])
    paths = {
        "dtypes": save_pyfunc(root / "dtypes", Identity(), ModelSignature(inputs=dtypes)),
        "unnamed": save_pyfunc(root / "unnamed", Doubled(),
                               ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 3))]))),
        "echo": save_pyfunc(root / "echo", Echo(), echo),
        "pipeline": root / "pipeline",
    }
    mlflow.sklearn.save_model(pipeline, paths["pipeline"], signature=infer_signature(frame, pipeline.predict(frame)),
                              pip_requirements=["scikit-learn"])
    return paths


@pytest.fixture(scope="module")
def server(model_paths: dict[str, Path]) -> Any:
    others = [arg for name in ("unnamed", "echo", "pipeline") for arg in ("-m", str(model_paths[name]))]
    with SigserveServer(model_paths["dtypes"], *others, "--max-rows", "1000",
                        "--max-decoded-bytes", str(MAX_DECODED)) as running:
        yield running


@pytest.fixture(scope="module")
def triton(server: SigserveServer) -> Any:
    client = tritonclient_http.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


def triton_inputs(arrays: dict[str, np.ndarray], datatypes: dict[str, str] | None = None) -> list[Any]:
    inputs = []
    for name, array in arrays.items():
        datatype = (datatypes or {}).get(name) or tritonclient_utils_datatype(array)
        item = tritonclient_http.InferInput(name, list(array.shape), datatype)
        item.set_data_from_numpy(array)  # binary_data=True: the client's default
        inputs.append(item)
    return inputs


def tritonclient_utils_datatype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(array.dtype)


def v2_json(server: SigserveServer, model: str, inputs: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json={"inputs": inputs, **extra}, timeout=30)


def expected_output(datatype: str, array: np.ndarray, binary: bool = True) -> np.ndarray:
    """Binary BYTES come back as bytes, as from Triton; JSON ones as text."""
    if datatype == "BYTES" and binary:
        return np.array([v.encode() for v in array.ravel()], dtype=object).reshape(array.shape)
    return array


def no_traceback(server: SigserveServer) -> None:
    log = server.log()
    assert "Traceback" not in log and "unhashable" not in log, log[-3000:]


# --------------------------------------------------------------------------- every datatype, both clients


def test_server_metadata_advertises_the_extension(triton: Any) -> None:
    assert "binary_tensor_data" in triton.get_server_metadata()["extensions"]


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-outputs", "json-outputs"])
def test_tritonclient_sends_and_reads_every_datatype(triton: Any, binary_out: bool) -> None:
    arrays = {datatype.lower(): tensor_values(datatype) for datatype in NUMPY_DTYPES}
    outputs = [tritonclient_http.InferRequestedOutput(name, binary_data=binary_out) for name in arrays]
    result = triton.infer("dtypes", triton_inputs(arrays), outputs=outputs)
    for datatype in NUMPY_DTYPES:
        got = result.as_numpy(datatype.lower())
        assert got.dtype == np.dtype(NUMPY_DTYPES[datatype]), datatype
        np.testing.assert_array_equal(got, expected_output(datatype, arrays[datatype.lower()], binary_out), err_msg=datatype)
        parameters = result.get_output(datatype.lower()).get("parameters") or {}
        assert ("binary_data_size" in parameters) == binary_out


def test_tritonclient_without_requested_outputs_gets_them_all_as_binary(server: SigserveServer, triton: Any) -> None:
    arrays = {datatype.lower(): tensor_values(datatype) for datatype in NUMPY_DTYPES}
    result = triton.infer("dtypes", triton_inputs(arrays))
    assert all("binary_data_size" in output["parameters"] for output in result.get_response()["outputs"])
    np.testing.assert_array_equal(result.as_numpy("fp16"), arrays["fp16"])


def test_the_binary_answer_is_framed_as_the_extension_says(server: SigserveServer) -> None:
    """JSON header, then the raw outputs in header order; one output binary, one JSON."""
    header = json.dumps({
        "inputs": [{"name": n, "shape": [1, 2], "datatype": d, "parameters": {"binary_data_size": size}}
                   for n, d, size in (("int32", "INT32", 8), ("bytes", "BYTES", 11))]
        + [{"name": d.lower(), "shape": [1, 2], "datatype": d, "data": tensor_values(d)[:1].ravel().tolist()}
           for d in NUMPY_DTYPES if d not in ("INT32", "BYTES", "FP16")]
        + [{"name": "fp16", "shape": [1, 2], "datatype": "FP16", "parameters": {"binary_data_size": 4}}],
        "outputs": [{"name": "int32", "parameters": {"binary_data": True}}, {"name": "bytes"},
                    {"name": "fp16", "parameters": {"binary_data": False}}],
    }).encode()
    raw = struct.pack("<2i", -3, 4) + struct.pack("<I", 2) + "é".encode() + struct.pack("<I", 1) + b"x" \
        + np.array([0.5, -2], dtype="<f2").tobytes()
    answer = httpx.post(f"{server.url}/v2/models/dtypes/infer", content=header + raw,
                        headers={"Inference-Header-Content-Length": str(len(header))}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    length = int(answer.headers["inference-header-content-length"])
    document = json.loads(answer.content[:length])
    outputs = {o["name"]: o for o in document["outputs"]}
    assert set(outputs) == {"int32", "bytes", "fp16"} and document["outputs"][0]["name"] == "int32"
    int32, as_json, fp16 = outputs["int32"], outputs["bytes"], outputs["fp16"]
    assert int32["parameters"] == {"binary_data_size": 8} and "data" not in int32
    assert answer.content[length:] == struct.pack("<2i", -3, 4)
    assert as_json["data"] == ["é", "x"] and fp16["data"] == [0.5, -2.0]


KSERVE_REST_CLIENT = r"""
import asyncio, json, sys
import numpy as np
import kserve
from kserve.protocol.infer_type import RequestedOutput

async def main(url, binary_out, spec):
    inputs, requested = [], []
    for name, (datatype, dtype, values) in spec.items():
        array = np.array(values, dtype=dtype)
        item = kserve.InferInput(name, list(array.shape), datatype)
        item.set_data_from_numpy(array)  # binary_data=True: the SDK's default
        inputs.append(item)
        requested.append(RequestedOutput(name, {"binary_data": binary_out}))
    request = kserve.InferRequest(model_name="dtypes", infer_inputs=inputs, request_outputs=requested)
    client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=30))
    try:
        response = await client.infer(url, request, model_name="dtypes")
    finally:
        await client.close()
    out = {}
    for output in response.outputs:
        if output.datatype == "FP16" and not binary_out:
            continue  # the SDK has no JSON reading for FP16 (it sends FP16 only as binary)
        array = output.as_numpy()
        values = [v.decode() if isinstance(v, bytes) else v for v in array.ravel().tolist()]
        out[output.name] = {"dtype": str(array.dtype), "shape": list(array.shape), "values": values}
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2] == "binary", json.loads(sys.argv[3])))
"""


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-outputs", "json-outputs"])
def test_kserve_rest_client_sends_and_reads_every_datatype(server: SigserveServer, binary_out: bool) -> None:
    arrays = {datatype.lower(): tensor_values(datatype) for datatype in NUMPY_DTYPES}
    spec = {name: (datatype, NUMPY_DTYPES[datatype], arrays[name].tolist())
            for datatype in NUMPY_DTYPES for name in [datatype.lower()]}
    got = run_kserve_script(KSERVE_REST_CLIENT, server.url, "binary" if binary_out else "json", json.dumps(spec))
    assert set(got) == set(arrays) - ({"fp16"} if not binary_out else set())
    for name, answer in got.items():
        want = arrays[name]
        assert answer["shape"] == list(want.shape), name
        if name == "bytes":
            assert answer["values"] == want.ravel().tolist()
        else:
            assert answer["dtype"] == str(want.dtype), name
            np.testing.assert_array_equal(np.array(answer["values"], dtype=want.dtype), want.ravel(), err_msg=name)


def test_an_unnamed_tensor_from_tritonclient(server: SigserveServer, triton: Any) -> None:
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    result = triton.infer("unnamed", triton_inputs({"input": values}))
    np.testing.assert_array_equal(result.as_numpy("predict"), values * 2)
    assert result.as_numpy("predict").dtype == np.float32
    as_json = v2_json(server, "unnamed", [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": values.ravel().tolist()}])
    assert as_json.headers["content-type"] == "application/json"  # JSON in, JSON out
    assert as_json.json()["outputs"][0]["data"] == (values * 2).ravel().tolist()


# --------------------------------------------------------------------------- column signatures and params


def test_string_columns_of_a_scikit_learn_pipeline_sent_as_bytes(server: SigserveServer, triton: Any,
                                                                 model_paths: dict[str, Path]) -> None:
    import mlflow.sklearn

    frame = pd.DataFrame({"color": ["blue", "red", "green"], "size": [2.5, 0.7, 1.4]})
    arrays = {"color": frame["color"].to_numpy(dtype=object), "size": frame["size"].to_numpy()}
    result = triton.infer("pipeline", triton_inputs(arrays))
    expected = mlflow.sklearn.load_model(str(model_paths["pipeline"])).predict(frame)
    np.testing.assert_array_equal(result.as_numpy("predict"), expected)
    as_json = v2_json(server, "pipeline", [
        {"name": "color", "shape": [3], "datatype": "BYTES", "data": frame["color"].tolist()},
        {"name": "size", "shape": [3], "datatype": "FP64", "data": frame["size"].tolist()},
    ])
    assert as_json.json()["outputs"][0]["data"] == expected.tolist()


def echo_arrays(row: dict[str, tuple[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays = {}
    for name, (datatype, value) in row.items():
        arrays[name] = np.array([value], dtype=object if datatype == "BYTES" else NUMPY_DTYPES[datatype])
    return arrays, {name: datatype for name, (datatype, _) in row.items()}


def echo_json_inputs(row: dict[str, tuple[str, Any]]) -> list[dict[str, Any]]:
    import base64

    return [{"name": name, "shape": [1], "datatype": datatype,
             "data": [base64.b64encode(value).decode() if isinstance(value, bytes) else value]}
            for name, (datatype, value) in row.items()]


def echo_binary(triton: Any, row: dict[str, tuple[str, Any]], **kwargs: Any) -> dict[str, Any]:
    arrays, datatypes = echo_arrays(row)
    result = triton.infer("echo", triton_inputs(arrays, datatypes), **kwargs)
    return {name: json.loads(result.as_numpy(name).ravel()[0]) for name in ("input", "params")}


CROSS_TYPED = {
    "long-from-fp64": {"l": ("FP64", 1e17)}, "long-from-uint8": {"l": ("UINT8", 200)},
    "double-from-int64": {"d": ("INT64", 2**53)}, "double-from-fp16": {"d": ("FP16", 0.5)},
    "float-from-fp64": {"f": ("FP64", 0.1)}, "integer-from-int64": {"i": ("INT64", -(2**31))},
    "boolean-from-uint8": {"b": ("UINT8", 1)}, "string-from-int64": {"s": ("INT64", 5)},
    "boolean-from-bytes": {"b": ("BYTES", "FALSE")},
}


@pytest.mark.parametrize("override", [{}, *CROSS_TYPED.values()], ids=["as-declared", *CROSS_TYPED])
def test_json_and_binary_give_the_model_the_same_columns(server: SigserveServer, triton: Any,
                                                         override: dict[str, tuple[str, Any]]) -> None:
    row = {**ECHO_ROW, **override}
    as_json = v2_json(server, "echo", echo_json_inputs(row))
    assert as_json.status_code == 200, as_json.text
    json_input = json.loads(json.dumps(as_json.json()["outputs"][0]["data"][0]))
    assert echo_binary(triton, row)["input"] == json_input
    assert json_input["values"][0][list(ECHO_ROW).index("y")] == {"bytes": b"hi".hex()}


REFUSED = {
    "fraction-for-long": {"l": ("FP64", 1.5)},
    "rounded-for-double": {"d": ("INT64", 2**53 + 1)},
    "out-of-range-for-integer": {"i": ("INT64", 2**40)},
    "beyond-int64-for-long": {"l": ("UINT64", 2**63)},
    "two-for-boolean": {"b": ("INT32", 2)},
    "number-for-datetime": {"t": ("FP64", 1.0)},
    "word-for-boolean": {"b": ("BYTES", "yes")},
    "not-a-date": {"t": ("BYTES", "tomorrow")},
}


@pytest.mark.parametrize("override", REFUSED.values(), ids=list(REFUSED))
def test_a_refused_value_gets_the_same_message_as_json_v2(server: SigserveServer, triton: Any,
                                                          override: dict[str, tuple[str, Any]]) -> None:
    row = {**ECHO_ROW, **override}
    as_json = v2_json(server, "echo", echo_json_inputs(row))
    assert as_json.status_code == 400, as_json.text
    with pytest.raises(InferenceServerException) as refused:
        echo_binary(triton, row)
    assert refused.value.status() == "400"
    assert refused.value.message() == as_json.json()["error"]
    assert repr(next(iter(override))) in refused.value.message()


def test_a_refused_fp32_tensor_value_gets_the_same_message_as_json_v2(server: SigserveServer, triton: Any) -> None:
    values = np.array([[1.0, 1e300, 2.0]])
    as_json = v2_json(server, "unnamed", [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": values.ravel().tolist()}])
    with pytest.raises(InferenceServerException) as refused:
        triton.infer("unnamed", triton_inputs({"x": values}))
    assert as_json.status_code == 400 and refused.value.message() == as_json.json()["error"]
    assert "1e+300" in refused.value.message()


def test_params_reach_the_model_and_binary_data_output_does_not(triton: Any) -> None:
    echoed = echo_binary(triton, ECHO_ROW, parameters={"k": 7})  # no outputs named: binary_data_output is set
    assert echoed["params"] == {"k": 7, "name": "x"}
    with pytest.raises(InferenceServerException) as refused:
        echo_binary(triton, ECHO_ROW, parameters={"k": "seven"})
    assert refused.value.status() == "400" and "'k'" in refused.value.message()


def test_bytes_that_are_not_utf8_fit_a_binary_column_but_not_a_string_one(triton: Any) -> None:
    echoed = echo_binary(triton, {**ECHO_ROW, "y": ("BYTES", b"\xff\x00")})
    assert echoed["input"]["values"][0][list(ECHO_ROW).index("y")] == {"bytes": "ff00"}
    with pytest.raises(InferenceServerException) as refused:
        echo_binary(triton, {**ECHO_ROW, "s": ("BYTES", b"\xff")})
    assert refused.value.status() == "400"
    assert "'s'" in refused.value.message() and "UTF-8" in refused.value.message()


# --------------------------------------------------------------------------- malformed bodies


def binary_body(inputs: list[dict[str, Any]], raw: bytes, header_length: int | str | None = None,
                ) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": inputs}).encode()
    length = len(header) if header_length is None else header_length
    return header + raw, {"Inference-Header-Content-Length": str(length)}


def x_input(size: Any, datatype: str = "FP32", shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "x", "shape": shape or [1, 3], "datatype": datatype, "parameters": {"binary_data_size": size},
            **extra}


TWELVE = np.array([1, 2, 3], dtype="<f4").tobytes()
X_HEADER = len(json.dumps({"inputs": [x_input(12)]}).encode())
NOT_JSON = "bytes of the body (Inference-Header-Content-Length) are not a JSON document"
MALFORMED = {
    "header-length-beyond-the-body": (binary_body([x_input(12)], TWELVE, 10_000), "says the JSON header has 10000"),
    "header-length-not-a-number": (binary_body([x_input(12)], TWELVE, "twelve"), "header must be a non-negative integer, got 'twelve'"),
    # str.isdigit() takes '²' (latin-1 \xb2) and digit strings int() refuses past 4300 digits
    "header-length-superscript-two": ((binary_body([x_input(12)], TWELVE)[0],
                                       {"Inference-Header-Content-Length": b"\xb2"}),
                                      "header must be a non-negative integer, got '²'"),
    "header-length-of-5000-digits": (binary_body([x_input(12)], TWELVE, "1" * 5000),
                                     "Inference-Header-Content-Length header has 5000 digits; a length has at most 19"),
    "header-length-too-short": (binary_body([x_input(12)], TWELVE, X_HEADER - 3),
                                f"The first {X_HEADER - 3} {NOT_JSON}: unexpected end of data"),
    "header-length-too-long": (binary_body([x_input(12)], TWELVE, X_HEADER + 4),
                               f"The first {X_HEADER + 4} {NOT_JSON}"),
    "size-not-the-shape": (binary_body([x_input(8)], TWELVE[:8]), "8 bytes of FP32 data do not fit shape [1, 3]"),
    "size-past-the-data": (binary_body([x_input(16)], TWELVE), "'binary_data_size' is 16 bytes, but only 12"),
    "leftover-bytes": (binary_body([x_input(12)], TWELVE + b"\0\0\0\0"), "4 bytes of binary data after"),
    "negative-size": (binary_body([x_input(-12)], TWELVE), "must be a non-negative integer, got -12"),
    "fractional-size": (binary_body([x_input(12.0)], TWELVE), "must be a non-negative integer, got 12.0"),
    "text-size": (binary_body([x_input("12")], TWELVE), "must be a non-negative integer, got '12'"),
    "boolean-size": (binary_body([x_input(True)], TWELVE), "must be a non-negative integer, got True"),
    "size-and-data": (binary_body([x_input(12, data=[1, 2, 3])], TWELVE), "both 'data' and 'binary_data_size'"),
    "bytes-length-past-the-end": (binary_body([x_input(9, "BYTES", [1, 1])], struct.pack("<I", 9) + b"abcde"),
                                  "BYTES element 0 of 9 bytes runs past the end"),
    "bytes-elements-missing": (binary_body([x_input(5, "BYTES", [1, 2])], struct.pack("<I", 1) + b"a"),
                               "5 bytes cannot hold 2 BYTES elements"),
    "bytes-left-over": (binary_body([x_input(10, "BYTES", [1, 1])], struct.pack("<I", 1) + b"a" + b"zzzzz"),
                        "5 bytes are left after its 1 BYTES elements"),
    "bool-byte-not-0-or-1": (binary_body([x_input(3, "BOOL")], b"\x01\x00\x02"), "BOOL bytes must be 0 or 1"),
    "size-without-the-header": ((json.dumps({"inputs": [x_input(12)]}).encode() + TWELVE, {}),
                                "binary tensor data needs the Inference-Header-Content-Length header"),
}


@pytest.mark.parametrize(("body_and_headers", "fragment"), MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_binary_bodies_are_400_naming_the_problem(server: SigserveServer, body_and_headers: Any,
                                                            fragment: str) -> None:
    body, headers = body_and_headers
    answer = httpx.post(f"{server.url}/v2/models/unnamed/infer", content=body, headers=headers, timeout=30)
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"]
    if "header" not in fragment.lower() and "after" not in fragment:
        assert "'x'" in answer.json()["error"]
    assert "ValueError" not in answer.json()["error"]
    no_traceback(server)


def test_binary_without_the_header_says_what_is_missing(server: SigserveServer) -> None:
    body, _ = binary_body([x_input(12)], np.array([1, 2, 3], dtype="<f4").tobytes() + b"\xff")
    answer = httpx.post(f"{server.url}/v2/models/unnamed/infer", content=body, timeout=30)
    assert answer.status_code == 400 and "Inference-Header-Content-Length" in answer.json()["error"]


def test_the_row_limit_applies_to_binary_inputs(server: SigserveServer) -> None:
    body, headers = binary_body([x_input(1001 * 12, shape=[1001, 3])], bytes(1001 * 12))
    answer = httpx.post(f"{server.url}/v2/models/unnamed/infer", content=body, headers=headers, timeout=30)
    assert answer.status_code == 413 and "1001 rows" in answer.json()["error"]


GOOD_INPUT = {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
BAD_FIELDS = {
    "datatype-object": ({**GOOD_INPUT, "datatype": {}}, "unknown datatype {}; expected one of ['BOOL'"),
    "datatype-list": ({**GOOD_INPUT, "datatype": ["FP32"]}, "unknown datatype ['FP32']"),
    "shape-element-text": ({**GOOD_INPUT, "shape": [1, "3"]}, "'shape' must be a list of non-negative integers"),
    "shape-object": ({**GOOD_INPUT, "shape": {"a": 1}}, "'shape' must be a list of non-negative integers"),
    "name-object": ({**GOOD_INPUT, "name": {}}, "'name' must be a string"),
    "parameters-list": ({**GOOD_INPUT, "parameters": []}, "'parameters' must be an object"),
}


@pytest.mark.parametrize(("item", "fragment"), BAD_FIELDS.values(), ids=list(BAD_FIELDS))
def test_fields_of_the_wrong_json_type_are_400_not_500(server: SigserveServer, item: dict[str, Any], fragment: str) -> None:
    answer = v2_json(server, "unnamed", [item])
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"]
    no_traceback(server)


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"outputs": [{"name": "predict", "parameters": {"binary_data": "yes"}}]}, "'binary_data' must be true or false"),
    ({"outputs": [{"name": "predict", "parameters": []}]}, "'parameters' must be an object"),
    ({"parameters": {"binary_data_output": 1}}, "'parameters.binary_data_output' must be true or false"),
])
def test_output_flags_of_the_wrong_type_are_400(server: SigserveServer, extra: dict[str, Any], fragment: str) -> None:
    answer = v2_json(server, "unnamed", [GOOD_INPUT], **extra)
    assert answer.status_code == 400 and fragment in answer.json()["error"]


# --------------------------------------------------------------------------- values echoed in messages


LONG = "A" * 20_000
ECHOED = {
    "datatype": [{**GOOD_INPUT, "datatype": LONG}],
    "name-with-a-bad-shape": [{**GOOD_INPUT, "name": LONG, "shape": [1, -3]}],
    "shape": [{**GOOD_INPUT, "shape": [1, LONG]}],
    "duplicate-names": [{**GOOD_INPUT, "name": LONG}, {**GOOD_INPUT, "name": LONG}],
    "value": [{**GOOD_INPUT, "data": [1, 2, LONG]}],
}


@pytest.mark.parametrize("inputs", ECHOED.values(), ids=list(ECHOED))
def test_long_client_values_are_cut_where_messages_echo_them(server: SigserveServer,
                                                             inputs: list[dict[str, Any]]) -> None:
    answer = v2_json(server, "unnamed", inputs)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]
    assert len(message) < 1000 and "AAAA…" in message, message[:300]


def test_a_long_requested_output_name_is_cut_in_the_refusal(server: SigserveServer) -> None:
    answer = v2_json(server, "unnamed", [GOOD_INPUT], outputs=[{"name": LONG}])
    assert answer.status_code == 400 and "AAAA…" in answer.json()["error"]
    assert len(answer.json()["error"]) < 1000


# --------------------------------------------------------------------------- Python objects within --max-decoded-bytes


def binary_inputs(arrays: dict[str, tuple[str, np.ndarray]]) -> tuple[bytes, dict[str, str]]:
    """A binary body of these (datatype, array) inputs; BYTES arrays of empty elements."""
    raw = [struct.pack("<I", 0) * array.size if datatype == "BYTES"
           else array.astype(array.dtype.newbyteorder("<")).tobytes() for datatype, array in arrays.values()]
    return binary_body([{"name": name, "shape": list(array.shape), "datatype": datatype,
                         "parameters": {"binary_data_size": len(data)}}
                        for (name, (datatype, array)), data in zip(arrays.items(), raw)], b"".join(raw))


def post_binary(server: SigserveServer, model: str, arrays: dict[str, tuple[str, np.ndarray]]) -> httpx.Response:
    body, headers = binary_inputs(arrays)
    return httpx.post(f"{server.url}/v2/models/{model}/infer", content=body, headers=headers, timeout=60)


def test_a_column_fed_rows_of_lists_is_held_to_the_decoded_limit(server: SigserveServer) -> None:
    """600 UINT16 per row for a string column: 1.2 MB on the wire, about 40 MB of Python lists."""
    answer = post_binary(server, "pipeline", {"color": ("UINT16", np.full((1000, 600), 1000, dtype=np.uint16)),
                                              "size": ("FP64", np.ones(1000))})
    assert answer.status_code == 413, answer.text
    assert "V2 input 'color' would decode to about" in answer.json()["error"]
    assert f"limit of {MAX_DECODED / MiB:.1f} MiB" in answer.json()["error"]
    no_traceback(server)


def test_uint64_beyond_int64_is_held_to_the_decoded_limit(server: SigserveServer) -> None:
    """Past int64, UINT64 values become Python ints: 600 000 of them cost about 40 MB."""
    answer = post_binary(server, "dtypes", {"uint64": ("UINT64", np.full((1000, 600), 2**63 + 1, dtype=np.uint64))})
    assert answer.status_code == 413, answer.text
    assert "V2 input 'uint64' would decode to about" in answer.json()["error"]


def test_the_decoded_limit_counts_every_input_of_the_request(server: SigserveServer) -> None:
    """Two BYTES inputs of about 20 MB each as objects (bytes, then text): each under the 32 MiB
    limit, not both."""
    empty = np.zeros((1000, 150), dtype=object)
    alone = post_binary(server, "dtypes", {"bytes": ("BYTES", empty)})
    assert alone.status_code == 400 and "missing inputs" in alone.json()["error"], alone.text  # decoded, then enforced
    both = post_binary(server, "dtypes", {"bytes": ("BYTES", empty), "extra": ("BYTES", empty)})
    assert both.status_code == 413, both.text
    assert "The V2 request's inputs up to 'extra' would decode to about" in both.json()["error"]


def test_rows_of_lists_are_refused_before_they_are_made(model_paths: dict[str, Path]) -> None:
    """The reviewer's request: 4 900 UINT16 per row (9.8 MB) took about 190 MB decoded; refused
    at a 64 MiB limit, the decode allocates next to nothing. The same tensor as gRPC hands it to
    the core (a numpy array, no transport budget) is refused the same way."""
    schema = read_mlmodel(model_paths["pipeline"]).signature.inputs
    limits = DecodeLimits(max_decoded_bytes=64 * MiB)
    color = np.full((1000, 4900), 1000, dtype=np.uint16)
    body, headers = binary_inputs({"color": ("UINT16", color), "size": ("FP64", np.ones(1000))})
    tensors = [InputTensor("color", color.shape, "UINT16", color.ravel()),
               InputTensor("size", (1000,), "FP64", np.ones(1000))]
    for decode in (lambda: decode_v2(body, schema, limits, headers["Inference-Header-Content-Length"]),
                   lambda: decode_tensors(tensors, None, schema, limits)):
        tracemalloc.start()
        try:
            with pytest.raises(RequestLimitExceeded, match="V2 input 'color' would decode to about"):
                decode()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB allocated before the refusal"


def test_uint64_objects_are_refused_before_they_are_made() -> None:
    big = np.full(1_000_000, 2**63 + 1, dtype=np.uint64)
    tracemalloc.start()
    try:
        with pytest.raises(RequestLimitExceeded, match="V2 input 'x' would decode to about"):
            decode_tensors([InputTensor("x", big.shape, "UINT64", big)], None, None,
                           DecodeLimits(max_decoded_bytes=16 * MiB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB allocated before the refusal"
