"""The demo: a numpy-only iris model, bundled, served from the embedded default registry."""

from __future__ import annotations

from pathlib import Path

from sigserve.errors import ModelNotFound
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve
from sigserve.admin.embedded import EmbeddedRegistry

DEMO_MODEL_DIR = Path(__file__).parent / "model"
DEMO_MODEL_NAME = "sigserve-demo-iris"
DEMO_ALIAS = "champion"
DEMO_REGISTRY_URI = "sqlite:///mlflow.db"


def ensure_demo_registered(sources: SourceSettings) -> str:
    """The demo model's `models:/` URI, registering the bundled model first if the registry
    `sources` name does not hold it yet (a fresh directory gets a new `mlflow.db`)."""
    uri = f"models:/{DEMO_MODEL_NAME}@{DEMO_ALIAS}"
    try:
        resolve(uri, sources)
    except ModelNotFound:
        with EmbeddedRegistry(sources.registry()) as registry:
            registry.register(DEMO_MODEL_NAME, DEMO_MODEL_DIR, alias=DEMO_ALIAS,
                              description="sigserve's bundled iris demo model")
    return uri
