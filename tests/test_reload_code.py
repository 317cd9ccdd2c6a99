"""A reload runs the new version's code, even when its modules have the old version's names.

Real `sigserve serve` processes follow `@champion` in the embedded registry. The versions are real
MLflow models whose code differs and whose module names do not: a custom `loader_module` package
(with a submodule, and a module `predict` imports when called, which v2 turns into a package), and
a PythonModel pickled by reference to its class in code_paths. MLflow, loading a version in a
fresh process, is the reference for what that version predicts.
"""

from __future__ import annotations

import gc
import importlib
import json
import subprocess
import sys
import weakref
from pathlib import Path

import httpx
import pytest
from helpers import SigserveServer, metric_samples, run_cli, same_json, total, wait_for
from models.reload_code import CALL_TIME_MODULE, CUSTOM_PACKAGE, PYMODEL_PACKAGE, custom_code, pymodel_code

CUSTOM = "versioned"
PYMODEL = "pymodel"
AB_ROWS = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.5]]}}
X_ROWS = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [-2.5]]}}
CUSTOM_V1, CUSTOM_V2 = [3.0, 7.5], [30.5, 75.5]  # (a + b) * 1 + 0, (a + b) * 10 + 0.5
PYMODEL_V1, PYMODEL_V2 = [2.0, -5.0], [6.0, 9.5]  # x * 2, x * -1 + 7
IMPORT_ERROR = "from sigtest_versioned_offset import NOT_DEFINED  # needs what its own code lacks"
MISSING_DEPENDENCY = "import sigtest_dependency_not_installed"


@pytest.fixture(scope="module")
def custom_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """v1 and v2 predict differently; v3's package raises ImportError and v4's ZeroDivisionError
    when imported (v3 imports its own call-time module first, with yet another OFFSET); v5
    imports, then fails on its serving example (having imported its own call-time module)."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    root = tmp_path_factory.mktemp("custom")
    signature = ModelSignature(inputs=Schema([ColSpec("double", "a"), ColSpec("double", "b")]))
    code = {
        1: custom_code(root, 1, 1.0, 0.0),
        2: custom_code(root, 2, 10.0, 0.5, call_time_package=True),
        3: custom_code(root, 3, 1000.0, 666.0, failure=IMPORT_ERROR),
        4: custom_code(root, 4, 1000.0, 666.0, failure="CHECK = 1 / 0"),
        5: custom_code(root, 5, None, 555.0),
    }
    versions = {}
    for version, code_paths in code.items():
        versions[version] = root / f"model_v{version}"
        mlflow.pyfunc.save_model(versions[version], loader_module=CUSTOM_PACKAGE, signature=signature,
                                 code_paths=[str(path) for path in code_paths], pip_requirements=["numpy"],
                                 input_example=pd.DataFrame({"a": [1.0], "b": [2.0]}))
    return versions


@pytest.fixture(scope="module")
def pymodel_versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, Path], Path]:
    """v1 and v2 of a PythonModel whose class and helper are in the same package; v2 loads only
    once the returned gate file exists; v3's helper imports a package that is not installed."""
    root = tmp_path_factory.mktemp("pymodel")
    gate = root / "gate"
    versions = {
        1: save_pymodel(root / "model_v1", pymodel_code(root, 1, 2.0, 0.0)),
        2: save_pymodel(root / "model_v2", pymodel_code(root, 2, -1.0, 7.0), model_config={"gate": str(gate)}),
        3: save_pymodel(root / "model_v3", pymodel_code(root, 3, 5.0, 5.0)),
    }
    transform = versions[3] / "code" / PYMODEL_PACKAGE / "transform.py"
    transform.write_text(f"{MISSING_DEPENDENCY}\n{transform.read_text()}")  # as on a server without it
    return versions, gate


