"""Input files read as a stream of row chunks, each decoded as the server decodes a body of its
format: Parquet (a file or a folder of them) as Arrow batches, CSV as the server's CSV codec
reads a body of the chunk's lines under the file's header, JSON Lines as `dataframe_records`."""

from __future__ import annotations

import csv
import io
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads

from sigserve.batch.frames import FrameScorer, decode_arrow
from sigserve.codecs.base import ModelData
from sigserve.codecs.limits import UNLIMITED
from sigserve.codecs.mlflow.csv import CsvDecoder
from sigserve.codecs.selection import select_columns
from sigserve.codecs.tables import table_from_records
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

INPUT_FORMATS = ("parquet", "csv", "jsonl")
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def format_of(path: str) -> str | None:
    """A file's format by its suffix; a folder is read as Parquet (what Spark and Ray write)."""
    if Path(path).is_dir():
        return "parquet"
    return _SUFFIXES.get(Path(path).suffix.lower())


class Chunk(Protocol):
    first_row: int  # of the input, counting data rows from 0
    knows_columns: bool  # a chunk of no rows still has the input's columns

    @property
    def n_rows(self) -> int: ...

    def decode(self, input_schema: Schema | None) -> ModelData: ...

    def slice(self, offset: int, length: int) -> Chunk: ...

    def carried(self, names: list[str]) -> pa.Table:
        """Input columns written beside the predictions (`--keep-columns`)."""

    def row_values(self, offset: int) -> dict[str, Any]:
        """One row's input, for the file of skipped rows."""


@dataclass
class Source:
    """An opened input: its chunks, its column names, and how far through it a chunk is."""

    chunks: Iterator[Chunk]
    columns: list[str]
    total_rows: int | None  # known up front for Parquet
    total_bytes: int | None
    bytes_read: Any  # () -> int


def open_source(path: str, input_format: str, batch_rows: int, scorer: FrameScorer, keep: list[str]) -> Source:
    opener = {"parquet": _open_parquet, "csv": _open_csv, "jsonl": _open_jsonl}[input_format]
    source = opener(path, batch_rows, scorer, keep)
    missing = [name for name in keep if name not in source.columns]
    if missing:
        raise BadRequest(f"--keep-columns: the input has no column {', '.join(map(repr, missing))}")
    return source


# --- Parquet


@dataclass
class ArrowChunk:
    table: pa.Table
    first_row: int
    knows_columns = True

    @property
    def n_rows(self) -> int:
        return self.table.num_rows

    def decode(self, input_schema: Schema | None) -> ModelData:
        return decode_arrow(self.table, input_schema)

    def slice(self, offset: int, length: int) -> ArrowChunk:
        return ArrowChunk(self.table.slice(offset, length), self.first_row + offset)

    def carried(self, names: list[str]) -> pa.Table:
        return self.table.select(names)

    def row_values(self, offset: int) -> dict[str, Any]:
        return self.table.slice(offset, 1).to_pylist()[0]


def _open_parquet(path: str, batch_rows: int, scorer: FrameScorer, keep: list[str]) -> Source:
    try:
        dataset = pads.dataset(path, format="parquet", exclude_invalid_files=False)
        names = dataset.schema.names
        wanted = select_columns(names, scorer.input_schema, UNLIMITED, "The Parquet input").read
        read = [name for name in names if name in set(wanted) | set(keep)]
        total = dataset.count_rows()
    except (pa.ArrowException, OSError) as exc:
        raise BadRequest(f"Failed to read the Parquet input: {exc}") from None
    files = [Path(name) for name in dataset.files]

    def chunks() -> Iterator[Chunk]:
        first = 0
        try:
            for batch in dataset.to_batches(columns=read, batch_size=batch_rows):
                if batch.num_rows:
                    yield ArrowChunk(pa.Table.from_batches([batch]), first)
                    first += batch.num_rows
        except pa.ArrowException as exc:
            raise BadRequest(f"Failed to read the Parquet input after row {first}: {exc}") from None

    size = sum(file.stat().st_size for file in files)
    return Source(chunks(), names, total, size, lambda: 0)


# --- CSV


class CsvFile:
    """The header and the types of the carried columns, fixed by the first chunk so that every
    chunk writes the same schema."""

    def __init__(self, header: bytes) -> None:
        self.header = header
        self.names = _csv_fields(header)
        self.carried_types: dict[str, pa.DataType] = {}


@dataclass
class CsvChunk:
    file: CsvFile
    records: list[bytes]
    first_row: int
    knows_columns = True

    @property
    def n_rows(self) -> int:
        return len(self.records)

    def body(self) -> bytes:
        return self.file.header + b"".join(self.records)

    def decode(self, input_schema: Schema | None) -> ModelData:
        return CsvDecoder().decode(self.body(), input_schema, {}, UNLIMITED).data

    def slice(self, offset: int, length: int) -> CsvChunk:
        return CsvChunk(self.file, self.records[offset:offset + length], self.first_row + offset)

    def carried(self, names: list[str]) -> pa.Table:
        types = {name: kind for name, kind in self.file.carried_types.items() if name in names}
        options = pacsv.ConvertOptions(include_columns=names, column_types=types, strings_can_be_null=True)
        try:
            table = pacsv.read_csv(pa.BufferReader(self.body()), convert_options=options)
        except pa.ArrowInvalid as exc:
            raise BadRequest(f"A carried column does not keep the type of its first rows: {exc}") from None
        if not self.file.carried_types and table.num_rows:
            self.file.carried_types = dict(zip(table.column_names, table.schema.types))
        return table

    def row_values(self, offset: int) -> dict[str, Any]:
        return dict(zip(self.file.names, _csv_fields(self.records[offset])))


