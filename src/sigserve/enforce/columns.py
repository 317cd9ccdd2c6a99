"""Column-based signatures: match names (or positions), then convert each column."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from sigserve.codecs.base import Table
from sigserve.enforce.complex import enforce_values
from sigserve.enforce.typed import convert_typed
from sigserve.enforce.values import Target, convert_untyped, convert_untyped_block
from sigserve.errors import SchemaError
from sigserve.model.schema import AnyType, ColSpec, DataType, Schema


def enforce_columns(table: Table, schema: Schema) -> pd.DataFrame:
    if schema.has_names:
        selected = _match_named(table, schema)
    else:
        selected = _match_positional(table, schema)
    if not table.typed:
        frame = _numeric_block_frame(table, selected)
        if frame is not None:
            return frame
    columns = {
        label: convert_column(table.columns[label], spec, table.typed, f"Column {label!r}")
        for label, spec in selected
    }
    return build_frame(columns, table.n_rows)


def build_frame(columns: dict[Any, Any], n_rows: int) -> pd.DataFrame:
    """One 2-D block when every column shares a numeric dtype: far cheaper than a dict of columns.
    Stored column by column, as pandas stores a frame MLflow builds: its `to_numpy()` is then
    column-major too, and a model's BLAS sums in the same order (a C-ordered block can differ from
    MLflow's answer in the last bit)."""
    arrays = list(columns.values())
    index = pd.RangeIndex(n_rows)
    if arrays and all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in arrays):
        dtype = arrays[0].dtype
        if all(a.dtype == dtype for a in arrays):
            labels = _column_index(tuple(columns))
            return pd.DataFrame(np.stack(arrays).T, columns=labels, index=index, copy=False)
    return pd.DataFrame(columns, index=index)


def _numeric_block_frame(table: Table, selected: list[tuple[Any, ColSpec]]) -> pd.DataFrame | None:
    """Columns sharing one numeric type converted as one block: the usual request, for a
    fraction of the per-column cost. None sends them through `convert_column` one by one."""
    types = {spec.type for _, spec in selected}
    data_type = types.pop() if len(types) == 1 else None
    if len(selected) < 2 or not isinstance(data_type, DataType):
        return None
    arrays = [np.asarray(table.columns[label]) for label, _ in selected]
    if len({array.dtype for array in arrays}) != 1 or any(array.ndim != 1 for array in arrays):
        return None  # an int64 column stacked with a float64 one would lose its exactness
    block = convert_untyped_block(np.stack(arrays), Target.of(data_type))  # columns x rows, as `build_frame`
    if block is None:
        return None
    labels = _column_index(tuple(label for label, _ in selected))
    return pd.DataFrame(block.T, columns=labels, index=pd.RangeIndex(table.n_rows), copy=False)


@functools.lru_cache(maxsize=64)
def _column_index(labels: tuple[Any, ...]) -> pd.Index:
    """Building a string Index costs more than the frame itself; requests reuse a few."""
    return pd.Index(labels)


def _match_named(table: Table, schema: Schema) -> list[tuple[Any, ColSpec]]:
    missing = [name for name in schema.required_names if name not in table.columns]
    if missing:
        known = set(schema.names)
        extra = [label for label in (*table.columns, *table.unread) if label not in known]
        note = f" Note that there were extra inputs: {extra}." if extra else ""
        raise SchemaError(f"Model is missing inputs {missing}.{note}", reason="missing_input")
    return [(spec.name, spec) for spec in schema.inputs if spec.name in table.columns]


def _match_positional(table: Table, schema: Schema) -> list[tuple[Any, ColSpec]]:
    labels = list(table.columns)
    if len(labels) < len(schema.inputs):
        raise SchemaError(
            f"Model inference is missing inputs. The model signature declares {len(schema.inputs)} "
            f"inputs but the provided value only has {len(labels)} inputs. Note: the inputs were "
            "not named in the signature so only their count is checked.",
            reason="missing_input",
        )
    return list(zip(labels, schema.inputs))


def convert_column(values: Any, spec: ColSpec, typed: bool, what: str) -> Any:
    if isinstance(spec.type, AnyType):
        return pd.Series(values).infer_objects().to_numpy()  # passed through, typed as pandas would
    if not isinstance(spec.type, DataType):
        return enforce_values(_as_objects(values), spec.type, spec.required, what)
    if typed:
        return convert_typed(values, spec.type, what)
    return convert_untyped(np.asarray(values), Target.of(spec.type), what)


def _as_objects(values: Any) -> np.ndarray:
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    return array if array.dtype == object else array.astype(object)


def frame_without_schema(table: Table) -> pd.DataFrame:
    """No signature: pandas infers the types, as MLflow does."""
    frame = pd.DataFrame(dict(table.columns), index=pd.RangeIndex(table.n_rows))
    return frame if table.typed else frame.infer_objects()
