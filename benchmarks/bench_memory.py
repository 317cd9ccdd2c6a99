#!/usr/bin/env python
"""Memory benchmark: what N workers cost, `sigserve serve` vs `mlflow models serve`.

One invocation builds a large scikit-learn forest (about 200 MB in memory) with real
MLflow, then starts, one at a time, `sigserve serve -w 1`, `sigserve serve -w N`,
`mlflow models serve --workers 1` and `mlflow models serve --workers N` on it. Once
every worker has loaded the model, and again once they have all served scoring
requests, it sums PSS and RSS over the server's whole process tree. It prints a
markdown table with the "N workers / 1 worker" ratio of each server.

With `--models M` it builds M forests (different seeds, one directory each). sigserve
serves them all from one server (`-m p1 -m p2 …`, each scored at /invocations/<name>);
mlflow serves one model per server, so it runs one server per model, one after the
other, and the figures of their trees are added up.

sigserve loads the model once in the gunicorn master and forks the workers, so they
share its pages; mlflow loads the model again in every worker. PSS charges each shared
page to the processes sharing it in equal parts, so summed PSS is what the tree really
costs; summed RSS counts every shared page once per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_vs_mlflow import free_port, log_tail, pings_ok, version_of

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 15.0
SERVERS = ("sigserve", "mlflow")
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]  # skops refuses forests unless their Tree type is trusted
TOUCH_CPU_S = 0.03  # a worker whose CPU time grew this much has served a request; idle ones stay far below
MAX_TOUCH_ROUNDS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class ModelInfo:
    path: str
    estimators: int
    nodes: int
    arrays_mb: float  # the trees' node and value arrays, the bulk of the model
    file_mb: float
    loaded_rss_mb: float  # RSS growth of a fresh process loading the file with skops
    load_s: float
    fit_s: float
    save_s: float


@dataclass
class ProcMem:
    pid: int
    ppid: int
    role: str  # root, worker or other
    cmd: str
    pss_kb: int
    rss_kb: int
    uss_kb: int  # private pages only: what killing this one process would free


@dataclass
class RunResult:
    server: str
    workers: int
    servers: int = 1  # server processes started (mlflow: one per model), figures summed over them
    ok: bool = False
    error: str = ""
    ready_s: float = 0.0
    requests: int = 0
    failed_requests: int = 0
    untouched_workers: int = 0  # workers that served no request we could see
    idle_pss_mb: float = 0.0  # all workers up, no request served yet
    idle_rss_mb: float = 0.0
    pss_mb: float = 0.0  # after the scoring requests: the figures that count
    rss_mb: float = 0.0
    uss_mb: float = 0.0
    processes: list[ProcMem] = field(default_factory=list)


# --------------------------------------------------------------------------- model


def training_data(n_samples: int, n_features: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Noisy labels (flip_y) keep the trees splitting down to tiny leaves, which is what makes them big."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_samples, n_features=n_features,
                               n_informative=min(10, n_features), flip_y=0.3, random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(n_features)]), y


def tree_arrays_bytes(model: Any) -> tuple[int, int]:
    """Total nodes and bytes of every tree's node and value arrays."""
    nodes = size = 0
    for est in model.estimators_:
        state = est.tree_.__getstate__()
        nodes += est.tree_.node_count
        size += state["nodes"].nbytes + state["values"].nbytes
    return nodes, size


