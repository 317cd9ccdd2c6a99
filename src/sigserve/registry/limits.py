"""How far sigserve follows a registry: a broken or hostile one must end in a clear error, not in
a RecursionError, a full disk or a download that never ends. Each limit has an env override."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sigserve.errors import ModelLoadError

ENV_PREFIX = "SIGSERVE_REGISTRY_"


@dataclass(frozen=True)
class RegistryLimits:
    timeout_seconds: float = 10.0  # each request to an MLflow tracking server: connect, and each read
    deadline_seconds: float = 900.0  # resolving and downloading one model, all requests and retries
    max_depth: int = 8  # sources followed (`models:/…`, `runs:/…` pointing further)
    max_listing_depth: int = 32  # directories below the model's artifact root
    max_files: int = 10_000  # files and directories listed for one model
    max_bytes: int = 10 << 30  # bytes downloaded for one model

    @classmethod
    def from_env(cls) -> RegistryLimits:
        defaults = cls()
        return cls(
            timeout_seconds=_number("TIMEOUT", defaults.timeout_seconds, float),
            deadline_seconds=_number("DEADLINE", defaults.deadline_seconds, float),
            max_depth=_number("MAX_DEPTH", defaults.max_depth, int),
            max_listing_depth=_number("MAX_LISTING_DEPTH", defaults.max_listing_depth, int),
            max_files=_number("MAX_FILES", defaults.max_files, int),
            max_bytes=_number("MAX_BYTES", defaults.max_bytes, int),
        )


def _number(name: str, default: float, kind: type) -> float:
    variable = ENV_PREFIX + name
    configured = os.environ.get(variable, "").strip()
    if not configured:
        return default
    try:
        value = kind(configured)
    except ValueError:
        value = 0
    if not value > 0:
        what = "a positive number of seconds" if kind is float else "a whole number of at least 1"
        raise ModelLoadError(f"{variable}={configured!r} is not {what}")
    return value
