"""sigserve loads what it has no native loader for through MLflow, and what that needs is all in
`mlflow-skinny` (the same `mlflow` package without the tracking server's dependencies): the
`mlflow` extra installs mlflow-skinny, and `generate-dockerfile` images install mlflow-skinny of
the version the model names instead of the full `mlflow`.

The check that skinny suffices runs without a package index: `sigserve predict` on every kind of
PythonModel (artifacts and params, model from code, tensors, type hints, pydantic, ChatModel,
ResponsesAgent) in a process where every module that only the full `mlflow` brings (Flask,
SQLAlchemy, alembic, matplotlib, scikit-learn, scipy, ...) fails to import, compared with the
same calls in this environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import generate, requirement_lines, run_cli
from packaging.requirements import Requirement

from sigserve.dockerfile import read_requirements, write_build_context
from sigserve.sources.resolved import ResolvedModel

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent
ZOO_DIR = Path(__file__).resolve().parent / "zoo"
MLFLOW_VERSION = importlib.metadata.version("mlflow")


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def pyfunc_models(zoo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The zoo's PythonModels (each kind sigserve loads through MLflow), saved by the real MLflow,
    plus one saved with the requirements MLflow infers (`mlflow==<version>`, pinned)."""
    import mlflow.pyfunc
    from zoo import pyfunc_classes, python_models

    paths = {name: zoo[name].path for name in python_models.NAMES}
    paths["inferred_requirements"] = tmp_path_factory.mktemp("skinny") / "inferred_requirements"
    mlflow.pyfunc.save_model(paths["inferred_requirements"], python_model=pyfunc_classes.Upper(),
                             code_paths=[str(ZOO_DIR)], input_example=["hello", "world"])
    return paths


# --- the extra --------------------------------------------------------------------------------------

def test_mlflow_extra_installs_mlflow_skinny() -> None:
    extra = _pyproject()["project"]["optional-dependencies"]["mlflow"]
    assert [_name(line) for line in extra] == ["mlflow-skinny"], extra
    specifier = Requirement(extra[0]).specifier
    assert specifier.contains("2.10") and specifier.contains(MLFLOW_VERSION)


# --- generate-dockerfile ----------------------------------------------------------------------------

def test_image_installs_mlflow_skinny_of_the_models_mlflow_version(pyfunc_models: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    model = pyfunc_models["inferred_requirements"]
    original = (model / "requirements.txt").read_text().split()
    assert f"mlflow=={MLFLOW_VERSION}" in original  # what MLflow writes

    context = generate(model, tmp_path / "ctx")
    assert requirement_lines(context) == [
        f"mlflow-skinny=={MLFLOW_VERSION}" if line == f"mlflow=={MLFLOW_VERSION}" else line for line in original
    ]
    text = (context / "install" / "requirements.txt").read_text()
    assert f"# replaced: mlflow=={MLFLOW_VERSION} -> mlflow-skinny=={MLFLOW_VERSION} (" in text
    assert "--full-mlflow" in text
    assert 'pip install "sigserve[mlflow]==0.1.0" -r requirements.txt' in (context / "Dockerfile").read_text()


def test_every_kind_loaded_through_mlflow_gets_mlflow_skinny(pyfunc_models: dict[str, Path], tmp_path: Path) -> None:
    for name, model in pyfunc_models.items():
        context = generate(model, tmp_path / name)
        names = [_name(line) for line in requirement_lines(context)]
        assert "mlflow-skinny" in names and "mlflow" not in names, (name, names)
        assert context.joinpath("Dockerfile").read_text().count("sigserve[mlflow]") == 1, name


def test_the_forms_of_an_mlflow_requirement(tmp_path: Path) -> None:
    """Extras, specifiers and markers carry over; a direct reference cannot, and stays; a model
    naming both gets one line; conda.yaml's pip section is read the same way."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "requirements.txt").write_text(
        'MLflow[gateway]>=2.10,<4 ; python_version >= "3.10"\n'
        "mlflow_skinny==3.17.2\nmlflow==3.17.2  # pinned by MLflow\n"
        "mlflow @ https://example.org/mlflow-3.17.2-py3-none-any.whl\nmlflow-tracing==3.17.2\nnumpy\n"
    )
    requirements = read_requirements(model, keep_mlflow=True)
    assert requirements.lines == [
        'mlflow-skinny[gateway]>=2.10,<4 ; python_version >= "3.10"', "mlflow_skinny==3.17.2",
        "mlflow-skinny==3.17.2", "mlflow @ https://example.org/mlflow-3.17.2-py3-none-any.whl",
        "mlflow-tracing==3.17.2", "numpy",
    ]
    assert [old for old, _ in requirements.replaced] == ['MLflow[gateway]>=2.10,<4 ; python_version >= "3.10"',
                                                         "mlflow==3.17.2"]

    (model / "requirements.txt").write_text("mlflow-skinny==3.17.2\nmlflow==3.17.2\n")
    assert read_requirements(model, keep_mlflow=True).lines == ["mlflow-skinny==3.17.2"]
    assert read_requirements(model, keep_mlflow=True, skinny=False).lines == ["mlflow-skinny==3.17.2", "mlflow==3.17.2"]
    assert read_requirements(model, keep_mlflow=False).lines == []  # a native model: no MLflow at all

    (model / "requirements.txt").unlink()
    (model / "conda.yaml").write_text("dependencies:\n- python=3.11\n- pip:\n  - mlflow==2.16.0\n  - pandas\n")
    assert read_requirements(model, keep_mlflow=True).lines == ["mlflow-skinny==2.16.0", "pandas"]


def test_full_mlflow_keeps_the_models_mlflow(pyfunc_models: dict[str, Path], tmp_path: Path) -> None:
    model = pyfunc_models["inferred_requirements"]
    original = (model / "requirements.txt").read_text().split()
    context = write_build_context(ResolvedModel(uri=str(model), path=model), tmp_path / "ctx", full_mlflow=True)
    assert context.full_mlflow and requirement_lines(tmp_path / "ctx") == original
    assert "# replaced" not in context.requirements.read_text()

    bare = tmp_path / "bare"  # a model whose requirements name no MLflow: --full-mlflow adds it
    shutil.copytree(model, bare)
    (bare / "requirements.txt").write_text("numpy\n")
    assert requirement_lines(generate(bare, tmp_path / "ctx2", full_mlflow=True)) == ["numpy", "mlflow"]
    assert requirement_lines(generate(bare, tmp_path / "ctx3")) == ["numpy"]  # the extra brings mlflow-skinny

    wheel = tmp_path / "sigserve-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"only copied")
    result = run_cli("generate-dockerfile", "-m", str(model), "-d", str(tmp_path / "cli"), "--full-mlflow",
                     "--sigserve-source", str(wheel))
    assert result.returncode == 0, result.stderr
    assert f"mlflow=={MLFLOW_VERSION}" in requirement_lines(tmp_path / "cli")


# --- mlflow-skinny suffices: predictions without what only the full mlflow installs -------------------

RUN_PREDICTIONS = r"""
import contextlib, io, json, sys
blocked, jobs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for module in blocked:
    sys.modules[module] = None  # `import module` fails as if it were not installed
from sigserve.cli import main
results = {}
for key, model, body, out in jobs:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["predict", "-m", model, "-i", body, "-o", out])
    text = open(out).read() if code == 0 else ""
    messages = [line for line in err.getvalue().splitlines() if line.startswith("sigserve:")]
    results[key] = [code, text, messages]
