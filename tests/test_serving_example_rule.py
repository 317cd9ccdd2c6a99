"""A model that fails on its own serving example is not served; one that merely predates its
signature's example is. The same rule at start-up and on reload (see test_reload.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from helpers import IRIS, ONE_ROW, SigserveServer, run_cli

NAN_ROW = {"dataframe_split": {"columns": IRIS, "data": [[None, 3.5, 1.4, 0.2]]}}


def with_example(source: Path, target: Path, example: dict) -> Path:
    shutil.copytree(source, target)
    (target / "serving_input_example.json").write_text(json.dumps(example))
    return target


@pytest.fixture(scope="module")
def failing_model(models, tmp_path_factory) -> Path:
    """Null fits a double column, so the signature accepts the example; scikit-learn then
    refuses the NaN: the model's own failure."""
    return with_example(models["sklearn_skops"], tmp_path_factory.mktemp("failing") / "m", NAN_ROW)


def test_a_model_failing_on_its_example_does_not_start(failing_model: Path) -> None:
    result = run_cli("serve", "-m", str(failing_model), "-p", "0")
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"sigserve: cannot serve {failing_model}: the model fails on its own serving input example "
                           f"({failing_model / 'serving_input_example.json'}): ValueError: Input X contains NaN")
    assert last.endswith("(--allow-failing-example serves it, never ready)")


def test_predict_is_not_gated_by_the_example(failing_model: Path) -> None:
    result = run_cli("predict", "-m", str(failing_model), stdin=json.dumps(ONE_ROW).encode())
    assert result.returncode == 0, result.stderr.decode()


def test_allowed_failing_model_serves_but_is_never_ready(failing_model: Path) -> None:
    with SigserveServer(failing_model, "--allow-failing-example") as server:
        assert httpx.get(server.url + "/ping").status_code == 200
        assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}
        ready = httpx.get(server.url + "/v2/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"ready": False})
        model_ready = httpx.get(server.url + "/v2/models/m/ready")
        assert (model_ready.status_code, model_ready.json()) == (503, {"name": "m", "ready": False})
        assert server.post(ONE_ROW).json() == {"predictions": [0]}
        assert "fails on its own serving input example" in server.log()


def test_allow_failing_example_from_the_environment(failing_model: Path) -> None:
    with SigserveServer(failing_model, env={"SIGSERVE_ALLOW_FAILING_EXAMPLE": "true"}) as server:
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503


def test_an_example_the_signature_refuses_is_only_logged(models, tmp_path) -> None:
    stale = with_example(models["sklearn_skops"], tmp_path / "stale",
                         {"dataframe_split": {"columns": ["x"], "data": [[1]]}})
    with SigserveServer(stale) as server:
        ready = httpx.get(server.url + "/v2/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        assert "does not fit its signature" in server.log()
