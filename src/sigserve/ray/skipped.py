"""Refused rows sent by every actor to one file, as the local engine writes them: JSON Lines of
`{"row", "error", "values"}` (with `"file"` when the input is a folder)."""

from __future__ import annotations

import os
from typing import Any

import orjson

from sigserve.batch.run import Refused
from sigserve.codecs.json_encode import OPTIONS, default


def skipped_line(refused: Refused, file: str | None) -> bytes:
    """`file` None: the row's place is only that in its batch, which names nothing."""
    record: dict[str, Any] = {"row": refused.row, "error": refused.message, "values": refused.values}
    if file is None:
        del record["row"]
    elif file:
        record = {"file": file, **record}
    return orjson.dumps(record, default=default, option=OPTIONS) + b"\n"


class _SkippedFile:
    """Runs as a Ray actor on the driver's node, so a local path is the driver's; a URI
    (`s3://…`) is opened with pyarrow's filesystems. Opened at the first refused row."""

    def __init__(self, path: str) -> None:
        self.path, self.file, self.count = path, None, 0

    def add(self, lines: list[bytes]) -> None:
        if self.file is None:
            self.file = _open_output(self.path)
        self.file.write(b"".join(lines))
        self.count += len(lines)

    def close(self) -> int:
        if self.file is not None:
            self.file.close()
            self.file = None
        return self.count


def _open_output(path: str) -> Any:
    if "://" in path:
        from pyarrow import fs

        filesystem, inner = fs.FileSystem.from_uri(path)
        return filesystem.open_output_stream(inner)
    return open(path, "wb")  # noqa: SIM115 - closed by close()


class SkippedRows:
    """A handle to the file, picklable into `Predictor(on_error="skip", skipped=...)`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.path = os.fspath(path)
        if "://" not in self.path:
            self.path = os.path.abspath(self.path)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self.actor = ray.remote(num_cpus=0)(_SkippedFile).options(scheduling_strategy=here).remote(self.path)

    def add(self, lines: list[bytes]) -> None:
        import ray

        ray.get(self.actor.add.remote(lines))  # written before the batch is answered

    def close(self) -> int:
        """The number of rows written; the file is complete once this returns."""
        import ray

        count = ray.get(self.actor.close.remote())
        ray.kill(self.actor)
        return count
