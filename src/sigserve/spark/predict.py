"""`sigserve predict --engine spark`: the input read by Spark, scored on the executors with
`mapInArrow` (the model shipped once, loaded once per Python worker, each batch decoded and
enforced as `sigserve predict` does it), and written by Spark. Refused rows fail the job with
their reason, or (`on_error="skip"`) go to a folder of JSON Lines beside the output."""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path
from typing import TextIO

import pyarrow as pa
from py4j.protocol import Py4JError
from pyspark import StorageLevel
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from sigserve.batch.chunks import JsonLinesChunk
from sigserve.batch.frames import FrameScorer
from sigserve.batch.run import BatchOptions, columns_refusal
from sigserve.codecs.limits import UNLIMITED
from sigserve.codecs.selection import select_columns
from sigserve.errors import BadRequest
from sigserve.model.mlmodel import read_mlmodel
from sigserve.model.schema import Schema
from sigserve.spark.columns import sampled_columns, schema_columns
from sigserve.spark.job import REFUSED, TEXT, BatchReader, ScoringJob, csv_text, read_carried, score_partition
from sigserve.spark.shipping import ship_model
from sigserve.spark.tables import Destination, column, destination, read_input

APP_NAME = "sigserve-predict"
SAMPLE_ROWS = 1000  # the first rows, for the keep columns' types and, if need be, the predictions' columns
_BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"  # --batch-rows: the rows of each Arrow batch
_SIGSERVE_ERROR = re.compile(r"^sigserve\.[\w.]+: (.+)$", re.MULTILINE)


def predict_on_spark(model_dir: str | Path, options: BatchOptions, master: str, stderr: TextIO | None = None) -> None:
    stderr = stderr if stderr is not None else sys.stderr
    target = destination(options.output_path, options.output_format)
    skipped = None
    if options.on_error == "skip":
        skipped = destination(options.skipped_path or f"{options.output_path}.skipped.jsonl", "jsonl")
    spark, ours = _session(master, options, stderr)
    batch_size = spark.conf.get(_BATCH_ROWS, None)
    spark.conf.set(_BATCH_ROWS, str(options.batch_rows))
    try:
        _run(spark, Path(model_dir), options, target, skipped, stderr)
    except (PySparkException, Py4JError) as exc:
        raise spark_failure(exc) from None
    finally:
        if ours:
            spark.stop()
        elif batch_size is None:
            spark.conf.unset(_BATCH_ROWS)
        else:
            spark.conf.set(_BATCH_ROWS, batch_size)


def _session(master: str, options: BatchOptions, stderr: TextIO) -> tuple[SparkSession, bool]:
    """The session, and whether it is ours to stop. Under spark-submit (which started the JVM),
    spark-submit's --master holds."""
    existing = SparkSession.getActiveSession()
    builder = SparkSession.builder.appName(APP_NAME)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(master)
        if master.startswith("local"):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter's sigserve
    show = options.progress if options.progress is not None else stderr.isatty()
    spark = builder.config("spark.ui.showConsoleProgress", str(bool(show)).lower()).getOrCreate()
    if existing is None:
        spark.sparkContext.setLogLevel("FATAL")  # a failure is told in one line, from its sigserve reason
    return spark, existing is None


def _run(spark: SparkSession, model_dir: Path, options: BatchOptions, target: Destination,
         skipped: Destination | None, stderr: TextIO) -> None:
    signature = read_mlmodel(model_dir).signature
    input_schema = signature.inputs if signature else None
    keep = list(options.keep_columns)
    frame, kind = read_input(spark, options.input_path, options.input_format)
    if kind != "jsonl":
        frame = _model_columns(frame, input_schema, keep)
    first_rows = functools.cache(functools.partial(_first_rows, frame))
    reader = BatchReader(kind, _carried_schema(kind, first_rows(), keep) if keep and kind != "arrow" else None)
    if kind != "jsonl":
        _check_columns(reader, _arrow_schema(spark, frame.schema), input_schema)
    predictions = schema_columns(signature.outputs if signature else None)
    if predictions is None:
        predictions = sampled_columns(reader.chunk(first_rows(), 0), FrameScorer.load(model_dir), keep)
    clash = sorted(set(keep) & {field.name for field in predictions})
    if clash:
        raise BadRequest(f"--keep-columns {', '.join(clash)}: the predictions have a column of that name")
    schema = _output_schema(frame, kind, reader, keep, predictions, skip=skipped is not None)
    job = ScoringJob(ship_model(spark, model_dir), reader, tuple(keep), _arrow_schema(spark, schema),
                     skip=skipped is not None)
    scored = frame.mapInArrow(functools.partial(score_partition, job), schema)
    if skipped is None:
        target.write(scored)
        return
    _write_skipping(scored.persist(StorageLevel.MEMORY_AND_DISK), target, skipped, stderr)


