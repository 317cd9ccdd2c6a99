#!/usr/bin/env python
"""Two versions of sigserve on the same model, in one run: a change's cost in throughput.

`--before REV` exports that git revision's `src/` (default HEAD) and runs it next to the working
tree, both as `python -m sigserve serve` on the same model, alternating wrk rounds so machine
noise falls on both alike. It prints req/s per round and the after/before ratio of the medians
for each model and case.

    python benchmarks/bench_before_after.py --before 4197ccc --model logistic_regression --model pythonmodel
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_vs_mlflow as bench

REPO = Path(__file__).resolve().parents[1]


def export_revision(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def start(source: Path | None, model: Path, port: int, log: Path, extra: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    command = [sys.executable, "-m", "sigserve", "serve", "-m", str(model), "-h", "127.0.0.1", "-p", str(port),
               "-w", "1", "--no-access-log", *extra]
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="HEAD", help="git revision to compare against (default HEAD)")
    parser.add_argument("--model", action="append", choices=bench.MODELS, help="repeatable (default logistic_regression)")
    parser.add_argument("--case", action="append", choices=sorted(bench.CASES), help="repeatable (default split_1)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="sigserve-before-after-"))
    before_source = export_revision(args.before, workdir)
    print(f"before: {args.before}   after: working tree   rounds: {args.rounds} x {args.duration:g}s, "
          f"{args.connections} connections\n")
    print("| model | case | before req/s | after req/s | after/before |")
    print("|---|---|---:|---:|---:|")
    for kind in args.model or ["logistic_regression"]:
        model = bench.build_model(workdir / "models", kind)
        urls, procs = {}, {}
        for side, source in (("before", before_source), ("after", None)):
            port = bench.free_port()
            urls[side] = f"http://127.0.0.1:{port}"
            procs[side] = start(source, model, port, workdir / f"{side}.log", [])
        try:
            bench.wait_all_ready(procs, urls, workdir, time.monotonic())
            for case in args.case or ["split_1"]:
                script = bench.write_lua(workdir, bench.make_payload(case, kind))
                rates: dict[str, list[float]] = {"before": [], "after": []}
                for round_number in range(args.rounds):
                    order = ("before", "after") if round_number % 2 == 0 else ("after", "before")
                    for side in order:
                        result, _ = bench.run_wrk(urls[side], script, args.duration, args.connections, args.threads, 60)
                        rates[side].append(result.requests_per_sec or 0.0)
                before, after = statistics.median(rates["before"]), statistics.median(rates["after"])
                print(f"| {kind} | {case} | {before:,.0f} | {after:,.0f} | {after / before:.3f} |", flush=True)
        finally:
            for proc in procs.values():
                bench.stop_server(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
