#!/usr/bin/env python
"""Side-by-side load benchmark: `sigserve serve` vs `mlflow models serve` vs a bare floor server.

One invocation builds a model with real MLflow (an iris LogisticRegression by default; `--model`
picks a gradient-boosted classifier, a scikit-learn pipeline over string columns, a random forest,
xgboost, lightgbm or a PythonModel), starts the servers on the same model directory, checks they
return identical predictions for every payload, then drives each with `wrk` (mlflow, sigserve,
then the floor, case by case) and prints a markdown table of throughput and p99 ratios.

The floor (`floor_server.py`, on by default, `--no-floor` to skip it) is a bare Starlette +
orjson endpoint that builds the DataFrame without checks and calls the model's predict function:
what a server costs when it does nothing but parse, predict and encode.

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
SERVERS = ("mlflow", "sigserve", "floor")
MODELS = ("logistic_regression", "hist_gradient_boosting", "churn_pipeline", "random_forest", "xgboost",
          "lightgbm", "pythonmodel")
DATASET = {  # the rows each model is trained on, and scored with
    "logistic_regression": "iris", "hist_gradient_boosting": "iris", "churn_pipeline": "churn",
    "random_forest": "breast_cancer", "xgboost": "breast_cancer", "lightgbm": "breast_cancer",
    "pythonmodel": "breast_cancer",
}
FLOOR_SCRIPT = Path(__file__).resolve().parent / "floor_server.py"
PYFUNC_MODULE = Path(__file__).resolve().parent / "bench_pyfunc_model.py"
FLOOR_TARGET_CASES = ("split_1", "split_1k")
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
    floor_parity_error: str = ""  # the floor is then not timed; mlflow and sigserve still are
    runs: dict[str, WrkResult] = field(default_factory=dict)


# --------------------------------------------------------------------------- model


def estimator_for(kind: str) -> Any:
    """The issue's model, or one sigserve has no closed-form predict for (`sklearn_linear.py`)."""
    if kind == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=50, random_state=0)
    if kind == "churn_pipeline":
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        preprocess = ColumnTransformer([
            ("scale", StandardScaler(), ["tenure", "monthly_charges"]),
            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ], remainder="passthrough")  # paperless (bool) goes through as is
        return Pipeline([("prep", preprocess), ("clf", LogisticRegression(max_iter=500))])
    if kind == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1)
    if kind == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=100, max_depth=6, random_state=0)
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=100, random_state=0, verbose=-1)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def training_data(kind: str) -> tuple[pd.DataFrame, Any]:
    dataset = DATASET[kind]
    if dataset == "churn":
        return churn_frame(2000, seed=7)
    if dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        return load_breast_cancer(return_X_y=True, as_frame=True)
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True, as_frame=True)


def build_model(root: Path, kind: str = "logistic_regression") -> Path:
    """Save the model with real MLflow so all servers read the exact same artifact."""
    from mlflow.models import infer_signature

    X, y = training_data(kind)
    path = root / f"{kind}_model"
    if kind == "pythonmodel":
        return build_pythonmodel(path, X)
    model = estimator_for(kind).fit(X, y)
    with warnings.catch_warnings():  # the "integer column(s)" hint is about missing values; irrelevant here
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(X, y)
    # requirements given, not inferred: inference runs the model in a subprocess, ~10 s each
    requirements = {"xgboost": ["xgboost"], "lightgbm": ["lightgbm", "scikit-learn", "skops"]}
    common = {"signature": signature, "input_example": X.head(3),
              "pip_requirements": requirements.get(kind, ["scikit-learn", "skops"])}
    if kind == "xgboost":
        import mlflow.xgboost

        mlflow.xgboost.save_model(model, str(path), **common)
    elif kind == "lightgbm":
        import mlflow.lightgbm

        mlflow.lightgbm.save_model(model, str(path), **common)
    else:
        import mlflow.sklearn

        trusted = {"hist_gradient_boosting": ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
                   "random_forest": ["sklearn.tree._tree.Tree"]}
        mlflow.sklearn.save_model(model, str(path), skops_trusted_types=trusted.get(kind),  # we built it: trusted
                                  **common)
    return path


