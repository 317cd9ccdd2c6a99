"""LightGBM models saved by `mlflow.lightgbm`, loaded without MLflow.

A Booster is saved as LightGBM's text model (`model.lgb`); a scikit-learn API model (LGBMClassifier,
LGBMRegressor, ...) as skops, cloudpickle or pickle, like `mlflow.sklearn`. Predictions are those of
MLflow's `_LGBModelWrapper`: the model's own `predict(data)`, with request params ignored, as MLflow
ignores them. Only the thread count differs: sigserve's, where LightGBM would take every core.
"""

from __future__ import annotations

from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.loaders.flavors.custom import add_code_dir
from sigserve.loaders.flavors.sklearn import deserialize
from sigserve.loaders.flavors.native import import_library
from sigserve.model.mlmodel import ModelMeta
from sigserve.native_threads import default_native_threads

LOADER_MODULE = "mlflow.lightgbm"
EXTRA = "lightgbm"
EXTRA_HINT = "install it with: pip install 'sigserve[lightgbm]'"
FLAVOR = "lightgbm"
BOOSTER_CLASS = "lightgbm.basic.Booster"  # also what models saved before MLflow 1.23 hold
DEFAULT_SERIALIZATION = "cloudpickle"  # MLflow's reading of a flavor that names none


def load(meta: ModelMeta) -> LightGBMModel:
    lgb = import_library("lightgbm", meta, EXTRA_HINT)
    return LightGBMModel(_load_model(meta, lgb), default_native_threads())


class LightGBMModel:
    """`mlflow.lightgbm`'s pyfunc wrapper, predicting with sigserve's native thread count.

    `num_threads` per call is LightGBM's own setting for one prediction: a Booster would otherwise
    use OpenMP's default and a scikit-learn API model its `n_jobs` (every physical core when unset).
    """

    def __init__(self, model: Any, threads: int) -> None:
        self.lgb_model = model
        self.threads = threads

    def get_raw_model(self) -> Any:
        return self.lgb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.lgb_model.predict(data, num_threads=self.threads)


def _load_model(meta: ModelMeta, lgb: Any) -> Any:
    flavor = meta.flavors.get(FLAVOR)
    if not isinstance(flavor, dict) or not flavor.get("data"):
        raise ModelLoadError(f"{meta.path}/MLmodel: the lightgbm flavor names no model file")
    data_path = meta.path / meta.pyfunc.data if meta.pyfunc.data else meta.path
    model_file = (data_path.parent if data_path.is_file() else data_path) / flavor["data"]
    if flavor.get("model_class", BOOSTER_CLASS) == BOOSTER_CLASS:
        return lgb.Booster(model_file=str(model_file))
    add_code_dir(meta)  # a pickled model may refer to the user's code, as under MLflow
    serialization = flavor.get("serialization_format") or DEFAULT_SERIALIZATION
    return deserialize(model_file, serialization, flavor.get("skops_trusted_types"), FLAVOR)
