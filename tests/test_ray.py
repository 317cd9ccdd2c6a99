"""Ray: `sigserve.ray.Predictor` in `map_batches` actor pools, `sigserve.ray.predict`, and
`sigserve predict --engine ray`, against sigserve's local scoring, `sigserve predict` and MLflow.

One real local Ray for the module (2 CPUs, no dashboard); the CLI runs in this process on that Ray,
and twice as a real process: once starting its own Ray, once joining this one by its address.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from sigserve.batch.frames import FrameScorer
from sigserve.batch.run import RowRefused
from sigserve.cli import main
from sigserve.ray import Predictor, SkippedRows, columns, predict, ship_model

PROBA = "churn_pipeline_proba"
BAD_ROW = 7
REFUSED = ("Column 'tenure': incompatible input type float64; cannot safely convert it to long (int64). Hint: "
           "integer columns cannot hold missing values; declare the column as double if it may have missing values.")


@pytest.fixture(scope="module")
def ray_runtime():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def churn(zoo, tmp_path_factory) -> dict[str, Path]:
    """50 churn rows with an `id`, as Parquet, CSV and JSON Lines; `bad.*` refuse row 7 (a
    missing tenure, which a long column cannot hold)."""
    from zoo.sklearn_models import churn_frame

    folder = tmp_path_factory.mktemp("churn")
    frame, _ = churn_frame(50, seed=3)
    frame.insert(0, "id", np.arange(50, dtype=np.int64) + 1000)
    bad = frame.astype({"tenure": "Int64"})
    bad.loc[BAD_ROW, "tenure"] = None
    files = {}
    for name, rows in (("in", frame), ("bad", bad)):
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / f"{name}.parquet")
        rows.to_csv(folder / f"{name}.csv", index=False)
        lines = rows.to_json(orient="records", lines=True).splitlines(keepends=True)
        lines[3:3] = ["\n", "  \n"]  # blank lines are no rows
        (folder / f"{name}.jsonl").write_text("".join(lines))
        files.update({f"{name}.{suffix}": folder / f"{name}.{suffix}" for suffix in ("parquet", "csv", "jsonl")})
    return files


def local_predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sigserve", "predict", *args], capture_output=True, text=True,
                          timeout=120)


def ray_predict(capsys, *args: str) -> tuple[int, str]:
    """`sigserve predict --engine ray` in this process, on the module's Ray: (exit code, stderr)."""
    capsys.readouterr()
    code = main(["predict", "--engine", "ray", *args])
    return code, capsys.readouterr().err


def folder_bytes(folder: Path) -> bytes:
    """A Ray output folder's part files, in order, as one file: CSV parts each have the header."""
    parts = [path.read_bytes() for path in sorted(folder.iterdir())]
    if folder.suffix == ".csv":
        parts = parts[:1] + [part.split(b"\n", 1)[1] for part in parts[1:]]
    return b"".join(parts)


def as_array(predictions) -> np.ndarray:
    if isinstance(predictions, (pd.DataFrame, pd.Series)):
        return predictions.to_numpy()
    return np.asarray(predictions)


def table_array(table: pa.Table) -> np.ndarray:
    columns = [np.asarray(table[name].to_pylist()) for name in table.column_names]
    return columns[0] if len(columns) == 1 else np.column_stack(columns)


def collect(ds) -> pa.Table:
    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


# --- the Python API


@pytest.mark.parametrize("name", ["churn_pipeline", PROBA, "xgb_classifier", "pythonmodel_artifacts_params"])
def test_predict_matches_local_scoring_and_mlflow(ray_runtime, zoo, name):
    import mlflow.pyfunc

    model = zoo[name]
    table = pa.Table.from_pandas(model.rows, preserve_index=False)
    scored = collect(predict(ray.data.from_arrow(table), model.path, concurrency=1))
    local = FrameScorer.load(model.path).score_arrow(table)
    assert scored.to_pylist() == local.to_pylist()
    assert scored.schema.names == local.schema.names
    expected = as_array(mlflow.pyfunc.load_model(str(model.path)).predict(model.rows))
    np.testing.assert_array_equal(table_array(scored), expected)


