"""CatBoost models saved by `mlflow.catboost`, loaded without MLflow.

The flavor names the model's class (`model_type`) and file format (`save_format`, `cbm` unless
the user chose another). Predictions are those of MLflow's `_CatboostModelWrapper`: the model's
own `predict(data)`, with request params ignored, as MLflow ignores them. Only the thread count
differs: sigserve's, where CatBoost would take every core.
"""

from __future__ import annotations

from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.loaders.flavors.native import import_library
from sigserve.model.mlmodel import ModelMeta
from sigserve.native_threads import default_native_threads

LOADER_MODULE = "mlflow.catboost"
EXTRA = "catboost"
EXTRA_HINT = "install it with: pip install 'sigserve[catboost]'"
FLAVOR = "catboost"
MODEL_TYPES = ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")
DEFAULT_SAVE_FORMAT = "cbm"  # CatBoost's own default; MLflow writes it explicitly


def load(meta: ModelMeta) -> CatBoostModel:
    cb = import_library("catboost", meta, EXTRA_HINT)
    flavor = meta.flavors.get(FLAVOR)
    if not isinstance(flavor, dict):
        raise ModelLoadError(f"{meta.path}/MLmodel: the model has no catboost flavor")
    model_type = flavor.get("model_type")
    if model_type not in MODEL_TYPES or not hasattr(cb, model_type):
        raise ModelLoadError(
            f"{meta.path}/MLmodel: invalid catboost model_type {model_type!r}; "
            f"expected one of {', '.join(t for t in MODEL_TYPES if hasattr(cb, t))}"
        )
    if not meta.pyfunc.data:
        raise ModelLoadError(f"{meta.path}/MLmodel: the python_function flavor names no catboost model file")
    model = getattr(cb, model_type)()
    model.load_model(str((meta.path / meta.pyfunc.data).resolve()), flavor.get("save_format") or DEFAULT_SAVE_FORMAT)
    return CatBoostModel(model, default_native_threads())


class CatBoostModel:
    """`mlflow.catboost`'s pyfunc wrapper, predicting with sigserve's native thread count
    (`thread_count` per call is CatBoost's own setting; its default, -1, is every core)."""

    def __init__(self, model: Any, threads: int) -> None:
        self.cb_model = model
        self.threads = threads

    def get_raw_model(self) -> Any:
        return self.cb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.cb_model.predict(data, thread_count=self.threads)
