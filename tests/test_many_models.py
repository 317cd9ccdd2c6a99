"""Several models in one server, from a real MLflow SQLite registry, on real `sigserve serve`
processes: each named model answers as it does served alone and as MLflow's pyfunc does, in both
protocols; `--config` files and their refusals; an alias moving (and failing to load) for one
model under load while the other serves; and two workers.

Registered once for the module: `churn` (an sklearn Pipeline with string columns answering
predict_proba; v1 @champion, v2), `doubler` (a PythonModel with a dict answer, @prod),
`fraud.v2` (a Ridge regressor, v1 and v2, served by version number), `a` (iris, v1 @champion,
v2, v3 with garbage weights, v4 failing on its own example), `b` (the Ridge again) and `rpc`
(a row-wise PythonModel that reports the rows of each predict call; v1 @live, v2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    IRIS,
    REQUIREMENTS,
    SKLEARN_REQUIREMENTS,
    TESTS_DIR,
    MlflowScorer,
    SigserveServer,
    children_of,
    free_port,
    metric_samples,
    mlflow_sqlite_tracking,
    same_json,
    total,
    wait_for,
)

TRIO = ("churn", "doubler", "fraud.v2")
CHURN_ROWS = [
    {"tenure": 3, "monthly_charges": 80.5, "plan": "basic", "region": "south", "paperless": True},
    {"tenure": 60, "monthly_charges": 20.25, "plan": "premium", "region": "north", "paperless": False},
    {"tenure": 12, "monthly_charges": 55.0, "plan": "standard", "region": "east", "paperless": True},
]
BODIES: dict[str, dict[str, Any]] = {
    "churn": {"dataframe_records": CHURN_ROWS},
    "doubler": {"dataframe_split": {"columns": ["x"], "data": [[1.5], [-2.25], [0.0]]}},
    "fraud.v2": {"dataframe_split": {"columns": IRIS[:3], "data": [[5.1, 3.5, 1.4], [6.7, 3.0, 5.2]]}},
}
V2_BODIES: dict[str, dict[str, Any]] = {
    "churn": {"inputs": [
        {"name": "tenure", "shape": [3], "datatype": "INT64", "data": [r["tenure"] for r in CHURN_ROWS]},
        {"name": "monthly_charges", "shape": [3], "datatype": "FP64",
         "data": [r["monthly_charges"] for r in CHURN_ROWS]},
        {"name": "plan", "shape": [3], "datatype": "BYTES", "data": [r["plan"] for r in CHURN_ROWS]},
        {"name": "region", "shape": [3], "datatype": "BYTES", "data": [r["region"] for r in CHURN_ROWS]},
        {"name": "paperless", "shape": [3], "datatype": "BOOL", "data": [r["paperless"] for r in CHURN_ROWS]},
    ]},
    "doubler": {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.5, -2.25, 0.0]}]},
    "fraud.v2": {"inputs": [{"name": c, "shape": [2], "datatype": "FP64", "data": v}
                            for c, v in zip(IRIS[:3], ([5.1, 6.7], [3.5, 3.0], [1.4, 5.2]))]},
}
IRIS_BODY = {"dataframe_split": {"columns": IRIS, "data": [[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8]]}}
RPC_BODY = {"dataframe_split": {"columns": ["x"], "data": [[2.0]]}}


@dataclass
class Registry:
    uri: str
    client: Any  # mlflow.MlflowClient
    paths: dict[str, Path]  # "name/version" -> the version's local artifact directory


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema
    from models import batching_models
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from zoo.sklearn_models import churn_frame

    root = tmp_path_factory.mktemp("many_models")
    paths: dict[str, Path] = {}
    x_only = ModelSignature(inputs=Schema([ColSpec("double", "x")]))
    with mlflow_sqlite_tracking(root) as (uri, experiment):
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)

        def register(model_uri: str, name: str) -> Path:
            """A new version of `name` from a logged model; its local directory."""
            model_id = model_uri.removeprefix("models:/")
            path = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
            paths[f"{name}/{mlflow.register_model(model_uri, name).version}"] = path
            return path

        def log(name: str, log_model: Any, **kwargs: Any) -> str:
            with mlflow.start_run(experiment_id=experiment):
                model_uri = log_model(name="model", **kwargs).model_uri
            register(model_uri, name)
            return model_uri

        churn, churned = churn_frame()
        for c in (0.1, 10.0):
            preprocess = ColumnTransformer([("scale", StandardScaler(), ["tenure", "monthly_charges"]),
                                            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"])],
                                           remainder="passthrough")
            classifier = LogisticRegression(C=c, max_iter=500)
            pipeline = Pipeline([("prep", preprocess), ("clf", classifier)]).fit(churn, churned)
            log("churn", mlflow.sklearn.log_model, sk_model=pipeline, pyfunc_predict_fn="predict_proba",
                signature=infer_signature(churn, pipeline.predict_proba(churn)), input_example=churn.iloc[:3],
                pip_requirements=SKLEARN_REQUIREMENTS)
        client.set_registered_model_alias("churn", "champion", "1")

        log("doubler", mlflow.pyfunc.log_model, python_model=batching_models.DictOut(), signature=x_only,
            code_paths=[str(TESTS_DIR / "models")], pip_requirements=REQUIREMENTS)
        client.set_registered_model_alias("doubler", "prod", "1")

        iris = load_iris(as_frame=True)
        sepals_and_petal_length = iris.data[IRIS[:3]]
        ridges = []
        for alpha in (1.0, 100.0):
            ridge = Ridge(alpha=alpha).fit(sepals_and_petal_length, iris.data[IRIS[3]])
            signature = infer_signature(sepals_and_petal_length, ridge.predict(sepals_and_petal_length))
            ridges.append(log("fraud.v2", mlflow.sklearn.log_model, sk_model=ridge, signature=signature,
                              pip_requirements=SKLEARN_REQUIREMENTS))
        register(ridges[0], "b")

        for c in (0.01, 100.0, 1.0, 1.0):
            classifier = LogisticRegression(C=c, max_iter=500).fit(iris.data, iris.target)
            log("a", mlflow.sklearn.log_model, sk_model=classifier, pyfunc_predict_fn="predict_proba",
                signature=infer_signature(iris.data, classifier.predict_proba(iris.data)),
                input_example=iris.data.iloc[:2], pip_requirements=SKLEARN_REQUIREMENTS)
        (paths["a/3"] / "model.skops").write_bytes(b"not a model")  # its MLmodel is fine, its weights are not
        nan_row = {"dataframe_split": {"columns": IRIS, "data": [[None, 3.5, 1.4, 0.2]]}}  # fits; sklearn raises
        (paths["a/4"] / "serving_input_example.json").write_text(json.dumps(nan_row))
        client.set_registered_model_alias("a", "champion", "1")

        rpc = log("rpc", mlflow.pyfunc.log_model, python_model=batching_models.RowsPerCall(), signature=x_only,
                  code_paths=[str(TESTS_DIR / "models")], pip_requirements=REQUIREMENTS)
        register(rpc, "rpc")
        client.set_registered_model_alias("rpc", "live", "1")
        yield Registry(uri, client, paths)


class Served(SigserveServer):
    """`sigserve serve` with its model flags given in full: several `-m`, or `--config`."""

    def __init__(self, *flags: str, env: dict[str, str] | None = None) -> None:
        super().__init__("", *flags, env=env)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sigserve", "serve", "-h", "127.0.0.1", "-p", str(self.port), *self.extra]

    def score(self, name: str | None, body: Any, **headers: str) -> httpx.Response:
        path = "/invocations" if name is None else f"/invocations/{name}"
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def servers(registry: Registry) -> Iterator[dict[str, Served]]:
    """Three models by alias and by version number in one server, and `churn` alone; booted together."""
    started = {
        "trio": Served("-m", "models:/churn@champion", "-m", "models:/doubler@prod", "-m", "models:/fraud.v2/1",
                       "--registry-uri", registry.uri),
        "alone": Served("-m", "models:/churn@champion", "--registry-uri", registry.uri),
    }
    try:
        for server in started.values():
            server.launch()
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def mlflow_scorers(registry: Registry) -> dict[str, MlflowScorer]:
    """MLflow's own scoring server function on the version each name serves."""
    return {name: MlflowScorer(registry.paths[f"{name}/1"]) for name in TRIO}


