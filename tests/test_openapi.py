"""The OpenAPI document: valid OpenAPI, built from the real signature, and in agreement with the
server, so a body the server scores validates against the request schema and a refused one does not."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from helpers import SigserveServer
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from sigserve.codecs.protocol import Incoming
from sigserve.codecs.v2.codec import V2
from sigserve.errors import SigserveError
from sigserve.loaders.loader import load_model
from sigserve.model.mlmodel import read_mlmodel
from sigserve.scoring import Scorer
from sigserve.server.openapi import docs_html, many_models_document, openapi_document

DOC_URI = "urn:sigserve:openapi"
INVOCATIONS = ("paths", "/invocations", "post")
REQUEST = (*INVOCATIONS, "requestBody", "content", "application/json", "schema")
RESPONSE = (*INVOCATIONS, "responses", "200", "content", "application/json", "schema")
IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
MODELS = [
    "sklearn_skops", "sklearn_tensor", "echo", "echo_optional", "echo_unnamed", "echo_complex",
    "echo_tensor", "echo_tensor_2d", "echo_named_tensors", "echo_params", "echo_nosig", "custom_loader",
]


def document(models: dict[str, Path], key: str, **names: str) -> dict[str, Any]:
    return openapi_document(read_mlmodel(models[key]), **names)


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["components"]["schemas"]


def validator(doc: dict[str, Any], path: tuple[str, ...]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for the schema at `path`, with the document's $refs."""
    pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in path)
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry = Registry().with_resource(DOC_URI, resource)
    return Draft202012Validator({"$ref": f"{DOC_URI}#/{pointer}"}, registry=registry)


def record_properties(doc: dict[str, Any]) -> dict[str, Any]:
    return schemas(doc)["DataframeRecords"]["items"]["properties"]


@pytest.fixture(scope="module")
def scorer(models: dict[str, Path]) -> Callable[[str], Scorer]:
    """Each model loaded once, in this process: the server's own request path, without HTTP."""
    loaded: dict[str, Scorer] = {}

    def get(key: str) -> Scorer:
        if key not in loaded:
            loaded[key] = Scorer(load_model(models[key]))
        return loaded[key]

    return get


@pytest.mark.parametrize("key", MODELS)
def test_document_is_valid_openapi_with_valid_schemas(models, key):
    doc = document(models, key)
    validate(doc)
    assert json.loads(json.dumps(doc)) == doc
    for schema in schemas(doc).values():
        Draft202012Validator.check_schema(schema)


def test_info_names_the_model_and_falls_back_to_the_directory(models):
    info = document(models, "sklearn_skops", name="iris", version="7", alias="champion")["info"]
    assert (info["title"], info["version"]) == ("iris", "7")
    assert "@champion" in info["description"]
    fallback = document(models, "sklearn_skops")["info"]
    assert (fallback["title"], fallback["version"]) == ("sklearn_skops", "local")
    assert "@" not in fallback["description"]


def test_documents_share_no_state(models):
    first = document(models, "echo")
    schemas(first)["Error"]["required"].clear()
    schemas(first)["DataframeRecords"]["items"]["properties"].clear()
    second = document(models, "echo")
    assert schemas(second)["Error"]["required"] == ["error_code", "message"]
    assert "i" in schemas(second)["Inputs"]["anyOf"][0]["properties"]


def test_every_column_type_maps_to_its_json_type(models):
    props = record_properties(document(models, "echo"))
    assert list(props) == ["i", "l", "f", "d", "s", "b", "t", "y"]
    assert (props["i"]["type"], props["i"]["format"]) == ("integer", "int32")
    assert props["i"]["maximum"] == 2**31 - 1
    assert (props["l"]["type"], props["l"]["format"]) == ("integer", "int64")
    assert (props["f"]["type"], props["f"]["format"]) == (["number", "null"], "float")
    assert (props["d"]["type"], props["d"]["format"]) == (["number", "null"], "double")
    assert props["s"]["type"] == ["string", "null"]
    assert props["b"]["type"] == ["boolean", "null"]
    assert (props["t"]["type"], props["t"]["format"]) == (["string", "null"], "date-time")
    assert (props["y"]["type"], props["y"]["contentEncoding"]) == ("string", "base64")


