"""`Predictor`: a model loaded once per Ray actor, scoring `map_batches` batches with the server's
decode → enforce → predict, answered in the batch's own format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sigserve.batch.chunks import ArrowChunk, Chunk, CsvChunk, CsvFile, JsonLinesChunk
from sigserve.batch.frames import FrameScorer
from sigserve.batch.run import DEFAULT_BATCH_ROWS, ON_ERROR, Refused, RowRefused, score_or_split
from sigserve.errors import BadRequest, SigserveError
from sigserve.ray import columns
from sigserve.ray.shipping import ShippedModel, model_path, ship_model
from sigserve.ray.skipped import SkippedRows, skipped_line
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve

Batch = pa.Table | pd.DataFrame | dict[str, np.ndarray]
_INPUT = " of the input "


class Predictor:
    """A callable class for `ray.data.Dataset.map_batches`, run by an actor pool: each actor loads
    the model once, here, then scores every batch it is given as the server scores a Parquet body
    of the same rows: the columns the signature names (others are ignored), enforced, the model
    called, its answer as columns (`sigserve.batch.frames.predictions_table`: one per output, or
    `prediction`), with `keep_columns` of the input beside them. A batch may be a pyarrow Table,
    a pandas DataFrame or a dict of numpy arrays (`batch_format="pyarrow"`, `"pandas"`,
    `"numpy"`), and is answered in the same format.

    `model` is a `ShippedModel` (`ship_model(uri)` on the driver: resolved once, unpacked once per
    actor; what `sigserve.ray.predict` passes), or a model URI each actor resolves itself (a path
    every node has, or `models:/` / `runs:/` with the registry reachable from every node)::

        ds.map_batches(Predictor, fn_constructor_kwargs={"model": ship_model("models:/churn@champion"),
                       "keep_columns": ["customer_id"]},
                       compute=ray.data.ActorPoolStrategy(size=4), batch_size=10_000, batch_format="pyarrow")

    A row the signature or the model refuses fails the run (`on_error="fail"`) with sigserve's
    message, or (`"skip"`) is left out of the answer and written to `skipped` (a `SkippedRows`).
    """

    def __init__(self, model: ShippedModel | str | os.PathLike[str], *, params: dict[str, Any] | None = None,
                 keep_columns: list[str] | tuple[str, ...] = (), on_error: str = "fail",
                 skipped: SkippedRows | None = None) -> None:
        check_on_error(on_error, skipped)
        self._unpacked = model.unpack() if isinstance(model, ShippedModel) else None
        self.failed: SigserveError | None = None
        try:
            if self._unpacked is not None:
                model_dir = model_path(self._unpacked)
            else:
                model_dir = resolve(os.fspath(model), SourceSettings.from_env()).path
            self.scorer = FrameScorer.load(model_dir, params)
        except SigserveError as exc:
            # raised with the first batch, which Ray hands back whole; an actor that fails to
            # start is retried, then reported as text
            if isinstance(model, ShippedModel) and self._unpacked is not None:  # named as the driver named it
                exc.message = exc.message.replace(str(model_path(self._unpacked)), model.uri)
                exc.args = (exc.message,)
            self.failed = exc
        self.keep, self.on_error, self.skipped = list(keep_columns), on_error, skipped
        self.csv_files: dict[bytes, CsvFile] = {}
        self.carried_schema: list[pa.Schema] = []  # JSON Lines' carried columns: typed by the first batch
        self.answer_schema: pa.Schema | None = None

    def __call__(self, batch: Batch) -> Batch:
        if self.failed is not None:
            raise self.failed
        return from_arrow(self.score(to_arrow(batch)), like=batch)

    def score(self, table: pa.Table) -> pa.Table:
        scored, refused = [], []
        for chunk, file in self._chunks(table):
            try:
                for outcome in score_or_split(chunk, self.scorer, self.keep, self.on_error, first=True):
                    if isinstance(outcome, Refused):
                        refused.append(skipped_line(outcome, file))
                    else:
                        scored.append(outcome.table)
            except RowRefused as exc:
                raise RowRefused(_named(exc.message, file)) from None
        if refused:
            self.skipped.add(refused)  # type: ignore[union-attr]
        return self._answer(scored)

    def _chunks(self, table: pa.Table) -> Iterator[tuple[Chunk, str | None]]:
        """Runs of consecutive rows of one file, numbered as in the file; a batch from elsewhere is
        one chunk, its rows numbered from 0."""
        if columns.ROW not in table.column_names:
            self._check_keep(table.column_names)
            yield ArrowChunk(table, 0), None
            return
        files, rows = table[columns.FILE].to_pylist(), table[columns.ROW].to_numpy()
        starts = [0, *(i for i in range(1, len(rows)) if rows[i] != rows[i - 1] + 1 or files[i] != files[i - 1])]
        for start, stop in zip(starts, [*starts[1:], len(rows)]):
            yield self._chunk(table.slice(start, stop - start), int(rows[start])), files[start]

    def _chunk(self, part: pa.Table, first: int) -> Chunk:
        names = part.column_names
        if columns.RECORD in names:
            header = part[columns.HEADER][0].as_py()
            file = self.csv_files.get(header) or self.csv_files.setdefault(header, CsvFile(header))
            self._check_keep(file.names)
            return CsvChunk(file, part[columns.RECORD].to_pylist(), first)
        if columns.LINE in names:  # a line without a kept key carries null, as locally
            return JsonLinesChunk(part[columns.LINE].to_pylist(), first, self.carried_schema)
        self._check_keep(names)
        return ArrowChunk(part.drop_columns([columns.FILE, columns.ROW]), first)

    def _check_keep(self, names: list[str]) -> None:
        missing = [name for name in self.keep if name not in names]
        if missing:
            raise BadRequest(f"keep_columns: the input has no column {', '.join(map(repr, missing))}")

    def _answer(self, scored: list[pa.Table]) -> pa.Table:
        if not scored:  # every row refused
            return self.answer_schema.empty_table() if self.answer_schema is not None else pa.table({})
        answer = scored[0] if len(scored) == 1 else pa.concat_tables(scored, promote_options="permissive")
        self.answer_schema = answer.schema
        return answer


def check_on_error(on_error: str, skipped: SkippedRows | None) -> None:
    if on_error not in ON_ERROR:
        raise BadRequest(f"on_error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    if on_error == "skip" and skipped is None:
        raise BadRequest("on_error='skip' needs `skipped`, where refused rows go: SkippedRows(path)")


def _named(message: str, file: str | None) -> str:
    """`score_or_split` names a row by its place in the input: in a folder's file, or a batch's."""
    if file is None:
        return message.replace(_INPUT, " of a batch ", 1)
    return message.replace(_INPUT, f" of {file} ", 1) if file else message


def to_arrow(batch: Batch) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pd.DataFrame):
        return pa.Table.from_pandas(batch, preserve_index=False)
    if isinstance(batch, dict):
        return pa.table({str(name): _arrow_array(values) for name, values in batch.items()})
    raise BadRequest(f"A batch of {type(batch).__name__}: expected a pyarrow Table, a pandas DataFrame or a dict "
                     "of numpy arrays")


def _arrow_array(values: Any) -> pa.Array:
    array = np.asarray(values)
    return pa.array(list(array)) if array.ndim > 1 else pa.array(array)


def from_arrow(table: pa.Table, like: Batch) -> Batch:
    if isinstance(like, pa.Table):
        return table
    if isinstance(like, pd.DataFrame):
        return table.to_pandas()
    return {name: _numpy(column) for name, column in zip(table.column_names, table.columns)}


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A list column (class probabilities) as one 2-D array when its lists have one length."""
    values = column.to_numpy(zero_copy_only=False)
    if pa.types.is_list(column.type) and len(values) and column.null_count == 0:
        try:
            return np.stack(values)
        except ValueError:
            pass
    return values