# 1. Two and three models from a real registry ------------------------------------------------


def test_each_model_answers_on_its_own_path_as_mlflow_and_as_served_alone(servers, mlflow_scorers) -> None:
    trio, alone = servers["trio"], servers["alone"]
    expected_headers = {"churn": ("churn/1", "champion"), "doubler": ("doubler/1", "prod"),
                        "fraud.v2": ("fraud.v2/1", None)}
    for name in TRIO:
        answer = trio.score(name, BODIES[name])
        assert answer.status_code == 200, (name, answer.text)
        status, expected = mlflow_scorers[name].score(BODIES[name])
        assert status == 200 and same_json(answer.json(), expected), (name, answer.json(), expected)
        assert (answer.headers["x-model-version"], answer.headers.get("x-model-alias")) == expected_headers[name]
    default = trio.score(None, BODIES["churn"])
    by_name = trio.score("churn", BODIES["churn"])
    served_alone = alone.score(None, BODIES["churn"])
    assert default.status_code == by_name.status_code == served_alone.status_code == 200
    assert default.content == by_name.content == served_alone.content, "the first model answers POST /invocations"
    assert default.headers["x-model-version"] == served_alone.headers["x-model-version"] == "churn/1"
    # a body for another model is refused by the default one, in MLflow's shape, not scored by the wrong model
    wrong = trio.score(None, BODIES["fraud.v2"])
    assert wrong.status_code == 400 and wrong.json()["error_code"] == "BAD_REQUEST", wrong.text
    assert "tenure" in wrong.json()["message"]


