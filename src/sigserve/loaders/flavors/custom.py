"""User loader modules: `loader_module._load_pyfunc(data_path)` from the model's code dir.

`load_model` has already put this version's code dirs first on `sys.path`, with no other
version's modules left in `sys.modules` (`code_paths`), so the import below is this version's.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.loaders.code_paths import code_dirs
from sigserve.model.mlmodel import ModelMeta


def add_code_dir(meta: ModelMeta) -> None:
    """Where MLflow's flavors add the code dir. Under `load_model` it is already first."""
    for code_dir in reversed(code_dirs(meta)):
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)


def is_importable(meta: ModelMeta) -> bool:
    """Whether `loader_module` exists (in the code dir or installed). One that exists but fails
    to import counts, so that loading it reports its own error rather than MLflow's."""
    add_code_dir(meta)
    name = meta.loader_module
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError as exc:  # a parent package is missing, or one it imports
        return not (exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")))
    except Exception:
        return True


def load(meta: ModelMeta) -> Any:
    add_code_dir(meta)
    module = importlib.import_module(meta.loader_module)
    load_pyfunc = getattr(module, "_load_pyfunc", None)
    if load_pyfunc is None:
        raise ModelLoadError(f"loader_module {meta.loader_module!r} has no _load_pyfunc(path)")
    data_path = str(meta.path / meta.pyfunc.data) if meta.pyfunc.data else str(meta.path)
    if meta.pyfunc.model_config and len(inspect.signature(load_pyfunc).parameters) > 1:
        return load_pyfunc(data_path, meta.pyfunc.model_config)
    return load_pyfunc(data_path)
