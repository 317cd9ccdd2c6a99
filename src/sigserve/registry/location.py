"""Where the registry is: the flag, then MLflow's environment variables, then MLflow 3's default."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_REGISTRY_URI = "sqlite:///mlflow.db"
DEFAULT_FILE_STORE = "mlruns"


def registry_uri(flag: str | None = None) -> str:
    configured = flag or os.environ.get("MLFLOW_REGISTRY_URI") or os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    if not Path("mlflow.db").exists() and Path(DEFAULT_FILE_STORE, "models").is_dir():
        return DEFAULT_FILE_STORE  # an MLflow 2 working directory: the file store is what it holds
    return DEFAULT_REGISTRY_URI
