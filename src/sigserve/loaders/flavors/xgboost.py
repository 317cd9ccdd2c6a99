"""XGBoost models saved by `mlflow.xgboost`, loaded without MLflow.

Predictions are those of MLflow's `_XGBModelWrapper`: a Booster scores `DMatrix(data)`, a
scikit-learn API model (XGBClassifier, XGBRegressor, XGBRanker, XGBRF*) its own `predict(data)`,
both with `validate_features=True`, and the request's params go to that predict method when it
takes them (others are dropped with a warning, as MLflow does).

Building a DMatrix from a DataFrame, or xgboost's own DataFrame handling in the scikit-learn API,
costs ten times the prediction of a small request. For a frame that holds exactly the model's
features, sigserve hands xgboost one float64 array instead, but only once it has reproduced the
DataFrame path's predictions exactly at load time (`_ArrayPath`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from sigserve.errors import ModelLoadError
from sigserve.loaders.flavors.custom import add_code_dir
from sigserve.loaders.flavors.native import FeatureColumns, import_library
from sigserve.model.mlmodel import ModelMeta
from sigserve.native_threads import default_native_threads

logger = logging.getLogger("sigserve.model")

LOADER_MODULE = "mlflow.xgboost"
EXTRA = "xgboost"
EXTRA_HINT = "install it with: pip install 'sigserve[xgboost]'"
FLAVOR = "xgboost"
DEFAULT_MODEL_CLASS = "xgboost.core.Booster"  # models saved before MLflow 1.22 name no class

ARRAY_DTYPES = frozenset(np.dtype(t) for t in (np.float64, np.float32, np.int64, np.int32))
EXACT_IN_FLOAT64 = 2.0**53  # int64 beyond this would be rounded twice on the way to float32
PROBE_ROWS = (64, 7, 1)
MAX_PROBE_CELLS = 1 << 16  # per frame
MAX_PROBE_COLUMNS = 1 << 12  # over all frames: xgboost's DataFrame path costs ~0.2 ms a column
MAX_THRESHOLDS = 32  # per feature
MAX_THRESHOLD_ROUNDS = 64  # thresholds come from the first rounds; the proof still runs the whole model
NUMERIC_FEATURE_TYPES = frozenset({"float", "int", "i", "q"})


def load(meta: ModelMeta) -> XGBoostModel:
    xgb = import_library("xgboost", meta, EXTRA_HINT)
    try:
        model = _load_model(meta, xgb)
    except ImportError as exc:  # xgboost imports scikit-learn only for its scikit-learn API
        raise ModelLoadError(
            f"Loading {meta.path} ({LOADER_MODULE}) failed: {exc}; xgboost's scikit-learn API models "
            f"also need scikit-learn: pip install 'sigserve[xgboost,sklearn]'"
        ) from None
    return XGBoostModel(model, default_native_threads())


class XGBoostModel:
    """`mlflow.xgboost`'s pyfunc wrapper, predicting with sigserve's native thread count."""

    def __init__(self, model: Any, threads: int) -> None:
        import xgboost as xgb

        self.xgb_model = model
        self.threads = threads
        if isinstance(model, xgb.Booster):
            booster = model
            self._predict = self._booster_predict
            array_predict = functools.partial(model.inplace_predict, validate_features=False)
        else:
            booster = model.get_booster()
            model.n_jobs = threads  # for the DMatrix xgboost builds itself (gblinear)
            self._predict = self._sklearn_predict
            array_predict = functools.partial(model.predict, validate_features=False)
        booster.set_param({"nthread": threads})
        self._array_path = _ArrayPath.proven(booster, self._predict, array_predict)

    def get_raw_model(self) -> Any:
        return self.xgb_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        kept = _accepted_params(self.xgb_model.predict, params or {})
        if not kept and self._array_path is not None:
            predicted = self._array_path(data)
            if predicted is not None:
                return predicted
        return self._predict(data, **kept)

    def _booster_predict(self, data: Any, **params: Any) -> Any:
        import xgboost as xgb

        return self.xgb_model.predict(xgb.DMatrix(data, nthread=self.threads), validate_features=True, **params)

    def _sklearn_predict(self, data: Any, **params: Any) -> Any:
        return self.xgb_model.predict(data, **{"validate_features": True, **params})


def _accepted_params(method: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """MLflow's filter: the params the predict method names (all of them if it takes **kwargs)."""
    if not params:
        return params
    parameters = inspect.signature(method).parameters
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters.values()):
        return params
    kept = {key: value for key, value in params.items() if key in parameters}
    ignored = set(params) - set(kept)
    if ignored:
        logger.warning("Params %s are not accepted by the xgboost model, ignoring them during predict.", ignored)
    return kept


