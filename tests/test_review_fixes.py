"""Regression tests for the review's fixes on issue 12.

In process where the behaviour is in process (two real MLflow PythonModels with code_paths loaded
side by side by `load_models`, the path parser, `serve` argument checks, the canary draw, the
404 of an unknown name); one real `sigserve demo` process, launched when the module starts so it
boots while the rest run, and one short `sigserve serve` that must fail to start.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import SigserveServer

from sigserve.demo import DEMO_MODEL_DIR
from sigserve.errors import ModelNotServed
from sigserve.manager.fleet import ModelGroup, ModelSet, ModelSpec, ServedModel
from sigserve.manager.manager import ModelManager
from sigserve.manager.traffic import TrafficPolicy
from sigserve.manager.unloaded import Unloaded
from sigserve.sources.resolved import ResolvedModel

DEMO_BODY = {"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                                    "petal_width": 0.2}]}
X_BODY = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}).encode()


# --- a `sigserve demo --model-name foo` process, booting while the in-process tests run ---------

class DemoServer(SigserveServer):
    """`sigserve demo --model-name foo` in a directory of its own (it registers into ./mlflow.db)."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sigserve", "demo", "--model-name", "foo",
                "-h", "127.0.0.1", "-p", str(self.port), "--grpc-port", "0"]


@pytest.fixture(scope="module", autouse=True)
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SIGSERVE_"))}
    server = DemoServer(DEMO_MODEL_DIR, cwd=tmp_path_factory.mktemp("demo"))
    server.env = env
    server.launch()
    yield server
    server.stop()


# --- 1. two models' code_paths side by side --------------------------------------------------------

_MODEL_MODULE = '''"""Model {tag}: x * {only}.SCALE + helper.OFFSET."""
import mlflow.pyfunc
import numpy as np

import helper  # the same module name in both models' code, with different content


class Model(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        import {only}  # only in this model's code, imported when called, not at load

        return model_input["x"].to_numpy(np.float64) * {only}.SCALE + helper.OFFSET
'''


