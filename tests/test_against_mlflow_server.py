"""The same requests sent over HTTP to a real `mlflow models serve` process and to sigserve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers import free_port, same_json, wait_answering
from test_conformance import CASES, Case, _body

SERVED = ("sklearn_skops", "echo")
SUBSET = [c for c in CASES if c.model in SERVED and not c.id.startswith("echo_records")]


class MlflowServer:
    def __init__(self, model_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_path), "-h", "127.0.0.1",
             "-p", str(self.port), "-w", "1", "--env-manager", "local"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        if wait_answering(self.url + "/ping", 120, self.process):
            return
        self.stop()
        raise RuntimeError("mlflow models serve did not start")

    def post(self, case: Case) -> httpx.Response:
        return httpx.post(self.url + "/invocations", content=_body(case),
                          headers={"Content-Type": case.content_type}, timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_servers(models):
    servers = {name: MlflowServer(models[name]) for name in SERVED}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.mark.parametrize("case", SUBSET, ids=[c.id for c in SUBSET])
def test_same_answer_as_mlflow_models_serve(case: Case, models, server_factory, mlflow_servers) -> None:
    ours = server_factory(models[case.model]).post(_body(case), case.content_type)
    theirs = mlflow_servers[case.model].post(case)
    if case.differs:
        assert ours.status_code == case.status
        if theirs.status_code == 200 and ours.status_code == 200:
            assert not same_json(ours.json(), theirs.json())
        else:
            assert ours.status_code // 100 != theirs.status_code // 100
        return
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text[:500])
    if theirs.status_code == 200:
        assert same_json(ours.json(), theirs.json())
    else:
        assert set(ours.json()) == {"error_code", "message"}
        if theirs.status_code != 415:  # MLflow answers 415 in text/plain
            assert {"error_code", "message"} <= set(theirs.json())
