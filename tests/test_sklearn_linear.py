"""The closed-form predict for linear scikit-learn models: exactly sklearn's answers or none.

Every estimator here is really fitted; each direct prediction is compared with the estimator's
own `predict` on the same array, bit for bit and dtype for dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import (
    BayesianRidge,
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Perceptron,
    Ridge,
    RidgeClassifier,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from sigserve.loaders.flavors.sklearn import SklearnModel
from sigserve.loaders.flavors.sklearn_linear import (
    PROBE_DTYPES,
    _regress,
    _reproduces,
    linear_predictor,
)

N_FEATURES = 5


def _classification(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=200, n_features=N_FEATURES, n_informative=3, n_classes=n_classes,
                               random_state=0)


def _fitted() -> tuple[dict[str, Any], dict[str, Any]]:
    X3, y3 = _classification(3)
    X2, y2 = _classification(2)
    Xr, yr = make_regression(n_samples=200, n_features=N_FEATURES, n_targets=1, noise=1.0, random_state=0)
    Xm, ym = make_regression(n_samples=200, n_features=N_FEATURES, n_targets=3, noise=1.0, random_state=0)
    labels = np.array(["setosa", "versicolor", "virginica"])[y3]
    direct = {
        "logistic_multiclass": LogisticRegression(max_iter=1000).fit(X3, y3),
        "logistic_binary": LogisticRegression(max_iter=1000).fit(X2, y2),
        "logistic_string_labels": LogisticRegression(max_iter=1000).fit(X3, labels),
        "logistic_object_labels": LogisticRegression(max_iter=1000).fit(X3, pd.Series(labels, dtype=object)),
        "logistic_no_intercept": LogisticRegression(fit_intercept=False, max_iter=1000).fit(X3, y3),
        "sgd_classifier": SGDClassifier(random_state=0).fit(X3, y3),
        "perceptron_binary": Perceptron(random_state=0).fit(X2, y2),
        "linear_svc": LinearSVC(random_state=0).fit(X3, y3),
        "linear_regression": LinearRegression().fit(Xr, yr),
        "linear_regression_multi_output": LinearRegression().fit(Xm, ym),
        "linear_regression_no_intercept": LinearRegression(fit_intercept=False).fit(Xr, yr),
        "ridge": Ridge().fit(Xr, yr),
        "ridge_cv_multi_output": RidgeCV().fit(Xm, ym),
        "lasso": Lasso(alpha=0.1).fit(Xr, yr),
        "elastic_net_multi_output": ElasticNet(alpha=0.1).fit(Xm, ym),
    }
    sparse = LogisticRegression(max_iter=1000).fit(X3, y3)
    sparse.sparsify()
    through_sklearn = {
        "ridge_classifier": RidgeClassifier().fit(X3, y3),  # its own predict
        "sgd_regressor": SGDRegressor(random_state=0).fit(Xr, yr),  # its own _decision_function
        "bayesian_ridge": BayesianRidge().fit(Xr, yr),  # its own predict
        "decision_tree": DecisionTreeClassifier(random_state=0).fit(X3, y3),
        "sparse_coefficients": sparse,
    }
    return direct, through_sklearn


DIRECT, THROUGH_SKLEARN = _fitted()


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_linear_estimators_get_a_direct_predictor(name: str) -> None:
    assert linear_predictor(DIRECT[name]) is not None


@pytest.mark.parametrize("name", sorted(THROUGH_SKLEARN))
def test_other_estimators_keep_sklearns_predict(name: str) -> None:
    assert linear_predictor(THROUGH_SKLEARN[name]) is None


def _arrays() -> st.SearchStrategy[np.ndarray]:
    def of(dtype: np.dtype) -> st.SearchStrategy[np.ndarray]:
        if dtype.kind == "i":
            elements = st.integers(-(10**6), 10**6)
        else:
            elements = st.floats(-1e6, 1e6, allow_nan=False, width=8 * dtype.itemsize)
        shape = st.tuples(st.integers(1, 40), st.just(N_FEATURES))
        return hnp.arrays(dtype, shape, elements=elements)

    arrays = st.sampled_from(PROBE_DTYPES).flatmap(of)
    return st.tuples(arrays, st.booleans()).map(lambda pair: np.asfortranarray(pair[0]) if pair[1] else pair[0])


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(DIRECT)), values=_arrays())
def test_direct_predictions_equal_sklearns_bit_for_bit(name: str, values: np.ndarray) -> None:
    estimator = DIRECT[name]
    predicted = linear_predictor(estimator)(values)
    expected = estimator.predict(values)
    assert predicted.dtype == expected.dtype
    assert predicted.shape == expected.shape
    assert np.array_equal(predicted, expected)


@pytest.mark.parametrize(
    "values",
    [
        np.array([[np.nan, 1.0, 2.0, 3.0, 4.0]]),
        np.array([[np.inf, 1.0, 2.0, 3.0, 4.0]]),
        np.empty((0, N_FEATURES)),
        np.ones((2, N_FEATURES + 1)),
        np.ones((2, N_FEATURES), dtype=bool),
        np.ones((2, N_FEATURES), dtype=np.float16),
        np.ones(N_FEATURES),
    ],
    ids=["nan", "infinity", "no_rows", "wrong_width", "bool", "float16", "one_dimensional"],
)
def test_inputs_sklearn_would_treat_its_own_way_are_declined(values: np.ndarray) -> None:
    assert linear_predictor(DIRECT["logistic_multiclass"])(values) is None


def test_a_declined_input_gets_sklearns_own_error() -> None:
    model = SklearnModel(DIRECT["logistic_multiclass"])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict(np.array([[np.nan, 1.0, 2.0, 3.0, 4.0]]))


def test_a_frame_with_the_fitted_feature_names_is_predicted_in_closed_form_and_identically() -> None:
    X, y = _classification(3)
    columns = [f"f{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(X, columns=columns)
    estimator = LogisticRegression(max_iter=1000).fit(frame, y)
    model = SklearnModel(estimator)
    assert model.closed_form
    expected = estimator.predict(frame)
    assert np.array_equal(model.predict(frame), expected)
    estimator.coef_ = -estimator.coef_  # only sklearn's own predict reads the attribute again
    assert not np.array_equal(estimator.predict(frame), expected)
    assert np.array_equal(model.predict(frame), expected), "answered by the formula proven at load"
    reordered = frame[columns[::-1]]  # not the fitted order: sklearn's own checks apply
    with pytest.raises(ValueError, match="feature names"):
        model.predict(reordered)


class _ShiftedScores(LogisticRegression):
    """A user's subclass that changes the scores behind an inherited `predict`."""

    def decision_function(self, X):
        return super().decision_function(X) + 1.0


