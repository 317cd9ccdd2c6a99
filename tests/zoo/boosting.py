"""Gradient-boosted models as `mlflow.xgboost`, `mlflow.lightgbm` and `mlflow.catboost` save them.

Small (20 trees) so the whole module builds in a few seconds. Between them the models cover every
xgboost `model_format`, a raw Booster and the scikit-learn API of each library, binary and
multiclass classifiers and regressors, and a frame with int64 and float32 columns beside doubles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo import ZooModel

TREES = 20
ROWS = 12  # rows each model scores in the tests
LIGHTGBM_REQUIREMENTS = ["lightgbm", "scikit-learn", "skops"]


def build(root: Path) -> dict[str, ZooModel]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

    binary = load_breast_cancer(as_frame=True)
    multiclass = load_iris(as_frame=True)
    regression = load_diabetes(as_frame=True)
    data = {
        "binary": (binary.data, binary.target),
        "multiclass": (multiclass.data, multiclass.target),
        "regression": (regression.data, regression.target),
        "mixed": (_mixed_dtypes(regression.data), regression.target),
    }
    zoo: dict[str, ZooModel] = {}
    for builder in (_xgboost_models, _lightgbm_models, _catboost_models):
        for name, (save, model, kind) in builder(data).items():
            features = data[kind][0]
            path = root / name
            save(model, path, features)
            zoo[name] = ZooModel(path=path, rows=_sample(features), native=True,
                                 notes={"flavor": save.__name__, "data": kind})
    return zoo


def _mixed_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Diabetes with an int64 column (age in years) and a float32 one: typed signatures beyond double."""
    mixed = frame.copy()
    mixed["age"] = (frame["age"] * 1000).round().astype(np.int64)
    mixed["bmi"] = frame["bmi"].astype(np.float32)
    return mixed


def _sample(features: pd.DataFrame) -> pd.DataFrame:
    """Rows spread over the data set, so classifiers answer more than one class."""
    picks = np.linspace(0, len(features) - 1, ROWS).round().astype(int)
    return features.iloc[picks].reset_index(drop=True)


def _signature_and_example(model: Any, features: pd.DataFrame, requirements: list[str]) -> dict[str, Any]:
    """Requirements are given, not inferred: inferring runs a subprocess per model, ~3 s each."""
    from mlflow.models import infer_signature

    return {"signature": infer_signature(features, _predict(model, features)), "input_example": features.iloc[:3],
            "pip_requirements": requirements}


def _predict(model: Any, features: pd.DataFrame) -> Any:
    import xgboost

    if isinstance(model, xgboost.Booster):
        return model.predict(xgboost.DMatrix(features))
    return model.predict(features)


def xgboost_save(model: Any, path: Path, features: pd.DataFrame, model_format: str = "ubj") -> None:
    import mlflow.xgboost

    mlflow.xgboost.save_model(model, path, model_format=model_format,
                              **_signature_and_example(model, features, ["xgboost"]))


def xgboost_save_with_params(model: Any, path: Path, features: pd.DataFrame) -> None:
    """Params MLflow hands to `Booster.predict` (`output_margin`) and one it drops (`unused`)."""
    import mlflow.xgboost
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    saved = _signature_and_example(model, features, ["xgboost"])
    inferred = saved["signature"]
    saved["signature"] = ModelSignature(inferred.inputs, inferred.outputs, ParamSchema([
        ParamSpec("output_margin", "boolean", False), ParamSpec("unused", "long", 1),
    ]))
    mlflow.xgboost.save_model(model, path, **saved)


def _xgboost_format(model_format: str):
    def xgboost_save_format(model: Any, path: Path, features: pd.DataFrame) -> None:
        xgboost_save(model, path, features, model_format)

    xgboost_save_format.__name__ = f"xgboost_{model_format}"
    return xgboost_save_format


def lightgbm_save(model: Any, path: Path, features: pd.DataFrame) -> None:
    import mlflow.lightgbm

    mlflow.lightgbm.save_model(model, path, **_signature_and_example(model, features, LIGHTGBM_REQUIREMENTS))