def test_an_alias_header_picks_a_version_by_alias_or_number(servers) -> None:
    trio = servers["trio"]
    for alias in ("champion", "1"):
        answer = trio.score("churn", BODIES["churn"], **{"X-Model-Alias": alias})
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "churn/1", answer.text


def test_v2_infer_ready_and_metadata_per_model_and_version(servers, mlflow_scorers) -> None:
    trio, alone = servers["trio"], servers["alone"]
    for name in TRIO:
        for base in (f"/v2/models/{name}", f"/v2/models/{name}/versions/1"):
            answer = httpx.post(trio.url + base + "/infer", json=V2_BODIES[name], timeout=30)
            assert answer.status_code == 200, (base, answer.text)
            document = answer.json()
            assert (document["model_name"], document["model_version"]) == (name, "1")
            _, expected = mlflow_scorers[name].score(BODIES[name])
            assert same_json(v2_predictions(document), expected["predictions"]), (name, document, expected)
            ready = httpx.get(trio.url + base + "/ready")
            assert (ready.status_code, ready.json()) == (200, {"name": name, "ready": True})
            metadata = httpx.get(trio.url + base).json()
            assert metadata["name"] == name and metadata["versions"] == ["1"]
            inputs = {tensor["name"] for tensor in metadata["inputs"]}
            assert inputs == {tensor["name"] for tensor in V2_BODIES[name]["inputs"]}, metadata
    on_trio = httpx.post(trio.url + "/v2/models/churn/infer", json=V2_BODIES["churn"], timeout=30)
    on_alone = httpx.post(alone.url + "/v2/models/churn/infer", json=V2_BODIES["churn"], timeout=30)
    assert on_trio.content == on_alone.content


def v2_predictions(document: dict[str, Any]) -> Any:
    """A V2 answer's outputs as MLflow's `predictions`: one output as its rows, several as a dict."""
    outputs = document["outputs"]

    def rows(output: dict[str, Any]) -> list[Any]:
        shape, data = output["shape"], output["data"]
        if len(shape) == 1:
            return data
        width = shape[1]
        return [data[i:i + width] for i in range(0, len(data), width)]

    if len(outputs) == 1:
        return rows(outputs[0])
    return {output["name"]: rows(output) for output in outputs}


