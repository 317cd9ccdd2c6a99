"""Versions of one model's code under the same module names, for reload tests.

Each version is written to its own directory: a custom `loader_module` package with a submodule
and a module it imports inside `predict`, and a PythonModel whose class and helper live in
code_paths. What a version predicts is in its code, so a server running another version's code
answers differently.
"""

from __future__ import annotations

from pathlib import Path

CUSTOM_PACKAGE = "sigtest_versioned"
CALL_TIME_MODULE = "sigtest_versioned_offset"
PYMODEL_PACKAGE = "sigtest_pymodel"

_CUSTOM_INIT = '''"""Version {version} of a custom loader_module model: (a + b) * FACTOR + OFFSET."""
{failure}
import numpy as np

from sigtest_versioned.weights import FACTOR


class Model:
    def predict(self, model_input, params=None):
        import sigtest_versioned_offset  # imported when called, as some models do

        return model_input.to_numpy(np.float64).sum(axis=1) * FACTOR + sigtest_versioned_offset.OFFSET


def _load_pyfunc(path):
    return Model()
'''

_PYMODEL_INIT = '''"""Version {version} of a PythonModel logged with code_paths: transform(x)."""
import os
import time

import mlflow.pyfunc
import numpy as np

from sigtest_pymodel.transform import transform


class Versioned(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        """A version configured with a gate file loads only once the file exists (a slow load)."""
        gate = (context.model_config or {{}}).get("gate")
        deadline = time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)

    def predict(self, context, model_input, params=None):
        return transform(model_input["x"].to_numpy(np.float64))
'''

_PYMODEL_TRANSFORM = '''{failure}

def transform(x):
    return x * {factor} + {offset}
'''


def custom_code(root: Path, version: int, factor: float | None, offset: float, *, call_time_package: bool = False,
                failure: str = "") -> list[Path]:
    """The code_paths of one version: the loader package and the module `predict` imports, as a
    module or (`call_time_package`) a package of the same name. `failure` is a line run first
    when the package is imported."""
    code = root / f"custom_v{version}"
    package = code / CUSTOM_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_CUSTOM_INIT.format(version=version, failure=failure))
    (package / "weights.py").write_text(f"FACTOR = {factor!r}\n")
    if call_time_package:
        (code / CALL_TIME_MODULE).mkdir()
        offset_file = code / CALL_TIME_MODULE / "__init__.py"
        offset_file.write_text(f"OFFSET = {offset!r}\n")
        return [package, offset_file.parent]
    (code / f"{CALL_TIME_MODULE}.py").write_text(f"OFFSET = {offset!r}\n")
    return [package, code / f"{CALL_TIME_MODULE}.py"]


def pymodel_code(root: Path, version: int, factor: float, offset: float, failure: str = "") -> Path:
    """The code_paths entry of one PythonModel version: the package holding its class."""
    package = root / f"pymodel_v{version}" / PYMODEL_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_PYMODEL_INIT.format(version=version))
    (package / "transform.py").write_text(_PYMODEL_TRANSFORM.format(factor=factor, offset=offset, failure=failure))
    return package
