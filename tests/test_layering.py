"""The layers of src/sigserve import one way only (README "Layout").

The contracts live in pyproject.toml `[tool.importlinter]`; these tests run them, check that every
top-level module has a layer, and look for import cycles between top-level packages on their own.
They check the `sigserve` this interpreter imports, so `PYTHONPATH=<other src>` checks another tree.
TYPE_CHECKING imports count: an annotation that reaches up a layer is still a dependency.
"""

from __future__ import annotations

import graphlib
import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter.api import read_configuration

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
ROOT = "sigserve"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(ROOT, cache_dir=None)


def top_level(module: str) -> str:
    return ".".join(module.split(".")[:2])


def where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    line = details[0]["line_number"] if details else "?"
    return f"{importer} (line {line}) imports {imported}"


def test_import_contracts_are_kept() -> None:
    run = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         str(PYPROJECT), "--no-cache", "--no-logo"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},  # no wrapped names
    )
    broken = [line.removesuffix(" BROKEN") for line in run.stdout.splitlines() if line.endswith(" BROKEN")]
    if run.returncode != 0 or broken:
        details = run.stdout.partition("Broken contracts")[2].lstrip("-\n") or run.stdout
        pytest.fail(f"broken import contracts: {broken or '(lint-imports failed)'}\n\n{details}{run.stderr}")


def test_every_top_level_module_has_a_layer(graph: grimp.ImportGraph) -> None:
    """A new top-level module outside the layers contract would escape every check."""
    contracts = read_configuration(str(PYPROJECT))["contracts_options"]
    layers = next(c for c in contracts if c["type"] == "layers" and c.get("containers") == [ROOT])
    named = {part.strip() for layer in layers["layers"] for part in layer.replace(":", "|").split("|")}
    modules = {child.removeprefix(f"{ROOT}.") for child in graph.find_children(ROOT)}
    assert modules - named == set(), "top-level modules missing from the layers contract"
    assert named - modules == set(), "layers naming modules that do not exist"


def test_no_import_cycle_between_top_level_packages(graph: grimp.ImportGraph) -> None:
    """Checked from grimp's graph directly, so a contract edited away cannot hide a cycle."""
    depends: dict[str, set[str]] = {}
    example: dict[tuple[str, str], str] = {}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = top_level(importer), top_level(imported)
            if a != b and ROOT not in (a, b):  # `from sigserve import __version__` is no layer
                depends.setdefault(a, set()).add(b)
                example.setdefault((a, b), where(graph, importer, imported))
    try:
        graphlib.TopologicalSorter(depends).prepare()
    except graphlib.CycleError as error:
        cycle = error.args[1][::-1]  # [x, ..., x], each importing the next
        hops = [example[(cycle[i], cycle[i + 1])] for i in range(len(cycle) - 1)]
        pytest.fail("import cycle between packages " + " -> ".join(cycle) + ":\n  " + "\n  ".join(hops))
