"""`models:/` and `runs:/` URIs against a real MLflow SQLite registry, checked against MLflow's
own client; then served without MLflow."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SKLEARN_REQUIREMENTS, SigserveWithoutMlflow, mlflow_sqlite_tracking

IRIS_ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """churn v1 (@champion), v2 (Production), v3 (Staging, @challenger); 'fraud.v2 model' v1."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("registry")
    with mlflow_sqlite_tracking(root) as (uri, experiment):
        features, target = load_iris(return_X_y=True, as_frame=True)
        run_ids = {}
        for name, c in (("churn", 0.01), ("churn", 1.0), ("churn", 100.0), ("fraud.v2 model", 1.0)):
            model = LogisticRegression(C=c, max_iter=500).fit(features, target)
            with mlflow.start_run(experiment_id=experiment) as run:
                mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                         signature=infer_signature(features, target),
                                         pip_requirements=SKLEARN_REQUIREMENTS)
            run_ids.setdefault(name, []).append(run.info.run_id)
        client = mlflow.MlflowClient()
        client.set_registered_model_alias("churn", "champion", "1")
        client.set_registered_model_alias("churn", "challenger", "3")
        client.transition_model_version_stage("churn", "2", "Production")
        client.transition_model_version_stage("churn", "3", "Staging")
        yield {"root": root, "uri": uri, "client": client, "runs": run_ids}

def sigserve(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "sigserve", *args], capture_output=True, text=True,
                          cwd=cwd, env=environment, timeout=120)


def info(registry, uri: str) -> dict:
    result = sigserve("info", "-m", uri, "--registry-uri", registry["uri"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "uri, version",
    [("models:/churn/1", "1"), ("models:/churn/3", "3"), ("models:/churn@champion", "1"),
     ("models:/churn@challenger", "3"), ("models:/churn/latest", "3"), ("models:/churn/LATEST", "3"),
     ("models:/churn/Production", "2"), ("models:/churn/production", "2"), ("models:/churn/staging", "3"),
     ("models:/fraud.v2 model/1", "1"), ("models:/fraud.v2 model/latest", "1")],
)
def test_registered_model_uris_resolve_as_mlflow_resolves_them(registry, uri: str, version: str) -> None:
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    client = registry["client"]
    name, mlflow_version = get_model_name_and_version(client, uri)
    assert str(mlflow_version) == version
    report = info(registry, uri)
    assert (report["name"], report["version"]) == (name, version)
    download = client.get_model_version_download_uri(name, version)
    assert Path(report["local_path"]) == Path(download.removeprefix("file://")).resolve()
    assert report["flavor"] == "mlflow.sklearn"
    assert report["source"] == client.get_model_version(name, version).source


def test_aliases_and_stage_are_reported(registry) -> None:
    report = info(registry, "models:/churn/3")
    assert report["aliases"] == ["challenger"] and report["stage"] == "Staging"


def test_logged_model_and_run_uris(registry) -> None:
    client = registry["client"]
    version = client.get_model_version("churn", "2")
    by_id = info(registry, version.source)
    assert by_id["local_path"] == info(registry, "models:/churn/2")["local_path"]
    by_run = info(registry, f"runs:/{version.run_id}/model")
    assert by_run["local_path"] == by_id["local_path"]


def test_moving_an_alias_moves_the_next_resolution(registry) -> None:
    client = registry["client"]
    assert info(registry, "models:/churn@champion")["version"] == "1"
    client.set_registered_model_alias("churn", "champion", "2")
    try:
        assert info(registry, "models:/churn@champion")["version"] == "2"
    finally:
        client.set_registered_model_alias("churn", "champion", "1")


def test_serves_an_alias_without_mlflow(registry) -> None:
    import mlflow.pyfunc
    import pandas as pd

    env = {"MLFLOW_TRACKING_URI": registry["uri"]}
    expected = mlflow.pyfunc.load_model(info(registry, "models:/churn@champion")["local_path"]).predict(
        pd.DataFrame([IRIS_ROW]))
    with SigserveWithoutMlflow("models:/churn@champion", env=env) as server:
        response = server.post({"dataframe_records": [IRIS_ROW]})
        assert response.json() == {"predictions": [int(expected[0])]}


def test_default_registry_is_mlflow_db_in_the_working_directory(registry) -> None:
    result = sigserve("info", "-m", "models:/churn@champion", cwd=registry["root"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"] == "1"


def test_mlflow_2_database_without_workspace_columns(registry, tmp_path) -> None:
    old = tmp_path / "mlflow2.db"
    shutil.copy(registry["root"] / "mlflow.db", old)
    with sqlite3.connect(old) as db:
        for table in ("model_versions", "registered_model_aliases", "registered_models"):
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})") if row[1] != "workspace"]
            listed = ", ".join(columns)
            db.execute(f"CREATE TABLE {table}_v2 AS SELECT {listed} FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
    result = sigserve("info", "-m", "models:/churn@challenger", "--registry-uri", f"sqlite:///{old}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"] == "3"


@pytest.mark.parametrize(
    "uri, expected",
    [("models:/nope/1", "No registered model named 'nope'"), ("models:/churn/9", "has no version 9"),
     ("models:/churn@ghost", "has no alias @ghost"), ("models:/churn/Archived", "in stage 'Archived'"),
     ("models:/m-doesnotexist", "No logged model"), ("models:/", "Not a proper models:/ URI"),
     ("models:/churn/1/extra", "Not a proper models:/ URI")],
)
def test_unknown_things_are_one_line_errors(registry, uri: str, expected: str) -> None:
    result = sigserve("serve", "-m", uri, "--registry-uri", registry["uri"])
    assert result.returncode == 2
    error = result.stderr.strip()
    assert expected in error and "Traceback" not in error and len(error.splitlines()) == 1


def test_missing_database_and_unsupported_registry(tmp_path) -> None:
    missing = sigserve("info", "-m", "models:/churn/1", cwd=tmp_path)
    assert missing.returncode == 2 and "No MLflow database at" in missing.stderr
    other = sigserve("info", "-m", "models:/churn/1", "--registry-uri", "postgresql://db/mlflow")
    assert other.returncode == 2 and "unsupported" in other.stderr
