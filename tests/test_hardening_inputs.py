"""Issue 11, point 10's input and error items, against real `sigserve serve` processes: UTF-8-only
JSON, FP16/FP32 ranges on KServe V2, strict datetime and base64 values (compared with MLflow's own
scoring function where sigserve differs on purpose), no absolute paths of this machine in error
answers, JSON error answers with a correct `Allow` on every route, and a bad request timeout
variable refused before anything loads."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import MlflowScorer, SigserveServer, run_cli, same_json, save_pyfunc

ROW = {"t": "2020-01-01T00:00:00", "y": "aGk=", "s": "x", "x": 1.5}
RAISES_MODULE = "sigtest_hardening_raises"
RAISES_CODE = '''
"""A custom loader_module model whose failures carry absolute paths of this machine."""

import os
import traceback


class Raises:
    def __init__(self, directory):
        self.directory = directory

    def predict(self, model_input, params=None):
        if int(model_input["x"].iloc[0]) == 1:  # a real FileNotFoundError, naming a real absolute path
            with open(os.path.join(self.directory, "artifacts", "missing.pkl"), "rb"):
                pass
        try:
            raise ValueError("inner failure")
        except ValueError:  # a message that is a whole traceback, with this file's absolute path
            raise RuntimeError(traceback.format_exc()) from None


def _load_pyfunc(path):
    return Raises(os.path.dirname(os.path.abspath(path)))
'''


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from models import pyfunc_models

    root = tmp_path_factory.mktemp("hardening_models")
    typed = Schema([ColSpec("datetime", "t"), ColSpec("binary", "y"), ColSpec("string", "s"), ColSpec("double", "x")])
    echo = save_pyfunc(root / "echo_typed", pyfunc_models.Echo(), ModelSignature(inputs=typed))
    code = root / f"{RAISES_MODULE}.py"
    code.write_text(textwrap.dedent(RAISES_CODE))
    data = root / "raises_data.json"
    data.write_text("{}")
    raises = root / "raises"
    mlflow.pyfunc.save_model(raises, loader_module=RAISES_MODULE, data_path=str(data), code_paths=[str(code)],
                             pip_requirements=["numpy"],
                             signature=ModelSignature(inputs=Schema([ColSpec("long", "x")])))
    return {"echo": echo, "raises": raises}


@pytest.fixture(scope="module")
def servers(model_paths: dict[str, Path]) -> Any:
    started = {name: SigserveServer(path).launch() for name, path in model_paths.items()}  # boot together
    try:
        yield {name: server.wait_ready() for name, server in started.items()}
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def echo(servers: dict[str, SigserveServer]) -> SigserveServer:
    return servers["echo"]


@pytest.fixture(scope="module")
def mlflow_echo(model_paths: dict[str, Path]) -> MlflowScorer:
    return MlflowScorer(model_paths["echo"])


def split(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(rows[0]), "data": [list(row.values()) for row in rows]}}


def error_message(response: httpx.Response) -> str:
    """The message of a JSON error answer in MLflow's shape (asserting the shape)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    document = response.json()
    assert set(document) == {"error_code", "message"}, document
    return document["message"]


def v2_error(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    document = response.json()
    assert set(document) == {"error"}, document
    return document["error"]


def v2_infer(server: SigserveServer, body: bytes | dict[str, Any], name: str = "echo_typed") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/v2/models/{name}/infer", content=content,
                      headers={"Content-Type": "application/json"}, timeout=30)


def v2_columns(**columns: tuple[str, list[Any]]) -> dict[str, Any]:
    return {"inputs": [{"name": name, "shape": [len(data)], "datatype": datatype, "data": data}
                       for name, (datatype, data) in columns.items()]}


def v2_rows(**overrides: tuple[str, list[Any]]) -> dict[str, Any]:
    """Two rows of the typed echo model's columns as V2 inputs, some columns replaced."""
    columns = {"t": ("BYTES", [ROW["t"]] * 2), "y": ("BYTES", [ROW["y"]] * 2), "s": ("BYTES", [ROW["s"]] * 2),
               "x": ("FP64", [ROW["x"]] * 2)}
    return v2_columns(**{**columns, **overrides})


# --------------------------------------------------------------------------- 1. UTF-8 only

