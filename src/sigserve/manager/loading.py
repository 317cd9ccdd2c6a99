"""The served set built from what the operator asked for: each model resolved by its source,
loaded and warmed, given its manager and poller; and the traffic policies checked against it."""

from __future__ import annotations

from sigserve.errors import ModelLoadError
from sigserve.manager.fleet import ModelSet, ModelSpec, ServedModel
from sigserve.manager.manager import ModelManager
from sigserve.manager.poller import ReloadPoller
from sigserve.manager.servable import LoadEvents, Servable, load_servable
from sigserve.manager.traffic import TrafficPolicy
from sigserve.manager.unloaded import Unloaded
from sigserve.sources.resolved import printable
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve


def load_models(specs: list[ModelSpec], traffic: dict[str, TrafficPolicy], sources: SourceSettings,
                events: LoadEvents | None, reload_interval: float, allow_failing_example: bool,
                max_loaded_models: int = 0) -> ModelSet:
    """Every model loaded and warmed before serving (and before workers fork, so they share it);
    one that fails stops the start, named. With `max_loaded_models` K, every model is resolved
    (a bad URI still stops the start) but only the first K load; the others on their first request."""
    models = ModelSet()
    for spec in specs:
        try:
            resolved = resolve(spec.uri, sources)
        except ModelLoadError as exc:
            raise ModelLoadError(f"cannot serve {printable(spec.uri)}: {exc.message}") from None
        name = spec.name or resolved.name or resolved.path.name
        taken = models.get(name)
        if taken is not None and spec.name is None and resolved.name is None:  # a directory's name: no version of it
            raise ModelLoadError(f"{printable(spec.uri)} and {printable(taken.champion.spec.uri)} would both be served "
                                 f"as {name!r}: name them (`name:` in a --config file)")
        key = name if taken is None else f"{name}@{spec.alias or resolved.version or 'local'}"
        if any(served.key == key for served in models):
            raise ModelLoadError(f"{printable(spec.uri)} is served twice as {key!r}: give each a different name")
        try:
            if max_loaded_models and len(models) >= max_loaded_models:
                servable: Servable | Unloaded = Unloaded.of(resolved)
            else:
                servable = load_servable(resolved, allow_failing_example=allow_failing_example, lineage=key)
        except ModelLoadError as exc:
            raise ModelLoadError(f"cannot serve {printable(spec.uri)}: {exc.message}") from None
        manager = ModelManager(servable, events, key=key)
        interval = reload_interval if spec.options.reload_interval is None else spec.options.reload_interval
        poller = None
        if interval > 0 and spec.alias is not None:
            poller = ReloadPoller(spec.uri, sources, interval, manager, allow_failing_example=allow_failing_example)
        models.add(ServedModel(name, spec, manager, poller))
    for name, policy in traffic.items():
        try:
            models.set_traffic(name, policy)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
    return models