def build_pythonmodel(path: Path, X: pd.DataFrame) -> Path:
    """A PythonModel with an artifact: a weighted sum of the columns, weights in an .npy file.

    Its class lives in `bench_pyfunc_model.py`, saved with the model as `code_paths`, so every
    server process imports it by name.
    """
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import infer_signature

    sys.path.insert(0, str(PYFUNC_MODULE.parent))
    from bench_pyfunc_model import WeightedSum

    weights_path = path.parent / "weights.npy"
    np.save(weights_path, np.random.default_rng(0).normal(size=X.shape[1]))
    model = WeightedSum()
    model.weights = np.load(weights_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(X, model.predict(None, X.head(20)))
    mlflow.pyfunc.save_model(str(path), python_model=model, artifacts={"weights": str(weights_path)},
                             code_paths=[str(PYFUNC_MODULE)], signature=signature, input_example=X.head(3),
                             pip_requirements=["mlflow", "numpy", "pandas"])
    return path


def churn_frame(n: int, seed: int) -> tuple[pd.DataFrame, Any]:
    """A churn table (int64, float, two string columns and a bool) and a target that depends on
    every column, as tests/zoo/sklearn_models.py builds it."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "tenure": rng.integers(0, 72, n).astype(np.int64),
        "monthly_charges": rng.normal(65, 30, n).round(2),
        "plan": rng.choice(["basic", "standard", "premium"], n),
        "region": rng.choice(["north", "south", "east", "west"], n),
        "paperless": rng.random(n) < 0.5,
    })
    score = (-0.04 * frame["tenure"] + 0.03 * frame["monthly_charges"]
             + frame["plan"].map({"basic": 1.0, "standard": 0.0, "premium": -1.0})
             + frame["region"].eq("south") * 0.8 + frame["paperless"] * 0.5)
    return frame, (score + rng.normal(0, 0.5, n) > score.median()).astype(np.int64).to_numpy()


def model_rows(kind: str, n: int, seed: int = 0) -> pd.DataFrame:
    """Rows valid for the model's signature: fresh churn rows (same columns, dtypes and string
    values as training), or rows sampled with replacement from the training set, real column
    names kept (iris has 150 rows, breast_cancer 569, and we need up to 10k)."""
    if DATASET[kind] == "churn":
        return churn_frame(n, seed=1000 + seed)[0]
    X, _ = training_data(kind)
    return X.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)


def iris_rows(n: int, seed: int = 0) -> pd.DataFrame:
    return model_rows("logistic_regression", n, seed)


def make_payload(case: str, kind: str = "logistic_regression") -> Payload:
    """Encode the rows the way an MLflow client would for that format."""
    fmt, rows = CASES[case]
    df = model_rows(kind, rows)
    if fmt == "csv":
        return Payload(case, "text/csv", df.to_csv(index=False).encode())
    columns = list(df.columns)
    data = [list(row) for row in zip(*(df[c].tolist() for c in columns))]  # native Python values
    if fmt == "dataframe_split":
        doc: dict[str, Any] = {"dataframe_split": {"columns": columns, "data": data}}
    else:
        doc = {"dataframe_records": [dict(zip(columns, row)) for row in data]}
    return Payload(case, "application/json", json.dumps(doc).encode())


def sigserve_loader(model: Path) -> str:
    """Which sigserve loader serves this model: a native one, or MLflow's (`mlflow_fallback`)."""
    try:
        from sigserve.loaders.flavors import find_loader
        from sigserve.model.mlmodel import read_mlmodel

        meta = read_mlmodel(model)
        loader = find_loader(meta)
        return f"{loader.__module__}.{loader.__name__} (loader_module {meta.loader_module})"
    except Exception as exc:  # informational only
        return f"unknown ({type(exc).__name__}: {exc})"


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
    if name == "floor":
        return [sys.executable, str(FLOOR_SCRIPT), "-m", str(model), "-H", "127.0.0.1", "-p", str(port)]
    return ["sigserve", "serve", "-m", str(model), "-h", "127.0.0.1", "-p", str(port), "-w", "1",
            "--no-access-log"]


def server_env(name: str, mlflow_access_log: bool) -> dict[str, str]:
    """MLflow 3.17 refuses pickled sklearn models without the opt-in.

    Access logs are off on all sides (sigserve's `--no-access-log`; mlflow's
    uvicorn reads UVICORN_ACCESS_LOG; the floor runs uvicorn with access_log=False), so all
    are measured scoring, not logging. The floor loads through MLflow too, and its native
    pools get one thread, as sigserve's do by default.
    """
    env = dict(os.environ)
    if name in ("mlflow", "floor"):
        env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    if name == "mlflow" and not mlflow_access_log:
        env["UVICORN_ACCESS_LOG"] = "false"
    if name == "floor":
        env["OMP_NUM_THREADS"] = "1"
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


def fetch_predictions(url: str, payload: Payload) -> tuple[Any, str]:
    """(predictions, "") for a 200 with a `predictions` key, else (None, what went wrong)."""
    try:
        status, body = post(f"{url}/invocations", payload)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return None, f"request failed: {exc}"
    if status != 200:
        return None, f"HTTP {status}: {body[:500].decode(errors='replace')}"
    try:
        return json.loads(body)["predictions"], ""
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"unparseable response ({exc!r}): {body[:300].decode(errors='replace')}"


