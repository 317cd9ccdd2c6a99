"""The container image: the top-level Dockerfile, `sigserve generate-dockerfile`, and (where podman
is installed) building and running both images for real with deploy/container-test.sh."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port, generate, requirement_lines, run_cli

from sigserve.dockerfile import (
    BAKED_MODEL_PATH,
    DEFAULT_BASE_IMAGE,
    DockerfileError,
    model_needs_mlflow,
)
from sigserve.model.mlmodel import read_mlmodel

REPO = Path(__file__).resolve().parent.parent
INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK",
                "ENTRYPOINT", "CMD", "LABEL", "VOLUME", "STOPSIGNAL", "SHELL", "ONBUILD"}


# --- a small Dockerfile reader: enough to check what the builders would refuse --------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: comments dropped, continuations joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword, rest.strip()))
        pending = ""
    assert not pending, "a continuation line runs off the end of the file"
    return result


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and value and all(isinstance(v, str) for v in value), arguments
    return value


def check_dockerfile(text: str, context: Path) -> dict[str, object]:
    """What the builders check, plus sigserve's image contract; returns the final stage's facts."""
    steps = instructions(text)
    assert all(keyword in INSTRUCTIONS for keyword, _ in steps), [k for k, _ in steps if k not in INSTRUCTIONS]
    assert steps[0][0] in ("ARG", "FROM")
    global_args = {}
    for keyword, rest in steps:
        if keyword == "FROM":
            break
        assert keyword == "ARG"
        name, _, default = rest.partition("=")
        global_args[name] = default
    assert global_args.get("BASE_IMAGE"), "BASE_IMAGE needs a default"

    stages: list[str] = []
    final: dict[str, object] = {"env": {}, "copies": []}
    for keyword, rest in steps:
        if keyword == "FROM":
            words = rest.split()
            assert words[0] == "${BASE_IMAGE}", "every stage starts from the BASE_IMAGE arg"
            stages.append(words[2] if len(words) == 3 and words[1].upper() == "AS" else f"#{len(stages)}")
            final = {"env": {}, "copies": []}
        elif keyword == "COPY":
            words = rest.split()
            source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            paths = [w for w in words if not w.startswith("--")]
            assert len(paths) >= 2
            if source_stage:
                assert source_stage in stages[:-1], f"COPY --from={source_stage}: no earlier stage of that name"
            else:
                for source in paths[:-1]:
                    assert glob.glob(str(context / source)), f"COPY {source}: not in the build context"
            final["copies"].append((source_stage, paths))
        elif keyword == "ENV":
            for pair in rest.split():
                name, _, value = pair.partition("=")
                assert value, f"ENV {pair}: use the NAME=value form"
                final["env"][name] = value
        elif keyword in ("ENTRYPOINT", "CMD"):
            final[keyword] = exec_form(rest)
        elif keyword == "HEALTHCHECK":
            options, _, command = rest.partition("CMD ")
            final["HEALTHCHECK"] = exec_form(command)
            final["HEALTHCHECK options"] = options.split()
        elif keyword in ("USER", "EXPOSE", "WORKDIR"):
            final[keyword] = rest
    assert len(stages) >= 2, "multi-stage: build, then a runtime stage"
    return final


def check_contract(final: dict[str, object]) -> None:
    """The contract the Helm chart relies on."""
    env = final["env"]
    assert env["SIGSERVE_HOST"] == "0.0.0.0" and env["SIGSERVE_PORT"] == "8080"
    assert env["SIGSERVE_CACHE_DIR"] == "/var/cache/sigserve"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert final["USER"] == "10001:10001", "numeric, so runAsNonRoot can check it"
    assert final["EXPOSE"].split() == ["8080", "8081"], "HTTP, and the V2 gRPC API (--grpc-port's default)"
    assert final["ENTRYPOINT"] == ["/opt/venv/bin/sigserve", "serve"]
    health = final["HEALTHCHECK"]
    assert health[0] == "/opt/venv/bin/python" and health[1] == "-c", "python, not curl"
    compile(health[2], "<HEALTHCHECK>", "exec")
    assert "/ping" in health[2]
    copies_from_context = [paths for stage, paths in final["copies"] if stage is None]
    assert all(paths[-1].rstrip("/") == BAKED_MODEL_PATH for paths in copies_from_context), \
        "the runtime stage takes only the model from the context, nothing to build with"


# --- the top-level Dockerfile ---------------------------------------------------------------------

def test_repository_dockerfile_keeps_the_image_contract() -> None:
    text = (REPO / "Dockerfile").read_text()
    final = check_dockerfile(text, REPO)
    check_contract(final)
    assert "MODEL_URI" not in final["env"], "the generic image takes MODEL_URI at run time"
    steps = instructions(text)
    assert ("ARG", f"BASE_IMAGE={DEFAULT_BASE_IMAGE}") in steps
    assert ("ARG", "SIGSERVE_EXTRAS=sklearn") in steps


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: a new file in the repository stays out of the context"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {source.rstrip("/") for keyword, rest in instructions((REPO / "Dockerfile").read_text())
              if keyword == "COPY" and "--from=" not in rest for source in rest.split()[:-1]}
    assert copied == allowed == {"pyproject.toml", "README.md", "src"}


def test_healthcheck_command_probes_a_real_server(models: dict[str, Path], server_factory) -> None:
    """The image's HEALTHCHECK command, run here: 0 against a serving sigserve, non-0 without one."""
    health = check_dockerfile((REPO / "Dockerfile").read_text(), REPO)["HEALTHCHECK"]
    server = server_factory(models["sklearn_skops"])
    probe = [sys.executable, "-c", health[2]]
    assert subprocess.run(probe, check=False, env={**os.environ, "SIGSERVE_PORT": str(server.port)},
                          capture_output=True, timeout=30).returncode == 0
    assert subprocess.run(probe, check=False, env={**os.environ, "SIGSERVE_PORT": str(free_port())},
                          capture_output=True, timeout=30).returncode != 0


