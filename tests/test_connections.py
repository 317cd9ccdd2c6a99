"""Slow and idle clients, the connection cap, the drain on SIGTERM, and `-t` for requests scored
on the event loop: real servers, real sockets, real keep-alive clients."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import sys
import threading
import time

import httpx
import pytest
from helpers import SigserveServer, metric_samples, total, wait_for

SLOW_ROW = {"dataframe_split": {"columns": ["x"], "data": [[5.000]]}}
FAST_ROW = {"dataframe_split": {"columns": ["x"], "data": [[0.000]]}}


def _connect(port: int, payload: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if payload:
        sock.sendall(payload)
    return sock


def _closed_with(sock: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing, or None if it is still open at the deadline."""
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return None


@pytest.fixture(scope="module")
def guarded(models):
    with SigserveServer(models["sklearn_skops"], "--header-timeout", "1", "--body-timeout", "1") as server:
        yield server


def test_silent_slow_head_and_slow_body_clients_are_cut_off_while_others_are_served(guarded) -> None:
    port = guarded.port
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
    body_head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"
    silent = [_connect(port) for _ in range(100)]
    slow_heads = [_connect(port, head) for _ in range(100)]
    slow_bodies = [_connect(port, body_head) for _ in range(100)]
    v2_body = [_connect(port, body_head.replace(b"/invocations", b"/v2/models/sklearn_skops/infer"))]
    stop = threading.Event()

    def trickle() -> None:  # a byte a quarter second: each byte arrives well within any idle timeout
        while not stop.is_set():
            for sock in slow_heads + slow_bodies:
                try:
                    sock.send(b"x" if sock in slow_heads else b" ")
                except OSError:
                    pass
            time.sleep(0.25)

    trickler = threading.Thread(target=trickle)
    trickler.start()
    try:
        started = time.monotonic()
        assert httpx.post(guarded.url + "/invocations", json={"dataframe_split": {
            "columns": ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"],
            "data": [[5.1, 3.5, 1.4, 0.2]]}}, timeout=10).status_code == 200
        deadline = started + 6
        answers = {name: [_closed_with(s, deadline) for s in group]
                   for name, group in (("silent", silent), ("head", slow_heads), ("body", slow_bodies), ("v2", v2_body))}
    finally:
        stop.set()
        trickler.join()
    assert all(a is not None for group in answers.values() for a in group), "every slow client is closed"
    assert all(a == b"" for a in answers["silent"] + answers["head"]), "without a head there is no one to answer"
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers["body"]), answers["body"][0]
    document = json.loads(answers["body"][0].split(b"\r\n\r\n", 1)[1])
    assert document == {"error_code": "REQUEST_TIMEOUT", "message": "The request body was not received within 1s"}
    assert json.loads(answers["v2"][0].split(b"\r\n\r\n", 1)[1]) == {
        "error": "The request body was not received within 1s"}
    samples = metric_samples(guarded.url)
    assert total(samples, "sigserve_rejected_requests_total", reason="slow_client") >= 300
    for sock in silent + slow_heads + slow_bodies + v2_body:
        sock.close()


def test_a_malformed_request_gets_a_json_400(guarded) -> None:
    sock = _connect(guarded.port, b"GARBAGE / HTTP/1.1\r\n\r\n")
    answer = _closed_with(sock, time.monotonic() + 5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 400")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error_code"] == "BAD_REQUEST"


class _FewDescriptors(SigserveServer):
    """A server that may open only 256 files, as in a tight container."""

    def command(self) -> list[str]:
        limit = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); " \
                "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
        return [sys.executable, "-c", limit, *super().command()[1:]]


def test_at_the_connection_cap_idle_clients_are_pushed_out_for_whole_requests(models) -> None:
    with _FewDescriptors(models["sklearn_skops"], "--header-timeout", "60") as server:
        idle = [_connect(server.port) for _ in range(500)]
        try:
            with httpx.Client(timeout=10) as client:
                for _ in range(3):
                    assert client.get(server.url + "/ping", headers={"Connection": "close"}).status_code == 200
            assert wait_for(lambda: total(metric_samples(server.url), "sigserve_rejected_requests_total",
                                          reason="connection_limit") >= 300, 10)
        finally:
            for sock in idle:
                sock.close()


# --------------------------------------------------------------------------- drain


def _keep_alive_load(url: str, clients: int, stop: threading.Event, stats: dict[str, int]) -> list[threading.Thread]:
    body = json.dumps(FAST_ROW)
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as session:
            while not stop.is_set():
                try:
                    answer = session.post("/invocations", content=body, headers={"Content-Type": "application/json"})
                    outcome = "answered" if answer.status_code == 200 else f"status {answer.status_code}"
                except httpx.ConnectError:  # not written: the server no longer accepts connections
                    outcome = "refused"
                    time.sleep(0.01)
                except httpx.HTTPError:  # written on an open connection, never answered
                    outcome = "lost"
                with lock:
                    stats[outcome] = stats.get(outcome, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_loses_no_request_written_on_a_keep_alive_connection(models, workers: str) -> None:
    server = SigserveServer(models["slow"], "-w", workers, "--no-access-log").start()
    stop, stats = threading.Event(), {}
    threads = _keep_alive_load(server.url, 24, stop, stats)
    try:
        assert wait_for(lambda: stats.get("answered", 0) > 200, 30)
        with httpx.Client(base_url=server.url, timeout=10) as prober:
            assert prober.get("/v2/health/ready").status_code == 200  # an open keep-alive connection
            answered_before = stats.get("answered", 0)
            os.kill(server.process.pid, signal.SIGTERM)
            assert wait_for(lambda: stats.get("refused", 0) > 0, 10)
            draining = prober.get("/v2/health/ready")
            assert draining.status_code == 503 and draining.json() == {"ready": False}
            assert draining.headers["connection"] == "close"
        assert server.process.wait(timeout=30) == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()
    assert stats.get("lost", 0) == 0, stats
    assert set(stats) <= {"answered", "refused"}, stats
    assert stats["answered"] > answered_before, "requests written after SIGTERM were answered"


# --------------------------------------------------------------------------- the event loop stays free


def test_a_request_that_turns_slow_on_the_event_loop_times_out_and_probes_still_answer(models) -> None:
    with SigserveServer(models["slow"], "-t", "1") as server, httpx.Client(timeout=30) as client:
        for _ in range(40):  # fast requests of the same size: the model earns inline scoring
            assert client.post(server.url + "/invocations", json=FAST_ROW).status_code == 200
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            slow = pool.submit(httpx.post, server.url + "/invocations", json=SLOW_ROW, timeout=30)
            probes = []
            while not slow.done() and time.monotonic() - started < 8:
                probe_started = time.monotonic()
                assert httpx.get(server.url + "/ping", timeout=10).status_code == 200
                probes.append(time.monotonic() - probe_started)
                time.sleep(0.05)
            answer = slow.result()
            elapsed = time.monotonic() - started
        assert answer.status_code == 504, answer.text
        assert answer.json()["error_code"] == "TIMEOUT"
        assert elapsed < 4, f"answered after {elapsed:.1f}s with -t 1"
        assert probes and max(probes) < 1.0, probes