@pytest.mark.parametrize("batch_format", ["pyarrow", "pandas", "numpy"])
def test_predictor_answers_in_each_batch_format(ray_runtime, zoo, churn, batch_format):
    table = pq.read_table(churn["in.parquet"]).slice(0, 20)
    scored = ray.data.from_arrow(table).map_batches(
        Predictor, fn_constructor_kwargs={"model": ship_model(zoo[PROBA].path), "keep_columns": ["id"]},
        compute=ray.data.ActorPoolStrategy(size=1), batch_size=8, batch_format=batch_format)
    rows = scored.take_all()
    local = FrameScorer.load(zoo[PROBA].path).score_arrow(table)
    assert [row["id"] for row in rows] == table["id"].to_pylist()
    np.testing.assert_array_equal(np.stack([row["prediction"] for row in rows]), table_array(local))
    # the answer is in the batch's own format (Ray would take any of them back)
    batch = {"pyarrow": table, "pandas": table.to_pandas(),
             "numpy": {name: table[name].to_numpy() for name in table.column_names}}[batch_format]
    answer = Predictor(ship_model(zoo[PROBA].path), keep_columns=["id"])(batch)
    assert type(answer) is type(batch)
    assert list(answer.keys() if isinstance(answer, dict) else answer.column_names if batch_format == "pyarrow"
                else answer.columns) == ["id", "prediction"]
    if batch_format == "numpy":
        np.testing.assert_array_equal(answer["prediction"], table_array(local))  # one 2-D array


def test_predictor_resolves_a_model_uri_on_each_actor(ray_runtime, zoo):
    model = zoo["xgb_classifier"]
    table = pa.Table.from_pandas(model.rows, preserve_index=False)
    scored = ray.data.from_arrow(table).map_batches(
        Predictor, fn_constructor_kwargs={"model": model.path.as_uri()}, compute=ray.data.ActorPoolStrategy(size=1),
        batch_format="pandas")
    assert collect(scored).to_pylist() == FrameScorer.load(model.path).score_arrow(table).to_pylist()


def test_a_refused_row_fails_the_dataset_with_sigserves_message(ray_runtime, zoo, churn):
    table = pq.read_table(churn["bad.parquet"])
    with pytest.raises(Exception) as failure:
        predict(ray.data.from_arrow(table), zoo[PROBA].path, concurrency=1, batch_size=None).take_all()
    assert f"Row {BAD_ROW} of a batch was refused: {REFUSED}" in str(failure.value)


def test_predictor_splits_a_batch_into_runs_of_one_file(ray_runtime, zoo, churn, tmp_path):
    """A batch of rows from two files (as Ray may bundle blocks): each run is numbered as in its
    file, so a refused row is named by its file and place."""
    table = pq.read_table(churn["bad.parquet"]).slice(0, 10)
    table = table.append_column(columns.FILE, pa.array(["a.parquet"] * 6 + ["b.parquet"] * 4)).append_column(
        columns.ROW, pa.array([*range(10, 16), *range(0, 4)], pa.int64()))
    model = ship_model(zoo[PROBA].path)
    with pytest.raises(RowRefused) as failure:
        Predictor(model).score(table)
    assert failure.value.message == f"Row 1 of b.parquet was refused: {REFUSED}"
    skipped = SkippedRows(tmp_path / "skipped.jsonl")
    answer = Predictor(model, keep_columns=["id"], on_error="skip", skipped=skipped).score(table)
    assert skipped.close() == 1
    assert answer["id"].to_pylist() == [1000 + i for i in range(10) if i != BAD_ROW]
    assert (tmp_path / "skipped.jsonl").read_text().startswith(f'{{"file":"b.parquet","row":1,"error":"{REFUSED}"')


# --- sigserve predict --engine ray


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_cli_writes_what_the_local_engine_writes(ray_runtime, zoo, churn, tmp_path, capsys, suffix):
    """Each input format read as `sigserve predict` reads it, each output written as it writes it."""
    model, source = str(zoo[PROBA].path), str(churn[f"in.{suffix}"])
    local = local_predict("-m", model, "-i", source, "-o", str(tmp_path / f"local.{suffix}"), "--keep-columns", "id")
    assert local.returncode == 0, local.stderr
    code, err = ray_predict(capsys, "-m", model, "-i", source, "-o", str(tmp_path / f"ray.{suffix}"),
                            "--keep-columns", "id", "--batch-rows", "16")
    assert code == 0, err
    if suffix == "parquet":
        assert pq.read_table(tmp_path / "ray.parquet").to_pylist() == \
            pq.read_table(tmp_path / "local.parquet").to_pylist()
    else:
        assert folder_bytes(tmp_path / f"ray.{suffix}") == (tmp_path / f"local.{suffix}").read_bytes()


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_cli_names_a_refused_row_as_the_local_engine_does(ray_runtime, zoo, churn, tmp_path, capsys, suffix):
    model, source = str(zoo[PROBA].path), str(churn[f"bad.{suffix}"])
    local = local_predict("-m", model, "-i", source, "-o", str(tmp_path / "local.parquet"))
    code, err = ray_predict(capsys, "-m", model, "-i", source, "-o", str(tmp_path / "ray.parquet"),
                            "--batch-rows", "16")
    assert (code, err) == (local.returncode, local.stderr) == (1, local.stderr)
    assert err.startswith(f"sigserve: Row {BAD_ROW} of the input was refused: Column 'tenure'")


