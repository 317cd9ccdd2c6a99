#!/usr/bin/env python
"""Open Inference Protocol speed: REST-JSON, REST-binary and gRPC, sigserve vs MLServer 1.7, in one run.

One invocation saves each model with real MLflow (with a signature), serves them all from one
`sigserve serve -w 1` and from one `mlserver start` (the `mlserver_mlflow.MLflowRuntime`, in the
venv `setup_mlserver.sh` makes), builds the same tensors (one V2 input per signature column) as
a JSON body, a binary-extension body and a pre-serialized gRPC `ModelInferRequest`
(`raw_input_contents`), checks that every target answers every request with what MLflow's own
`pyfunc` predict gives, then times them in alternating rounds with C load generators: `wrk` for
REST, `h2load` (h2c, one gRPC frame per request) for gRPC. It prints medians of req/s, the
ratios, and each server's CPU time per request.

    bash benchmarks/setup_mlserver.sh          # once: MLServer's venv + h2load
    python benchmarks/bench_protocols.py --rounds 3 --duration 4

Only the ratios mean anything: the load generator shares the machine's cores with the servers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import bench_vs_mlflow as bench

HERE = Path(__file__).resolve().parent
REPO_SRC = HERE.parent / "src"
DEFAULT_VENV = HERE / ".venv-mlserver"
TARGETS = ("sigserve", "mlserver")
PROTOCOLS = ("json", "binary", "grpc")
DEFAULT_MODELS = ("logistic_regression", "churn_pipeline", "xgboost")
DEFAULT_ROWS = (1, 1000)
GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
READY_TIMEOUT_S = 180.0
# numpy dtype of each V2 datatype we send or may get back, little-endian as the protocol says
V2_DTYPES = {"BOOL": "|b1", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
             "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
PROTOCOL_LABEL = {"json": "REST JSON", "binary": "REST binary", "grpc": "gRPC"}


# --------------------------------------------------------------------------- requests


@dataclass
class Tensor:
    name: str
    datatype: str
    values: np.ndarray  # 1-D, one value per row (BYTES: str objects)

    def raw(self) -> bytes:
        """The tensor's bytes as binary HTTP and `raw_input_contents` carry them."""
        if self.datatype == "BYTES":
            return b"".join(struct.pack("<I", len(b)) + b for b in (str(v).encode() for v in self.values))
        return np.ascontiguousarray(self.values, dtype=V2_DTYPES[self.datatype]).tobytes()

    def json_data(self) -> list[Any]:
        return [str(v) for v in self.values] if self.datatype == "BYTES" else self.values.tolist()


@dataclass
class Requests:
    """One model's tensors for one row count, in the three encodings."""
    model: str
    served_name: str
    rows: int
    json_body: bytes
    binary_body: bytes
    binary_header_length: int
    grpc_frame: bytes  # 5-byte gRPC prefix + serialized ModelInferRequest


def tensors_for(frame: Any) -> list[Tensor]:
    """One V2 input per signature column, typed as the column is."""
    out = []
    for column in frame.columns:
        values = frame[column].to_numpy()
        kind = values.dtype.kind
        datatype = {"b": "BOOL", "i": "INT64", "f": "FP64"}.get(kind, "BYTES")
        if datatype == "INT64":
            values = values.astype(np.int64)
        out.append(Tensor(str(column), datatype, values))
    return out


def service_pb2() -> Any:
    """The V2 protocol's messages (package `inference`): tritonclient ships them generated."""
    from tritonclient.grpc import service_pb2 as pb

    return pb


def build_requests(model: str, served_name: str, rows: int) -> Requests:
    tensors = tensors_for(bench.model_rows(model, rows))
    json_body = json.dumps({"inputs": [{"name": t.name, "shape": [rows], "datatype": t.datatype,
                                        "data": t.json_data()} for t in tensors]}).encode()
    raws = [t.raw() for t in tensors]
    header = json.dumps({
        "inputs": [{"name": t.name, "shape": [rows], "datatype": t.datatype,
                    "parameters": {"binary_data_size": len(raw)}} for t, raw in zip(tensors, raws)],
        "parameters": {"binary_data_output": True},
    }).encode()
    pb = service_pb2()
    message = pb.ModelInferRequest(
        model_name=served_name,
        inputs=[pb.ModelInferRequest.InferInputTensor(name=t.name, datatype=t.datatype, shape=[rows])
                for t in tensors],
        raw_input_contents=raws,
    ).SerializeToString()
    return Requests(model, served_name, rows, json_body, header + b"".join(raws), len(header),
                    b"\x00" + struct.pack(">I", len(message)) + message)


