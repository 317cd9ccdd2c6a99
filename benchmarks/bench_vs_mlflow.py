#!/usr/bin/env python
"""Side-by-side load benchmark: `sigserve serve` vs `mlflow models serve`.

One invocation builds an iris LogisticRegression (or, with `--model`, a gradient-boosted
classifier) with real MLflow, starts both
servers on the same model directory, checks they return identical predictions
for every payload, then drives each with `wrk` (mlflow then sigserve, case by
case) and prints a markdown table of throughput and p99 ratios.

Absolute numbers are meaningless on a small box where wrk shares the CPUs with
the server; only the ratios are worth reading.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

READY_TIMEOUT_S = 120.0
SERVERS = ("mlflow", "sigserve")
MODELS = ("logistic_regression", "hist_gradient_boosting")
CASES: dict[str, tuple[str, int]] = {
    # name: (payload format, rows)
    "split_1": ("dataframe_split", 1),
    "split_1k": ("dataframe_split", 1000),
    "split_10k": ("dataframe_split", 10000),
    "records_1k": ("dataframe_records", 1000),
    "csv_1k": ("csv", 1000),
}


@dataclass
class Payload:
    case: str
    content_type: str
    body: bytes


@dataclass
class WrkResult:
    requests: int = 0
    requests_per_sec: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    sample_error: str = ""
    returncode: int = 0


@dataclass
class CaseResult:
    case: str
    parity_ok: bool
    parity_error: str = ""
    runs: dict[str, WrkResult] = field(default_factory=dict)


# --------------------------------------------------------------------------- model


def estimator_for(kind: str) -> Any:
    """The issue's model, or one sigserve has no closed-form predict for (`sklearn_linear.py`)."""
    if kind == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=50, random_state=0)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def build_model(root: Path, kind: str = "logistic_regression") -> Path:
    """Save the model with real MLflow so both servers read the exact same artifact."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = estimator_for(kind).fit(X, y)
    path = root / "iris_model"
    with warnings.catch_warnings():  # the "integer column(s)" hint is about missing values; irrelevant here
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(X, y)
    trusted = {"hist_gradient_boosting": ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]}
    mlflow.sklearn.save_model(model, str(path), signature=signature, input_example=X.head(3),
                              skops_trusted_types=trusted.get(kind))  # we built it: trusted
    return path


def iris_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Sample with replacement: iris has 150 rows and we need up to 10k, real column names kept."""
    from sklearn.datasets import load_iris

    X = load_iris(as_frame=True).data
    return X.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)


