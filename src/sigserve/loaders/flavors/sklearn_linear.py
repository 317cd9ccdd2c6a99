"""Linear scikit-learn models predicted as the closed form they are.

On every call sklearn's `predict` re-validates its input (array namespace dispatch, dataframe
probes, finiteness), which at a few rows costs thirty times the arithmetic. When an estimator's
`predict` is one of sklearn's linear base implementations, sigserve evaluates the same
expression on the same array itself, but only once it has reproduced the estimator's own
predictions exactly on probe inputs at load time: a scikit-learn release that changes the
formula loses the shortcut, never the answer. Inputs the estimator would refuse or treat
differently (non-finite values, no rows, a wrong width, other dtypes) go to the estimator.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

logger = logging.getLogger("sigserve.model")

Formula = Callable[[np.ndarray], np.ndarray]
Predictor = Callable[[np.ndarray], "np.ndarray | None"]
PROBE_DTYPES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.int32))
PROBE_ROWS = (1, 2, 7, 64)
MAX_PROBE_CELLS = 1 << 16  # wide models probe fewer rows, so loading stays fast


def linear_predictor(estimator: Any) -> Predictor | None:
    """`predict` without sklearn's per-call validation, or None when it cannot be proven equal."""
    name = type(estimator).__name__
    try:
        formula = _formula_of(estimator)
        n_features = getattr(estimator, "n_features_in_", None)
        if formula is None or not isinstance(n_features, (int, np.integer)) or n_features < 1:
            return None
        proven = _reproduces(estimator.predict, formula, int(n_features))
    except Exception as exc:  # noqa: BLE001 - an odd estimator keeps sklearn's predict, never fails the load
        logger.debug("%s: no closed-form predict: %s", name, exc)
        return None
    if not proven:
        logger.info("%s: the closed-form predict differs from sklearn's; using sklearn's", name)
        return None
    logger.info("%s: predicting in closed form (proven equal to sklearn's predict)", name)

    def predict(values: np.ndarray) -> np.ndarray | None:
        if (
            values.ndim != 2
            or values.shape[1] != n_features
            or not values.shape[0]
            or values.dtype not in PROBE_DTYPES
            or (values.dtype.kind == "f" and not np.isfinite(values).all())
        ):
            return None
        return formula(values)

    return predict


def _formula_of(estimator: Any) -> Formula | None:
    try:
        from sklearn.linear_model import ElasticNet, Ridge, RidgeCV, _base
    except ImportError:
        return None
    linear_model = _base.LinearModel
    multi_output = getattr(_base, "MultiOutputLinearModel", linear_model)  # scikit-learn >= 1.9
    regressor_predicts = (linear_model.predict, multi_output.predict, Ridge.predict, RidgeCV.predict)
    cls = type(estimator)
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if (
        not isinstance(coef, np.ndarray)
        or coef.ndim not in (1, 2)
        or not isinstance(intercept, (np.ndarray, float, np.floating))
    ):
        return None  # e.g. a sparsified coef_
    coef_t = coef.T if coef.ndim == 2 else coef
    classifier = _base.LinearClassifierMixin
    if (
        getattr(cls, "predict", None) is classifier.predict
        and getattr(cls, "decision_function", None) is classifier.decision_function
    ):
        classes = getattr(estimator, "classes_", None)
        if not isinstance(classes, np.ndarray):
            return None
        return functools.partial(_classify, coef_t, intercept, classes)
    if getattr(cls, "predict", None) in regressor_predicts and getattr(cls, "_decision_function", None) in (
        linear_model._decision_function,
        ElasticNet._decision_function,
    ):
        return functools.partial(_regress, coef_t, intercept)
    return None


def _classify(coef_t: np.ndarray, intercept: Any, classes: np.ndarray, values: np.ndarray) -> np.ndarray:
    scores = values @ coef_t + intercept
    if scores.ndim > 1 and scores.shape[1] == 1:
        scores = scores.reshape(-1)
    indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
    return classes.take(indices, axis=0)


def _regress(coef_t: np.ndarray, intercept: Any, values: np.ndarray) -> np.ndarray:
    return values @ coef_t + intercept


def _reproduces(predict: Callable[[np.ndarray], Any], formula: Formula, n_features: int) -> bool:
    """Exactly the same values and dtype as the estimator, for every dtype, both memory layouts
    (frames hand over column-major arrays) and a few batch sizes."""
    rng = np.random.default_rng(0)
    for rows in PROBE_ROWS:
        if rows > 1 and rows * n_features > MAX_PROBE_CELLS:
            break
        sample = rng.standard_normal((rows, n_features)) * rng.choice([0.1, 1.0, 10.0, 1000.0], size=n_features)
        for dtype, layout in itertools.product(PROBE_DTYPES, (np.ascontiguousarray, np.asfortranarray)):
            values = layout(sample.astype(dtype))
            try:
                expected = np.asarray(predict(values))
                actual = formula(values)
            except Exception:  # noqa: BLE001 - any failure means: not provably the same
                return False
            if actual.dtype != expected.dtype or actual.shape != expected.shape or not np.array_equal(actual, expected):
                return False
    return True
