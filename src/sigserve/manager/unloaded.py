"""A served model that is not in memory now (`--max-loaded-models`): the version its next request
loads, and that version's MLmodel, so metadata, OpenAPI and routing answer without loading it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from sigserve.manager.servable import Servable, alias_of
from sigserve.model.mlmodel import ModelMeta, read_mlmodel
from sigserve.sources.resolved import ResolvedModel, printable

NOT_LOADED_YET = "unloaded: loads on its first request"
EVICTED = "unloaded: evicted as the least recently used model; loads again on its next request"


@dataclass(frozen=True)
class Unloaded:
    """Named like the `Servable` it stands for (name, version, alias, headers), without a scorer."""

    resolved: ResolvedModel
    meta: ModelMeta
    alias: str | None
    reason: str = NOT_LOADED_YET  # shown in the V2 repository index

    loaded: ClassVar[bool] = False
    ready: ClassVar[bool] = True  # it loads when asked for: not being in memory is not being unready

    @classmethod
    def of(cls, resolved: ResolvedModel, reason: str = NOT_LOADED_YET) -> Unloaded:
        """Reads only the MLmodel file: a ModelLoadError for a directory that is not a model."""
        return cls(resolved, read_mlmodel(resolved.path), alias_of(resolved.uri), reason)

    @classmethod
    def evicted(cls, servable: Servable, reason: str = EVICTED) -> Unloaded:
        return cls(servable.resolved, servable.meta, servable.alias, reason)

    @property
    def name(self) -> str:
        return self.resolved.name or self.resolved.path.name

    @property
    def version(self) -> str:
        return self.resolved.version or "local"

    @property
    def identity(self) -> tuple[str | None, str | None, str]:
        return self.resolved.name, self.resolved.version, str(self.resolved.path)

    @functools.cached_property
    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-model-version", printable(f"{self.name}/{self.version}").encode("latin-1", "replace"))]
        if self.alias:
            headers.append((b"x-model-alias", printable(self.alias).encode("latin-1", "replace")))
        return headers
