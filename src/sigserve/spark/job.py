"""`sigserve predict --engine spark` on the executors: each Arrow batch `mapInArrow` hands over
scored as `sigserve predict` scores a chunk of a file (the same decoding per input format, the
same splitting to find refused rows), and written in the job's declared columns."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from sigserve.batch.chunks import ArrowChunk, Chunk, JsonLinesChunk
from sigserve.batch.frames import FrameScorer
from sigserve.batch.run import Refused, score_or_split
from sigserve.codecs.base import ModelData
from sigserve.codecs.json_encode import OPTIONS, default
from sigserve.codecs.limits import UNLIMITED
from sigserve.codecs.mlflow.csv import CsvDecoder
from sigserve.errors import BadRequest, PredictionError
from sigserve.model.schema import Schema
from sigserve.spark.refusals import partition_index, refusal_message
from sigserve.spark.shipping import executor_model

REFUSED = "_sigserve_refused"  # skip mode: a refused row's {"partition", "row", "error", "values"}
TEXT = "value"  # the one column of `spark.read.text`, for JSON Lines


@dataclass
class CsvTextChunk(ArrowChunk):
    """Spark's CSV reader's cells, all text, written back as CSV and decoded as the server decodes
    a CSV body: Spark's own type conversion would turn a value it cannot parse into a null."""

    carried_types: dict[str, pa.DataType] = field(default_factory=dict)

    def decode(self, input_schema: Schema | None) -> ModelData:
        return CsvDecoder().decode(csv_text(self.table), input_schema, {}, UNLIMITED).data

    def slice(self, offset: int, length: int) -> CsvTextChunk:
        return CsvTextChunk(self.table.slice(offset, length), self.first_row + offset, self.carried_types)

    def carried(self, names: list[str]) -> pa.Table:
        types = {name: kind for name, kind in self.carried_types.items() if name in names}
        return read_carried(csv_text(self.table.select(names)), types)


def csv_text(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def read_carried(text: bytes, types: dict[str, pa.DataType]) -> pa.Table:
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    try:
        return pacsv.read_csv(pa.BufferReader(text), convert_options=options)
    except pa.ArrowInvalid as exc:
        raise BadRequest(f"A carried column does not keep the type of its first rows: {exc}") from None


@dataclass(frozen=True)
class BatchReader:
    """How a batch of the input is decoded: "arrow" (Parquet, tables), "csv" (Spark's text cells)
    or "jsonl" (`spark.read.text` lines), with the keep columns' types from the first rows."""

    kind: str
    carried: pa.Schema | None = None

    def chunk(self, table: pa.Table, first_row: int) -> Chunk:
        if self.kind == "csv":
            types = dict(zip(self.carried.names, self.carried.types)) if self.carried is not None else {}
            return CsvTextChunk(table, first_row, types)
        if self.kind == "jsonl":
            lines = [line.encode() for line in table.column(TEXT).to_pylist()]
            return JsonLinesChunk(lines, first_row, [self.carried] if self.carried is not None else [])
        return ArrowChunk(table, first_row)


@dataclass(frozen=True)
class ScoringJob:
    """What every executor needs to know, pickled into the task: the shipped model's name, how
    to read a batch, and the Arrow schema of what it writes back."""

    model: str
    reader: BatchReader
    keep: tuple[str, ...]
    output: pa.Schema  # the keep columns, the predictions and, when skipping, REFUSED
    skip: bool

    def prediction_names(self) -> list[str]:
        return [name for name in self.output.names if name not in self.keep and name != REFUSED]

    def conform(self, table: pa.Table) -> pa.Table:
        """The scored columns in the declared order and types. A single prediction column is
        renamed to the declared one; several are matched by name."""
        expected = self.prediction_names()
        found = [name for name in table.column_names if name not in self.keep]
        if len(expected) == 1 and len(found) == 1 and found != expected:
            table = table.rename_columns([expected[0] if name == found[0] else name for name in table.column_names])
        elif sorted(found) != sorted(expected):
            raise PredictionError(f"The model's predictions have the columns {found}, where its output schema "
                                  f"(or its predictions on the first rows) gave {expected}")
        if self.skip:
            table = table.append_column(REFUSED, pa.nulls(table.num_rows, pa.string()))
        try:
            return table.select(self.output.names).cast(self.output)
        except (pa.ArrowException, ValueError) as exc:
            raise PredictionError(f"The predictions do not have the types of the output columns "
                                  f"({self.output}): {exc}") from None

    def refused(self, refused: Refused) -> pa.Table:
        record = {"partition": partition_index(), "row": refused.row, "error": refused.message,
                  "values": refused.values}
        text = orjson.dumps(record, default=default, option=OPTIONS).decode()
        columns = {name: pa.nulls(1, kind) for name, kind in zip(self.output.names, self.output.types)}
        columns[REFUSED] = pa.array([text], pa.string())
        return pa.table(columns, schema=self.output)


def score_partition(job: ScoringJob, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`mapInArrow`'s function: the model loaded once per Python worker, each batch scored whole
    or split until its refused rows stand alone (skipped, or failing the task with their reason)."""
    scorer = FrameScorer(executor_model(job.model))
    keep = list(job.keep)
    first = 0
    for batch in batches:
        chunk = job.reader.chunk(pa.Table.from_batches([batch]), first)
        for outcome in score_or_split(chunk, scorer, keep, "skip", first=False):  # columns checked on the driver
            if isinstance(outcome, Refused):
                if not job.skip:
                    raise BadRequest(refusal_message(outcome))
                yield from job.refused(outcome).to_batches()
            else:
                yield from job.conform(outcome.table).to_batches()
        first += batch.num_rows
