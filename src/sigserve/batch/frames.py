"""One loaded model scoring Arrow tables the way the server scores a Parquet body: the same
column selection, enforcement and model call, with the predictions as an Arrow table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sigserve.codecs.arrow import arrow_table
from sigserve.codecs.base import Decoded, ModelData
from sigserve.codecs.limits import UNLIMITED
from sigserve.codecs.selection import select_columns
from sigserve.enforce import enforce_params
from sigserve.errors import BadRequest, PredictionError
from sigserve.loaders.loader import LoadedModel, load_model
from sigserve.model.schema import Schema
from sigserve.scoring import Scorer, unexpected_as

WHAT = "The batch"
DEFAULT_OUTPUT_NAME = "prediction"


class FrameScorer:
    """Loaded once (per process, per executor, per actor), then called for every batch."""

    def __init__(self, model: LoadedModel, params: dict[str, Any] | None = None) -> None:
        self.scorer = Scorer(model)
        self.input_schema = self.scorer.input_schema
        self.output_schema = model.meta.signature.outputs if model.meta.signature else None
        with unexpected_as(BadRequest, "The params do not match the model signature"):
            self.params = enforce_params(params, self.scorer.param_specs)

    @classmethod
    def load(cls, model_dir: str | Path, params: dict[str, Any] | None = None) -> FrameScorer:
        return cls(load_model(model_dir), params)

    def decode_arrow(self, table: pa.Table) -> ModelData:
        return decode_arrow(table, self.input_schema)

    def enforce(self, data: ModelData) -> Any:
        return self.scorer.enforce(Decoded(data, None, "parquet"))[0]

    def predict(self, data: ModelData) -> Any:
        """Enforce the signature, then call the model: what the server does with a decoded body."""
        model_input = self.enforce(data)
        with unexpected_as(PredictionError, "The model failed to predict on this input"):
            return self.scorer.model.predict(model_input, self.params)

    def score_arrow(self, table: pa.Table) -> pa.Table:
        return predictions_table(self.predict(self.decode_arrow(table)), table.num_rows, self.output_schema)


def decode_arrow(table: pa.Table, input_schema: Schema | None) -> ModelData:
    """The columns the model can use, as the Parquet codec decodes them."""
    selection = select_columns(table.column_names, input_schema, UNLIMITED, WHAT)
    return arrow_table(table.select(selection.read), selection.unread)


def output_names(output_schema: Schema | None) -> list[str] | None:
    if output_schema is None or not output_schema.has_names:
        return None
    return output_schema.names


def predictions_table(predictions: Any, n_rows: int, output_schema: Schema | None = None) -> pa.Table:
    """Predictions as columns: a DataFrame's or a dict's own, a 2-D array's named by the output
    schema when it names one per column (one list column otherwise), one column for the rest."""
    names = output_names(output_schema)
    with unexpected_as(PredictionError, "The model's predictions could not be written as columns"):
        columns = _columns(predictions, names)
        table = pa.table({str(name): _arrow_column(values) for name, values in columns.items()})
    if table.num_rows != n_rows:
        raise PredictionError(f"The model returned {table.num_rows} predictions for {n_rows} rows")
    return table


def _columns(predictions: Any, names: list[str] | None) -> dict[Any, Any]:
    if isinstance(predictions, pd.DataFrame):
        return {label: predictions.iloc[:, j] for j, label in enumerate(predictions.columns)}
    if isinstance(predictions, dict):
        return dict(predictions)
    if isinstance(predictions, pd.Series):
        return {_single_name(names, predictions.name): predictions}
    if isinstance(predictions, list) and predictions and isinstance(predictions[0], dict):
        return _columns(pd.DataFrame(predictions), names)
    array = np.asarray(predictions) if not isinstance(predictions, np.ndarray) else predictions
    if array.ndim == 2 and names is not None and len(names) == array.shape[1] and len(names) > 1:
        return {name: array[:, j] for j, name in enumerate(names)}
    if array.ndim == 0:
        raise PredictionError("The model returned a single value, not one prediction per row")
    return {_single_name(names, None): array}


def _single_name(names: list[str] | None, own: Any) -> str:
    if names is not None and len(names) == 1:
        return names[0]
    return DEFAULT_OUTPUT_NAME if own is None else str(own)


def _arrow_column(values: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pd.Series):
        return pa.Array.from_pandas(values)
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if array.ndim > 1:
        return pa.array(list(array))
    if array.dtype.kind == "O":
        return pa.array(array.tolist())
    return pa.array(array)
