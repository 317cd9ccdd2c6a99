"""`sigserve predict` streaming a file in batches: the server's answers and verdicts, row by row,
for every input and output format, with bounded memory, carried columns, refused rows named or
skipped, and a progress line only on a terminal. Real MLflow models, real `sigserve` processes."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sigserve.batch.chunks import csv_records, read_bytes_for
from sigserve.cli import main

MODELS = ("churn_pipeline", "churn_pipeline_proba", "cancer_random_forest_proba", "xgb_classifier",
          "lgbm_classifier", "pythonmodel_artifacts_params")
REPEAT = 9  # rows tiled so that --batch-rows 7 splits them unevenly
BATCH_ROWS = "7"


def sigserve(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sigserve", *args], capture_output=True, cwd=cwd, input=stdin,
                          timeout=120)


def tiled(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([rows] * REPEAT, ignore_index=True)


def write_inputs(frame: pd.DataFrame, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": folder / "in.parquet", "csv": folder / "in.csv", "jsonl": folder / "in.jsonl"}
    frame.to_parquet(paths["parquet"], index=False)
    frame.to_csv(paths["csv"], index=False)
    paths["jsonl"].write_text("".join(json.dumps(record) + "\n" for record in frame.to_dict(orient="records")))
    return paths


def read_output(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return pd.DataFrame([orjson.loads(line) for line in path.read_bytes().splitlines()])


def as_lists(values) -> list:
    return [value.tolist() if isinstance(value, np.ndarray) else
            json.loads(value) if isinstance(value, str) and value.startswith("[") else value for value in values]


@pytest.fixture(scope="module")
def inputs(zoo, tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("batch-inputs")
    return {name: write_inputs(tiled(zoo[name].rows), root / name) for name in MODELS}


OUTPUT_FOR = {"parquet": "csv", "csv": "jsonl", "jsonl": "parquet"}  # each input and each output once


@pytest.mark.parametrize("name", MODELS)
def test_every_format_gives_the_servers_predictions(name, zoo, inputs, server_factory, tmp_path) -> None:
    server = server_factory(zoo[name].path)
    csv_body = inputs[name]["csv"].read_bytes()
    answer = server.post(csv_body, "text/csv")
    assert answer.status_code == 200, answer.text
    expected = answer.json()["predictions"]
    document = sigserve("predict", "-m", str(zoo[name].path), "-i", str(inputs[name]["jsonl"]),
                        "--batch-rows", BATCH_ROWS)
    assert document.returncode == 0, document.stderr.decode()
    assert orjson.loads(document.stdout)["predictions"] == expected
    for input_format, source in inputs[name].items():  # in this process: the subprocess above is the real one
        out = tmp_path / f"{input_format}.{OUTPUT_FOR[input_format]}"
        code = main(["predict", "-m", str(zoo[name].path), "-i", str(source), "-o", str(out), "--batch-rows",
                     BATCH_ROWS])
        assert code == 0, input_format
        table = read_output(out)
        if isinstance(expected[0], dict):  # a DataFrame answered as records: its columns
            assert table.to_dict(orient="records") == expected, input_format
        else:
            assert as_lists(table["prediction"]) == expected, input_format


def test_the_json_document_is_the_servers_bytes_and_mlflows_answer(zoo, inputs, server_factory) -> None:
    """The default output is what `mlflow models predict` writes: one {"predictions": [...]}."""
    model = zoo["churn_pipeline_proba"]
    body = inputs["churn_pipeline_proba"]["csv"].read_bytes()
    streamed = sigserve("predict", "-m", str(model.path), "-i", str(inputs["churn_pipeline_proba"]["csv"]),
                        "--batch-rows", BATCH_ROWS)
    assert streamed.stdout.strip() == server_factory(model.path).post(body, "text/csv").content.strip()
    mlflow = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "predict", "-m", str(model.path), "-t", "csv",
         "-i", str(inputs["churn_pipeline_proba"]["csv"]), "--env-manager", "local"],
        capture_output=True, timeout=300,
    )
    assert mlflow.returncode == 0, mlflow.stderr.decode()[-2000:]
    mlflow_doc = json.loads(mlflow.stdout.decode().strip().splitlines()[-1])
    np.testing.assert_allclose(orjson.loads(streamed.stdout)["predictions"], mlflow_doc["predictions"], rtol=1e-12)


def test_kept_columns_are_carried_beside_the_predictions(zoo, tmp_path) -> None:
    frame = tiled(zoo["churn_pipeline_proba"].rows)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    frame["batch_day"] = 20261202
    paths = write_inputs(frame, tmp_path / "in")
    for input_format, source in paths.items():
        out = tmp_path / f"{input_format}.parquet"
        run = sigserve("predict", "-m", str(zoo["churn_pipeline_proba"].path), "-i", str(source), "-o", str(out),
                       "--batch-rows", BATCH_ROWS, "--keep-columns", "customer_id,batch_day")
        assert run.returncode == 0, run.stderr.decode()
        table = pq.read_table(out)
        assert table.column_names == ["customer_id", "batch_day", "prediction"], input_format
        assert table["customer_id"].to_pylist() == frame["customer_id"].tolist()
        assert set(table["batch_day"].to_pylist()) == {20261202}
        assert str(table.schema.field("batch_day").type) == "int64", input_format


def test_kept_columns_that_are_missing_or_clash_are_refused(zoo, inputs, tmp_path) -> None:
    source = inputs["churn_pipeline"]["parquet"]
    missing = sigserve("predict", "-m", str(zoo["churn_pipeline"].path), "-i", str(source),
                       "-o", str(tmp_path / "a.parquet"), "--keep-columns", "nope")
    assert missing.returncode == 1 and b"no column 'nope'" in missing.stderr
    frame = tiled(zoo["churn_pipeline"].rows).assign(prediction=1)
    clash = write_inputs(frame, tmp_path / "clash")["parquet"]
    run = sigserve("predict", "-m", str(zoo["churn_pipeline"].path), "-i", str(clash),
                   "-o", str(tmp_path / "b.parquet"), "--keep-columns", "prediction")
    assert run.returncode == 1 and b"prediction" in run.stderr
    assert not (tmp_path / "b.parquet").exists()


def write_text_inputs(frame: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """CSV and JSON Lines, which can hold a value of the wrong type in one row (Parquet cannot)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "in.csv", "jsonl": folder / "in.jsonl"}
    frame.to_csv(paths["csv"], index=False)
    paths["jsonl"].write_text("".join(json.dumps(record) + "\n" for record in frame.to_dict(orient="records")))
    return paths