print(json.dumps({"results": results, "loaded": sorted(m for m in blocked if sys.modules.get(m) is not None)}))
"""


def _distributions_needed_by(roots: list[str]) -> set[str]:
    """Installed distributions the roots need, transitively, without extras."""
    seen: set[str] = set()
    todo = [_name(root) for root in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(requirement.name))
    return seen


def _modules_only_full_mlflow_installs() -> list[str]:
    """Top-level modules of the distributions `mlflow` needs that neither sigserve nor its
    `mlflow` extra (nor what they need) install."""
    project = _pyproject()["project"]
    kept = _distributions_needed_by([*project["dependencies"], *project["optional-dependencies"]["mlflow"]])
    dropped = _distributions_needed_by(["mlflow"]) - kept
    return sorted(module for module, dists in importlib.metadata.packages_distributions().items()
                  if not module.startswith("_") and all(_name(d) in dropped for d in dists))


def _predictions(blocked: list[str], jobs: list[list[str]]) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN_PREDICTIONS, json.dumps(blocked), json.dumps(jobs)],
                          capture_output=True, text=True, timeout=600, cwd=str(REPO / "tests"))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_models_loaded_through_mlflow_need_only_mlflow_skinny(pyfunc_models: dict[str, Path], tmp_path: Path) -> None:
    blocked = _modules_only_full_mlflow_installs()
    # what the extra leaves out (the full mlflow's server, UI and data-science dependencies)
    assert {"flask", "sqlalchemy", "alembic", "matplotlib", "sklearn", "scipy"} <= set(blocked), blocked
    assert not {"mlflow", "pydantic", "cloudpickle", "numpy", "pandas", "pyarrow"} & set(blocked), blocked

    bodies = {  # each model's serving example, and a request MLflow refuses
        name: [model / "serving_input_example.json"] for name, model in pyfunc_models.items()
    }
    bad = {"typehint_list_str": {"inputs": [1, 2]},
           "typehint_pydantic": {"inputs": [{"title": "t", "priority": "high"}]},
           "chat_model": {"messages": "hi"}, "responses_agent": {"input": "hi"},
           "pythonmodel_artifacts_params": {"dataframe_split": {"columns": ["a"], "data": [[1.0]]}}}
    for name, body in bad.items():
        path = tmp_path / f"{name}-bad.json"
        path.write_text(json.dumps(body))
        bodies[name].append(path)
    jobs = [[f"{name}[{i}]", str(pyfunc_models[name]), str(body), str(tmp_path / f"out-{name}-{i}")]
            for name in bodies for i, body in enumerate(bodies[name])]
    assert all(Path(body).is_file() for _, _, body, _ in jobs)

    skinny = _predictions(blocked, jobs)
    full = _predictions([], jobs)
    assert skinny["loaded"] == []
    assert skinny["results"] == full["results"]
    for name in pyfunc_models:
        code, text, messages = skinny["results"][f"{name}[0]"]
        assert code == 0 and text.strip(), (name, messages)
    for name in bad:
        code, text, messages = skinny["results"][f"{name}[1]"]
        assert code != 0 and messages, (name, code, text)
