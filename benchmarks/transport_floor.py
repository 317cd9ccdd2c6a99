#!/usr/bin/env python
"""What the transports cost with no work at all: uvicorn (HTTP/1.1) and grpc.aio (gRPC) answering fixed bytes.

`bench_protocols.py` reports each server's CPU time per request; this gives the part of it that
no server on these libraries can avoid. Both floors run on uvloop (as `sigserve serve` does),
one process each, driven by the same `wrk` / `h2load` runs as the benchmark (4 connections,
1-row iris requests), and print req/s and CPU µs per request, in alternating rounds.

    python benchmarks/transport_floor.py --rounds 3 --duration 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_protocols as bp
import bench_vs_mlflow as bench

JSON_ANSWER = b'{"model_name":"m","outputs":[{"name":"predict","datatype":"INT64","shape":[1],"data":[0]}]}'


def serve_http(port: int) -> None:
    import uvicorn

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": JSON_ANSWER})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", access_log=False, log_level="warning")


def serve_grpc(port: int) -> None:
    import grpc
    import uvloop

    answer = bp.service_pb2().ModelInferResponse(model_name="m").SerializeToString()

    async def infer(body: bytes, context: object) -> bytes:
        return answer

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)})])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.install()
    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", choices=["http", "grpc"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--connections", type=int, default=4)
    args = p.parse_args(argv)
    if args.serve:
        (serve_http if args.serve == "http" else serve_grpc)(args.port)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="transport_floor_"))
    req = bp.build_requests("logistic_regression", "m", 1)
    ports = {kind: bench.free_port() for kind in ("http", "grpc")}
    procs = {kind: subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)],
                                    start_new_session=True) for kind, port in ports.items()}
    rates: dict[str, list[float]] = {"http": [], "grpc": []}
    cpu: dict[str, list[float]] = {"http": [], "grpc": []}
    try:
        time.sleep(3)
        json_body, script = bp.write_body(workdir, req, "json")
        grpc_body, _ = bp.write_body(workdir, req, "grpc")
        answer_bytes = 5 + len(bp.service_pb2().ModelInferResponse(model_name="m").SerializeToString())
        for round_no in range(args.rounds):
            for kind in ("http", "grpc") if round_no % 2 == 0 else ("grpc", "http"):
                before = bp.cpu_seconds(procs[kind])
                if kind == "http":
                    run = bp.run_wrk(f"http://127.0.0.1:{ports[kind]}/", script, args.duration, args.connections)
                else:
                    run = bp.run_h2load(f"http://127.0.0.1:{ports[kind]}", grpc_body, args.duration,
                                        args.connections, answer_bytes)
                if run.failed:
                    print(f"{kind}: {run.failed} failed requests: {run.error}", file=sys.stderr)
                    return 1
                rates[kind].append(run.rps)
                cpu[kind].append((bp.cpu_seconds(procs[kind]) - before) / max(run.requests, 1) * 1e6)
    finally:
        for proc in procs.values():
            bench.stop_server(proc)
    print("| floor | req/s | CPU µs/req |\n|---|---:|---:|")
    for kind, label in (("http", "uvicorn, HTTP/1.1 POST"), ("grpc", "grpc.aio, unary call")):
        print(f"| {label} | {statistics.median(rates[kind]):,.0f} | {statistics.median(cpu[kind]):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
