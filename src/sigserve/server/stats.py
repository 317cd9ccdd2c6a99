"""Inference statistics per model version, in the shape of Triton's statistics extension
(`GET /v2/models[/{name}[/versions/{v}]]/stats`): counts and nanoseconds per phase.

Recording is a few integer additions per request on the event loop. With several workers each
one also writes its totals to a file in the metrics directory (at most every
`PUBLISH_SECONDS`, and before it answers a statistics request), and the answer sums every
worker's file, so it covers the whole server, the others' part at most that old.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from typing import Any

from sigserve.scoring import Phases

PUBLISH_SECONDS = 0.5
STATS_DIR = "inference-stats"  # under $PROMETHEUS_MULTIPROC_DIR; prometheus_client reads only its *.db files
_FIELDS = ("success_count", "success_ns", "fail_count", "fail_ns", "queue_ns", "input_ns", "infer_ns", "output_ns",
           "inference_count", "execution_count", "last_ns")


class VersionStats:
    """One model version's totals. `last_ns` is a perf_counter_ns time; batches maps a merged
    predict's rows to [executions, input ns, infer ns, output ns]."""

    __slots__ = (*_FIELDS, "batches")

    def __init__(self) -> None:
        for name in _FIELDS:
            setattr(self, name, 0)
        self.batches: dict[int, list[int]] = {}

    def add(self, other: dict[str, Any]) -> None:
        for name in _FIELDS:
            value = other.get(name, 0)
            setattr(self, name, max(self.last_ns, value) if name == "last_ns" else getattr(self, name) + value)
        for size, values in other.get("batches", {}).items():
            mine = self.batches.setdefault(int(size), [0, 0, 0, 0])
            for i, value in enumerate(values):
                mine[i] += value

    def as_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in _FIELDS}, "batches": self.batches}


class InferenceStats:
    """This worker's statistics, and the whole server's when workers share a metrics directory."""

    def __init__(self, shared_dir: str | None = None) -> None:
        self._versions: dict[tuple[str, str], VersionStats] = {}
        self._epoch_offset_ns = time.time_ns() - time.perf_counter_ns()  # both clocks tick alike
        self._dir = os.path.join(shared_dir, STATS_DIR) if shared_dir else None
        self._dirty = False
        self._publisher: asyncio.TimerHandle | None = None
        if self._dir is not None:  # the master, before workers fork: no totals of an earlier run
            shutil.rmtree(self._dir, ignore_errors=True)
            os.makedirs(self._dir, exist_ok=True)

    def _version(self, name: str, version: str) -> VersionStats:
        stats = self._versions.get((name, version))
        if stats is None:
            stats = self._versions[(name, version)] = VersionStats()
        return stats

    def succeeded(self, name: str, version: str, seconds: float, phases: Phases | None, rows: int | None) -> None:
        """A scored request: `seconds` from its arrival to its answer; its phases from `phases`."""
        stats = self._version(name, version)
        stats.success_count += 1
        stats.success_ns += int(seconds * 1e9)
        stats.inference_count += rows or 1
        self._dirty = True
        if phases is None or not phases.done:
            stats.execution_count += 1
            return
        compute_input, compute_infer, compute_output = (
            phases.prepared - phases.decode, phases.encode - phases.predict, phases.done - phases.encode)
        waited = phases.decode - phases.submitted if phases.submitted else 0  # for a slot or a thread
        stats.queue_ns += waited + phases.predict - phases.prepared  # and for a micro-batch
        stats.input_ns += compute_input
        stats.infer_ns += compute_infer
        stats.output_ns += compute_output
        stats.last_ns = phases.done
        first = phases.first_in_batch
        stats.execution_count += first
        if phases.batch_size:
            batch = stats.batches.get(phases.batch_size)
            if batch is None:
                batch = stats.batches[phases.batch_size] = [0, 0, 0, 0]
            batch[0] += first
            batch[1] += compute_input
            batch[2] += compute_infer if first else 0
            batch[3] += compute_output

    def failed(self, name: str, version: str, seconds: float) -> None:
        stats = self._version(name, version)
        stats.fail_count += 1
        stats.fail_ns += int(seconds * 1e9)
        self._dirty = True

    def start_publishing(self) -> None:
        """In each worker, on its event loop: its totals go to its file while it serves."""
        if self._dir is not None:
            self._schedule()

    def stop_publishing(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None
        self.publish()

    def _schedule(self) -> None:
        self._publisher = asyncio.get_running_loop().call_later(PUBLISH_SECONDS, self._tick)

    def _tick(self) -> None:
        self.publish()
        self._schedule()

    def publish(self) -> None:
        if self._dir is None or not self._dirty:
            return
        self._dirty = False
        document = {f"{name}\n{version}": stats.as_dict() for (name, version), stats in self._versions.items()}
        path = os.path.join(self._dir, f"{os.getpid()}.json")
        with contextlib.suppress(OSError):  # a full disk costs the other workers' view, not requests
            with open(path + ".tmp", "w") as out:
                json.dump(document, out)
            os.replace(path + ".tmp", path)

    def totals(self) -> dict[tuple[str, str], VersionStats]:
        """Every worker's totals summed (this worker's as of now)."""
        if self._dir is None:
            return self._versions
        self.publish()
        summed: dict[tuple[str, str], VersionStats] = {}
        for entry in os.scandir(self._dir):
            if not entry.name.endswith(".json"):
                continue
            try:
                with open(entry.path) as source:
                    document = json.load(source)
            except (OSError, ValueError):
                continue
            for key, values in document.items():
                name, _, version = key.partition("\n")
                summed.setdefault((name, version), VersionStats()).add(values)
        return summed

    def model_stats(self, name: str, version: str, stats: VersionStats | None) -> dict[str, Any]:
        """One entry of Triton's `model_stats`."""
        stats = stats or VersionStats()
        success = stats.success_count
        last_ms = (stats.last_ns + self._epoch_offset_ns) // 1_000_000 if stats.last_ns else 0
        return {
            "name": name,
            "version": version,
            "last_inference": last_ms,
            "inference_count": stats.inference_count,
            "execution_count": stats.execution_count,
            "inference_stats": {
                "success": _duration(success, stats.success_ns),
                "fail": _duration(stats.fail_count, stats.fail_ns),
                "queue": _duration(success, stats.queue_ns),
                "compute_input": _duration(success, stats.input_ns),
                "compute_infer": _duration(success, stats.infer_ns),
                "compute_output": _duration(success, stats.output_ns),
                "cache_hit": _duration(0, 0),
                "cache_miss": _duration(0, 0),
            },
            "batch_stats": [
                {"batch_size": size, "compute_input": _duration(count, input_ns),
                 "compute_infer": _duration(count, infer_ns), "compute_output": _duration(count, output_ns)}
                for size, (count, input_ns, infer_ns, output_ns) in sorted(stats.batches.items())
            ],
        }


def _duration(count: int, ns: int) -> dict[str, int]:
    return {"count": count, "ns": ns}
