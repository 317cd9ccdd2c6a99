"""`models:/` and `runs:/` URIs against a real MLflow tracking server (`mlflow server`), checked
against MLflow's own client; downloads through the artifact proxy, the cache, basic auth, and the
faults a network brings (server down, 404s, 500s, a body cut short), the last two injected by a
small HTTP proxy in front of the real server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from helpers import SKLEARN_REQUIREMENTS, SigserveWithoutMlflow, free_port, wait_answering, wait_for

IRIS_ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
ADMIN, ADMIN_PASSWORD = "admin", "sigserve-test-admin-pw-2026"
MARKER = ".sigserve-complete"
pytestmark = pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer column:UserWarning")


def _clean_env(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment.update(extra)
    return environment


class MlflowServer:
    """A real `mlflow server` subprocess with its own SQLite store and artifact directory."""

    def __init__(self, root: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "server.log"
        command = [sys.executable, "-m", "mlflow", "server",
                   "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                   "--artifacts-destination", str(root / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1", *extra]
        with open(self.log_path, "wb") as log:
            # No job runner: it forks a dozen huey consumers this test has no use for.
            environment = _clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **(env or {}))
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root,
                                            env=environment, start_new_session=True)

    def wait(self, timeout: float = 90.0) -> MlflowServer:
        if wait_answering(self.url + "/health", timeout, self.process):
            return self
        if self.process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"mlflow server not healthy in {timeout}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Stop the whole process group: the server, uvicorn and its workers."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)  # a throwaway store: no need for a long grace period
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # and any child that outlived its parent
        self.process.wait()


@contextlib.contextmanager
def mlflow_pointed_at(url: str, **credentials: str):
    """MLflow's client in this process, talking to `url` (with credentials in its env vars);
    MLflow's global URIs and the environment are put back exactly as they were afterwards."""
    import mlflow
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    saved_uris = tracking_utils._tracking_uri, registry_utils._registry_uri
    saved_env = {k: os.environ.get(k) for k in (*credentials, "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    os.environ.update(credentials)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    try:
        yield mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    finally:
        mlflow.set_tracking_uri(saved_uris[0])
        registry_utils._registry_uri = saved_uris[1]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _trained(c: float):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    return LogisticRegression(C=c, max_iter=500).fit(features, target)


def _log_model(mlflow, c: float, **kwargs):
    """A run logging a model (through the server's artifact proxy); returns the model info."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True, as_frame=True)
    with mlflow.start_run():
        return mlflow.sklearn.log_model(_trained(c), name="model", signature=infer_signature(features, target),
                                        pip_requirements=SKLEARN_REQUIREMENTS, **kwargs)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Both servers start at once (each takes seconds to start): a plain one and one with basic auth."""
    root = tmp_path_factory.mktemp("mlflow-servers")
    auth_config = root / "auth" / "basic_auth.ini"
    auth_config.parent.mkdir()
    auth_config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth' / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    plain = MlflowServer(root / "plain")
    secured = MlflowServer(root / "auth", "--app-name", "basic-auth", env={
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "sigserve-test-secret"})
    try:
        yield {"plain": plain.wait(), "auth": (secured, _register_in_background(secured))}
    finally:
        for server in (plain, secured):
            if server:
                server.stop()


SECURED_SETUP = f"""
import os, sys, mlflow, mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
sys.path.insert(0, {str(Path(__file__).parent)!r})
from helpers import wait_answering
if not wait_answering(os.environ["MLFLOW_TRACKING_URI"] + "/health", 90):
    raise SystemExit("auth server did not start")
features, target = load_iris(return_X_y=True, as_frame=True)
with mlflow.start_run():
    mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(features, target), name="model",
                             registered_model_name="secured", pip_requirements={SKLEARN_REQUIREMENTS!r})
"""


def _register_in_background(server: MlflowServer) -> subprocess.Popen[bytes]:
    """Log and register `secured` v1 as the admin, in a process of its own, while the plain
    server's models are registered: the auth server is slow to start."""
    env = _clean_env(MLFLOW_TRACKING_URI=server.url, MLFLOW_TRACKING_USERNAME=ADMIN,
                     MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    with open(server.root / "setup.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-c", SECURED_SETUP], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=server.root)


@pytest.fixture(scope="module")
def registry(servers, tmp_path_factory):
    """churn v1 (@champion), v2 (Production), v3 (Staging, @challenger); 'fraud.v2 model' v1; a
    run holding a model directory (with a nested folder) logged as plain artifacts."""
    import mlflow
    import mlflow.sklearn

    url = servers["plain"].url
    with mlflow_pointed_at(url) as client:
        for c in (0.01, 1.0, 100.0):
            logged = _log_model(mlflow, c, registered_model_name="churn")
        client.create_registered_model("fraud.v2 model")  # a name to quote; the artifacts of churn v3
        client.create_model_version("fraud.v2 model", logged.model_uri, run_id=logged.run_id, model_id=logged.model_id)
        client.set_registered_model_alias("churn", "champion", "1")
        client.set_registered_model_alias("churn", "challenger", "3")
        client.transition_model_version_stage("churn", "2", "Production")
        client.transition_model_version_stage("churn", "3", "Staging")

        saved = tmp_path_factory.mktemp("saved") / "direct"
        mlflow.sklearn.save_model(_trained(10.0), saved, pip_requirements=SKLEARN_REQUIREMENTS)
        (saved / "extra" / "nested").mkdir(parents=True)
        (saved / "extra" / "nested" / "notes.txt").write_text("deep file\n")
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(saved), "direct_model")
        yield {"url": url, "client": client, "direct_run": run.info.run_id, "direct_saved": saved}


@pytest.fixture(scope="module")
def secured_registry(servers):
    server, setup = servers["auth"]
    setup.wait(timeout=120)
    assert setup.returncode == 0, (server.root / "setup.log").read_text(errors="replace")[-3000:]
    return server.wait().url


class FaultyProxy:
    """Forwards to the real server, recording requests; optionally answers 500 to the first
    request of each path, or cuts files whose path ends with a suffix short (Content-Length
    announced, half the body sent, connection closed)."""

    def __init__(self, upstream: str, tls: tuple[Path, Path] | None = None) -> None:
        self.upstream = upstream
        self.reset()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self.fail_first = False
        self.failed: set[tuple[str, str]] = set()
        self.cut: dict[str, int] = {}
        self.stall = 0.0

    def paths(self, fragment: str) -> list[str]:
        return [path for _, path, _ in self.requests if fragment in path]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        try:
            self._handle(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout under test)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests.append((request.command, request.path, request.headers.get("Authorization")))
        if self.stall:
            time.sleep(self.stall)
        if self.fail_first and (request.command, request.path) not in self.failed:
            self.failed.add((request.command, request.path))
            return self._answer(request, 500, b'{"error_code": "INTERNAL_ERROR", "message": "injected"}')
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        upstream = httpx.request(request.command, self.upstream + request.path, content=body, headers=headers,
                                 timeout=30)
        suffix = next((s for s, left in self.cut.items() if left > 0 and request.path.endswith(s)), None)
        if suffix is None:
            return self._answer(request, upstream.status_code, upstream.content, upstream.headers.get("content-type"))
        self.cut[suffix] -= 1
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(upstream.content)))
        request.end_headers()
        request.wfile.write(upstream.content[: len(upstream.content) // 2])
        request.wfile.flush()
        request.close_connection = True

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str | None = None) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type or "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


@pytest.fixture(scope="module")
def faulty_proxy(registry):
    proxy = FaultyProxy(registry["url"])
    yield proxy
    proxy.server.shutdown()
    proxy.server.server_close()


@pytest.fixture
def proxy(faulty_proxy):
    faulty_proxy.reset()
    return faulty_proxy


def sigserve(*args: str, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sigserve", *args], check=False, capture_output=True, text=True,
                          env=_clean_env(SIGSERVE_CACHE_DIR=str(cache), **env), timeout=120)


def info(registry_url: str, uri: str, cache: Path, **env: str) -> dict:
    result = sigserve("info", "-m", uri, "--registry-uri", registry_url, cache=cache, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    error = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, error)
    assert "Traceback" not in error and len(error.splitlines()) == 1, error
    return error


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MARKER}


