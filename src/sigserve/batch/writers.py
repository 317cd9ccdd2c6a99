"""Scored chunks written as they come, with the schema of the first chunk kept for the rest
(a later chunk that cannot be cast to it is an error, not a file that changes types midway)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sigserve.codecs.json_encode import OPTIONS, default, encode_json, jsonable
from sigserve.errors import BadRequest, PredictionError

OUTPUT_FORMATS = ("parquet", "csv", "jsonl", "json")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
             ".json": "json"}
_PREDICTIONS_OPEN = b'{"predictions":['


def output_format_of(path: str | None) -> str:
    """By the output's suffix; MLflow's `{"predictions": ...}` document otherwise, as
    `mlflow models predict` writes."""
    if path is None:
        return "json"
    return _SUFFIXES.get(Path(path).suffix.lower(), "json")


class Writer(Protocol):
    def write(self, table: pa.Table, predictions: Any) -> None: ...

    def close(self) -> None: ...


class _Stream:
    """The output file, written under a temporary name and renamed once complete, so that a
    failed run leaves no half-written output behind; or standard output."""

    def __init__(self, path: str | None, stdout: BinaryIO) -> None:
        self.path = path
        if path is None:
            self.file, self.temporary = stdout, None
            return
        target = Path(path)
        try:
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        except OSError as exc:
            raise BadRequest(f"Cannot write the output {path!r}: {exc.strerror}") from None
        self.file, self.temporary = os.fdopen(handle, "wb"), temporary

    def commit(self) -> None:
        self.file.flush()
        if self.temporary is not None:
            self.file.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.temporary, 0o666 & ~umask)  # mkstemp's 0600 is for the partial file only
            os.replace(self.temporary, self.path)  # type: ignore[arg-type]

    def abandon(self) -> None:
        if self.temporary is not None:
            self.file.close()
            Path(self.temporary).unlink(missing_ok=True)


def _conform(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    if schema is None or table.schema.equals(schema):
        return table
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, KeyError, ValueError) as exc:
        raise PredictionError(f"A batch's columns differ from the first batch's ({schema}): {exc}") from None


class ParquetOutput:
    def __init__(self, stream: _Stream) -> None:
        self.stream, self.writer, self.schema = stream, None, None

    def write(self, table: pa.Table, predictions: Any) -> None:
        table = _conform(table, self.schema)
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.stream.file, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class CsvOutput:
    """Nested values (a row's class probabilities) are written as JSON text."""

    def __init__(self, stream: _Stream) -> None:
        self.stream, self.writer, self.schema = stream, None, None

    def write(self, table: pa.Table, predictions: Any) -> None:
        table = _conform(table, self.schema)
        self.schema = table.schema
        flat = pa.table({name: _flat(column) for name, column in zip(table.column_names, table.columns)})
        if self.writer is None:
            self.writer = pacsv.CSVWriter(self.stream.file, flat.schema)
        self.writer.write_table(flat)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _flat(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind) \
            or pa.types.is_struct(kind) or pa.types.is_map(kind):
        return pa.array([None if value is None else encode_json(value).decode() for value in column.to_pylist()],
                        pa.string())
    return column


class JsonLinesOutput:
    def __init__(self, stream: _Stream) -> None:
        self.stream, self.schema = stream, None

    def write(self, table: pa.Table, predictions: Any) -> None:
        table = _conform(table, self.schema)
        self.schema = table.schema
        names = table.column_names
        columns = [_json_values(column) for column in table.columns]
        lines = [orjson.dumps(dict(zip(names, row)), default=default, option=OPTIONS) for row in zip(*columns)]
        self.stream.file.write(b"\n".join(lines) + b"\n")

    def close(self) -> None:
        pass


def _json_values(column: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), None, column)  # NaN as null, as MLflow writes it
    return column.to_pylist()


class PredictionsDocument:
    """MLflow's `{"predictions": [...]}`, each chunk's predictions appended to one list."""

    def __init__(self, stream: _Stream) -> None:
        self.stream, self.started = stream, False

    def write(self, table: pa.Table, predictions: Any) -> None:
        encoded = encode_json(jsonable(predictions))
        if not (encoded.startswith(b"[") and encoded.endswith(b"]")):
            raise PredictionError("The model's predictions are not a list: write them to a .parquet, .csv or "
                                  ".jsonl output, which holds them as columns")
        items = encoded[1:-1]
        if not items:
            return
        self.stream.file.write((b"," if self.started else _PREDICTIONS_OPEN) + items)
        self.started = True

    def close(self) -> None:
        self.stream.file.write((b"]}" if self.started else _PREDICTIONS_OPEN + b"]}") + b"\n")


def open_writer(path: str | None, output_format: str, stdout: BinaryIO) -> tuple[Writer, _Stream]:
    stream = _Stream(path, stdout)
    writer = {"parquet": ParquetOutput, "csv": CsvOutput, "jsonl": JsonLinesOutput,
              "json": PredictionsDocument}[output_format](stream)
    return writer, stream