def test_repository_index_and_metadata_list_every_model(servers) -> None:
    trio = servers["trio"]
    index = httpx.post(trio.url + "/v2/repository/index", json={})
    assert index.status_code == 200
    assert index.json() == [{"name": name, "version": "1", "state": "READY", "reason": ""} for name in TRIO]
    metadata = httpx.get(trio.url + "/metadata").json()
    assert (metadata["name"], metadata["version"], metadata["alias"]) == ("churn", "1", "champion")
    listed = [(m["served_as"], m["name"], m["version"], m["alias"], m["model_uri"]) for m in metadata["models"]]
    assert listed == [("churn", "churn", "1", "champion", "models:/churn@champion"),
                      ("doubler", "doubler", "1", "prod", "models:/doubler@prod"),
                      ("fraud.v2", "fraud.v2", "1", None, "models:/fraud.v2/1")]
    assert all(m["signature"] and m["flavor"] for m in metadata["models"])


def test_openapi_has_a_path_per_model_with_its_own_schemas(servers) -> None:
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate
    from referencing import Registry as Refs
    from referencing import Resource
    from referencing.jsonschema import DRAFT202012

    document = httpx.get(servers["trio"].url + "/openapi.json").json()
    validate(document)
    for ref in refs(document):
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]
    assert {f"/invocations/{name}" for name in TRIO} <= set(document["paths"])
    assert document["info"]["title"] == "sigserve: churn, doubler, fraud.v2"
    docs = httpx.get(servers["trio"].url + "/docs")
    assert docs.status_code == 200 and "sigserve: churn, doubler, fraud.v2" in docs.text
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    resolver = Refs().with_resource("urn:doc", resource)

    def accepts(path: str, body: Any) -> bool:
        pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in
                           ("paths", path, "post", "requestBody", "content", "application/json", "schema"))
        return Draft202012Validator({"$ref": f"urn:doc#/{pointer}"}, registry=resolver).is_valid(body)

    for name in TRIO:
        assert accepts(f"/invocations/{name}", BODIES[name]), name
        others = [other for other in TRIO if other != name]
        assert not any(accepts(f"/invocations/{name}", BODIES[other]) for other in others), name
    assert accepts("/invocations", BODIES["churn"]) and not accepts("/invocations", BODIES["doubler"])


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


MLFLOW_404 = [  # path, headers, what the message names
    ("/invocations/nope", {}, "'nope'"),
    ("/invocations/Churn", {}, "'Churn'"),
    ("/invocations/churn", {"X-Model-Alias": "challenger"}, "'challenger'"),
    ("/invocations/churn", {"X-Model-Alias": "2"}, "'2'"),
    ("/invocations/churn/1", {}, "/invocations/churn/1"),
    ("/invocations/%00%ff", {}, ""),
]
V2_404 = [  # method, path, what the message names
    ("POST", "/v2/models/nope/infer", "'nope'"),
    ("POST", "/v2/models/churn/versions/2/infer", "'2'"),
    ("POST", "/v2/models/nope/versions/1/infer", "'nope'"),
    ("GET", "/v2/models/nope", "'nope'"),
    ("GET", "/v2/models/nope/ready", "'nope'"),
    ("GET", "/v2/models/churn/versions/2", "'2'"),
    ("GET", "/v2/models/fraud.v2/versions/2/ready", "'2'"),
    ("GET", "/v2/models/churn/versions/1/nope", ""),
]


def test_unknown_model_names_versions_and_aliases_are_mlflow_404s(servers) -> None:
    for path, headers, named in MLFLOW_404:
        answer = httpx.post(servers["trio"].url + path, json=BODIES["churn"], headers=headers)
        where = (path, headers, answer.text)
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/json", where
        document = answer.json()
        assert set(document) == {"error_code", "message"}, where
        assert document["error_code"] in ("RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND"), where
        assert named in document["message"], where


def test_unknown_model_names_and_versions_are_v2_404s(servers) -> None:
    for method, path, named in V2_404:
        body = V2_BODIES["churn"] if method == "POST" else None
        answer = httpx.request(method, servers["trio"].url + path, json=body)
        where = (method, path, answer.text)
        assert answer.status_code == 404 and answer.headers["content-type"] == "application/json", where
        document = answer.json()
        assert set(document) == {"error"} and named in document["error"], where


