"""The sources' settings (`sigserve.sources.settings.SourceSettings`): read once from the flags and a
given environment mapping, checked there, and passed down to `resolve()` and the registry code,
which use what they are given and never read the environment themselves."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sigserve.demo import DEMO_MODEL_DIR
from sigserve.errors import ModelLoadError, ModelNotFound, RegistryLimitExceeded
from sigserve.redact import redact_text
from sigserve.sources.registry.limits import RegistryLimits
from sigserve.sources.settings import SourceSettings
from sigserve.sources.source import resolve

TOKEN = "tok-settings-5e1c0d7a9b"
PASSWORD = "pw-settings-3f9a2b7c1d"


def registry_db(path: Path, versions: dict[tuple[str, int], str], aliases: dict[str, tuple[str, int]]) -> str:
    """An MLflow 2.x-layout registry (the tables sigserve reads) holding `versions` (name, number → source)."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE registered_models (name TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE model_versions (name TEXT, version INTEGER, source TEXT, "
                     "storage_location TEXT, run_id TEXT, current_stage TEXT)")
        conn.execute("CREATE TABLE registered_model_aliases (alias TEXT, version INTEGER, name TEXT)")
        for name in sorted({name for name, _ in versions}):
            conn.execute("INSERT INTO registered_models VALUES (?)", (name,))
        for (name, number), source in versions.items():
            conn.execute("INSERT INTO model_versions VALUES (?, ?, ?, ?, NULL, 'None')", (name, number, source, source))
        for alias, (name, number) in aliases.items():
            conn.execute("INSERT INTO registered_model_aliases VALUES (?, ?, ?)", (alias, number, name))
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> str:
    """iris v1 (@champion) on this machine; iris v2 in an in-memory "cloud" store; a chain of
    versions each pointing at the next."""
    import fsspec

    memory = fsspec.filesystem("memory")
    for path in DEMO_MODEL_DIR.rglob("*"):
        if path.is_file():
            memory.pipe(f"memory://settings-bucket/iris/{path.relative_to(DEMO_MODEL_DIR)}", path.read_bytes())
    versions = {("iris", 1): str(DEMO_MODEL_DIR), ("iris", 2): "memory://settings-bucket/iris"}
    versions |= {("chain", n): f"models:/chain/{n + 1}" for n in range(1, 5)} | {("chain", 5): str(DEMO_MODEL_DIR)}
    return registry_db(tmp_path_factory.mktemp("settings") / "registry.db", versions, {"champion": ("iris", 1)})


# Reading a mapping ------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, environ, expected", [
    ("sqlite:///flag.db", {"MLFLOW_REGISTRY_URI": "sqlite:///r.db", "MLFLOW_TRACKING_URI": "http://t"},
     "sqlite:///flag.db"),
    (None, {"MLFLOW_REGISTRY_URI": "sqlite:///r.db", "MLFLOW_TRACKING_URI": "http://t"}, "sqlite:///r.db"),
    (None, {"MLFLOW_TRACKING_URI": "http://t"}, "http://t"),
    (None, {"MLFLOW_REGISTRY_URI": "", "MLFLOW_TRACKING_URI": "http://t"}, "http://t"),  # empty is unset
    ("", {"MLFLOW_TRACKING_URI": "http://t"}, "http://t"),
    (None, {}, None),
])
def test_registry_uri_precedence(flag, environ, expected) -> None:
    assert SourceSettings.from_env(environ, registry_uri=flag).registry_uri == expected


def test_only_the_given_mapping_is_read() -> None:
    """conftest sets MLFLOW_TRACKING_URI in this process's environment: a given mapping replaces it."""
    assert os.environ.get("MLFLOW_TRACKING_URI")
    assert SourceSettings.from_env({}) == SourceSettings()
    assert SourceSettings.from_env().registry_uri == os.environ["MLFLOW_TRACKING_URI"]


def test_unconfigured_registry_is_mlflow_default_for_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = SourceSettings.from_env({})
    assert settings.registry() == "sqlite:///mlflow.db"
    (tmp_path / "mlruns" / "models").mkdir(parents=True)
    assert settings.registry() == "mlruns"  # an MLflow 2 working directory, looked at when asked
    (tmp_path / "mlflow.db").touch()
    assert settings.registry() == "sqlite:///mlflow.db"


