#!/usr/bin/env python
"""Decode-memory benchmark: a real `sigserve serve`'s peak RSS per request, by format and body size.

One invocation saves two small PythonModels with real MLflow (the mean of the first column,
so the answer stays one number at any row count): one with a column signature (x, a, b, c
doubles and an optional string s), one without. It starts `sigserve serve -w 1` on each, then
sends one request of each kind, one at a time. Before each, it resets the server process's
RSS high-water mark (`/proc/<pid>/clear_refs`, 5) and reads its RSS; after the answer it reads
`VmHWM`. The difference is what reading, decoding, enforcing and scoring that request cost at
its peak. Each kind gets a fresh server (so no memory freed by an earlier request is reused)
and is sent once, small, to warm its code path before it is measured.

Kinds: the ordinary formats at 10 000, 100 000 and 1 000 000 rows (`dataframe_split`,
`dataframe_records`, CSV, Parquet, KServe V2 JSON), then the hostile bodies of issue 11: a
100 000-column CSV (alone, and 4 at once), a Parquet body of 25 M constant rows, a 1 KB
Parquet dictionary page repeated into 50 GB, 64 MB of JSON `[[]]` rows, and the largest
body a model without a named signature must read whole (10 000 columns of `1`).

It prints a markdown table. Run it with `PYTHONPATH=<old checkout>/src` to measure another
version of sigserve; `--server-arg` passes a flag to every server.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow.pyfunc
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CSV, PARQUET, JSON = "text/csv", "application/vnd.apache.parquet", "application/json"
COLUMNS = ["x", "a", "b", "c"]
MiB = 1024 * 1024


class Mean(mlflow.pyfunc.PythonModel):
    """Pickled by value (it lives in __main__), so the server needs no code path for it."""

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, pd.DataFrame):
            return np.array([float(pd.to_numeric(model_input.iloc[:, 0], errors="coerce").mean())])
        return np.array([0.0])


@dataclass
class Kind:
    name: str
    model: str  # "named" or "unnamed"
    build: Callable[[], tuple[str, bytes]]
    path: str = "/invocations"
    parallel: int = 1


def frame(rows: int) -> pd.DataFrame:
    values = np.random.default_rng(0).random((rows, len(COLUMNS))).round(6)
    return pd.DataFrame(values, columns=COLUMNS)


def json_split(rows: int) -> tuple[str, bytes]:
    f = frame(rows)
    return JSON, orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": np.ascontiguousarray(f.to_numpy())}},
                              option=orjson.OPT_SERIALIZE_NUMPY)


def json_records(rows: int) -> tuple[str, bytes]:
    return JSON, orjson.dumps({"dataframe_records": frame(rows).to_dict(orient="records")})


def csv(rows: int) -> tuple[str, bytes]:
    return CSV, frame(rows).to_csv(index=False).encode()


def parquet(rows: int) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    frame(rows).to_parquet(buffer, index=False)
    return PARQUET, buffer.getvalue()


def v2(rows: int) -> tuple[str, bytes]:
    f = frame(rows)
    inputs = [{"name": c, "shape": [rows], "datatype": "FP64", "data": np.ascontiguousarray(f[c].to_numpy())} for c in COLUMNS]
    return JSON, orjson.dumps({"inputs": inputs}, option=orjson.OPT_SERIALIZE_NUMPY)


def wide_csv(columns: int = 100_000) -> tuple[str, bytes]:
    names = ",".join([*COLUMNS, *(f"c{i}" for i in range(columns - len(COLUMNS)))])
    return CSV, f"{names}\n{','.join('1' * columns)}\n".encode()


def parquet_bomb(rows: int = 25_000_000) -> tuple[str, bytes]:
    zeros = pa.array(np.zeros(rows))
    buffer = io.BytesIO()
    pq.write_table(pa.table(dict.fromkeys(COLUMNS, zeros)), buffer, compression="zstd", row_group_size=rows)
    return PARQUET, buffer.getvalue()


def dictionary_bomb(rows: int = 500_000, value_bytes: int = 100_000) -> tuple[str, bytes]:
    strings = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["a" * value_bytes]))
    table = pa.table({**{c: pa.array(np.ones(rows)) for c in COLUMNS}, "s": strings})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", store_schema=False)
    return PARQUET, buffer.getvalue()


def json_brackets(size: int = 64 * MiB - 64) -> tuple[str, bytes]:
    rows = (size - 40) // 5
    return JSON, b'{"dataframe_split": {"data": [' + b"[[]]," * (rows - 1) + b"[[]]]}}"


def json_split_wide(size: int = 58 * MiB, columns: int = 20) -> tuple[str, bytes]:
    """Too wide for the numeric fast path: orjson makes an object per value."""
    row = b"[" + b",".join([b"0.123456"] * columns) + b"]"
    rows = size // (len(row) + 1)
    names = orjson.dumps([*COLUMNS, *(f"e{i}" for i in range(columns - len(COLUMNS)))])
    return JSON, b'{"dataframe_split": {"columns": ' + names + b', "data": [' + b",".join([row] * rows) + b"]}}"


def parquet_long_strings(rows: int = 1_000_000, value_bytes: int = 200) -> tuple[str, bytes]:
    """Distinct, compressible strings: too many for a dictionary, so stored plain."""
    prefix = "a" * (value_bytes - 8)
    strings = pa.array([f"{prefix}{i:08d}" for i in range(rows)])
    buffer = io.BytesIO()
    table = pa.table({**{c: pa.array(np.ones(rows)) for c in COLUMNS}, "s": strings})
    pq.write_table(table, buffer, compression="zstd", use_dictionary=False)
    return PARQUET, buffer.getvalue()


def parquet_constant_columns(rows: int = 1_000_000, columns: int = 60) -> tuple[str, bytes]:
    ones = pa.array(np.ones(rows))
    buffer = io.BytesIO()
    pq.write_table(pa.table({f"c{i}": ones for i in range(columns)}), buffer, compression="zstd")
    return PARQUET, buffer.getvalue()


def unnamed_wide_ones(size: int = 64 * MiB - 64, columns: int = 10_000, sparse: bool = False) -> tuple[str, bytes]:
    """`1` in every cell (int64: 4 times the text), or in every other one (nulls: 5 times)."""
    header = ",".join(f"c{i}" for i in range(columns)).encode() + b"\n"
    row = b",".join(b"" if sparse and i % 2 else b"1" for i in range(columns)) + b"\n"
    return CSV, header + row * ((size - len(header)) // len(row))


def kinds(sizes: list[int]) -> list[Kind]:
    ordinary = [
        Kind(f"{label} {rows:,} rows", "named", lambda fn=fn, rows=rows: fn(rows), path)
        for rows in sizes
        for label, fn, path in (
            ("JSON dataframe_split", json_split, "/invocations"),
            ("JSON dataframe_records", json_records, "/invocations"),
            ("CSV", csv, "/invocations"),
            ("Parquet", parquet, "/invocations"),
            ("V2 JSON", v2, "/v2/models/named/infer"),
        )
    ]
    hostile = [
        Kind("CSV, 100 000 columns, 1 row", "named", wide_csv),
        Kind("CSV, 100 000 columns, 1 row, 4 at once", "named", wide_csv, parallel=4),
        Kind("Parquet, 25 M constant rows", "named", parquet_bomb),
        Kind("Parquet, one 100 KB string repeated 500 000 times", "named", dictionary_bomb),
        Kind("JSON, 64 MB of [[]] rows", "named", json_brackets),
        Kind("JSON dataframe_split, 20 columns, 58 MB (objects just under the decoded limit)", "named",
             json_split_wide),
        Kind("Parquet, 1 M distinct 200-byte strings (just under the decoded limit)", "named", parquet_long_strings),
        Kind("Parquet, no signature, 1 M rows of 60 constant doubles (just under the decoded limit)", "unnamed",
             parquet_constant_columns),
        Kind("CSV, no signature, 10 000 columns of 1, 64 MB", "unnamed", unnamed_wide_ones),
        Kind("CSV, no signature, 10 000 columns, 1 in every other cell, 64 MB", "unnamed",
             lambda: unnamed_wide_ones(sparse=True)),
    ]
    return ordinary + hostile


WARM_UP = {
    "JSON dataframe_split": lambda: json_split(10), "JSON dataframe_records": lambda: json_records(10),
    "CSV": lambda: csv(10), "Parquet": lambda: parquet(10), "V2 JSON": lambda: v2(10),
}


def warm_up_body(kind: Kind) -> tuple[str, bytes]:
    for prefix, build in WARM_UP.items():
        if kind.name.startswith(prefix):
            return build()
    return parquet(10) if "Parquet" in kind.name else (json_split(10) if "JSON" in kind.name else csv(10))


class Server:
    def __init__(self, model: Path, extra: list[str], workdir: Path, name: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        command = [sys.executable, "-m", "sigserve", "serve", "-m", str(model), "-p", str(self.port),
                   "--no-access-log", *extra]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/ping", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(field)

    def post(self, path: str, content_type: str, body: bytes) -> httpx.Response:
        return httpx.post(self.url + path, content=body, headers={"Content-Type": content_type}, timeout=600)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def measure(server: Server, kind: Kind, content_type: str, body: bytes) -> tuple[str, float, float]:
    """(statuses, peak RSS growth in MiB, seconds)."""
    warm_type, warm_body = warm_up_body(kind)
    server.post(kind.path, warm_type, warm_body)
    before = server.status_kib("VmRSS")
    Path(f"/proc/{server.process.pid}/clear_refs").write_text("5")
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(kind.parallel) as pool:
        try:
            responses = list(pool.map(lambda _: server.post(kind.path, content_type, body), range(kind.parallel)))
            statuses = ",".join(sorted({str(r.status_code) for r in responses}))
        except httpx.HTTPError as exc:
            statuses = f"no answer ({type(exc).__name__})"
    seconds = time.perf_counter() - started
    if not server.alive():
        return statuses + f", server died ({server.process.returncode})", float("nan"), seconds
    return statuses, (server.status_kib("VmHWM") - before) / 1024, seconds


def save_models(root: Path) -> dict[str, Path]:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    named = ModelSignature(inputs=Schema([*(ColSpec("double", c) for c in COLUMNS), ColSpec("string", "s", required=False)]))
    paths = {"named": root / "named", "unnamed": root / "unnamed"}
    mlflow.pyfunc.save_model(paths["named"], python_model=Mean(), signature=named, pip_requirements=["mlflow"])
    mlflow.pyfunc.save_model(paths["unnamed"], python_model=Mean(), pip_requirements=["mlflow"])
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--only", default=None, help="run only kinds whose name contains this text")
    parser.add_argument("--skip", action="append", default=[],
                        help="leave out kinds whose name contains this text (the 50 GB dictionary "
                             "bomb on a version that would decode it: 'repeated')")
    parser.add_argument("--server-arg", action="append", default=[], help="extra flag for sigserve serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        workdir = Path(tmp)
        models = save_models(workdir)
        rows = []
        for kind in kinds(args.rows):
            if (args.only and args.only not in kind.name) or any(text in kind.name for text in args.skip):
                continue
            content_type, body = kind.build()
            server = Server(models[kind.model], args.server_arg, workdir, kind.model)
            try:  # a fresh server each time: no memory kept from an earlier request to reuse
                status, peak, seconds = measure(server, kind, content_type, body)
            finally:
                server.stop()
            rows.append((kind.name, len(body), status, peak, seconds))
            print(f"{kind.name}: {len(body) / MiB:.2f} MiB body, {status}, peak +{peak:.0f} MiB, {seconds:.2f} s",
                  file=sys.stderr, flush=True)
    print("| request | body | answer | peak RSS growth | peak / body | time |")
    print("|---|---:|---|---:|---:|---:|")
    for name, size, status, peak, seconds in rows:
        print(f"| {name} | {_size(size)} | {status} | {peak:,.0f} MiB | {peak * MiB / size:,.1f}x | {seconds:.2f} s |")
    return 0


def _size(nbytes: int) -> str:
    return f"{nbytes / MiB:.1f} MiB" if nbytes >= MiB else f"{nbytes / 1024:.0f} KiB"


if __name__ == "__main__":
    sys.exit(main())
