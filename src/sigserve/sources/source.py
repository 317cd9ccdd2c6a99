"""Source stage: turn a model URI into a local model directory.

Local paths and `file://` URIs resolve here; `models:/` and `runs:/` go through the registry.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from sigserve.errors import ModelNotFound
from sigserve.sources.resolved import ResolvedModel
from sigserve.sources.registry import resolve_registry_uri
from sigserve.sources.registry.cache import ArtifactCache
from sigserve.sources.settings import SourceSettings

REGISTRY_SCHEMES = ("models", "runs")


def resolve(uri: str, settings: SourceSettings | None = None) -> ResolvedModel:
    """`settings` say where the registry is and how to reach it: read once by the caller
    (`SourceSettings.from_env`); without them, the defaults, whatever the environment says."""
    if settings is None:
        settings = SourceSettings()
    elif not isinstance(settings, SourceSettings):
        raise TypeError(f"resolve() takes a SourceSettings, not {type(settings).__name__}: "
                        "build one with SourceSettings.from_env(registry_uri=...)")
    scheme = urlparse(uri).scheme
    if scheme in REGISTRY_SCHEMES:
        return resolve_registry_uri(uri, settings.registry(), ArtifactCache(settings.cache_dir), settings.tracking,
                                    settings.limits)
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