def test_named_columns_appear_in_every_format(models):
    doc = document(models, "sklearn_skops")
    split = schemas(doc)["DataframeSplit"]
    assert split["required"] == ["columns", "data"]
    assert split["properties"]["columns"]["items"]["enum"] == IRIS
    assert split["properties"]["data"]["items"]["items"]["format"] == "double"
    records = schemas(doc)["DataframeRecords"]["items"]
    assert list(records["properties"]) == IRIS and records["required"] == IRIS
    by_column = schemas(doc)["Inputs"]["anyOf"][0]
    assert by_column["properties"][IRIS[0]]["anyOf"][0]["type"] == "array"
    content = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert set(content) >= {"application/json", "text/csv", "application/vnd.apache.parquet",
                            "application/json; format=pandas-split"}
    assert IRIS[0] in content["text/csv"]["schema"]["description"]
    assert content["application/vnd.apache.parquet"]["schema"] == {"type": "string", "format": "binary"}
    branches = schemas(doc)["InvocationRequest"]["oneOf"]
    assert [b["title"] for b in branches] == ["dataframe_split", "dataframe_records", "instances", "inputs"]


def test_only_required_columns_are_required(models):
    records = schemas(document(models, "echo_optional"))["DataframeRecords"]["items"]
    assert list(records["properties"]) == ["x", "k"] and records["required"] == ["x"]


def test_complex_column_types(models):
    props = record_properties(document(models, "echo_complex"))
    assert props["vec"]["type"] == "array" and props["vec"]["items"]["format"] == "double"
    obj = props["obj"]
    assert obj["required"] == ["a"] and obj["additionalProperties"] is False
    assert obj["properties"]["a"]["format"] == "int64"
    assert obj["properties"]["b"]["type"] == ["string", "null"]
    assert props["counts"]["type"] == "object"
    assert props["counts"]["additionalProperties"]["format"] == "int64"
    assert props["anything"] == {}


def test_tensor_shapes_become_nested_arrays(models):
    cube = schemas(document(models, "echo_tensor"))["Inputs"]
    assert cube["type"] == "array" and "minItems" not in cube
    assert (cube["items"]["minItems"], cube["items"]["maxItems"]) == (2, 2)
    assert (cube["items"]["items"]["minItems"], cube["items"]["items"]["maxItems"]) == (2, 2)
    assert cube["items"]["items"]["items"] == {"type": "number", "format": "float"}
    assert "DataframeSplit" not in schemas(document(models, "echo_tensor"))
    grid = schemas(document(models, "echo_tensor_2d"))
    assert grid["Inputs"]["items"]["maxItems"] == 3 and grid["Inputs"]["items"]["items"]["format"] == "int64"
    assert grid["DataframeSplit"]["properties"]["data"]["items"]["maxItems"] == 3
    named = schemas(document(models, "echo_named_tensors"))
    assert named["Inputs"]["required"] == ["a", "b"]
    assert named["Inputs"]["properties"]["a"]["items"]["maxItems"] == 2
    assert named["Inputs"]["properties"]["b"]["items"]["format"] == "int32"
    assert named["Instances"]["items"]["properties"]["b"]["format"] == "int32"


def test_params_carry_types_and_defaults(models):
    params = schemas(document(models, "echo_params"))["Params"]["properties"]
    assert {name: p["default"] for name, p in params.items()} == {
        "k": 5, "temperature": 0.5, "flag": False, "name": "x", "ids": [1, 2], "when": "2024-01-01T00:00:00",
    }
    assert params["k"]["type"] == "integer" and params["temperature"]["type"] == "number"
    assert params["ids"]["type"] == "array" and params["ids"]["items"]["format"] == "int64"
    scale = schemas(document(models, "custom_loader"))["Params"]["properties"]["scale"]
    assert (scale["type"], scale["default"]) == ("number", 1.0)


def test_no_signature_gives_generic_schemas(models):
    doc = document(models, "echo_nosig")
    check = validator(doc, REQUEST)
    assert check.is_valid({"inputs": {"anything": [1, "a", None]}})
    assert check.is_valid({"dataframe_records": [{"x": 1}], "params": {"k": 1}})
    assert not check.is_valid({"data": [[1]]})
    assert "properties" not in schemas(doc)["Params"]


