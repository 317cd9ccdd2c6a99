"""The demo: a numpy-only iris model, bundled, served from the embedded default registry."""

from __future__ import annotations

from pathlib import Path

from sigserve.errors import ModelNotFound
from sigserve.model.source import resolve
from sigserve.registry.embedded import EmbeddedRegistry

DEMO_MODEL_DIR = Path(__file__).parent / "model"
DEMO_MODEL_NAME = "sigserve-demo-iris"
DEMO_ALIAS = "champion"
DEMO_REGISTRY_URI = "sqlite:///mlflow.db"


def ensure_demo_registered(registry_uri: str) -> str:
    """The demo model's `models:/` URI, registering the bundled model first if the registry
    does not hold it yet (a fresh directory gets a new `mlflow.db`)."""
    uri = f"models:/{DEMO_MODEL_NAME}@{DEMO_ALIAS}"
    try:
        resolve(uri, registry_uri)
    except ModelNotFound:
        with EmbeddedRegistry(registry_uri) as registry:
            registry.register(DEMO_MODEL_NAME, DEMO_MODEL_DIR, alias=DEMO_ALIAS,
                              description="sigserve's bundled iris demo model")
    return uri
