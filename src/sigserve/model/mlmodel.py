"""Reading an MLmodel file: the python_function flavor and the signature."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sigserve.errors import ModelLoadError
from sigserve.model.schema import Signature, parse_signature

PYFUNC_FLAVOR = "python_function"


@dataclass(frozen=True)
class PyfuncFlavor:
    loader_module: str
    data: str | None
    code: str | None
    predict_fn: str
    model_config: dict[str, Any] | None


@dataclass(frozen=True)
class ModelMeta:
    path: Path
    flavors: dict[str, dict[str, Any]]
    pyfunc: PyfuncFlavor
    signature: Signature | None
    serving_input_path: Path | None
    model_id: str | None
    signature_from_type_hint: bool = False  # MLflow hands `inputs` to the hints, unenforced

    @property
    def loader_module(self) -> str:
        return self.pyfunc.loader_module


def _signature(doc: dict[str, Any], mlmodel_file: Path) -> Signature | None:
    try:
        return parse_signature(doc.get("signature"))
    except ModelLoadError as exc:
        raise ModelLoadError(f"{mlmodel_file} has an invalid signature: {exc.message}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{mlmodel_file} has an invalid signature: {type(exc).__name__}: {exc}") from None


def read_mlmodel(model_dir: str | os.PathLike[str]) -> ModelMeta:
    path = Path(model_dir)
    mlmodel_file = path / "MLmodel"
    if not mlmodel_file.is_file():
        raise ModelLoadError(f"No MLmodel file in {path}: not an MLflow-format model directory")
    try:
        doc = yaml.safe_load(mlmodel_file.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{mlmodel_file} is not valid YAML: {exc}") from None
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    if not isinstance(flavors, dict):
        raise ModelLoadError(f"{mlmodel_file} has no 'flavors' mapping: not an MLmodel file")
    pyfunc = flavors.get(PYFUNC_FLAVOR)
    if not pyfunc or "loader_module" not in pyfunc:
        found = ", ".join(flavors) or "none"
        raise ModelLoadError(
            f"{mlmodel_file} has no python_function flavor (flavors: {found}); "
            "sigserve serves python_function models"
        )
    example = (doc.get("saved_input_example_info") or {}).get("serving_input_path")
    return ModelMeta(
        path=path,
        flavors=flavors,
        pyfunc=PyfuncFlavor(
            loader_module=pyfunc["loader_module"],
            data=pyfunc.get("data") or pyfunc.get("model_path"),
            code=pyfunc.get("code"),
            predict_fn=pyfunc.get("predict_fn") or "predict",
            model_config=pyfunc.get("model_config"),
        ),
        signature=_signature(doc, mlmodel_file),
        serving_input_path=path / example if example else None,
        model_id=doc.get("model_id"),
        signature_from_type_hint=doc.get("is_signature_from_type_hint") is True,
    )