def save_pymodel(path: Path, package: Path, **kwargs: object) -> Path:
    """Log the PythonModel of `package` as MLflow does: its class pickled by reference."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    forget_modules(PYMODEL_PACKAGE)
    sys.path.insert(0, str(package.parent))
    try:
        importlib.invalidate_caches()
        model = importlib.import_module(PYMODEL_PACKAGE).Versioned()
        mlflow.pyfunc.save_model(path, python_model=model, code_paths=[str(package)], pip_requirements=["mlflow"],
                                 signature=ModelSignature(inputs=Schema([ColSpec("double", "x")])), **kwargs)
    finally:
        sys.path.remove(str(package.parent))
        forget_modules(PYMODEL_PACKAGE)
    return path


def forget_modules(*packages: str) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] in packages]:
        del sys.modules[name]


def register(registry_uri: str, name: str, model: Path) -> None:
    """A new version of `name`, with `@champion` moved to it."""
    result = run_cli("registry", "register", "--registry-uri", registry_uri, "--name", name, "--path", str(model),
                     "--alias", "champion")
    assert result.returncode == 0, result.stderr.decode()


def answer(server: SigserveServer, body: dict) -> tuple[str, list[float]]:
    response = server.post(body)
    assert response.status_code == 200, response.text
    return response.headers["x-model-version"], response.json()["predictions"]


def mlflow_predictions(model: Path, body: dict) -> list[float]:
    """What MLflow predicts, loading the model in a fresh process."""
    script = (
        "import json, sys; import pandas as pd; import mlflow.pyfunc; "
        "split = json.loads(sys.argv[2])['dataframe_split']; "
        "frame = pd.DataFrame(split['data'], columns=split['columns']); "
        "print(json.dumps(pd.Series(mlflow.pyfunc.load_model(sys.argv[1]).predict(frame)).tolist()))"
    )
    result = subprocess.run([sys.executable, "-c", script, str(model), json.dumps(body)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def following(name: str, registry_uri: str) -> SigserveServer:
    return SigserveServer(f"models:/{name}@champion", "--registry-uri", registry_uri, "--reload-interval", "0.2")


def refusal_line(server: SigserveServer, name: str, version: int) -> str:
    refused = f"version {version} of {name} was not swapped in"
    lines = [line for line in server.log().splitlines() if refused in line]
    assert len(lines) == 1, server.log()
    return lines[0]


def test_a_custom_loader_module_reload_runs_each_versions_own_code(custom_versions, tmp_path: Path) -> None:
    registry_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register(registry_uri, CUSTOM, custom_versions[1])
    with following(CUSTOM, registry_uri) as server:
        assert answer(server, AB_ROWS) == (f"{CUSTOM}/1", CUSTOM_V1)

        register(registry_uri, CUSTOM, custom_versions[2])
        assert wait_for(lambda: server.post(AB_ROWS).headers.get("x-model-version") == f"{CUSTOM}/2", 60), server.log()
        version, served = answer(server, AB_ROWS)
        assert (version, served) == (f"{CUSTOM}/2", CUSTOM_V2), "v2's package, submodule and call-time module"

        register(registry_uri, CUSTOM, custom_versions[3])
        assert wait_for(lambda: f"version 3 of {CUSTOM} was not swapped in" in server.log(), 60), server.log()
        assert "ImportError: cannot import name 'NOT_DEFINED'" in refusal_line(server, CUSTOM, 3)
        assert answer(server, AB_ROWS) == (f"{CUSTOM}/2", CUSTOM_V2), "v2 answers with its own call-time module"

        register(registry_uri, CUSTOM, custom_versions[4])
        assert wait_for(lambda: f"version 4 of {CUSTOM} was not swapped in" in server.log(), 60), server.log()
        assert "ZeroDivisionError" in refusal_line(server, CUSTOM, 4)
        assert answer(server, AB_ROWS) == (f"{CUSTOM}/2", CUSTOM_V2)

        register(registry_uri, CUSTOM, custom_versions[5])
        assert wait_for(lambda: f"version 5 of {CUSTOM} was not swapped in" in server.log(), 60), server.log()
        assert "fails on its own serving input example" in refusal_line(server, CUSTOM, 5)
        assert answer(server, AB_ROWS) == (f"{CUSTOM}/2", CUSTOM_V2), "not v5's call-time module (its warm-up's)"
        samples = metric_samples(server.url)
        assert total(samples, "sigserve_model_reload_failures_total", reason="load") == 2
        assert total(samples, "sigserve_model_reload_failures_total", reason="warm_up") == 1
        assert total(samples, "sigserve_model_reloads_total") == 1

    assert same_json(mlflow_predictions(custom_versions[2], AB_ROWS), served)
    started = run_cli("serve", "-m", str(custom_versions[3]))
    error = started.stderr.decode().strip()
    assert started.returncode == 2, error
    assert len(error.splitlines()) == 1 and "ImportError" in error and "Traceback" not in error, error


def test_a_python_model_reload_runs_the_code_in_its_code_paths(pymodel_versions, tmp_path: Path) -> None:
    versions, gate = pymodel_versions
    registry_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register(registry_uri, PYMODEL, versions[1])
    with following(PYMODEL, registry_uri) as server:
        assert answer(server, X_ROWS) == (f"{PYMODEL}/1", PYMODEL_V1)

        register(registry_uri, PYMODEL, versions[2])
        assert wait_for(lambda: "now points to version 2; loading it" in server.log(), 60), server.log()
        for _ in range(20):  # v2 waits at its gate: v1 answers with its own module's globals meanwhile
            assert answer(server, X_ROWS) == (f"{PYMODEL}/1", PYMODEL_V1)
        gate.touch()
        assert wait_for(lambda: server.post(X_ROWS).headers.get("x-model-version") == f"{PYMODEL}/2", 60), server.log()
        version, served = answer(server, X_ROWS)
        assert (version, served) == (f"{PYMODEL}/2", PYMODEL_V2), "v2's class and helper, unpickled by name"

        register(registry_uri, PYMODEL, versions[3])
        assert wait_for(lambda: f"version 3 of {PYMODEL} was not swapped in" in server.log(), 60), server.log()
        assert "No module named 'sigtest_dependency_not_installed'" in refusal_line(server, PYMODEL, 3)
        assert answer(server, X_ROWS) == (f"{PYMODEL}/2", PYMODEL_V2)
        assert total(metric_samples(server.url), "sigserve_model_reload_failures_total", reason="load") == 1
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200

    assert same_json(mlflow_predictions(versions[2], X_ROWS), served)


@pytest.fixture()
def restored_import_state():
    """The in-process test leaves the pytest process's import state as it found it."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    forget_modules(CUSTOM_PACKAGE, CALL_TIME_MODULE)


