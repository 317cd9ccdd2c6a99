"""`params`: type-checked against the params schema, defaults filled in (MLflow's rules)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import pandas as pd

from sigserve.codecs.tables import object_column
from sigserve.enforce.complex import enforce_value
from sigserve.enforce.values import Target, convert_untyped
from sigserve.errors import InvalidParameter, SchemaError
from sigserve.model.schema import DataType, ObjectType, ParamSpec

logger = logging.getLogger("sigserve.enforce")

_ACCEPTED = {
    DataType.boolean: (bool, np.bool_),
    DataType.integer: (int, np.int32),
    DataType.long: (int, np.int32, np.int64),
    DataType.float: (int, float, np.int32, np.int64, np.float32),
    DataType.double: (int, float, np.int32, np.int64, np.float32, np.float64),
    DataType.string: (str,),
    DataType.binary: (bytes, bytearray),
}
_PYTHON = {
    DataType.boolean: bool,
    DataType.integer: int,
    DataType.long: int,
    DataType.float: float,
    DataType.double: float,
    DataType.string: str,
    DataType.binary: bytes,
}


def enforce_params(
    params: Any, specs: tuple[ParamSpec, ...] | None
) -> dict[str, Any] | None:
    if specs is None:
        if params:
            logger.warning("the model has no params schema; ignoring params %s", _keys(params))
            return {}
        return params
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise InvalidParameter(f"params must be an object, got {type(params).__name__}")
    known = {spec.name for spec in specs}
    ignored = [key for key in params if key not in known]
    if ignored:
        logger.warning("ignoring params not in the params schema: %s", ignored)
    enforced: dict[str, Any] = {}
    problems: list[str] = []
    for spec in specs:
        if spec.name not in params:
            enforced[spec.name] = spec.default
            continue
        try:
            enforced[spec.name] = _enforce_param(params[spec.name], spec)
        except (InvalidParameter, SchemaError) as exc:
            problems.append(f"{spec.name!r}: {exc.message}")
    if problems:
        raise InvalidParameter("Invalid parameters: " + "; ".join(problems))
    return enforced


def _keys(params: Any) -> Any:
    return list(params) if isinstance(params, dict) else type(params).__name__


def _enforce_param(value: Any, spec: ParamSpec) -> Any:
    if spec.shape == (-1,):
        if not isinstance(value, list) or any(isinstance(v, (list, dict)) for v in value):
            raise InvalidParameter(f"expected a 1-D list of {_label(spec)}, got {value!r}")
        return [_enforce_scalar(item, spec.type) for item in value]
    if spec.shape is not None:
        raise InvalidParameter(f"unsupported param shape {spec.shape}")
    if isinstance(spec.type, ObjectType):
        enforce_value(value, spec.type, True, "value")
        return value
    return _enforce_scalar(value, spec.type)


def _label(spec: ParamSpec) -> str:
    return spec.type.value if isinstance(spec.type, DataType) else spec.type.describe()


def _enforce_scalar(value: Any, data_type: Any) -> Any:
    if value is None:
        return None
    if data_type is DataType.datetime:
        return _to_datetime(value)
    if isinstance(value, (list, dict)):
        raise InvalidParameter(f"expected a {data_type.value} scalar, got {value!r}")
    if type(value) in _ACCEPTED[data_type]:
        return _PYTHON[data_type](value)
    raise InvalidParameter(
        f"expected {data_type.value}, got {value!r} ({type(value).__name__})"
    )


def _to_datetime(value: Any) -> dt.date:
    """The datetime column rule (ISO-8601, `Z` and offsets to naive UTC) on one value; a bare
    date stays a date, as MLflow hands it over."""
    if isinstance(value, dt.date):
        return value
    stamps = convert_untyped(object_column([value]), Target.of(DataType.datetime), "value")
    if np.isnat(stamps[0]):
        raise InvalidParameter(f"expected datetime (an ISO-8601 string), got {value!r}")
    stamp = pd.Timestamp(stamps[0]).to_pydatetime()
    return stamp.date() if isinstance(value, str) and len(value.strip()) == 10 else stamp
