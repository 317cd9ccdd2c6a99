"""`models:/…` and `runs:/…` to a local model directory, through the registry's database."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from sigserve.errors import ModelNotFound, RegistryLimitExceeded, UnsafeRegistryValue
from sigserve.sources.resolved import ResolvedModel, check_text
from sigserve.redact import redact_uri
from sigserve.sources.registry.backend import RegistryBackend
from sigserve.sources.registry.cache import ArtifactCache, cache_key
from sigserve.sources.registry.cloud import download_cloud
from sigserve.sources.registry.file_store import FileStoreRegistry
from sigserve.sources.registry.limits import ENV_PREFIX, RegistryLimits
from sigserve.sources.registry.sqlite_store import SqliteRegistry
from sigserve.sources.registry.tracking import TrackingSettings
from sigserve.sources.registry.uri import LoggedModelRef, parse_models_uri

_FINAL = (UnsafeRegistryValue, RegistryLimitExceeded)  # end the resolution: no other location may help


def resolve_registry_uri(
    uri: str, where: str, cache: ArtifactCache, tracking: TrackingSettings, limits: RegistryLimits,
) -> ResolvedModel:
    """`uri` in the registry at `where`, as `SourceSettings` configure it. Each call opens the
    registry and closes it after: a server polling every few seconds must not leave a
    connection or client behind per poll."""
    store = _open(where, tracking, limits)
    try:
        return _Resolution(uri, store, cache, limits.max_depth).run(where)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def _open(where: str, tracking: TrackingSettings, limits: RegistryLimits) -> RegistryBackend:
    scheme = urlparse(where).scheme
    if scheme == "sqlite":
        return SqliteRegistry(where)
    if scheme in ("", "file"):
        return FileStoreRegistry(where)
    if scheme in ("http", "https"):
        from sigserve.sources.registry.rest_store import RestRegistry

        return RestRegistry(where, tracking, limits)
    raise ModelNotFound(
        f"Registry {where!r}: unsupported; use an MLflow SQLite database (sqlite:///…), an MLflow "
        "tracking server (http[s]://…) or an MLflow file store directory"
    )


class _Resolution:
    """One URI followed through the registry. Sources may point further (`models:/…`,
    `runs:/…`); the trail of what was followed stops cycles and over-long chains."""

    def __init__(self, uri: str, store: RegistryBackend, cache: ArtifactCache, max_depth: int) -> None:
        self.uri, self.store, self.cache, self.max_depth = uri, store, cache, max_depth

    def run(self, where: str) -> ResolvedModel:
        uri = self.uri
        if uri.startswith("runs:"):
            return ResolvedModel(uri, self.local(uri, ()), registry=where, source=uri)
        ref = parse_models_uri(uri)
        if isinstance(ref, LoggedModelRef):
            source = f"models:/{ref.model_id}"
            return ResolvedModel(uri, self.local(source, ()), registry=where, source=source)
        record = self.store.find_version(ref)
        return ResolvedModel(
            uri,
            self.first_local(record.locations, (_version_uri(record.name, record.version),), 0),
            registry=where,
            name=record.name,
            version=record.version,
            aliases=record.aliases,
            stage=record.stage,
            source=record.source,
        )

    def first_local(self, locations: list[str], trail: tuple[str, ...], hops: int) -> Path:
        problems = []
        for location in dict.fromkeys(locations):  # in order, each once
            try:
                return self.local(location, trail, hops)
            except _FINAL:
                raise
            except ModelNotFound as exc:
                problems.append(exc.message)
        raise ModelNotFound("; ".join(problems) or f"{self.uri}: the registry has no location for it")

    def local(self, location: str, trail: tuple[str, ...], hops: int = 0) -> Path:
        """Follow `models:/…` and `runs:/…` sources to a directory on this machine."""
        check_text("artifact location from the registry", location)
        scheme = urlparse(location).scheme
        if scheme in ("models", "runs"):
            trail, hops = self.step(location, trail), hops + 1
            if hops > self.max_depth:
                raise RegistryLimitExceeded(
                    f"{self.uri}: its sources point further more than {self.max_depth} times "
                    f"({' -> '.join((*trail[:2], '…', location))}); {ENV_PREFIX}MAX_DEPTH sets this limit"
                )
        if scheme == "models":
            ref = parse_models_uri(location)
            if isinstance(ref, LoggedModelRef):
                return self.local(self.store.logged_model_location(ref.model_id), trail, hops)
            record = self.store.find_version(ref)
            same = _version_uri(record.name, record.version)
            return self.first_local(record.locations, trail if same == location else self.step(same, trail), hops)
        if scheme == "runs":
            run_id, _, path = urlparse(location).path.lstrip("/").partition("/")
            return self.first_local(self.store.run_artifact_location(run_id, path), trail, hops)
        if scheme in ("", "file"):
            path = Path(unquote(urlparse(location).path) if scheme == "file" else location).expanduser()
            if (path / "MLmodel").is_file():
                return path.resolve()
            raise ModelNotFound(f"{self.uri}: no model directory (with an MLmodel file) at {path}")
        return _downloaded(location, self.store, self.uri, self.cache)

    def step(self, location: str, trail: tuple[str, ...]) -> tuple[str, ...]:
        """The trail one source further, unless that closes a cycle."""
        if location in trail:
            chain = " -> ".join((*trail, location))
            raise RegistryLimitExceeded(f"{self.uri}: its sources point back at themselves ({chain})")
        return (*trail, location)


def _version_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


def _downloaded(location: str, store: RegistryBackend, uri: str, cache: ArtifactCache) -> Path:
    """A remote artifact directory, fetched once into the cache."""

    def fetch(destination: Path) -> None:
        if not (store.download(location, destination) or download_cloud(location, destination)):
            raise ModelNotFound(
                f"{uri}: its artifacts are at {location!r}, which the registry {redact_uri(store.uri)} cannot "
                "download; use a registry that can (an MLflow tracking server for "
                "mlflow-artifacts:/), or install the extra for that artifact store"
            )
        if not (destination / "MLmodel").is_file():
            raise ModelNotFound(f"{uri}: {location!r} holds no MLmodel file")

    # Keyed without credentials: they must not reach a file name, hashed or not.
    key = cache_key(redact_uri(store.uri) or "", redact_uri(location) or "")
    return cache.get_or_fetch(key, fetch)