# --- generate-dockerfile --------------------------------------------------------------------------

def test_sklearn_model_context_bakes_the_model_without_mlflow(models: dict[str, Path], tmp_path: Path) -> None:
    model = models["sklearn_skops"]
    context = generate(model, tmp_path / "ctx")
    final = check_dockerfile((context / "Dockerfile").read_text(), context)
    check_contract(final)
    assert final["env"]["MODEL_URI"] == BAKED_MODEL_PATH

    baked = context / "model"
    assert sorted(p.relative_to(baked) for p in baked.rglob("*")) == \
        sorted(p.relative_to(model) for p in model.rglob("*"))
    assert (baked / "MLmodel").read_bytes() == (model / "MLmodel").read_bytes()
    assert read_mlmodel(baked).loader_module == "mlflow.sklearn"

    # the model saved `mlflow==3.17.2` and `scikit-learn`: sigserve loads mlflow.sklearn natively
    original = (model / "requirements.txt").read_text().split()
    assert any(line.startswith("mlflow") for line in original)
    assert requirement_lines(context) == [line for line in original if not line.startswith("mlflow")]
    assert "# left out: mlflow==" in (context / "install" / "requirements.txt").read_text()
    text = (context / "Dockerfile").read_text()
    assert 'pip install "sigserve[sklearn]==0.1.0" -r requirements.txt' in text
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in text  # the model's python_env.yaml says 3.11


def test_pyfunc_model_keeps_mlflow(models: dict[str, Path], tmp_path: Path) -> None:
    model = models["echo"]
    assert model_needs_mlflow(read_mlmodel(model).loader_module)
    context = generate(model, tmp_path / "ctx", extras=("cloud",))
    check_contract(check_dockerfile((context / "Dockerfile").read_text(), context))
    lines = requirement_lines(context)  # the model's `mlflow` becomes `mlflow-skinny` (test_mlflow_skinny.py)
    assert any(line.split("==")[0] == "mlflow-skinny" for line in lines), lines
    assert not any(line.split("==")[0] == "mlflow" for line in lines), lines
    assert 'pip install "sigserve[cloud,mlflow]==0.1.0"' in (context / "Dockerfile").read_text()
    assert (context / "model" / "python_model.pkl").is_file()
    assert (context / "model" / "code" / "models" / "pyfunc_models.py").is_file()


def test_custom_loader_model_needs_no_extras(models: dict[str, Path], tmp_path: Path) -> None:
    model = models["custom_loader"]
    context = generate(model, tmp_path / "ctx")
    check_contract(check_dockerfile((context / "Dockerfile").read_text(), context))
    assert not model_needs_mlflow("sigtest_linear")
    assert [line.split("==")[0] for line in requirement_lines(context)] == ["numpy"]
    assert 'pip install "sigserve==0.1.0"' in (context / "Dockerfile").read_text()
    assert (context / "model" / "code" / "sigtest_linear.py").is_file()


def test_local_sigserve_wheel_and_base_image(models: dict[str, Path], tmp_path: Path) -> None:
    wheel = tmp_path / "sigserve-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel: it is only copied")
    context = generate(models["sklearn_skops"], tmp_path / "ctx", sigserve_source=wheel,
                       base_image="localhost/sigserve-base:bookworm")
    check_dockerfile((context / "Dockerfile").read_text(), context)
    assert (context / "install" / wheel.name).read_bytes() == wheel.read_bytes()
    text = (context / "Dockerfile").read_text()
    assert f'pip install "./{wheel.name}[sklearn]" -r requirements.txt' in text
    assert "ARG BASE_IMAGE=localhost/sigserve-base:bookworm" in text
    with pytest.raises(DockerfileError, match="not a sigserve wheel"):
        generate(models["sklearn_skops"], tmp_path / "other", sigserve_source=tmp_path / "missing.whl")


