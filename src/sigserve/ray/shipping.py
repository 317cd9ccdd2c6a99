"""A model directory shipped to Ray's workers through the object store: resolved and packed once
on the driver, unpacked once per actor, so no worker needs the driver's disk or the registry."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigserve.batch.packing import pack_model
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve

ROOT = "model"  # the directory's name inside the archive


@dataclass(frozen=True)
class ShippedModel:
    """The packed directory in Ray's object store (an `ObjectRef` to the archive's bytes): cheap to
    pickle into `fn_constructor_kwargs`, fetched by each actor from the nearest node that has it."""

    packed: Any
    uri: str

    def unpack(self) -> tempfile.TemporaryDirectory[str]:
        """The directory in a temporary folder of this process, removed when the folder is."""
        import ray

        folder = tempfile.TemporaryDirectory(prefix="sigserve-model-")
        with tarfile.open(fileobj=io.BytesIO(ray.get(self.packed)), mode="r") as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(folder.name, filter="data")
            else:  # Python before 3.10.12 / 3.11.4: the archive is our own
                archive.extractall(folder.name)  # noqa: S202
        return folder


def model_path(folder: tempfile.TemporaryDirectory[str]) -> Path:
    return Path(folder.name) / ROOT


def ship_model(model_uri: str | os.PathLike[str], registry_uri: str | None = None) -> ShippedModel:
    """Resolve a model URI here (as `sigserve serve -m` resolves it) and put the directory in the
    object store of the Ray this process is connected to."""
    resolved = resolve(str(model_uri), SourceSettings.from_env(registry_uri=registry_uri))
    return ship_directory(resolved.path, str(model_uri))


def ship_directory(model_dir: str | os.PathLike[str], uri: str | None = None) -> ShippedModel:
    import ray

    return ShippedModel(ray.put(pack(model_dir)), uri or str(model_dir))


def pack(model_dir: str | os.PathLike[str]) -> bytes:
    buffer = io.BytesIO()
    pack_model(model_dir, buffer, ROOT)
    return buffer.getvalue()