def make_payload(case: str) -> Payload:
    """Encode the rows the way an MLflow client would for that format."""
    fmt, rows = CASES[case]
    df = iris_rows(rows)
    if fmt == "csv":
        return Payload(case, "text/csv", df.to_csv(index=False).encode())
    if fmt == "dataframe_split":
        doc: dict[str, Any] = {"dataframe_split": {"columns": list(df.columns), "data": df.values.tolist()}}
    else:
        doc = {"dataframe_records": df.to_dict(orient="records")}
    return Payload(case, "application/json", json.dumps(doc).encode())


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    """Let the kernel pick, so parallel runs and leftover servers never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(name: str, model: Path, port: int) -> list[str]:
    if name == "mlflow":
        return ["mlflow", "models", "serve", "-m", str(model), "-h", "127.0.0.1",
                "-p", str(port), "-w", "1", "--env-manager", "local"]
    return ["sigserve", "serve", "-m", str(model), "-h", "127.0.0.1", "-p", str(port), "-w", "1",
            "--no-access-log"]


def server_env(name: str, mlflow_access_log: bool) -> dict[str, str]:
    """MLflow 3.17 refuses pickled sklearn models without the opt-in.

    Access logs are off on both sides (sigserve's `--no-access-log`; mlflow's
    uvicorn reads UVICORN_ACCESS_LOG), so both are measured scoring, not logging.
    """
    env = dict(os.environ)
    if name == "mlflow":
        env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
        if not mlflow_access_log:
            env["UVICORN_ACCESS_LOG"] = "false"
    return env


def start_server(name: str, model: Path, port: int, log_path: Path, mlflow_access_log: bool) -> subprocess.Popen:
    """New session so the whole tree (mlflow forks uvicorn via a shell) can be killed at once."""
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        server_command(name, model, port),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=server_env(name, mlflow_access_log), start_new_session=True,
    )


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def pings_ok(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/ping", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_all_ready(procs: dict[str, subprocess.Popen], urls: dict[str, str], workdir: Path,
                   start: float) -> dict[str, float]:
    """Poll every server's /ping in one loop, so each startup time is measured, not just the slowest.

    Fails fast with the log tail if a server dies instead of waiting out the timeout.
    """
    ready: dict[str, float] = {}
    while time.monotonic() - start < READY_TIMEOUT_S:
        for name, proc in procs.items():
            if name in ready:
                continue
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} before ready:\n"
                                   f"{log_tail(workdir / f'{name}.log')}")
            if pings_ok(urls[name]):
                ready[name] = time.monotonic() - start
        if len(ready) == len(procs):
            return ready
        time.sleep(0.1)
    late = [name for name in procs if name not in ready]
    raise RuntimeError(f"{', '.join(late)} not ready after {READY_TIMEOUT_S:.0f}s:\n"
                       + "\n".join(log_tail(workdir / f"{name}.log") for name in late))


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- parity


def post(url: str, payload: Payload, timeout: float = 60.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=payload.body, method="POST",
                                 headers={"Content-Type": payload.content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def check_parity(urls: dict[str, str], payload: Payload) -> str:
    """Return "" when both servers answer 200 with identical predictions, else what differed.

    Timing a server that answers wrongly would be meaningless, so this gates the load run.
    """
    answers: dict[str, Any] = {}
    problems: list[str] = []
    for name in SERVERS:
        try:
            status, body = post(f"{urls[name]}/invocations", payload)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            problems.append(f"{name}: request failed: {exc}")
            continue
        if status != 200:
            problems.append(f"{name}: HTTP {status}: {body[:500].decode(errors='replace')}")
            continue
        try:
            answers[name] = json.loads(body)["predictions"]
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{name}: unparseable response ({exc!r}): {body[:300].decode(errors='replace')}")
    if not problems and answers["mlflow"] != answers["sigserve"]:
        problems.append(f"predictions differ: mlflow {str(answers['mlflow'])[:200]} "
                        f"vs sigserve {str(answers['sigserve'])[:200]}")
    return "; ".join(problems)


# --------------------------------------------------------------------------- wrk

LUA_TEMPLATE = """\
-- generated by bench_vs_mlflow.py: POST one fixed body, count non-2xx per status
local f = assert(io.open({body_path}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = {content_type}

local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  codes = {{}}
  sample = ""
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    local key = tostring(status)
    codes[key] = (codes[key] or 0) + 1
    if sample == "" and body then
      sample = key .. " " .. string.sub(body, 1, 300):gsub("[\\r\\n]", " ")
    end
  end
end

function done(summary, latency, requests)
  local total, merged, first = 0, {{}}, ""
  for _, t in ipairs(threads) do
    total = total + (t:get("non2xx") or 0)
    for k, v in pairs(t:get("codes") or {{}}) do
      merged[k] = (merged[k] or 0) + v
    end
    local s = t:get("sample") or ""
    if first == "" then first = s end
  end
  io.write("BENCH_NON2XX ", total, "\\n")
  for k, v in pairs(merged) do
    io.write("BENCH_STATUS ", k, " ", v, "\\n")
  end
  if first ~= "" then io.write("BENCH_SAMPLE ", first, "\\n") end
end
"""


def lua_quote(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for these inputs


def write_lua(workdir: Path, payload: Payload) -> Path:
    """Body lives in its own file: 10k-row payloads are too big to inline comfortably in Lua source."""
    body_path = workdir / f"{payload.case}.body"
    body_path.write_bytes(payload.body)
    script = workdir / f"{payload.case}.lua"
    script.write_text(LUA_TEMPLATE.format(body_path=lua_quote(str(body_path)),
                                          content_type=lua_quote(payload.content_type)))
    return script


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """Pull throughput, latency percentiles and error counts out of `wrk --latency` text."""
    res = WrkResult()
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        res.requests_per_sec = float(m.group(1))
    if m := re.search(r"(\d+) requests in", output):
        res.requests = int(m.group(1))
    dist = output.split("Latency Distribution", 1)[-1] if "Latency Distribution" in output else ""
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", dist, re.MULTILINE):
            setattr(res, attr, to_ms(m.group(1), m.group(2)))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        res.socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    if m := re.search(r"^BENCH_NON2XX (\d+)", output, re.MULTILINE):
        res.non_2xx = int(m.group(1))
    elif m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        res.non_2xx = int(m.group(1))
    res.status_counts = {k: int(v) for k, v in re.findall(r"^BENCH_STATUS (\S+) (\d+)", output, re.MULTILINE)}
    if m := re.search(r"^BENCH_SAMPLE (.*)$", output, re.MULTILINE):
        res.sample_error = m.group(1).strip()
    return res


def run_wrk(url: str, script: Path, duration: float, connections: int, threads: int,
            wrk_timeout: float) -> tuple[WrkResult, str]:
    """wrk generates the load in C; a long --timeout keeps slow 10k-row replies as latency, not errors."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", f"--timeout={wrk_timeout:g}s",
           "--latency", "-s", str(script), f"{url}/invocations"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + wrk_timeout + 60)
    out = proc.stdout + proc.stderr
    res = parse_wrk(out)
    res.returncode = proc.returncode
    return res, out


# --------------------------------------------------------------------------- report


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    wrk_ver = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlflow": version_of("mlflow"),
        "sigserve": version_of("sigserve"),
        "scikit-learn": version_of("scikit-learn"),
        "uvicorn": version_of("uvicorn"),
        "wrk": wrk_ver[0].strip() if wrk_ver else "?",
    }