def _save_two_lineage_model(root: Path, tag: str, scale: float, offset: float) -> Path:
    """A PythonModel pickled by reference to its class, which lives in its code_paths."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    code = root / f"code_{tag}"
    code.mkdir()
    model_module, only = f"sigtest_rf_model_{tag}", f"sigtest_rf_only_{tag}"
    (code / f"{model_module}.py").write_text(_MODEL_MODULE.format(tag=tag, only=only))
    (code / f"{only}.py").write_text(f"SCALE = {scale!r}\n")
    (code / "helper.py").write_text(f"OFFSET = {offset!r}\n")
    _forget(model_module, only, "helper")
    sys.path.insert(0, str(code))
    try:
        importlib.invalidate_caches()
        model = importlib.import_module(model_module).Model()
        path = root / f"model_{tag}"
        mlflow.pyfunc.save_model(path, python_model=model, pip_requirements=["mlflow"],
                                 code_paths=[str(p) for p in sorted(code.iterdir()) if p.suffix == ".py"],
                                 signature=ModelSignature(inputs=Schema([ColSpec("double", "x")])))
    finally:
        sys.path.remove(str(code))
        _forget(model_module, only, "helper")
    return path


def _forget(*names: str) -> None:
    for name in names:
        sys.modules.pop(name, None)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_two_models_each_answer_with_their_own_code(tmp_path: Path) -> None:
    """B's load no longer takes A's code dir off sys.path: A's predict still imports its own
    module when called, and each answers with its own `helper`; the shared name is logged."""
    from sigserve.manager.loading import load_models
    from sigserve.sources.settings import SourceSettings

    path_a = _save_two_lineage_model(tmp_path, "alpha", 2.0, 100.0)
    path_b = _save_two_lineage_model(tmp_path, "beta", 3.0, 1000.0)
    before = list(sys.path)
    records, loader_log = _Records(), logging.getLogger("sigserve.loader")
    loader_log.addHandler(records)
    try:
        fleet = load_models([ModelSpec(str(path_a), "rf_alpha"), ModelSpec(str(path_b), "rf_beta")], {},
                            SourceSettings.from_env({}), None, 0.0, False)
        answers = [(name, json.loads(fleet.find(name)[0].champion.current.scorer.score("application/json",
                                                                                       X_BODY).body)["predictions"])
                   for name in ("rf_alpha", "rf_beta", "rf_alpha")]  # A first called after B loaded
    finally:
        loader_log.removeHandler(records)
        sys.path[:] = before
        _forget("helper", "sigtest_rf_model_alpha", "sigtest_rf_model_beta", "sigtest_rf_only_alpha",
                "sigtest_rf_only_beta")
    assert answers == [("rf_alpha", [102.0, 104.0]), ("rf_beta", [1003.0, 1006.0]), ("rf_alpha", [102.0, 104.0])]
    assert any("helper" in message and "rf_alpha" in message for message in records.messages), records.messages


# --- 2. only `.../infer` scores -------------------------------------------------------------------

def test_v2_infer_needs_a_model_name_and_a_version() -> None:
    from sigserve.server.paths import scoring_path

    assert scoring_path("POST", "/v2/models/infer") is None
    assert scoring_path("POST", "/v2/models/x/versions/infer") is None
    named = scoring_path("POST", "/v2/models/x/infer")
    assert (named.codec.name, named.model, named.version) == ("v2", "x", None)
    versioned = scoring_path("POST", "/v2/models/x/versions/3/infer")
    assert (versioned.model, versioned.version) == ("x", "3")


# --- 3. serve argument checks ----------------------------------------------------------------------

def _check(argv: list[str]):
    from sigserve.cli import _check_serve_args, build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    _check_serve_args(parser, args)
    return args


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        _check(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("key, value", [("max_concurrency", ".inf"), ("reload_interval", ".nan"),
                                        ("batch_max_wait_ms", ".inf"), ("batch_max_size", "-.inf")])
def test_config_refuses_infinite_and_nan_numbers(key: str, value: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(f"models:\n  - uri: {DEMO_MODEL_DIR}\n    name: m\n    {key}: {value}\n")
    err = _refused(["serve", "--config", str(config)], capsys)
    assert key in err and "models[0]" in err and "Traceback" not in err


def test_model_name_with_a_slash_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["serve", "-m", str(DEMO_MODEL_DIR), "--model-name", "a/b"], capsys)
    assert "--model-name" in err and "'/'" in err


def test_model_name_with_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(f"models:\n  - uri: {DEMO_MODEL_DIR}\n")
    err = _refused(["serve", "--config", str(config), "--model-name", "foo"], capsys)
    assert "--model-name" in err and "--config" in err


TWO_PAIRS = ["-m", "models:/churn@champion", "-m", "models:/churn@challenger",
             "-m", "models:/fraud@champion", "-m", "models:/fraud@challenger"]


def test_traffic_env_is_the_default_of_the_traffic_flag(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIGSERVE_TRAFFIC", " churn=canary:0.2:X-User , fraud=shadow,")
    args = _check(["serve", *TWO_PAIRS])
    assert args.serve_config.traffic == {"churn": TrafficPolicy("canary", 0.2, "x-user"),
                                         "fraud": TrafficPolicy("shadow")}
    args = _check(["serve", *TWO_PAIRS, "--traffic", "fraud=canary:0.5"])  # a flag replaces the env
    assert args.serve_config.traffic == {"fraud": TrafficPolicy("canary", 0.5)}
    monkeypatch.setenv("SIGSERVE_TRAFFIC", "nope=shadow")
    assert "'nope'" in _refused(["serve", *TWO_PAIRS], capsys)


# --- 4 and 5: fleets of real served models that are not loaded (only their MLmodel read) ----------

def _served(name: str, uri: str = "models:/demo@champion") -> ServedModel:
    resolved = ResolvedModel(uri, DEMO_MODEL_DIR, name=name, version="1")
    return ServedModel(name, ModelSpec(uri, name), ModelManager(Unloaded.of(resolved), key=name))


def _canary_users(name: str, users: list[bytes]) -> frozenset[bytes]:
    group = ModelGroup(name, [_served(name), _served(name, "models:/demo@challenger")],
                       TrafficPolicy("canary", 0.3, "x-user"))
    challenger = group.versions[1]
    chosen = {user for user in users if group.choose(None, user)[0] is challenger}
    again = {user for user in users if group.choose(None, user)[0] is challenger}
    assert chosen == again  # sticky: the same user gets the same version every time
    return frozenset(chosen)


def test_sticky_canary_draw_is_salted_by_the_model_name() -> None:
    users = [f"user-{i}".encode() for i in range(2000)]
    in_a, in_b = _canary_users("a", users), _canary_users("b", users)
    assert 400 < len(in_a) < 800 and 400 < len(in_b) < 800  # about 30% each
    assert in_a != in_b
    assert len(in_a & in_b) < 0.6 * len(in_a)  # about 30% of a's users are in b's canary too, not all


def test_unknown_name_404_is_short() -> None:
    fleet = ModelSet()
    names = [f"model{i:02d}" for i in range(30)]
    for name in names:
        fleet.add(_served(name))
    with pytest.raises(ModelNotServed) as refused:
        fleet.find("z" * 100_000)
    message = refused.value.message
    assert "z" * 200 in message and "z" * 201 not in message
    assert all(name in message for name in names[:20]) and not any(name in message for name in names[20:])
    assert "and 10 more" in message
    assert len(message) < 800
    with pytest.raises(ModelNotServed) as refused:
        fleet.find("model00", "9" * 100_000)
    assert len(refused.value.message) < 400
    with pytest.raises(ModelNotServed) as refused:
        fleet.get("model00").choose("y" * 100_000, None)
    assert len(refused.value.message) < 400


# --- 6. a password in a URI that cannot be served -------------------------------------------------

def test_cannot_serve_error_masks_the_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SIGSERVE_"))}
    result = subprocess.run([sys.executable, "-m", "sigserve", "serve", "-m", "https://user:hunter2@example.invalid/m",
                             "-h", "127.0.0.1", "-p", "0", "--grpc-port", "0"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cannot serve https://user:***@example.invalid/m" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


# --- 7. the demo under another name ---------------------------------------------------------------

def test_demo_serves_under_model_name(demo_server: DemoServer) -> None:
    server = demo_server.wait_ready(timeout=120)
    answer = httpx.post(server.url + "/invocations/foo", json=DEMO_BODY, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["species"] == "setosa"
    assert httpx.get(server.url + "/v2/models/foo/ready", timeout=10).status_code == 200
    assert httpx.post(server.url + "/invocations/sigserve-demo-iris", json=DEMO_BODY, timeout=30).status_code == 404
    assert httpx.post(server.url + "/invocations", json=DEMO_BODY, timeout=30).status_code == 200
