"""Everything sigserve has no native loader for goes through MLflow, when it is installed.

`load_model` has already put this version's code dirs (`code_paths`) first on `sys.path` with no
other version's modules in `sys.modules`, so the classes MLflow unpickles by module name, and the
modules they import, are this version's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.model.mlmodel import ModelMeta

EXTRA_HINT = "pip install 'sigserve[mlflow]'"


def load(meta: ModelMeta) -> Any:
    try:
        import mlflow.pyfunc
    except ImportError:
        raise ModelLoadError(
            f"The model at {meta.path} uses loader_module {meta.loader_module!r}, which sigserve "
            f"has no native loader for; loading it needs MLflow: {EXTRA_HINT}"
        ) from None

    try:
        pyfunc_model = mlflow.pyfunc.load_model(str(meta.path))
    except Exception as exc:  # an exception importing the model's code too
        raise ModelLoadError(
            f"MLflow could not load {meta.path} (loader_module {meta.loader_module!r}): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from None
    return MlflowFlavor(pyfunc_model, meta.pyfunc.predict_fn)


class MlflowFlavor:
    """MLflow's flavor implementation, called as `PyFuncModel.predict` calls it once the input is
    enforced (sigserve enforces it), so MLflow's own enforcement does not run twice.

    What `PyFuncModel` does after enforcement is done here too: a model whose signature was
    inferred from a non-DataFrame input example gets its input back in that example's shape.
    Unified LLM payloads go through `PyFuncModel.predict` whole, MLflow's chat schemas and all.
    """

    def __init__(self, pyfunc_model: Any, predict_fn: str) -> None:
        self.pyfunc_model = pyfunc_model
        self.impl = pyfunc_model._model_impl
        method = getattr(self.impl, predict_fn, None)
        if callable(method):
            setattr(self, predict_fn, _in_example_format(method, pyfunc_model))

    def predict_unified_llm(self, data: dict[str, Any], params: dict[str, Any] | None) -> Any:
        return self.pyfunc_model.predict(data, params=params)

    def get_raw_model(self) -> Any:
        return self.impl


def _in_example_format(method: Callable[..., Any], pyfunc_model: Any) -> Callable[..., Any]:
    example = pyfunc_model.input_example
    if not pyfunc_model.metadata._is_type_hint_from_example() or example is None:
        return method
    from mlflow.types.type_hints import _convert_dataframe_to_example_format

    parameter = inspect.signature(method).parameters.get("params")
    if parameter is not None and parameter.kind is not inspect.Parameter.VAR_KEYWORD:
        def with_params(data: Any, params: dict[str, Any] | None = None) -> Any:
            return method(_convert_dataframe_to_example_format(data, example), params=params)

        return with_params
    return lambda data: method(_convert_dataframe_to_example_format(data, example))