def bad_row_inputs(zoo, folder: Path, bad: int) -> dict[str, Path]:
    frame = tiled(zoo["churn_pipeline"].rows).astype({"tenure": object})
    frame.loc[bad, "tenure"] = "three"
    return write_text_inputs(frame, folder)


@pytest.mark.parametrize("input_format", ["csv", "jsonl"])
def test_a_refused_row_ends_the_run_naming_its_row_and_the_servers_reason(input_format, zoo, server_factory,
                                                                          tmp_path) -> None:
    bad = 23
    paths = bad_row_inputs(zoo, tmp_path / "in", bad)
    out = tmp_path / "out.parquet"
    run = sigserve("predict", "-m", str(zoo["churn_pipeline"].path), "-i", str(paths[input_format]), "-o", str(out),
                   "--batch-rows", "10")
    assert run.returncode == 1
    message = run.stderr.decode()
    assert f"Row {bad} of the input was refused" in message and "tenure" in message and "three" in message
    assert "Traceback" not in message
    assert not out.exists() and not list(tmp_path.glob(".out.parquet.*"))  # no half-written output
    one_row = pd.read_csv(paths["csv"]).iloc[[bad]]
    server = server_factory(zoo["churn_pipeline"].path)
    refusal = server.post(one_row.to_csv(index=False), "text/csv") if input_format == "csv" else \
        server.post({"dataframe_records": one_row.to_dict(orient="records")})
    assert refusal.status_code == 400
    assert refusal.json()["message"].replace("row 0", f"row {bad}") in message


def test_skipped_rows_go_to_a_side_file_with_their_number_reason_and_values(zoo, tmp_path) -> None:
    frame = tiled(zoo["churn_pipeline"].rows).astype({"tenure": object})
    bad_rows = [0, 8, 9, 40]
    for row in bad_rows:
        frame.loc[row, "tenure"] = f"bad{row}"
    source = write_text_inputs(frame, tmp_path / "in")["csv"]
    out = tmp_path / "out.csv"
    run = sigserve("predict", "-m", str(zoo["churn_pipeline"].path), "-i", str(source), "-o", str(out),
                   "--batch-rows", BATCH_ROWS, "--on-error", "skip", "--keep-columns", "plan")
    assert run.returncode == 0, run.stderr.decode()
    assert f"skipped {len(bad_rows)} of {len(frame)} rows" in run.stderr.decode()
    assert len(pd.read_csv(out)) == len(frame) - len(bad_rows)
    skipped = [orjson.loads(line) for line in Path(f"{out}.skipped.jsonl").read_bytes().splitlines()]
    assert [entry["row"] for entry in skipped] == bad_rows
    for entry in skipped:
        assert entry["values"]["tenure"] == f"bad{entry['row']}"
        assert "tenure" in entry["error"] and f"row {entry['row']}" in entry["error"]
    good = frame.drop(index=bad_rows).reset_index(drop=True).astype({"tenure": "int64"})
    whole = sigserve("predict", "-m", str(zoo["churn_pipeline"].path), "-i",
                     str(write_inputs(good, tmp_path / "good")["csv"]), "-o", str(tmp_path / "good.csv"))
    assert pd.read_csv(out)["prediction"].tolist() == pd.read_csv(tmp_path / "good.csv")["prediction"].tolist()
    assert whole.returncode == 0


