"""How far sigserve follows a registry: a broken or hostile one must end in a clear error, not in
a RecursionError, a full disk or a download that never ends. Each limit has an environment
override, `SIGSERVE_REGISTRY_<NAME>`, read and checked once in `sigserve.sources.settings`."""

from __future__ import annotations

from dataclasses import dataclass

ENV_PREFIX = "SIGSERVE_REGISTRY_"


@dataclass(frozen=True)
class RegistryLimits:
    timeout_seconds: float = 10.0  # each request to an MLflow tracking server: connect, and each read
    deadline_seconds: float = 900.0  # resolving and downloading one model, all requests and retries
    max_depth: int = 8  # sources followed (`models:/…`, `runs:/…` pointing further)
    max_listing_depth: int = 32  # directories below the model's artifact root
    max_files: int = 10_000  # files and directories listed for one model
    max_bytes: int = 10 << 30  # bytes downloaded for one model