def measure_load(model_file: Path) -> tuple[float, float]:
    """RSS growth and wall time of loading the skops file in a fresh interpreter (MB, s)."""
    code = (
        "import json, sys, time\n"
        "import sklearn.ensemble, skops.io\n"
        "def rss():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS'))\n"
        "before, t = rss(), time.monotonic()\n"
        f"model = skops.io.load(sys.argv[1], trusted={TRUSTED_TYPES!r})\n"
        "print(json.dumps([(rss() - before) / 1024, time.monotonic() - t]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(model_file)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    rss_mb, load_s = json.loads(out.strip().splitlines()[-1])
    return rss_mb, load_s


def model_dir_name(index: int, count: int) -> str:
    """`forest_model` when there is one; `forest_1`, `forest_2`, … (sigserve's served names) when several."""
    return "forest_model" if count == 1 else f"forest_{index + 1}"


def build_model(root: Path, args: argparse.Namespace, index: int = 0) -> ModelInfo:
    """Grow an ExtraTreesClassifier and save it with real MLflow (skops, MLflow's default format).

    Model `index` uses seed `index` for its data and its trees, so several models share no pages.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import ExtraTreesClassifier

    X, y = training_data(args.n_samples, args.n_features, seed=index)
    started = time.monotonic()
    model = ExtraTreesClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth,
                                 n_jobs=-1, random_state=index).fit(X, y)
    fit_s = time.monotonic() - started
    model.n_jobs = None  # predict in the serving thread, as a default-built model would
    nodes, size = tree_arrays_bytes(model)
    path = root / model_dir_name(index, args.models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(X.head(100), y[:100])
    started = time.monotonic()
    mlflow.sklearn.save_model(model, str(path), signature=signature, skops_trusted_types=TRUSTED_TYPES)
    save_s = time.monotonic() - started
    model_file = path / "model.skops"
    loaded_rss_mb, load_s = measure_load(model_file)
    return ModelInfo(path=str(path), estimators=args.n_estimators, nodes=nodes, arrays_mb=size / 2**20,
                     file_mb=model_file.stat().st_size / 2**20, loaded_rss_mb=loaded_rss_mb, load_s=load_s,
                     fit_s=fit_s, save_s=save_s)


def make_payload(rows: int, n_features: int) -> bytes:
    """A `dataframe_split` body drawn from the training distribution."""
    X, _ = training_data(rows, n_features, seed=1)
    return json.dumps({"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}}).encode()


# --------------------------------------------------------------------------- /proc


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from `state` on (index 0 = state), or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def live_children() -> dict[int, list[int]]:
    """ppid -> pids of every process that is not a zombie."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) and stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    return children


def process_tree(root: int) -> dict[int, int]:
    """pid -> ppid for root and all its live descendants."""
    children = live_children()
    if (stat := proc_stat(root)) is None or stat[0] == "Z":
        return {}
    tree, todo = {root: int(stat[1])}, [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            tree[child] = pid
            todo.append(child)
    return tree


def cmdline(pid: int) -> str:
    """The command line, without the interpreter and with the script's directory dropped."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return ""
    if argv and Path(argv[0]).name.startswith("python"):
        argv = argv[1:]
    if argv and argv[0].startswith("/"):
        argv[0] = Path(argv[0]).name
    return " ".join(argv).strip()


def worker_pids(tree: dict[int, int]) -> list[int]:
    """The serving processes: leaves of the tree, minus multiprocessing's resource tracker.

    sigserve -w 1 is one process; gunicorn's workers are the master's children; mlflow runs
    `uvicorn` under its CLI, and with --workers N uvicorn spawns N workers and a tracker.
    """
    parents = set(tree.values())
    return sorted(pid for pid in tree if pid not in parents and "resource_tracker" not in cmdline(pid))


def cpu_seconds(pid: int) -> float:
    stat = proc_stat(pid)
    return (int(stat[11]) + int(stat[12])) / CLK_TCK if stat else 0.0  # utime + stime


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB counters of /proc/<pid>/smaps_rollup (Rss, Pss, Private_Dirty, ...)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def measure_tree(root: int) -> list[ProcMem]:
    tree = process_tree(root)
    workers = set(worker_pids(tree))
    result = []
    for pid, ppid in sorted(tree.items()):
        mem = smaps_rollup(pid)
        if not mem:
            continue
        role = "worker" if pid in workers else "root" if pid == root else "other"
        result.append(ProcMem(pid=pid, ppid=ppid, role=role, cmd=cmdline(pid)[:100], pss_kb=mem.get("Pss", 0),
                              rss_kb=mem.get("Rss", 0),
                              uss_kb=mem.get("Private_Clean", 0) + mem.get("Private_Dirty", 0)))
    return result


# --------------------------------------------------------------------------- servers


def server_command(name: str, models: list[str], port: int, workers: int) -> list[str]:
    """mlflow serves one model per server; sigserve serves every model given, one `-m` each."""
    if name == "mlflow":
        (model,) = models
        return ["mlflow", "models", "serve", "-m", model, "-h", "127.0.0.1", "-p", str(port),
                "--workers", str(workers), "--env-manager", "local"]
    model_flags = [flag for model in models for flag in ("-m", model)]
    return ["sigserve", "serve", *model_flags, "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]


def server_env(name: str) -> dict[str, str]:
    """Access logs off for mlflow's uvicorn, as sigserve writes none (memory barely cares, but keep it equal)."""
    env = dict(os.environ)
    if name == "mlflow":
        env["UVICORN_ACCESS_LOG"] = "false"
    return env


def start_server(name: str, models: list[str], port: int, workers: int, log_path: Path) -> subprocess.Popen:
    """New session, so the whole tree (mlflow runs uvicorn under its CLI) can be killed at once."""
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        server_command(name, models, port, workers),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=server_env(name), start_new_session=True,
    )


def scoring_paths(url: str, models: list[str]) -> list[str]:
    """Where to score each model: /invocations for a lone model, else /invocations/<name>.

    The names come from GET /metadata (models[].served_as), checked against the directories'
    names, which is what sigserve serves a local path as.
    """
    if len(models) == 1:
        return ["/invocations"]
    with urllib.request.urlopen(f"{url}/metadata", timeout=30) as resp:
        served = [m["served_as"] for m in json.loads(resp.read())["models"]]
    expected = [Path(model).name for model in models]
    if served != expected:
        raise RuntimeError(f"/metadata serves {served}, expected {expected}")
    return [f"/invocations/{name}" for name in served]



def workers_started(proc: subprocess.Popen, workers: int, log_path: Path) -> list[int] | None:
    """The worker pids once there are `workers` of them and each has logged uvicorn's
    "Started server process [pid]", which both servers print only after the model is loaded."""
    pids = worker_pids(process_tree(proc.pid))
    if len(pids) != workers:
        return None
    log = log_path.read_text(errors="replace")
    return pids if all(f"Started server process [{pid}]" in log for pid in pids) else None


def wait_ready(proc: subprocess.Popen, url: str, workers: int, log_path: Path) -> list[int]:
    """Poll until /ping answers and every worker is up; fail fast with the log tail if the server dies."""
    start = time.monotonic()
    while time.monotonic() - start < READY_TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before ready:\n{log_tail(log_path)}")
        if pings_ok(url) and (pids := workers_started(proc, workers, log_path)):
            return pids
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f}s:\n{log_tail(log_path)}")


