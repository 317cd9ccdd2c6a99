"""An embedded model registry: register models and set aliases without MLflow.

Writes a SQLite database with MLflow 3.17's registry tables (`registered_models`,
`model_versions`, `registered_model_aliases`, `registered_model_tags`, `model_version_tags`), which
sigserve's read-only `SqliteRegistry` and MLflow's own client then read. A database MLflow created
is written in place (its tables, its `workspace` column or the lack of it in 2.x databases); an
empty or new one gets exactly those five tables, with MLflow's DDL.

Each registered version is a copy of the model directory under `<db dir>/sigserve-artifacts/
<name>/<version>/`: copied into a staging directory first (no lock held), then the version number
is taken and the row inserted under one `BEGIN IMMEDIATE` transaction, inside which the staged copy
is renamed into place. A version therefore never points at a half-written directory, two processes
never get the same number, and a later change to the source directory does not reach the copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sigserve.errors import ModelLoadError, ModelNotFound, SigserveError
from sigserve.model.mlmodel import read_mlmodel
from sigserve.sources.resolved import has_control
from sigserve.sources.registry.sqlite_store import WORKSPACE, sqlite_path

ARTIFACT_DIR = "sigserve-artifacts"
_STAGING_DIR = ".incoming"
_STALE_STAGING_SECONDS = 24 * 3600
STAGE_NONE = "None"
STAGE_DELETED = "Deleted_Internal"
STATUS_READY = "READY"

# MLflow's limits and rules (mlflow.utils.validation, 3.17), matched whole: MLflow's own `$` also
# matches before a final newline, so it takes "champ\n", which would break headers and log lines.
_ALIAS_RE = re.compile(r"[\w\-]+")
_VERSION_ALIAS_RE = re.compile(r"[vV]\d+")
_MAX_NAME = 256
_MAX_ALIAS = 255
_MAX_TAG_KEY = 250
_MAX_TAG_VALUE = 100_000
_MAX_DESCRIPTION = 5000
_CLEAN_DIR_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")

REGISTRY_TABLES = ("registered_models", "model_versions", "registered_model_aliases",
                   "registered_model_tags", "model_version_tags")


class RegistryError(SigserveError):
    """A registry write that cannot be done as asked (bad name, alias, tag, database)."""

    status_code = 400
    error_code = "INVALID_PARAMETER_VALUE"


class EmbeddedRegistry:
    """Read-write access to a registry in a SQLite database, laid out as MLflow lays it out."""

    def __init__(self, registry_uri: str, busy_timeout: float = 60.0) -> None:
        parsed = urlparse(registry_uri)
        if parsed.scheme != "sqlite":
            raise RegistryError(
                f"Registry {registry_uri!r}: sigserve registers models in SQLite databases only "
                "(sqlite:///path.db); use MLflow's client for other registries"
            )
        relative = sqlite_path(registry_uri)
        if not str(relative) or str(relative) in (".", ":memory:"):
            raise RegistryError(f"Registry {registry_uri!r} names no database file; use sqlite:///path.db")
        self.uri = registry_uri
        self.path = relative.expanduser().resolve()
        self.artifact_root = self.path.parent / ARTIFACT_DIR
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self.has_workspace = True

    # -- connection and schema ---------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.is_file()

    def _connect(self, create: bool) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if not self.path.exists():
            if not create:
                raise ModelNotFound(f"No registry database at {self.path} (registry {self.uri})")
            if not self.path.parent.is_dir():
                raise RegistryError(f"Cannot create the registry database {self.path}: no directory {self.path.parent}")
        mode = "rwc" if create else "rw"
        try:
            db = sqlite3.connect(f"{self.path.as_uri()}?mode={mode}", uri=True,
                                 timeout=self.busy_timeout, isolation_level=None)
            db.execute("PRAGMA foreign_keys = ON")
            self._db = db
            self._prepare_schema(create)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise RegistryError(f"Cannot use the registry database {self.path}: {exc}") from None
        except BaseException:
            self.close()
            raise
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> EmbeddedRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tables(self) -> set[str]:
        assert self._db is not None
        return {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _prepare_schema(self, create: bool) -> None:
        tables = self._tables()
        if not set(REGISTRY_TABLES) <= tables:
            if "model_versions" in tables or not create:
                self._check_schema(tables)  # MLflow's (or another) database: never add to it
            else:
                self._create_schema()
        self.has_workspace = "workspace" in self._columns("model_versions")

    def _check_schema(self, tables: set[str]) -> None:
        if "model_versions" not in tables or "registered_models" not in tables:
            what = "is empty" if not tables else "is not an MLflow database with a model registry"
            raise ModelNotFound(f"{self.path} {what} (registry {self.uri})")

    def _create_schema(self) -> None:
        """MLflow's whole schema, stamped at its alembic head: MLflow can open this file later."""
        with self._write() as db:
            tables = self._tables()  # again, under the lock: another process may have just made them
            if "model_versions" in tables:
                return
            if tables:
                others = ", ".join(sorted(tables)[:5])
                raise RegistryError(
                    f"{self.path} is a SQLite database but not an MLflow registry (it has tables {others}); "
                    "choose another file with --registry-uri"
                )
            schema = json.loads(resources.files("sigserve.admin").joinpath("mlflow_schema.json").read_text())
            for statement in schema["statements"]:
                db.execute(statement)
            db.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (schema["alembic_head"],))

    def _columns(self, table: str) -> set[str]:
        assert self._db is not None
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (`BEGIN IMMEDIATE`), waiting out other writers."""
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _scope(self) -> tuple[str, tuple[str, ...]]:
        return (" AND workspace = ?", (WORKSPACE,)) if self.has_workspace else ("", ())

    def _ws(self) -> tuple[str, str, tuple[str, ...]]:
        """Extra column list, placeholder and value for inserts."""
        return (", workspace", ", ?", (WORKSPACE,)) if self.has_workspace else ("", "", ())

    # -- writes ---------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        alias: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
    ) -> int:
        """Copy the model directory into the registry's artifact root as a new version; its number."""
        tags = dict(tags or {})
        _check_name(name)
        if alias is not None:
            _check_alias(alias)
        for key, value in tags.items():
            _check_tag(key, value)
        if description is not None and len(description) > _MAX_DESCRIPTION:
            raise RegistryError(f"Description is {len(description)} characters; at most {_MAX_DESCRIPTION}")
        source = Path(path).expanduser()
        if not source.is_dir():
            raise ModelLoadError(f"{source} is not a directory: not an MLflow-format model directory")
        _check_contents(source)
        read_mlmodel(source)
        db = self._connect(create=True)

        staging_root = self.artifact_root / _STAGING_DIR
        staging_root.mkdir(parents=True, exist_ok=True)
        _sweep_stale(staging_root)
        staging = staging_root / uuid.uuid4().hex
        placed: Path | None = None
        try:
            try:
                shutil.copytree(source, staging, symlinks=False)
            except (OSError, shutil.Error) as exc:
                raise RegistryError(f"Cannot copy {source} into {staging_root}: {_one_line(exc)}") from None
            read_mlmodel(staging)  # what was copied is still a model
            _make_read_only(staging)
            scope, scope_args = self._scope()
            ws_col, ws_val, ws_args = self._ws()
            with self._write():
                now = _now_ms()
                known = db.execute(
                    f"SELECT 1 FROM registered_models WHERE name = ?{scope}", (name, *scope_args)
                ).fetchone()
                if known:
                    db.execute(f"UPDATE registered_models SET last_updated_time = ? WHERE name = ?{scope}",
                               (now, name, *scope_args))
                else:
                    db.execute(
                        f"INSERT INTO registered_models (name, creation_time, last_updated_time, description{ws_col})"
                        f" VALUES (?, ?, ?, NULL{ws_val})",
                        (name, now, now, *ws_args),
                    )
                (latest,) = db.execute(
                    f"SELECT max(version) FROM model_versions WHERE name = ?{scope}", (name, *scope_args)
                ).fetchone()
                version = int(latest or 0) + 1
                target = self.artifact_root / artifact_dir_name(name) / str(version)
                self._clear_unregistered(target, staging_root)
                db.execute(
                    "INSERT INTO model_versions (name, version, creation_time, last_updated_time, description,"
                    " user_id, current_stage, source, run_id, status, status_message, run_link,"
                    f" storage_location{ws_col})"
                    f" VALUES (?, ?, ?, ?, ?, NULL, ?, ?, NULL, ?, NULL, NULL, ?{ws_val})",
                    (name, version, now, now, description, STAGE_NONE, str(target), STATUS_READY,
                     str(target), *ws_args),
                )
                for key, value in tags.items():
                    db.execute(
                        f"INSERT INTO model_version_tags (key, value, name, version{ws_col})"
                        f" VALUES (?, ?, ?, ?{ws_val})",
                        (key, value, name, version, *ws_args),
                    )
                if alias is not None:
                    self._put_alias(name, alias, version)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staging, target)
                placed = target
        except BaseException:
            if placed is not None:  # renamed, then the commit failed: the version does not exist
                shutil.rmtree(placed, ignore_errors=True)
            raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return version

    def _clear_unregistered(self, target: Path, staging_root: Path) -> None:
        """A directory left at `target` by a process killed between its rename and its commit."""
        if not target.exists():
            return
        assert self._db is not None
        if self._db.execute(
            "SELECT 1 FROM model_versions WHERE source = ? OR storage_location = ?", (str(target), str(target))
        ).fetchone():
            raise RegistryError(f"{target} already holds a registered version; not overwriting it")
        stale = staging_root / f"stale-{uuid.uuid4().hex}"
        os.rename(target, stale)
        shutil.rmtree(stale, ignore_errors=True)

    def set_alias(self, name: str, alias: str, version: int | str) -> int | None:
        """Point `alias` at `version` (moving it if set); the version it pointed at before, if any."""
        _check_alias(alias)
        number = _version_number(version)
        db = self._connect(create=False)
        scope, scope_args = self._scope()
        with self._write():
            self._require_model(name)
            row = db.execute(
                f"SELECT current_stage FROM model_versions WHERE name = ? AND version = ?{scope}",
                (name, number, *scope_args),
            ).fetchone()
            if row is None or row[0] == STAGE_DELETED:
                raise ModelNotFound(f"Model {name!r} has no version {number} in {self.path}")
            previous = self._alias_version(name, alias)
            self._put_alias(name, alias, number)
            db.execute(f"UPDATE registered_models SET last_updated_time = ? WHERE name = ?{scope}",
                       (_now_ms(), name, *scope_args))
        return previous

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove an alias; the version it pointed at."""
        db = self._connect(create=False)
        scope, scope_args = self._scope()
        with self._write():
            self._require_model(name)
            previous = self._alias_version(name, alias)
            if previous is None:
                raise ModelNotFound(f"Model {name!r} has no alias @{alias} in {self.path}")
            db.execute(f"DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?{scope}",
                       (name, alias, *scope_args))
            db.execute(f"UPDATE registered_models SET last_updated_time = ? WHERE name = ?{scope}",
                       (_now_ms(), name, *scope_args))
        return previous

    def _put_alias(self, name: str, alias: str, version: int) -> None:
        assert self._db is not None
        ws_col, ws_val, ws_args = self._ws()
        self._db.execute(
            f"INSERT OR REPLACE INTO registered_model_aliases (alias, version, name{ws_col})"
            f" VALUES (?, ?, ?{ws_val})",
            (alias, version, name, *ws_args),
        )

    # -- reads ----------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model: name, latest version, aliases (alias → version)."""
        if not self.exists():
            return []
        db = self._connect(create=False)
        scope, scope_args = self._scope()
        models = []
        for (name,) in db.execute(f"SELECT name FROM registered_models WHERE 1 = 1{scope} ORDER BY name",
                                  scope_args).fetchall():
            (latest,) = db.execute(
                f"SELECT max(version) FROM model_versions WHERE name = ? AND current_stage != ?{scope}",
                (name, STAGE_DELETED, *scope_args),
            ).fetchone()
            models.append({
                "name": name,
                "latest_version": str(latest) if latest is not None else None,
                "aliases": self._aliases(name),
            })
        return models

    def show(self, name: str) -> dict[str, Any]:
        """A model with its description, tags, aliases and every version."""
        db = self._connect(create=False)
        scope, scope_args = self._scope()
        row = db.execute(
            f"SELECT name, creation_time, last_updated_time, description FROM registered_models WHERE name = ?{scope}",
            (name, *scope_args),
        ).fetchone()
        if row is None:
            raise ModelNotFound(f"No registered model named {name!r} in {self.path}")
        aliases = self._aliases(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        versions = []
        for (number, source, storage, stage, status, run_id, created, updated, description) in db.execute(
            "SELECT version, source, storage_location, current_stage, status, run_id, creation_time,"
            f" last_updated_time, description FROM model_versions WHERE name = ? AND current_stage != ?{scope}"
            " ORDER BY version",
            (name, STAGE_DELETED, *scope_args),
        ).fetchall():
            versions.append({
                "version": str(number),
                "source": source,
                "storage_location": storage,
                "stage": stage or STAGE_NONE,
                "status": status,
                "run_id": run_id,
                "creation_time": created,
                "last_updated_time": updated,
                "description": description,
                "aliases": sorted(by_version.get(str(number), [])),
                "tags": self._tags("model_version_tags", name, number),
            })
        return {
            "name": row[0],
            "creation_time": row[1],
            "last_updated_time": row[2],
            "description": row[3],
            "tags": self._tags("registered_model_tags", name),
            "aliases": aliases,
            "versions": versions,
        }

    def _require_model(self, name: str) -> None:
        assert self._db is not None
        scope, scope_args = self._scope()
        query = f"SELECT 1 FROM registered_models WHERE name = ?{scope}"
        if not self._db.execute(query, (name, *scope_args)).fetchone():
            raise ModelNotFound(f"No registered model named {name!r} in {self.path}")

    def _alias_version(self, name: str, alias: str) -> int | None:
        assert self._db is not None
        scope, scope_args = self._scope()
        row = self._db.execute(
            f"SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?{scope}",
            (name, alias, *scope_args),
        ).fetchone()
        return None if row is None else int(row[0])

    def _aliases(self, name: str) -> dict[str, str]:
        assert self._db is not None
        if "registered_model_aliases" not in self._tables():
            return {}  # MLflow < 2.3
        scope, scope_args = self._scope()
        return {
            alias: str(version) for alias, version in self._db.execute(
                f"SELECT alias, version FROM registered_model_aliases WHERE name = ?{scope} ORDER BY alias",
                (name, *scope_args),
            )
        }

    def _tags(self, table: str, name: str, version: int | None = None) -> dict[str, str]:
        assert self._db is not None
        scope, scope_args = self._scope()
        if version is None:
            rows = self._db.execute(f"SELECT key, value FROM {table} WHERE name = ?{scope} ORDER BY key",
                                    (name, *scope_args))
        else:
            rows = self._db.execute(
                f"SELECT key, value FROM {table} WHERE name = ? AND version = ?{scope} ORDER BY key",
                (name, version, *scope_args),
            )
        return dict(rows.fetchall())


def artifact_dir_name(name: str) -> str:
    """A directory name per model name: the name itself when plainly safe (lower-case letters,
    digits, `._-`), else a slug plus a hash of the name, so distinct names never share a directory,
    not even on a case-insensitive file system."""
    if _CLEAN_DIR_NAME.fullmatch(name) and not name.endswith("."):
        return name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:80] or "model"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _check_name(name: str) -> None:
    if not name or not name.strip():
        raise RegistryError("A model name is required")
    if "/" in name or ":" in name:
        raise RegistryError(f"Invalid model name {name!r}: names cannot contain '/' or ':'")
    if has_control(name):
        raise RegistryError(f"Invalid model name {name!r}: names cannot contain control characters (CR, LF, …)")
    normal = posixpath.normpath(name)
    if normal != name or normal == "." or normal.startswith(".."):
        raise RegistryError(f"Invalid model name {name!r}: it would resolve to {normal!r} as a path")
    if len(name) > _MAX_NAME:
        raise RegistryError(f"Model name is {len(name)} characters; at most {_MAX_NAME}")


