"""Spark: `sigserve.spark.udf` against `mlflow.pyfunc.spark_udf(env_manager="local")` on the same
rows in the same job, and `sigserve predict --engine spark` against `sigserve predict`.

One real local Spark (local[2], Java from tests/tools/install_java.sh) for the module; the CLI runs
in this process on that session, and once as a real process with its own Spark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from sigserve.cli import main
from sigserve.errors import BadRequest

TOOLS = Path(__file__).parent / "tools"
REPEAT = 4  # zoo rows tiled, over the session's two partitions
BAD_ROW = 7


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    subprocess.run(["bash", str(TOOLS / "install_java.sh")], check=True)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers import this interpreter's sigserve
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("sigserve-tests")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("warehouse")))
               .getOrCreate())
    session.sparkContext.setLogLevel("OFF")
    yield session
    session.stop()


def tiled(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([rows] * REPEAT, ignore_index=True)


def udf_pair(spark, path: Path, result_type=None, params=None, arrow=None):
    import mlflow.pyfunc

    from sigserve.spark import udf

    return (udf(spark, str(path), result_type, params=params, arrow=arrow),
            mlflow.pyfunc.spark_udf(spark, str(path), result_type, env_manager="local", params=params))


def eval_type(arrow: bool) -> int:
    """The UDF kind asked for: an Arrow UDF where pyspark has them (4.1+)."""
    from pyspark.util import PythonEvalType

    from sigserve.spark.model_udf import arrow_udfs_available

    if arrow and arrow_udfs_available():
        return PythonEvalType.SQL_SCALAR_ARROW_ITER_UDF
    return PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF


def arguments(frame: pd.DataFrame, call: str) -> list:
    from pyspark.sql import functions as F

    return {"default": [], "columns": [F.col(name) for name in frame.columns],
            "struct": [F.struct(*frame.columns)]}[call]


UDF_CASES = [
    ("churn_pipeline", None, "default", None),  # a 1-D output tensor: array<long> inferred
    ("churn_pipeline", "long", "columns", None),
    ("churn_pipeline", "string", "struct", None),
    ("churn_pipeline_proba", "array<double>", "default", None),  # all columns of the type
    ("churn_pipeline_proba", "double", "default", None),  # the leftmost
    ("churn_pipeline_proba", "array<string>", "columns", None),
    ("xgb_classifier", None, "default", None),
    ("xgb_regressor", "float", "default", None),  # long and float32 input columns
    ("model_from_code", "struct<value: double>", "default", None),  # a field picked by name; loaded by MLflow
    ("pythonmodel_artifacts_params", None, "columns", {"scale": 2.0}),
]


PANDAS_UDF_CASES = [UDF_CASES[0], UDF_CASES[2], UDF_CASES[5], UDF_CASES[8]]


@pytest.mark.parametrize(("name", "result_type", "call", "params", "arrow"),
                         [(*case, None) for case in UDF_CASES] + [(*case, False) for case in PANDAS_UDF_CASES])
def test_the_udf_answers_as_spark_udf(name, result_type, call, params, arrow, zoo, spark) -> None:
    """An Arrow UDF by default (pyspark 4.1+); the pandas UDF of older pyspark gives the same."""
    frame = tiled(zoo[name].rows)
    ours, theirs = udf_pair(spark, zoo[name].path, result_type, params, arrow)
    assert ours.returnType == theirs.returnType
    assert ours.evalType == eval_type(arrow is None)
    args = arguments(frame, call)
    rows = spark.createDataFrame(frame).select(theirs(*args).alias("mlflow"), ours(*args).alias("sigserve")).collect()
    assert len(rows) == len(frame)
    assert [row.sigserve for row in rows] == [row.mlflow for row in rows]


LABEL_AND_SCORE = """
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class LabelAndScore(PythonModel):
    def predict(self, context, model_input, params=None):
        score = model_input["monthly_charges"].astype("float64") / 100
        return pd.DataFrame({"label": (score > 0.6).astype("int64"), "score": score})


