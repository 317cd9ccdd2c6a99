"""scikit-learn models saved by `mlflow.sklearn`, loaded without MLflow."""

from __future__ import annotations

import pickle
from pathlib import Path
import warnings
from typing import Any

import numpy as np
import pandas as pd

from sigserve.errors import ModelLoadError
from sigserve.loaders.flavors.native import FeatureColumns
from sigserve.loaders.flavors.sklearn_linear import Predictor, linear_predictor
from sigserve.model.mlmodel import ModelMeta

LOADER_MODULE = "mlflow.sklearn"
EXTRA_HINT = "install it with: pip install 'sigserve[sklearn]'"


def load(meta: ModelMeta) -> Any:
    return SklearnModel(_load_estimator(meta))


class SklearnModel:
    """`mlflow.sklearn`'s pyfunc wrapper: `predict(data)` plus the custom predict functions, each
    called with the data alone, never with params (so `Pipeline.predict(X, **params)` is safe).

    For a plain estimator (not a pipeline or column transformer) given an all-numeric frame whose
    columns are exactly `feature_names_in_`, the values are handed over as one array: the frame
    was already checked against the signature, and sklearn's per-call DataFrame validation costs
    several times the prediction itself. Linear models go further (`sklearn_linear.py`).
    """

    _CUSTOM_PREDICT_FNS = (
        "predict_proba", "predict_log_proba", "predict_joint_log_proba", "score", "decision_function"
    )

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self._input = _FastInput(_plain_feature_names(estimator))
        for name in self._CUSTOM_PREDICT_FNS:
            method = getattr(estimator, name, None)
            if method is not None:
                setattr(self, name, self._input.wrap(method))
        closed_form = linear_predictor(estimator)
        self.closed_form = closed_form is not None
        self.predict = self._input.wrap(estimator.predict, closed_form)

    def get_raw_model(self) -> Any:
        return self.estimator


class _FastInput:
    """Kept apart from `SklearnModel` so its wrapped methods hold no reference back to the
    model: without a cycle, a retired model is freed as soon as its last request ends."""

    def __init__(self, feature_names: pd.Index | None) -> None:
        self.columns = FeatureColumns(feature_names) if feature_names is not None else None

    def wrap(self, method: Any, direct: Predictor | None = None) -> Any:
        """`direct` answers for the arrays it takes (None: it declines); `method` for the rest."""
        if self.columns is None and direct is None:
            return lambda data: method(data)

        def call(data: Any) -> Any:
            values = self.as_array(data)
            if direct is not None and isinstance(values, np.ndarray):
                predicted = direct(values)
                if predicted is not None:
                    return predicted
            return method(values)

        return call

    def as_array(self, data: Any) -> Any:
        if self.columns is not None and isinstance(data, pd.DataFrame) and self.columns.match(data):
            values = data.to_numpy()
            if values.dtype.kind in "iuf":  # any non-numeric column makes it object
                return values
        return data


def _plain_feature_names(estimator: Any) -> pd.Index | None:
    names = getattr(estimator, "feature_names_in_", None)
    if names is None or hasattr(estimator, "steps") or hasattr(estimator, "transformers"):
        return None
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    return pd.Index([str(name) for name in names])


def _load_estimator(meta: ModelMeta) -> Any:
    flavor = meta.flavors.get("sklearn", {})
    file_name = meta.pyfunc.data or flavor.get("pickled_model")
    if not file_name:
        raise ModelLoadError(f"{meta.path}/MLmodel: the sklearn flavor names no model file")
    return deserialize(meta.path / file_name, flavor.get("serialization_format", "pickle"),
                       flavor.get("skops_trusted_types"), "sklearn")


def deserialize(path: Path, serialization: str, trusted_types: list[str] | None, flavor: str) -> Any:
    """A scikit-learn API object in one of the formats MLflow writes (also LightGBM's estimators)."""
    try:
        if serialization == "skops":
            return _load_skops(path, trusted_types)
        if serialization == "cloudpickle":
            import cloudpickle

            with open(path, "rb") as handle:
                return cloudpickle.load(handle)
        if serialization == "pickle":
            with open(path, "rb") as handle:
                return pickle.load(handle)
    except ImportError as exc:
        raise ModelLoadError(
            f"Loading {path} ({serialization}) needs the '{exc.name}' package; {EXTRA_HINT}"
        ) from None
    raise ModelLoadError(f"{path.parent}/MLmodel: unknown {flavor} serialization_format {serialization!r}")


def _load_skops(path: Path, trusted_types: list[str] | None) -> Any:
    import skops.io

    try:
        return skops.io.load(path, trusted=trusted_types)
    except skops.io.exceptions.UntrustedTypesFoundException as exc:
        raise ModelLoadError(
            f"{path}: skops found types not listed in skops_trusted_types: {exc}"
        ) from None
