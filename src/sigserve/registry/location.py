"""Where the registry is: the flag, then MLflow's environment variables, then MLflow 3's default."""

from __future__ import annotations

import os

DEFAULT_REGISTRY_URI = "sqlite:///mlflow.db"


def registry_uri(flag: str | None = None) -> str:
    return (
        flag
        or os.environ.get("MLFLOW_REGISTRY_URI")
        or os.environ.get("MLFLOW_TRACKING_URI")
        or DEFAULT_REGISTRY_URI
    )
