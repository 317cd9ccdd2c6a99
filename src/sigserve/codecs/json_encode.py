"""JSON bytes of anything a model returns (numpy, pandas, dates, bytes), as MLflow writes them."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import numpy as np
import orjson
import pandas as pd

OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def encode_json(document: Any) -> bytes:
    return orjson.dumps(document, default=default, option=OPTIONS)


def jsonable(predictions: Any) -> Any:
    """DataFrame → records, Series → records of its one column (as MLflow), the rest as is."""
    if isinstance(predictions, pd.DataFrame):
        return _records(predictions)
    if isinstance(predictions, pd.Series):
        return _records(predictions.to_frame())
    if isinstance(predictions, dict):
        return {key: jsonable(value) for key, value in predictions.items()}
    if isinstance(predictions, np.ndarray) and predictions.dtype.kind == "f" and predictions.itemsize < 8:
        return predictions.astype(np.float64)  # the float32 value exactly, as MLflow's tolist() writes it
    if isinstance(predictions, np.floating) and predictions.itemsize < 8:
        return float(predictions)
    return predictions


def _records(frame: pd.DataFrame) -> list[dict[Any, Any]]:
    labels = [str(label) if not isinstance(label, str) else label for label in frame.columns]
    columns = [_column_values(frame.iloc[:, j]) for j in range(frame.shape[1])]
    return [dict(zip(labels, row)) for row in zip(*columns)]


def _column_values(column: pd.Series) -> list[Any]:
    values = column.to_numpy()
    if values.dtype.kind == "f":
        return np.where(np.isnan(values), None, values).tolist()  # type: ignore[call-overload]
    if values.dtype.kind == "M":
        return [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in values]
    return values.tolist()


def default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biuf" and not obj.flags.c_contiguous:
            return np.ascontiguousarray(obj)
        if obj.dtype.kind == "M":
            return np.datetime_as_string(obj).tolist()
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bytes, bytearray)):
        return base64.encodebytes(bytes(obj)).decode("ascii")
    if isinstance(obj, (pd.Timestamp, dt.date, dt.time)):
        return obj.isoformat()
    if isinstance(obj, (pd.DataFrame, pd.Series)):
        return jsonable(obj)
    if obj is pd.NaT or obj is pd.NA:
        return None
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if callable(getattr(obj, "model_dump", None)):  # pydantic models, as MLflow's encoder dumps them
        return obj.model_dump()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
