"""Registry credentials never leave the process: not in /metadata, `sigserve info`, any log line
(httpx logs every request URL), error messages or metric labels; and the tracking token goes to
the tracking server's own origin only, never to another artifact host or across a redirect.
Real `sigserve serve` / `info` processes against a fake tracking server (tests/fake_registry.py)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fake_registry import ARTIFACTS, FakeRegistry, answer, redirect
from helpers import SigserveServer

PASSWORD = "pw-Hunter2-9f3a7c"
TOKEN = "tok-7d1e9a0b5c2f4e68"
SIGNATURE = "sig-0a1b2c3d4e5f6789"
SECRETS = (PASSWORD, TOKEN, SIGNATURE, base64.b64encode(f"alice:{PASSWORD}".encode()).decode())
ROW = {"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture(scope="module")
def fake():
    registry = FakeRegistry()
    registry.add_version("m", "1", artifacts=registry.serve_model("models/m"), aliases=("champion",),
                         source=f"s3://bucket/m?X-Amz-Signature={SIGNATURE}&X-Amz-Date=20260101")
    registry.add_version("far", "1", artifacts=f"hdfs://namenode/models/far?token={TOKEN}")
    yield registry
    registry.close()


def with_password(fake: FakeRegistry) -> str:
    return f"http://alice:{PASSWORD}@{fake.netloc}"


def test_secrets_stay_out_of_responses_logs_and_metrics(fake, tmp_path) -> None:
    """One worker logging text, and two (gunicorn) logging JSON, both at debug level with the
    password in the registry URI; the second also holds MLFLOW_TRACKING_TOKEN."""
    common = ("--registry-uri", with_password(fake), "--log-level", "debug", "--reload-interval", "0.2")
    servers = [
        SigserveServer("models:/m@champion", *common, env={"SIGSERVE_CACHE_DIR": str(tmp_path / "a")}),
        SigserveServer("models:/m@champion", *common, "-w", "2", "--log-format", "json",
                       env={"SIGSERVE_CACHE_DIR": str(tmp_path / "b"), "MLFLOW_TRACKING_TOKEN": TOKEN}),
    ]
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
            polls = len(fake.paths("alias?name=m"))
            assert server.post(ROW).status_code == 200
            shown = {path: httpx.get(server.url + path, timeout=10).text
                     for path in ("/metadata", "/metrics", "/openapi.json", "/v2/models/m", "/version")}
            metadata = json.loads(shown["/metadata"])
            assert metadata["registry"] == f"http://alice:***@{fake.netloc}"
            assert metadata["source"] == "s3://bucket/m?X-Amz-Signature=***&X-Amz-Date=20260101"
            for path, body in shown.items():
                assert not leaked(body), (path, body)
            assert wait_polled(fake, polls)  # the poller has made registry requests since
        for server in servers:
            server.stop()
            log = server.log()
            assert "HTTP Request: GET http://alice:***@" in log  # httpx's line, at debug level, masked
            assert not leaked(log), log
    finally:
        for server in servers:
            server.stop()
    sent = {auth for _, _, auth in fake.requests}
    assert f"Basic {SECRETS[3]}" in sent and f"Bearer {TOKEN}" in sent  # the credentials were used


def wait_polled(fake: FakeRegistry, before: int) -> bool:
    from helpers import wait_for

    return wait_for(lambda: len(fake.paths("alias?name=m")) > before + 2, 20)


def sigserve_info(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, "-m", "sigserve", "info", *args], capture_output=True, text=True,
                          timeout=60, env={**environment, **env})


def test_info_and_its_errors_mask_credentials(fake, tmp_path) -> None:
    result = sigserve_info("-m", "models:/m/1", "--registry-uri", with_password(fake),
                           SIGSERVE_CACHE_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["registry"] == f"http://alice:***@{fake.netloc}" and report["version"] == "1"
    assert not leaked(result.stdout + result.stderr)

    failed = sigserve_info("-m", "models:/far/1", "--registry-uri", with_password(fake),
                           SIGSERVE_CACHE_DIR=str(tmp_path))
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "hdfs://namenode/models/far?token=***" in failed.stderr
    assert f"http://alice:***@{fake.netloc}" in failed.stderr
    assert not leaked(failed.stderr), failed.stderr


@pytest.fixture
def two_hosts():
    """A tracking server and another host serving the same model's artifacts."""
    registry, elsewhere = FakeRegistry(), FakeRegistry()
    elsewhere.serve_model("models/m")
    elsewhere.listings["locked"] = lambda path: [{"path": "MLmodel", "is_dir": False}]
    elsewhere.files["locked"] = lambda request: answer(request, 401, {"error_code": "UNAUTHENTICATED",
                                                                      "message": "credentials required"})
    registry.serve_model("models/redirected")
    registry.files["models/redirected"] = lambda request: redirect(
        elsewhere.url + request.path.replace("models/redirected", "models/m"))(request)
    registry.add_version("other-host", "1", artifacts=f"mlflow-artifacts://{elsewhere.netloc}/models/m")
    registry.add_version("http-form", "1", artifacts=f"{elsewhere.url}{ARTIFACTS}/models/m")
    registry.add_version("redirected", "1", artifacts="mlflow-artifacts:/models/redirected")
    registry.add_version("locked", "1", artifacts=f"mlflow-artifacts://{elsewhere.netloc}/locked")
    yield registry, elsewhere
    registry.close()
    elsewhere.close()


