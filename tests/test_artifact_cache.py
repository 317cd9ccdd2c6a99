"""The artifact cache: complete entries only, concurrent fetchers agree, partial entries refetched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sigserve.sources.registry.cache import COMPLETE_MARKER, ArtifactCache, cache_key

FETCH_IN_PROCESS = r'''
import sys, time
from pathlib import Path
from sigserve.sources.registry.cache import ArtifactCache
def fetch(destination: Path) -> None:
    (destination / "MLmodel").write_text("flavors: {}\n")
    time.sleep(0.3)
    (destination / "weights.bin").write_bytes(b"x" * 100_000)
    (destination / "fetched-by").write_text(sys.argv[2])
print(ArtifactCache(Path(sys.argv[1])).get_or_fetch("model-key", fetch))
'''


def test_fetches_once_then_hits(tmp_path: Path) -> None:
    calls = []

    def fetch(destination: Path) -> None:
        calls.append(destination)
        (destination / "MLmodel").write_text("flavors: {}\n")

    cache = ArtifactCache(tmp_path)
    first = cache.get_or_fetch("k", fetch)
    second = cache.get_or_fetch("k", fetch)
    assert first == second == tmp_path / "k"
    assert len(calls) == 1 and (first / COMPLETE_MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no staging directories left behind


def test_a_failed_fetch_leaves_nothing_usable(tmp_path: Path) -> None:
    def broken(destination: Path) -> None:
        (destination / "MLmodel").write_text("half")
        raise ConnectionError("cut short")

    cache = ArtifactCache(tmp_path)
    with pytest.raises(ConnectionError):
        cache.get_or_fetch("k", broken)
    assert not (tmp_path / "k").exists() and list(tmp_path.iterdir()) == []


def test_an_entry_without_the_marker_is_fetched_again(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "MLmodel").write_text("partial")

    def fetch(destination: Path) -> None:
        (destination / "MLmodel").write_text("complete")

    entry = ArtifactCache(tmp_path).get_or_fetch("k", fetch)
    assert (entry / "MLmodel").read_text() == "complete"


def test_concurrent_processes_see_one_complete_entry(tmp_path: Path) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-c", FETCH_IN_PROCESS, str(tmp_path), str(i)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    results = [p.communicate(timeout=60) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in results]
    paths = {out.strip() for out, _ in results}
    assert paths == {str(tmp_path / "model-key")}
    entry = tmp_path / "model-key"
    assert (entry / COMPLETE_MARKER).is_file() and len((entry / "weights.bin").read_bytes()) == 100_000
    assert [p.name for p in tmp_path.iterdir()] == ["model-key"]


def test_keys_are_readable_and_distinct() -> None:
    first = cache_key("http://server", "mlflow-artifacts:/1/models/m-1/artifacts")
    second = cache_key("http://other", "mlflow-artifacts:/1/models/m-1/artifacts")
    assert first != second and "m-1" in first
    assert "/" not in first and ":" not in first