def test_serving_example_is_the_documented_example_and_validates(models, scorer):
    doc = document(models, "sklearn_skops")
    media = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]
    example_file = models["sklearn_skops"] / "serving_input_example.json"
    assert media["example"] == json.loads(example_file.read_text())
    assert validator(doc, REQUEST).is_valid(media["example"])
    assert scorer("sklearn_skops").score("application/json", example_file.read_bytes()).body
    without = document(models, "echo")["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert "example" not in without["application/json"]


ECHO_NULLS = dict.fromkeys("fdsbt")
ECHO_ROW = {"i": 1, "l": 2, "f": 1.5, "d": 2.5, "s": "a", "b": True, "t": "2020-01-01T00:00:00", "y": "YWI="}
COMPLEX_ROW = {"vec": [1.0, 2], "obj": {"a": 1}, "counts": {"x": 1}, "anything": None}
ACCEPTED = [
    ("sklearn_skops", {"dataframe_split": {"columns": IRIS[::-1], "data": [[1, 2, 3, 4.5]], "index": [7]}}),
    ("sklearn_skops", {"dataframe_records": [dict.fromkeys(IRIS, 1.5)]}),
    ("sklearn_skops", {"instances": [dict.fromkeys(IRIS, 1.5)]}),
    ("sklearn_skops", {"inputs": {name: [1.5, 2.5] for name in IRIS}}),
    ("sklearn_skops", {"inputs": dict.fromkeys(IRIS, 1.5)}),
    ("echo", {"dataframe_records": [ECHO_ROW, {**ECHO_ROW, **ECHO_NULLS}]}),
    ("echo", {"inputs": {k: [v] for k, v in ECHO_ROW.items()}}),
    ("echo_optional", {"dataframe_records": [{"x": 1.0}, {"x": 2.0}]}),
    ("echo_optional", {"dataframe_split": {"columns": ["k", "x"], "data": [[3, 1.0]]}}),
    ("echo_unnamed", {"dataframe_records": [{"a": 1.0, "b": 2}]}),
    ("echo_unnamed", {"dataframe_split": {"data": [[1.0, 2]]}}),
    ("echo_unnamed", {"inputs": [[1.0, 2]]}),
    ("echo_complex", {"dataframe_records": [COMPLEX_ROW, {**COMPLEX_ROW, "obj": {"a": 1, "b": None}}]}),
    ("echo_complex", {"inputs": {**COMPLEX_ROW, "anything": {"k": [1]}}}),
    ("echo_tensor", {"inputs": [[[1, 2], [3, 4.5]]]}),
    ("echo_tensor", {"instances": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]}),
    ("echo_tensor_2d", {"dataframe_split": {"data": [[1, 2, 3]]}}),
    ("echo_tensor_2d", {"instances": [[1, 2, 3]]}),
    ("echo_named_tensors", {"inputs": {"a": [[1, 2]], "b": [3]}}),
    ("echo_named_tensors", {"instances": [{"a": [1, 2], "b": 3}]}),
    ("echo_named_tensors", {"dataframe_split": {"columns": ["a", "b"], "data": [[[1, 2], 3]]}}),
    ("echo_params", {"inputs": {"x": [1.0]}, "params": {"k": 7, "ids": [3], "when": "2020-01-02"}}),
    ("echo_nosig", {"inputs": 5}),
]
REFUSED = [
    ("sklearn_skops", {"dataframe_records": [{**dict.fromkeys(IRIS, 1.5), IRIS[1]: "wide"}]}),
    ("sklearn_skops", {"dataframe_records": [dict.fromkeys(IRIS[:3], 1.5)]}),
    ("sklearn_skops", {"dataframe_split": {"columns": IRIS[:3], "data": [[1, 2, 3]]}}),
    ("sklearn_skops", {"dataframe_split": {"columns": IRIS, "data": [[1, 2, 3, 4]], "extra": 1}}),
    ("sklearn_skops", {"dataframe_records": [dict.fromkeys(IRIS, 1.5)], "inputs": dict.fromkeys(IRIS, 1.5)}),
    ("sklearn_skops", {"data": [[1, 2, 3, 4]]}),
    ("echo", {"dataframe_records": [{**ECHO_ROW, "i": 1.5}]}),
    ("echo", {"dataframe_records": [{**ECHO_ROW, "i": 3_000_000_000}]}),
    ("echo", {"dataframe_records": [{**ECHO_ROW, "l": None}]}),
    ("echo", {"dataframe_records": [{**ECHO_ROW, "b": "yes"}]}),
    ("echo", {"dataframe_records": [{**ECHO_ROW, "y": 5}]}),
    ("echo_optional", {"dataframe_records": [{"x": 1.0, "k": None}]}),
    ("echo_complex", {"dataframe_records": [{**COMPLEX_ROW, "obj": {"a": 1, "c": 2}}]}),
    ("echo_complex", {"dataframe_records": [{**COMPLEX_ROW, "vec": None}]}),
    ("echo_complex", {"dataframe_records": [{**COMPLEX_ROW, "counts": {"x": "many"}}]}),
    ("echo_tensor", {"inputs": [[[1, 2]]]}),
    ("echo_tensor_2d", {"instances": [[1, 2]]}),
    ("echo_params", {"dataframe_records": [{"x": 1.0}], "params": {"k": "seven"}}),
    ("echo_params", {"dataframe_records": [{"x": 1.0}], "params": {"ids": 3}}),
]


