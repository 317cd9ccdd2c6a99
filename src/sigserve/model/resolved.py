"""What resolving a model URI yields: a local directory, plus the registry facts behind it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    path: Path
    registry: str | None = None
    name: str | None = None
    version: str | None = None
    aliases: tuple[str, ...] = ()
    stage: str | None = None
    source: str | None = None