def test_the_access_log_names_the_model_and_version_that_answered(servers) -> None:
    trio = servers["trio"]
    for name in TRIO:
        request_id = f"many-models-{name}"
        assert trio.score(name, BODIES[name], **{"X-Request-ID": request_id}).status_code == 200
        assert httpx.post(trio.url + f"/v2/models/{name}/infer", json=V2_BODIES[name],
                          headers={"X-Request-ID": request_id + "-v2"}).status_code == 200
        for rid, path in ((request_id, f"/invocations/{name}"), (request_id + "-v2", f"/v2/models/{name}/infer")):
            assert wait_for(lambda rid=rid: f"id={rid} " in trio.log(), 10), trio.log()[-2000:]
            line = next(line for line in trio.log().splitlines() if f"id={rid} " in line)
            assert f'"POST {path} HTTP/1.1" 200' in line and line.endswith(f"model={name}/1"), line
    trio.score("nope", BODIES["churn"], **{"X-Request-ID": "many-models-nope"})
    assert wait_for(lambda: "id=many-models-nope " in trio.log(), 10)
    line = next(line for line in trio.log().splitlines() if "id=many-models-nope " in line)
    assert '"POST /invocations/nope HTTP/1.1" 404' in line and line.endswith("model=-"), line


def test_metrics_carry_the_model_label_and_one_info_series_per_model(servers) -> None:
    trio = servers["trio"]
    before = metric_samples(trio.url)
    sent = {"churn": 3, "doubler": 2, "fraud.v2": 1}
    for name, count in sent.items():
        for _ in range(count):
            assert trio.score(name, BODIES[name]).status_code == 200
    assert trio.score("nope", BODIES["churn"]).status_code == 404
    after = metric_samples(trio.url)

    def delta(**labels: str) -> float:
        return total(after, "sigserve_requests_total", **labels) - total(before, "sigserve_requests_total", **labels)

    for name, count in sent.items():
        assert delta(model=name, status="200") == count, name
        assert delta(model=name) == count, name
    assert delta(model="", status="404") == 1
    info = {dict(labels)["model"]: dict(labels) for (sample, labels), value in after.items()
            if sample == "sigserve_model_info" and value == 1}
    assert info == {
        "churn": {"model": "churn", "name": "churn", "version": "1", "alias": "champion"},
        "doubler": {"model": "doubler", "name": "doubler", "version": "1", "alias": "prod"},
        "fraud.v2": {"model": "fraud.v2", "name": "fraud.v2", "version": "1", "alias": ""},
    }
    assert len([1 for (sample, _), _v in after.items() if sample == "sigserve_model_info"]) == 3
    loads = {dict(labels)["model"] for (sample, labels) in after if sample == "sigserve_model_load_seconds"}
    assert loads == set(TRIO)


# 2. --config ---------------------------------------------------------------------------------

CONFIG = """
models:
  - uri: models:/rpc@live
    name: batched
    reload_interval: 0.5
    batch_max_size: 16
    batch_max_wait_ms: 500
  - uri: models:/rpc@live
    name: single
"""