def test_an_input_no_row_could_fix_is_refused_even_when_skipping(zoo, tmp_path) -> None:
    frame = tiled(zoo["churn_pipeline"].rows).drop(columns=["tenure"])
    source = write_inputs(frame, tmp_path / "in")["parquet"]
    run = sigserve("predict", "-m", str(zoo["churn_pipeline"].path), "-i", str(source),
                   "-o", str(tmp_path / "out.parquet"), "--on-error", "skip")
    assert run.returncode == 1
    assert b"refused before any row" in run.stderr and b"tenure" in run.stderr
    assert not (tmp_path / "out.parquet.skipped.jsonl").exists()


def peak_rss_kib(*args: str) -> int:
    probe = ("import resource, subprocess, sys; "
             "code = subprocess.run(sys.argv[1:]).returncode; "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if code == 0 else -1)")
    run = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "sigserve", *args],
                         capture_output=True, text=True, timeout=300)
    return int(run.stdout.strip().splitlines()[-1])


def test_memory_stays_that_of_one_batch_whatever_the_file_size(zoo, tmp_path) -> None:
    rows = zoo["churn_pipeline_proba"].rows
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    pd.concat([rows] * 4_000, ignore_index=True).to_csv(small, index=False)  # 20 000 rows
    pd.concat([rows] * 80_000, ignore_index=True).to_csv(large, index=False)  # 400 000 rows, ~20 MB
    model = str(zoo["churn_pipeline_proba"].path)
    flags = ("--batch-rows", "2000", "-t", "csv")
    small_peak = peak_rss_kib("predict", "-m", model, "-i", str(small), "-o", str(tmp_path / "s.parquet"), *flags)
    large_peak = peak_rss_kib("predict", "-m", model, "-i", str(large), "-o", str(tmp_path / "l.parquet"), *flags)
    whole_peak = peak_rss_kib("predict", "-m", model, "-i", str(large), "-o", str(tmp_path / "w.parquet"),
                              "--batch-rows", "400000")  # one batch: the whole file in memory
    assert small_peak > 0 and large_peak > 0 and whole_peak > 0
    assert large_peak < small_peak + 16 * 1024, (small_peak, large_peak)  # 20x the rows, under 16 MiB more
    assert whole_peak > large_peak + 40 * 1024, (large_peak, whole_peak)  # while the whole file costs more


def test_csv_records_read_in_any_block_size_keep_quoted_line_breaks_and_quotes() -> None:
    data = (b'id,note,score\r\n1,"two\nlines",0.5\r\n\n2,"a ""quoted"" word, and a comma",1.5\n'
            b'3,"""\n""",2\n4,plain,3')
    expected = list(csv.reader(io.StringIO(data.decode(), newline="")))
    expected = [row for row in expected if row]
    for read_bytes in (1, 2, 3, 5, 8, 13, len(data), 1 << 20):
        records = list(csv_records(io.BytesIO(data), read_bytes))
        parsed = [next(csv.reader(io.StringIO(record.decode(), newline=""))) for record in records]
        assert parsed == expected, read_bytes
    assert read_bytes_for(2_000) < read_bytes_for(100_000) <= 4 * 1024 * 1024 and read_bytes_for(1) >= 64 * 1024


def run_on_terminal(*args: str) -> tuple[int, bytes]:
    """stderr on a pseudo-terminal, stdout and stdin left to the caller's pipes."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "sigserve", *args], stderr=follower, stdout=subprocess.DEVNULL)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=120), output


def test_a_progress_line_on_a_terminal_and_none_when_piped(zoo, tmp_path) -> None:
    source = tmp_path / "in.parquet"
    pd.concat([zoo["churn_pipeline"].rows] * 400, ignore_index=True).to_parquet(source, index=False)
    args = ("predict", "-m", str(zoo["churn_pipeline"].path), "-i", str(source), "-o", str(tmp_path / "o.parquet"),
            "--batch-rows", "100")
    code, terminal = run_on_terminal(*args)
    assert code == 0
    assert b"2,000 rows" in terminal and b"rows/s" in terminal and b"100.0%" not in terminal.split(b"\r")[-1]
    piped = sigserve(*args)
    assert piped.returncode == 0 and piped.stderr == b""


def test_an_mlflow_payload_and_stdin_are_still_scored_whole(zoo, inputs, server_factory) -> None:
    model = zoo["churn_pipeline"]
    body = inputs["churn_pipeline"]["csv"].read_bytes()
    expected = server_factory(model.path).post(body, "text/csv").content.strip()
    assert sigserve("predict", "-m", str(model.path), "-t", "csv", stdin=body).stdout.strip() == expected
    payload = json.dumps({"dataframe_split": pd.read_csv(inputs["churn_pipeline"]["csv"]).to_dict(orient="split")})
    assert sigserve("predict", "-m", str(model.path), stdin=payload.encode()).stdout.strip() == expected
    refused = sigserve("predict", "-m", str(model.path), "--keep-columns", "plan", stdin=payload.encode())
    assert refused.returncode == 1 and b"--keep-columns" in refused.stderr
