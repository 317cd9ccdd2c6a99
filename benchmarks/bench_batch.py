#!/usr/bin/env python
"""Batch scoring, side by side in one run, on the same model directories and the same rows:

- `sigserve predict` (streamed) against `mlflow models predict --env-manager local`, both reading
  the same CSV and writing MLflow's `{"predictions": ...}` JSON: seconds, rows/s, peak memory;
  plus sigserve Parquet → Parquet, the way batch files usually come.
- `sigserve.spark.udf` against `mlflow.pyfunc.spark_udf(env_manager="local")` on one local Spark
  session, the same DataFrame cached in memory, `withColumn` over every signature column, written
  to Spark's `noop` sink (so the scoring is timed, not a file format).
- Floors (`batch_floor.py`): a bare Python that imports the model's library, loads the model from
  its flavor's file and calls its own `predict` once on all rows read from Parquet, nothing else;
  and on Spark, that model alone in a pandas UDF, and pandas and Arrow UDFs with no model at all.
  MLflow's time over a floor is the most any drop-in could gain on that model.

Models: an iris LogisticRegression, a scikit-learn Pipeline over string columns (churn) and an
XGBClassifier (breast cancer), built with real MLflow (`bench_vs_mlflow.build_model`). Answers are
compared before anything is timed. Prints a markdown table and writes JSON next to it.

    python benchmarks/bench_batch.py                  # 1 000 000 rows, about 15 min on 2 cores
    python benchmarks/bench_batch.py --rows 100000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch_floor import bare_arrow_udf, bare_udf, model_udf  # noqa: E402
from bench_vs_mlflow import build_model, model_rows, version_of  # noqa: E402

FLOOR_SCRIPT = Path(__file__).resolve().parent / "batch_floor.py"

MODELS = ("logistic_regression", "churn_pipeline", "xgboost")
LABELS = {"logistic_regression": "LogisticRegression (iris, 4 columns)",
          "churn_pipeline": "Pipeline, string columns (churn, 5 columns)",
          "xgboost": "XGBClassifier (breast cancer, 30 columns)"}


@dataclass
class Timed:
    seconds: float
    peak_rss_mib: float | None = None

    def rows_per_second(self, rows: int) -> float:
        return rows / self.seconds


@dataclass
class ModelResult:
    model: str
    rows: int
    mlflow_predict: Timed
    sigserve_predict: Timed
    sigserve_parquet: Timed
    mlflow_start: Timed  # the same command on one row: imports, loading, writing
    sigserve_start: Timed
    floor_predict: Timed | None = None  # import, load, the model's predict on every row
    floor_start: Timed | None = None
    mlflow_spark_udf: Timed | None = None
    sigserve_spark_udf: Timed | None = None
    floor_spark_model_udf: Timed | None = None  # the model alone in a pandas UDF
    floor_spark_bare_udf: Timed | None = None  # a pandas UDF with no model
    floor_spark_bare_arrow_udf: Timed | None = None  # an Arrow UDF with no model


def run_timed(command: list[str]) -> Timed:
    """Wall time and the peak RSS of the command's process tree, each command in a fresh
    wrapper so the children's maximum is that command's alone."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
             "print(code, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    run = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True)
    code, seconds, peak = run.stdout.split()
    if code != "0":
        raise RuntimeError(f"{command[:4]} failed:\n{run.stderr[-3000:]}")
    return Timed(float(seconds), int(peak) / 1024)


def predict_commands(model: Path, csv_path: Path, workdir: Path) -> tuple[list[str], list[str]]:
    common = ["-m", str(model), "-i", str(csv_path), "-t", "csv"]
    return ([sys.executable, "-m", "mlflow", "models", "predict", *common, "-o", str(workdir / "mlflow.json"),
             "--env-manager", "local"],
            [sys.executable, "-m", "sigserve", "predict", *common, "-o", str(workdir / "sigserve.json")])