@pytest.mark.parametrize(("key", "body"), ACCEPTED)
def test_bodies_the_server_scores_validate(models, scorer, key, body):
    scorer(key).score("application/json", json.dumps(body).encode())
    errors = [error.message for error in validator(document(models, key), REQUEST).iter_errors(body)]
    assert errors == []


@pytest.mark.parametrize(("key", "body"), REFUSED)
def test_bodies_the_server_refuses_do_not_validate(models, scorer, key, body):
    with pytest.raises(SigserveError):
        scorer(key).score("application/json", json.dumps(body).encode())
    assert not validator(document(models, key), REQUEST).is_valid(body)


@pytest.mark.parametrize("key", ["sklearn_skops", "sklearn_tensor"])
def test_predictions_match_the_documented_response(models, scorer, key):
    doc = document(models, key)
    predictions = schemas(doc)["Predictions"]["properties"]["predictions"]
    assert predictions["type"] == "array" and predictions["items"]["format"] == "int64"
    row = [5.1, 3.5, 1.4, 0.2]
    body = {"inputs": [row]} if key == "sklearn_tensor" else {"dataframe_records": [dict(zip(IRIS, row))]}
    response = json.loads(scorer(key).score("application/json", json.dumps(body).encode()).body)
    assert validator(doc, RESPONSE).is_valid(response)
    assert not validator(doc, RESPONSE).is_valid({"predictions": ["setosa"]})