def stop_tree(proc: subprocess.Popen) -> list[int]:
    """SIGTERM the process group, then SIGKILL the group and any descendant that left it.

    Returns the pids still alive afterwards (should be none).
    """
    def alive(pids: list[tuple[int, str]]) -> list[tuple[int, str]]:
        return [(pid, start) for pid, start in pids
                if (stat := proc_stat(pid)) and stat[0] != "Z" and stat[19] == start]  # same starttime: no pid reuse

    tracked = [(pid, stat[19]) for pid in process_tree(proc.pid) if (stat := proc_stat(pid))]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:
            for pid, _ in alive(tracked):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None and not alive(tracked):
                return []
            time.sleep(0.1)
    return [pid for pid, _ in alive(tracked)]


# --------------------------------------------------------------------------- requests


def score(url: str, body: bytes, rows: int) -> bool:
    """One scoring request to `url`; True when it answered 200 with one prediction per row."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status == 200 and len(json.loads(resp.read())["predictions"]) == rows
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
        return False


def exercise(url: str, body: bytes, rows: int, pids: list[int], requests: int) -> tuple[int, int, int]:
    """Send `requests` scoring requests to `url`, `len(pids)` at a time, then more until every
    worker has served some.

    The kernel hands each new connection to whichever worker accepts first, so a worker is
    known to have served one only by its CPU time growing. Returns (sent, failed, untouched).
    """
    cpu0 = {pid: cpu_seconds(pid) for pid in pids}
    sent = failed = 0
    with ThreadPoolExecutor(max_workers=len(pids)) as pool:
        for round_no in range(MAX_TOUCH_ROUNDS):
            batch = max(requests, 2 * len(pids)) if round_no == 0 else 2 * len(pids)
            oks = list(pool.map(lambda _: score(url, body, rows), range(batch)))
            sent, failed = sent + batch, failed + oks.count(False)
            untouched = [pid for pid in pids if cpu_seconds(pid) - cpu0[pid] < TOUCH_CPU_S]
            if not untouched:
                return sent, failed, 0
    return sent, failed, len(untouched)


def exercise_all(url: str, paths: list[str], body: bytes, rows: int, pids: list[int],
                 requests: int) -> tuple[int, int, int]:
    """`exercise` each model in turn, so every worker is seen serving every model; totals over them."""
    totals = [exercise(url + path, body, rows, pids, requests) for path in paths]
    return sum(t[0] for t in totals), sum(t[1] for t in totals), sum(t[2] for t in totals)


def settle(root: int, timeout: float = 20.0) -> None:
    """Wait until the tree's RSS stops moving (freed request buffers, lazy allocations)."""
    last = -1
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = sum(p.rss_kb for p in measure_tree(root))
        if last >= 0 and abs(total - last) <= max(1024, total // 200):
            return
        last = total
        time.sleep(1.0)


def bench_server(name: str, workers: int, models: list[str], body: bytes, log_path: Path,
                 args: argparse.Namespace) -> RunResult:
    """Start one server on `models`, wait for all its workers, score every model, measure its tree, stop it."""
    result = RunResult(server=name, workers=workers)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = start_server(name, models, port, workers, log_path)
    try:
        pids = wait_ready(proc, url, workers, log_path)
        result.ready_s = time.monotonic() - started
        paths = scoring_paths(url, models)
        settle(proc.pid)
        idle = measure_tree(proc.pid)
        result.idle_pss_mb = sum(p.pss_kb for p in idle) / 1024
        result.idle_rss_mb = sum(p.rss_kb for p in idle) / 1024
        result.requests, result.failed_requests, result.untouched_workers = exercise_all(
            url, paths, body, args.rows, pids, args.requests)
        settle(proc.pid)
        result.processes = measure_tree(proc.pid)
        result.pss_mb = sum(p.pss_kb for p in result.processes) / 1024
        result.rss_mb = sum(p.rss_kb for p in result.processes) / 1024
        result.uss_mb = sum(p.uss_kb for p in result.processes) / 1024
        measured_workers = [p.pid for p in result.processes if p.role == "worker"]
        result.ok = not result.failed_requests and not result.untouched_workers and len(measured_workers) == workers
        if not result.ok:
            result.error = (f"{result.failed_requests} failed requests, {result.untouched_workers} workers "
                            f"never seen serving, workers at measurement: {measured_workers}")
    except (RuntimeError, urllib.error.URLError, KeyError, ValueError) as exc:
        result.error = str(exc)
    finally:
        leftovers = stop_tree(proc)
        if leftovers:
            result.ok = False
            result.error += f" could not kill pids {leftovers}"
    return result


def combine(parts: list[RunResult]) -> RunResult:
    """Several servers measured one after the other, as one: they share nothing, so their figures add up."""
    total = RunResult(server=parts[0].server, workers=parts[0].workers, servers=len(parts),
                      ok=all(p.ok for p in parts),
                      error="; ".join(f"server {i + 1}: {p.error}" for i, p in enumerate(parts) if p.error))
    for name in ("ready_s", "requests", "failed_requests", "untouched_workers", "idle_pss_mb", "idle_rss_mb",
                 "pss_mb", "rss_mb", "uss_mb"):
        setattr(total, name, sum(getattr(p, name) for p in parts))
    total.processes = [proc for p in parts for proc in p.processes]
    return total


def bench_setup(name: str, workers: int, models: list[str], body: bytes, workdir: Path,
                args: argparse.Namespace) -> RunResult:
    """sigserve: one server for every model. mlflow: one server per model, one at a time, summed."""
    if name == "sigserve" or len(models) == 1:
        return bench_server(name, workers, models, body, workdir / f"{name}-w{workers}.log", args)
    return combine([bench_server(name, workers, [model], body, workdir / f"{name}-w{workers}-{Path(model).name}.log",
                                 args)
                    for model in models])


# --------------------------------------------------------------------------- report



def machine_info() -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "mem_gb": round(total_kb / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlflow": version_of("mlflow"),
        "sigserve": version_of("sigserve"),
        "scikit-learn": version_of("scikit-learn"),
        "skops": version_of("skops"),
        "gunicorn": version_of("gunicorn"),
        "uvicorn": version_of("uvicorn"),
    }


def find(results: list[RunResult], server: str, workers: int) -> RunResult | None:
    return next((r for r in results if r.server == server and r.workers == workers and r.ok), None)


def ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num and den else None


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def label(r: RunResult) -> str:
    """`mlflow ×2` for figures summed over two servers."""
    return r.server if r.servers == 1 else f"{r.server} ×{r.servers}"


def render_table(results: list[RunResult]) -> str:
    head = ("| server | workers | processes | total PSS MB | total RSS MB | total USS MB "
            "| idle PSS MB | idle RSS MB | ready s |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r.ok:
            lines.append(f"| {label(r)} | {r.workers} | failed | | | | | | |")
            continue
        lines.append(f"| {label(r)} | {r.workers} | {len(r.processes)} | {r.pss_mb:.0f} | {r.rss_mb:.0f} "
                     f"| {r.uss_mb:.0f} | {r.idle_pss_mb:.0f} | {r.idle_rss_mb:.0f} | {r.ready_s:.1f} |")
    return "\n".join(lines)


def ratios(results: list[RunResult], workers: int, models: int = 1) -> dict[str, float | None]:
    """N workers / 1 worker per server, and mlflow / sigserve at N workers (and at 1 when several models,
    where one sigserve process holding them all meets one mlflow server per model)."""
    out: dict[str, float | None] = {}
    for name in SERVERS:
        one, many = find(results, name, 1), find(results, name, workers)
        out[f"{name} PSS {workers}w/1w"] = ratio(many and many.pss_mb, one and one.pss_mb)
        out[f"{name} RSS {workers}w/1w"] = ratio(many and many.rss_mb, one and one.rss_mb)
        out[f"{name} idle PSS {workers}w/1w"] = ratio(many and many.idle_pss_mb, one and one.idle_pss_mb)
    for count in ((1, workers) if models > 1 else (workers,)):
        sig, mlf = find(results, "sigserve", count), find(results, "mlflow", count)
        out[f"mlflow/sigserve PSS at {count}w"] = ratio(mlf and mlf.pss_mb, sig and sig.pss_mb)
        out[f"mlflow/sigserve RSS at {count}w"] = ratio(mlf and mlf.rss_mb, sig and sig.rss_mb)
    return out


def render_processes(r: RunResult) -> list[str]:
    head = (f"  {label(r)} -w {r.workers}: {r.requests} requests, {r.failed_requests} failed, "
            f"{r.untouched_workers} workers not seen serving")
    lines = [head]
    for p in r.processes:
        lines.append(f"    {p.pid:>7} {p.role:<6} PSS {p.pss_kb / 1024:7.1f}  RSS {p.rss_kb / 1024:7.1f}  "
                     f"USS {p.uss_kb / 1024:7.1f}  {p.cmd[:60]}")
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=100_000, help="training rows (more rows: bigger trees)")
    p.add_argument("--n-features", type=int, default=20, help="training columns")
    p.add_argument("--n-estimators", type=int, default=34, help="trees (about 5.6 MB of tree arrays each at the defaults)")
    p.add_argument("--max-depth", type=int, default=None, help="tree depth limit (default: fully grown)")
    p.add_argument("--models", type=int, default=1, help="forests to build and serve: sigserve serves them all "
                   "from one server, mlflow from one server per model")
    p.add_argument("--workers", type=int, default=4, help="worker count compared with 1")
    p.add_argument("--rows", type=int, default=1000, help="rows per scoring request")
    p.add_argument("--requests", type=int, default=200, help="scoring requests sent before measuring (more "
                   "follow if some worker has served none)")
    p.add_argument("--target", type=float, default=1.5, help="sigserve's PSS ratio N workers / 1 worker (same "
                   "models) must not exceed this")
    p.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS), help="servers to measure")
    p.add_argument("--json-out", type=Path, default=None, help="write machine info, model and results as JSON here")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir (model and server logs)")
    args = p.parse_args(argv)
    if args.models < 1:
        p.error("--models must be at least 1")
    return args


