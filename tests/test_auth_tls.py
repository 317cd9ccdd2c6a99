"""Bearer-token authentication and TLS, on real `sigserve serve` processes (one uvicorn worker, and
gunicorn with two), with real httpx clients and certificates issued here with `cryptography`.

Three servers share the module: tokens from a file and the environment over HTTP (-w 1); tokens
and TLS with /metrics left open (-w 2); TLS alone, configured by environment (-w 1).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import SigserveServer, free_port, wait_answering, wait_for
from prometheus_client.parser import text_string_to_metric_families

from sigserve.demo import DEMO_MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (DEMO_MODEL_DIR / "serving_input_example.json").read_bytes()
V2_NAME = "model"  # the demo model served from its directory: named after it
V2_BODY = {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in
                      [("sepal_length", 5.1), ("sepal_width", 3.5), ("petal_length", 1.4), ("petal_width", 0.2)]]}
PROBES = ["/ping", "/health", "/v2/health/live", "/v2/health/ready"]
CHALLENGE = 'Bearer realm="sigserve"'
INVALID_CHALLENGE = 'Bearer realm="sigserve", error="invalid_token"'
REQUEST_ID_PREFIX = 16  # generated request IDs start with 16 hex characters chosen per worker process

# Every protected endpoint, with the error shape of its protocol.
PROTECTED = [
    ("POST", "/invocations", "mlflow"),
    ("POST", f"/v2/models/{V2_NAME}/infer", "v2"),
    ("POST", f"/v2/models/{V2_NAME}/versions/local/infer", "v2"),
    ("GET", "/metadata", "mlflow"),
    ("GET", "/openapi.json", "mlflow"),
    ("GET", "/docs", "mlflow"),
    ("GET", "/version", "mlflow"),
    ("GET", "/metrics", "mlflow"),
    ("GET", "/v2", "v2"),
    ("GET", f"/v2/models/{V2_NAME}", "v2"),
    ("GET", f"/v2/models/{V2_NAME}/ready", "v2"),
    ("GET", "/no-such-path", "mlflow"),
]


# ---------------------------------------------------------------------------------------------
# certificates

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Authority:
    """A throwaway CA that issues server certificates for 127.0.0.1 and localhost."""

    def __init__(self, directory: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name("sigserve test CA")).issuer_name(_name("sigserve test CA"))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str) -> tuple[bytes, bytes]:
        """(certificate PEM, unencrypted key PEM)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def replace_file(path: Path, content: bytes | str) -> None:
    """Atomically, as a rotated Kubernetes Secret or a careful deploy tool does it."""
    data = content.encode() if isinstance(content, str) else content
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class SecretVolume:
    """A directory laid out as the kubelet writes a mounted Secret: each key is a symlink through
    `..data` to a timestamped directory, and an update swaps `..data` in one rename, so every
    key changes at once."""

    def __init__(self, directory: Path, files: dict[str, bytes]) -> None:
        self.directory = directory
        directory.mkdir()
        self.update(files)
        for name in files:
            os.symlink(f"..data/{name}", directory / name)

    def update(self, files: dict[str, bytes]) -> None:
        version = self.directory / f"..{time.time_ns()}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
        link = self.directory / "..data_tmp"
        os.symlink(version.name, link)
        os.replace(link, self.directory / "..data")

    def __truediv__(self, name: str) -> Path:
        return self.directory / name


class CertFiles:
    def __init__(self, directory: Path, pair: tuple[bytes, bytes]) -> None:
        self.cert, self.key = directory / "tls.crt", directory / "tls.key"
        self.install(pair)

    def install(self, pair: tuple[bytes, bytes]) -> None:
        replace_file(self.key, pair[1])
        replace_file(self.cert, pair[0])