# --------------------------------------------------------------------------- answers


def decode_raw(datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        out, i = [], 0
        while i < len(raw):
            (n,) = struct.unpack_from("<I", raw, i)
            out.append(raw[i + 4:i + 4 + n].decode())
            i += 4 + n
        return out
    return np.frombuffer(raw, dtype=V2_DTYPES[datatype]).tolist()


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def rest_outputs(status: int, headers: dict[str, str], body: bytes) -> list[list[Any]]:
    """Every output's values, from a JSON answer or a binary-extension one."""
    if status != 200:
        raise ValueError(f"HTTP {status}: {body[:300].decode(errors='replace')}")
    length = headers.get("inference-header-content-length")
    doc = json.loads(body[:int(length)] if length else body)
    out, offset = [], int(length or 0)
    for output in doc["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            out.append(decode_raw(output["datatype"], body[offset:offset + size]))
            offset += size
        else:
            out.append(np.asarray(output["data"]).ravel().tolist())
    return out


def grpc_outputs(response: Any) -> list[list[Any]]:
    contents_field = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
                      "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
                      "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
                      "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
    out = []
    for i, output in enumerate(response.outputs):
        if response.raw_output_contents:
            out.append(decode_raw(output.datatype, response.raw_output_contents[i]))
        else:
            values = list(getattr(output.contents, contents_field[output.datatype]))
            out.append([v.decode() if isinstance(v, bytes) else v for v in values])
    return out


@dataclass
class Answer:
    ok: bool
    outputs: list[list[Any]] = field(default_factory=list)
    error: str = ""
    grpc_frame_bytes: int = 0  # the successful answer's DATA bytes, for checking h2load's totals


def ask(target: str, protocol: str, req: Requests, urls: dict[str, str], grpc_addrs: dict[str, str],
        served_name: str) -> Answer:
    """Send the benchmark's own request once with a real client and read the predictions."""
    try:
        if protocol == "grpc":
            import grpc

            pb = service_pb2()
            message = req.grpc_frame[5:]
            with grpc.insecure_channel(grpc_addrs[target]) as channel:
                call = channel.unary_unary(GRPC_PATH, request_serializer=lambda b: b,
                                           response_deserializer=lambda b: b)
                raw = call(message, timeout=60)
            return Answer(True, grpc_outputs(pb.ModelInferResponse.FromString(raw)), grpc_frame_bytes=5 + len(raw))
        url = f"{urls[target]}/v2/models/{served_name}/infer"
        if protocol == "json":
            answer = http_post(url, req.json_body, {"Content-Type": "application/json"})
        else:
            answer = http_post(url, req.binary_body, {"Content-Type": "application/octet-stream",
                                                      "Inference-Header-Content-Length": str(req.binary_header_length)})
        return Answer(True, rest_outputs(*answer))
    except Exception as exc:  # a failed target is reported and not timed, never fatal
        return Answer(False, error=f"{type(exc).__name__}: {str(exc)[:300]}")


def mlflow_predictions(model_dir: Path, kind: str, rows: int) -> list[Any]:
    """What MLflow itself predicts for the benchmark's rows: every answer must be this."""
    import mlflow.pyfunc

    predictions = mlflow.pyfunc.load_model(str(model_dir)).predict(bench.model_rows(kind, rows))
    return np.asarray(predictions).ravel().tolist()


def same_predictions(expected: list[Any], outputs: list[list[Any]]) -> bool:
    """The first output's values (the prediction; output names differ between servers)."""
    return bool(outputs) and outputs[0] == expected


# --------------------------------------------------------------------------- servers


def sigserve_has_grpc() -> bool:
    out = subprocess.run([sys.executable, "-m", "sigserve", "serve", "--help"], capture_output=True, text=True,
                         env=sigserve_env()).stdout
    return "--grpc-port" in out


def sigserve_env() -> dict[str, str]:
    """The working tree's sigserve, whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_SRC), env.get("PYTHONPATH")]))
    return env


def start_sigserve(models: list[Path], port: int, grpc_port: int | None, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sigserve", "serve", *[a for m in models for a in ("-m", str(m))],
           "-h", "127.0.0.1", "-p", str(port), "-w", "1", "--no-access-log"]
    if grpc_port is not None:
        cmd += ["--grpc-port", str(grpc_port)]
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=sigserve_env(), start_new_session=True)


def start_mlserver(venv: Path, models: list[Path], root: Path, port: int, grpc_port: int, metrics_port: int,
                   parallel_workers: int, native_threads: int | None, log: Path) -> subprocess.Popen:
    """A model repository: settings.json, and one folder per model with its model-settings.json.

    Access log off (`debug: false`) and no gzip middleware, as sigserve has neither; the
    mlflow runtime loads the very model directory sigserve serves.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port, "metrics_port": metrics_port,
        "parallel_workers": parallel_workers, "debug": False, "gzip_enabled": False}))
    for model in models:
        (root / model.name).mkdir(exist_ok=True)
        (root / model.name / "model-settings.json").write_text(json.dumps({
            "name": model.name, "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": str(model)}}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    if native_threads:  # OpenMP's pools (xgboost's, scikit-learn's); left alone, they take every core
        env["OMP_NUM_THREADS"] = str(native_threads)
    return subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(root)], cwd=root, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def models_ready(url: str, names: list[str]) -> bool:
    try:
        for name in names:
            with urllib.request.urlopen(f"{url}/v2/models/{name}/ready", timeout=2) as resp:
                if resp.status != 200:
                    return False
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_ready(procs: dict[str, subprocess.Popen], urls: dict[str, str], names: list[str], logs: dict[str, Path]) -> None:
    start = time.monotonic()
    ready: set[str] = set()
    while time.monotonic() - start < READY_TIMEOUT_S:
        for target, proc in procs.items():
            if target in ready:
                continue
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited with {proc.returncode}:\n{bench.log_tail(logs[target])}")
            if models_ready(urls[target], names):
                ready.add(target)
                print(f"{target} ready at {urls[target]} after {time.monotonic() - start:.1f}s", flush=True)
        if len(ready) == len(procs):
            return
        time.sleep(0.2)
    late = [t for t in procs if t not in ready]
    raise RuntimeError(f"{late} not ready after {READY_TIMEOUT_S:.0f}s:\n"
                       + "\n".join(bench.log_tail(logs[t]) for t in late))