def title(args: argparse.Namespace) -> str:
    if args.models == 1:
        return f"# memory: {args.workers} workers vs 1, sigserve vs mlflow models serve"
    return (f"# memory: {args.models} models, {args.workers} workers vs 1, sigserve (one server) vs "
            f"mlflow models serve (one server per model)")


def describe_model(model: ModelInfo, count: int) -> str:
    name = "model" if count == 1 else f"model {Path(model.path).name}"
    return (f"{name}: ExtraTreesClassifier, {model.estimators} trees, {model.nodes:,} nodes, "
            f"tree arrays {model.arrays_mb:.0f} MB, model.skops {model.file_mb:.0f} MB, "
            f"RSS growth on load {model.loaded_rss_mb:.0f} MB (load {model.load_s:.1f}s, "
            f"fit {model.fit_s:.1f}s, save {model.save_s:.1f}s)")


def describe_run(r: RunResult) -> str:
    status = (f"PSS {r.pss_mb:.0f} MB, RSS {r.rss_mb:.0f} MB, ready in {r.ready_s:.1f}s"
              if r.ok else f"FAILED: {r.error}")
    return f"{label(r)} -w {r.workers}: {status}"


def target_line(args: argparse.Namespace, sig_ratio: float | None, met: bool) -> str:
    models = "" if args.models == 1 else f" with {args.models} models,"
    return (f"target: sigserve{models} {args.workers} workers <= {args.target:g}x one worker (PSS): "
            f"{'MET' if met else 'NOT MET'} ({fmt_ratio(sig_ratio)})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in args.servers:
        if shutil.which(tool) is None:
            print(f"error: `{tool}` CLI not found on PATH; install it in this environment.", file=sys.stderr)
            return 2

    began = time.monotonic()
    info = machine_info()
    print(title(args) + "\n")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    models: list[ModelInfo] = []
    results: list[RunResult] = []
    try:
        for index in range(args.models):
            models.append(build_model(workdir, args, index))
            print(describe_model(models[-1], args.models), flush=True)
        paths = [model.path for model in models]
        body = make_payload(args.rows, args.n_features)
        for name in args.servers:
            for workers in (1, args.workers):
                results.append(bench_setup(name, workers, paths, body, workdir, args))
                print(describe_run(results[-1]), flush=True)
    finally:
        if args.keep_logs:
            print(f"\nmodel and server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print("\n" + render_table(results) + "\n")
    summary = ratios(results, args.workers, args.models)
    for key, value in summary.items():
        print(f"{key}: {fmt_ratio(value)}")
    sig_ratio = summary[f"sigserve PSS {args.workers}w/1w"]
    met = sig_ratio is not None and sig_ratio <= args.target
    if "sigserve" in args.servers:
        print("\n" + target_line(args, sig_ratio, met))
    print("\nprocesses (MB):\n" + "\n".join(line for r in results for line in render_processes(r)))
    print(f"\ntotal time {time.monotonic() - began:.0f}s")

    if args.json_out:
        doc = {"machine": info, "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "model": asdict(models[0]), "models": [asdict(m) for m in models],
               "results": [asdict(r) for r in results], "ratios": summary, "target_met": met}
        args.json_out.write_text(json.dumps(doc, indent=2))
        print(f"results written to {args.json_out}")
    if any(not r.ok for r in results):
        return 1
    return 0 if met or "sigserve" not in args.servers else 1


if __name__ == "__main__":
    sys.exit(main())
