"""Downloaded model versions, cached so restarts and other workers do not fetch them again.

An entry is written into a temporary directory beside its final place, marked complete, then
renamed into place: concurrent processes never see a half-written model, and an entry without
the marker (a crash mid-download) is removed and fetched again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

COMPLETE_MARKER = ".sigserve-complete"


def cache_key(*parts: str) -> str:
    """A readable, filesystem-safe key: the last part spelled out, the whole hashed."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in parts[-1])[:60]
    return f"{readable}-{digest}"


class ArtifactCache:
    def __init__(self, root: Path) -> None:
        """`root` as configured (`SourceSettings.cache_dir`); `~` is expanded only here, when a
        download needs it, so a process without a home directory can serve local models."""
        self.root = root.expanduser()

    def get_or_fetch(self, key: str, fetch: Callable[[Path], None]) -> Path:
        """The complete entry for `key`, fetching it with `fetch(temporary_dir)` if needed."""
        entry = self.root / key
        if (entry / COMPLETE_MARKER).is_file():
            return entry
        self.root.mkdir(parents=True, exist_ok=True)
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)  # a partial entry from a crashed fetch
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            fetch(staging)
            (staging / COMPLETE_MARKER).touch()
            try:
                os.rename(staging, entry)
            except OSError:
                if not (entry / COMPLETE_MARKER).is_file():  # not another process's finished copy
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return entry