def predict(ds: Any, model_uri: str | os.PathLike[str], *, concurrency: int | tuple[int, int] | None = None,
            batch_size: int | None = DEFAULT_BATCH_ROWS, batch_format: str = "pyarrow",
            keep_columns: list[str] | tuple[str, ...] = (), params: dict[str, Any] | None = None,
            registry_uri: str | None = None, on_error: str = "fail", skipped: SkippedRows | None = None,
            **ray_remote_args: Any) -> Any:
    """`ds` with the model's predictions (and `keep_columns`) in place of its columns: the model URI
    resolved once here (`registry_uri`, else `MLFLOW_REGISTRY_URI` / `MLFLOW_TRACKING_URI`), shipped
    through the object store, and scored by a pool of `Predictor` actors: `concurrency` of them (a
    `(min, max)` pair autoscales; None: from 1 up to what the cluster has room for). Lazy, as
    `map_batches` is::

        scored = sigserve.ray.predict(ray.data.read_parquet("s3://bucket/customers/"), "models:/churn@champion",
                                      keep_columns=["customer_id"], concurrency=8)
        scored.write_parquet("s3://bucket/churn-scores/")
    """
    import ray

    if isinstance(concurrency, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    elif concurrency is None:
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=None)
    else:
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    check_on_error(on_error, skipped)
    model = ship_model(model_uri, registry_uri)
    kwargs = {"model": model, "params": params, "keep_columns": list(keep_columns), "on_error": on_error,
              "skipped": skipped}
    return ds.map_batches(Predictor, fn_constructor_kwargs=kwargs, compute=compute, batch_size=batch_size,
                          batch_format=batch_format, **ray_remote_args)
