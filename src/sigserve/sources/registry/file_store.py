"""MLflow's file store (`mlruns/`): `models/<name>/version-N/meta.yaml`, aliases, logged models
and runs under `<experiment id>/`. Read-only, without MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from sigserve.errors import ModelNotFound
from sigserve.sources.registry.backend import VersionRecord, unknown_model
from sigserve.sources.registry.uri import RegisteredModelRef

DELETED_STAGE = "Deleted_Internal"


def file_store_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path) if uri.startswith("file:") else uri).expanduser().resolve()


class FileStoreRegistry:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.root = file_store_path(uri)
        if not self.root.is_dir():
            raise ModelNotFound(
                f"No MLflow file store at {self.root} (registry {uri}); set MLFLOW_TRACKING_URI or "
                "--registry-uri to where your models are registered"
            )

    def find_version(self, ref: RegisteredModelRef) -> VersionRecord:
        model_dir = self.root / "models" / ref.name
        if not (model_dir / "meta.yaml").is_file():
            raise unknown_model(ref.name, f"in {self.root}")
        aliases = {str(alias): str(version) for alias, version in (_read(model_dir / "meta.yaml").get("aliases") or {}).items()}
        version = self._version_number(ref, model_dir, aliases)
        meta_file = model_dir / f"version-{version}" / "meta.yaml"
        meta = _read(meta_file) if meta_file.is_file() else None
        if meta is None or meta.get("current_stage") == DELETED_STAGE:
            raise ModelNotFound(f"Model {ref.name!r} has no version {version} in {self.root}")
        return VersionRecord(
            name=ref.name,
            version=str(meta["version"]),
            source=meta.get("source") or "",
            storage_location=meta.get("storage_location"),
            run_id=meta.get("run_id"),
            stage=str(meta.get("current_stage") or "None"),
            aliases=tuple(sorted(alias for alias, v in aliases.items() if v == str(version))),
        )

    def _version_number(self, ref: RegisteredModelRef, model_dir: Path, aliases: dict[str, str]) -> int:
        if ref.version is not None:
            return int(ref.version)
        if ref.alias is not None:
            if ref.alias not in aliases:
                raise ModelNotFound(f"Model {ref.name!r} has no alias @{ref.alias} in {self.root}")
            return int(aliases[ref.alias])
        versions = []
        for meta_file in model_dir.glob("version-*/meta.yaml"):
            meta = _read(meta_file)
            stage = str(meta.get("current_stage") or "None")
            if stage == DELETED_STAGE or (ref.stage is not None and stage.lower() != ref.stage.lower()):
                continue
            versions.append(int(meta["version"]))
        if not versions:
            in_stage = f" in stage {ref.stage!r}" if ref.stage else ""
            raise ModelNotFound(f"No versions of model {ref.name!r}{in_stage} in {self.root}")
        return max(versions)

    def logged_model_location(self, model_id: str) -> str:
        for meta_file in self.root.glob(f"*/models/{model_id}/meta.yaml"):
            return str(_read(meta_file)["artifact_location"])
        raise ModelNotFound(f"No logged model {model_id!r} in {self.root}")

    def run_artifact_location(self, run_id: str, path: str) -> list[str]:
        runs = list(self.root.glob(f"*/{run_id}/meta.yaml"))
        if not runs:
            raise ModelNotFound(f"No run {run_id!r} in {self.root}")
        artifact_uri = str(_read(runs[0])["artifact_uri"]).rstrip("/")
        candidates = [f"{artifact_uri}/{path}" if path else artifact_uri]
        name = path.split("/")[0]
        for meta_file in self.root.glob("*/models/m-*/meta.yaml"):
            meta = _read(meta_file)
            if meta.get("source_run_id") == run_id and meta.get("name") == name:
                candidates.append(str(meta["artifact_location"]))
        return candidates

    def download(self, location: str, destination: Path) -> bool:
        return False  # the file store keeps artifacts on this machine or in a remote store


def _read(meta_file: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(meta_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelNotFound(f"Cannot read {meta_file}: {exc}") from None
    if not isinstance(document, dict):
        raise ModelNotFound(f"{meta_file} is not an MLflow meta.yaml")
    return document