def local_runs(model: Path, csv_path: Path, parquet_path: Path, workdir: Path) -> tuple[Timed, Timed, Timed]:
    mlflow_command, sigserve_command = predict_commands(model, csv_path, workdir)
    mlflow, sigserve = run_timed(mlflow_command), run_timed(sigserve_command)
    check_same(json.loads((workdir / "mlflow.json").read_text())["predictions"],
               json.loads((workdir / "sigserve.json").read_text())["predictions"], "sigserve predict")
    parquet = run_timed([sys.executable, "-m", "sigserve", "predict", "-m", str(model), "-i", str(parquet_path),
                         "-o", str(workdir / "sigserve.parquet")])
    return mlflow, sigserve, parquet


def start_up_runs(model: Path, one_row_csv: Path, workdir: Path) -> tuple[Timed, Timed]:
    mlflow_command, sigserve_command = predict_commands(model, one_row_csv, workdir)
    return run_timed(mlflow_command), run_timed(sigserve_command)


def floor_runs(model: Path, parquet_path: Path, one_row_parquet: Path) -> tuple[Timed, Timed]:
    return (run_timed([sys.executable, str(FLOOR_SCRIPT), str(model), str(parquet_path)]),
            run_timed([sys.executable, str(FLOOR_SCRIPT), str(model), str(one_row_parquet)]))


def check_same(expected, actual, what: str) -> None:
    if len(expected) != len(actual) or not np.allclose(np.asarray(expected, dtype=float),
                                                       np.asarray(actual, dtype=float), rtol=1e-9, atol=0):
        raise SystemExit(f"{what} differs from MLflow's answer")


def spark_runs(spark, model: Path, parquet_path: Path, rounds: int) -> dict[str, Timed]:
    import mlflow.pyfunc

    import sigserve.spark

    frame = spark.read.parquet(str(parquet_path)).cache()
    frame.count()
    columns = frame.columns
    mlflow_udf = mlflow.pyfunc.spark_udf(spark, str(model), env_manager="local")
    sigserve_udf = sigserve.spark.udf(spark, str(model))
    sample = frame.limit(2000)
    expected = sample.withColumn("p", mlflow_udf(*columns)).select("p").toPandas()["p"]
    actual = sample.withColumn("p", sigserve_udf(*columns)).select("p").toPandas()["p"]
    check_same(expected.tolist(), actual.tolist(), "sigserve.spark.udf")
    timings = {}
    udfs = (("mlflow", mlflow_udf), ("sigserve", sigserve_udf), ("floor_model", model_udf(model, columns)),
            ("floor_bare", bare_udf(columns)), ("floor_bare_arrow", bare_arrow_udf(columns)))
    for name, udf in udfs:
        frame.withColumn("p", udf(*columns)).write.format("noop").mode("overwrite").save()  # warm: workers load
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            frame.withColumn("p", udf(*columns)).write.format("noop").mode("overwrite").save()
            best = min(best, time.perf_counter() - started)
        timings[name] = Timed(best)
    frame.unpersist()
    return timings


