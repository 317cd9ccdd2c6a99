"""Serving stage: the HTTP app and the process runner."""
