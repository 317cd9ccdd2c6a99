"""`models:/…` and `runs:/…` to a local model directory, through the registry's database."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from sigserve.errors import ModelNotFound
from sigserve.model.resolved import ResolvedModel
from sigserve.registry.backend import RegistryBackend
from sigserve.registry.cache import ArtifactCache, cache_key
from sigserve.registry.cloud import download_cloud
from sigserve.registry.file_store import FileStoreRegistry
from sigserve.registry.location import registry_uri
from sigserve.registry.sqlite_store import SqliteRegistry
from sigserve.registry.uri import LoggedModelRef, parse_models_uri

_MAX_INDIRECTIONS = 4


def resolve_registry_uri(uri: str, registry: str | None = None) -> ResolvedModel:
    """Each call opens the registry and closes it after: a server polling every few seconds
    must not leave a connection or client behind per poll."""
    where = registry_uri(registry)
    store = _open(where)
    try:
        return _resolve_in(uri, where, store)
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def _resolve_in(uri: str, where: str, store: RegistryBackend) -> ResolvedModel:
    if uri.startswith("runs:"):
        return ResolvedModel(uri, _local(uri, store, uri), registry=where, source=uri)
    ref = parse_models_uri(uri)
    if isinstance(ref, LoggedModelRef):
        source = f"models:/{ref.model_id}"
        return ResolvedModel(uri, _local(source, store, uri), registry=where, source=source)
    record = store.find_version(ref)
    return ResolvedModel(
        uri,
        _first_local(record.locations, store, uri),
        registry=where,
        name=record.name,
        version=record.version,
        aliases=record.aliases,
        stage=record.stage,
        source=record.source,
    )


def _open(where: str) -> RegistryBackend:
    scheme = urlparse(where).scheme
    if scheme == "sqlite":
        return SqliteRegistry(where)
    if scheme in ("", "file"):
        return FileStoreRegistry(where)
    if scheme in ("http", "https"):
        from sigserve.registry.rest_store import RestRegistry

        return RestRegistry(where)
    raise ModelNotFound(
        f"Registry {where!r}: unsupported; use an MLflow SQLite database (sqlite:///…), an MLflow "
        "tracking server (http[s]://…) or an MLflow file store directory"
    )


def _first_local(locations: list[str], store: RegistryBackend, uri: str) -> Path:
    problems = []
    for location in dict.fromkeys(locations):  # in order, each once
        try:
            return _local(location, store, uri)
        except ModelNotFound as exc:
            problems.append(exc.message)
    raise ModelNotFound("; ".join(problems) or f"{uri}: the registry has no location for it")


def _local(location: str, store: RegistryBackend, uri: str, depth: int = 0) -> Path:
    """Follow `models:/m-…` and `runs:/…` sources to a directory on this machine."""
    if depth > _MAX_INDIRECTIONS:
        raise ModelNotFound(f"{uri}: too many indirections resolving {location!r}")
    scheme = urlparse(location).scheme
    if scheme == "models":
        ref = parse_models_uri(location)
        if isinstance(ref, LoggedModelRef):
            return _local(store.logged_model_location(ref.model_id), store, uri, depth + 1)
        return _first_local(store.find_version(ref).locations, store, uri)
    if scheme == "runs":
        run_id, _, path = urlparse(location).path.lstrip("/").partition("/")
        return _first_local(store.run_artifact_location(run_id, path), store, uri)
    if scheme in ("", "file"):
        path = Path(unquote(urlparse(location).path) if scheme == "file" else location).expanduser()
        if (path / "MLmodel").is_file():
            return path.resolve()
        raise ModelNotFound(f"{uri}: no model directory (with an MLmodel file) at {path}")
    return _downloaded(location, store, uri)


def _downloaded(location: str, store: RegistryBackend, uri: str) -> Path:
    """A remote artifact directory, fetched once into the cache."""

    def fetch(destination: Path) -> None:
        if not (store.download(location, destination) or download_cloud(location, destination)):
            raise ModelNotFound(
                f"{uri}: its artifacts are at {location!r}, which the registry {store.uri} cannot "
                "download; use a registry that can (an MLflow tracking server for "
                "mlflow-artifacts:/), or install the extra for that artifact store"
            )
        if not (destination / "MLmodel").is_file():
            raise ModelNotFound(f"{uri}: {location!r} holds no MLmodel file")

    return ArtifactCache().get_or_fetch(cache_key(store.uri, location), fetch)
