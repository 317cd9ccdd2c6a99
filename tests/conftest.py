"""Shared fixtures: every MLflow model is built once per session, every server once per module."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples every run, so a red build is the change's doing, not a new draw;
# local runs keep exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
# Servers started by tests serve no gRPC unless a test asks (--grpc-port): many run at once, and
# the default port 8081 is one port.
os.environ.setdefault("SIGSERVE_GRPC_PORT", "0")
os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///" + str(Path(__file__).parent / ".mlflow-unused.db"))
warnings.filterwarnings("ignore", category=UserWarning)
sys.path.insert(0, str(Path(__file__).parent))

from helpers import SigserveServer, build_models  # noqa: E402
from zoo import ZooModel, build_zoo  # noqa: E402


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ZooModel]:
    return build_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="session")
def server_factory():
    """Start servers lazily, keep each for the whole session, stop them all at the end."""
    started: dict[tuple, SigserveServer] = {}

    def get(model_path: Path, *extra: str) -> SigserveServer:
        key = (str(model_path), extra)
        if key not in started:
            started[key] = SigserveServer(model_path, *extra).start()
        return started[key]

    yield get
    for server in started.values():
        server.stop()