mlflow.models.set_model(LabelAndScore())
"""


@pytest.fixture(scope="module")
def two_columns(zoo, tmp_path_factory) -> Path:
    """A model from code answering a DataFrame of two columns (an output schema of two)."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    folder = tmp_path_factory.mktemp("two_columns")
    (folder / "label_and_score.py").write_text(LABEL_AND_SCORE)
    rows = zoo["churn_pipeline"].rows
    output = pd.DataFrame({"label": [0] * len(rows), "score": [0.5] * len(rows)})
    mlflow.pyfunc.save_model(folder / "model", python_model=str(folder / "label_and_score.py"),
                             signature=infer_signature(rows, output), pip_requirements=["mlflow", "pandas"])
    return folder / "model"


@pytest.mark.parametrize("result_type", [None, "struct<score: double, label: long>", "double", "array<string>"])
def test_struct_fields_are_picked_by_name(result_type, two_columns, zoo, spark) -> None:
    frame = tiled(zoo["churn_pipeline"].rows)
    ours, theirs = udf_pair(spark, two_columns, result_type)
    assert ours.returnType == theirs.returnType
    rows = spark.createDataFrame(frame).select(theirs().alias("mlflow"), ours().alias("sigserve")).collect()
    assert [row.sigserve for row in rows] == [row.mlflow for row in rows]
    if result_type is None:
        assert rows[0].sigserve.asDict() == {"label": 1, "score": 0.9264}


WHEN_AND_COUNT = """
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class WhenAndCount(PythonModel):
    def predict(self, context, model_input, params=None):
        when = model_input["when"]
        return (when.dt.hour * 100 + when.dt.minute + model_input["count"].fillna(-0.5)).astype("float64")


mlflow.models.set_model(WhenAndCount())
"""


@pytest.fixture(scope="module")
def when_and_count(tmp_path_factory) -> Path:
    """A model of a datetime and a double input, from code (loaded by MLflow on the executors)."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    folder = tmp_path_factory.mktemp("when_and_count")
    (folder / "when_and_count.py").write_text(WHEN_AND_COUNT)
    signature = ModelSignature(Schema([ColSpec("datetime", "when"), ColSpec("double", "count")]),
                               Schema([ColSpec("double")]))
    mlflow.pyfunc.save_model(folder / "model", python_model=str(folder / "when_and_count.py"), signature=signature,
                             pip_requirements=["mlflow", "pandas"])
    return folder / "model"


def test_timestamps_and_integers_with_nulls_reach_the_model_as_through_pandas(when_and_count, spark) -> None:
    """An Arrow UDF gets Spark's timestamps in UTC and a long column with nulls as integers: the
    model gets them as a pandas UDF would, times in the session's zone and nulls as NaN."""
    import datetime

    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("when", T.TimestampType()), T.StructField("count", T.LongType())])
    noon = datetime.datetime(2026, 7, 1, 12, 30, tzinfo=datetime.timezone.utc)
    rows = [(noon + datetime.timedelta(hours=5 * i), None if i % 3 else i) for i in range(12)]
    arrow, mlflow_udf = udf_pair(spark, when_and_count)  # built before the session's zone changes
    pandas_udf, _ = udf_pair(spark, when_and_count, arrow=False)
    assert arrow.evalType == eval_type(True)
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        data = spark.createDataFrame(rows, schema)
        answers = data.select(mlflow_udf().alias("mlflow"), arrow().alias("arrow"),
                              pandas_udf().alias("pandas")).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    assert [row.arrow for row in answers] == [row.mlflow for row in answers] == [row.pandas for row in answers]
    assert [row.arrow for row in answers[:2]] == [830.0, 1329.5]  # 12:30 and 17:30 UTC in New York, 0 and null


def test_timestamps_in_lists_and_structs_are_the_sessions_wall_clock_times() -> None:
    import datetime

    import pyarrow as pa

    from sigserve.spark.model_udf import local_times

    utc = datetime.timezone.utc
    times = [datetime.datetime(2026, 7, 1, 12, 30, tzinfo=utc), None, datetime.datetime(2026, 1, 1, tzinfo=utc)]
    lists = pa.array([[times[0], times[2]], None, [times[1]]], type=pa.list_(pa.timestamp("us", tz="UTC")))
    assert local_times(lists, "America/New_York").to_pylist() == [
        [datetime.datetime(2026, 7, 1, 8, 30), datetime.datetime(2025, 12, 31, 19, 0)], None, [None]]
    structs = pa.StructArray.from_arrays([pa.array(times, type=pa.timestamp("us", tz="UTC")), pa.array([1, 2, 3])],
                                         names=["when", "n"], mask=pa.array([False, True, False]))
    assert local_times(structs.slice(1), "Asia/Tokyo").to_pylist() == [
        None, {"when": datetime.datetime(2026, 1, 1, 9, 0), "n": 3}]