@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_json_in_another_unicode_encoding_is_refused_naming_it(echo, mlflow_echo, encoding: str) -> None:
    """MLflow's `json.loads(bytes)` reads UTF-16/32 bodies; the README says UTF-8 only, and a body
    in another encoding is refused on both protocols, naming it. Differs from MLflow on purpose."""
    body = json.dumps(split(ROW)).encode(encoding)
    response = echo.post(body)
    assert response.status_code == 400, response.text
    assert encoding.upper() in error_message(response) and "UTF-8" in error_message(response)
    assert mlflow_echo.score(body)[0] == 200, "MLflow refuses it now: move this out of the differences"

    answer = v2_infer(echo, json.dumps(v2_rows()).encode(encoding))
    assert answer.status_code == 400 and encoding.upper() in v2_error(answer), answer.text


def test_a_utf8_byte_order_mark_is_still_accepted(echo) -> None:
    """RFC 8259 lets a parser ignore it, and sigserve did before."""
    response = echo.post(json.dumps(split(ROW)).encode("utf-8-sig"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("charset", ["utf-16", "UTF-32", "latin-1"])
def test_a_non_utf8_charset_parameter_is_415_naming_it(echo, charset: str) -> None:
    response = echo.post(json.dumps(split(ROW)), f"application/json; charset={charset}")
    assert response.status_code == 415, response.text
    assert charset.lower() in error_message(response)


# --------------------------------------------------------------------------- 2. FP16 / FP32 ranges on V2

@pytest.mark.parametrize(("datatype", "value"), [
    ("FP16", 70000), ("FP16", 65504.5), ("FP16", -1e5), ("FP32", 3.5e38), ("FP32", -1e39),
])
def test_v2_float_values_beyond_their_datatype_are_refused_as_int8_300_is(echo, datatype: str, value: Any) -> None:
    answer = v2_infer(echo, v2_rows(x=(datatype, [1.0, value])))
    assert answer.status_code == 400, answer.text
    assert f"value {value!r} is not a {datatype}" in v2_error(answer) and "out of range" in v2_error(answer)

    int8 = v2_infer(echo, v2_rows(x=("INT8", [1, 300])))  # the message it matches
    assert int8.status_code == 400 and "value 300 is not a INT8" in v2_error(int8)


@pytest.mark.parametrize(("datatype", "value"), [("FP16", 65504), ("FP16", -65504.0), ("FP32", 3.4028235e38)])
def test_v2_the_largest_finite_values_fit(echo, datatype: str, value: float) -> None:
    answer = v2_infer(echo, v2_rows(x=(datatype, [1.0, value])))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"], answer.text


@pytest.mark.parametrize("datatype", ["FP16", "FP32"])
def test_v2_explicit_infinity_and_nan_are_left_to_enforcement_as_before(echo, datatype: str) -> None:
    """A double column takes them (NaN is a missing value), as it did."""
    body = json.dumps(v2_rows(x=(datatype, [1.0, 2.0]))).replace("[1.0, 2.0]", "[Infinity, NaN]").encode()
    answer = v2_infer(echo, body)
    assert answer.status_code == 200, answer.text


# --------------------------------------------------------------------------- 3. datetime and base64 values

MLFLOW_PARSES_IT = "MLflow's pd.to_datetime reads it"
STRICT_CASES = {
    # id: (column, value, why MLflow differs)
    "datetime_empty_string": ("t", "", f"{MLFLOW_PARSES_IT} as a missing datetime (NaT)"),
    "datetime_NaT_string": ("t", "NaT", f"{MLFLOW_PARSES_IT} as a missing datetime"),
    "datetime_nan_string": ("t", "nan", f"{MLFLOW_PARSES_IT} as a missing datetime"),
    "datetime_leading_space": ("t", " 2020-01-01", f"{MLFLOW_PARSES_IT}, skipping the blank; ISO-8601 has none"),
    "datetime_leading_tab": ("t", "\t2020-01-01", f"{MLFLOW_PARSES_IT}, skipping the blank; ISO-8601 has none"),
    "binary_inner_space": ("y", "YW Jj", "MLflow's base64.decodebytes drops the space, maybe a '+' a form decoder ate"),
    "binary_inner_tab": ("y", "YW\tJj", "MLflow's base64.decodebytes drops the tab"),
}


@pytest.mark.parametrize("case", list(STRICT_CASES), ids=list(STRICT_CASES))
def test_loose_datetimes_and_base64_are_refused_naming_column_row_and_value(echo, mlflow_echo, case: str) -> None:
    """Each is a difference from MLflow on purpose (README, "Where sigserve differs"): MLflow answers
    200, sigserve 400 naming the column, the row and the value, on every JSON format and on V2."""
    column, value, why = STRICT_CASES[case]
    for body in (split(ROW, {**ROW, column: value}), {"dataframe_records": [ROW, {**ROW, column: value}]}):
        response = echo.post(body)
        assert response.status_code == 400, (why, response.text)
        assert f"Column {column!r}, row 1: value {value!r} cannot be converted to" in error_message(response)
    alone = split({**ROW, column: value})  # alone: pandas infers no format from another row
    assert echo.post(alone).status_code == 400
    assert mlflow_echo.score(json.dumps(alone))[0] == 200, f"MLflow refuses it now ({why}): update README"

    v2 = v2_infer(echo, v2_rows(**{column: ("BYTES", [ROW[column], value])}))
    assert v2.status_code == 400 and f"Column {column!r}, row 1: value {value!r}" in v2_error(v2), v2.text


@pytest.mark.parametrize(("column", "value"), [
    ("t", None), ("y", "aGVs\nbG8=\n"), ("y", "aGVs\r\nbG8=\r\n"), ("y", " aGk= "), ("y", ""),
])
def test_null_datetimes_and_line_broken_base64_still_agree_with_mlflow(echo, mlflow_echo, column: str,
                                                                       value: Any) -> None:
    """A JSON null is the missing datetime; MIME line breaks (MLflow's own `encodebytes`) and
    surrounding blanks are still fine in base64."""
    body = split(ROW, {**ROW, column: value})
    response = echo.post(body)
    status, expected = mlflow_echo.score(json.dumps(body))
    assert response.status_code == status == 200, response.text
    assert same_json(response.json()["predictions"], expected["predictions"])


def test_csv_datetime_cells_follow_the_json_rule(echo) -> None:
    """An empty CSV cell is a null (missing), as before; text pandas would skip or call NaT is refused."""
    ok = echo.post(b"t,y,s,x\n2020-01-01T00:00:00,aGk=,x,1\n,aGk=,x,2\n", "text/csv")
    assert ok.status_code == 200, ok.text
    assert ok.json()["predictions"]["input"]["values"][1][0] is None
    for cell in ("NaT", " 2020-01-01"):
        response = echo.post(f"t,y,s,x\n2020-01-01,aGk=,x,1\n{cell},aGk=,x,2\n".encode(), "text/csv")
        assert response.status_code == 400, response.text
        assert f"Column 't', row 1: value {cell!r}" in error_message(response)


def test_datetime_params_follow_the_column_rule(tmp_path_factory) -> None:
    """An empty string, "NaT" and a leading blank are invalid parameters, not a missing or skipped value."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    from models import pyfunc_models

    signature = ModelSignature(inputs=Schema([ColSpec("double", "x")]),
                               params=ParamSchema([ParamSpec("when", "datetime", "2024-01-01T00:00:00")]))
    path = save_pyfunc(tmp_path_factory.mktemp("params") / "echo_when", pyfunc_models.Echo(), signature)
    with SigserveServer(path) as server:
        for when, status in (("", 400), ("NaT", 400), (" 2021-01-01", 400), ("2021-01-01", 200)):
            response = server.post({"inputs": {"x": [1.0]}, "params": {"when": when}})
            assert response.status_code == status, (when, response.text)
            if status == 400:
                assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
                assert repr(when) in response.json()["message"]


# --------------------------------------------------------------------------- 4. no absolute paths in answers

@pytest.mark.parametrize("kind", ["file_not_found", "traceback"])
def test_model_exceptions_reach_the_client_without_this_machines_paths(servers, model_paths, kind: str) -> None:
    server = servers["raises"]
    x = 1 if kind == "file_not_found" else 2
    root = str(model_paths["raises"].parent)  # every absolute path the model names is under it
    shown = "missing.pkl" if kind == "file_not_found" else f"{RAISES_MODULE}.py"
    inside = "data/artifacts/missing.pkl" if kind == "file_not_found" else f"code/{RAISES_MODULE}.py"
    full = model_paths["raises"] / inside

    answers = {
        "invocations": server.post(split({"x": x})),
        "v2": httpx.post(f"{server.url}/v2/models/raises/infer", json=v2_columns(x=("INT64", [x])), timeout=30),
    }
    for route, response in answers.items():
        assert response.status_code == 400, response.text
        message = error_message(response) if route == "invocations" else v2_error(response)
        assert message.startswith("The model failed to predict on this input: ")
        assert shown in message, message  # the basename stays, for the operator reading it
        assert root not in message and "/tmp" not in message, message
        assert "<path>/" + shown in message, message
    assert str(full) in server.log()  # the log keeps the whole message
    if kind == "file_not_found":
        assert "FileNotFoundError" in answers["invocations"].text


# --------------------------------------------------------------------------- 5. every error answer is JSON

GET_ROUTES = ["/ping", "/health", "/version", "/metadata", "/openapi.json", "/docs", "/metrics", "/v2/health/live",
              "/v2/health/ready", "/v2", "/v2/models/echo_typed", "/v2/models/echo_typed/ready",
              "/v2/models/echo_typed/versions/local", "/v2/models/echo_typed/versions/local/ready"]
POST_ROUTES = ["/invocations", "/v2/models/echo_typed/infer", "/v2/models/echo_typed/versions/local/infer"]


def _is_v2(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def assert_protocol_error(response: httpx.Response, path: str, status: int) -> str:
    assert response.status_code == status, (path, response.status_code, response.text)
    return v2_error(response) if _is_v2(path) else error_message(response)


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", POST_ROUTES)
def test_scoring_routes_answer_other_methods_405_json_with_allow_post(echo, path: str, method: str) -> None:
    response = httpx.request(method, echo.url + path, timeout=10)
    message = assert_protocol_error(response, path, 405)
    assert response.headers["allow"] == "POST"
    assert method in message and "POST" in message


@pytest.mark.parametrize("path", POST_ROUTES)
def test_head_on_scoring_routes_is_405_with_allow_post(echo, path: str) -> None:
    response = httpx.head(echo.url + path, timeout=10)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("method", ["POST", "OPTIONS"])
@pytest.mark.parametrize("path", GET_ROUTES)
def test_read_routes_answer_other_methods_405_json_with_allow_get(echo, path: str, method: str) -> None:
    response = httpx.request(method, echo.url + path, content=b"{}", timeout=10)
    message = assert_protocol_error(response, path, 405)
    assert {method.strip() for method in response.headers["allow"].split(",")} == {"GET", "HEAD"}
    assert method in message


@pytest.mark.parametrize("path", ["/nope", "/invocations/echo/extra", "/api/2.0/mlflow/x", "/v2/models/echo_typed/nope",
                                  "/v2/models/echo_typed/config/extra", "/v2/nope"])
def test_unknown_routes_are_404_json_in_their_protocol_shape(echo, path: str) -> None:
    response = httpx.get(echo.url + path, timeout=10)
    message = assert_protocol_error(response, path, 404)
    assert path in message
    if not _is_v2(path):
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_malformed_http_is_a_json_400(echo) -> None:
    """Below the ASGI app: uvicorn's own answer to bytes that are not HTTP."""
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in head.lower(), answer
    assert json.loads(body)["error_code"] == "BAD_REQUEST"


# --------------------------------------------------------------------------- 6. the request timeout variable

@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf", "nan", "10s"])
def test_a_bad_request_timeout_variable_is_a_one_line_usage_error_before_loading(value: str, monkeypatch) -> None:
    """The model URI does not exist: had anything loaded first, that would be the error."""
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", value)
    result = run_cli("serve", "-m", "/nonexistent/model")
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr and "nonexistent" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("sigserve: error: MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT must"), stderr
    assert repr(value) in last or value in last


def test_the_timeout_flag_is_checked_the_same_way(monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", raising=False)
    result = run_cli("serve", "-m", "/nonexistent/model", "-t", "inf")
    assert result.returncode == 2 and "--timeout must be positive" in result.stderr.decode(), result.stderr