@pytest.mark.parametrize("flag, environ, expected", [
    ("/flag/cache", {"SIGSERVE_CACHE_DIR": "/env/cache", "XDG_CACHE_HOME": "/xdg"}, Path("/flag/cache")),
    (None, {"SIGSERVE_CACHE_DIR": "/env/cache", "XDG_CACHE_HOME": "/xdg"}, Path("/env/cache")),
    (None, {"SIGSERVE_CACHE_DIR": "", "XDG_CACHE_HOME": "/xdg"}, Path("/xdg/sigserve")),
    (None, {"XDG_CACHE_HOME": ""}, Path("~/.cache/sigserve")),
    (None, {}, Path("~/.cache/sigserve")),  # expanded only when a download needs it
])
def test_cache_dir_precedence(flag, environ, expected) -> None:
    assert SourceSettings.from_env(environ, cache_dir=flag).cache_dir == expected


def test_tracking_credentials_and_tls() -> None:
    tracking = SourceSettings.from_env({
        "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD, "MLFLOW_TRACKING_TOKEN": TOKEN,
        "MLFLOW_TRACKING_INSECURE_TLS": " True ", "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem",
        "MLFLOW_TRACKING_CLIENT_CERT_PATH": "/client.pem", "REQUESTS_CA_BUNDLE": "/bundle.pem",
    }).tracking
    assert (tracking.username, tracking.password, tracking.token) == ("alice", PASSWORD, TOKEN)
    assert tracking.insecure_tls is True
    assert (tracking.server_cert_path, tracking.client_cert_path, tracking.ca_bundle) == (
        "/ca.pem", "/client.pem", "/bundle.pem")
    empty = SourceSettings.from_env({"MLFLOW_TRACKING_TOKEN": "", "MLFLOW_TRACKING_SERVER_CERT_PATH": ""}).tracking
    assert empty.token is None and empty.server_cert_path is None


@pytest.mark.parametrize("value, insecure", [("true", True), ("1", True), ("TRUE", True), ("false", False),
                                             ("0", False), ("yes", False), ("", False)])
def test_insecure_tls_as_mlflow_reads_it(value: str, insecure: bool) -> None:
    assert SourceSettings.from_env({"MLFLOW_TRACKING_INSECURE_TLS": value}).tracking.insecure_tls is insecure


def test_secrets_are_masked_once_read_and_never_in_the_repr() -> None:
    secret_token, secret_password = "masked-token-8c4e2a1f", "masked-password-6b0d3e9a"
    assert redact_text(f"said {secret_token}") == f"said {secret_token}"  # not known yet
    settings = SourceSettings.from_env({"MLFLOW_TRACKING_TOKEN": secret_token,
                                        "MLFLOW_TRACKING_PASSWORD": secret_password})
    assert redact_text(f"said {secret_token} and {secret_password}") == "said *** and ***"
    assert secret_token not in repr(settings) and secret_password not in repr(settings)


def test_limits_are_read_and_checked() -> None:
    environ = {"SIGSERVE_REGISTRY_TIMEOUT": "2.5", "SIGSERVE_REGISTRY_DEADLINE": " 60 ",
               "SIGSERVE_REGISTRY_MAX_DEPTH": "3", "SIGSERVE_REGISTRY_MAX_LISTING_DEPTH": "4",
               "SIGSERVE_REGISTRY_MAX_FILES": "5", "SIGSERVE_REGISTRY_MAX_BYTES": "", }  # empty: the default
    assert SourceSettings.from_env(environ).limits == RegistryLimits(2.5, 60.0, 3, 4, 5, RegistryLimits().max_bytes)


