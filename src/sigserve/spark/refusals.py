"""A refused batch on an executor narrowed down to its first refused row, named by its place in
the task's partition (Spark rows have no other number), with sigserve's reason."""

from __future__ import annotations

from pyspark import TaskContext

from sigserve.batch.chunks import Chunk
from sigserve.batch.frames import FrameScorer
from sigserve.batch.run import Refused, columns_refusal, score_or_split
from sigserve.errors import BadRequest


def first_refused_row(chunk: Chunk, scorer: FrameScorer) -> BadRequest | None:
    """None when no row is to blame: the batch's columns are refused as they are (a type Spark
    gave them for all rows), or the batch failed only as a whole."""
    if columns_refusal(chunk, scorer.input_schema) is not None:
        return None
    for outcome in score_or_split(chunk, scorer, [], "skip", first=False):
        if isinstance(outcome, Refused):
            return BadRequest(refusal_message(outcome))
    return None


def refusal_message(refused: Refused) -> str:
    return f"Row {refused.row} of {partition_name()} was refused: {refused.message}"


def partition_name() -> str:
    task = TaskContext.get()
    return f"partition {task.partitionId()}" if task is not None else "the partition"


def partition_index() -> int | None:
    task = TaskContext.get()
    return task.partitionId() if task is not None else None