def session_pids(proc: subprocess.Popen) -> list[int]:
    """The server's processes: it was started in a session of its own."""
    out = subprocess.run(["ps", "-o", "pid=", "-s", str(proc.pid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU time of every process of the server, so far."""
    total = 0
    for pid in session_pids(proc):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load generators

LUA = """\
-- generated by bench_protocols.py: POST one fixed body, count non-2xx replies
local f = assert(io.open({body_path}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; sample = "" end
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if sample == "" and body then sample = status .. " " .. string.sub(body, 1, 200):gsub("[\\r\\n]", " ") end
  end
end
function done(summary, latency, requests)
  local total, first = 0, ""
  for _, t in ipairs(threads) do
    total = total + (t:get("non2xx") or 0)
    if first == "" then first = t:get("sample") or "" end
  end
  io.write("BENCH_NON2XX ", total, "\\n")
  if first ~= "" then io.write("BENCH_SAMPLE ", first, "\\n") end
end
"""


def write_body(workdir: Path, req: Requests, protocol: str) -> tuple[Path, Path]:
    """(body file, wrk script): the body file is what h2load posts for gRPC."""
    stem = f"{req.model}.{req.rows}.{protocol}"
    body = {"json": req.json_body, "binary": req.binary_body, "grpc": req.grpc_frame}[protocol]
    body_path = workdir / f"{stem}.body"
    body_path.write_bytes(body)
    headers = ({"Content-Type": "application/json"} if protocol == "json" else
               {"Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(req.binary_header_length)})
    script = workdir / f"{stem}.lua"
    script.write_text(LUA.format(body_path=json.dumps(str(body_path)), headers="\n".join(
        f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())))
    return body_path, script


@dataclass
class Run:
    rps: float = 0.0
    requests: int = 0
    failed: int = 0
    error: str = ""


def run_wrk(url: str, script: Path, duration: float, connections: int) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout=30s", "-s", str(script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90)
    parsed = bench.parse_wrk(proc.stdout + proc.stderr)
    failed = parsed.non_2xx + sum(parsed.socket_errors.values()) + (proc.returncode != 0)
    return Run(parsed.requests_per_sec, parsed.requests, failed,
               parsed.sample_error or (proc.stderr.strip()[:200] if proc.returncode else ""))


def run_h2load(url: str, body: Path, duration: float, connections: int, answer_bytes: int) -> Run:
    """One gRPC call per request over h2c, `connections` clients with one stream each.

    h2load counts HTTP 2xx only, and a failed gRPC call is an HTTP 200 with a grpc-status in
    its trailers and no message. So the calls are checked by their bytes: each success carries
    exactly `answer_bytes` of DATA (the answer measured once with a real gRPC client), and the
    run's DATA total must be that many bytes for every call done (and at most for every call
    started). h2load's own --warm-up-time would count the warm-up's bytes too: warm up apart.
    """
    cmd = ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{duration * 1000:.0f}ms", "-d", str(body),
           "-H", "content-type: application/grpc", "-H", "te: trailers", url + GRPC_PATH]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90)
    out = proc.stdout + proc.stderr
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", out)
    data = re.search(r"traffic: .*?, [\d.]+\w* \((\d+)\) data", out)
    if not rate or not m or not data or proc.returncode:
        return Run(0.0, 0, 1, f"h2load exit {proc.returncode}: {out.strip()[-300:]}")
    started, done, succeeded = int(m.group(2)), int(m.group(3)), int(m.group(4))
    run = Run(float(rate.group(1)), succeeded, done - succeeded)
    data_bytes = int(data.group(1))
    if not done * answer_bytes <= data_bytes <= started * answer_bytes:
        run.failed += max(done - data_bytes // max(answer_bytes, 1), 1)
        run.error = f"DATA {data_bytes} B for {done} calls of {answer_bytes} B: failed gRPC calls"
    return run


# --------------------------------------------------------------------------- report


@dataclass
class Cell:
    model: str
    rows: int
    protocol: str
    target: str
    status: str = "timed"  # or why not: "not supported: ...", "wrong answer: ..."
    rates: list[float] = field(default_factory=list)  # req/s, one per round
    cpu_us: list[float] = field(default_factory=list)  # the server's CPU µs per request, one per round
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates and self.status == "timed" else None

    @property
    def median_cpu_us(self) -> float | None:
        return statistics.median(self.cpu_us) if self.cpu_us and self.status == "timed" else None


def fmt_rate(cell: Cell) -> str:
    return f"{cell.median:,.0f}" if cell.median is not None else cell.status.split(":")[0]


def fmt_cpu(cell: Cell) -> str:
    return f"{cell.median_cpu_us:,.0f}" if cell.median_cpu_us is not None else "–"


def ratio(a: Cell, b: Cell) -> float | None:
    """Median over rounds of a's req/s over b's in the same round (measured minutes apart at most,
    so the machine's drift falls on both)."""
    if a.median is None or b.median is None:
        return None
    return statistics.median(x / y for x, y in zip(a.rates, b.rates) if y)


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def model_label(model: str) -> str:
    return {"logistic_regression": "LogisticRegression (iris, 4 columns)",
            "churn_pipeline": "Pipeline, string columns (churn, 5 columns)",
            "xgboost": "XGBClassifier (breast cancer, 30 columns)"}.get(model, model)


def verdict(value: float | None, want: float) -> str:
    return "not measured" if value is None else ("met" if value >= want else "MISSED")


def render(found: dict[tuple[str, int, str, str], Cell], models: list[str], rows_list: list[int],
           target_vs: float) -> tuple[str, list[str]]:
    """The tables, and one line per target (met / MISSED / not measured)."""
    cells = {(m, r, p, t): found.get((m, r, p, t)) or Cell(m, r, p, t, status="not run")
             for m in models for r in rows_list for p in PROTOCOLS for t in TARGETS}
    lines = ["| model | rows | protocol | sigserve req/s | MLServer req/s | sigserve / MLServer "
             "| sigserve CPU µs/req | MLServer CPU µs/req |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    verdicts: list[str] = []
    for model in models:
        for rows in rows_list:
            for protocol in PROTOCOLS:
                s, m = cells[(model, rows, protocol, "sigserve")], cells[(model, rows, protocol, "mlserver")]
                vs, note = ratio(s, m), ""
                if m.status.startswith("not supported") and protocol == "binary":
                    vs = ratio(s, cells[(model, rows, "json", "mlserver")])
                    note = " vs its JSON" if vs else ""
                lines.append(f"| {model_label(model)} | {rows:,} | {PROTOCOL_LABEL[protocol]} | {fmt_rate(s)} "
                             f"| {fmt_rate(m)} | {fmt_ratio(vs)}{note} | {fmt_cpu(s)} | {fmt_cpu(m)} |")
                verdicts.append(f"- {model}, {rows:,} row{'s' * (rows != 1)}, {PROTOCOL_LABEL[protocol]}: sigserve / MLServer "
                                f"{fmt_ratio(vs)}{note} (target ≥ {target_vs:g}×): {verdict(vs, target_vs)}")
    lines += ["", "| model | rows | sigserve gRPC / JSON | sigserve binary / JSON | target "
              "| sigserve CPU µs/req JSON / binary / gRPC | MLServer gRPC / JSON |", "|---|---:|---:|---:|---:|---:|---:|"]
    for model in models:
        for rows in rows_list:
            sj, sb, sg = (cells[(model, rows, p, "sigserve")] for p in PROTOCOLS)
            want = 1.0 if rows == 1 else 2.0
            g, b = ratio(sg, sj), ratio(sb, sj)
            mg = ratio(cells[(model, rows, "grpc", "mlserver")], cells[(model, rows, "json", "mlserver")])
            lines.append(f"| {model_label(model)} | {rows:,} | {fmt_ratio(g)} | {fmt_ratio(b)} | ≥ {want:g}× "
                         f"| {fmt_cpu(sj)} / {fmt_cpu(sb)} / {fmt_cpu(sg)} | {fmt_ratio(mg)} |")
            for name, value in (("gRPC", g), ("binary", b)):
                verdicts.append(f"- {model}, {rows:,} row{'s' * (rows != 1)}: sigserve {name} / JSON {fmt_ratio(value)} "
                                f"(target ≥ {want:g}×): {verdict(value, want)}")
    return "\n".join(lines), verdicts


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=[m for m in bench.MODELS if m != "pythonmodel"],
                   default=list(DEFAULT_MODELS))
    p.add_argument("--rows", nargs="+", type=int, default=list(DEFAULT_ROWS))
    p.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    p.add_argument("--rounds", type=int, default=3, help="timed runs per cell, targets alternating (median kept)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per timed run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of untimed load before each run")
    p.add_argument("--connections", type=int, default=4, help="concurrent connections (wrk -c, h2load -c, -m1)")
    p.add_argument("--mlserver-venv", type=Path, default=Path(os.environ.get("MLSERVER_VENV", DEFAULT_VENV)))
    p.add_argument("--mlserver-parallel-workers", type=int, default=1,
                   help="MLServer's inference worker processes (default 1, its own default, as `sigserve -w 1`; "
                        "MLServer's front-end process comes on top; 0 scores in the front-end process)")
    p.add_argument("--mlserver-native-threads", type=int, default=1,
                   help="OMP_NUM_THREADS for MLServer (default 1, what sigserve gives its own pools; 0: unset, "
                        "the libraries' default of one thread per core)")
    p.add_argument("--target-vs-mlserver", type=float, default=3.0)
    p.add_argument("--json-out", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (models, logs, bodies)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mlserver_bin = args.mlserver_venv / "bin" / "mlserver"
    missing = [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]
    if not mlserver_bin.exists():
        missing.append(f"{mlserver_bin} (run benchmarks/setup_mlserver.sh)")
    if missing:
        print(f"error: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    grpc_on = sigserve_has_grpc()
    workdir = Path(tempfile.mkdtemp(prefix="bench_protocols_"))
    procs: dict[str, subprocess.Popen] = {}
    cells: dict[tuple[str, int, str, str], Cell] = {}
    info: dict[str, Any] = {}
    try:
        model_dirs = [bench.build_model(workdir / "models", kind) for kind in args.models]
        names = [d.name for d in model_dirs]
        ports = {t: bench.free_port() for t in TARGETS}
        grpc_ports = {t: bench.free_port() for t in TARGETS}
        logs = {t: workdir / f"{t}.log" for t in TARGETS}
        procs["sigserve"] = start_sigserve(model_dirs, ports["sigserve"], grpc_ports["sigserve"] if grpc_on else None,
                                           logs["sigserve"])
        procs["mlserver"] = start_mlserver(args.mlserver_venv, model_dirs, workdir / "mlserver-repo",
                                           ports["mlserver"], grpc_ports["mlserver"], bench.free_port(),
                                           args.mlserver_parallel_workers, args.mlserver_native_threads,
                                           logs["mlserver"])
        urls = {t: f"http://127.0.0.1:{ports[t]}" for t in TARGETS}
        grpc_addrs = {t: f"127.0.0.1:{grpc_ports[t]}" for t in TARGETS}
        wait_ready(procs, urls, names, logs)
        mls_versions = subprocess.run([str(args.mlserver_venv / "bin" / "python"), "-c",
                                       "import mlserver, mlflow, sklearn, xgboost; print(mlserver.__version__, "
                                       "mlflow.__version__, sklearn.__version__, xgboost.__version__)"],
                                      capture_output=True, text=True).stdout.split()
        info = {"machine": bench.machine_info(),
                "mlserver": dict(zip(("mlserver", "mlflow", "scikit-learn", "xgboost"), mls_versions)),
                "h2load": subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip(),
                "processes": {t: len(session_pids(p)) for t, p in procs.items()},
                "process_commands": {t: subprocess.run(["ps", "-o", "args=", "-s", str(p.pid)], capture_output=True,
                                                       text=True).stdout.splitlines() for t, p in procs.items()},
                "sigserve_grpc": grpc_on}
        print(f"machine: {info['machine']}\nMLServer venv: {info['mlserver']}\nh2load: {info['h2load']}")
        print(f"processes: sigserve -w 1 → {info['processes']['sigserve']}, MLServer parallel_workers="
              f"{args.mlserver_parallel_workers} → {info['processes']['mlserver']}; MLServer OMP_NUM_THREADS="
              f"{args.mlserver_native_threads or 'unset'}; sigserve gRPC: "
              f"{'on' if grpc_on else 'not available (no --grpc-port)'}")
        for target, commands in info["process_commands"].items():
            print(f"{target} processes: " + "; ".join(c[:100] for c in commands))
        print(f"load: {args.rounds} rounds × {args.duration:g}s (+{args.warmup:g}s warm-up), {args.connections} "
              f"connections; wrk -t1 for REST, h2load -t1 -m1 for gRPC\n", flush=True)

        # correctness first: every target and protocol must give the same predictions
        plan: list[tuple[Requests, str, list[tuple[str, Path, Path, int]]]] = []  # (req, protocol, targets)
        for kind, model_dir in zip(args.models, model_dirs):
            for rows in args.rows:
                req = build_requests(kind, model_dir.name, rows)
                expected = mlflow_predictions(model_dir, kind, rows)
                for protocol in args.protocols:
                    body, script = write_body(workdir, req, protocol)
                    timed: list[tuple[str, Path, Path, int]] = []
                    for target in TARGETS:
                        cell = cells[(kind, rows, protocol, target)] = Cell(kind, rows, protocol, target)
                        if protocol == "grpc" and target == "sigserve" and not grpc_on:
                            cell.status = "not supported: no --grpc-port"
                            continue
                        answer = ask(target, protocol, req, urls, grpc_addrs, model_dir.name)
                        if not answer.ok:
                            cell.status = ("not supported: " if target == "mlserver" and protocol == "binary"
                                           else "failed: ") + answer.error[:160]
                        elif not same_predictions(expected, answer.outputs):
                            cell.status = (f"wrong answer: {str(answer.outputs[:1])[:80]} where MLflow predicts "
                                           f"{str(expected)[:80]}")
                        if cell.status != "timed":
                            print(f"  {kind} {rows} {protocol} {target}: {cell.status}", flush=True)
                            continue
                        timed.append((target, body, script, answer.grpc_frame_bytes))
                    plan.append((req, protocol, timed))
                agree = sum(len(t) for r, _, t in plan if r is req)
                print(f"checked {kind} at {rows} rows: {agree} target/protocol pairs answer what MLflow predicts",
                      flush=True)

        for round_no in range(args.rounds):  # each cell's targets swap places every round
            print(f"round {round_no + 1}/{args.rounds}", flush=True)
            for req, protocol, timed in plan:
                for target, body, script, answer_bytes in (timed if round_no % 2 == 0 else timed[::-1]):
                    cell = cells[(req.model, req.rows, protocol, target)]
                    warm = args.warmup > 0
                    if protocol == "grpc":
                        url = f"http://{grpc_addrs[target]}"
                        if warm:
                            run_h2load(url, body, args.warmup, args.connections, answer_bytes)
                        cpu_before = cpu_seconds(procs[target])
                        run = run_h2load(url, body, args.duration, args.connections, answer_bytes)
                    else:
                        url = f"{urls[target]}/v2/models/{req.served_name}/infer"
                        if warm:
                            run_wrk(url, script, args.warmup, args.connections)
                        cpu_before = cpu_seconds(procs[target])
                        run = run_wrk(url, script, args.duration, args.connections)
                    cpu = cpu_seconds(procs[target]) - cpu_before
                    cell.rates.append(run.rps)
                    cell.cpu_us.append(cpu / max(run.requests, 1) * 1e6)
                    cell.failed += run.failed
                    if run.error:
                        cell.errors.append(run.error)
                    print(f"  {req.model:<20} {req.rows:>5} {protocol:<6} {target:<8} {run.rps:>9.1f} req/s"
                          f"  {cell.cpu_us[-1]:>8.0f} µs CPU/request"
                          f"{f'  FAILED {run.failed}: {run.error}' if run.failed else ''}", flush=True)
    finally:
        for proc in procs.values():
            bench.stop_server(proc)

    table, verdicts = render(cells, args.models, args.rows, args.target_vs_mlserver)
    print("\n" + table + "\n\ntargets:\n" + "\n".join(verdicts))
    problems = [f"- {c.model} {c.rows} {c.protocol} {c.target}: {c.status if c.status != 'timed' else ''}"
                f"{f' {c.failed} failed requests ({c.errors[:1]})' if c.failed else ''}"
                for c in cells.values() if c.failed or c.status.startswith(("failed", "wrong"))]
    unsupported = [f"- {c.model} {c.rows} {c.protocol} {c.target}: {c.status}" for c in cells.values()
                   if c.status.startswith("not supported")]
    print("\nnot supported:\n" + ("\n".join(unsupported) or "- none"))
    print("\nproblems:\n" + ("\n".join(problems) or "- none (every answer checked, every request succeeded)"))
    if args.json_out:
        args.json_out.write_text(json.dumps({"info": info, "config": {k: str(v) for k, v in vars(args).items()},
                                             "cells": [asdict(c) | {"median": c.median, "median_cpu_us": c.median_cpu_us}
                                                       for c in cells.values()]},
                                            indent=2))
    if args.keep:
        print(f"\nkept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
