"""A fake MLflow tracking server on 127.0.0.1: the REST endpoints sigserve asks, answering what a
broken or hostile server would. Model versions, aliases, artifact trees and per-path behaviours
are set by the test; every request is recorded with its Authorization header."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API = "/api/2.0"
ARTIFACTS = f"{API}/mlflow-artifacts/artifacts"
DEMO_MODEL = Path(__file__).resolve().parents[1] / "src" / "sigserve" / "demo" / "model"

Handler = Callable[[BaseHTTPRequestHandler], None]


class FakeRegistry:
    def __init__(self) -> None:
        self.versions: dict[tuple[str, str], dict[str, Any]] = {}
        self.download_uris: dict[tuple[str, str], str] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.trees: dict[str, Path] = {}  # artifact path -> a local directory served as is
        self.listings: dict[str, Callable[[str], Any]] = {}  # artifact path prefix -> listing of a path
        self.files: dict[str, Handler] = {}  # artifact path prefix -> answers a file request itself
        self.requests: list[tuple[str, str, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else every small answer waits 40 ms for a delayed ACK

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                try:
                    fake.handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # sigserve gave up, as it should

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.netloc = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.netloc}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # What the test sets up -------------------------------------------------------------------

    def add_version(self, name: str, version: str, *, source: str = "", artifacts: str | None = None,
                    aliases: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
        """A model version; `artifacts` is what get-download-uri answers (none: 404)."""
        record = {"name": name, "version": version, "source": source, "current_stage": "None",
                  "aliases": list(aliases), "status": "READY", **fields}
        self.versions[(name, str(version))] = record
        if artifacts is not None:
            self.download_uris[(name, str(version))] = artifacts
        for alias in aliases:
            self.aliases[(name, alias)] = str(version)
        return record

    def serve_model(self, artifact_path: str, directory: Path = DEMO_MODEL) -> str:
        """Serve a real model directory under `artifact_path`; its mlflow-artifacts:/ URI."""
        self.trees[artifact_path.strip("/")] = directory
        return f"mlflow-artifacts:/{artifact_path.strip('/')}"

    def paths(self, fragment: str) -> list[str]:
        return [path for _, path, _ in self.requests if fragment in path]

    # Answers ------------------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests.append((request.command, request.path, request.headers.get("Authorization")))
        parts = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path == ARTIFACTS:
            return self._listing(request, query.get("path", ""))
        if path.startswith(ARTIFACTS + "/"):
            return self._file(request, unquote(path[len(ARTIFACTS) + 1:]))
        if path == f"{API}/mlflow/model-versions/get":
            return self._version(request, (query.get("name", ""), query.get("version", "")))
        if path == f"{API}/mlflow/registered-models/alias":
            version = self.aliases.get((query.get("name", ""), query.get("alias", "")))
            if version is None:
                return answer(request, 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "alias not found"})
            return self._version(request, (query["name"], version))
        if path == f"{API}/mlflow/model-versions/get-download-uri":
            uri = self.download_uris.get((query.get("name", ""), query.get("version", "")))
            if uri is None:
                return answer(request, 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no download uri"})
            return answer(request, 200, {"artifact_uri": uri})
        if path == f"{API}/mlflow/registered-models/get":
            name = query.get("name", "")
            if any(key[0] == name for key in self.versions):
                return answer(request, 200, {"registered_model": {"name": name}})
        if path == f"{API}/mlflow/registered-models/get-latest-versions":
            name = json.loads(body or b"{}").get("name")
            found = [v for (n, _), v in self.versions.items() if n == name]
            return answer(request, 200, {"model_versions": found})
        return answer(request, 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"})

    def _version(self, request: BaseHTTPRequestHandler, key: tuple[str, str]) -> None:
        record = self.versions.get(key)
        if record is None:
            return answer(request, 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such version"})
        return answer(request, 200, {"model_version": record})

    def _listing(self, request: BaseHTTPRequestHandler, path: str) -> None:
        for prefix, listing in self.listings.items():
            if path == prefix or path.startswith(prefix + "/"):
                return answer(request, 200, {"files": listing(path)})
        directory = self._local(path)
        if directory is None or not directory.is_dir():
            return answer(request, 200, {})
        files = [{"path": p.name, "is_dir": p.is_dir(), **({} if p.is_dir() else {"file_size": p.stat().st_size})}
                 for p in sorted(directory.iterdir())]
        return answer(request, 200, {"files": files})

    def _file(self, request: BaseHTTPRequestHandler, path: str) -> None:
        for prefix, handler in self.files.items():
            if path == prefix or path.startswith(prefix + "/"):
                return handler(request)
        local = self._local(path)
        if local is None or not local.is_file():
            return answer(request, 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such file"})
        return answer(request, 200, local.read_bytes(), "application/octet-stream")

    def _local(self, path: str) -> Path | None:
        for prefix, directory in self.trees.items():
            if path == prefix or path.startswith(prefix + "/"):
                return directory / path[len(prefix):].lstrip("/")
        return None


def answer(request: BaseHTTPRequestHandler, status: int, body: Any, content_type: str = "application/json") -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def endless(request: BaseHTTPRequestHandler) -> None:
    """A file that never ends: chunked, as fast as the client reads."""
    request.send_response(200)
    request.send_header("Content-Type", "application/octet-stream")
    request.send_header("Transfer-Encoding", "chunked")
    request.end_headers()
    chunk = b"x" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    while True:
        request.wfile.write(framed)


def trickle(every: float = 0.1) -> Handler:
    """A file announced large and sent a byte at a time, each byte well within any read timeout."""

    def send(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(1 << 20))
        request.end_headers()
        for _ in range(1 << 20):
            request.wfile.write(b"x")
            request.wfile.flush()
            time.sleep(every)

    return send


def redirect(location: str) -> Handler:
    def send(request: BaseHTTPRequestHandler) -> None:
        request.send_response(302)
        request.send_header("Location", location)
        request.send_header("Content-Length", "0")
        request.end_headers()

    return send
