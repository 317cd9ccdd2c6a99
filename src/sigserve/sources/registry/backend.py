"""What every registry backend answers (SQLite, REST, file store), and the records it returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sigserve.errors import ModelNotFound, UnsafeRegistryValue
from sigserve.sources.resolved import check_text
from sigserve.sources.registry.uri import RegisteredModelRef


def unknown_model(name: str, where: str) -> ModelNotFound:
    """The same words from every backend: what was asked, where, and what to do."""
    return ModelNotFound(
        f"No registered model named {name!r} {where}; check the name, or point "
        "--registry-uri (or MLFLOW_TRACKING_URI) at the registry that holds it"
    )


@dataclass(frozen=True)
class VersionRecord:
    name: str
    version: str
    source: str
    storage_location: str | None
    run_id: str | None
    stage: str
    aliases: tuple[str, ...]

    def __post_init__(self) -> None:
        """Checked before anything is downloaded, logged or sent as a header."""
        for what, value in (("model name", self.name), ("model version", self.version), ("source", self.source),
                            ("storage location", self.storage_location), ("run id", self.run_id),
                            ("stage", self.stage), *(("alias", alias) for alias in self.aliases)):
            check_text(f"{what} from the registry", value)
        if not self.version.isascii() or not self.version.isdigit():
            raise UnsafeRegistryValue(
                f"Refusing the model version {self.version!r} from the registry: not a version number"
            )

    @property
    def locations(self) -> list[str]:
        """Where the artifacts may be, best first: MLflow 3 records a storage location."""
        return [location for location in (self.storage_location, self.source) if location]


class RegistryBackend(Protocol):
    uri: str

    def find_version(self, ref: RegisteredModelRef) -> VersionRecord:
        """The version a ref names; ModelNotFound naming what was asked and where."""

    def logged_model_location(self, model_id: str) -> str:
        """Artifact location of an MLflow 3 logged model (`models:/m-<id>`)."""

    def run_artifact_location(self, run_id: str, path: str) -> list[str]:
        """Candidate locations of `runs:/<run_id>/<path>`, best first."""

    def download(self, location: str, destination: Path) -> bool:
        """Copy a non-local artifact directory into `destination`; False if the backend cannot
        reach that kind of location (the caller then says so)."""