def lightgbm_save_cloudpickle(model: Any, path: Path, features: pd.DataFrame) -> None:
    import mlflow.lightgbm

    mlflow.lightgbm.save_model(model, path, serialization_format="cloudpickle",
                               **_signature_and_example(model, features, [*LIGHTGBM_REQUIREMENTS, "cloudpickle"]))


def catboost_save(model: Any, path: Path, features: pd.DataFrame) -> None:
    import mlflow.catboost

    mlflow.catboost.save_model(model, path, **_signature_and_example(model, features, ["catboost"]))


def _xgboost_models(data: dict) -> dict[str, tuple]:
    import xgboost as xgb

    def booster(kind: str, params: dict[str, Any]) -> xgb.Booster:
        features, target = data[kind]
        return xgb.train({"max_depth": 3, "nthread": 1, **params}, xgb.DMatrix(features, target), TREES)

    def fitted(cls: type, kind: str, **params: Any) -> Any:
        features, target = data[kind]
        return cls(n_estimators=TREES, max_depth=3, n_jobs=1, **params).fit(features, target)

    def ranker() -> xgb.XGBRanker:
        features, target = data["regression"]
        relevance = pd.qcut(target, 4, labels=False)
        queries = np.arange(len(features)) // 40
        return xgb.XGBRanker(n_estimators=TREES, max_depth=3, n_jobs=1).fit(features, relevance, qid=queries)

    return {
        "xgb_booster_ubj": (_xgboost_format("ubj"), booster("binary", {"objective": "binary:logistic"}), "binary"),
        "xgb_booster_json": (_xgboost_format("json"),
                             booster("multiclass", {"objective": "multi:softprob", "num_class": 3}), "multiclass"),
        "xgb_booster_xgb": (_xgboost_format("xgb"), booster("mixed", {"objective": "reg:squarederror"}), "mixed"),
        "xgb_classifier": (xgboost_save, fitted(xgb.XGBClassifier, "binary"), "binary"),
        "xgb_classifier_multiclass": (_xgboost_format("json"), fitted(xgb.XGBClassifier, "multiclass"), "multiclass"),
        "xgb_regressor": (xgboost_save, fitted(xgb.XGBRegressor, "mixed"), "mixed"),
        "xgb_rf_classifier": (xgboost_save, fitted(xgb.XGBRFClassifier, "binary"), "binary"),
        "xgb_rf_regressor": (xgboost_save, fitted(xgb.XGBRFRegressor, "regression"), "regression"),
        "xgb_ranker": (xgboost_save, ranker(), "regression"),
        "xgb_booster_params": (xgboost_save_with_params, booster("binary", {"objective": "binary:logistic"}), "binary"),
    }


def _lightgbm_models(data: dict) -> dict[str, tuple]:
    import lightgbm as lgb

    def fitted(cls: type, kind: str) -> Any:
        features, target = data[kind]
        return cls(n_estimators=TREES, num_leaves=7, n_jobs=1, verbose=-1).fit(features, target)

    features, target = data["binary"]
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "num_threads": 1, "verbose": -1},
                        lgb.Dataset(features, target), TREES)
    return {
        "lgbm_booster": (lightgbm_save, booster, "binary"),
        "lgbm_classifier": (lightgbm_save, fitted(lgb.LGBMClassifier, "multiclass"), "multiclass"),
        "lgbm_classifier_cloudpickle": (lightgbm_save_cloudpickle, fitted(lgb.LGBMClassifier, "binary"), "binary"),
        "lgbm_regressor": (lightgbm_save, fitted(lgb.LGBMRegressor, "mixed"), "mixed"),
    }


def _catboost_models(data: dict) -> dict[str, tuple]:
    import catboost as cb

    def fitted(cls: type, kind: str) -> Any:
        features, target = data[kind]
        return cls(iterations=TREES, depth=3, thread_count=1, verbose=False, allow_writing_files=False).fit(
            features, target)

    return {
        "catboost_classifier": (catboost_save, fitted(cb.CatBoostClassifier, "binary"), "binary"),
        "catboost_classifier_multiclass": (catboost_save, fitted(cb.CatBoostClassifier, "multiclass"), "multiclass"),
        "catboost_regressor": (catboost_save, fitted(cb.CatBoostRegressor, "mixed"), "mixed"),
    }
