"""sigserve: a fast, signature-enforcing scoring server for MLflow-format models."""

__version__ = "0.1.0"
