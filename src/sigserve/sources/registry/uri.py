"""Parsing `models:/` URIs exactly as MLflow does (mlflow.store.artifact.utils.models)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from sigserve.errors import ModelNotFound
from sigserve.sources.resolved import check_text

LATEST = "latest"


@dataclass(frozen=True)
class RegisteredModelRef:
    """One version of a registered model: by number, alias, stage, or the latest (all None)."""

    name: str
    version: str | None = None
    stage: str | None = None
    alias: str | None = None

    def describe(self) -> str:
        if self.version:
            return f"version {self.version} of model {self.name!r}"
        if self.alias:
            return f"alias @{self.alias} of model {self.name!r}"
        if self.stage:
            return f"the latest version of model {self.name!r} in stage {self.stage!r}"
        return f"the latest version of model {self.name!r}"


@dataclass(frozen=True)
class LoggedModelRef:
    model_id: str


def parse_models_uri(uri: str) -> RegisteredModelRef | LoggedModelRef:
    check_text("model URI", uri)  # its name and alias become response headers
    parsed = urlparse(uri, allow_fragments=False)
    path = parsed.path
    parts = path.lstrip("/").split("/")
    if parsed.scheme != "models" or not path.startswith("/") or len(path) <= 1 or len(parts) > 2 or not parts[0].strip():
        raise ModelNotFound(_improper(uri))
    if len(parts) == 2:
        name, suffix = parts
        if not suffix.strip():
            raise ModelNotFound(_improper(uri))
        if suffix.isdigit():
            return RegisteredModelRef(name, version=suffix)
        if suffix.lower() == LATEST:
            return RegisteredModelRef(name)
        return RegisteredModelRef(name, stage=suffix)
    if "@" in parts[0]:
        name, _, alias = parts[0].rpartition("@")
        if not alias.strip():
            raise ModelNotFound(_improper(uri))
        return RegisteredModelRef(name, alias=alias)
    return LoggedModelRef(parts[0])


def _improper(uri: str) -> str:
    return (
        f"Not a proper models:/ URI: {uri!r}. Use models:/<name>/<version|stage|latest>, "
        "models:/<name>@<alias> or models:/m-<model id>."
    )
