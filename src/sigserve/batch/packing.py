"""A model directory as one tar, for engines that ship it to their workers (Spark's archives,
Ray's object store)."""

from __future__ import annotations

import os
import tarfile
from typing import BinaryIO


def pack_model(model_dir: str | os.PathLike[str], fileobj: BinaryIO, root: str = "") -> None:
    """Uncompressed (models are mostly incompressible numbers); links stored as the files they
    name, since a registry's cache may link to files the workers do not have. `root`: the folder
    the files are under in the archive ("" for none)."""
    with tarfile.open(fileobj=fileobj, mode="w", dereference=True) as archive:
        for entry in sorted(os.listdir(model_dir)):
            archive.add(os.path.join(model_dir, entry), arcname=f"{root}/{entry}" if root else entry)