def test_a_subclass_that_changes_the_scores_keeps_its_own_predict() -> None:
    X, y = _classification(3)
    estimator = _ShiftedScores(max_iter=1000).fit(X, y)
    assert linear_predictor(estimator) is None
    assert not SklearnModel(estimator).closed_form


def test_a_model_fitted_on_float32_is_predicted_in_closed_form_identically() -> None:
    X, y = make_regression(n_samples=200, n_features=N_FEATURES, noise=1.0, random_state=0)
    estimator = Ridge().fit(X.astype(np.float32), y.astype(np.float32))
    predictor = linear_predictor(estimator)
    assert predictor is not None
    values = X[:9].astype(np.float32)
    assert np.array_equal(predictor(values), estimator.predict(values))


def test_a_wide_model_is_probed_with_fewer_rows_and_still_proven() -> None:
    X, y = make_regression(n_samples=50, n_features=50_000, random_state=0)
    estimator = Ridge().fit(X, y)
    predictor = linear_predictor(estimator)
    assert predictor is not None
    assert np.array_equal(predictor(X[:3]), estimator.predict(X[:3]))


def test_the_load_time_check_refuses_a_formula_off_by_one_ulp() -> None:
    estimator = DIRECT["linear_regression"]
    exact = lambda values: _regress(estimator.coef_, estimator.intercept_, values)
    assert _reproduces(estimator.predict, exact, N_FEATURES)
    off_by_one_ulp = lambda values: np.nextafter(exact(values), np.inf)
    assert not _reproduces(estimator.predict, off_by_one_ulp, N_FEATURES)


def test_the_load_time_check_refuses_a_formula_that_raises() -> None:
    estimator = DIRECT["linear_regression"]

    def broken(values: np.ndarray) -> np.ndarray:
        raise TypeError("no")

    assert not _reproduces(estimator.predict, broken, N_FEATURES)