def predict(path: str) -> list:
    import mlflow.pyfunc
    import pandas as pd

    return [int(x) for x in mlflow.pyfunc.load_model(path).predict(pd.DataFrame([IRIS_ROW]))]


def reference(registry: dict, tmp_path: Path) -> list:
    """churn v1's prediction, downloaded straight from the server (no proxy) into a cache of its own."""
    return predict(info(registry["url"], "models:/churn/1", tmp_path / "reference")["local_path"])


@pytest.mark.parametrize(
    "uri, version",
    [("models:/churn/1", "1"), ("models:/churn@champion", "1"), ("models:/churn@challenger", "3"),
     ("models:/churn/latest", "3"), ("models:/churn/Production", "2"), ("models:/churn/production", "2"),
     ("models:/churn/STAGING", "3"), ("models:/fraud.v2 model/latest", "1")],
)
def test_registered_model_uris_resolve_as_mlflow_resolves_them(registry, tmp_path, uri: str, version: str) -> None:
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    client = registry["client"]
    name, mlflow_version = get_model_name_and_version(client, uri)
    assert str(mlflow_version) == version
    report = info(registry["url"], uri, tmp_path)
    expected = client.get_model_version(name, version)
    assert (report["name"], report["version"]) == (name, version)
    assert report["stage"] == expected.current_stage and report["aliases"] == sorted(expected.aliases)
    assert report["source"] == expected.source and report["flavor"] == "mlflow.sklearn"
    local = Path(report["local_path"])
    assert local.parent == tmp_path and (local / "MLmodel").is_file() and (local / MARKER).is_file()


