"""Source stage: turn a model URI into a local model directory.

Local paths and `file://` URIs resolve here; `models:/` and `runs:/` go through the registry.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from sigserve.errors import ModelNotFound
from sigserve.model.resolved import ResolvedModel
from sigserve.registry import resolve_registry_uri

REGISTRY_SCHEMES = ("models", "runs")


def resolve(uri: str, registry: str | None = None) -> ResolvedModel:
    scheme = urlparse(uri).scheme
    if scheme in REGISTRY_SCHEMES:
        return resolve_registry_uri(uri, registry)
    if scheme in ("", "file"):
        return _resolve_local(uri)
    raise ModelNotFound(
        f"Cannot resolve {uri!r}: the scheme {scheme!r} is not supported "
        "(use a local path, file://, models:/ or runs:/)"
    )


def _resolve_local(uri: str) -> ResolvedModel:
    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise ModelNotFound(f"Model {uri!r}: no directory at {path}")
    return ResolvedModel(uri=uri, path=path)
