"""Source stage: turn a model URI into a local model directory.

Only local paths and `file://` URIs resolve here; registry URIs plug in as further resolvers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from sigserve.errors import ModelNotFound


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    path: Path


Resolver = Callable[[str], ResolvedModel]

_SCHEME_RESOLVERS: dict[str, Resolver] = {}


def register_scheme(scheme: str, resolver: Resolver) -> None:
    _SCHEME_RESOLVERS[scheme] = resolver


def resolve(uri: str) -> ResolvedModel:
    scheme = urlparse(uri).scheme
    if scheme in _SCHEME_RESOLVERS:
        return _SCHEME_RESOLVERS[scheme](uri)
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        return _resolve_local(uri)
    raise ModelNotFound(
        f"Cannot resolve {uri!r}: the scheme {scheme!r} is not supported "
        "(use a local path or file:// URI)"
    )


def _resolve_local(uri: str) -> ResolvedModel:
    path = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise ModelNotFound(f"Model {uri!r}: no directory at {path}")
    return ResolvedModel(uri=uri, path=path)