def _csv_fields(line: bytes) -> list[str]:
    text = line.decode("utf-8-sig", errors="replace")
    return next(csv.reader(io.StringIO(text, newline="")), [])


MIN_READ_BYTES, MAX_READ_BYTES = 64 * 1024, 4 * 1024 * 1024
ROW_BYTES_GUESS = 128


def read_bytes_for(batch_rows: int) -> int:
    """A read of about one batch: each line of a block is held as its own object until scored, so
    a block much larger than a batch is what memory grows with."""
    return min(MAX_READ_BYTES, max(MIN_READ_BYTES, batch_rows * ROW_BYTES_GUESS))


def csv_records(stream: Any, read_bytes: int = MAX_READ_BYTES) -> Iterator[bytes]:
    return itertools.chain.from_iterable(csv_record_blocks(stream, read_bytes))


def csv_record_blocks(stream: Any, read_bytes: int = MAX_READ_BYTES) -> Iterator[list[bytes]]:
    """CSV records, block by block (`stream.read`): split at line breaks in C, and the lines of a
    record with quoted line breaks joined again while its quotes are unbalanced (a doubled quote
    inside a quoted value counts twice). Blank lines are no records."""
    rest = b""
    while True:
        block = stream.read(read_bytes)
        data = rest + block
        lines = [line + b"\n" for line in data.split(b"\n")]
        rest = lines.pop()[:-1] if block else b""  # the last line, unless the file ended
        if b'"' in data:
            lines, unfinished = _join_quoted(lines)
            if block:
                rest = unfinished + rest
            elif unfinished:
                lines.append(unfinished)
        records = [line for line in lines if line.strip()]
        if records:
            yield records
        if not block:
            return


def _join_quoted(lines: list[bytes]) -> tuple[list[bytes], bytes]:
    """Lines joined into records; the lines of a record still open at the end, as bytes."""
    records, pending, quotes = [], [], 0
    for line in lines:
        count = line.count(b'"')
        if not pending and count % 2 == 0:
            records.append(line)
            continue
        pending.append(line)
        quotes += count
        if quotes % 2 == 0:
            records.append(b"".join(pending))
            pending, quotes = [], 0
    return records, b"".join(pending)


def rebatched(blocks: Iterator[list[bytes]], size: int) -> Iterator[list[bytes]]:
    pending: list[bytes] = []
    for block in blocks:
        pending.extend(block)
        start = 0
        while len(pending) - start >= size:
            yield pending[start:start + size]
            start += size
        pending = pending[start:]
    if pending:
        yield pending


def _open_csv(path: str, batch_rows: int, scorer: FrameScorer, keep: list[str]) -> Source:
    stream = _open_binary(path)
    blocks = csv_record_blocks(stream, read_bytes_for(batch_rows))
    first_block = next(blocks, [])
    if not first_block:
        raise BadRequest("Empty CSV input: expected a header line and rows")
    file = CsvFile(first_block[0])

    def chunks() -> Iterator[Chunk]:
        first = 0
        for batch in rebatched(itertools.chain([first_block[1:]], blocks), batch_rows):
            yield CsvChunk(file, batch, first)
            first += len(batch)
        stream.close()

    return Source(chunks(), file.names, None, _size(path), stream.tell)


# --- JSON Lines


@dataclass
class JsonLinesChunk:
    lines: list[bytes]
    first_row: int
    carried_schema: list[pa.Schema]  # shared by the file's chunks: set by the first
    knows_columns = False

    @property
    def n_rows(self) -> int:
        return len(self.lines)

    def records(self) -> list[Any]:
        records = []
        for offset, line in enumerate(self.lines):
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"Row {self.first_row + offset} is not valid JSON: {exc}") from None
        return records

    def decode(self, input_schema: Schema | None) -> ModelData:
        return table_from_records(self.records(), "The JSON Lines input")

    def slice(self, offset: int, length: int) -> JsonLinesChunk:
        return JsonLinesChunk(self.lines[offset:offset + length], self.first_row + offset, self.carried_schema)

    def carried(self, names: list[str]) -> pa.Table:
        rows = [{name: record.get(name) for name in names} if isinstance(record, dict) else {}
                for record in self.records()]
        schema = self.carried_schema[0] if self.carried_schema else None
        try:
            table = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise BadRequest(f"A carried column does not keep the type of its first rows: {exc}") from None
        if schema is None and table.num_rows:
            self.carried_schema.append(table.schema)
        return table

    def row_values(self, offset: int) -> dict[str, Any]:
        try:
            value = orjson.loads(self.lines[offset])
        except orjson.JSONDecodeError:
            return {"line": self.lines[offset].decode("utf-8", errors="replace").rstrip("\n")}
        return value if isinstance(value, dict) else {"value": value}


def _open_jsonl(path: str, batch_rows: int, scorer: FrameScorer, keep: list[str]) -> Source:
    stream = _open_binary(path)
    shared: list[pa.Schema] = []

    def chunks() -> Iterator[Chunk]:
        first = 0
        for batch in batched((line for line in stream if line.strip()), batch_rows):
            yield JsonLinesChunk(batch, first, shared)
            first += len(batch)
        stream.close()

    return Source(chunks(), keep, None, _size(path), stream.tell)


def batched(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _open_binary(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the chunk generator once read
    except OSError as exc:
        raise BadRequest(f"Cannot read the input {path!r}: {exc.strerror}") from None


def _size(path: str) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None
