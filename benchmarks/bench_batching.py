#!/usr/bin/env python
"""Micro-batching benchmark: many concurrent 1-row clients, with and without `--batch-max-size`.

Three servers on the same iris model, one worker each: `mlflow models serve`, `sigserve serve`
and `sigserve serve --batch-max-size N`. wrk drives each in turn with the same 1-row
`dataframe_split` request from `--connections` clients (32 by default, as the issue asks) and the
table gives throughput, p50/p99 latency and the ratios to MLflow. Predictions are checked equal
on all three first. Only ratios mean anything on a machine where wrk shares the cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_vs_mlflow import (
    WrkResult,
    build_model,
    fmt_ms,
    free_port,
    make_payload,
    post,
    run_wrk,
    server_env,
    stop_server,
    wait_all_ready,
    write_lua,
)

SERVERS = ("mlflow", "sigserve", "sigserve-batched")


def command(name: str, model: Path, port: int, args: argparse.Namespace) -> list[str]:
    if name == "mlflow":
        return ["mlflow", "models", "serve", "-m", str(model), "-h", "127.0.0.1", "-p", str(port),
                "-w", "1", "--env-manager", "local"]
    batching = ["--batch-max-size", str(args.batch_max_size), "--batch-max-wait-ms", str(args.batch_max_wait_ms)]
    return ["sigserve", "serve", "-m", str(model), "-h", "127.0.0.1", "-p", str(port), "-w", "1",
            "--no-access-log", *(batching if name == "sigserve-batched" else [])]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per server")
    p.add_argument("--connections", type=int, default=32, help="concurrent wrk clients")
    p.add_argument("--batch-max-size", type=int, default=32)
    p.add_argument("--batch-max-wait-ms", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=1.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "mlflow", "sigserve"):
        if shutil.which(tool) is None:
            print(f"error: `{tool}` not found on PATH", file=sys.stderr)
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench_batching_"))
    procs: dict[str, subprocess.Popen] = {}
    results: dict[str, WrkResult] = {}
    try:
        model = build_model(workdir)
        urls = {}
        for name in SERVERS:
            port = free_port()
            log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
            procs[name] = subprocess.Popen(command(name, model, port, args), stdout=log, stderr=subprocess.STDOUT,
                                           env=server_env("mlflow" if name == "mlflow" else "sigserve", False),
                                           start_new_session=True)
            urls[name] = f"http://127.0.0.1:{port}"
        wait_all_ready(procs, urls, workdir, time.monotonic())
        payload = make_payload("split_1")
        answers = {name: post(f"{url}/invocations", payload) for name, url in urls.items()}
        if len({json.dumps(json.loads(body)) for _, body in answers.values()}) != 1 or {
            status for status, _ in answers.values()
        } != {200}:
            print(f"parity failed: {answers}", file=sys.stderr)
            return 1
        script = write_lua(workdir, payload)
        print(f"wrk -c{args.connections} -d{args.duration:g}s, 1-row dataframe_split, one worker each; "
              f"batching: --batch-max-size {args.batch_max_size} --batch-max-wait-ms {args.batch_max_wait_ms:g}\n")
        for name in SERVERS:
            if args.warmup > 0:
                run_wrk(urls[name], script, args.warmup, args.connections, 1, 30.0)
            results[name], _ = run_wrk(urls[name], script, args.duration, args.connections, 1, 30.0)
    finally:
        for proc in procs.values():
            stop_server(proc)
        shutil.rmtree(workdir, ignore_errors=True)

    base = results["mlflow"].requests_per_sec or float("nan")
    print("| server | req/s | vs mlflow | p50 | p99 | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in SERVERS:
        r = results[name]
        print(f"| {name} | {r.requests_per_sec:.1f} | {r.requests_per_sec / base:.2f}x | {fmt_ms(r.p50_ms)} | "
              f"{fmt_ms(r.p99_ms)} | {r.non_2xx + sum(r.socket_errors.values())} |")
    failed = any(r.non_2xx or sum(r.socket_errors.values()) for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