def check_parity(urls: dict[str, str], payload: Payload) -> tuple[str, str]:
    """("", "") when every server answers 200 with identical predictions, else what differed:
    first between mlflow and sigserve, then between mlflow and the floor (if it runs).

    Timing a server that answers wrongly would be meaningless, so this gates the load run:
    a mlflow/sigserve difference skips the case, a floor difference only the floor's run.
    """
    answers: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in urls:
        answers[name], problem = fetch_predictions(urls[name], payload)
        if problem:
            problems[name] = problem
    main = [f"{name}: {problems[name]}" for name in ("mlflow", "sigserve") if name in problems]
    if not main and answers["mlflow"] != answers["sigserve"]:
        main.append(f"predictions differ: mlflow {str(answers['mlflow'])[:200]} "
                    f"vs sigserve {str(answers['sigserve'])[:200]}")
    floor = ""
    if "floor" in urls:
        if "floor" in problems:
            floor = f"floor: {problems['floor']}"
        elif "mlflow" in answers and "mlflow" not in problems and answers["floor"] != answers["mlflow"]:
            floor = (f"floor predictions differ from mlflow's: floor {str(answers['floor'])[:200]} "
                     f"vs mlflow {str(answers['mlflow'])[:200]}")
    return "; ".join(main), floor


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
        "xgboost": version_of("xgboost"),
        "lightgbm": version_of("lightgbm"),
        "uvicorn": version_of("uvicorn"),
        "wrk": wrk_ver[0].strip() if wrk_ver else "?",
    }


def fmt_ratio(num: float | None, den: float | None) -> str:
    if not num or not den:
        return "n/a"
    return f"{num / den:.2f}x"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def render_table(results: list[CaseResult], floor: bool = False) -> str:
    if not floor:
        head = ("| case | mlflow req/s | sigserve req/s | ratio (sigserve/mlflow) "
                "| mlflow p99 | sigserve p99 | p99 ratio (mlflow/sigserve) |")
        lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    else:
        head = ("| case | mlflow req/s | sigserve req/s | floor req/s | sigserve/mlflow | sigserve/floor "
                "| mlflow p99 | sigserve p99 | floor p99 | p99 ratio (mlflow/sigserve) |")
        lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r.parity_ok:
            lines.append(f"| {r.case} | skipped | skipped | skipped | parity failed | | | | | |" if floor
                         else f"| {r.case} | skipped | skipped | parity failed | | | |")
            continue
        m, s = r.runs["mlflow"], r.runs["sigserve"]
        if not floor:
            lines.append(f"| {r.case} | {m.requests_per_sec:.1f} | {s.requests_per_sec:.1f} "
                         f"| {fmt_ratio(s.requests_per_sec, m.requests_per_sec)} "
                         f"| {fmt_ms(m.p99_ms)} | {fmt_ms(s.p99_ms)} | {fmt_ratio(m.p99_ms, s.p99_ms)} |")
            continue
        f = r.runs.get("floor")
        lines.append(f"| {r.case} | {m.requests_per_sec:.1f} | {s.requests_per_sec:.1f} "
                     f"| {f'{f.requests_per_sec:.1f}' if f else 'floor parity failed'} "
                     f"| {fmt_ratio(s.requests_per_sec, m.requests_per_sec)} "
                     f"| {fmt_ratio(s.requests_per_sec, f.requests_per_sec if f else None)} "
                     f"| {fmt_ms(m.p99_ms)} | {fmt_ms(s.p99_ms)} | {fmt_ms(f.p99_ms if f else None)} "
                     f"| {fmt_ratio(m.p99_ms, s.p99_ms)} |")
    return "\n".join(lines)


def floor_targets(results: list[CaseResult], target: float) -> list[str]:
    """sigserve must keep `target` of the floor's throughput at 1 and 1 000 rows (split_1, split_1k)."""
    out: list[str] = []
    for r in results:
        if r.case not in FLOOR_TARGET_CASES:
            continue
        floor, sig = r.runs.get("floor"), r.runs.get("sigserve")
        if not r.parity_ok or floor is None or sig is None or not floor.requests_per_sec:
            out.append(f"- {r.case}: sigserve/floor >= {target:.2f}: not measured")
            continue
        ratio = sig.requests_per_sec / floor.requests_per_sec
        out.append(f"- {r.case}: sigserve/floor = {ratio:.2f} (target >= {target:.2f}): "
                   f"{'met' if ratio >= target else 'MISSED'}")
    return out


