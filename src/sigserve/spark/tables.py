"""Where `sigserve predict --engine spark` reads and writes: a path in one of `sigserve predict`'s
formats (Spark writes a folder of part files), or a table of the session's catalog: a name with
no '/', ':' or format suffix that is not an existing path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sigserve.errors import BadRequest
from sigserve.spark.job import TEXT

_SUFFIXES = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson", ".json")
_NESTED = (T.ArrayType, T.StructType, T.MapType)


def is_table(name: str) -> bool:
    return not (os.path.exists(name) or any(mark in name for mark in "/\\:")
                or Path(name).suffix.lower() in _SUFFIXES)


def read_input(spark: SparkSession, path: str, input_format: str) -> tuple[DataFrame, str]:
    """The input, and how its batches are decoded: "arrow" (Parquet and tables, typed), "csv"
    (every cell as text, for the server's CSV decoding) or "jsonl" (one line a row)."""
    if is_table(path):
        return spark.table(path), "arrow"
    if input_format == "parquet":
        return spark.read.parquet(path), "arrow"
    if input_format == "csv":  # RFC 4180 quotes, as pandas and `sigserve predict` write them
        return spark.read.options(header=True, inferSchema=False, escape='"').csv(path), "csv"
    if input_format == "jsonl":
        lines = spark.read.text(path)
        return lines.filter(F.trim(column(TEXT)) != ""), "jsonl"
    raise BadRequest(f"--engine spark reads Parquet, CSV or JSON Lines (or a table): {path!r} has none of their "
                     "suffixes (.parquet, .csv, .jsonl); name its format with -t parquet, csv or jsonl")


@dataclass(frozen=True)
class Destination:
    path: str
    format: str
    table: bool

    def write(self, frame: DataFrame) -> None:
        if self.table:
            writer = frame.write
            if self.format in ("parquet", "csv", "jsonl"):
                writer = writer.format("json" if self.format == "jsonl" else self.format)
            writer.saveAsTable(self.path)
        elif self.format == "parquet":
            frame.write.parquet(self.path)
        elif self.format == "csv":
            frame = frame.select(*(F.to_json(column(field.name)).alias(field.name)
                                   if isinstance(field.dataType, _NESTED) else column(field.name)
                                   for field in frame.schema.fields))
            frame.write.options(header=True, escape='"').csv(self.path)
        else:
            without_nan(frame).write.option("ignoreNullFields", False).json(self.path)


def destination(path: str, output_format: str) -> Destination:
    """Checked before anything runs: a format Spark writes as a folder, and no folder there yet."""
    if is_table(path):
        return Destination(path, output_format, table=True)
    if output_format == "json":
        raise BadRequest(f"--engine spark writes Parquet, CSV or JSON Lines folders (or a table), not MLflow's "
                         f"{{\"predictions\": ...}} document: give {path!r} a .parquet, .csv or .jsonl suffix, or "
                         "pass --output-format")
    if os.path.exists(path):
        raise BadRequest(f"The output {path!r} exists: Spark writes a new folder there; remove it or choose another")
    return Destination(path, output_format, table=False)


def without_nan(frame: DataFrame) -> DataFrame:
    """NaN as null in floating columns, as JSON has no NaN (and `sigserve predict` writes null)."""
    return frame.select(*(F.when(F.isnan(column(field.name)), None).otherwise(column(field.name)).alias(field.name)
                          if isinstance(field.dataType, (T.FloatType, T.DoubleType)) else column(field.name)
                          for field in frame.schema.fields))


def column(name: str) -> Column:
    """A top-level column by its exact name (a dot in it is no struct field)."""
    return F.col("`" + name.replace("`", "``") + "`")