@pytest.mark.parametrize("result_type", ["array<array<double>>", "struct<p: array<float>>"])
def test_results_spark_converts_from_numpy_scalars_stay_with_a_pandas_udf(result_type, zoo, spark) -> None:
    """Spark hands its Arrow conversion numpy scalars from these (a float32 NaN stays NaN there,
    where Arrow would null it): an Arrow UDF could not give the same values."""
    from sigserve.spark import udf

    path = str(zoo["churn_pipeline_proba"].path)
    assert udf(spark, path, result_type).evalType == eval_type(False)
    assert udf(spark, path, "array<float>").evalType == eval_type(True)


def test_a_null_in_a_long_column_is_refused_alike_by_arrow_and_pandas_udfs(zoo, spark) -> None:
    from pyspark.sql import functions as F

    data = spark.createDataFrame(tiled(zoo["churn_pipeline"].rows)).coalesce(1)
    data = data.withColumn("tenure", F.when(F.monotonically_increasing_id() == BAD_ROW, None).otherwise(F.col("tenure")))
    messages = []
    for arrow in (None, False):
        ours, _ = udf_pair(spark, zoo["churn_pipeline"].path, "long", arrow=arrow)
        with pytest.raises(Exception) as refused:
            data.select(ours()).collect()
        messages.append([line for line in str(refused.value).splitlines() if "sigserve.errors." in line][-1])
    assert messages[0] == messages[1]
    assert "Column 'tenure': incompatible input type float64" in messages[0] and "missing values" in messages[0]


def test_a_2d_output_tensor_is_one_array_per_row_where_spark_udf_fails(zoo, spark) -> None:
    """MLflow infers array<array<double>> for class probabilities, then fails converting each
    row's 1-D values ("'numpy.float64' object is not iterable"); sigserve wraps them as one."""
    from pyspark.sql.types import ArrayType, DoubleType

    frame = tiled(zoo["churn_pipeline_proba"].rows)
    ours, theirs = udf_pair(spark, zoo["churn_pipeline_proba"].path)
    assert ours.returnType == theirs.returnType == ArrayType(ArrayType(DoubleType()))
    data = spark.createDataFrame(frame)
    with pytest.raises(Exception, match="object is not iterable"):
        data.select(theirs()).collect()
    flat, _ = udf_pair(spark, zoo["churn_pipeline_proba"].path, "array<double>")
    rows = data.select(ours().alias("nested"), flat().alias("flat")).collect()
    assert [row.nested for row in rows] == [[row.flat] for row in rows]


def test_a_refused_row_fails_the_job_with_sigserves_reason_and_row(zoo, spark) -> None:
    """Text for the boolean `paperless`: sigserve converts it value by value, as the server does a
    text column, and names the value it cannot convert; spark_udf refuses any batch of text for it."""
    booleans = tiled(zoo["churn_pipeline"].rows).assign(paperless=True)
    text = booleans.assign(paperless="true")
    text.loc[BAD_ROW, "paperless"] = "maybe"
    data = spark.createDataFrame(text).coalesce(1)
    ours, theirs = udf_pair(spark, zoo["churn_pipeline"].path, "long")
    good = data.filter(data.paperless != "maybe").select(ours()).collect()
    expected = spark.createDataFrame(booleans.drop(index=BAD_ROW)).coalesce(1).select(theirs()).collect()
    assert [row[0] for row in good] == [row[0] for row in expected]
    with pytest.raises(Exception) as refused:
        data.select(ours()).collect()
    assert (f"Row {BAD_ROW} of partition 0 was refused: Column 'paperless', row {BAD_ROW}: value 'maybe' cannot "
            "be converted to boolean") in str(refused.value)
    with pytest.raises(Exception) as mlflow_refused:
        data.select(theirs()).collect()
    assert "Incompatible input types for column paperless. Can not safely convert str to bool" in str(
        mlflow_refused.value)


