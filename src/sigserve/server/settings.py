"""What an operator can tune about the server, with production defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    timeout_seconds: float | None = 60.0
    max_body_bytes: int = 64 * 1024 * 1024
    max_concurrency: int = 64
    access_log: bool = True
    batch_max_size: int = 0
    batch_max_wait_seconds: float = 0.002
    model_name: str | None = None  # the name KServe V2 clients use; default the model's own
