"""The kserve SDK, run in a virtual environment of its own.

kserve 0.21 pins pandas<3 and protobuf<7; installed beside sigserve it would decide the pandas the
whole suite runs with, not the one users get. Its clients are driven as scripts in that
environment, talking to real sigserve servers over the network like any other client."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

KSERVE_REQUIREMENT = "kserve==0.21.0"
VENV = Path(__file__).parent / ".venvs" / KSERVE_REQUIREMENT.replace("==", "-")


def kserve_python() -> Path:
    """The environment's interpreter, created on first use (about a minute) and kept for later runs."""
    python = VENV / "bin" / "python"
    ready = VENV / ".installed"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            venv.EnvBuilder(clear=True, with_pip=True).create(VENV)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            KSERVE_REQUIREMENT], check=True, timeout=900)
            ready.touch()
    return python


def run_kserve_script(script: str, *args: Any, timeout: float = 120) -> Any:
    """Run a client script with the kserve SDK; it prints one JSON document as its last line."""
    run = subprocess.run([str(kserve_python()), "-c", script, *map(str, args)],
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(kserve_python(), file=sys.stderr)
