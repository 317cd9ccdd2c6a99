"""What an operator can tune about the server, with production defaults."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigserve.codecs.limits import DecodeLimits

if TYPE_CHECKING:
    from sigserve.server.auth import BearerAuth
    from sigserve.server.tls import TlsFiles

RESERVED_DESCRIPTORS = 64  # for the model's files, logs, the registry and metrics
DEFAULT_TIMEOUT_SECONDS = 60.0
DRAIN_GRACE_SECONDS = 5  # on SIGTERM, in-flight requests (HTTP and gRPC) get their timeout plus this


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take over each part of a request, and how many may be connected."""

    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    max_connections: int = 1024
    answer_timeout_seconds: float | None = None  # a client that stops reading its answer

    def effective_max_connections(self) -> int:
        """The cap, but never past the descriptors this process may open, or accept() fails instead."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - RESERVED_DESCRIPTORS))


@dataclass(frozen=True)
class GrpcListener:
    """Where the V2 gRPC service listens (`--grpc-port`), beside the HTTP port, in every worker."""

    host: str
    port: int
    tls: TlsFiles | None = None  # the HTTP listener's certificate, when it serves HTTPS


@dataclass(frozen=True)
class ServerSettings:
    timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS
    max_body_bytes: int = 64 * 1024 * 1024
    max_concurrency: int = 64
    access_log: bool = True
    batch_max_size: int = 0
    batch_max_wait_seconds: float = 0.002
    connections: ConnectionLimits = ConnectionLimits()
    decode_limits: DecodeLimits = DecodeLimits()  # rows, columns and decoded bytes per request
    auth: BearerAuth | None = None  # bearer tokens asked for every path but the probes; None: open
    grpc: GrpcListener | None = None  # None: no gRPC (--grpc-port 0)