def _model_columns(frame: DataFrame, input_schema: Schema | None, keep: list[str]) -> DataFrame:
    """Only the columns the model reads and those kept: Spark reads no others."""
    missing = [name for name in keep if name not in frame.columns]
    if missing:
        raise BadRequest(f"--keep-columns: the input has no column {', '.join(map(repr, missing))}")
    read = set(select_columns(frame.columns, input_schema, UNLIMITED, "The input").read) | set(keep)
    return frame.select(*(column(name) for name in frame.columns if name in read))


def _first_rows(frame: DataFrame) -> pa.Table:
    first = frame.limit(SAMPLE_ROWS)
    to_arrow = getattr(first, "toArrow", None)  # pyspark 4
    if to_arrow is not None:
        return to_arrow()
    return pa.Table.from_pandas(first.toPandas(), preserve_index=False)


def _carried_schema(kind: str, sample: pa.Table, keep: list[str]) -> pa.Schema:
    """The keep columns' types as the first rows give them (`sigserve predict` takes its first
    chunk's); a column of nulls only is text."""
    if kind == "csv":
        table = read_carried(csv_text(sample.select(keep)), {})
    else:
        lines = [line.encode() for line in sample.column(TEXT).to_pylist()]
        table = JsonLinesChunk(lines, 0, []).carried(keep)
    found = dict(zip(table.column_names, table.schema.types))
    types = [found.get(name, pa.null()) for name in keep]
    return pa.schema([(name, pa.string() if pa.types.is_null(kind) else kind) for name, kind in zip(keep, types)])


def _check_columns(reader: BatchReader, schema: pa.Schema, input_schema: Schema | None) -> None:
    """An input no row could fix (a missing column, a column of the wrong type) is refused before
    the job starts."""
    refusal = columns_refusal(reader.chunk(schema.empty_table(), 0), input_schema)
    if refusal is not None:
        raise BadRequest(f"The input was refused before any row: {refusal.message}")


def _output_schema(frame: DataFrame, kind: str, reader: BatchReader, keep: list[str], predictions: list[pa.Field],
                   skip: bool) -> T.StructType:
    if kind == "arrow":
        carried = [frame.schema[name] for name in keep]
    else:
        carried = list(from_arrow_schema(reader.carried, prefer_timestamp_ntz=False).fields) if keep else []
    fields = carried + list(from_arrow_schema(pa.schema(predictions), prefer_timestamp_ntz=False).fields)
    if skip:
        fields.append(T.StructField(REFUSED, T.StringType()))
    return T.StructType(fields)


def _arrow_schema(spark: SparkSession, schema: T.StructType) -> pa.Schema:
    """The Arrow types Spark exchanges with Python for this schema (what `mapInArrow` must return)."""
    large = spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false").lower() == "true"
    try:
        return to_arrow_schema(schema, timezone=spark.conf.get("spark.sql.session.timeZone"),
                               prefers_large_types=large)
    except TypeError:  # pyspark 3.5
        return to_arrow_schema(schema)


def _write_skipping(scored: DataFrame, target: Destination, skipped: Destination, stderr: TextIO) -> None:
    try:
        target.write(scored.filter(column(REFUSED).isNull()).drop(REFUSED))
        refused = scored.filter(column(REFUSED).isNotNull()).select(column(REFUSED).alias("value"))
        count, total = refused.count(), scored.count()
        if count:
            if skipped.table:
                skipped.write(refused)
            else:
                refused.write.text(skipped.path)
            stderr.write(f"skipped {count:,} of {total:,} rows: see {skipped.path}\n")
    finally:
        scored.unpersist()


def spark_failure(exc: Exception) -> BadRequest:
    """A failed job as the CLI's one line: the sigserve error a task raised, else the last line of
    a Python worker's traceback (a module missing on the executors, say), else Spark's first line."""
    text = str(exc).split("JVM stacktrace:")[0]
    reasons = _SIGSERVE_ERROR.findall(text)
    if reasons:
        return BadRequest(reasons[-1].strip())
    if "Traceback (most recent call last)" in text:
        lines = [line for line in text.splitlines() if line.strip() and not line[0].isspace()]
        return BadRequest(f"Spark failed: {lines[-1].strip()}")
    java = getattr(exc, "java_exception", None)
    if java is not None:
        text = str(java.getMessage() or java.toString())
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return BadRequest(f"Spark failed: {first}")
