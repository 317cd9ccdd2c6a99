"""Native loaders for python_function models, keyed by `loader_module`.

Each loader returns the flavor's model object: something with the MLmodel's `predict_fn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sigserve.loaders.flavors import catboost, custom, lightgbm, mlflow_fallback, sklearn, xgboost
from sigserve.model.mlmodel import ModelMeta

Loader = Callable[[ModelMeta], Any]

NATIVE_LOADERS: dict[str, Loader] = {
    sklearn.LOADER_MODULE: sklearn.load,
    xgboost.LOADER_MODULE: xgboost.load,
    lightgbm.LOADER_MODULE: lightgbm.load,
    catboost.LOADER_MODULE: catboost.load,
}

# The sigserve extra each native loader needs: what a generated image installs for the model.
NATIVE_EXTRAS: dict[str, str] = {
    sklearn.LOADER_MODULE: "sklearn",
    xgboost.LOADER_MODULE: xgboost.EXTRA,
    lightgbm.LOADER_MODULE: lightgbm.EXTRA,
    catboost.LOADER_MODULE: catboost.EXTRA,
}


def find_loader(meta: ModelMeta) -> Loader:
    """Native loader first, then a user module from the model's code dir, then MLflow."""
    if meta.loader_module in NATIVE_LOADERS:
        return NATIVE_LOADERS[meta.loader_module]
    if not meta.loader_module.startswith("mlflow.") and custom.is_importable(meta):
        return custom.load
    return mlflow_fallback.load


__all__ = ["NATIVE_EXTRAS", "NATIVE_LOADERS", "Loader", "find_loader"]