def test_downloaded_files_are_what_mlflow_downloads(registry, tmp_path) -> None:
    import mlflow.artifacts

    report = info(registry["url"], "models:/churn@challenger", tmp_path / "cache")
    with mlflow_pointed_at(registry["url"]):
        theirs = mlflow.artifacts.download_artifacts("models:/churn@challenger", dst_path=str(tmp_path / "mlflow"))
    ours, theirs = tree(Path(report["local_path"])), tree(Path(theirs))
    theirs.pop("registered_model_meta")  # MLflow's client writes this after downloading
    assert ours == theirs


def test_logged_model_and_run_uris(registry, tmp_path) -> None:
    client = registry["client"]
    version = client.get_model_version("churn", "2")
    by_version = info(registry["url"], "models:/churn/2", tmp_path)
    by_id = info(registry["url"], version.source, tmp_path)
    by_run = info(registry["url"], f"runs:/{version.run_id}/model", tmp_path)
    assert by_id["local_path"] == by_version["local_path"] == by_run["local_path"]
    assert version.source.startswith("models:/m-")


def test_run_artifacts_download_recursively(registry, tmp_path) -> None:
    report = info(registry["url"], f"runs:/{registry['direct_run']}/direct_model", tmp_path)
    local = Path(report["local_path"])
    assert (local / "extra" / "nested" / "notes.txt").read_text() == "deep file\n"
    assert tree(local) == tree(registry["direct_saved"])


def test_artifact_uri_forms(registry, proxy, tmp_path) -> None:
    """mlflow-artifacts:/ with and without a host, and the proxy's own http URLs, mapped as
    MLflow's MlflowArtifactsRepository maps them (another origin's without credentials); other
    schemes are left to the caller."""
    from sigserve.sources.registry.rest_store import RestRegistry

    url = registry["url"]
    location = registry["client"].get_model_version_download_uri("churn", "1")
    assert location.startswith("mlflow-artifacts:/")
    path = location.removeprefix("mlflow-artifacts:")
    expected = tree(Path(info(url, "models:/churn/1", tmp_path / "cache")["local_path"]))

    through_proxy = RestRegistry(proxy.url)
    assert through_proxy.download(location, tmp_path / "bare") and tree(tmp_path / "bare") == expected
    assert proxy.paths("/mlflow-artifacts/artifacts")
    proxy.reset()
    with_host = f"mlflow-artifacts://{urlparse(url).netloc}{path}"  # names the real server, not the proxy
    assert through_proxy.download(with_host, tmp_path / "host") and tree(tmp_path / "host") == expected
    assert not proxy.requests
    http_form = f"{url}/api/2.0/mlflow-artifacts/artifacts{path}"
    assert RestRegistry(url).download(http_form, tmp_path / "http") and tree(tmp_path / "http") == expected
    proxy.reset()
    assert through_proxy.download(http_form, tmp_path / "foreign") and tree(tmp_path / "foreign") == expected
    assert not proxy.requests  # another origin: fetched there, without this registry's credentials
    for other in ("s3://bucket/model", "gs://bucket/model", "dbfs:/model", "hdfs://nn/model"):
        assert not through_proxy.download(other, tmp_path / "other")