def test_udf_argument_rules_are_spark_udfs(zoo, spark) -> None:
    from pyspark.sql import functions as F

    frame = tiled(zoo["churn_pipeline"].rows)
    data = spark.createDataFrame(frame.assign(extra=1.0))
    ours, theirs = udf_pair(spark, zoo["churn_pipeline"].path, "long")
    columns = [F.col(name) for name in [*frame.columns, "extra"]]  # beyond the signature's: dropped
    rows = data.select(ours(*columns).alias("s"), theirs(*columns).alias("m")).collect()
    assert [row.s for row in rows] == [row.m for row in rows]
    with pytest.raises(Exception, match="Model input is missing required columns"):
        data.select(ours(*columns[:3])).collect()
    with pytest.raises(Exception, match="Model input is missing required columns"):
        data.select(theirs(*columns[:3])).collect()
    tensor, mlflow_tensor = udf_pair(spark, zoo["pythonmodel_tensor"].path)
    with pytest.raises(BadRequest, match="Cannot apply udf because no column names specified"):
        tensor()
    with pytest.raises(Exception, match="Cannot apply udf because no column names specified"):
        mlflow_tensor()
    with pytest.raises(BadRequest, match="Invalid result type"):
        udf_pair(spark, zoo["churn_pipeline"].path, "map<int, string>")
    none_compatible, _ = udf_pair(spark, zoo["churn_pipeline"].path, "boolean")
    with pytest.raises(Exception, match="did not produce any values compatible with the requested type"):
        data.select(none_compatible()).collect()


def test_a_registry_alias_is_resolved_on_the_driver(zoo, spark, tmp_path) -> None:
    from sigserve.spark import udf

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register = subprocess.run([sys.executable, "-m", "sigserve", "registry", "register", "--name", "churn", "--path",
                               str(zoo["churn_pipeline_proba"].path), "--alias", "champion", "--registry-uri", uri],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert register.returncode == 0, register.stderr
    data = spark.createDataFrame(tiled(zoo["churn_pipeline_proba"].rows))
    champion = udf(spark, "models:/churn@champion", "array<double>", registry_uri=uri)
    by_path = udf(spark, str(zoo["churn_pipeline_proba"].path), "array<double>")
    rows = data.select(champion().alias("champion"), by_path().alias("path")).collect()
    assert [row.champion for row in rows] == [row.path for row in rows]


# --- sigserve predict --engine spark


@pytest.fixture(scope="module")
def churn(zoo, tmp_path_factory) -> dict[str, Path]:
    """The churn rows with an `id`, as Parquet, CSV and JSON Lines; `bad.*`: a text `tenure` in
    one row (CSV and JSON Lines can hold one)."""
    folder = tmp_path_factory.mktemp("churn")
    frame = tiled(zoo["churn_pipeline"].rows)
    frame.insert(0, "id", range(100, 100 + len(frame)))
    bad = frame.astype({"tenure": object})
    bad.loc[BAD_ROW, "tenure"] = "three"
    frame.to_parquet(folder / "in.parquet", index=False)
    for name, rows in (("in", frame), ("bad", bad)):
        rows.to_csv(folder / f"{name}.csv", index=False)
        rows.to_json(folder / f"{name}.jsonl", orient="records", lines=True)
    return {path.name: path for path in folder.iterdir()}


def local_predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sigserve", "predict", *args], capture_output=True, text=True,
                          timeout=120)


def spark_predict(capsys, *args: str) -> tuple[int, str]:
    """`sigserve predict --engine spark` in this process, on the module's session."""
    capsys.readouterr()
    code = main(["predict", "--engine", "spark", "--spark-master", "local[2]", *args])
    return code, capsys.readouterr().err


def read_folder(folder: Path) -> pd.DataFrame:
    """A Spark output folder's part files (or `sigserve predict`'s single file) as one frame."""
    parts = sorted(folder.glob("part-*")) if folder.is_dir() else [folder]
    if folder.suffix == ".parquet":
        return pd.concat([pq.read_table(part).to_pandas() for part in parts], ignore_index=True)
    if folder.suffix == ".csv":
        return pd.concat([pd.read_csv(part) for part in parts if part.stat().st_size], ignore_index=True)
    return pd.DataFrame([json.loads(line) for part in parts for line in part.read_text().splitlines()])


