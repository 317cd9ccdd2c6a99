"""Loading without MLflow, failure at start-up, and the `predict` / `demo` commands."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from helpers import SigserveServer, SigserveWithoutMlflow, frame_to_csv, frame_to_parquet, run_cli  # noqa: F401

from sigserve.demo import DEMO_MODEL_DIR

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]


@pytest.mark.parametrize("name", ["sklearn_skops", "sklearn_pickle", "sklearn_cloudpickle"])
def test_sklearn_models_serve_without_mlflow(models, name: str) -> None:
    with SigserveWithoutMlflow(models[name]) as server:
        response = server.post({"dataframe_split": {"columns": IRIS, "data": IRIS_ROWS}})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        if name == "sklearn_cloudpickle":  # saved with pyfunc_predict_fn="predict_proba"
            assert [max(range(3), key=row.__getitem__) for row in predictions] == [0, 2]
        else:
            assert predictions == [0, 2]


def test_custom_loader_module_serves_without_mlflow(models) -> None:
    with SigserveWithoutMlflow(models["custom_loader"]) as server:
        body = {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}, "params": {"scale": 2}}
        assert server.post(body).json() == {"predictions": [(1 + 4 - 3) * 2.0]}


def test_pythonmodel_without_mlflow_fails_at_start_up_naming_the_extra(models) -> None:
    result = run_cli("serve", "-m", str(models["echo"]), without_mlflow=True)
    assert result.returncode == 2
    error = result.stderr.decode()
    assert "mlflow.pyfunc.model" in error and "sigserve[mlflow]" in error
    assert "Traceback" not in error


@pytest.mark.parametrize("uri", ["/does/not/exist", "s3://bucket/model"])
def test_unresolvable_model_is_one_line_and_non_zero(uri: str) -> None:
    result = run_cli("serve", "-m", uri)
    assert result.returncode != 0
    error = result.stderr.decode().strip()
    assert uri in error and "Traceback" not in error and len(error.splitlines()) == 1


def test_directory_without_mlmodel_is_refused(tmp_path) -> None:
    result = run_cli("predict", "-m", str(tmp_path), "-i", "/dev/null")
    assert result.returncode == 2
    assert "MLmodel" in result.stderr.decode()


def test_predict_json_from_stdin_to_stdout(models) -> None:
    body = json.dumps({"dataframe_split": {"columns": IRIS, "data": IRIS_ROWS}}).encode()
    result = run_cli("predict", "-m", str(models["sklearn_skops"]), stdin=body)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"predictions": [0, 2]}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_predict_files_in_every_format(models, tmp_path, fmt: str) -> None:
    frame = pd.DataFrame(IRIS_ROWS, columns=IRIS)
    source = tmp_path / f"input.{fmt}"
    if fmt == "csv":
        source.write_bytes(frame_to_csv(frame))
    elif fmt == "parquet":
        source.write_bytes(frame_to_parquet(frame))
    else:
        source.write_text(json.dumps({"dataframe_records": frame.to_dict(orient="records")}))
    output = tmp_path / "out.json"
    result = run_cli("predict", "-m", str(models["sklearn_skops"]), "-i", str(source),
                     "-o", str(output), "-t", fmt)
    assert result.returncode == 0, result.stderr
    assert json.loads(output.read_text()) == {"predictions": [0, 2]}


def test_predict_refusal_exits_non_zero_with_the_message(models) -> None:
    body = json.dumps({"dataframe_split": {"columns": IRIS[:2], "data": [[1, 2]]}}).encode()
    result = run_cli("predict", "-m", str(models["sklearn_skops"]), stdin=body)
    assert result.returncode == 1
    assert "missing inputs" in result.stderr.decode()


def test_demo_model_serves_its_example_without_mlflow() -> None:
    example = json.loads((DEMO_MODEL_DIR / "serving_input_example.json").read_text())
    with SigserveWithoutMlflow(DEMO_MODEL_DIR) as server:
        predictions = server.post(example).json()["predictions"]
        assert [p["species"] for p in predictions] == ["setosa", "versicolor", "virginica"]
        assert httpx.get(server.url + "/health").status_code == 200


class DemoServer(SigserveWithoutMlflow):
    """`sigserve demo` where MLflow cannot be imported, in a directory of its own."""

    def command(self) -> list[str]:
        return [*super().command()[:3], "demo", "-h", "127.0.0.1", "-p", str(self.port)]


def test_demo_registers_the_bundled_model_in_a_local_registry_and_serves_it(tmp_path) -> None:
    body = {"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5,
                                   "petal_length": 1.4, "petal_width": 0.2}]}
    with DemoServer(DEMO_MODEL_DIR, cwd=tmp_path) as server:
        assert server.post(body).json()["predictions"][0]["species"] == "setosa"
        assert "models:/sigserve-demo-iris@champion" in server.log()
    assert (tmp_path / "mlflow.db").is_file()
    listed = json.loads(run_cli_in(tmp_path, "registry", "list").stdout)
    assert listed["models"][0]["name"] == "sigserve-demo-iris"
    assert listed["models"][0]["aliases"] == {"champion": "1"}
    with DemoServer(DEMO_MODEL_DIR, cwd=tmp_path) as server:  # a second start reuses version 1
        assert server.post(body).status_code == 200
    assert json.loads(run_cli_in(tmp_path, "registry", "list").stdout)["models"][0]["latest_version"] == "1"


def run_cli_in(cwd, *args: str):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, "-m", "sigserve", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def test_malformed_signature_fails_at_start_up_in_one_line(models, tmp_path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models["custom_loader"], broken)
    mlmodel = (broken / "MLmodel").read_text()
    (broken / "MLmodel").write_text(mlmodel.replace('"type": "double"', '"type": "tensor"', 1))
    result = run_cli("serve", "-m", str(broken))
    error = result.stderr.decode().strip()
    assert result.returncode == 2
    assert "invalid signature" in error and "Traceback" not in error


def test_mlmodel_that_is_not_a_mapping_is_refused(tmp_path) -> None:
    (tmp_path / "MLmodel").write_text("- just\n- a list\n")
    result = run_cli("serve", "-m", str(tmp_path))
    assert result.returncode == 2
    assert "flavors" in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_predict_with_a_missing_input_file_is_one_line(models, tmp_path) -> None:
    result = run_cli("predict", "-m", str(models["sklearn_skops"]), "-i", str(tmp_path / "nope.json"))
    assert result.returncode == 1
    error = result.stderr.decode().strip()
    assert "nope.json" in error and "Traceback" not in error and len(error.splitlines()) == 1


def test_serve_warms_up_with_the_models_serving_example(models) -> None:
    with SigserveServer(models["sklearn_skops"]) as server:
        assert "warmed up with serving_input_example.json" in server.log()
