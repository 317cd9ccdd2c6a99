"""Cloud artifact stores (s3://, gs://, wasbs://, abfss://) through fsspec, an optional extra."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from sigserve.errors import ModelNotFound

EXTRA = "pip install 'sigserve[cloud]'"
FILESYSTEMS = {"s3": "s3fs", "gs": "gcsfs", "wasbs": "adlfs", "abfss": "adlfs", "memory": None}


def download_cloud(location: str, destination: Path) -> bool:
    """Copy the directory at `location` into `destination`; False for schemes not handled here."""
    scheme = urlparse(location).scheme
    if scheme not in FILESYSTEMS:
        return False
    try:
        import fsspec

        filesystem = fsspec.filesystem(scheme)
    except ImportError as exc:
        package = FILESYSTEMS[scheme] or "fsspec"
        raise ModelNotFound(
            f"The model's artifacts are at {location!r}; reading {scheme}:// needs {package} "
            f"({exc.name} is missing): {EXTRA}"
        ) from None
    remote = location.rstrip("/")
    try:
        for path in filesystem.find(remote):
            relative = path[len(filesystem._strip_protocol(remote)):].lstrip("/")
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            filesystem.get_file(path, str(target))
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"Cannot download {location!r}: {exc}") from None
    return True
