"""Loading stage: a model directory in, a ready `LoadedModel` out."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.model.loaders import find_loader
from sigserve.model.mlmodel import ModelMeta, read_mlmodel

logger = logging.getLogger("sigserve.loader")


@dataclass(frozen=True)
class LoadedModel:
    meta: ModelMeta
    impl: Any
    predict_fn: Callable[..., Any]
    accepts_params: bool
    predict_unified_llm: Callable[[Any, dict[str, Any] | None], Any] | None = None

    def predict(self, model_input: Any, params: dict[str, Any] | None) -> Any:
        if self.accepts_params:
            return self.predict_fn(model_input, params=params)
        return self.predict_fn(model_input)


def load_model(model_dir: str | Path) -> LoadedModel:
    started = time.perf_counter()
    meta = read_mlmodel(model_dir)
    loader = find_loader(meta)
    try:
        impl = loader(meta)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"Loading {meta.path} with loader_module {meta.loader_module!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    predict_fn = getattr(impl, meta.pyfunc.predict_fn, None)
    if not callable(predict_fn):
        raise ModelLoadError(
            f"The model loaded by {meta.loader_module!r} has no method {meta.pyfunc.predict_fn!r}"
        )
    elapsed = time.perf_counter() - started
    logger.info("loaded %s (loader_module %s) with %s in %.2fs", meta.path, meta.loader_module,
                loader.__module__, elapsed)
    return LoadedModel(
        meta, impl, predict_fn, _accepts_params(predict_fn), getattr(impl, "predict_unified_llm", None)
    )


def _accepts_params(fn: Callable[..., Any]) -> bool:
    """MLflow's `PyFuncModel` rule: params go only to a parameter literally named `params`.
    A `**params` or `**kwargs` catch-all gets nothing, since it usually forwards to a library
    call (`Pipeline.predict(X, **params)`) that would choke on a `params` keyword."""
    try:
        parameter = inspect.signature(fn).parameters.get("params")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind is not inspect.Parameter.VAR_KEYWORD