def _check_alias(alias: str) -> None:
    if not alias:
        raise RegistryError("An alias name cannot be empty")
    if not _ALIAS_RE.fullmatch(alias):
        raise RegistryError(
            f"Invalid alias {alias!r}: aliases may only contain letters, digits, underscores (_) and dashes (-)"
        )
    if len(alias) > _MAX_ALIAS:
        raise RegistryError(f"Alias is {len(alias)} characters; at most {_MAX_ALIAS}")
    if alias.lower() == "latest":
        raise RegistryError("The alias 'latest' (any case) is reserved")
    if _VERSION_ALIAS_RE.fullmatch(alias):
        raise RegistryError(f"The alias {alias!r} is reserved: v<number> names a version")


def _check_contents(source: Path) -> None:
    """Only what is inside the model directory is copied: a symbolic link to a file or directory
    outside it (`data -> /etc`, `key -> ~/.ssh/id_rsa`) would copy that into the registry, and
    a FIFO or device would hang or fill the copy. Links within the directory are fine."""
    root = source.resolve()
    for directory, dirs, files in os.walk(source):
        for entry in [*dirs, *files]:
            path = Path(directory, entry)
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    raise RegistryError(f"{path} is a symbolic link that leads nowhere (or in a loop); "
                                        "remove it or replace it with the file") from None
                if target != root and root not in target.parents:
                    raise RegistryError(
                        f"{path} is a symbolic link to {target}, outside the model directory {root}; "
                        "copy what it points to into the model directory, or remove the link"
                    )
                home = path.parent.resolve()
                if target.is_dir() and (target == home or target in home.parents):
                    raise RegistryError(f"{path} is a symbolic link to {target}, which holds the link; remove it")
            elif not (path.is_dir() or path.is_file()):
                raise RegistryError(f"{path} is not a regular file or directory (a FIFO, socket or device); remove it")


def _check_tag(key: str, value: str) -> None:
    if not key or not key.strip():
        raise RegistryError("A tag key cannot be empty")
    if len(key) > _MAX_TAG_KEY:
        raise RegistryError(f"Tag key {key[:40]!r}… is {len(key)} characters; at most {_MAX_TAG_KEY}")
    if len(value) > _MAX_TAG_VALUE:
        raise RegistryError(f"The value of tag {key!r} is {len(value)} characters; at most {_MAX_TAG_VALUE}")


def _version_number(version: int | str) -> int:
    try:
        number = int(str(version).strip())
    except ValueError:
        raise RegistryError(f"Version must be a whole number, not {version!r}") from None
    if number < 1:
        raise RegistryError(f"Version must be 1 or more, not {number}")
    return number


def _now_ms() -> int:
    return int(time.time() * 1000)


def _make_read_only(root: Path) -> None:
    """Files of a registered version are not to be edited in place: drop their write bits."""
    for directory, _, files in os.walk(root):
        for file in files:
            path = Path(directory, file)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _sweep_stale(staging_root: Path) -> None:
    """Staging copies left by processes that died mid-copy, a day later."""
    cutoff = time.time() - _STALE_STAGING_SECONDS
    for entry in staging_root.iterdir():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
