"""The predict call as MLflow's `PyFuncModel` makes it: params only to a parameter literally
named `params`, and scikit-learn estimators called with the data alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import SigserveWithoutMlflow
from sigserve.loaders.loader import _accepts_params


def named(data, params=None): ...
def keyword_only(data, *, params=None): ...
def catch_all(data, **params): ...
def kwargs(data, **kwargs): ...
def nothing(data): ...


@pytest.mark.parametrize(("fn", "expected"), [
    (named, True), (keyword_only, True), (catch_all, False), (kwargs, False), (nothing, False),
])
def test_params_go_only_to_a_parameter_named_params(fn: Any, expected: bool) -> None:
    assert _accepts_params(fn) is expected


@pytest.fixture(scope="module")
def decision_function_model(tmp_path_factory) -> tuple[Path, Any, np.ndarray]:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    iris = load_iris(as_frame=True)
    model = make_pipeline(StandardScaler(), SVC(random_state=0)).fit(iris.data, iris.target)
    path = tmp_path_factory.mktemp("decision") / "svc"
    mlflow.sklearn.save_model(model, path, pyfunc_predict_fn="decision_function", serialization_format="pickle",
                              signature=infer_signature(iris.data, model.decision_function(iris.data)))
    return path, iris.data.iloc[:4], model.decision_function(iris.data.iloc[:4])


def test_decision_function_is_served_though_mlflow_cannot_load_it(decision_function_model) -> None:
    """MLflow's sklearn wrapper lacks `decision_function`, so MLflow refuses the model it saved;
    sigserve serves it (README: "differs on purpose")."""
    import mlflow.pyfunc

    path, rows, expected = decision_function_model
    with pytest.raises(Exception, match="decision_function"):
        mlflow.pyfunc.load_model(str(path))
    with SigserveWithoutMlflow(path) as server:
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        response = server.post(body)
    assert response.status_code == 200, response.text
    assert np.array_equal(np.array(response.json()["predictions"]), expected)


LLM_LOADER = '''
class _Echo:
    def predict(self, data, params=None):
        return {"echo": data, "params": params}


def _load_pyfunc(path):
    return _Echo()
'''


def test_a_native_model_without_signature_takes_a_unified_llm_payload_as_mlflow_does(tmp_path) -> None:
    """MLflow hands such a model the payload's dict and answers unwrapped; so does sigserve."""
    import mlflow.pyfunc

    from helpers import MlflowScorer
    from sigserve.loaders.loader import load_model
    from sigserve.scoring import Scorer

    module = tmp_path / "sigtest_llm_echo.py"
    module.write_text(LLM_LOADER)
    path = tmp_path / "model"
    mlflow.pyfunc.save_model(path, loader_module="sigtest_llm_echo", code_paths=[str(module)])
    body = json.dumps({"prompt": "hi", "max_tokens": 3}).encode()
    ours = json.loads(Scorer(load_model(path)).score("application/json", body).body)
    assert ours["echo"] == {"prompt": "hi", "max_tokens": 3}
    assert MlflowScorer(path).score(body) == (200, ours)