def fmt_ratio(num: float | None, den: float | None) -> str:
    if not num or not den:
        return "n/a"
    return f"{num / den:.2f}x"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def render_table(results: list[CaseResult]) -> str:
    head = ("| case | mlflow req/s | sigserve req/s | ratio (sigserve/mlflow) "
            "| mlflow p99 | sigserve p99 | p99 ratio (mlflow/sigserve) |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r.parity_ok:
            lines.append(f"| {r.case} | skipped | skipped | parity failed | | | |")
            continue
        m, s = r.runs["mlflow"], r.runs["sigserve"]
        lines.append(f"| {r.case} | {m.requests_per_sec:.1f} | {s.requests_per_sec:.1f} "
                     f"| {fmt_ratio(s.requests_per_sec, m.requests_per_sec)} "
                     f"| {fmt_ms(m.p99_ms)} | {fmt_ms(s.p99_ms)} | {fmt_ratio(m.p99_ms, s.p99_ms)} |")
    return "\n".join(lines)


def render_problems(results: list[CaseResult]) -> list[str]:
    """Errors are listed, never folded silently into req/s (wrk counts failed replies as requests)."""
    out: list[str] = []
    for r in results:
        if not r.parity_ok:
            out.append(f"- {r.case}: parity check failed: {r.parity_error}")
        for name, run in r.runs.items():
            sock = sum(run.socket_errors.values())
            if run.non_2xx or sock or run.returncode:
                detail = f"{run.non_2xx} non-2xx of {run.requests} {run.status_counts or ''}"
                if sock:
                    detail += f", socket errors {run.socket_errors}"
                if run.returncode:
                    detail += f", wrk exit {run.returncode}"
                if run.sample_error:
                    detail += f", first error body: {run.sample_error!r}"
                out.append(f"- {r.case} / {name}: {detail}")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per server per case")
    p.add_argument("--connections", type=int, default=4, help="wrk connections (-c)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (-t); keep low, wrk shares the CPUs")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unrecorded wrk load before each run (0: off)")
    p.add_argument("--wrk-timeout", type=float, default=30.0, help="wrk per-request timeout in seconds")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), metavar="CASE",
                   help=f"subset of cases to run (default all: {' '.join(CASES)})")
    p.add_argument("--model", choices=MODELS, default=MODELS[0],
                   help="the iris model to serve: the issue's LogisticRegression (default), or a gradient-boosted "
                        "classifier, whose predict sigserve leaves to scikit-learn")
    p.add_argument("--json-out", type=Path, default=None, help="write machine info and results as JSON here")
    p.add_argument("--mlflow-access-log", action="store_true",
                   help="leave mlflow's per-request uvicorn access log on (stock behaviour; sigserve's stays off)")
    p.add_argument("--keep-logs", action="store_true", help="print the server log paths and keep the temp dir")
    return p.parse_args(argv)


