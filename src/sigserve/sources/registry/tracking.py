"""How to reach an MLflow tracking server: the credentials and TLS options MLflow's client takes
from its environment variables, which `sigserve.sources.settings` reads once and hands down."""

from __future__ import annotations

from dataclasses import dataclass, field

from sigserve.redact import add_secret


@dataclass(frozen=True)
class TrackingSettings:
    username: str | None = None  # MLFLOW_TRACKING_USERNAME: Basic auth, with the password
    password: str | None = field(default=None, repr=False)  # MLFLOW_TRACKING_PASSWORD
    token: str | None = field(default=None, repr=False)  # MLFLOW_TRACKING_TOKEN: Bearer, if no user and password
    insecure_tls: bool = False  # MLFLOW_TRACKING_INSECURE_TLS: do not check the server's certificate
    server_cert_path: str | None = None  # MLFLOW_TRACKING_SERVER_CERT_PATH: CA bundle to trust
    client_cert_path: str | None = None  # MLFLOW_TRACKING_CLIENT_CERT_PATH: PEM certificate and key to present
    ca_bundle: str | None = None  # REQUESTS_CA_BUNDLE, which MLflow's client (requests) honours too

    def __post_init__(self) -> None:
        """Masked from here on wherever sigserve shows text, used or not."""
        add_secret(self.password)
        add_secret(self.token)
