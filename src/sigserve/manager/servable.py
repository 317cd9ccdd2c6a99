"""A servable: one loaded, warmed model version, and the facts that name it."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import ClassVar, Protocol

from sigserve.errors import SigserveError, WarmUpFailed
from sigserve.loaders.loader import load_model
from sigserve.model.mlmodel import ModelMeta
from sigserve.scoring import Scorer
from sigserve.sources.registry.uri import RegisteredModelRef, parse_models_uri
from sigserve.sources.resolved import ResolvedModel, printable

logger = logging.getLogger("sigserve.manager")


class VersionNames:
    """What names a model version in headers, metadata and logs, from the registry's facts;
    shared by a loaded `Servable` and the `Unloaded` that stands for it."""

    resolved: ResolvedModel
    alias: str | None

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
        """`X-Model-Version: name/version`, and the alias it was reached by."""
        headers = [(b"x-model-version", printable(f"{self.name}/{self.version}").encode("latin-1", "replace"))]
        if self.alias:
            headers.append((b"x-model-alias", printable(self.alias).encode("latin-1", "replace")))
        return headers


@dataclass(frozen=True)
class Servable(VersionNames):
    """A loaded, warmed model and the registry facts that name it in headers and metadata."""

    scorer: Scorer
    resolved: ResolvedModel
    alias: str | None
    load_seconds: float
    example_failure: str | None = None  # served anyway (--allow-failing-example), never ready

    loaded: ClassVar[bool] = True  # an `Unloaded` stands in for it when it is not in memory

    @property
    def ready(self) -> bool:
        return self.example_failure is None

    @property
    def meta(self) -> ModelMeta:
        return self.scorer.model.meta



class LoadEvents(Protocol):
    """What the manager reports; `server.metrics.Metrics` implements it."""

    def model_loaded(self, model: str, name: str, version: str, alias: str | None, seconds: float) -> None: ...
    def reload_succeeded(self, model: str) -> None: ...
    def reload_failed(self, model: str, reason: str) -> None: ...
    def registry_error(self, model: str) -> None: ...
    def model_load_finished(self, model: str, trigger: str, seconds: float) -> None: ...
    def model_unloaded(self, model: str) -> None: ...


def alias_of(uri: str) -> str | None:
    """The alias, stage or `latest` a URI follows; None for a URI that names one fixed model."""
    if not uri.startswith("models:"):
        return None
    try:
        ref = parse_models_uri(uri)
    except SigserveError:
        return None
    if not isinstance(ref, RegisteredModelRef) or ref.version:
        return None
    return ref.alias or ref.stage or "latest"


def load_servable(resolved: ResolvedModel, *, allow_failing_example: bool = False, lineage: str = "") -> Servable:
    """Load, and score the model's own serving example. One rule for start-up and reloads: a
    model that fails on its own example is refused, unless allowed, and then never ready.
    `lineage` is the served model this is a version of (its key)."""
    started = time.perf_counter()
    scorer = Scorer(load_model(resolved.path, lineage))
    failure = scorer.example_failure()
    if failure is not None:
        example = scorer.model.meta.serving_input_path
        message = f"the model fails on its own serving input example ({example}): {' '.join(failure.split())}"
        if not allow_failing_example:
            scorer.model.code.withdraw()  # the serving version's modules come back
            raise WarmUpFailed(f"{message} (--allow-failing-example serves it, never ready)")
        logger.error("%s; serving it anyway (--allow-failing-example), but never reporting it ready", message)
    scorer.model.code.keep()  # the previous version's modules are let go
    return Servable(scorer, resolved, alias_of(resolved.uri), time.perf_counter() - started, failure)
