"""`models:/` and `runs:/` URIs against a real MLflow file store (`mlruns/`), checked against
MLflow's own client, then served without MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SigserveWithoutMlflow

BUILD = r'''
import json, sys, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import mlflow, mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
mlflow.set_tracking_uri(sys.argv[1])
features, target = load_iris(return_X_y=True, as_frame=True)
runs = []
for c in (0.01, 1.0):
    with mlflow.start_run() as run:
        model = LogisticRegression(C=c, max_iter=500).fit(features, target)
        mlflow.sklearn.log_model(model, name="model", registered_model_name="my churn.v1",
                                 pip_requirements=["scikit-learn"])
    runs.append(run.info.run_id)
client = mlflow.MlflowClient()
client.set_registered_model_alias("my churn.v1", "champion", "1")
client.transition_model_version_stage("my churn.v1", "2", "Production")
from mlflow.store.artifact.utils.models import get_model_name_and_version
forms = ["models:/my churn.v1/1", "models:/my churn.v1@champion", "models:/my churn.v1/latest",
         "models:/my churn.v1/PRODUCTION"]
resolved = {uri: str(get_model_name_and_version(client, uri)[1]) for uri in forms}
print(json.dumps({"runs": runs, "resolved": resolved,
                  "sources": [client.get_model_version("my churn.v1", v).source for v in ("1", "2")]}))
'''
IRIS_ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def file_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("filestore")
    store = root / "mlruns"
    result = subprocess.run([sys.executable, "-c", BUILD, store.as_uri()], capture_output=True, text=True,
                            env=clean_env(MLFLOW_ALLOW_FILE_STORE="true"), timeout=180)
    assert result.returncode == 0, result.stderr
    return {"root": root, "store": store, **json.loads(result.stdout.strip().splitlines()[-1])}


def info(uri: str, registry: str | None, cwd: Path | None = None) -> dict:
    flags = ["--registry-uri", registry] if registry else []
    result = subprocess.run([sys.executable, "-m", "sigserve", "info", "-m", uri, *flags], capture_output=True,
                            text=True, env=clean_env(), cwd=cwd, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "uri, version",
    [("models:/my churn.v1/1", "1"), ("models:/my churn.v1@champion", "1"), ("models:/my churn.v1/latest", "2"),
     ("models:/my churn.v1/PRODUCTION", "2")],
)
def test_versions_resolve_as_in_mlflow(file_store, uri: str, version: str) -> None:
    assert file_store["resolved"][uri] == version  # what MLflow's own client resolves
    report = info(uri, file_store["store"].as_uri())
    assert report["version"] == version
    assert report["source"] == file_store["sources"][int(version) - 1]
    assert (Path(report["local_path"]) / "MLmodel").is_file()


def test_logged_model_and_run_uris(file_store) -> None:
    by_version = info("models:/my churn.v1/2", str(file_store["store"]))
    assert info(file_store["sources"][1], str(file_store["store"]))["local_path"] == by_version["local_path"]
    by_run = info(f"runs:/{file_store['runs'][1]}/model", str(file_store["store"]))
    assert by_run["local_path"] == by_version["local_path"]


def test_default_registry_finds_the_file_store_in_the_working_directory(file_store) -> None:
    assert info("models:/my churn.v1@champion", None, cwd=file_store["root"])["version"] == "1"


def test_serves_from_the_file_store_without_mlflow(file_store) -> None:
    env = {"MLFLOW_TRACKING_URI": file_store["store"].as_uri()}
    with SigserveWithoutMlflow("models:/my churn.v1/production", env=env) as server:
        assert server.post({"dataframe_records": [IRIS_ROW]}).status_code == 200


def test_unknown_alias_is_one_line(file_store) -> None:
    result = subprocess.run([sys.executable, "-m", "sigserve", "info", "-m", "models:/my churn.v1@ghost",
                             "--registry-uri", str(file_store["store"])], capture_output=True, text=True,
                            env=clean_env(), timeout=60)
    assert result.returncode == 2 and "has no alias @ghost" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