def bench_case(payload: Payload, urls: dict[str, str], workdir: Path, args: argparse.Namespace) -> CaseResult:
    """mlflow then sigserve, back to back, so both see the same machine conditions."""
    error = check_parity(urls, payload)
    result = CaseResult(payload.case, parity_ok=not error, parity_error=error)
    if error:
        print(f"  {payload.case}: PARITY FAILED: {error}", flush=True)
        return result
    script = write_lua(workdir, payload)
    for name in SERVERS:
        if args.warmup > 0:
            run_wrk(urls[name], script, args.warmup, args.connections, args.threads, args.wrk_timeout)
        run, raw = run_wrk(urls[name], script, args.duration, args.connections, args.threads, args.wrk_timeout)
        (workdir / f"{payload.case}.{name}.wrk.txt").write_text(raw)
        result.runs[name] = run
        print(f"  {payload.case:<11} {name:<8} {run.requests_per_sec:>9.1f} req/s  p99 {fmt_ms(run.p99_ms):>11}"
              f"  non-2xx {run.non_2xx}  socket errors {sum(run.socket_errors.values())}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: `wrk` not found on PATH. Install it (Debian/Ubuntu: `apt-get install wrk`, "
              "macOS: `brew install wrk`) and re-run.", file=sys.stderr)
        return 2
    for tool in ("mlflow", "sigserve"):
        if shutil.which(tool) is None:
            print(f"error: `{tool}` CLI not found on PATH; install it in this environment.", file=sys.stderr)
            return 2

    info = machine_info()
    print("# sigserve vs mlflow models serve\n")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"load: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (warmup {args.warmup:g}s), "
          f"1 server worker each, mlflow access log {'on' if args.mlflow_access_log else 'off'}, model {args.model}")
    print("note: wrk shares the CPUs with the servers; compare ratios, not absolute numbers.\n", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bench_vs_mlflow_"))
    procs: dict[str, subprocess.Popen] = {}
    results: list[CaseResult] = []
    try:
        model = build_model(workdir, args.model)
        urls: dict[str, str] = {}
        started = time.monotonic()
        for name in SERVERS:
            port = free_port()
            log_path = workdir / f"{name}.log"
            procs[name] = start_server(name, model, port, log_path, args.mlflow_access_log)
            urls[name] = f"http://127.0.0.1:{port}"
        for name, took in wait_all_ready(procs, urls, workdir, started).items():
            print(f"{name} ready at {urls[name]} {took:.1f}s after launch", flush=True)
        for case in args.cases:
            results.append(bench_case(make_payload(case), urls, workdir, args))
    finally:
        for proc in procs.values():
            stop_server(proc)
        if args.keep_logs:
            print(f"\nlogs and wrk output kept in {workdir}")

    print("\n" + render_table(results))
    problems = render_problems(results)
    print("\nproblems:\n" + ("\n".join(problems) if problems else "- none (all replies 2xx, no socket errors)"))
    for name in SERVERS:
        tail = log_tail(workdir / f"{name}.log", 15)
        if re.search(r"Traceback|ERROR|Exception", tail):
            print(f"\n{name} log tail:\n{tail}")

    if args.json_out:
        doc = {"machine": info, "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "results": [asdict(r) for r in results]}
        args.json_out.write_text(json.dumps(doc, indent=2))
        print(f"\nresults written to {args.json_out}")
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
