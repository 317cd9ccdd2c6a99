"""MLflow's safe-cast table for typed columns (Parquet, CSV read with the signature's types):
the decision is made on the dtype, not on the values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sigserve.enforce.values import MISSING_VALUES_HINT, Target, convert_untyped, naive_ns
from sigserve.errors import SchemaError
from sigserve.model.schema import DataType


def convert_typed(values: Any, data_type: DataType, what: str) -> Any:
    """Same dtype passes; upcasts pass; text and objects go through the untyped rule."""
    if isinstance(values, pd.Series):
        values = values.to_numpy() if not isinstance(values.dtype, pd.DatetimeTZDtype) else values
    target = Target.of(data_type)
    if isinstance(values, pd.Series) or values.dtype.kind == "M":
        if data_type is DataType.datetime:
            return naive_ns(pd.Series(values), what).to_numpy()
        raise _incompatible(what, values.dtype, target)
    if values.dtype == object:
        if data_type in (DataType.string, DataType.binary, DataType.datetime, DataType.boolean):
            return convert_untyped(values, target, what)
        inferred = pd.Series(values).infer_objects().to_numpy()
        if inferred.dtype == object:
            raise _incompatible(what, values.dtype, target)
        values = inferred
    wanted = target.dtype
    if values.dtype == wanted:
        return values
    if _is_safe_cast(values, wanted):
        return values.astype(wanted)
    hint = MISSING_VALUES_HINT if values.dtype.kind == "f" and wanted.kind in "iu" and np.isnan(values).any() else ""
    raise _incompatible(what, values.dtype, target, hint)


def _is_safe_cast(values: np.ndarray, wanted: np.dtype) -> bool:
    have = values.dtype
    if have.kind == wanted.kind:
        return have.itemsize <= wanted.itemsize
    if have.kind == "u" and wanted.kind == "i":
        return have.itemsize < wanted.itemsize
    if have.kind in "iu" and wanted == np.float64 and have.itemsize <= 6:
        return True
    if have == np.int64 and wanted.kind == "f":
        return bool(np.isin(values, (0, 1)).all())
    return False


def _incompatible(what: str, have: Any, target: Target, hint: str = "") -> SchemaError:
    return SchemaError(
        f"{what}: incompatible input type {have}; cannot safely convert it to {target.label} "
        f"({target.dtype}).{hint}"
    )
