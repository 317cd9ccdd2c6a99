"""MLflow's SQLite tracking/registry database, read directly and read-only.

Opened with `mode=ro`, so a running MLflow is never locked out; works on MLflow 2.x databases
(no `workspace` column) and 3.x ones.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from sigserve.errors import ModelNotFound
from sigserve.sources.registry.backend import VersionRecord, unknown_model
from sigserve.sources.registry.uri import RegisteredModelRef

WORKSPACE = "default"


def sqlite_path(uri: str) -> Path:
    """`sqlite:///relative.db` is relative to the working directory, `sqlite:////abs.db` absolute."""
    return Path(unquote(urlparse(uri).path)[1:])


class SqliteRegistry:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.path = sqlite_path(uri).expanduser().resolve()
        if not self.path.is_file():
            raise ModelNotFound(
                f"No MLflow database at {self.path} (registry {uri}); set MLFLOW_TRACKING_URI or "
                "--registry-uri to where your models are registered"
            )
        try:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise ModelNotFound(f"Cannot read the MLflow database {self.path}: {exc}") from None
        self.tables = tables
        if "model_versions" not in tables:
            raise ModelNotFound(f"{self.path} is not an MLflow database with a model registry")
        self.has_workspace = "workspace" in self._columns("model_versions")

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def _scope(self, table: str = "") -> tuple[str, tuple[str, ...]]:
        prefix = f"{table}." if table else ""
        return (f" AND {prefix}workspace = ?", (WORKSPACE,)) if self.has_workspace else ("", ())

    def close(self) -> None:
        self.db.close()

    def find_version(self, ref: RegisteredModelRef) -> VersionRecord:
        scope, scope_args = self._scope()
        if not self.db.execute(f"SELECT 1 FROM registered_models WHERE name = ?{scope}", (ref.name, *scope_args)).fetchone():
            raise unknown_model(ref.name, f"in {self.path}")
        version = self._version_number(ref, scope, scope_args)
        row = self.db.execute(
            "SELECT name, version, source, storage_location, run_id, current_stage FROM model_versions"
            f" WHERE name = ? AND version = ?{scope}",
            (ref.name, version, *scope_args),
        ).fetchone()
        if row is None:
            raise ModelNotFound(f"Model {ref.name!r} has no version {version} in {self.path}")
        aliases = tuple(
            alias for (alias,) in self.db.execute(
                f"SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?{scope} ORDER BY alias",
                (ref.name, version, *scope_args),
            )
        )
        return VersionRecord(row[0], str(row[1]), row[2], row[3], row[4], row[5] or "None", aliases)

    def _version_number(self, ref: RegisteredModelRef, scope: str, scope_args: tuple[str, ...]) -> int:
        if ref.version is not None:
            return int(ref.version)
        if ref.alias is not None:
            row = self.db.execute(
                f"SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?{scope}",
                (ref.name, ref.alias, *scope_args),
            ).fetchone()
            if row is None:
                raise ModelNotFound(f"Model {ref.name!r} has no alias @{ref.alias} in {self.path}")
            return int(row[0])
        stage_filter, stage_args = ("", ())
        if ref.stage is not None:
            stage_filter, stage_args = " AND lower(current_stage) = lower(?)", (ref.stage,)
        row = self.db.execute(
            f"SELECT max(version) FROM model_versions WHERE name = ?{stage_filter}{scope}"
            " AND current_stage != 'Deleted_Internal'",
            (ref.name, *stage_args, *scope_args),
        ).fetchone()
        if row is None or row[0] is None:
            raise ModelNotFound(f"No versions of model {ref.name!r}{_in_stage(ref)} in {self.path}")
        return int(row[0])

    def logged_model_location(self, model_id: str) -> str:
        row = self.db.execute("SELECT artifact_location FROM logged_models WHERE model_id = ?", (model_id,)).fetchone()
        if row is None:
            raise ModelNotFound(f"No logged model {model_id!r} in {self.path}")
        return row[0]

    def run_artifact_location(self, run_id: str, path: str) -> list[str]:
        """Where `runs:/<run_id>/<path>` may live: under the run's artifacts, or (MLflow 3) a
        logged model of that name from that run."""
        run = self.db.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if run is None:
            raise ModelNotFound(f"No run {run_id!r} in {self.path}")
        candidates = [f"{run[0].rstrip('/')}/{path}" if path else run[0]]
        if "logged_models" in self.tables:
            candidates += [
                location for (location,) in self.db.execute(
                    "SELECT artifact_location FROM logged_models WHERE source_run_id = ? AND name = ?"
                    " ORDER BY creation_timestamp_ms DESC",
                    (run_id, path.split("/")[0]),
                )
            ]
        return candidates


    def download(self, location: str, destination: Path) -> bool:
        return False  # a database holds no artifacts; remote ones need the tracking server


def _in_stage(ref: RegisteredModelRef) -> str:
    return f" in stage {ref.stage!r}" if ref.stage else ""
