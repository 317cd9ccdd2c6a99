"""A broken or hostile MLflow tracking server (tests/fake_registry.py, on 127.0.0.1) against the
real resolver and real `sigserve info` / `serve` processes: cyclic and endless source chains,
endlessly deep or wide listings, endless and trickling downloads, unsafe names and paths, and
CR/LF in the names and versions it hands out. Each must end in one clear line, within the limits
set here through SIGSERVE_REGISTRY_* (small, so each case takes a second or so)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fake_registry import FakeRegistry, endless, trickle
from helpers import SigserveServer, metric_samples, total, wait_for

from sigserve.errors import ModelLoadError
from sigserve.sources.settings import SourceSettings

ROW = {"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}
LIMITS = {"SIGSERVE_REGISTRY_MAX_DEPTH": "4", "SIGSERVE_REGISTRY_MAX_LISTING_DEPTH": "5",
          "SIGSERVE_REGISTRY_MAX_FILES": "20", "SIGSERVE_REGISTRY_MAX_BYTES": str(256 << 10),
          "SIGSERVE_REGISTRY_DEADLINE": "3"}


@pytest.fixture(scope="module")
def fake():
    registry = FakeRegistry()
    registry.add_version("good", "1", artifacts=registry.serve_model("models/good"))
    registry.add_version("loop", "1", source="models:/loop/1")
    registry.add_version("ping", "1", source="models:/pong@back")
    registry.add_version("pong", "7", source="models:/ping/1", aliases=("back",))
    for number in range(1, 30):
        registry.add_version("chain", str(number), source=f"models:/chain/{number + 1}")
    yield registry
    registry.close()


@pytest.fixture(autouse=True)
def limits(monkeypatch, tmp_path):
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SIGSERVE_CACHE_DIR", str(tmp_path / "cache"))


def sources(registry: FakeRegistry) -> SourceSettings:
    """As `serve` reads them: the registry flag, and the limits and cache the fixture set above."""
    return SourceSettings.from_env(registry_uri=registry.url)


def refusal(uri: str, registry: FakeRegistry, within: float = 20.0) -> ModelLoadError:
    """What resolving `uri` raised: a ModelLoadError with a one-line message, in bounded time.
    Run in a thread so that a resolver that never ends fails the test instead of hanging it."""
    from sigserve.sources.source import resolve

    outcome: list[BaseException | object] = []
    settings = sources(registry)

    def attempt() -> None:
        try:
            outcome.append(resolve(uri, settings))
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the test reports it
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(within)
    assert outcome, f"resolving {uri} did not end within {within:g} s"
    error = outcome[0]
    assert isinstance(error, ModelLoadError), f"{uri}: expected a one-line load error, got {error!r}"
    assert len(error.message.splitlines()) == 1 and "Traceback" not in error.message, error.message
    return error


def add_listed(registry: FakeRegistry, name: str, listing, files=None) -> str:
    """A version whose artifacts are listed by `listing(path)` (and served by `files`)."""
    registry.add_version(name, "1", artifacts=f"mlflow-artifacts:/{name}")
    registry.listings[name] = listing
    if files is not None:
        registry.files[name] = files
    return f"models:/{name}/1"


def test_the_fake_serves_a_good_model(fake) -> None:
    """The baseline the other cases break: the same fake, honest, resolves and downloads."""
    from sigserve.sources.source import resolve

    resolved = resolve("models:/good/1", sources(fake))
    assert resolved.version == "1" and (resolved.path / "MLmodel").is_file()


@pytest.mark.parametrize("uri, chain", [
    ("models:/loop/1", "models:/loop/1 -> models:/loop/1"),
    ("models:/ping/1", "models:/ping/1 -> models:/pong@back -> models:/pong/7 -> models:/ping/1"),
])
def test_self_referencing_and_cyclic_sources(fake, uri: str, chain: str) -> None:
    started = len(fake.requests)
    error = refusal(uri, fake)
    assert f"its sources point back at themselves ({chain})" in error.message
    assert len(fake.requests) - started < 12  # found the cycle, did not go round it


def test_a_chain_of_sources_longer_than_the_limit(fake) -> None:
    error = refusal("models:/chain/1", fake)
    assert "more than 4 times" in error.message and "SIGSERVE_REGISTRY_MAX_DEPTH" in error.message
    assert not fake.paths("name=chain&version=7"), "followed the chain past the limit"


def test_an_endlessly_deep_listing(fake) -> None:
    uri = add_listed(fake, "deep", lambda path: [{"path": "d", "is_dir": True}])
    error = refusal(uri, fake)
    assert "nest directories more than 5 deep" in error.message
    assert "SIGSERVE_REGISTRY_MAX_LISTING_DEPTH" in error.message
    assert len(fake.paths("mlflow-artifacts/artifacts?path=deep")) <= 6


def test_a_listing_with_too_many_files_is_refused_before_any_download(fake) -> None:
    uri = add_listed(fake, "wide", lambda path: [{"path": f"f{i}", "is_dir": False, "file_size": 1}
                                                 for i in range(500)])
    error = refusal(uri, fake)
    assert "list more than 20 files" in error.message and "SIGSERVE_REGISTRY_MAX_FILES" in error.message
    assert not fake.paths("/mlflow-artifacts/artifacts/wide/")


def test_an_endless_download_stops_at_the_byte_cap(fake) -> None:
    uri = add_listed(fake, "endless", lambda path: [{"path": "MLmodel", "is_dir": False}], endless)
    started = time.monotonic()
    error = refusal(uri, fake)
    assert "went past the 262144 bytes allowed for one model" in error.message
    assert "SIGSERVE_REGISTRY_MAX_BYTES" in error.message and time.monotonic() - started < 10


def test_a_file_listed_over_the_byte_cap_is_not_fetched(fake) -> None:
    uri = add_listed(fake, "bulky", lambda path: [{"path": "weights.bin", "is_dir": False, "file_size": 10 << 30}])
    error = refusal(uri, fake)
    assert "is listed at 10737418240 bytes" in error.message and "SIGSERVE_REGISTRY_MAX_BYTES" in error.message
    assert not fake.paths("/mlflow-artifacts/artifacts/bulky/")


def test_a_trickling_download_ends_at_the_deadline(fake) -> None:
    """A byte every 50 ms never trips the 10 s read timeout; the 3 s deadline for the whole
    resolution ends it."""
    uri = add_listed(fake, "trickle", lambda path: [{"path": "MLmodel", "is_dir": False}], trickle(0.05))
    started = time.monotonic()
    error = refusal(uri, fake)
    elapsed = time.monotonic() - started
    assert "took longer than 3 s" in error.message and "SIGSERVE_REGISTRY_DEADLINE" in error.message
    assert 2.5 < elapsed < 10, elapsed


def test_malformed_and_unsafe_listings(fake) -> None:
    """Listings no MLflow server would send, each refused in one line, nothing written outside
    the cache."""
    cases = {
        "not-entries": ([1, 2], "not a file entry"),
        "not-a-list": ("abc", "without a list of files"),
        "climbing": ([{"path": "..", "is_dir": True}], "unsafe artifact name '..'"),
        "absolute": ([{"path": "/etc/passwd", "is_dir": False}], "unsafe artifact name '/etc/passwd'"),
        "newline": ([{"path": "MLmodel\nx", "is_dir": False}], "unsafe artifact name 'MLmodel\\nx'"),
        "not-text": ([{"path": {"a": 1}, "is_dir": False}], "unsafe artifact name {'a': 1}"),
    }
    for name, (files, expected) in cases.items():
        uri = add_listed(fake, name, lambda path, files=files: files)
        assert expected in refusal(uri, fake).message, name
    fake.add_version("escape", "1", artifacts="mlflow-artifacts:/models/../../etc")
    assert "its path has '.' or '..' parts" in refusal("models:/escape/1", fake).message


@pytest.mark.parametrize("field, value", [
    ("version", "1\r\nX-Injected: yes"), ("name", "evil\r\nX-Injected: yes"), ("source", "s3://b/m\x1b[2J"),
    ("current_stage", "Production\n2026-01-01 INFO forged line"), ("aliases", ["ok", "bad\nalias"]),
])
def test_control_characters_from_the_registry_are_refused(fake, field: str, value) -> None:
    record = fake.add_version("plain", "1", artifacts=fake.serve_model("models/plain"), aliases=("champ",))
    record[field] = value
    error = refusal("models:/plain@champ", fake)
    shown = repr(value if isinstance(value, str) else "bad\nalias")
    assert "control characters (CR, LF or the like)" in error.message and shown in error.message, error.message


def test_info_prints_one_line_for_a_cycle(fake, tmp_path) -> None:
    """The same through the CLI: exit 2 and one line on stderr, no traceback."""
    command = [sys.executable, "-m", "sigserve", "info", "-m", "models:/loop/1", "--registry-uri", fake.url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", (result.returncode, result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "point back at themselves" in result.stderr


def test_a_reload_to_a_version_with_crlf_is_refused_and_counted(fake, tmp_path) -> None:
    """An alias moved to a version whose number carries CR/LF: the server keeps answering as
    v1 (every response intact), counts one failed load, and no log line is forged."""
    fake.add_version("moving", "1", artifacts=fake.serve_model("models/moving1"), aliases=("champion",))
    env = {**LIMITS, "SIGSERVE_CACHE_DIR": str(tmp_path / "cache")}
    with SigserveServer("models:/moving@champion", "--registry-uri", fake.url, "--reload-interval", "0.2",
                        env=env) as server:
        assert server.post(ROW).headers["x-model-version"] == "moving/1"
        fake.add_version("moving", "2\r\nX-Injected: yes", artifacts=fake.serve_model("models/moving2"))
        fake.aliases[("moving", "champion")] = "2\r\nX-Injected: yes"
        assert wait_for(lambda: total(metric_samples(server.url), "sigserve_model_reload_failures_total",
                                      reason="load") == 1, 20), server.log()
        for _ in range(3):
            response = server.post(ROW)
            assert response.status_code == 200 and response.headers["x-model-version"] == "moving/1"
            assert "x-injected" not in response.headers
        assert httpx.get(server.url + "/metadata", timeout=10).json()["version"] == "1"
        assert wait_for(lambda: len(fake.paths("alias?name=moving")) >= 6, 10)  # polled on, not counted again
        assert total(metric_samples(server.url), "sigserve_model_reload_failures_total", reason="load") == 1
        log = server.log()
    assert "'2\\r\\nX-Injected: yes'" in log, log
    assert not any(line.startswith("X-Injected") for line in log.splitlines()), log
    assert not any("moving2" in entry.name for entry in Path(env["SIGSERVE_CACHE_DIR"]).iterdir())  # never fetched


def test_aliases_that_mlflow_or_a_header_would_refuse(tmp_path, capsys) -> None:
    """`registry register --alias` and `registry alias set` refuse them in one line: what MLflow
    3.17 refuses, and "champ\n", which MLflow's own check (`^[\w\-]*$`) lets through since `$`
    also matches before a final newline."""
    from fake_registry import DEMO_MODEL
    from sigserve.admin.cli import main

    database = ("--registry-uri", f"sqlite:///{tmp_path / 'registry.db'}")
    assert main(["register", *database, "--name", "m", "--path", str(DEMO_MODEL)]) == 0
    capsys.readouterr()
    for alias in ("champ\n", "champ\r\nX-Injected: yes", "v2", "Latest", "two words", "", "x" * 256):
        assert main(["register", *database, "--name", "m", "--path", str(DEMO_MODEL), "--alias", alias]) == 2
        refused = capsys.readouterr().err
        assert main(["alias", "set", *database, "--name", "m", "--version", "1", "--alias", alias]) == 2
        for error in (refused, capsys.readouterr().err):
            assert error.startswith("sigserve: ") and len(error.strip().splitlines()) == 1, (alias, error)
            assert "alias" in error.lower(), (alias, error)
    assert main(["show", *database, "m"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["aliases"] == {} and [v["version"] for v in shown["versions"]] == ["1"]