def _self_signed(root: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = root / "server.pem", root / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_verification_settings(registry, tmp_path) -> None:
    """An https front (self-signed) to the real server: refused by default, without retries;
    trusted through MLFLOW_TRACKING_SERVER_CERT_PATH; or unchecked with MLFLOW_TRACKING_INSECURE_TLS."""
    from sigserve.errors import ModelNotFound
    from sigserve.sources.registry.rest_store import RestRegistry
    from sigserve.sources.registry.uri import RegisteredModelRef
    from sigserve.sources.settings import SourceSettings

    def tracking(**environ: str):
        return SourceSettings.from_env(environ).tracking

    cert, key = _self_signed(tmp_path)
    front = FaultyProxy(registry["url"], tls=(cert, key))
    ref = RegisteredModelRef("churn", alias="champion")
    try:
        with pytest.raises(ModelNotFound) as failure:
            RestRegistry(front.url, tracking()).find_version(ref)
        assert "not trusted" in failure.value.message and "MLFLOW_TRACKING_SERVER_CERT_PATH" in failure.value.message
        assert not front.requests  # the handshake failed, once: no retries

        trusted = RestRegistry(front.url, tracking(MLFLOW_TRACKING_SERVER_CERT_PATH=str(cert)))
        record = trusted.find_version(ref)
        assert record.version == "1" and record.storage_location.startswith("mlflow-artifacts:/")
        assert trusted.download(record.storage_location, tmp_path / "model")
        assert (tmp_path / "model" / "MLmodel").is_file()

        assert RestRegistry(front.url, tracking(MLFLOW_TRACKING_INSECURE_TLS="true")).find_version(ref).version == "1"
    finally:
        front.server.shutdown()
        front.server.server_close()


def test_read_timeout_is_retried_then_reported(registry, proxy) -> None:
    from sigserve.errors import ModelNotFound
    from sigserve.sources.registry.rest_store import RestRegistry
    from sigserve.sources.registry.tracking import TrackingSettings
    from sigserve.sources.registry.uri import RegisteredModelRef
    from sigserve.sources.settings import SourceSettings

    limits = SourceSettings.from_env({"SIGSERVE_REGISTRY_TIMEOUT": "0.3"}).limits
    proxy.stall = 1.0
    started = time.monotonic()
    with pytest.raises(ModelNotFound) as failure:
        RestRegistry(proxy.url, TrackingSettings(), limits).find_version(RegisteredModelRef("churn", version="1"))
    assert time.monotonic() - started < 10
    assert "ReadTimeout" in failure.value.message and "after 4 attempts" in failure.value.message
    assert wait_for(lambda: len(proxy.paths("/mlflow/model-versions/get")) == 4, 5)


def test_serves_an_alias_without_mlflow(registry, tmp_path) -> None:
    import mlflow.pyfunc
    import pandas as pd

    with mlflow_pointed_at(registry["url"]):
        expected = mlflow.pyfunc.load_model("models:/churn@champion").predict(pd.DataFrame([IRIS_ROW]))
    env = {"SIGSERVE_CACHE_DIR": str(tmp_path)}
    with SigserveWithoutMlflow("models:/churn@champion", "--registry-uri", registry["url"], env=env) as server:
        response = server.post({"dataframe_records": [IRIS_ROW]})
        assert response.json() == {"predictions": [int(expected[0])]}


def test_second_resolution_is_a_cache_hit_and_a_partial_entry_is_refetched(registry, proxy, tmp_path) -> None:
    first = Path(info(proxy.url, "models:/churn@champion", tmp_path)["local_path"])
    assert proxy.paths("/mlflow-artifacts/artifacts/")
    marker_mtime = (first / MARKER).stat().st_mtime_ns

    proxy.reset()
    second = Path(info(proxy.url, "models:/churn@champion", tmp_path)["local_path"])
    assert second == first and (first / MARKER).stat().st_mtime_ns == marker_mtime
    assert proxy.paths("/mlflow/registered-models/alias")  # the alias is asked each time: it may move
    assert not proxy.paths("/mlflow-artifacts/"), "a cache hit must not download again"

    (first / MARKER).unlink()  # as if the download had died half way
    (first / "model.skops").write_bytes(b"half a model")
    proxy.reset()
    third = Path(info(proxy.url, "models:/churn@champion", tmp_path)["local_path"])
    assert third == first and (third / MARKER).is_file()
    assert proxy.paths("model.skops")
    assert predict(str(third)) == reference(registry, tmp_path)


def test_basic_auth(secured_registry, tmp_path) -> None:
    command = ("info", "-m", "models:/secured/1", "--registry-uri", secured_registry)
    anonymous = one_line_error(sigserve(*command, cache=tmp_path))
    assert "unauthorised" in anonymous and "MLFLOW_TRACKING_USERNAME/PASSWORD" in anonymous
    assert secured_registry in anonymous and "no credentials" in anonymous
    wrong = one_line_error(sigserve(*command, cache=tmp_path, MLFLOW_TRACKING_USERNAME=ADMIN,
                                    MLFLOW_TRACKING_PASSWORD="not-it"))
    assert "unauthorised" in wrong and "refused" in wrong
    report = info(secured_registry, "models:/secured/1", tmp_path,
                  MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    assert report["version"] == "1" and (Path(report["local_path"]) / "MLmodel").is_file()


def test_bearer_token_is_sent_on_every_request(registry, proxy, tmp_path) -> None:
    info(proxy.url, "models:/churn/1", tmp_path, MLFLOW_TRACKING_TOKEN="t0ken")
    assert proxy.requests and {auth for _, _, auth in proxy.requests} == {"Bearer t0ken"}


def test_server_down_is_one_line_after_bounded_retries(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    error = one_line_error(sigserve("info", "-m", "models:/churn/1", "--registry-uri", url, cache=tmp_path))
    assert time.monotonic() - started < 30
    assert "Cannot reach the MLflow tracking server" in error and url in error and "after 4 attempts" in error


@pytest.mark.parametrize(
    "uri, expected",
    [("models:/nope/1", "No registered model named 'nope'"), ("models:/nope@x", "No registered model named 'nope'"),
     ("models:/churn/9", "has no version 9"), ("models:/churn@ghost", "has no alias @ghost"),
     ("models:/churn/Archived", "in stage 'Archived'"), ("models:/churn/bogus", "'bogus' is not a stage"),
     ("models:/m-doesnotexist", "No logged model 'm-doesnotexist'"), ("runs:/0123abc/model", "No run '0123abc'")],
)
def test_unknown_things_are_one_line_errors(registry, tmp_path, uri: str, expected: str) -> None:
    error = one_line_error(sigserve("info", "-m", uri, "--registry-uri", registry["url"], cache=tmp_path))
    assert expected in error and registry["url"] in error


def test_client_errors_are_not_retried(registry, proxy, tmp_path) -> None:
    one_line_error(sigserve("info", "-m", "models:/churn@ghost", "--registry-uri", proxy.url, cache=tmp_path))
    assert len(proxy.paths("/mlflow/registered-models/alias")) == 1


def test_500_then_success_is_retried(registry, proxy, tmp_path) -> None:
    proxy.fail_first = True
    report = info(proxy.url, "models:/churn@champion", tmp_path)
    assert report["version"] == "1"
    for fragment in ("/mlflow/registered-models/alias", "/mlflow/model-versions/get-download-uri",
                     "/mlflow-artifacts/artifacts?path=", "/model.skops"):
        assert len(proxy.paths(fragment)) == 2, fragment  # a 500, then the answer
    assert predict(report["local_path"]) == reference(registry, tmp_path)


def test_body_cut_short_is_retried(registry, proxy, tmp_path) -> None:
    proxy.cut = {"/model.skops": 1}
    report = info(proxy.url, "models:/churn/1", tmp_path)
    assert len(proxy.paths("model.skops")) == 2
    assert predict(report["local_path"]) == reference(registry, tmp_path)


def test_body_always_cut_short_fails_and_leaves_no_usable_entry(registry, proxy, tmp_path) -> None:
    proxy.cut = {"/model.skops": 100}
    error = one_line_error(sigserve("info", "-m", "models:/churn/1", "--registry-uri", proxy.url, cache=tmp_path))
    assert "model.skops" in error and "after 4 attempts" in error and proxy.url in error
    assert not list(tmp_path.glob(f"*/{MARKER}")) and not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    proxy.cut = {}
    report = info(proxy.url, "models:/churn/1", tmp_path)
    assert Path(report["local_path"]).parent == tmp_path
    assert predict(report["local_path"]) == reference(registry, tmp_path)
