"""Test helpers: building real MLflow models, and running real sigserve processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

TESTS_DIR = Path(__file__).parent

ALL_TYPES = [
    ("i", "integer"), ("l", "long"), ("f", "float"), ("d", "double"),
    ("s", "string"), ("b", "boolean"), ("t", "datetime"), ("y", "binary"),
]


REQUIREMENTS = ["mlflow", "pandas", "numpy"]
IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ONE_ROW = {"dataframe_split": {"columns": IRIS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
SKLEARN_REQUIREMENTS = ["scikit-learn"]


@contextlib.contextmanager
def mlflow_sqlite_tracking(root: Path) -> Iterator[tuple[str, str]]:
    """MLflow pointed at `root/mlflow.db` (artifacts in `root/mlruns`) for the block: the URI and
    the id of an experiment to log into; the previous tracking URI is restored after."""
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri, mlflow.create_experiment("serving", artifact_location=(root / "mlruns").as_uri())
    finally:
        mlflow.set_tracking_uri(previous)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_models(root: Path) -> dict[str, Path]:
    """Every model the suite uses, saved by the real MLflow."""
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
    from mlflow.types.schema import AnyType, Array, Map, Object, Property
    from models import pyfunc_models
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression, Ridge

    paths: dict[str, Path] = {}
    iris = load_iris(as_frame=True)
    features, target = iris.data, iris.target
    classifier = LogisticRegression(max_iter=500).fit(features, target)
    signature = infer_signature(features, classifier.predict(features))

    paths["sklearn_skops"] = root / "sklearn_skops"
    mlflow.sklearn.save_model(classifier, paths["sklearn_skops"], signature=signature,
                              input_example=features.iloc[:3], pip_requirements=SKLEARN_REQUIREMENTS)
    paths["sklearn_pickle"] = root / "sklearn_pickle"
    mlflow.sklearn.save_model(classifier, paths["sklearn_pickle"], signature=signature,
                              serialization_format="pickle", pip_requirements=SKLEARN_REQUIREMENTS)
    paths["sklearn_cloudpickle"] = root / "sklearn_cloudpickle"
    mlflow.sklearn.save_model(classifier, paths["sklearn_cloudpickle"], signature=signature,
                              serialization_format="cloudpickle", pyfunc_predict_fn="predict_proba",
                              pip_requirements=SKLEARN_REQUIREMENTS)

    sepals_and_petal_length = features[IRIS[:3]]
    regressor = Ridge().fit(sepals_and_petal_length, features[IRIS[3]])
    paths["sklearn_regressor"] = root / "sklearn_regressor"
    mlflow.sklearn.save_model(regressor, paths["sklearn_regressor"],
                              signature=infer_signature(sepals_and_petal_length, regressor.predict(sepals_and_petal_length)),
                              pip_requirements=SKLEARN_REQUIREMENTS)

    array_classifier = LogisticRegression(max_iter=500).fit(features.to_numpy(), target)
    paths["sklearn_tensor"] = root / "sklearn_tensor"
    mlflow.sklearn.save_model(array_classifier, paths["sklearn_tensor"],
                              signature=infer_signature(features.to_numpy(), target.to_numpy()),
                              pip_requirements=SKLEARN_REQUIREMENTS)

    echo_signature = ModelSignature(inputs=Schema([ColSpec(t, n) for n, t in ALL_TYPES]))
    paths["echo"] = save_pyfunc(root / "echo", pyfunc_models.Echo(), echo_signature)

    optional = Schema([ColSpec("double", "x"), ColSpec("long", "k", required=False)])
    paths["echo_optional"] = save_pyfunc(root / "echo_optional", pyfunc_models.Echo(),
                                          ModelSignature(inputs=optional))
    unnamed = Schema([ColSpec("double"), ColSpec("long")])
    paths["echo_unnamed"] = save_pyfunc(root / "echo_unnamed", pyfunc_models.Echo(),
                                         ModelSignature(inputs=unnamed))
    complex_schema = Schema([
        ColSpec(Array("double"), "vec"),
        ColSpec(Object([Property("a", "long"), Property("b", "string", required=False)]), "obj"),
        ColSpec(Map("long"), "counts"),
        ColSpec(AnyType(), "anything"),
    ])
    paths["echo_complex"] = save_pyfunc(root / "echo_complex", pyfunc_models.Echo(),
                                         ModelSignature(inputs=complex_schema))
    tensor = Schema([TensorSpec(np.dtype("float32"), (-1, 2, 2))])
    paths["echo_tensor"] = save_pyfunc(root / "echo_tensor", pyfunc_models.Echo(),
                                        ModelSignature(inputs=tensor))
    tensor_2d = Schema([TensorSpec(np.dtype("int64"), (-1, 3))])
    paths["echo_tensor_2d"] = save_pyfunc(root / "echo_tensor_2d", pyfunc_models.Echo(),
                                           ModelSignature(inputs=tensor_2d))
    named_tensors = Schema([TensorSpec(np.dtype("float64"), (-1, 2), "a"),
                            TensorSpec(np.dtype("int32"), (-1,), "b")])
    paths["echo_named_tensors"] = save_pyfunc(root / "echo_named_tensors", pyfunc_models.Echo(),
                                               ModelSignature(inputs=named_tensors))
    params = ParamSchema([
        ParamSpec("k", "long", 5), ParamSpec("temperature", "double", 0.5),
        ParamSpec("flag", "boolean", False), ParamSpec("name", "string", "x"),
        ParamSpec("ids", "long", [1, 2], shape=(-1,)), ParamSpec("when", "datetime", "2024-01-01T00:00:00"),
    ])
    paths["echo_params"] = save_pyfunc(
        root / "echo_params", pyfunc_models.Echo(),
        ModelSignature(inputs=Schema([ColSpec("double", "x")]), params=params),
    )
    paths["echo_nosig"] = root / "echo_nosig"
    mlflow.pyfunc.save_model(paths["echo_nosig"], python_model=pyfunc_models.Echo(),
                             code_paths=[str(TESTS_DIR / "models")], pip_requirements=REQUIREMENTS)
    one_column = Schema([ColSpec("double", "x")])
    paths["slow"] = save_pyfunc(root / "slow", pyfunc_models.Slow(), ModelSignature(inputs=one_column))
    paths["fails"] = save_pyfunc(root / "fails", pyfunc_models.Fails(), ModelSignature(inputs=one_column))
    paths["float32_out"] = save_pyfunc(root / "float32_out", pyfunc_models.Float32Out(),
                                        ModelSignature(inputs=one_column))
    paths["series_out"] = save_pyfunc(root / "series_out", pyfunc_models.SeriesOut(),
                                       ModelSignature(inputs=one_column))

    weights = root / "linear_weights.json"
    weights.write_text(json.dumps([1.0, 2.0, -1.0]))
    paths["custom_loader"] = root / "custom_loader"
    mlflow.pyfunc.save_model(
        paths["custom_loader"], loader_module="sigtest_linear", data_path=str(weights),
        code_paths=[str(TESTS_DIR / "models" / "custom_loader" / "sigtest_linear.py")],
        pip_requirements=["numpy"],
        signature=ModelSignature(
            inputs=Schema([ColSpec("double", n) for n in ("a", "b", "c")]),
            params=ParamSchema([ParamSpec("scale", "double", 1.0)]),
        ),
    )
    return paths


def save_pyfunc(path: Path, python_model: Any, signature: Any) -> Path:
    import mlflow.pyfunc

    mlflow.pyfunc.save_model(path, python_model=python_model, signature=signature,
                             code_paths=[str(TESTS_DIR / "models")], pip_requirements=REQUIREMENTS)
    return path


_PORT_TAKEN = re.compile(r"(?i)address already in use|connection in use")


class SigserveServer:
    """A real `sigserve serve` process on a free loopback port."""

    def __init__(self, model_path: Path | str, *extra: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.model_path = str(model_path)
        self.cwd = cwd
        self.extra = list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkdtemp(prefix="sigserve-test-")) / "server.log"

    def command(self) -> list[str]:
        grpc = [] if any(flag.startswith("--grpc-port") for flag in self.extra) else ["--grpc-port", "0"]
        return [sys.executable, "-m", "sigserve", "serve", "-m", self.model_path,
                "-h", "127.0.0.1", "-p", str(self.port), *grpc, *self.extra]

    def start(self, timeout: float = 60.0, attempts: int = 3) -> SigserveServer:
        return self.launch().wait_ready(timeout, attempts)

    def launch(self) -> SigserveServer:
        """Start the process without waiting, so several servers (and other work) boot at once."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60.0, attempts: int = 3) -> SigserveServer:
        assert self.process is not None
        if wait_answering(self.url + "/ping", timeout, self.process):
            return self
        if self.process.poll() is not None:
            if attempts > 1 and _PORT_TAKEN.search(self.log()):  # another process took the free port
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                return self.start(timeout, attempts - 1)
            raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
        self.stop()
        raise RuntimeError(f"server did not answer /ping within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post(self, body: Any, content_type: str = "application/json", **kwargs: Any) -> httpx.Response:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(self.url + "/invocations", content=content,
                          headers={"Content-Type": content_type}, timeout=kwargs.pop("timeout", 30.0), **kwargs)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> SigserveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MlflowScorer:
    """MLflow's own scoring function on the same model: the reference for verdicts."""

    def __init__(self, model_path: Path) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(str(model_path))
        self.schema = self.model.metadata.get_input_schema()

    def score(self, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc.scoring_server import invocations

        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        try:
            result = invocations(data, content_type, self.model, self.schema)
        except MlflowException as exc:
            return exc.get_http_status_code(), exc.message
        if result.status != 200:
            return result.status, result.response
        return 200, json.loads(result.response)


def requirement_lines(context: Path) -> list[str]:
    """The requirements a generated build context installs, comments left out."""
    return [line for line in (context / "install" / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]


def generate(model: Path, out: Path, **kwargs: Any) -> Path:
    """`generate-dockerfile`'s build context for a local model directory."""
    from sigserve.dockerfile import write_build_context
    from sigserve.sources.resolved import ResolvedModel

    write_build_context(ResolvedModel(uri=str(model), path=model), out, **kwargs)
    return out


def mlflow_cli() -> str:
    return shutil.which("mlflow") or f"{sys.executable} -m mlflow"


def frame_to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def same_json(left: Any, right: Any, rel: float = 1e-9) -> bool:
    """Structural equality for decoded JSON, with floats compared to a relative tolerance."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k], rel) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_json(a, b, rel) for a, b in zip(left, right))
    if isinstance(left, float) or isinstance(right, float):
        if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
            return left == right
        if not isinstance(left, (int, float)) or not isinstance(right, (int, float)):
            return False
        return left == right or abs(left - right) <= rel * max(abs(left), abs(right))
    return left == right


BLOCK_MLFLOW = "import sys; sys.modules['mlflow'] = None; from sigserve.cli import main; sys.exit(main(sys.argv[1:]))"


class ConfigServer(SigserveServer):
    """`sigserve serve --config FILE` instead of `-m PATH`: the models and traffic come from the file."""

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("serve") + 1  # its `-m PATH`
        return [*command[:at], "--config", self.model_path, *command[at + 2:]]


class SigserveWithoutMlflow(SigserveServer):
    """sigserve in a process where `import mlflow` fails, as on a serving host without MLflow."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", BLOCK_MLFLOW, *super().command()[3:]]


def run_cli(*args: str, stdin: bytes | None = None, without_mlflow: bool = False) -> subprocess.CompletedProcess[bytes]:
    prefix = [sys.executable, "-c", BLOCK_MLFLOW] if without_mlflow else [sys.executable, "-m", "sigserve"]
    return subprocess.run([*prefix, *args], input=stdin, capture_output=True, timeout=120)


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`/metrics` parsed by prometheus-client's own parser: (sample name, labels) -> value."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict, metric: str, **labels: str) -> float:
    return sum(
        value for (sample, sample_labels), value in samples.items()
        if sample == metric and all(dict(sample_labels).get(k) == v for k, v in labels.items())
    )


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def is_answering(url: str, verify: Any = True) -> bool:
    """A GET of `url` answers 200 now; a refused connection or a timeout is a no."""
    try:
        return httpx.get(url, timeout=1.0, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def wait_answering(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None,
                   verify: Any = True) -> bool:
    """Poll a readiness URL (`/ping`, `/health`) until it answers 200; False once `timeout`
    passes or `process`, the server, exits first. Every test waits for its servers with this;
    `verify` is httpx's, for HTTPS servers."""

    def exited() -> bool:
        return process is not None and process.poll() is not None

    return wait_for(lambda: exited() or is_answering(url, verify), timeout) and not exited()


def children_of(pid: int) -> set[int]:
    """The processes whose parent is `pid` (gunicorn workers of a master)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False).stdout
    return {int(p) for p in out.split()}


K8S_VERSION = "1.32.0"


def validate_k8s(doc: dict, where: str) -> None:
    """One rendered manifest against the Kubernetes schemas, strictly (unknown fields fail)."""
    import kubernetes_validate
    import pytest

    problem = None
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        problem = f"at {'.'.join(str(p) for p in e.path)}: {e.message}"
    if problem:
        pytest.fail(f"{where}: {doc['kind']} {doc['metadata'].get('name')} is invalid {problem}")


def by_kind(docs: list[dict]) -> dict[str, dict]:
    """Rendered manifests by kind, each kind at most once."""
    kinds: dict[str, dict] = {}
    for doc in docs:
        assert doc["kind"] not in kinds, f"two {doc['kind']} objects"
        kinds[doc["kind"]] = doc
    return kinds