def spark_session(cores: int):
    from pyspark.sql import SparkSession

    here = str(Path(__file__).resolve().parent)  # the floor UDFs' module, for Spark's Python workers
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))

    return (SparkSession.builder.master(f"local[{cores}]").appName("sigserve-bench-batch")
            .config("spark.ui.enabled", "false").config("spark.driver.memory", "4g")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000").getOrCreate())


def after_start_up(run: Timed, start: Timed) -> Timed:
    return Timed(max(run.seconds - start.seconds, 1e-3))


def render(results: list[ModelResult]) -> str:
    lines = ["| model | rows | what | MLflow s | sigserve (or floor) s | MLflow rows/s | sigserve rows/s "
             "| MLflow s / sigserve s | MLflow peak MiB | sigserve peak MiB |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        rows, label = result.rows, LABELS[result.model]
        pairs = [("`predict`, CSV → JSON", result.mlflow_predict, result.sigserve_predict),
                 ("`predict`, sigserve Parquet → Parquet", result.mlflow_predict, result.sigserve_parquet),
                 ("`predict` on 1 row (start-up)", result.mlflow_start, result.sigserve_start),
                 ("`predict`, CSV → JSON, after start-up", after_start_up(result.mlflow_predict, result.mlflow_start),
                  after_start_up(result.sigserve_predict, result.sigserve_start))]
        if result.floor_predict is not None:
            pairs += [("floor: import, load, the model's `predict` on Parquet rows", result.mlflow_predict,
                       result.floor_predict),
                      ("floor on 1 row (start-up)", result.mlflow_start, result.floor_start),
                      ("floor after start-up", after_start_up(result.mlflow_predict, result.mlflow_start),
                       after_start_up(result.floor_predict, result.floor_start))]
        if result.sigserve_spark_udf is not None:
            pairs += [("Spark UDF (local[2])", result.mlflow_spark_udf, result.sigserve_spark_udf),
                      ("Spark floor: the model alone in a pandas UDF", result.mlflow_spark_udf,
                       result.floor_spark_model_udf),
                      ("Spark floor: a pandas UDF with no model", result.mlflow_spark_udf,
                       result.floor_spark_bare_udf),
                      ("Spark floor: an Arrow UDF with no model", result.mlflow_spark_udf,
                       result.floor_spark_bare_arrow_udf)]
        for what, theirs, ours in pairs:
            ratio = theirs.seconds / ours.seconds
            shown_rows = 1 if "1 row" in what else rows
            peaks = [f"{t.peak_rss_mib:,.0f}" if t.peak_rss_mib else "–" for t in (theirs, ours)]
            speeds = ["–", "–"] if shown_rows == 1 else [f"{t.rows_per_second(rows):,.0f}" for t in (theirs, ours)]
            lines.append(f"| {label} | {shown_rows:,} | {what} | {theirs.seconds:.2f} | {ours.seconds:.2f} "
                         f"| {speeds[0]} | {speeds[1]} "
                         f"| {ratio:.2f}× | {peaks[0]} | {peaks[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--rounds", type=int, default=2, help="Spark runs per UDF (the best is kept)")
    parser.add_argument("--spark-cores", type=int, default=2)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="JSON results (default: a temp file)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    workdir = Path(tempfile.mkdtemp(prefix="sigserve-bench-batch-"))
    spark = None if args.no_spark else spark_session(args.spark_cores)
    results = []
    for kind in args.models:
        model = build_model(workdir, kind)
        rows = model_rows(kind, args.rows, seed=1)
        csv_path, parquet_path = workdir / f"{kind}.csv", workdir / f"{kind}.parquet"
        rows.to_csv(csv_path, index=False)
        rows.to_parquet(parquet_path, index=False, row_group_size=100_000)
        print(f"{kind}: {args.rows:,} rows, local runs", file=sys.stderr, flush=True)
        one_row = workdir / f"{kind}-1.csv"
        rows.head(1).to_csv(one_row, index=False)
        one_row_parquet = workdir / f"{kind}-1.parquet"
        rows.head(1).to_parquet(one_row_parquet, index=False)
        mlflow_predict, sigserve_predict, sigserve_parquet = local_runs(model, csv_path, parquet_path, workdir)
        result = ModelResult(kind, args.rows, mlflow_predict, sigserve_predict, sigserve_parquet,
                             *start_up_runs(model, one_row, workdir))
        result.floor_predict, result.floor_start = floor_runs(model, parquet_path, one_row_parquet)
        if spark is not None:
            print(f"{kind}: Spark runs", file=sys.stderr, flush=True)
            timings = spark_runs(spark, model, parquet_path, args.rounds)
            result.mlflow_spark_udf, result.sigserve_spark_udf = timings["mlflow"], timings["sigserve"]
            result.floor_spark_model_udf, result.floor_spark_bare_udf = timings["floor_model"], timings["floor_bare"]
            result.floor_spark_bare_arrow_udf = timings["floor_bare_arrow"]
        results.append(result)
        print(render(results[-1:]), file=sys.stderr, flush=True)
    table = render(results)
    print(table)
    output = args.output or workdir / "bench_batch.json"
    versions = {dist: version_of(dist) for dist in ("sigserve", "mlflow", "pyspark", "pandas", "pyarrow")}
    output.write_text(json.dumps({"cpus": os.cpu_count(), "versions": versions,
                                  "results": [asdict(r) for r in results]}, indent=2))
    print(f"\nresults: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