def test_wheels_shipped_inside_the_model_go_into_the_context(models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(models["custom_loader"], model)
    (model / "wheels").mkdir()
    (model / "wheels" / "extra_pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
    (model / "constraints.txt").write_text("numpy<3\n")
    (model / "requirements.txt").write_text(
        "mlflow==3.17.2\nnumpy  # comment\nwheels/extra_pkg-1.0-py3-none-any.whl\n-c constraints.txt\n"
        "sigserve==0.0.1\n--extra-index-url https://example.org/simple\n"
    )
    context = generate(model, tmp_path / "ctx")
    assert requirement_lines(context) == [
        "numpy", "./wheels/extra_pkg-1.0-py3-none-any.whl", "-c constraints.txt",
        "--extra-index-url https://example.org/simple",
    ]
    assert (context / "install" / "wheels" / "extra_pkg-1.0-py3-none-any.whl").read_bytes() == b"wheel"
    assert (context / "install" / "constraints.txt").read_text() == "numpy<3\n"

    (model / "requirements.txt").write_text("/somewhere/else/pkg-1.0-py3-none-any.whl\n")
    with pytest.raises(DockerfileError, match="outside the model"):
        generate(model, tmp_path / "ctx2")


def test_output_directory_rules(models: dict[str, Path], tmp_path: Path) -> None:
    model = models["custom_loader"]
    context = generate(model, tmp_path / "ctx")
    (context / "model" / "stale-file").write_text("from an earlier run")
    generate(model, context)  # an earlier generate-dockerfile output is replaced
    assert not (context / "model" / "stale-file").exists()

    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    with pytest.raises(DockerfileError, match="not empty"):
        generate(model, unrelated)
    with pytest.raises(DockerfileError, match="overlaps"):
        generate(model, model / "ctx")


def test_baked_files_are_readable_by_the_image_user(models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(models["custom_loader"], model)
    (model / "code" / "sigtest_linear.py").chmod(0o600)
    context = generate(model, tmp_path / "ctx")
    for path in [context / "model", *(context / "model").rglob("*")]:
        assert path.stat().st_mode & (0o555 if path.is_dir() else 0o444) == (0o555 if path.is_dir() else 0o444), path


def test_cli_resolves_a_registry_uri(models: dict[str, Path], tmp_path: Path) -> None:
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registered = run_cli("registry", "register", "--registry-uri", registry, "--name", "iris",
                         "--path", str(models["sklearn_skops"]), "--alias", "champion")
    assert registered.returncode == 0, registered.stderr
    out = tmp_path / "ctx"
    result = run_cli("generate-dockerfile", "-m", "models:/iris@champion", "--registry-uri", registry,
                     "-d", str(out), "--cache-dir", str(tmp_path / "cache"), without_mlflow=True)
    assert result.returncode == 0, result.stderr
    assert b"wrote " in result.stdout
    text = (out / "Dockerfile").read_text()
    check_contract(check_dockerfile(text, out))
    assert 'io.sigserve.model.uri="models:/iris@champion"' in text
    assert 'io.sigserve.model.name="iris"' in text and 'io.sigserve.model.version="1"' in text
    assert (out / "model" / "model.skops").is_file()

    missing = run_cli("generate-dockerfile", "-m", str(tmp_path / "nothing"), "-d", str(tmp_path / "x"))
    assert missing.returncode != 0 and b"sigserve: " in missing.stderr


# --- the real thing, with podman -------------------------------------------------------------------

def _podman_skip_reason() -> str | None:
    if os.environ.get("SIGSERVE_SKIP_CONTAINER_TEST"):
        return "SIGSERVE_SKIP_CONTAINER_TEST is set"
    if shutil.which("podman") is None:
        return ("podman is not installed: building and running the image needs podman + runc "
                "(apt-get install podman runc debootstrap); deploy/container-test.sh runs it on demand")
    base = os.environ.get("SIGSERVE_BASE_IMAGE", "localhost/sigserve-base:bookworm")
    have_base = subprocess.run(["podman", "image", "exists", base], check=False, capture_output=True).returncode == 0
    if not have_base and (os.geteuid() != 0 or shutil.which("debootstrap") is None):
        return f"the base image {base} is missing, and building it needs root and debootstrap"
    return None


PODMAN_SKIP = _podman_skip_reason()


@pytest.mark.skipif(PODMAN_SKIP is not None, reason=str(PODMAN_SKIP))
def test_image_builds_and_serves_with_podman(models: dict[str, Path]) -> None:
    """deploy/container-test.sh: the Dockerfile's image with the model mounted, then resolving
    models:/…@champion from a registry at start-up, then the generate-dockerfile image with the
    model baked in; each must answer /ping, score a request, run as 10001 on a read-only root,
    pass its HEALTHCHECK and exit 0 on SIGTERM."""
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "container-test.sh"), "--model", str(models["sklearn_skops"])],
        check=False, capture_output=True, text=True, timeout=1800, env={**os.environ, "PYTHON": sys.executable},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "container-test: PASS" in result.stdout
    assert result.stdout.count('POST /invocations -> {"predictions"') == 3, output[-6000:]
    assert "x-model-version: container-test/1" in result.stdout.lower(), "the registry run serves the alias' version"
    print(f"container test took {time.monotonic() - started:.0f} s\n{result.stdout}")