@pytest.mark.parametrize("name, value, expected", [
    ("TIMEOUT", "soon", "SIGSERVE_REGISTRY_TIMEOUT='soon' is not a positive number of seconds"),
    ("DEADLINE", "0", "SIGSERVE_REGISTRY_DEADLINE='0' is not a positive number of seconds"),
    ("DEADLINE", "nan", "SIGSERVE_REGISTRY_DEADLINE='nan' is not a positive number of seconds"),
    ("MAX_DEPTH", "-1", "SIGSERVE_REGISTRY_MAX_DEPTH='-1' is not a whole number of at least 1"),
    ("MAX_BYTES", "1.5", "SIGSERVE_REGISTRY_MAX_BYTES='1.5' is not a whole number of at least 1"),
])
def test_a_bad_limit_names_its_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ModelLoadError) as refused:
        SourceSettings.from_env({f"SIGSERVE_REGISTRY_{name}": value})
    assert refused.value.message == expected


# Passed down -------------------------------------------------------------------------------------

def test_resolve_uses_the_registry_in_the_settings(registry) -> None:
    """The environment names another registry (conftest's unused one): the settings win."""
    assert os.environ["MLFLOW_TRACKING_URI"] != registry
    resolved = resolve("models:/iris@champion", SourceSettings(registry_uri=registry))
    assert (resolved.registry, resolved.version, resolved.path) == (registry, "1", DEMO_MODEL_DIR.resolve())


def test_resolve_downloads_into_the_cache_in_the_settings(registry, tmp_path) -> None:
    resolved = resolve("models:/iris/2", SourceSettings(registry_uri=registry, cache_dir=tmp_path / "cache"))
    assert resolved.path.parent == tmp_path / "cache" and (resolved.path / "MLmodel").is_file()


def test_resolve_follows_sources_within_the_limits_in_the_settings(registry) -> None:
    assert resolve("models:/chain/1", SourceSettings(registry_uri=registry)).version == "1"
    tight = SourceSettings(registry_uri=registry, limits=RegistryLimits(max_depth=2))
    with pytest.raises(RegistryLimitExceeded) as refused:
        resolve("models:/chain/1", tight)
    assert "more than 2 times" in refused.value.message and "SIGSERVE_REGISTRY_MAX_DEPTH" in refused.value.message


def test_resolve_uses_the_tls_options_in_the_settings() -> None:
    """MLflow's refused combination reaches the REST client through the settings alone."""
    contradictory = SourceSettings.from_env({"MLFLOW_TRACKING_INSECURE_TLS": "true",
                                             "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem"},
                                            registry_uri="https://127.0.0.1:9")
    with pytest.raises(ModelNotFound, match="MLFLOW_TRACKING_INSECURE_TLS=true and MLFLOW_TRACKING_SERVER_CERT_PATH"):
        resolve("models:/iris/1", contradictory)


def test_resolve_refuses_a_registry_string_for_settings(registry) -> None:
    with pytest.raises(TypeError, match="SourceSettings"):
        resolve("models:/iris@champion", registry)  # type: ignore[arg-type]


# The command line --------------------------------------------------------------------------------

def test_cache_dir_flag_does_not_touch_the_environment(registry, tmp_path, monkeypatch, capsys) -> None:
    from sigserve.cli import main

    monkeypatch.delenv("SIGSERVE_CACHE_DIR", raising=False)
    code = main(["info", "-m", "models:/iris/2", "--registry-uri", registry, "--cache-dir", str(tmp_path / "flag")])
    assert code == 0, capsys.readouterr().err
    assert Path(json.loads(capsys.readouterr().out)["local_path"]).parent == tmp_path / "flag"
    assert "SIGSERVE_CACHE_DIR" not in os.environ


def sigserve(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SIGSERVE_"))}
    return subprocess.run([sys.executable, "-m", "sigserve", *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **environ})


def test_configured_by_environment_alone(registry) -> None:
    result = sigserve("info", "-m", "models:/iris@champion", MLFLOW_REGISTRY_URI=registry,
                      MLFLOW_TRACKING_URI="sqlite:////nonexistent/other.db")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["registry"] == registry


def test_a_bad_limit_fails_at_start_whatever_the_model() -> None:
    """Checked once, when the settings are read: even a model on this machine, which needs no registry."""
    result = sigserve("info", "-m", str(DEMO_MODEL_DIR), SIGSERVE_REGISTRY_MAX_BYTES="lots")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "sigserve: SIGSERVE_REGISTRY_MAX_BYTES='lots' is not a whole number of at least 1"
