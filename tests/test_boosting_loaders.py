"""xgboost, LightGBM and CatBoost models loaded natively: the same answers as MLflow's pyfunc,
in-process (served, with and without MLflow, in test_zoo.py), and a one-line error naming the
extra when the library itself is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from helpers import MlflowScorer
from sigserve.loaders.loader import LoadedModel, load_model
from sigserve.loaders.flavors import NATIVE_LOADERS
from sigserve.scoring import Scorer
from zoo import boosting

ZOO_NAMES = boosting.NAMES
LIBRARY_OF = {"xgb_classifier": "xgboost", "lgbm_booster": "lightgbm", "catboost_regressor": "catboost"}


def split_body(rows: pd.DataFrame, **extra: Any) -> bytes:
    """`dataframe_split` with every value as the exact Python number (repr round-trips floats)."""
    data = [[value.item() if hasattr(value, "item") else value for value in row]
            for row in rows.itertuples(index=False)]
    return json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": data}, **extra}).encode()


def load_natively(path: Path) -> LoadedModel:
    loaded = load_model(path)
    assert loaded.meta.loader_module in NATIVE_LOADERS
    assert type(loaded.impl).__module__.startswith("sigserve."), type(loaded.impl)
    return loaded


def mlflow_predict(path: Path, rows: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(path)).predict(rows, params=params)


def assert_identical(actual: Any, expected: Any) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected, strict=True)


def test_zoo_has_every_boosting_model(zoo) -> None:
    assert set(ZOO_NAMES) <= set(zoo) and all(zoo[name].native for name in ZOO_NAMES)
    flavors = {zoo[name].notes["flavor"] for name in ZOO_NAMES}
    assert flavors == {"mlflow.xgboost", "mlflow.lightgbm", "mlflow.catboost"}


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_loaded_natively_and_predicts_as_mlflow(zoo, name: str) -> None:
    model = zoo[name]
    loaded = load_natively(model.path)
    prepared = Scorer(loaded).prepare("application/json", split_body(model.rows))
    assert_identical(loaded.predict(prepared.model_input, prepared.params), mlflow_predict(model.path, model.rows))


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_scores_the_same_json_as_mlflow(zoo, name: str) -> None:
    model = zoo[name]
    body = split_body(model.rows)
    ours = json.loads(Scorer(load_natively(model.path)).score("application/json", body).body)
    assert MlflowScorer(model.path).score(body) == (200, ours)


@pytest.mark.parametrize("params", [{"output_margin": True}, {"output_margin": False, "unused": 7}])
def test_xgboost_params_reach_predict_as_under_mlflow(zoo, params: dict[str, Any]) -> None:
    model = zoo["xgb_booster_params"]
    body = split_body(model.rows, params=params)
    loaded = load_natively(model.path)
    prepared = Scorer(loaded).prepare("application/json", body)
    predicted = loaded.predict(prepared.model_input, prepared.params)
    assert_identical(predicted, mlflow_predict(model.path, model.rows, params))
    margins = params["output_margin"]
    assert (predicted.min() < 0) == margins  # margins are log-odds, probabilities never negative
    assert json.loads(Scorer(loaded).score("application/json", body).body) == MlflowScorer(model.path).score(body)[1]


def outcome(predict: Any, frame: pd.DataFrame) -> tuple[str, Any]:
    try:
        return "value", np.asarray(predict(frame))
    except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
        return type(exc).__name__, str(exc).splitlines()[0]


@pytest.mark.parametrize("name", ["xgb_booster_xgb", "xgb_regressor"])
def test_xgboost_frames_off_the_array_path_predict_as_mlflow(zoo, name: str) -> None:
    """Frames the array path declines take MLflow's path: no rows, an int64 beyond 2**53 (float64
    would round it), an infinity (a DMatrix refuses it, xgboost's array path would not)."""
    import mlflow.pyfunc

    model = zoo[name]
    loaded = load_natively(model.path)
    reference = mlflow.pyfunc.load_model(str(model.path))
    wide, infinite = model.rows.copy(), model.rows.copy()
    wide.loc[0, "age"] = 2**60 + 1
    infinite.loc[1, "s1"] = np.inf
    for frame in (model.rows.iloc[:0], wide, infinite):
        ours, theirs = outcome(lambda f: loaded.predict(f, None), frame), outcome(reference.predict, frame)
        assert ours[0] == theirs[0]
        if ours[0] == "value":
            assert_identical(ours[1], theirs[1])
        else:
            assert ours[1] == theirs[1]


def run_cli_without(module: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a process where `import <module>` fails, as on a host without that library."""
    block = f"import sys; sys.modules[{module!r}] = None; from sigserve.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", block, *args], capture_output=True, timeout=120)


@pytest.mark.parametrize("name", sorted(LIBRARY_OF))
def test_missing_library_is_one_line_naming_the_extra(zoo, tmp_path, name: str) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(split_body(zoo[name].rows))
    result = run_cli_without(LIBRARY_OF[name], "predict", "-m", str(zoo[name].path), "-i", str(body))
    error = result.stderr.decode().strip()
    assert result.returncode == 2, error
    assert f"sigserve[{LIBRARY_OF[name]}]" in error and str(zoo[name].path) in error
    assert "Traceback" not in error and len(error.splitlines()) == 1


@pytest.mark.parametrize("name", ["xgb_booster_ubj", "xgb_classifier", "lgbm_booster", "lgbm_classifier",
                                  "catboost_regressor"])
def test_predicts_with_sigserves_native_thread_count(zoo, monkeypatch, name: str) -> None:
    """The libraries' own thread settings, not OpenMP's: LightGBM's scikit-learn API and CatBoost
    would use every core whatever OMP_NUM_THREADS says."""
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    model = zoo[name]
    loaded = load_natively(model.path)
    raw = loaded.impl.get_raw_model()
    if name.startswith("xgb_"):
        booster = raw if name.startswith("xgb_booster") else raw.get_booster()
        assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "3"
        return
    seen: list[dict[str, Any]] = []
    original = raw.predict
    monkeypatch.setattr(raw, "predict", lambda data, **kwargs: seen.append(kwargs) or original(data, **kwargs))
    loaded.predict(model.rows, None)
    expected = {"num_threads": 3} if name.startswith("lgbm_") else {"thread_count": 3}
    assert seen == [expected]


@pytest.mark.parametrize("name", sorted(LIBRARY_OF))
def test_generated_image_installs_the_library_extra_not_mlflow(zoo, tmp_path, name: str) -> None:
    from sigserve.dockerfile import write_build_context
    from sigserve.sources.resolved import ResolvedModel

    path = zoo[name].path
    context = write_build_context(ResolvedModel(uri=str(path), path=path), tmp_path / "ctx")
    assert context.extras == (LIBRARY_OF[name],) and not context.needs_mlflow
    assert f'"sigserve[{LIBRARY_OF[name]}]==' in context.dockerfile.read_text()
