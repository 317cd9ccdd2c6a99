"""Scoring paths parsed in one place: which protocol, which model and version a path names."""

from __future__ import annotations

from dataclasses import dataclass

from sigserve.codecs.mlflow.codec import MLFLOW
from sigserve.codecs.protocol import Codec
from sigserve.codecs.v2.codec import V2

INVOCATIONS = "/invocations"
V2_MODELS = "/v2/models/"


@dataclass(frozen=True)
class ScoringPath:
    codec: Codec
    model: str | None = None  # None: the default (first) model
    version: str | None = None


@dataclass(frozen=True)
class V2ModelPath:
    name: str
    version: str | None
    action: str  # "" (metadata), "ready" or "infer"


def v2_model_path(path: str) -> V2ModelPath | None:
    """`/v2/models/{name}[/versions/{version}][/ready|/infer]`."""
    if not path.startswith(V2_MODELS):
        return None
    parts = path[len(V2_MODELS):].split("/")
    name, rest = parts[0], parts[1:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if not name or version == "" or len(rest) > 1 or (rest and rest[0] not in ("ready", "infer")):
        return None
    return V2ModelPath(name, version, rest[0] if rest else "")


DEFAULT_MODEL = ScoringPath(MLFLOW)


def scoring_path(method: str, path: str) -> ScoringPath | None:
    if method != "POST":
        return None
    if path == INVOCATIONS:
        return DEFAULT_MODEL
    if path.startswith(INVOCATIONS + "/"):
        name = path[len(INVOCATIONS) + 1:]
        return ScoringPath(MLFLOW, name) if name and "/" not in name else None
    if path.startswith(V2_MODELS) and path.endswith("/infer"):
        found = v2_model_path(path)
        return ScoringPath(V2, found.name, found.version) if found is not None and found.action == "infer" else None
    return None


_MEDIA_LABELS = {"application/json": "json", "text/csv": "csv", "application/vnd.apache.parquet": "parquet"}


def media_label(content_type: str | None) -> str:
    """A bounded label for requests that never reached a decoder (metrics must not take raw headers)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return _MEDIA_LABELS.get(media, "other")
