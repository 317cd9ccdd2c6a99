"""User loader modules: `loader_module._load_pyfunc(data_path)` from the model's code dir."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.model.mlmodel import ModelMeta


def add_code_dir(meta: ModelMeta) -> None:
    if meta.pyfunc.code:
        code_dir = str(meta.path / meta.pyfunc.code)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)


def is_importable(meta: ModelMeta) -> bool:
    add_code_dir(meta)
    try:
        return importlib.util.find_spec(meta.loader_module) is not None
    except ImportError:
        return False


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
