"""scikit-learn models saved by `mlflow.sklearn`, loaded without MLflow."""

from __future__ import annotations

import pickle
from typing import Any

from sigserve.errors import ModelLoadError
from sigserve.model.mlmodel import ModelMeta

LOADER_MODULE = "mlflow.sklearn"
EXTRA_HINT = "install it with: pip install 'sigserve[sklearn]'"


def load(meta: ModelMeta) -> Any:
    flavor = meta.flavors.get("sklearn", {})
    file_name = meta.pyfunc.data or flavor.get("pickled_model")
    if not file_name:
        raise ModelLoadError(f"{meta.path}/MLmodel: the sklearn flavor names no model file")
    path = meta.path / file_name
    serialization = flavor.get("serialization_format", "pickle")
    try:
        if serialization == "skops":
            return _load_skops(path, flavor.get("skops_trusted_types"))
        if serialization == "cloudpickle":
            import cloudpickle

            with open(path, "rb") as handle:
                return cloudpickle.load(handle)
        if serialization == "pickle":
            with open(path, "rb") as handle:
                return pickle.load(handle)
    except ImportError as exc:
        raise ModelLoadError(
            f"Loading {path} ({serialization}) needs the '{exc.name}' package; {EXTRA_HINT}"
        ) from None
    raise ModelLoadError(f"{meta.path}/MLmodel: unknown sklearn serialization_format {serialization!r}")


def _load_skops(path: Any, trusted_types: list[str] | None) -> Any:
    import skops.io

    try:
        return skops.io.load(path, trusted=trusted_types)
    except skops.io.exceptions.UntrustedTypesFoundException as exc:
        raise ModelLoadError(
            f"{path}: skops found types not listed in skops_trusted_types: {exc}"
        ) from None
