"""Registry stage of the source: `models:/` and `runs:/` URIs resolved to a local model directory."""

from sigserve.sources.registry.resolve import resolve_registry_uri

__all__ = ["resolve_registry_uri"]
