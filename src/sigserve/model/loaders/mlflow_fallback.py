"""Everything sigserve has no native loader for goes through MLflow, when it is installed."""

from __future__ import annotations

from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.model.mlmodel import ModelMeta

EXTRA_HINT = "pip install 'sigserve[mlflow]'"


def load(meta: ModelMeta) -> Any:
    """Return MLflow's flavor implementation, bypassing PyFuncModel's own schema enforcement."""
    try:
        import mlflow.pyfunc
    except ImportError:
        raise ModelLoadError(
            f"The model at {meta.path} uses loader_module {meta.loader_module!r}, which sigserve "
            f"has no native loader for; loading it needs MLflow: {EXTRA_HINT}"
        ) from None

    try:
        pyfunc_model = mlflow.pyfunc.load_model(str(meta.path))
    except Exception as exc:
        raise ModelLoadError(
            f"MLflow could not load {meta.path} (loader_module {meta.loader_module!r}): {exc}"
        ) from None
    return pyfunc_model._model_impl
