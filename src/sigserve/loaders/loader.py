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
from sigserve.loaders.code_paths import VersionCode, import_afresh
from sigserve.loaders.flavors import find_loader
from sigserve.model.mlmodel import ModelMeta, read_mlmodel

logger = logging.getLogger("sigserve.loader")


@dataclass(frozen=True)
class LoadedModel:
    meta: ModelMeta
    impl: Any
    predict_fn: Callable[..., Any]
    accepts_params: bool
    code: VersionCode  # settled by whoever decides whether this version serves
    predict_unified_llm: Callable[[Any, dict[str, Any] | None], Any] | None = None

    def predict(self, model_input: Any, params: dict[str, Any] | None) -> Any:
        if self.accepts_params:
            return self.predict_fn(model_input, params=params)
        return self.predict_fn(model_input)


def load_model(model_dir: str | Path, lineage: str = "") -> LoadedModel:
    """Load a model with its own code imported afresh (`code_paths`), in place of the earlier
    versions of `lineage` (the served model it is a version of). A load that fails puts the
    previous code back; the caller keeps or withdraws a loaded model's `code`."""
    started = time.perf_counter()
    meta = read_mlmodel(model_dir)
    code = import_afresh(meta, lineage)
    try:
        impl, predict_fn, loaded_with = _load(meta)
    except BaseException:
        code.withdraw()
        raise
    logger.info("loaded %s (loader_module %s) with %s in %.2fs", meta.path, meta.loader_module,
                loaded_with, time.perf_counter() - started)
    return LoadedModel(
        meta, impl, predict_fn, _accepts_params(predict_fn), code, getattr(impl, "predict_unified_llm", None)
    )


def _load(meta: ModelMeta) -> tuple[Any, Callable[..., Any], str]:
    loader = find_loader(meta)
    try:
        impl = loader(meta)
    except ModelLoadError:
        raise
    except Exception as exc:  # importing the model's code counts: any exception is a load failure
        raise ModelLoadError(
            f"Loading {meta.path} with loader_module {meta.loader_module!r} failed: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    predict_fn = getattr(impl, meta.pyfunc.predict_fn, None)
    if not callable(predict_fn):
        raise ModelLoadError(
            f"The model loaded by {meta.loader_module!r} has no method {meta.pyfunc.predict_fn!r}"
        )
    return impl, predict_fn, loader.__module__


def _accepts_params(fn: Callable[..., Any]) -> bool:
    """MLflow's `PyFuncModel` rule: params go only to a parameter literally named `params`.
    A `**params` or `**kwargs` catch-all gets nothing, since it usually forwards to a library
    call (`Pipeline.predict(X, **params)`) that would choke on a `params` keyword."""
    try:
        parameter = inspect.signature(fn).parameters.get("params")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind is not inspect.Parameter.VAR_KEYWORD
