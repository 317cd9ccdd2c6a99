"""Batch scoring on Apache Spark with sigserve's decode → enforce → predict: `udf`, a drop-in for
`mlflow.pyfunc.spark_udf`, and `predict_on_spark`, which `sigserve predict --engine spark` runs.

pyspark is an optional extra (`sigserve[spark]`): it is imported when either is first used."""

from __future__ import annotations

import importlib
from typing import Any

from sigserve.errors import BadRequest

__all__ = ["predict_on_spark", "udf"]
_HOMES = {"udf": "sigserve.spark.model_udf", "predict_on_spark": "sigserve.spark.predict"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sigserve.spark' has no attribute {name!r}")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise BadRequest("Scoring on Spark needs pyspark (and Java 17+): pip install 'sigserve[spark]'") from None
    return getattr(importlib.import_module(_HOMES[name]), name)