@pytest.fixture(scope="module")
def configured(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two names for `rpc@live` from a config file: one batching and polling by its own settings, one
    by the server-wide ones (neither)."""
    config = tmp_path_factory.mktemp("config") / "models.yaml"
    config.write_text(CONFIG)
    server = Served("--config", str(config), "--registry-uri", registry.uri, "--reload-interval", "0")
    with server:
        yield server


def rows_in_calls(server: Served, name: str, requests: int = 8) -> list[int]:
    """`requests` one-row requests sent at once: the rows of the predict call each was part of."""
    barrier = threading.Barrier(requests)
    seen: list[int] = []

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            answer = client.post(f"{server.url}/invocations/{name}", json=RPC_BODY)
            assert answer.status_code == 200, answer.text
            predictions = answer.json()["predictions"]
            assert predictions["double"] == [4.0]
            seen.extend(predictions["rows_in_call"])

    threads = [threading.Thread(target=send) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(seen) == requests
    return seen


def test_config_names_models_and_gives_each_its_own_batching(configured) -> None:
    assert max(rows_in_calls(configured, "batched")) > 1, "concurrent requests share a predict call"
    assert set(rows_in_calls(configured, "single")) == {1}, "the server-wide setting: no batching"
    default = configured.score(None, RPC_BODY)
    assert default.status_code == 200 and default.headers["x-model-version"] == "rpc/1"
    index = httpx.post(configured.url + "/v2/repository/index", json={}).json()
    assert [(m["name"], m["version"]) for m in index] == [("batched", "1"), ("single", "1")]
    infer = httpx.post(configured.url + "/v2/models/single/infer",
                       json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [2.0]}]})
    assert infer.status_code == 200 and infer.json()["model_name"] == "single", infer.text


def test_config_gives_each_model_its_own_reload_interval(configured, registry) -> None:
    log = configured.log()
    assert "as batched (rpc/1), polling the registry every 0.5s" in log
    assert "as single (rpc/1)\n" in log, log
    registry.client.set_registered_model_alias("rpc", "live", "2")
    assert wait_for(lambda: configured.score("batched", RPC_BODY).headers["x-model-version"] == "rpc/2", 30)
    assert wait_for(lambda: "now serving rpc/2" in configured.log(), 10)
    single = configured.score("single", RPC_BODY)
    assert single.status_code == 200 and single.headers["x-model-version"] == "rpc/1", "--reload-interval 0: no polling"
    samples = metric_samples(configured.url)
    assert total(samples, "sigserve_model_reloads_total", model="batched") == 1
    assert total(samples, "sigserve_model_reloads_total", model="single") == 0


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("configs")


GHOST = "models:/ghost@champion"  # not registered: a refusal that waited for loading would name it instead
CONFIG_CASES: dict[str, tuple[str | None, list[str], str]] = {  # config file text, flags, the problem named
    "missing uri": (f"models:\n  - name: x\n  - uri: {GHOST}\n", [], "models[0]: expected a mapping with a `uri:`"),
    "unknown key": (f"models:\n  - uri: {GHOST}\n    reload_intervl: 3\n", [], "reload_intervl"),
    "bad yaml": ("models: [uri: {\n", [], "not valid YAML"),
    "no models": (f"model:\n  - uri: {GHOST}\n", [], "`models:`"),
    "bad number": (f"models:\n  - uri: {GHOST}\n    batch_max_size: many\n", [], "batch_max_size"),
    "config and -m": (f"models:\n  - uri: {GHOST}\n", ["-m", GHOST], "not both"),
    "no such file": (None, ["--config", "/nonexistent/models.yaml"], "/nonexistent/models.yaml: No such file"),
    "traffic section for an unknown name": (
        f"models:\n  - uri: {GHOST}\n    name: fraud\ntraffic:\n  churn: shadow\n", [],
        "'churn', which is not a served model (served: fraud)"),
    "--model-name with several models": (None, ["-m", GHOST, "-m", "models:/ghost/1", "--model-name", "x"],
                                         "--model-name names one model"),
    "traffic flag for an unknown name": (
        None, ["-m", GHOST, "-m", "models:/ghost@challenger", "--traffic", "nosuch=shadow"],
        "'nosuch', which is not a served model"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_errors_refuse_the_start_in_one_line_before_loading(registry, config_dir, capsys, case) -> None:
    """In this process (nothing may load, so nothing needs a process of its own): `main`'s exit
    code and what it printed."""
    from sigserve.cli import main

    text, flags, problem = CONFIG_CASES[case]
    if text is not None:
        config = config_dir / f"{case.replace(' ', '_')}.yaml"
        config.write_text(text)
        flags = ["--config", str(config), *flags]
    try:
        code = main(["serve", *flags, "--registry-uri", registry.uri])
    except SystemExit as exit:
        code = exit.code
    output = capsys.readouterr()
    assert code == 2 and output.out == "", output
    lines = [line for line in output.err.splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and lines[0].startswith("sigserve"), output.err  # argparse's usage aside
    assert problem in lines[0], output.err
    assert "cannot serve" not in output.err and "No registered model" not in output.err, "refused before resolving"


@pytest.fixture(scope="module")
def refusals(registry: Registry) -> dict[str, tuple[int | None, str]]:
    """Refused starts of real processes, run at once: exit code and everything printed."""
    commands = {
        "a model that does not load": ["-m", "models:/churn@champion", "-m", "models:/a/3"],
        "a model failing on its example": ["-m", "models:/a/4", "-m", "models:/churn@champion"],
        "two logged models by id": ["-m", registry.client.get_model_version("churn", "1").source,
                                    "-m", registry.client.get_model_version("churn", "2").source],
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    running = {
        case: subprocess.Popen([sys.executable, "-m", "sigserve", "serve", *flags, "--registry-uri", registry.uri,
                                "-h", "127.0.0.1", "-p", str(free_port())],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
        for case, flags in commands.items()
    }
    results: dict[str, tuple[int | None, str]] = {}
    for case, process in running.items():
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:  # it serves instead of refusing
            process.kill()
            output, _ = process.communicate()
            results[case] = (None, output)
        else:
            results[case] = (process.returncode, output)
    return results


@pytest.mark.parametrize(("case", "uri", "reason"), [
    ("a model that does not load", "models:/a/3", ""),
    ("a model failing on its example", "models:/a/4", "fails on its own serving input example"),
])
def test_one_model_failing_to_load_fails_the_start_naming_its_uri(refusals, case, uri, reason) -> None:
    code, output = refusals[case]
    assert code == 2, output
    refusal = [line for line in output.splitlines() if line.startswith("sigserve:")]
    assert len(refusal) == 1 and refusal[0].startswith(f"sigserve: cannot serve {uri}: "), output
    assert reason in refusal[0] and "Traceback" not in output
    assert "listening on" not in output and "Uvicorn running" not in output


# 3. An alias moving (and failing to load) for one model under load while the other serves ----


@dataclass
class Load:
    """Keep-alive clients scoring one path in a loop: every answer's status, version and body."""

    url: str
    body: Any
    clients: int = 2
    answers: list[tuple[int, str, bytes]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    per_client: list[list[str]] = field(default_factory=list)  # each client's versions, in its own order
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:  # noqa: PYI034
        self.per_client = [[] for _ in range(self.clients)]
        self._threads = [threading.Thread(target=self._run, args=(versions,), daemon=True)
                         for versions in self.per_client]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, versions: list[str]) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(self.url, json=self.body)
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                version = answer.headers.get("x-model-version", "")
                self.answers.append((answer.status_code, version, answer.content))
                versions.append(version)

    def versions(self) -> list[str]:
        return [version for _, version, _ in self.answers]

    def settled_on(self, version: str, last: int = 20) -> bool:
        tail = self.versions()[-last:]
        return len(tail) == last and set(tail) == {version}

    def more(self, count: int = 20) -> bool:
        """`count` more answers arrive: the load has not stalled."""
        start = len(self.answers)
        return wait_for(lambda: len(self.answers) >= start + count, 30)


def test_an_alias_moving_for_one_model_under_load_leaves_the_other_serving(registry) -> None:
    """`a@champion` moves to v2 (swapped in), then to v3 (weights garbage) and v4 (fails its own
    example), neither swapped in; `b/1` serves throughout. Not one request fails on either."""
    client = registry.client
    expected = {f"a/{v}": MlflowScorer(registry.paths[f"a/{v}"]).score(IRIS_BODY)[1] for v in ("1", "2")}
    assert expected["a/1"] != expected["a/2"]
    b_expected = MlflowScorer(registry.paths["b/1"]).score(BODIES["fraud.v2"])[1]
    server = Served("-m", "models:/a@champion", "-m", "models:/b/1", "--registry-uri", registry.uri,
                    "--reload-interval", "1")
    try:
        with server, Load(server.url + "/invocations/a", IRIS_BODY) as a_load, \
                Load(server.url + "/invocations/b", BODIES["fraud.v2"]) as b_load:
            assert wait_for(lambda: a_load.settled_on("a/1") and len(b_load.answers) >= 20, 30)

            client.set_registered_model_alias("a", "champion", "2")
            assert wait_for(lambda: a_load.settled_on("a/2"), 30), a_load.versions()[-20:]

            client.set_registered_model_alias("a", "champion", "3")
            assert wait_for(lambda: "version 3 of a was not swapped in" in server.log(), 30), server.log()[-3000:]
            assert a_load.more() and a_load.settled_on("a/2"), "a version that does not load is never swapped in"

            client.set_registered_model_alias("a", "champion", "4")
            assert wait_for(lambda: "version 4 of a was not swapped in" in server.log(), 30), server.log()[-3000:]
            assert "fails on its own serving input example" in server.log()
            assert a_load.more() and b_load.more() and a_load.settled_on("a/2")

            samples = metric_samples(server.url)
            metadata = httpx.get(server.url + "/metadata").json()
            ready = httpx.get(server.url + "/v2/health/ready")
    finally:
        client.set_registered_model_alias("a", "champion", "1")

    for load in (a_load, b_load):
        assert load.errors == [] and {status for status, _, _ in load.answers} == {200}, (
            load.errors[:3], {status for status, _, _ in load.answers})
    # A request that started before the swap may answer after a later one did, from another client;
    # each client's next request starts after its last answer, so none of them goes back.
    for versions in a_load.per_client:
        first_v2 = versions.index("a/2")
        assert first_v2 > 0 and set(versions[first_v2:]) == {"a/2"}, "no client goes back to the old version"
    for _, version, body in a_load.answers:
        assert same_json(json.loads(body), expected[version]), (version, body)  # the version that answered says so
    assert {(version, body) for _, version, body in b_load.answers} == {("b/1", b_load.answers[0][2])}
    assert same_json(json.loads(b_load.answers[0][2]), b_expected)

    assert [(m["served_as"], m["version"]) for m in metadata["models"]] == [("a", "2"), ("b", "1")]
    assert ready.status_code == 200
    assert total(samples, "sigserve_model_reloads_total", model="a") == 1
    assert total(samples, "sigserve_model_reload_failures_total", model="a", reason="load") == 1
    assert total(samples, "sigserve_model_reload_failures_total", model="a", reason="warm_up") == 1
    for metric in ("sigserve_model_reloads_total", "sigserve_model_reload_failures_total",
                   "sigserve_registry_errors_total"):
        assert total(samples, metric, model="b") == 0, metric
    info = {dict(labels)["model"]: dict(labels)["version"] for (name, labels), value in samples.items()
            if name == "sigserve_model_info" and value == 1}
    assert info == {"a": "2", "b": "1"}


# 4. Several workers ------------------------------------------------------------------------


def test_two_workers_serve_both_models(registry, mlflow_scorers) -> None:
    with Served("-m", "models:/churn@champion", "-m", "models:/fraud.v2/1", "--registry-uri", registry.uri,
                "-w", "2") as server:
        assert wait_for(lambda: len(children_of(server.process.pid)) == 2, 30)
        expected = {name: mlflow_scorers[name].score(BODIES[name])[1] for name in ("churn", "fraud.v2")}
        for _ in range(10):
            for name in ("churn", "fraud.v2"):
                with httpx.Client(timeout=30) as client:  # a new connection each time: both workers answer
                    answer = client.post(f"{server.url}/invocations/{name}", json=BODIES[name])
                assert answer.status_code == 200, answer.text
                assert answer.headers["x-model-version"] == f"{name}/1"
                assert same_json(answer.json(), expected[name])
        v2 = httpx.post(server.url + "/v2/models/fraud.v2/infer", json=V2_BODIES["fraud.v2"])
        assert v2.status_code == 200 and same_json(v2_predictions(v2.json()), expected["fraud.v2"]["predictions"])
        samples = metric_samples(server.url)
        for name in ("churn", "fraud.v2"):
            assert total(samples, "sigserve_requests_total", model=name, status="200") == 10 + (name == "fraud.v2")
        info = sorted(dict(labels)["model"] for (name, labels), value in samples.items()
                      if name == "sigserve_model_info" and value == 1)
        assert info == ["churn", "fraud.v2"]


def test_two_models_that_would_share_a_directory_name_are_refused(registry, refusals) -> None:
    """MLflow 3 keeps every logged model in a directory named `artifacts`: served by id without
    names, the second would hide behind the first as its "challenger", reachable by no path."""
    code, output = refusals["two logged models by id"]
    first, second = (registry.client.get_model_version("churn", v).source for v in ("1", "2"))
    refusal = [line for line in output.splitlines() if line.startswith("sigserve:")]
    assert code == 2 and len(refusal) == 1, output
    assert f"{second} and {first} would both be served as 'artifacts'" in refusal[0], output