def as_lists(values) -> list:
    return [value.tolist() if hasattr(value, "tolist") else json.loads(value) if isinstance(value, str) else value
            for value in values]


def test_the_cli_on_spark_writes_what_sigserve_predict_writes(zoo, spark, churn, tmp_path) -> None:
    """A real process with its own Spark: Parquet in, Parquet out, an id carried through; with
    mlflow made unimportable on the driver and the executors (scikit-learn loads natively)."""
    blocker = tmp_path / "no_mlflow" / "mlflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('mlflow is not installed here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker.parent),
                                                                     os.environ.get("PYTHONPATH")]))}
    model = str(zoo["churn_pipeline_proba"].path)
    local = local_predict("-m", model, "-i", str(churn["in.parquet"]), "-o", str(tmp_path / "local.parquet"),
                          "--keep-columns", "id")
    assert local.returncode == 0, local.stderr
    run = subprocess.run([sys.executable, "-m", "sigserve", "predict", "--engine", "spark", "--spark-master",
                          "local[2]", "-m", model, "-i", str(churn["in.parquet"]), "-o", str(tmp_path / "out.parquet"),
                          "--keep-columns", "id"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    ours = pq.read_table(tmp_path / "out.parquet")
    expected = pq.read_table(tmp_path / "local.parquet")
    assert ours.schema == expected.schema  # id: int64, prediction: list<double>
    assert ours.sort_by("id").to_pylist() == expected.to_pylist()


@pytest.mark.parametrize(("source", "output"), [("in.csv", "jsonl"), ("in.jsonl", "csv"), ("in.parquet", "csv")])
def test_every_format_gives_sigserve_predicts_rows(source, output, zoo, spark, churn, tmp_path, capsys) -> None:
    model = str(zoo["churn_pipeline_proba"].path)
    args = ("-m", model, "-i", str(churn[source]), "--keep-columns", "id,plan")
    local = local_predict(*args, "-o", str(tmp_path / f"local.{output}"))
    assert local.returncode == 0, local.stderr
    code, err = spark_predict(capsys, *args, "-o", str(tmp_path / f"spark.{output}"))
    assert code == 0, err
    ours, expected = read_folder(tmp_path / f"spark.{output}"), read_folder(tmp_path / f"local.{output}")
    assert list(ours.columns) == list(expected.columns) == ["id", "plan", "prediction"]
    ours = ours.sort_values("id").reset_index(drop=True)
    assert ours[["id", "plan"]].to_dict("list") == expected[["id", "plan"]].to_dict("list")
    assert as_lists(ours["prediction"]) == as_lists(expected["prediction"])


@pytest.mark.parametrize("source", ["bad.csv", "bad.jsonl"])
def test_skipped_rows_go_to_a_side_folder_as_sigserve_predict_writes_them(source, zoo, spark, churn, tmp_path,
                                                                          capsys) -> None:
    model = str(zoo["churn_pipeline"].path)
    args = ("-m", model, "-i", str(churn[source]), "--keep-columns", "id", "--on-error", "skip")
    local = local_predict(*args, "-o", str(tmp_path / "local.parquet"))
    assert local.returncode == 0, local.stderr
    code, err = spark_predict(capsys, *args, "-o", str(tmp_path / "spark.parquet"))
    assert code == 0, err
    rows = len(tiled(zoo["churn_pipeline"].rows))
    assert f"skipped 1 of {rows} rows: see {tmp_path / 'spark.parquet'}.skipped.jsonl" in err
    ours = read_folder(tmp_path / "spark.parquet").sort_values("id").reset_index(drop=True)
    assert ours.to_dict("list") == read_folder(tmp_path / "local.parquet").to_dict("list")
    assert BAD_ROW + 100 not in set(ours["id"])
    skipped = read_folder(tmp_path / "spark.parquet.skipped.jsonl").to_dict("records")
    expected = read_folder(tmp_path / "local.parquet.skipped.jsonl").to_dict("records")
    assert [{key: entry[key] for key in ("row", "error", "values")} for entry in skipped] == expected
    assert skipped[0]["partition"] in (0, 1) and skipped[0]["values"]["tenure"] == "three"


def test_a_refused_row_fails_the_run_in_one_line(zoo, spark, churn, tmp_path, capsys) -> None:
    code, err = spark_predict(capsys, "-m", str(zoo["churn_pipeline"].path), "-i", str(churn["bad.csv"]),
                              "-o", str(tmp_path / "out.parquet"))
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"sigserve: Row {BAD_ROW} of partition 0 was refused: ") and "Traceback" not in err
    assert f"row {BAD_ROW}: value 'three' cannot be converted to int64" in last and "org.apache" not in err
    assert not (tmp_path / "out.parquet" / "_SUCCESS").exists()


def test_inputs_no_row_could_fix_and_outputs_spark_cannot_write_are_refused_first(zoo, spark, churn, tmp_path,
                                                                                  capsys) -> None:
    model = str(zoo["churn_pipeline"].path)
    missing = tmp_path / "missing.parquet"
    pd.read_parquet(churn["in.parquet"]).drop(columns=["tenure"]).to_parquet(missing)
    code, err = spark_predict(capsys, "-m", model, "-i", str(missing), "-o", str(tmp_path / "a.parquet"),
                              "--on-error", "skip")
    assert code == 1 and "refused before any row" in err and "tenure" in err
    code, err = spark_predict(capsys, "-m", model, "-i", str(churn["in.parquet"]), "-o", str(tmp_path / "b.json"))
    assert code == 1 and "not MLflow's" in err
    code, err = spark_predict(capsys, "-m", model, "-i", str(churn["in.parquet"]), "-o", str(tmp_path),
                              "--output-format", "parquet")
    assert code == 1 and "exists" in err
    code, err = spark_predict(capsys, "-m", model, "-i", str(churn["in.parquet"]), "-o", str(tmp_path / "c.parquet"),
                              "--keep-columns", "prediction,id")
    assert code == 1 and "no column 'prediction'" in err
    code, err = spark_predict(capsys, "-m", model, "-i", str(tmp_path / "none.parquet"), "-o", str(tmp_path / "d.csv"))
    assert code == 1 and err.strip().splitlines()[-1].startswith("sigserve: Spark failed: [PATH_NOT_FOUND]")
    assert not any(tmp_path.glob("*.parquet/_SUCCESS"))


def test_tables_in_and_out_and_a_model_without_output_schema(zoo, spark, churn, tmp_path, capsys) -> None:
    """A catalog table read and written by name; the predictions' columns found by scoring the
    first rows on the driver when the model has no output schema."""
    model = tmp_path / "no_outputs"
    shutil.copytree(zoo["churn_pipeline_proba"].path, model)
    mlmodel = yaml.safe_load((model / "MLmodel").read_text())
    del mlmodel["signature"]["outputs"]
    (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    spark.read.parquet(str(churn["in.parquet"])).write.saveAsTable("churn_input")
    code, err = spark_predict(capsys, "-m", str(model), "-i", "churn_input", "-o", "churn_scored",
                              "--keep-columns", "id")
    assert code == 0, err
    local = local_predict("-m", str(model), "-i", str(churn["in.parquet"]), "-o", str(tmp_path / "local.parquet"),
                          "--keep-columns", "id")
    assert local.returncode == 0, local.stderr
    ours = spark.table("churn_scored").orderBy("id").toPandas()
    expected = pd.read_parquet(tmp_path / "local.parquet")
    assert list(ours.columns) == list(expected.columns) == ["id", "prediction"]
    assert ours["id"].tolist() == expected["id"].tolist()
    assert as_lists(ours["prediction"]) == as_lists(expected["prediction"])


def test_without_pyspark_the_cli_says_what_to_install(zoo, churn, tmp_path) -> None:
    blocked = ("import sys; sys.modules['pyspark'] = None; from sigserve.cli import main; "
               "sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", blocked, "predict", "--engine", "spark", "-m",
                          str(zoo["churn_pipeline"].path), "-i", str(churn["in.parquet"]),
                          "-o", str(tmp_path / "out.parquet")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip() == "sigserve: Scoring on Spark needs pyspark (and Java 17+): pip install 'sigserve[spark]'"