class _ArrayPath:
    """Predicts a frame of exactly the model's features from one float64 array.

    Every supported column dtype converts to float64 exactly (int64 only up to 2**53, checked per
    call), and xgboost turns both a column and the array into the same float32. `proven` checks
    that on probe frames built around the model's own split thresholds, with missing values, each
    column dtype and a mix of them, a few batch sizes and both memory layouts; anything else a
    request may hold (other dtypes, no rows, infinities, other columns) takes the MLflow path.
    """

    def __init__(self, names: pd.Index, array_predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.columns = FeatureColumns(names)
        self.array_predict = array_predict

    @classmethod
    def proven(
        cls,
        booster: Any,
        frame_predict: Callable[[pd.DataFrame], Any],
        array_predict: Callable[[np.ndarray], np.ndarray],
    ) -> _ArrayPath | None:
        names = booster.feature_names
        if not names or not _plain_gbtree(booster):
            return None
        try:
            path = cls(pd.Index(names), array_predict)
            proven = all(path._reproduces(frame_predict, frame) for frame in _probe_frames(booster, names))
        except Exception as exc:  # noqa: BLE001 - an odd model keeps the MLflow path, never fails the load
            logger.debug("xgboost: no array path: %s", exc)
            return None
        if not proven:
            logger.info("xgboost: predicting from arrays differs from the DataFrame path; using the DataFrame path")
            return None
        logger.info("xgboost: predicting frames as float64 arrays (proven equal to the DataFrame path)")
        return path

    def __call__(self, data: Any) -> np.ndarray | None:
        if not isinstance(data, pd.DataFrame) or not len(data) or not self.columns.match(data):
            return None
        if not all(dtype in ARRAY_DTYPES for dtype in data.dtypes):
            return None
        return self._predict_values(data.to_numpy(dtype=np.float64))

    def _predict_values(self, values: np.ndarray) -> np.ndarray | None:
        if (np.abs(values) >= EXACT_IN_FLOAT64).any():  # also infinities; NaN compares False
            return None
        return self.array_predict(values)

    def _reproduces(self, frame_predict: Callable[[pd.DataFrame], Any], frame: pd.DataFrame) -> bool:
        """The same values, dtype and shape as the DataFrame path, from either memory layout."""
        expected = frame_predict(frame)
        if not isinstance(expected, np.ndarray):
            return False
        values = frame.to_numpy(dtype=np.float64)
        for layout in (np.asfortranarray, np.ascontiguousarray):
            actual = self._predict_values(layout(values))
            if (
                actual is None
                or actual.dtype != expected.dtype
                or actual.shape != expected.shape
                or not np.array_equal(actual, expected, equal_nan=expected.dtype.kind == "f")
            ):
                return False
        return True


def _plain_gbtree(booster: Any) -> bool:
    """Trees over numeric features only: no categorical splits, no linear booster, no dart."""
    if any(t not in NUMERIC_FEATURE_TYPES for t in booster.feature_types or ()):
        return False
    return json.loads(booster.save_config())["learner"]["gradient_booster"]["name"] == "gbtree"


def _probe_frames(booster: Any, names: list[str]) -> list[pd.DataFrame]:
    """Values at, just beside and between the model's split thresholds, about a tenth missing,
    as frames of all column dtypes mixed and of each alone, largest first; a wide model gets
    fewer of them, and at least the mixed one."""
    n_features = len(names)
    rows = max(1, min(max(PROBE_ROWS), MAX_PROBE_CELLS // n_features))
    rng = np.random.default_rng(0)
    candidates = _threshold_candidates(booster, n_features)
    base = np.column_stack([rng.choice(values, size=rows) for values in candidates])
    missing = rng.random(base.shape) < 0.1
    as_int = np.where(rng.random(base.shape) < 0.5, np.floor(base), np.ceil(base))
    as_int = np.clip(np.nan_to_num(as_int), np.iinfo(np.int32).min, np.iinfo(np.int32).max)
    typed = {
        np.dtype(np.float64): np.where(missing, np.nan, base),
        np.dtype(np.float32): np.where(missing, np.nan, base).astype(np.float32),
        np.dtype(np.int64): as_int.astype(np.int64),
        np.dtype(np.int32): as_int.astype(np.int32),
    }
    dtypes = list(typed)
    mixed = pd.DataFrame({name: typed[dtypes[i % len(dtypes)]][:, i] for i, name in enumerate(names)})
    frames = [mixed, *(pd.DataFrame(values, columns=names) for values in typed.values())]
    counts = sorted({rows, *(count for count in PROBE_ROWS if count < rows)}, reverse=True)
    sized = [frame.iloc[:count] for count in counts for frame in frames]
    return sized[:max(1, MAX_PROBE_COLUMNS // n_features)]


def _threshold_candidates(booster: Any, n_features: int) -> list[np.ndarray]:
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    rounds = booster.num_boosted_rounds()
    if rounds > MAX_THRESHOLD_ROUNDS:  # a large model's JSON would cost gigabytes as Python objects
        booster = booster[:MAX_THRESHOLD_ROUNDS]
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    for tree in trees:
        for feature, condition, left in zip(tree["split_indices"], tree["split_conditions"], tree["left_children"]):
            if left != -1 and feature < n_features:
                thresholds[feature].append(condition)
    rng = np.random.default_rng(1)
    candidates = []
    for found in thresholds:
        unique = np.unique(np.asarray(found, dtype=np.float32))
        if len(unique) > MAX_THRESHOLDS:
            unique = rng.choice(unique, MAX_THRESHOLDS, replace=False)
        below = np.nextafter(unique, np.float32(-np.inf))
        above = np.nextafter(unique, np.float32(np.inf))
        exact = unique.astype(np.float64)
        candidates.append(np.concatenate([
            exact, below, above, exact * (1 + 1e-12), exact * (1 - 1e-12), (exact[:-1] + exact[1:]) / 2,
            [0.0, 1.0, -1.0, 1e6, -1e6],
        ]).astype(np.float64))
    return candidates


def _load_model(meta: ModelMeta, xgb: Any) -> Any:
    """As MLflow: an instance of the flavor's `model_class`, then its `load_model(file)`."""
    add_code_dir(meta)  # a model_class may be the user's own subclass, as under MLflow
    flavor = meta.flavors.get(FLAVOR)
    if not isinstance(flavor, dict) or not flavor.get("data"):
        raise ModelLoadError(f"{meta.path}/MLmodel: the xgboost flavor names no model file")
    data_path = meta.path / meta.pyfunc.data if meta.pyfunc.data else meta.path
    model_dir = data_path.parent if data_path.is_file() else data_path
    model = _model_class(meta, flavor.get("model_class") or DEFAULT_MODEL_CLASS, xgb)()
    model.load_model(str(model_dir / flavor["data"]))
    return model


def _model_class(meta: ModelMeta, name: str, xgb: Any) -> type:
    """Only xgboost's model classes (or subclasses of them) are instantiated: the name comes
    from the model directory, and MLflow would call whatever it names."""
    module_name, _, class_name = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (AttributeError, ValueError) as exc:  # an ImportError names a missing package: load() says so
        raise ModelLoadError(f"{meta.path}/MLmodel: xgboost model_class {name!r} cannot be found: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, (xgb.Booster, xgb.XGBModel))):
        raise ModelLoadError(f"{meta.path}/MLmodel: model_class {name!r} is not an xgboost model class")
    return cls
