"""Many models in one server: each served name has one or more versions (a champion and its
challengers, each following its own URI), each with its own manager and poller, so one model's
reload or failure never touches another's."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sigserve.errors import ModelNotServed, SigserveError
from sigserve.manager.manager import ModelManager
from sigserve.manager.poller import ReloadPoller
from sigserve.manager.servable import Servable, alias_of
from sigserve.manager.traffic import TrafficPolicy
from sigserve.manager.unloaded import Unloaded
from sigserve.sources.registry.uri import RegisteredModelRef, parse_models_uri

logger = logging.getLogger("sigserve.manager")


@dataclass(frozen=True)
class ModelOptions:
    """Per-model settings; None takes the server-wide value."""

    reload_interval: float | None = None
    batch_max_size: int | None = None
    batch_max_wait_ms: float | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One `-m` or one entry of `models:` in a config file."""

    uri: str
    name: str | None = None  # the route name; default the registered name, else the directory name
    options: ModelOptions = ModelOptions()

    @property
    def alias(self) -> str | None:
        return alias_of(self.uri)

    @property
    def known_name(self) -> str | None:
        """The route name before anything loads: the given one or a registered model's; None when
        only the source can tell (a local path, runs:/, models:/m-<id>)."""
        if self.name or not self.uri.startswith("models:"):
            return self.name
        try:
            ref = parse_models_uri(self.uri)
        except SigserveError:
            return None
        return ref.name if isinstance(ref, RegisteredModelRef) else None


@dataclass
class ServedModel:
    """One URI being served: its manager holds the version serving now."""

    name: str
    spec: ModelSpec
    manager: ModelManager
    poller: ReloadPoller | None = None

    @property
    def current(self) -> Servable | Unloaded:
        """The version serving now; an `Unloaded` while not in memory (`--max-loaded-models`)."""
        return self.manager.current

    @property
    def loaded(self) -> bool:
        return self.manager.current.loaded

    @property
    def alias(self) -> str | None:
        return self.spec.alias

    @property
    def key(self) -> str:
        """Unique across the server: `name`, or `name@alias` for a challenger."""
        return self.manager.key


@dataclass
class ModelGroup:
    """The versions served under one name: `versions[0]` is the champion, the one a request
    without `X-Model-Alias` gets (unless a canary draws the challenger)."""

    name: str
    versions: list[ServedModel]
    traffic: TrafficPolicy = TrafficPolicy()

    @property
    def champion(self) -> ServedModel:
        return self.versions[0]

    @property
    def challenger(self) -> ServedModel | None:
        return self.versions[1] if len(self.versions) > 1 else None

    def by_alias(self, alias: str) -> ServedModel | None:
        for served in self.versions:
            if served.alias == alias or served.current.version == alias:
                return served
        return None

    def choose(self, alias: str | None, sticky_value: bytes | None) -> tuple[ServedModel, ServedModel | None]:
        """The version that answers, and the one scoring a shadow copy (or None). An alias asked
        for by the client wins over the traffic policy; ModelNotServed when no version has it."""
        if alias is not None:
            served = self.by_alias(alias)
            if served is None:
                known = ", ".join(s.alias or s.current.version for s in self.versions)
                raise ModelNotServed(
                    f"Model {self.name!r} has no version with alias {_shown(alias)!r} here (served: {known})")
            return served, None
        challenger = self.challenger
        if challenger is None:
            return self.champion, None
        if self.traffic.policy == "shadow":
            return self.champion, challenger
        if self.traffic.goes_to_challenger(sticky_value, self.name):
            return challenger, None
        return self.champion, None

    def by_version(self, version: str) -> ServedModel | None:
        for served in self.versions:
            if served.current.version == version:
                return served
        return None


@dataclass
class ModelSet:
    """Every served name, in the order given; the first is the default of `POST /invocations`."""

    groups: dict[str, ModelGroup] = field(default_factory=dict)

    @property
    def default(self) -> ModelGroup:
        return next(iter(self.groups.values()))

    def get(self, name: str) -> ModelGroup | None:
        return self.groups.get(name)

    def __iter__(self) -> Iterator[ServedModel]:
        for group in self.groups.values():
            yield from group.versions

    def __len__(self) -> int:
        return sum(len(group.versions) for group in self.groups.values())

    def find(self, name: str | None, version: str | None = None) -> tuple[ModelGroup, ServedModel | None]:
        """The group a request names (None: the default) and, when it names a version, that
        version; ModelNotServed naming what is served otherwise."""
        group = self.default if name is None else self.groups.get(name)
        if group is None:
            raise ModelNotServed(f"Model {_shown(name)!r} is not served here; served: {_listed(self.groups)}")
        if version is None:
            return group, None
        served = group.by_version(version)
        if served is None:
            versions = ", ".join(s.current.version for s in group.versions)
            raise ModelNotServed(f"Model {group.name!r} version {_shown(version)!r} is not served here; "
                                 f"served: {versions}")
        return group, served

    def add(self, served: ServedModel) -> None:
        group = self.groups.get(served.name)
        if group is None:
            self.groups[served.name] = ModelGroup(served.name, [served])
        else:
            group.versions.append(served)

    def set_traffic(self, name: str, policy: TrafficPolicy) -> None:
        group = self.groups.get(name)
        if group is None:
            raise ValueError(f"traffic policy for {name!r}, which is not a served model ({', '.join(self.groups)})")
        if policy.policy != "champion" and group.challenger is None:
            raise ValueError(f"traffic policy {policy.policy} for {name!r} needs a second version of it "
                             f"(e.g. -m models:/{name}@champion -m models:/{name}@challenger)")
        group.traffic = policy

    def start_polling(self) -> None:
        for served in self:
            if served.poller is not None:
                served.poller.start()

    def stop_polling(self) -> None:
        for served in self:
            if served.poller is not None:
                served.poller.stop()


SHOWN_CHARS = 200
LISTED_NAMES = 20


def _shown(text: str) -> str:
    """A client's text echoed in an error, cut short."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _listed(names: Iterable[str]) -> str:
    """The served names in an error, at most 20 of a fleet's."""
    names = list(names)
    more = len(names) - LISTED_NAMES
    listed = ", ".join(names[:LISTED_NAMES])
    return listed + (f" and {more} more (POST /v2/repository/index lists them)" if more > 0 else "")
