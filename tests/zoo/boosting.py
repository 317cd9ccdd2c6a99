"""Gradient-boosted models as `mlflow.xgboost`, `mlflow.lightgbm` and `mlflow.catboost` save them.

Small (20 trees) so the whole module builds in a few seconds. Between them the models cover every
xgboost `model_format`, a raw Booster and the scikit-learn API of each library, binary and
multiclass classifiers, regressors and a ranker, LightGBM's skops and cloudpickle formats, a params
schema, and a frame with int64 and float32 columns beside doubles.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo import ZooModel

NAMES = (
    "xgb_booster_ubj", "xgb_booster_json", "xgb_booster_xgb", "xgb_booster_params", "xgb_classifier",
    "xgb_classifier_multiclass", "xgb_regressor", "xgb_rf_classifier", "xgb_rf_regressor", "xgb_ranker",
    "lgbm_booster", "lgbm_classifier", "lgbm_classifier_cloudpickle", "lgbm_regressor",
    "catboost_classifier", "catboost_classifier_multiclass", "catboost_regressor",
)
TREES = 20
ROWS = 12  # rows each model scores in the tests
# Given, not inferred: MLflow infers requirements by loading the model in a subprocess, ~3 s each.
REQUIREMENTS = {
    "xgboost": ["xgboost", "scikit-learn"],
    "lightgbm": ["lightgbm", "scikit-learn", "skops", "cloudpickle"],
    "catboost": ["catboost"],
}


@dataclass(frozen=True)
class Spec:
    flavor: str  # xgboost, lightgbm or catboost: the mlflow module that saves it
    model: Any
    data: str  # which data set it was trained on, and scores
    save_kwargs: dict[str, Any] = field(default_factory=dict)
    params: Any = None  # a ParamSchema for the signature


def build(root: Path) -> dict[str, ZooModel]:
    data = _data_sets()
    specs = {**_xgboost_specs(data), **_lightgbm_specs(data), **_catboost_specs(data)}
    assert tuple(specs) == NAMES
    zoo: dict[str, ZooModel] = {}
    for name, spec in specs.items():
        features = data[spec.data][0]
        _save(spec, root / name, features)
        zoo[name] = ZooModel(path=root / name, rows=_sample(features), native=True,
                             notes={"flavor": f"mlflow.{spec.flavor}", "data": spec.data})
    return zoo


def _data_sets() -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

    binary, multiclass, regression = (loader(as_frame=True) for loader in
                                      (load_breast_cancer, load_iris, load_diabetes))
    mixed = regression.data.copy()  # typed signatures beyond double: long and float columns
    mixed["age"] = (mixed["age"] * 1000).round().astype(np.int64)
    mixed["bmi"] = mixed["bmi"].astype(np.float32)
    return {
        "binary": (binary.data, binary.target),
        "multiclass": (multiclass.data, multiclass.target),
        "regression": (regression.data, regression.target),
        "mixed": (mixed, regression.target),
    }


def _sample(features: pd.DataFrame) -> pd.DataFrame:
    """Rows spread over the data set, so classifiers answer more than one class."""
    picks = np.linspace(0, len(features) - 1, ROWS).round().astype(int)
    return features.iloc[picks].reset_index(drop=True)


def _save(spec: Spec, path: Path, features: pd.DataFrame) -> None:
    from mlflow.models import ModelSignature, infer_signature

    signature = infer_signature(features, _predict(spec.model, features))
    if spec.params is not None:
        signature = ModelSignature(signature.inputs, signature.outputs, spec.params)
    importlib.import_module(f"mlflow.{spec.flavor}").save_model(
        spec.model, path, signature=signature, input_example=features.iloc[:3],
        pip_requirements=REQUIREMENTS[spec.flavor], **spec.save_kwargs,
    )


def _predict(model: Any, features: pd.DataFrame) -> Any:
    import xgboost

    if isinstance(model, xgboost.Booster):
        return model.predict(xgboost.DMatrix(features))
    return model.predict(features)


def _xgboost_specs(data: dict) -> dict[str, Spec]:
    import xgboost as xgb
    from mlflow.types import ParamSchema, ParamSpec

    def booster(kind: str, **params: Any) -> xgb.Booster:
        features, target = data[kind]
        return xgb.train({"max_depth": 3, "nthread": 1, **params}, xgb.DMatrix(features, target), TREES)

    def fitted(cls: type, kind: str, **fit: Any) -> Any:
        features, target = data[kind]
        return cls(n_estimators=TREES, max_depth=3, n_jobs=1).fit(features, target, **fit)

    features, target = data["regression"]
    relevance, queries = pd.qcut(target, 4, labels=False), np.arange(len(features)) // 40
    # MLflow hands `output_margin` to Booster.predict and drops `unused`, with a warning
    params = ParamSchema([ParamSpec("output_margin", "boolean", False), ParamSpec("unused", "long", 1)])
    return {
        "xgb_booster_ubj": Spec("xgboost", booster("binary", objective="binary:logistic"), "binary",
                                {"model_format": "ubj"}),
        "xgb_booster_json": Spec("xgboost", booster("multiclass", objective="multi:softprob", num_class=3),
                                 "multiclass", {"model_format": "json"}),
        "xgb_booster_xgb": Spec("xgboost", booster("mixed", objective="reg:squarederror"), "mixed",
                                {"model_format": "xgb"}),
        "xgb_booster_params": Spec("xgboost", booster("binary", objective="binary:logistic"), "binary",
                                   params=params),
        "xgb_classifier": Spec("xgboost", fitted(xgb.XGBClassifier, "binary"), "binary"),
        "xgb_classifier_multiclass": Spec("xgboost", fitted(xgb.XGBClassifier, "multiclass"), "multiclass",
                                          {"model_format": "json"}),
        "xgb_regressor": Spec("xgboost", fitted(xgb.XGBRegressor, "mixed"), "mixed"),
        "xgb_rf_classifier": Spec("xgboost", fitted(xgb.XGBRFClassifier, "binary"), "binary"),
        "xgb_rf_regressor": Spec("xgboost", fitted(xgb.XGBRFRegressor, "regression"), "regression"),
        "xgb_ranker": Spec("xgboost", xgb.XGBRanker(n_estimators=TREES, max_depth=3, n_jobs=1).fit(
            features, relevance, qid=queries), "regression"),
    }


def _lightgbm_specs(data: dict) -> dict[str, Spec]:
    import lightgbm as lgb

    def fitted(cls: type, kind: str) -> Any:
        features, target = data[kind]
        return cls(n_estimators=TREES, num_leaves=7, n_jobs=1, verbose=-1).fit(features, target)

    features, target = data["binary"]
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "num_threads": 1, "verbose": -1},
                        lgb.Dataset(features, target), TREES)
    return {
        "lgbm_booster": Spec("lightgbm", booster, "binary"),
        "lgbm_classifier": Spec("lightgbm", fitted(lgb.LGBMClassifier, "multiclass"), "multiclass"),
        "lgbm_classifier_cloudpickle": Spec("lightgbm", fitted(lgb.LGBMClassifier, "binary"), "binary",
                                            {"serialization_format": "cloudpickle"}),
        "lgbm_regressor": Spec("lightgbm", fitted(lgb.LGBMRegressor, "mixed"), "mixed"),
    }


def _catboost_specs(data: dict) -> dict[str, Spec]:
    import catboost as cb

    def fitted(cls: type, kind: str) -> Any:
        features, target = data[kind]
        return cls(iterations=TREES, depth=3, thread_count=1, verbose=False, allow_writing_files=False).fit(
            features, target)

    return {
        "catboost_classifier": Spec("catboost", fitted(cb.CatBoostClassifier, "binary"), "binary"),
        "catboost_classifier_multiclass": Spec("catboost", fitted(cb.CatBoostClassifier, "multiclass"),
                                               "multiclass"),
        "catboost_regressor": Spec("catboost", fitted(cb.CatBoostRegressor, "mixed"), "mixed"),
    }