def test_in_process_a_refusal_puts_the_serving_versions_code_back(custom_versions, restored_import_state) -> None:
    """What the HTTP tests cannot see: the import state after a refusal is the serving version's
    exactly, and a kept version lets the previous version's modules be freed."""
    import pandas as pd
    from sigserve.errors import ModelLoadError
    from sigserve.manager import load_servable
    from sigserve.sources.source import resolve

    frame = pd.DataFrame(AB_ROWS["dataframe_split"]["data"], columns=["a", "b"])
    first = load_servable(resolve(str(custom_versions[1])))
    first_module = weakref.ref(sys.modules[CUSTOM_PACKAGE])
    serving = load_servable(resolve(str(custom_versions[2])))
    assert serving.scorer.model.predict(frame, None).tolist() == CUSTOM_V2
    path, modules = list(sys.path), {name: sys.modules[name] for name in (CUSTOM_PACKAGE, CALL_TIME_MODULE)}

    for refused in (3, 4, 5):
        with pytest.raises(ModelLoadError, match=f"model_v{refused}"):
            load_servable(resolve(str(custom_versions[refused])))
        assert sys.path == path
        assert all(sys.modules.get(name) is module for name, module in modules.items())
        assert serving.scorer.model.predict(frame, None).tolist() == CUSTOM_V2

    del first
    gc.collect()
    assert first_module() is None, "once v2 was kept, nothing holds v1's modules but v1's model"
