"""What the native loaders share: importing their library, and recognising the fitted columns."""

from __future__ import annotations

import importlib
from types import ModuleType

import pandas as pd

from sigserve.errors import ModelLoadError
from sigserve.model.mlmodel import ModelMeta


def import_library(name: str, meta: ModelMeta, extra_hint: str) -> ModuleType:
    """The flavor's library, or a one-line error naming the sigserve extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ModelLoadError(
            f"The model at {meta.path} is an {meta.loader_module} model; loading it needs the "
            f"'{exc.name or name}' package; {extra_hint}"
        ) from None


class FeatureColumns:
    """Whether a request's frame has exactly the model's fitted columns. Requests reuse one
    cached column Index, so identity settles it after the first."""

    def __init__(self, names: pd.Index) -> None:
        self.names = names
        self._known: pd.Index | None = None

    def match(self, data: pd.DataFrame) -> bool:
        if data.columns is self._known:
            return True
        if not data.columns.equals(self.names):
            return False
        self._known = data.columns
        return True