def common_name(cert_der: bytes) -> str:
    return x509.load_der_x509_certificate(cert_der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def get_with_certificate(url: str, verify: ssl.SSLContext) -> tuple[httpx.Response, str, str]:
    """A GET on a fresh connection: the response, the certificate's common name, the TLS version."""
    with httpx.Client(verify=verify, timeout=10) as client:
        response = client.get(url)
        tls = response.extensions["network_stream"].get_extra_info("ssl_object")
        return response, common_name(tls.getpeercert(True)), tls.version()


# ---------------------------------------------------------------------------------------------
# servers

class TlsServer(SigserveServer):
    """A sigserve process serving HTTPS, ready once /ping answers over a verified connection."""

    def __init__(self, *extra: str, authority: Authority, env: dict[str, str] | None = None) -> None:
        super().__init__(DEMO_MODEL_DIR, *extra, env=env)
        self.url = f"https://127.0.0.1:{self.port}"
        self.verify = authority.client_context()

    def wait_ready(self, timeout: float = 60.0, attempts: int = 1) -> TlsServer:
        assert self.process is not None
        if not wait_answering(self.url + "/ping", timeout, self.process, verify=self.verify):
            self.stop()
            raise RuntimeError(f"TLS server did not come up:\n{self.log()}")
        return self


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.authority = Authority(root)
        self.token_a, self.token_b, self.token_c = (f"tok-{secrets.token_urlsafe(24)}" for _ in range(3))
        self.env_token = f"env-{secrets.token_urlsafe(24)}"
        self.wrong_token = f"wrong-{secrets.token_urlsafe(24)}"
        self.token_file = root / "tokens"
        self.token_file.write_text(f"# accepted tokens\n\n{self.token_a}\n   {self.token_b}  \n")
        # The workers read Kubernetes-style Secret volumes: tokens, and a kubernetes.io/tls pair.
        self.workers_tokens = SecretVolume(root / "workers-auth", {"tokens": f"{self.token_a}\n".encode()})
        cert, key = self.authority.issue("workers-1")
        self.workers_tls = SecretVolume(root / "workers-tls", {"tls.crt": cert, "tls.key": key})
        (root / "single").mkdir()
        self.single_certs = CertFiles(root / "single", self.authority.issue("single-1"))

        self.auth = SigserveServer(DEMO_MODEL_DIR, "--auth-token-file", str(self.token_file),
                                   env={"SIGSERVE_AUTH_TOKENS": f" {self.env_token} ,"})
        self.workers = TlsServer(
            "-w", "2", "--auth-token-file", str(self.workers_tokens / "tokens"), "--metrics-without-auth",
            "--tls-cert", str(self.workers_tls / "tls.crt"), "--tls-key", str(self.workers_tls / "tls.key"),
            authority=self.authority)
        self.single = TlsServer(authority=self.authority, env={"SIGSERVE_TLS_CERT": str(self.single_certs.cert),
                                                                "SIGSERVE_TLS_KEY": str(self.single_certs.key)})
        self.servers = [self.auth, self.workers, self.single]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    ready = Setup(tmp_path_factory.mktemp("auth-tls"))
    try:
        for server in ready.servers:
            server.launch()
        for server in ready.servers:
            server.wait_ready()
        yield ready
    finally:
        for server in ready.servers:
            server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(url: str, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
    """One request on a fresh connection (so under gunicorn any worker may take it)."""
    body = {}
    if method == "POST":
        body = {"json": V2_BODY} if path.startswith("/v2/") else {"content": EXAMPLE}
        headers = {"Content-Type": "application/json", **(headers or {})}
    return httpx.request(method, url + path, headers=headers, timeout=30, **body, **kwargs)


def rejections(url: str, headers: dict[str, str] | None = None, **kwargs) -> dict[str, float]:
    text = httpx.get(url + "/metrics", headers=headers, timeout=10, **kwargs).text
    return {sample.labels["reason"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "sigserve_rejected_requests_total"}


def assert_401(response: httpx.Response, shape: str, challenge: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == challenge
    assert response.headers["content-type"] == "application/json"
    assert "x-model-version" not in response.headers, "the model's name is for authenticated clients"
    if shape == "v2":
        assert set(response.json()) == {"error"} and response.json()["error"]
    else:
        body = response.json()
        assert set(body) == {"error_code", "message"} and body["error_code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------------------------------------
# authentication (-w 1, tokens from a file and from $SIGSERVE_AUTH_TOKENS)

def test_probes_stay_open(setup):
    for path in PROBES:
        response = httpx.get(setup.auth.url + path, timeout=10)
        assert response.status_code == 200, path
        assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("method, path, shape", PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_everything_else_needs_a_token(setup, method, path, shape):
    url = setup.auth.url
    response = call(url, method, path, {"X-Request-ID": "client-id-1"})
    assert_401(response, shape, CHALLENGE)
    assert response.headers["x-request-id"] == "client-id-1"
    if shape == "mlflow":
        assert "Authorization: Bearer" in response.json()["message"]

    response = call(url, method, path, bearer(setup.wrong_token))
    assert_401(response, shape, INVALID_CHALLENGE)
    assert setup.wrong_token not in response.text

    answered = call(url, method, path, bearer(setup.token_b))
    assert answered.status_code == (404 if path == "/no-such-path" else 200), answered.text


def test_every_configured_token_works_and_nothing_else(setup):
    url = setup.auth.url
    for token in (setup.token_a, setup.token_b, setup.env_token):
        response = call(url, "POST", "/invocations", bearer(token))
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 3
    assert call(url, "GET", "/metadata", {"Authorization": f"bearer {setup.token_b}"}).status_code == 200, \
        "the scheme is case-insensitive"
    assert call(url, "GET", "/metadata", {"Authorization": f"Bearer   {setup.token_b}"}).status_code == 200
    for authorization, challenge in [
        (f"Bearer {setup.token_b}x", INVALID_CHALLENGE),
        (f"Bearer {setup.token_b[:-1]}", INVALID_CHALLENGE),
        ("Bearer", INVALID_CHALLENGE),
        (f"Basic {setup.token_b}", CHALLENGE),  # not a bearer token: the challenge names the scheme
        (setup.token_b, CHALLENGE),
    ]:
        assert_401(call(url, "GET", "/metadata", {"Authorization": authorization}), "mlflow", challenge)


def test_refusals_are_counted_as_rejections(setup):
    url, headers = setup.auth.url, bearer(setup.token_b)
    before = rejections(url, headers)
    for _ in range(3):
        assert call(url, "POST", "/invocations").status_code == 401
    for _ in range(2):
        assert call(url, "GET", "/metadata", bearer(setup.wrong_token)).status_code == 401
    after = rejections(url, headers)
    assert after.get("unauthenticated", 0) - before.get("unauthenticated", 0) == 3
    assert after.get("invalid_token", 0) - before.get("invalid_token", 0) == 2


def test_a_large_unauthenticated_body_is_refused(setup):
    body = b"x" * (8 * 1024 * 1024)
    response = httpx.post(setup.auth.url + "/invocations", content=body,
                          headers={"Content-Type": "text/csv"}, timeout=30)
    assert_401(response, "mlflow", CHALLENGE)


def test_rotating_the_token_file_needs_no_restart(setup):
    url, path = setup.auth.url, setup.token_file

    def accepted(token: str) -> bool:
        return call(url, "GET", "/metadata", bearer(token)).status_code == 200

    replace_file(path, f"{setup.token_b}\n{setup.token_c}\n")  # token A retired, C added
    assert wait_for(lambda: accepted(setup.token_c) and not accepted(setup.token_a), timeout=15)
    assert accepted(setup.token_b) and accepted(setup.env_token)

    # A file that does not parse (a line with a space) keeps the tokens read before. The file is
    # checked when requests come, at most once a second.
    replace_file(path, f"{setup.token_c}\nnot a token\n")
    assert wait_for(lambda: accepted(setup.token_b) and "line 2 of" in setup.auth.log(), timeout=15)
    assert accepted(setup.token_b) and accepted(setup.token_c)

    # A readable file with no token admits no one from it; the environment's token still works.
    replace_file(path, "# emptied\n")
    assert wait_for(lambda: not accepted(setup.token_b), timeout=15)
    assert not accepted(setup.token_c) and accepted(setup.env_token)

    replace_file(path, f"{setup.token_b}\n")
    assert wait_for(lambda: accepted(setup.token_b), timeout=15)


def test_tokens_never_reach_the_log(setup):
    assert call(setup.auth.url, "GET", "/metadata", bearer(setup.wrong_token)).status_code == 401
    assert wait_for(lambda: "/metadata" in setup.auth.log(), timeout=10)
    log = setup.auth.log()
    assert "bearer tokens required: 2 from" in log and "1 from $SIGSERVE_AUTH_TOKENS" in log
    for token in (setup.token_a, setup.token_b, setup.token_c, setup.env_token, setup.wrong_token):
        assert token not in log
    assert "not a token" not in log, "a bad line is named by its number, never echoed"


# ---------------------------------------------------------------------------------------------
# TLS and authentication with two gunicorn workers, /metrics left open

def test_tls_handshake_verifies_against_the_ca(setup):
    server = setup.workers
    for host in ("127.0.0.1", "localhost"):
        response, name, version = get_with_certificate(f"https://{host}:{server.port}/ping", server.verify)
        assert response.status_code == 200
        assert version in ("TLSv1.2", "TLSv1.3")
        assert name == "workers-1"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(server.url + "/ping", timeout=10)  # the system's CAs do not know this one
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/ping", timeout=10)  # no plain HTTP on a TLS port


def test_auth_over_tls_with_two_workers(setup):
    server = setup.workers
    url, verify = server.url, server.verify
    for path in PROBES + ["/metrics"]:
        assert call(url, "GET", path, verify=verify).status_code == 200, path
    before = rejections(url, verify=verify)
    for _ in range(6):
        assert_401(call(url, "GET", "/metadata", verify=verify), "mlflow", CHALLENGE)
    after = rejections(url, verify=verify)
    assert after.get("unauthenticated", 0) - before.get("unauthenticated", 0) == 6, "summed over the workers"
    assert_401(call(url, "POST", f"/v2/models/{V2_NAME}/infer", verify=verify), "v2", CHALLENGE)

    scored = call(url, "POST", "/invocations", bearer(setup.token_a), verify=verify)
    assert scored.status_code == 200 and len(scored.json()["predictions"]) == 3
    inferred = call(url, "POST", f"/v2/models/{V2_NAME}/infer", bearer(setup.token_a), verify=verify)
    assert inferred.status_code == 200, inferred.text
    assert inferred.json()["model_name"] == V2_NAME


def answers_from_both_workers(check) -> bool:
    """`check(response)` holds for ten requests on fresh connections, answered by both workers."""
    workers = set()
    for _ in range(10):
        response = check()
        if response is None:
            return False
        workers.add(response.headers["x-request-id"][:REQUEST_ID_PREFIX])
    return len(workers) == 2


def test_token_rotation_reaches_every_worker(setup):
    server = setup.workers

    def new_token_accepted_old_refused() -> httpx.Response | None:
        new = call(server.url, "GET", "/metadata", bearer(setup.token_c), verify=server.verify)
        old = call(server.url, "GET", "/metadata", bearer(setup.token_a), verify=server.verify)
        return new if new.status_code == 200 and old.status_code == 401 else None

    setup.workers_tokens.update({"tokens": f"# rotated\n{setup.token_c}\n".encode()})
    assert wait_for(lambda: answers_from_both_workers(new_token_accepted_old_refused), timeout=30)


def test_certificate_reload_reaches_every_worker(setup):
    server = setup.workers
    cert, key = setup.authority.issue("workers-2")
    setup.workers_tls.update({"tls.crt": cert, "tls.key": key})

    def new_certificate() -> httpx.Response | None:
        response, name, _ = get_with_certificate(server.url + "/ping", server.verify)
        return response if name == "workers-2" else None

    assert wait_for(lambda: answers_from_both_workers(new_certificate), timeout=30)
    assert "TLS certificate reloaded" in server.log()


# ---------------------------------------------------------------------------------------------
# TLS alone, from $SIGSERVE_TLS_CERT / $SIGSERVE_TLS_KEY, one worker

def served_name(server: TlsServer) -> str:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with server.verify.wrap_socket(raw, server_hostname="localhost") as tls:
            return common_name(tls.getpeercert(binary_form=True))


def test_tls_from_the_environment_with_auth_off(setup):
    server = setup.single
    assert served_name(server) == "single-1"
    for path in ["/metadata", "/metrics", "/openapi.json"]:
        assert call(server.url, "GET", path, verify=server.verify).status_code == 200, "auth is off by default"
    assert call(server.url, "POST", "/invocations", verify=server.verify).status_code == 200


def test_a_bad_certificate_pair_keeps_the_old_one(setup):
    server, certs = setup.single, setup.single_certs
    with httpx.Client(verify=server.verify, timeout=10) as client:
        assert client.get(server.url + "/ping").status_code == 200  # a connection open across the swaps
        replacement = setup.authority.issue("single-2")
        replace_file(certs.cert, replacement[0])  # the certificate first, its key not yet
        assert served_name(server) == "single-1"
        assert wait_for(lambda: "do not load" in server.log(), timeout=10)
        replace_file(certs.key, replacement[1])
        assert served_name(server) == "single-2"
        assert client.get(server.url + "/ping").status_code == 200


def healthcheck_command() -> str:
    """The image's HEALTHCHECK, as the container runtime would run it."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    command = json.loads(line.partition("CMD ")[2])
    assert command[:2] == ["/opt/venv/bin/python", "-c"]
    return command[2]


def test_image_healthcheck_speaks_https_and_needs_no_token(setup):
    probe = [sys.executable, "-c", healthcheck_command()]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGSERVE_")}

    def health(port: int, **env: str) -> int:
        return subprocess.run(probe, env={**base, "SIGSERVE_PORT": str(port), **env},
                              capture_output=True, timeout=30, check=False).returncode

    tls_env = {"SIGSERVE_TLS_CERT": str(setup.single_certs.cert)}
    assert health(setup.single.port, **tls_env) == 0
    assert health(setup.workers.port, **tls_env) == 0
    assert health(setup.single.port) != 0, "plain HTTP must not pass against a TLS listener"
    assert health(setup.auth.port) == 0, "/ping needs no token"


# ---------------------------------------------------------------------------------------------
# start-up refusals: one line, before the model is loaded

def serve_refused(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIGSERVE_")}
    command = [sys.executable, "-m", "sigserve", "serve", "-m", str(DEMO_MODEL_DIR), "-p", str(free_port()),
               "--grpc-port", "0", *args]
    return subprocess.run(command, env={**base, **(env or {})}, capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.fixture(scope="module")
def refusal_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("refusals")
    authority = Authority(root)
    cert, key = authority.issue("refused")
    _, other_key = authority.issue("other")
    files = {"cert": cert, "key": key, "other_key": other_key,
             "comments_only": b"# no tokens yet\n\n", "bad_line": b"fine-token\nBearer secret-value\n"}
    for name, content in files.items():
        (root / name).write_bytes(content)
    return {name: str(root / name) for name in [*files, "missing"]}


def test_tls_flags_go_together(refusal_files):
    f = refusal_files
    for args, env in [(("--tls-cert", f["cert"]), {}), ((), {"SIGSERVE_TLS_KEY": f["key"]}),
                      (("--tls-cert", f["cert"]), {"SIGSERVE_TLS_KEY": ""})]:
        out = serve_refused(*args, env=env)
        assert out.returncode == 2, out.stderr
        assert "--tls-cert and --tls-key go together" in out.stderr


@pytest.mark.parametrize("case", ["key of another certificate", "missing certificate", "token file of comments",
                                  "missing token file", "no token in the environment", "token with a space"])
def test_start_up_refuses_in_one_line(refusal_files, case):
    f = refusal_files
    args, env, expected = {
        "key of another certificate": (("--tls-cert", f["cert"], "--tls-key", f["other_key"]), {},
                                       "KEY_VALUES_MISMATCH"),
        "missing certificate": (("--tls-cert", f["missing"], "--tls-key", f["key"]), {},
                                f"cannot read the TLS file {f['missing']}"),
        "token file of comments": (("--auth-token-file", f["comments_only"]), {},
                                   f"{f['comments_only']} holds no token"),
        "missing token file": ((), {"SIGSERVE_AUTH_TOKEN_FILE": f["missing"]},
                               f"cannot read the auth token file {f['missing']}"),
        "no token in the environment": ((), {"SIGSERVE_AUTH_TOKENS": " , "}, "$SIGSERVE_AUTH_TOKENS holds no token"),
        "token with a space": (("--auth-token-file", f["bad_line"]), {}, f"line 2 of {f['bad_line']}"),
    }[case]
    out = serve_refused(*args, env=env)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sigserve: ") and expected in lines[0], out.stderr
    assert "secret-value" not in out.stderr
    assert "loaded" not in out.stderr, "refused before the model is loaded"
