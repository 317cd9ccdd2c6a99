"""A served model that is not in memory now (`--max-loaded-models`): the version its next request
loads, and that version's MLmodel, so metadata, OpenAPI and routing answer without loading it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sigserve.manager.servable import Servable, VersionNames, alias_of
from sigserve.model.mlmodel import ModelMeta, read_mlmodel
from sigserve.sources.resolved import ResolvedModel

NOT_LOADED_YET = "unloaded: loads on its first request"
EVICTED = "unloaded: evicted as the least recently used model; loads again on its next request"


@dataclass(frozen=True)
class Unloaded(VersionNames):
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