def test_errors_and_service_endpoints_are_documented(models):
    doc = document(models, "echo")
    responses = doc["paths"]["/invocations"]["post"]["responses"]
    error = validator(doc, ("components", "schemas", "Error"))
    codes = {"400": "BAD_REQUEST", "413": "REQUEST_LIMIT_EXCEEDED", "415": "UNSUPPORTED_MEDIA_TYPE",
             "503": "TEMPORARILY_UNAVAILABLE", "504": "TIMEOUT"}
    for status, code in codes.items():
        media = responses[status]["content"]["application/json"]
        assert media["schema"] == {"$ref": "#/components/schemas/Error"}
        assert error.is_valid(media["examples"][code]["value"])
    assert error.is_valid({"error_code": "BAD_REQUEST", "message": "Model is missing inputs ['x']."})
    assert not error.is_valid({"message": "no code"})
    for path in ("/ping", "/health", "/version", "/metadata", "/v2/health/live", "/v2/health/ready",
                 "/metrics", "/openapi.json", "/docs"):
        assert "200" in doc["paths"][path]["get"]["responses"]
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    ready = ("paths", "/v2/health/ready", "get", "responses", "200", "content", "application/json", "schema")
    assert validator(doc, ready).is_valid({"ready": True})
    metadata = ("paths", "/metadata", "get", "responses", "200", "content", "application/json")
    example = doc["paths"]["/metadata"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert (example["name"], example["loader_module"]) == ("echo", "mlflow.pyfunc.model")
    assert validator(doc, (*metadata, "schema")).is_valid(example)


def test_docs_page_loads_swagger_ui_for_the_document():
    page = docs_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "swagger-ui-bundle.js" in page and "swagger-ui.css" in page
    assert 'url: "/openapi.json"' in page
    assert '<noscript>' in page and 'href="/openapi.json"' in page
    odd = docs_html("/x?a=1&b=</script>", title="<model>")
    assert "<title>&lt;model&gt;</title>" in odd
    assert "</script>\"" not in odd and 'href="/x?a=1&amp;b=&lt;/script&gt;"' in odd


# --------------------------------------------------------------------------- the Open Inference Protocol

V2_PATHS = {
    "/v2": "get", "/v2/repository/index": "post", "/v2/models/stats": "get",
    "/v2/models/{model_name}": "get", "/v2/models/{model_name}/ready": "get",
    "/v2/models/{model_name}/infer": "post", "/v2/models/{model_name}/config": "get",
    "/v2/models/{model_name}/stats": "get",
    "/v2/models/{model_name}/versions/{model_version}": "get",
    "/v2/models/{model_name}/versions/{model_version}/ready": "get",
    "/v2/models/{model_name}/versions/{model_version}/infer": "post",
    "/v2/models/{model_name}/versions/{model_version}/config": "get",
    "/v2/models/{model_name}/versions/{model_version}/stats": "get",
}
V2_INFER = ("paths", "/v2/models/{model_name}/infer", "post")
V2_REQUEST = (*V2_INFER, "requestBody", "content", "application/json", "schema")
V2_RESPONSE = (*V2_INFER, "responses", "200", "content", "application/json", "schema")
IRIS_V2 = {"inputs": [{"name": name, "shape": [2], "datatype": "FP64", "data": [5.1, 6.2]} for name in IRIS]}


def test_no_json_schema_dialect_other_than_openapis_own(models):
    """Swagger UI 5 shows a warning, and reads no schema as JSON Schema, when `jsonSchemaDialect`
    is not OpenAPI 3.1's base dialect; left out, it is that dialect."""
    doc = document(models, "sklearn_skops")
    assert doc.get("jsonSchemaDialect", "https://spec.openapis.org/oas/3.1/dialect/base") == (
        "https://spec.openapis.org/oas/3.1/dialect/base")


def test_v2_routes_are_documented_with_their_schemas(models, scorer):
    doc = document(models, "sklearn_skops")
    for path, method in V2_PATHS.items():
        operation = doc["paths"][path][method]
        assert operation["tags"] == ["v2"] and operation["operationId"].startswith("v2"), path
        if "{model_name}" in path:
            name = next(p for p in operation["parameters"] if p["name"] == "model_name")
            assert name["schema"]["enum"] == ["sklearn_skops"]
        if path != "/v2":  # errors in the protocol's shape
            errors = [r for status, r in operation["responses"].items() if status.startswith("4")]
            assert all(r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/V2Error"}
                       for r in errors), path
    infer = doc["paths"]["/v2/models/{model_name}/infer"]["post"]
    assert "Inference-Header-Content-Length" in infer["description"]
    assert "binary_data_size" in infer["description"]
    assert "application/octet-stream" in infer["requestBody"]["content"]
    assert "Inference-Header-Content-Length" in [p["name"] for p in infer["parameters"]]
    # A request the server scores validates; its answer validates against the response schema.
    request = validator(doc, V2_REQUEST)
    assert request.is_valid(IRIS_V2)
    assert not request.is_valid({"inputs": [{"name": "x", "data": [1]}]})  # no shape, no datatype
    assert not request.is_valid({"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]})
    served = scorer("sklearn_skops")
    incoming = Incoming(json.dumps(IRIS_V2).encode(), "application/json", "sklearn_skops", "local")
    answer = json.loads(served.run(served.prepare_request(V2, incoming)).body)
    assert validator(doc, V2_RESPONSE).is_valid(answer), answer
    assert not validator(doc, V2_RESPONSE).is_valid({"outputs": []})
    error = validator(doc, ("components", "schemas", "V2Error"))
    assert error.is_valid({"error": "Model 'x' is not served here"}) and not error.is_valid({"message": "x"})


def test_many_models_document_names_every_model_on_v2_paths(models):
    documents = [(key, document(models, key, name=key)) for key in ("sklearn_skops", "echo")]
    doc = many_models_document(documents)
    validate(doc)
    for path in V2_PATHS:
        if "{model_name}" in path:
            operation = next(iter(doc["paths"][path].values()))
            name = next(p for p in operation["parameters"] if p["name"] == "model_name")
            assert name["schema"]["enum"] == ["sklearn_skops", "echo"]
    assert not any(component.split(".", 1)[-1].startswith("V2") and "." in component
                   for component in schemas(doc)), "V2 schemas are shared, not copied per model"


# --------------------------------------------------------------------------- the document and the server agree

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


@pytest.fixture(scope="module")
def server(models: dict[str, Path]):
    with SigserveServer(models["sklearn_skops"], "-m", str(models["echo"])) as running:
        yield running


def _concrete(path: str) -> str:
    return path.replace("{model_name}", "sklearn_skops").replace("{model_version}", "local").replace(
        "{name}", "echo")


def test_every_documented_route_answers_and_other_methods_get_405_with_its_allow(server):
    """Each path of the served document, V2 and Triton's `…/config`/`…/stats` included: its
    documented methods are routed (no 404/405), every other one is a 405 in the protocol's JSON
    error shape whose `Allow` lists exactly the documented methods (GET's HEAD included)."""
    doc = httpx.get(server.url + "/openapi.json", timeout=10).json()
    validate(doc)
    assert set(V2_PATHS) <= set(doc["paths"])
    for path, item in doc["paths"].items():
        url = server.url + _concrete(path)
        documented = {method.upper() for method in item}
        for method in documented:
            response = httpx.request(method, url, json={}, timeout=30)
            assert response.status_code not in (404, 405), (method, path, response.status_code, response.text)
        allowed = documented | ({"HEAD"} if "GET" in documented else set())
        for method in set(METHODS) - documented:
            response = httpx.request(method, url, content=b"{}", timeout=30)
            assert response.status_code == 405, (method, path, response.status_code)
            assert response.headers["content-type"].startswith("application/json")
            body = response.json()
            if path.startswith("/v2"):
                assert set(body) == {"error"} and method in body["error"], (path, body)
            else:
                assert body["error_code"] == "BAD_REQUEST" and method in body["message"], (path, body)
            assert {m.strip() for m in response.headers["allow"].split(",")} == allowed, (method, path)


# --------------------------------------------------------------------------- the docs page, offline


def test_docs_page_loads_only_assets_sigserve_serves(server):
    page = httpx.get(server.url + "/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text and "//cdn" not in page.text
    assets = re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', page.text)
    assert {urlsplit(asset).path.rsplit("/", 1)[1] for asset in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    assert "validatorUrl: null" in page.text  # no badge fetched from the online validator
    content_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for asset in assets:
        response = httpx.get(server.url + html.unescape(asset), timeout=10)
        assert response.status_code == 200, asset
        suffix = Path(urlsplit(asset).path).suffix
        assert response.headers["content-type"].startswith(content_types[suffix]), asset
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "max-age=" in response.headers["cache-control"]
        assert len(response.content) > 100
        again = httpx.get(server.url + html.unescape(asset), headers={"If-None-Match": response.headers["etag"]},
                          timeout=10)
        assert again.status_code == 304 and again.content == b""
    bundle = httpx.get(server.url + "/docs/static/swagger-ui-bundle.js", timeout=10)
    assert b"SwaggerUIBundle" in bundle.content
    assert httpx.head(server.url + "/docs/static/swagger-ui.css", timeout=10).status_code == 200
    # Only those files, by name: nothing else of the package, no path to the filesystem.
    for name in ("index.html", "..%2F..%2F..%2Fetc%2Fpasswd", "..%2Fswagger-ui.css", "%2e%2e",
                 "%2e%2e%2fswagger-ui.css", "swagger-ui-bundle.js.map", "swagger-initializer.js"):
        response = httpx.get(f"{server.url}/docs/static/{name}", timeout=10)
        assert response.status_code == 404, name
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        assert "root:" not in response.text