def test_cli_skips_refused_rows_to_the_local_engines_side_file(ray_runtime, zoo, churn, tmp_path, capsys):
    model, source = str(zoo[PROBA].path), str(churn["bad.parquet"])
    local = local_predict("-m", model, "-i", source, "-o", str(tmp_path / "local.parquet"), "--keep-columns", "id",
                          "--on-error", "skip")
    assert local.returncode == 0, local.stderr
    code, err = ray_predict(capsys, "-m", model, "-i", source, "-o", str(tmp_path / "ray.parquet"),
                            "--keep-columns", "id", "--on-error", "skip", "--batch-rows", "16")
    assert code == 0, err
    assert "skipped 1 row: see" in err
    skipped = (tmp_path / "ray.parquet.skipped.jsonl").read_bytes()
    assert skipped == (tmp_path / "local.parquet.skipped.jsonl").read_bytes()
    assert f'"row":{BAD_ROW},"error":"{REFUSED}"'.encode() in skipped
    scored = pq.read_table(tmp_path / "ray.parquet")
    assert scored.to_pylist() == pq.read_table(tmp_path / "local.parquet").to_pylist()
    assert 1000 + BAD_ROW not in scored["id"].to_pylist() and scored.num_rows == 49


def test_cli_reads_a_folder_and_names_rows_by_their_file(ray_runtime, zoo, churn, tmp_path, capsys):
    parts = tmp_path / "parts"
    parts.mkdir()
    table = pq.read_table(churn["bad.parquet"])
    pq.write_table(table.slice(0, 5), parts / "part-0.parquet")
    pq.write_table(table.slice(5), parts / "part-1.parquet")
    (parts / "_SUCCESS").touch()  # as Spark leaves it
    model = str(zoo[PROBA].path)
    code, err = ray_predict(capsys, "-m", model, "-i", str(parts), "-o", str(tmp_path / "out.parquet"),
                            "--batch-rows", "4")
    assert (code, err) == (1, f"sigserve: Row {BAD_ROW - 5} of part-1.parquet was refused: {REFUSED}\n")
    code, err = ray_predict(capsys, "-m", model, "-i", str(parts), "-o", str(tmp_path / "out.parquet"),
                            "--batch-rows", "4", "--on-error", "skip", "--keep-columns", "id",
                            "--skipped-path", str(tmp_path / "refused.jsonl"))
    assert code == 0, err
    skipped = (tmp_path / "refused.jsonl").read_text()
    assert skipped.startswith(f'{{"file":"part-1.parquet","row":{BAD_ROW - 5},"error":"{REFUSED}"')
    assert pq.read_table(tmp_path / "out.parquet")["id"].to_pylist() == [1000 + i for i in range(50) if i != BAD_ROW]


def test_cli_refuses_mlflows_predictions_document(ray_runtime, zoo, churn, tmp_path, capsys):
    code, err = ray_predict(capsys, "-m", str(zoo[PROBA].path), "-i", str(churn["in.parquet"]),
                            "-o", str(tmp_path / "out.json"))
    assert code == 1
    assert err.startswith("sigserve: --engine ray writes a folder of parquet, csv or jsonl files, not json")
    assert not (tmp_path / "out.json").exists()


def test_cli_reports_a_model_that_fails_to_load_on_the_actors(ray_runtime, zoo, churn, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(zoo["churn_pipeline"].path, broken)
    (broken / "model.skops").write_bytes(b"not a zip file")
    code, err = ray_predict(capsys, "-m", str(broken), "-i", str(churn["in.parquet"]),
                            "-o", str(tmp_path / "o.parquet"))
    assert (code, err) == (2, f"sigserve: Loading {broken} with loader_module 'mlflow.sklearn' failed: "
                              "BadZipFile: File is not a zip file\n")


def test_cli_process_starts_its_own_ray(zoo, churn, tmp_path):
    model, source = str(zoo[PROBA].path), str(churn["in.csv"])
    assert local_predict("-m", model, "-i", source, "-o", str(tmp_path / "local.jsonl"), "--keep-columns", "id"
                         ).returncode == 0
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "sigserve", "predict", "--engine", "ray", "-m", model, "-i", source,
                           "-o", str(tmp_path / "ray.jsonl"), "--keep-columns", "id"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert folder_bytes(tmp_path / "ray.jsonl") == (tmp_path / "local.jsonl").read_bytes()


def test_cli_process_joins_a_ray_cluster_and_fails_in_one_line(ray_runtime, zoo, churn, tmp_path):
    address = ray.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, "-m", "sigserve", "predict", "--engine", "ray", "--ray-address", address,
                           "-m", str(zoo[PROBA].path), "-i", str(churn["bad.parquet"]),
                           "-o", str(tmp_path / "o.parquet")],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"sigserve: Row {BAD_ROW} of the input was refused: {REFUSED}"
    assert "Traceback" not in done.stderr
