"""Where the registry is when none is configured: MLflow 3's default in the working directory."""

from __future__ import annotations

from pathlib import Path

DEFAULT_REGISTRY_URI = "sqlite:///mlflow.db"
DEFAULT_FILE_STORE = "mlruns"


def registry_or_default(configured: str | None) -> str:
    """`configured` (the flag, else MLflow's variables, as `SourceSettings` read them), else the default.
    The working directory is looked at on each call: the demo creates `mlflow.db`."""
    if configured:
        return configured
    if not Path("mlflow.db").exists() and Path(DEFAULT_FILE_STORE, "models").is_dir():
        return DEFAULT_FILE_STORE  # an MLflow 2 working directory: the file store is what it holds
    return DEFAULT_REGISTRY_URI
