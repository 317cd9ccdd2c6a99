"""Alias hot-reload on real processes and a real registry, under a bounded load.

The registry is a SQLite file written by sigserve's own registry CLI (MLflow 3's schema);
versions are real MLflow sklearn models. The load is a client thread scoring continuously.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from helpers import (
    IRIS,
    ONE_ROW,
    SigserveServer,
    children_of,
    metric_samples,
    run_cli,
    total,
    wait_for,
)

NAME = "churn"


@dataclass
class Load:
    """One keep-alive client scoring in a loop: every status and every version that answered."""

    url: str
    statuses: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:  # noqa: PYI034
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url + "/invocations", json=ONE_ROW)
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.statuses.append(response.status_code)
                self.versions.append(response.headers.get("x-model-version", ""))

    def settled_on(self, version: str, last: int = 40) -> bool:
        tail = self.versions[-last:]
        return len(tail) == last and set(tail) == {version}


def registry(*args: str) -> None:
    result = run_cli("registry", *args)
    assert result.returncode == 0, result.stderr.decode()


@pytest.fixture()
def registered(models, tmp_path) -> str:
    """Versions 1 and 2 of one model, `@champion` on version 1."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry("register", "--registry-uri", uri, "--name", NAME, "--path", str(models["sklearn_skops"]),
             "--alias", "champion")
    registry("register", "--registry-uri", uri, "--name", NAME, "--path", str(models["sklearn_pickle"]))
    return uri


def broken_copy(model: Path, root: Path) -> Path:
    """A model directory whose MLmodel is fine but whose weights are garbage."""
    broken = root / "broken"
    shutil.copytree(model, broken)
    (broken / "model.skops").write_bytes(b"not a model")
    return broken


@pytest.mark.parametrize("workers", ["1", "2"])
def test_alias_move_flips_every_worker_without_a_failed_request(registered: str, models, tmp_path, workers: str) -> None:
    server = SigserveServer(f"models:/{NAME}@champion", "--registry-uri", registered,
                            "--reload-interval", "0.3", "-w", workers)
    with server, Load(server.url) as load:
        assert wait_for(lambda: load.settled_on(f"{NAME}/1", 10), 30)
        assert httpx.get(server.url + "/metadata").json()["version"] == "1"

        registry("alias", "set", "--registry-uri", registered, "--name", NAME, "--alias", "champion", "--version", "2")
        assert wait_for(lambda: load.settled_on(f"{NAME}/2"), 60), load.versions[-20:]
        assert wait_for(lambda: server.log().count(f"now serving {NAME}/2") >= int(workers), 30), "each worker polls alone"
        metadata = httpx.get(server.url + "/metadata").json()
        assert (metadata["version"], metadata["alias"]) == ("2", "champion")
        assert httpx.post(server.url + "/invocations", json=ONE_ROW).headers["x-model-alias"] == "champion"

        broken = broken_copy(models["sklearn_skops"], tmp_path)
        registry("register", "--registry-uri", registered, "--name", NAME, "--path", str(broken), "--alias", "champion")
        assert wait_for(lambda: server.log().count("version 3 of churn was not swapped in") >= int(workers), 60)
        refused_at = len(load.versions)
        assert wait_for(lambda: len(load.versions) >= refused_at + 40, 30), "the load stalled"
        assert load.settled_on(f"{NAME}/2"), "a version that does not load is never swapped in"
        samples = metric_samples(server.url)
        assert total(samples, "sigserve_model_reloads_total") >= 1
        assert total(samples, "sigserve_model_reload_failures_total", reason="load") >= 1

    assert load.errors == [] and set(load.statuses) == {200}, (load.errors[:3], set(load.statuses))
    assert load.versions.index(f"{NAME}/2") > 0, "version 1 answered first"
    first_v2 = load.versions.index(f"{NAME}/2")
    assert f"{NAME}/1" not in load.versions[first_v2 + 40 * int(workers):], "no worker stays on the old version"


@pytest.mark.parametrize("allow", [(), ("--allow-failing-example",)], ids=["strict", "allowed"])
def test_a_new_version_failing_on_its_example_is_refused(registered: str, models, tmp_path, allow) -> None:
    """`--allow-failing-example` serves such a model at start-up, but never swaps one in for a
    version that is ready."""
    broken = tmp_path / "nan_example"
    shutil.copytree(models["sklearn_skops"], broken)
    example = {"dataframe_split": {"columns": IRIS, "data": [[None, 3.5, 1.4, 0.2]]}}  # fits, then sklearn raises
    (broken / "serving_input_example.json").write_text(json.dumps(example))
    with SigserveServer(f"models:/{NAME}@champion", "--registry-uri", registered, "--reload-interval", "0.3",
                        *allow) as server:
        registry("register", "--registry-uri", registered, "--name", NAME, "--path", str(broken), "--alias", "champion")
        assert wait_for(lambda: "version 3 of churn was not swapped in" in server.log(), 60)
        assert "fails on its own serving input example" in server.log()
        answer = httpx.post(server.url + "/invocations", json=ONE_ROW)
        assert answer.status_code == 200 and answer.headers["x-model-version"] == f"{NAME}/1"
        assert total(metric_samples(server.url), "sigserve_model_reload_failures_total", reason="warm_up") == 1
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200


