"""What the sources layer is told about the world outside it: where the registry is, where
downloads are cached, how to reach an MLflow tracking server and how far to follow one.

Read once, at start, from the CLI flags and the environment (MLflow's own variables and
`SIGSERVE_*`, so a container is configured by environment alone), checked there, and passed
down to `resolve()` and the registry code, which never read the environment themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.config import Config

from sigserve.errors import ModelLoadError
from sigserve.sources.registry.limits import ENV_PREFIX, RegistryLimits
from sigserve.sources.registry.location import registry_or_default
from sigserve.sources.registry.tracking import TrackingSettings

CACHE_DIR_ENV = "SIGSERVE_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/sigserve")  # under $XDG_CACHE_HOME instead when that is set


@dataclass(frozen=True)
class SourceSettings:
    registry_uri: str | None = None  # as configured; None: MLflow's default, see registry()
    cache_dir: Path = DEFAULT_CACHE_DIR
    tracking: TrackingSettings = TrackingSettings()
    limits: RegistryLimits = RegistryLimits()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, registry_uri: str | None = None,
        cache_dir: str | None = None,
    ) -> SourceSettings:
        """The flags (`--registry-uri`, `--cache-dir`) over the environment (`os.environ` unless
        given). An empty value counts as unset, as a template may render one; a limit that is not
        a positive number is a ModelLoadError naming the variable."""
        config = Config(environ=os.environ if environ is None else environ)
        return cls(
            registry_uri=registry_uri or _text(config, "MLFLOW_REGISTRY_URI") or _text(config, "MLFLOW_TRACKING_URI"),
            cache_dir=_cache_dir(config, cache_dir),
            tracking=TrackingSettings(
                username=_text(config, "MLFLOW_TRACKING_USERNAME"),
                password=_text(config, "MLFLOW_TRACKING_PASSWORD"),
                token=_text(config, "MLFLOW_TRACKING_TOKEN"),
                insecure_tls=config("MLFLOW_TRACKING_INSECURE_TLS", cast=_true, default=""),
                server_cert_path=_text(config, "MLFLOW_TRACKING_SERVER_CERT_PATH"),
                client_cert_path=_text(config, "MLFLOW_TRACKING_CLIENT_CERT_PATH"),
                ca_bundle=_text(config, "REQUESTS_CA_BUNDLE"),
            ),
            limits=_limits(config),
        )

    def registry(self) -> str:
        """The registry to ask: the configured one, else MLflow 3's default for the working directory."""
        return registry_or_default(self.registry_uri)


def _text(config: Config, name: str) -> str | None:
    return config(name, default=None) or None


def _true(value: str) -> bool:
    """As MLflow reads MLFLOW_TRACKING_INSECURE_TLS: `true` or `1`; anything else is off."""
    return value.strip().lower() in ("true", "1")


def _cache_dir(config: Config, flag: str | None) -> Path:
    configured = flag or _text(config, CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    xdg = _text(config, "XDG_CACHE_HOME")
    return Path(xdg) / "sigserve" if xdg else DEFAULT_CACHE_DIR


def _limits(config: Config) -> RegistryLimits:
    defaults = RegistryLimits()
    return RegistryLimits(
        timeout_seconds=_limit(config, "TIMEOUT", defaults.timeout_seconds, float),
        deadline_seconds=_limit(config, "DEADLINE", defaults.deadline_seconds, float),
        max_depth=_limit(config, "MAX_DEPTH", defaults.max_depth, int),
        max_listing_depth=_limit(config, "MAX_LISTING_DEPTH", defaults.max_listing_depth, int),
        max_files=_limit(config, "MAX_FILES", defaults.max_files, int),
        max_bytes=_limit(config, "MAX_BYTES", defaults.max_bytes, int),
    )


def _limit(config: Config, name: str, default: float, kind: type) -> float:
    variable = ENV_PREFIX + name
    configured = config(variable, default="").strip()
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