def test_the_token_goes_to_the_tracking_server_only(two_hosts, tmp_path) -> None:
    from sigserve.errors import ModelLoadError
    from sigserve.sources.settings import SourceSettings
    from sigserve.sources.source import resolve

    registry, elsewhere = two_hosts
    sources = SourceSettings.from_env({"MLFLOW_TRACKING_TOKEN": TOKEN, "SIGSERVE_CACHE_DIR": str(tmp_path)},
                                      registry_uri=registry.url)
    for name in ("other-host", "redirected", "http-form"):  # a host in the URI, a redirect, a URL
        resolved = resolve(f"models:/{name}/1", sources)
        assert (resolved.path / "MLmodel").is_file(), name
        assert elsewhere.paths("/models/m/MLmodel"), name
        assert {auth for _, _, auth in elsewhere.requests} == {None}, name
        elsewhere.requests.clear()
    assert {auth for _, _, auth in registry.requests} == {f"Bearer {TOKEN}"}

    with pytest.raises(ModelLoadError) as refused:
        resolve("models:/locked/1", sources)
    message = refused.value.message
    assert "answered HTTP 401" in message and "never to another host" in message and not leaked(message)


def test_registering_refuses_links_that_leave_the_model_directory(tmp_path, capsys) -> None:
    """`registry register` copies the model directory into the registry: a link in it must not
    smuggle in a file from elsewhere (a key, a password file). Links within it are fine."""
    import shutil

    from fake_registry import DEMO_MODEL
    from sigserve.admin.cli import main

    model = tmp_path / "model"
    shutil.copytree(DEMO_MODEL, model)
    (tmp_path / "id_rsa").write_text(PASSWORD)
    database = f"sqlite:///{tmp_path / 'registry.db'}"
    register = ("register", "--registry-uri", database, "--name", "m", "--path", str(model))
    (model / "notes.txt").symlink_to(tmp_path / "id_rsa")
    (model / "code" / "data").symlink_to(tmp_path, target_is_directory=True)
    for link in (model / "notes.txt", model / "code" / "data"):
        assert main(list(register)) == 2
        error = capsys.readouterr().err
        assert f"{link} is a symbolic link to" in error and "outside the model directory" in error, error
        link.unlink()
    assert not list(tmp_path.glob("sigserve-artifacts/m/*"))  # no version was made

    (model / "weights-link.json").symlink_to("weights.json")  # inside: copied as the file it names
    assert main(list(register)) == 0, capsys.readouterr().err
    copied = Path(json.loads(capsys.readouterr().out)["storage_location"])
    assert (copied / "weights-link.json").read_bytes() == (model / "weights.json").read_bytes()
    assert not leaked("".join(p.read_text(errors="replace") for p in copied.rglob("*") if p.is_file()))


@pytest.mark.parametrize("text, shown", [
    ("http://alice:s3cret@host:5000/api", "http://alice:***@host:5000/api"),
    ("https://ghp_abcdef123456@github.com/o/r", "https://***@github.com/o/r"),  # a lone user name is often a token
    ("http://u:p@ss@host/x@y", "http://u:***@host/x@y"),  # an unescaped @ in the password
    ("s3://b/k?X-Amz-Credential=AKIA&X-Amz-Signature=abc&X-Amz-Date=1",
     "s3://b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=1"),
    ("wasbs://c@acct.blob.core.windows.net/m?sv=2022&sig=abc%3D",
     "wasbs://***@acct.blob.core.windows.net/m?sv=2022&sig=***"),
    ("GET /x?access_token=abc&page=2 failed", "GET /x?access_token=***&page=2 failed"),
    ('{"Authorization": "Bearer eyJhbGciOi.J9"}', '{"Authorization": "Bearer ***"}'),
    ("headers: authorization=Basic dXNlcjpwdw==", "headers: authorization=Basic ***"),
    ("sent Bearer abcdefghijklmnop", "sent Bearer ***"),
    ("sqlite:///mlflow.db and models:/churn@champion", "sqlite:///mlflow.db and models:/churn@champion"),
    ("a Bearer token is missing; version=2", "a Bearer token is missing; version=2"),
])
def test_what_is_masked(text: str, shown: str) -> None:
    from sigserve.redact import redact_text

    assert redact_text(text) == shown


def test_secret_values_from_the_environment_are_masked_anywhere() -> None:
    from sigserve.redact import add_secret, redact_text

    add_secret(TOKEN)
    assert redact_text(f"the server said: token {TOKEN} is expired") == "the server said: token *** is expired"
    add_secret("abc")  # too short to mask in free text without masking ordinary words
    assert redact_text("abc def") == "abc def"
