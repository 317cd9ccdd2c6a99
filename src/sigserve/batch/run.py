"""`sigserve predict` on a file of any size: chunks scored and written as they are read, so memory
stays that of one chunk. A chunk the server would refuse is split until the rows at fault are
found: their number and reason end the run, or (`on_error="skip"`) they go to a side file."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import orjson
import pyarrow as pa

from sigserve.batch.chunks import Chunk, open_source
from sigserve.batch.frames import FrameScorer, predictions_table
from sigserve.batch.progress import Progress
from sigserve.batch.writers import open_writer
from sigserve.codecs.json_encode import OPTIONS, default
from sigserve.enforce import enforce_input
from sigserve.errors import BadRequest, SigserveError
from sigserve.model.schema import Schema
from sigserve.scoring import unexpected_as

DEFAULT_BATCH_ROWS = 10_000
ON_ERROR = ("fail", "skip")
_FIRST_ROW = re.compile(r"\brow 0\b")


@dataclass(frozen=True)
class BatchOptions:
    input_path: str
    input_format: str
    output_path: str | None
    output_format: str
    batch_rows: int = DEFAULT_BATCH_ROWS
    keep_columns: tuple[str, ...] = ()
    on_error: str = "fail"
    skipped_path: str | None = None
    progress: bool | None = None  # None: on a terminal only


@dataclass(frozen=True)
class BatchReport:
    rows: int
    skipped: int
    skipped_path: str | None


@dataclass(frozen=True)
class Refused:
    row: int
    message: str
    values: dict[str, Any]


class RowRefused(BadRequest):
    """A row the model or its signature refused, named by its place in the input."""


@dataclass(frozen=True)
class Scored:
    table: pa.Table
    predictions: Any


def run_batch(scorer: FrameScorer, options: BatchOptions, stdout: BinaryIO | None = None,
              stderr: TextIO | None = None) -> BatchReport:
    stdout = stdout if stdout is not None else sys.stdout.buffer
    stderr = stderr if stderr is not None else sys.stderr
    keep = list(options.keep_columns)
    if keep and options.output_format == "json":
        raise BadRequest("--keep-columns needs an output of columns: a .parquet, .csv or .jsonl path "
                         "(or --output-format)")
    source = open_source(options.input_path, options.input_format, options.batch_rows, scorer, keep)
    show = options.progress if options.progress is not None else stderr.isatty()
    progress = Progress(stderr, source.total_rows, source.total_bytes) if show else None
    writer, stream = open_writer(options.output_path, options.output_format, stdout)
    skipped = _SkippedRows(options.skipped_path or default_skipped_path(options.output_path))
    rows = 0
    try:
        for chunk in source.chunks:
            for outcome in score_or_split(chunk, scorer, keep, options.on_error, first=rows == 0):
                if isinstance(outcome, Refused):
                    skipped.add(outcome)
                else:
                    writer.write(outcome.table, outcome.predictions)
            rows += chunk.n_rows
            if progress is not None:
                progress.update(rows, source.bytes_read())
        writer.close()
        stream.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()
        stream.abandon()
        raise
    finally:
        skipped.close()
    if progress is not None:
        progress.finish(source.bytes_read())
    if skipped.count:
        stderr.write(f"skipped {skipped.count:,} of {rows:,} rows: see {skipped.path}\n")
    return BatchReport(rows, skipped.count, skipped.path if skipped.count else None)


def score_chunk(chunk: Chunk, scorer: FrameScorer, keep: list[str]) -> Scored:
    predictions = scorer.predict(chunk.decode(scorer.input_schema))
    table = predictions_table(predictions, chunk.n_rows, scorer.output_schema)
    if keep:
        clash = sorted(set(keep) & set(table.column_names))
        if clash:
            raise BadRequest(f"--keep-columns {', '.join(clash)}: the predictions have a column of that name")
        carried = chunk.carried(keep)
        table = pa.table({**dict(zip(carried.column_names, carried.columns)),
                          **dict(zip(table.column_names, table.columns))})
    return Scored(table, predictions)


def score_or_split(chunk: Chunk, scorer: FrameScorer, keep: list[str], on_error: str,
                   first: bool) -> Iterator[Scored | Refused]:
    """The chunk scored whole, or split in halves until each refused row stands alone."""
    try:
        yield score_chunk(chunk, scorer, keep)
        return
    except RowRefused:
        raise
    except SigserveError as exc:
        if first and on_error == "skip":
            _refuse_whole_input(chunk, scorer, keep)
        if chunk.n_rows <= 1:
            refused = Refused(chunk.first_row, _FIRST_ROW.sub(f"row {chunk.first_row}", exc.message),
                              chunk.row_values(0))
            if on_error == "fail":
                raise RowRefused(f"Row {refused.row} of the input was refused: {refused.message}") from None
            yield refused
            return
    half = chunk.n_rows // 2
    yield from score_or_split(chunk.slice(0, half), scorer, keep, on_error, False)
    yield from score_or_split(chunk.slice(half, chunk.n_rows - half), scorer, keep, on_error, False)


def columns_refusal(chunk: Chunk, input_schema: Schema | None) -> SigserveError | None:
    """What the input's columns alone are refused for, whatever its rows hold (a missing column,
    a column of the wrong type); None too where a chunk of no rows has no columns (JSON Lines)."""
    empty = chunk.slice(0, 0)
    if not empty.knows_columns:
        return None
    try:
        with unexpected_as(BadRequest, "The input does not match the model signature"):
            enforce_input(empty.decode(input_schema), input_schema)
    except SigserveError as exc:
        return exc
    return None


def _refuse_whole_input(chunk: Chunk, scorer: FrameScorer, keep: list[str]) -> None:
    """An error no row causes (a missing column, a bad --keep-columns) ends the run instead of
    skipping every row."""
    refusal = columns_refusal(chunk, scorer.input_schema)
    if refusal is None and keep and chunk.knows_columns:
        try:
            chunk.slice(0, 0).carried(keep)
        except SigserveError as exc:
            refusal = exc
    if refusal is not None:
        raise BadRequest(f"The input was refused before any row: {refusal.message}") from None


def default_skipped_path(output_path: str | None) -> str:
    return f"{output_path}.skipped.jsonl" if output_path else "skipped-rows.jsonl"


class _SkippedRows:
    """JSON Lines of `{"row", "error", "values"}`, opened at the first skipped row."""

    def __init__(self, path: str) -> None:
        self.path, self.file, self.count = path, None, 0

    def add(self, refused: Refused) -> None:
        if self.file is None:
            self.file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        record = {"row": refused.row, "error": refused.message, "values": refused.values}
        self.file.write(orjson.dumps(record, default=default, option=OPTIONS) + b"\n")
        self.count += 1

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
