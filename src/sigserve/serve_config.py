"""What `sigserve serve` runs with: which models (`-m` flags or a `--config` YAML file), how to
reach their registries, and the server's limits, read from flags and environment and checked once
before anything loads, then passed down as one `ServeSettings`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sigserve.manager.fleet import ModelOptions, ModelSpec
from sigserve.manager.traffic import TrafficPolicy
from sigserve.server.settings import ServerSettings
from sigserve.server.tls import TlsFiles
from sigserve.sources.settings import SourceSettings

MODEL_KEYS = {"uri", "name", "reload_interval", "batch_max_size", "batch_max_wait_ms", "max_concurrency"}


class ConfigError(ValueError):
    """A config file or flag that cannot be served; the message names the file and the entry."""


@dataclass(frozen=True)
class ServeConfig:
    models: list[ModelSpec]
    traffic: dict[str, TrafficPolicy] = field(default_factory=dict)


@dataclass(frozen=True)
class ServeSettings:
    """Everything a `sigserve serve` process runs with."""

    models: ServeConfig
    sources: SourceSettings
    server: ServerSettings
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    log_level: str = "info"
    native_threads: int = 1  # per worker, already adjusted for the worker count
    reload_interval: float = 30.0
    allow_failing_example: bool = False
    max_loaded_models: int = 0
    tls: TlsFiles | None = None


def from_flags(uris: list[str], traffic: list[str], model_name: str | None = None) -> ServeConfig:
    """`-m URI` (repeatable), `--traffic NAME=POLICY` (repeatable), `--model-name` for one model."""
    if model_name and len(uris) > 1:
        raise ConfigError("--model-name names one model; with several, give names in a --config file")
    if model_name and "/" in model_name:
        raise ConfigError(f"--model-name {model_name!r}: a served name has no '/' (it is one segment of a URL path)")
    specs = [ModelSpec(uri, model_name if i == 0 else None) for i, uri in enumerate(uris)]
    policies = parse_traffic_flags(traffic)
    _check_traffic_names(specs, policies, "")
    return ServeConfig(specs, policies)


def _check_traffic_names(specs: list[ModelSpec], traffic: dict[str, TrafficPolicy], where: str) -> None:
    """A policy for a name no model is served as, refused before anything loads when every name
    is known without the registry (else after loading, by `ModelSet.set_traffic`)."""
    names = [spec.known_name for spec in specs]
    if any(name is None for name in names):
        return
    known = {str(name).lower() for name in names}  # lenient: the registry may spell a name otherwise
    for name in traffic:
        if name.lower() not in known:
            served = ", ".join(dict.fromkeys(str(n) for n in names))
            raise ConfigError(f"{where}traffic policy for {name!r}, which is not a served model (served: {served})")
        if traffic[name].policy != "champion" and sum(str(n).lower() == name.lower() for n in names) < 2:
            raise ConfigError(f"{where}traffic policy {traffic[name].policy} for {name!r} needs a second version of "
                              f"it (e.g. -m models:/{name}@champion -m models:/{name}@challenger)")


def parse_traffic_flags(values: list[str]) -> dict[str, TrafficPolicy]:
    policies = {}
    for value in values:
        name, sep, policy = value.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--traffic {value!r}: expected NAME=shadow or NAME=canary:SHARE[:HEADER]")
        try:
            policies[name.strip()] = TrafficPolicy.parse(policy)
        except ValueError as exc:
            raise ConfigError(f"--traffic {value!r}: {exc}") from None
    return policies


def read_config(path: str, traffic_flags: list[str] = ()) -> ServeConfig:  # type: ignore[assignment]
    """The YAML file; `--traffic` flags add to (and override) its `traffic:`."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(document, dict) or not isinstance(document.get("models"), list) or not document["models"]:
        raise ConfigError(f"config {path}: expected a mapping with a non-empty list `models:`")
    unknown = set(document) - {"models", "traffic"}
    if unknown:
        raise ConfigError(f"config {path}: unknown keys {sorted(unknown)} (models, traffic)")
    specs = [_model_spec(path, i, entry) for i, entry in enumerate(document["models"])]
    traffic_section = document.get("traffic") or {}
    if not isinstance(traffic_section, dict):
        raise ConfigError(f"config {path}: `traffic:` must map model names to policies")
    traffic = {}
    for name, value in traffic_section.items():
        try:
            traffic[str(name)] = TrafficPolicy.from_mapping(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"config {path}: traffic for {name!r}: {exc}") from None
    traffic.update(parse_traffic_flags(list(traffic_flags)))
    _check_traffic_names(specs, traffic, f"config {path}: ")
    return ServeConfig(specs, traffic)


def _model_spec(path: str, index: int, entry: Any) -> ModelSpec:
    where = f"config {path}: models[{index}]"
    if isinstance(entry, str):
        entry = {"uri": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str) or not entry["uri"].strip():
        raise ConfigError(f"{where}: expected a mapping with a `uri:`")
    unknown = set(entry) - MODEL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} ({', '.join(sorted(MODEL_KEYS))})")
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        raise ConfigError(f"{where}: `name` must be a non-empty string without '/', got {name!r}")
    try:
        options = ModelOptions(
            reload_interval=_number(entry, "reload_interval", float, 0),
            batch_max_size=_number(entry, "batch_max_size", int, 0),
            batch_max_wait_ms=_number(entry, "batch_max_wait_ms", float, 0),
            max_concurrency=_number(entry, "max_concurrency", int, 1),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return ModelSpec(entry["uri"].strip(), name, options)


def _number(entry: dict[str, Any], key: str, kind: type, minimum: float) -> Any:
    value = entry.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or (kind is int and value != int(value))):
        raise ValueError(f"`{key}` must be a{'n integer' if kind is int else ' finite number'}, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{key}` must be at least {minimum:g}, got {value!r}")
    return kind(value)
