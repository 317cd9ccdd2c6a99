"""Versions whose artifacts live in a cloud store: fetched through fsspec into the cache, or a
one-line error naming the extra to install."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from sigserve.demo import DEMO_MODEL_DIR
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve

BLOCK_FSSPEC = "import sys; sys.modules['fsspec'] = None; from sigserve.cli import main; sys.exit(main(sys.argv[1:]))"


def registry_with_location(root: Path, location: str) -> str:
    """The registry tables sigserve reads, as MLflow 2.x lays them out, holding one version."""
    db = root / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE registered_models (name TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE model_versions (name TEXT, version INTEGER, source TEXT, "
                     "storage_location TEXT, run_id TEXT, current_stage TEXT)")
        conn.execute("CREATE TABLE registered_model_aliases (alias TEXT, version INTEGER, name TEXT)")
        conn.execute("INSERT INTO registered_models VALUES ('iris')")
        conn.execute("INSERT INTO model_versions VALUES ('iris', 1, ?, ?, NULL, 'None')", (location, location))
        conn.execute("INSERT INTO registered_model_aliases VALUES ('champion', 1, 'iris')")
    return f"sqlite:///{db}"


def test_a_cloud_location_is_downloaded_into_the_cache(tmp_path: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    for path in DEMO_MODEL_DIR.rglob("*"):
        if path.is_file():
            memory.pipe(f"memory://bucket/iris/{path.relative_to(DEMO_MODEL_DIR)}", path.read_bytes())
    registry = registry_with_location(tmp_path, "memory://bucket/iris")
    resolved = resolve("models:/iris@champion", SourceSettings(registry_uri=registry, cache_dir=tmp_path / "cache"))
    assert resolved.version == "1"
    assert resolved.path.parent == tmp_path / "cache"
    assert (resolved.path / "MLmodel").read_bytes() == (DEMO_MODEL_DIR / "MLmodel").read_bytes()
    assert (resolved.path / "code" / "sigserve_demo_model.py").is_file()


def test_a_cloud_location_without_the_extra_names_it(tmp_path: Path) -> None:
    registry = registry_with_location(tmp_path, "s3://bucket/iris")
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_FSSPEC, "info", "-m", "models:/iris/1", "--registry-uri", registry,
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    error = result.stderr.strip()
    assert "sigserve[cloud]" in error and "s3://bucket/iris" in error and len(error.splitlines()) == 1
