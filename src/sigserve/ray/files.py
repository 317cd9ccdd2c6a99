"""Input files read by Ray as `sigserve predict` reads them, and outputs written as it writes them.

Each row is read with its file and its place in the file, so a refused row is named as the local
engine names it. CSV records and JSON lines stay raw text until an actor decodes them with the
server's codecs (`Predictor`): a value the signature refuses is then one refused row, not a
failed read. Parquet is read as Arrow batches of the columns the model and `--keep-columns` use.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from ray.data.block import BlockAccessor
from ray.data.datasource import BlockBasedFileDatasink, FileBasedDatasource

from sigserve.batch.chunks import batched, csv_records
from sigserve.batch.writers import CsvOutput, JsonLinesOutput
from sigserve.ray import columns

READ_BYTES = 1 << 20


class InputFiles(FileBasedDatasource):
    """A file or a folder of them (names starting with `_` or `.` are skipped, as Spark's
    `_SUCCESS` should be), in blocks of `block_rows` rows."""

    def __init__(self, paths: str | list[str], input_format: str, block_rows: int,
                 read_columns: list[str] | None = None, **kwargs: Any) -> None:
        """`read_columns`: of a Parquet file, the only ones read (those it has); None for all."""
        super().__init__(paths, **kwargs)
        self.input_format, self.block_rows, self.read_columns = input_format, block_rows, read_columns
        files = self._paths()
        self.root = None if len(files) == 1 else posixpath.commonpath(files)  # rows of one file need no name

    def _open_input_source(self, filesystem: Any, path: str, **open_args: Any) -> pa.NativeFile:
        if self.input_format == "parquet":
            return filesystem.open_input_file(path)  # Parquet needs random access
        return super()._open_input_source(filesystem, path, **open_args)

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        name = "" if self.root is None else posixpath.relpath(path, self.root)
        reader = {"parquet": self._parquet, "csv": self._csv, "jsonl": self._jsonl}[self.input_format]
        first = 0
        for table in reader(f):
            n = table.num_rows
            yield table.append_column(columns.FILE, _constant(name, n, pa.string())).append_column(
                columns.ROW, pa.array(range(first, first + n), pa.int64()))
            first += n

    def _parquet(self, f: pa.NativeFile) -> Iterator[pa.Table]:
        parquet = pq.ParquetFile(f)
        names = parquet.schema_arrow.names
        read = names if self.read_columns is None else [name for name in names if name in set(self.read_columns)]
        for batch in parquet.iter_batches(batch_size=self.block_rows, columns=read):
            if batch.num_rows:
                yield pa.Table.from_batches([batch])

    def _csv(self, f: pa.NativeFile) -> Iterator[pa.Table]:
        records = csv_records(f)
        header = next(records, None)
        if header is None:
            return
        for batch in batched(records, self.block_rows):
            yield pa.table({columns.HEADER: _constant(header, len(batch), pa.binary()),
                            columns.RECORD: pa.array(batch, pa.binary())})

    def _jsonl(self, f: pa.NativeFile) -> Iterator[pa.Table]:
        lines = (line for line in _lines(f) if line.strip())  # blank lines are no rows, as locally
        for batch in batched(lines, self.block_rows):
            yield pa.table({columns.LINE: pa.array(batch, pa.binary())})


def _constant(value: Any, n: int, kind: pa.DataType) -> pa.DictionaryArray:
    """One value for every row at the cost of an index each."""
    return pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([value], kind))


def _lines(f: pa.NativeFile) -> Iterator[bytes]:
    """Lines ending at b"\\n" only, as Python reads a binary file (an input stream has no readline)."""
    rest = b""
    while True:
        data = f.read(READ_BYTES)
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


class _LocalFormatSink(BlockBasedFileDatasink):
    """One file per block, in the bytes the local engine writes (`sigserve.batch.writers`): CSV
    with nested values as JSON text, JSON Lines with NaN as null."""

    def __init__(self, path: str, output_format: str, **kwargs: Any) -> None:
        super().__init__(path, file_format=output_format, **kwargs)
        self.output = {"csv": CsvOutput, "jsonl": JsonLinesOutput}[output_format]

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        writer = self.output(SimpleNamespace(file=file))
        writer.write(block.to_arrow(), None)
        writer.close()


def write_output(ds: Any, path: str, output_format: str) -> None:
    """A folder of part files, replacing what the folder held (as the local engine replaces its
    output file)."""
    from ray.data import SaveMode

    if output_format == "parquet":
        ds.write_parquet(path, mode=SaveMode.OVERWRITE)
    else:
        ds.write_datasink(_LocalFormatSink(os.fspath(path), output_format, mode=SaveMode.OVERWRITE))