def render_problems(results: list[CaseResult]) -> list[str]:
    """Errors are listed, never folded silently into req/s (wrk counts failed replies as requests)."""
    out: list[str] = []
    for r in results:
        if not r.parity_ok:
            out.append(f"- {r.case}: parity check failed: {r.parity_error}")
        if r.floor_parity_error:
            out.append(f"- {r.case}: floor parity check failed (floor not timed): {r.floor_parity_error}")
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
                   help="the model to serve: the issue's iris LogisticRegression (default); an iris "
                        "HistGradientBoostingClassifier; a churn Pipeline (scaler + one-hot over string columns, "
                        "LogisticRegression); a breast-cancer RandomForestClassifier, XGBClassifier, LGBMClassifier; "
                        "or a PythonModel (weighted sum, weights from an artifact)")
    p.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the floor server (floor_server.py: Starlette + orjson, no checks); default on")
    p.add_argument("--floor-target", type=float, default=0.90,
                   help="sigserve/floor throughput target at split_1 and split_1k (default 0.90)")
    p.add_argument("--json-out", type=Path, default=None, help="write machine info and results as JSON here")
    p.add_argument("--mlflow-access-log", action="store_true",
                   help="leave mlflow's per-request uvicorn access log on (stock behaviour; sigserve's stays off)")
    p.add_argument("--keep-logs", action="store_true", help="print the server log paths and keep the temp dir")
    return p.parse_args(argv)


def bench_case(payload: Payload, urls: dict[str, str], workdir: Path, args: argparse.Namespace) -> CaseResult:
    """mlflow, sigserve, then the floor, back to back, so all see the same machine conditions."""
    error, floor_error = check_parity(urls, payload)
    result = CaseResult(payload.case, parity_ok=not error, parity_error=error, floor_parity_error=floor_error)
    if error:
        print(f"  {payload.case}: PARITY FAILED: {error}", flush=True)
        return result
    if floor_error:
        print(f"  {payload.case}: FLOOR PARITY FAILED (floor not timed): {floor_error}", flush=True)
    script = write_lua(workdir, payload)
    for name in urls:
        if name == "floor" and floor_error:
            continue
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

    servers = [name for name in SERVERS if name != "floor" or args.floor]
    info = machine_info()
    print("# sigserve vs mlflow models serve" + (" vs floor" if args.floor else "") + "\n")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"load: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (warmup {args.warmup:g}s), "
          f"1 server worker each, mlflow access log {'on' if args.mlflow_access_log else 'off'}, model {args.model}"
          f"{', floor: floor_server.py (Starlette + orjson, 1 native thread)' if args.floor else ''}")
    print("note: wrk shares the CPUs with the servers; compare ratios, not absolute numbers.\n", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bench_vs_mlflow_"))
    procs: dict[str, subprocess.Popen] = {}
    results: list[CaseResult] = []
    loader = floor_loader = ""
    try:
        model = build_model(workdir, args.model)
        loader = sigserve_loader(model)
        print(f"sigserve loader: {loader}", flush=True)
        urls: dict[str, str] = {}
        started = time.monotonic()
        for name in servers:
            port = free_port()
            log_path = workdir / f"{name}.log"
            procs[name] = start_server(name, model, port, log_path, args.mlflow_access_log)
            urls[name] = f"http://127.0.0.1:{port}"
        for name, took in wait_all_ready(procs, urls, workdir, started).items():
            print(f"{name} ready at {urls[name]} {took:.1f}s after launch", flush=True)
        for line in (workdir / "sigserve.log").read_text(errors="replace").splitlines():
            if re.search(r"sigserve\.(loader|model)", line):  # what was loaded, how, and any shortcut taken
                print(f"sigserve log: {line.strip()}", flush=True)
        if args.floor:
            floor_loader = next((ln for ln in (workdir / "floor.log").read_text(errors="replace").splitlines()
                                 if ln.startswith('{"floor"')), "")
            print(f"floor: {floor_loader}", flush=True)
        for case in args.cases:
            results.append(bench_case(make_payload(case, args.model), urls, workdir, args))
    finally:
        for proc in procs.values():
            stop_server(proc)
        if args.keep_logs:
            print(f"\nlogs and wrk output kept in {workdir}")

    print("\n" + render_table(results, floor=args.floor))
    if args.floor:
        print("\ntargets:\n" + "\n".join(floor_targets(results, args.floor_target) or ["- none of the cases run"]))
    problems = render_problems(results)
    print("\nproblems:\n" + ("\n".join(problems) if problems else "- none (all replies 2xx, no socket errors)"))
    for name in servers:
        tail = log_tail(workdir / f"{name}.log", 15)
        if re.search(r"Traceback|ERROR|Exception", tail):
            print(f"\n{name} log tail:\n{tail}")

    if args.json_out:
        doc = {"machine": info, "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "sigserve_loader": loader, "floor_loader": floor_loader,
               "results": [asdict(r) for r in results]}
        args.json_out.write_text(json.dumps(doc, indent=2))
        print(f"\nresults written to {args.json_out}")
    if not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