def test_a_new_version_whose_example_predates_its_signature_is_served(registered: str, models, tmp_path) -> None:
    stale = tmp_path / "stale_example"
    shutil.copytree(models["sklearn_skops"], stale)
    (stale / "serving_input_example.json").write_text('{"dataframe_split": {"columns": ["x"], "data": [[1]]}}')
    with SigserveServer(f"models:/{NAME}@champion", "--registry-uri", registered, "--reload-interval", "0.3") as server:
        registry("register", "--registry-uri", registered, "--name", NAME, "--path", str(stale), "--alias", "champion")
        assert wait_for(lambda: httpx.post(server.url + "/invocations", json=ONE_ROW).headers["x-model-version"]
                        == f"{NAME}/3", 60), server.log()
        assert "does not fit its signature" in server.log()


def test_registry_gone_after_start_keeps_serving_and_is_counted(registered: str, tmp_path) -> None:
    database = Path(registered.removeprefix("sqlite:///"))
    with SigserveServer(f"models:/{NAME}@champion", "--registry-uri", registered, "--reload-interval", "0.3") as server:
        database.rename(tmp_path / "away.db")
        assert wait_for(lambda: "still serving the current model" in server.log(), 30)
        answer = httpx.post(server.url + "/invocations", json=ONE_ROW)
        assert answer.status_code == 200 and answer.headers["x-model-version"] == f"{NAME}/1"
        assert total(metric_samples(server.url), "sigserve_registry_errors_total") >= 1


def test_a_fixed_version_is_not_polled(registered: str) -> None:
    with SigserveServer(f"models:/{NAME}/1", "--registry-uri", registered, "--reload-interval", "0.3") as server:
        registry("alias", "set", "--registry-uri", registered, "--name", NAME, "--alias", "champion", "--version", "2")
        time.sleep(1.5)  # five poll intervals in which nothing may happen
        assert httpx.post(server.url + "/invocations", json=ONE_ROW).headers["x-model-version"] == f"{NAME}/1"
        assert "polling the registry" not in server.log()
        assert "x-model-alias" not in httpx.post(server.url + "/invocations", json=ONE_ROW).headers


def test_a_replacement_worker_starts_on_the_version_the_alias_points_to_now(registered: str) -> None:
    """The master never polls: a worker forked after the alias moved polls before it serves."""
    server = SigserveServer(f"models:/{NAME}@champion", "--registry-uri", registered,
                            "--reload-interval", "3600", "-w", "2")
    with server:
        assert httpx.post(server.url + "/invocations", json=ONE_ROW).headers["x-model-version"] == f"{NAME}/1"
        registry("alias", "set", "--registry-uri", registered, "--name", NAME, "--alias", "champion", "--version", "2")
        workers = children_of(server.process.pid)
        os.kill(min(workers), signal.SIGKILL)
        assert wait_for(lambda: len(kids := children_of(server.process.pid)) == 2 and kids != workers, 30)
        answered: list[str] = []

        def version_2_answered() -> bool:  # the replacement polls, loads, then accepts connections
            answer = httpx.post(server.url + "/invocations", json=ONE_ROW)
            assert answer.status_code == 200, answer.text
            answered.append(answer.headers["x-model-version"])
            return answered[-1] == f"{NAME}/2"

        assert wait_for(version_2_answered, 60, every=0.05), f"the replacement worker serves what the alias points to: {set(answered)}"


def test_a_version_whose_predictions_cannot_be_encoded_is_refused_once(registered: str, tmp_path) -> None:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from models.reload_models import Unencodable

    signature = ModelSignature(inputs=Schema([ColSpec("double", column) for column in IRIS]))
    unencodable = tmp_path / "unencodable"
    example = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=IRIS)
    mlflow.pyfunc.save_model(unencodable, python_model=Unencodable(), signature=signature, input_example=example,
                             code_paths=[str(Path(__file__).parent / "models")], pip_requirements=["mlflow"])
    with SigserveServer(f"models:/{NAME}@champion", "--registry-uri", registered, "--reload-interval", "0.2") as server:
        registry("register", "--registry-uri", registered, "--name", NAME, "--path", str(unencodable), "--alias", "champion")
        assert wait_for(lambda: "version 3 of churn was not swapped in" in server.log(), 60)
        time.sleep(1.5)  # several more polls
        samples = metric_samples(server.url)
        assert total(samples, "sigserve_model_reload_failures_total", reason="warm_up") == 1
        assert total(samples, "sigserve_registry_errors_total") == 0
        assert httpx.post(server.url + "/invocations", json=ONE_ROW).headers["x-model-version"] == f"{NAME}/1"


@pytest.fixture()
def thawed_after() -> Iterator[None]:
    """`freeze_startup_heap` freezes this pytest process's heap: thaw it for the tests after."""
    yield
    gc.unfreeze()


def test_a_retired_model_is_freed_after_the_swap(registered: str, thawed_after: None) -> None:
    """In-process: the manager and poller as the server runs them, on the real registry."""
    from sigserve.manager import ModelManager, ReloadPoller, load_servable
    from sigserve.sources.settings import SourceSettings
    from sigserve.sources.source import resolve
    from sigserve.server.run import freeze_startup_heap

    uri, sources = f"models:/{NAME}@champion", SourceSettings(registry_uri=registered)
    manager = ModelManager(load_servable(resolve(uri, sources)))
    retired = weakref.ref(manager.current.scorer.model.impl.estimator)
    freeze_startup_heap()  # as before serving: the first model is frozen out of the collector's reach
    poller = ReloadPoller(uri, sources, 3600, manager)
    registry("alias", "set", "--registry-uri", registered, "--name", NAME, "--alias", "champion", "--version", "2")
    assert poller.poll_once() and manager.current.version == "2"
    poller.poll_once()  # the next poll releases what the swap retired
    assert retired() is None
