"""The HTTP surface of a real `sigserve serve` process: endpoints, errors, timeouts, workers."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest
from helpers import ALL_TYPES, SigserveServer, wait_for

import sigserve

SPLIT_ONE = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}


@pytest.fixture(scope="module")
def echo(models, server_factory) -> SigserveServer:
    return server_factory(models["echo"])


def test_health_endpoints_and_version(echo: SigserveServer) -> None:
    for path in ("/ping", "/health"):
        response = httpx.get(echo.url + path)
        assert response.status_code == 200
    assert httpx.get(echo.url + "/version").text == sigserve.__version__


def test_metadata_reports_the_signature(echo: SigserveServer) -> None:
    body = httpx.get(echo.url + "/metadata").json()
    assert body["loader_module"] == "mlflow.pyfunc.model"
    assert '"name": "i"' in body["signature"]["inputs"]


@pytest.mark.parametrize(
    "content_type",
    ["application/xml", "text/plain", "application/json; charset=latin-1", "application/json; foo=1",
     "text/csv; format=pandas-split"],
)
def test_unsupported_content_types_are_415(echo: SigserveServer, content_type: str) -> None:
    response = echo.post(b"{}", content_type)
    assert response.status_code == 415
    assert response.json()["message"]


def test_missing_content_type_is_415(echo: SigserveServer) -> None:
    response = httpx.post(echo.url + "/invocations", content=b"{}")
    assert response.status_code == 415


def test_malformed_json_names_the_position(echo: SigserveServer) -> None:
    response = echo.post(b'{"dataframe_split": {"data": [[1, 2]}')
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert "line 1 column" in body["message"]
    assert "stack_trace" not in body and "Traceback" not in response.text


def test_refusal_names_column_row_and_value(echo: SigserveServer) -> None:
    rows = [[1, 2, 1.5, 2.5, "x", True, "2020-01-01", "aGk="]] * 3
    rows.append([7, 2, 1.5, "oops", "x", True, "2020-01-01", "aGk="])
    body = {"dataframe_split": {"columns": ["i", "l", "f", "d", "s", "b", "t", "y"], "data": rows}}
    response = echo.post(body)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "'d'" in message and "row 3" in message and "'oops'" in message and "double" in message


def test_model_exception_is_400_and_the_server_keeps_serving(models, server_factory) -> None:
    server = server_factory(models["fails"])
    response = server.post(SPLIT_ONE)
    assert response.status_code == 400
    assert "this model always fails" in response.json()["message"]
    assert "Traceback" not in response.text
    assert httpx.get(server.url + "/ping").status_code == 200
    assert server.post(SPLIT_ONE).status_code == 400


def test_ping_answers_while_a_slow_prediction_runs(models, tmp_path) -> None:
    marker = tmp_path / "prediction-started"
    with SigserveServer(models["slow"], env={"SIGSERVE_TEST_STARTED_MARKER": str(marker)}) as server:
        _ping_during_slow_prediction(server, marker)


def _ping_during_slow_prediction(server: SigserveServer, marker) -> None:
    finished = threading.Event()
    results: list[int] = []

    def slow_request() -> None:
        results.append(server.post({"dataframe_split": {"columns": ["x"], "data": [[6.0]]}}).status_code)
        finished.set()

    worker = threading.Thread(target=slow_request)
    worker.start()
    try:
        assert wait_for(marker.exists, 30, every=0.02), "the slow prediction never started"
        assert httpx.get(server.url + "/ping", timeout=10).status_code == 200
        assert not finished.is_set(), "/ping only answered after the slow prediction"
    finally:
        worker.join()
    assert results == [200]


def test_request_timeout_is_504_and_the_server_recovers(models) -> None:
    with SigserveServer(models["slow"], "-t", "2") as server:
        response = server.post({"dataframe_split": {"columns": ["x"], "data": [[5.0]]}})
        assert response.status_code == 504
        assert response.json()["error_code"] == "TIMEOUT"
        quick = server.post({"dataframe_split": {"columns": ["x"], "data": [[0.0]]}})
        assert quick.status_code == 200


def test_timeout_from_mlflow_environment_variable(models) -> None:
    env = {"MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "1"}
    with SigserveServer(models["slow"], env=env) as server:
        response = server.post({"dataframe_split": {"columns": ["x"], "data": [[3.0]]}})
        assert response.status_code == 504


def test_several_workers_serve_under_gunicorn(models) -> None:
    with SigserveServer(models["sklearn_skops"], "-w", "2") as server:
        body = {"dataframe_split": {"columns": ["sepal length (cm)", "sepal width (cm)",
                                                "petal length (cm)", "petal width (cm)"],
                                    "data": [[5.1, 3.5, 1.4, 0.2]]}}
        answers = {server.post(body).text for _ in range(20)}
        assert answers == {'{"predictions":[0]}'}
        assert "gunicorn" in server.log().lower() or "Booting worker" in server.log()


def test_unknown_route_and_method(echo: SigserveServer) -> None:
    assert httpx.get(echo.url + "/nope").status_code == 404
    assert httpx.get(echo.url + "/invocations").status_code == 405


def _timing(cpu: float, wall: float | None = None, inline: bool = False, size: int = 100, contended: bool = False):
    from sigserve.server.inline import Timing

    return Timing(size, cpu, cpu if wall is None else wall, inline, contended=contended)


def test_inline_policy_needs_a_fast_streak_and_one_slow_request_resets_it() -> None:
    from sigserve.server.inline import InlinePolicy

    policy = InlinePolicy()
    fast = _timing(InlinePolicy.MAX_CPU_SECONDS / 10)
    for _ in range(InlinePolicy.WARMUP - 1):
        policy.record(fast)
    assert not policy.allowed(100)
    policy.record(fast)
    assert policy.allowed(100)
    policy.record(_timing(InlinePolicy.MAX_CPU_SECONDS * 5))
    assert not policy.allowed(100)


def test_inline_policy_only_admits_bodies_as_large_as_proven_fast() -> None:
    from sigserve.server.inline import InlinePolicy

    policy = InlinePolicy()
    for _ in range(InlinePolicy.WARMUP):
        policy.record(_timing(0.0001, size=1_000))
    assert policy.allowed(1_000) and not policy.allowed(1_001)
    policy.record(_timing(0.0001, size=50_000))
    assert policy.allowed(50_000)


def test_inline_policy_judges_cpu_time_but_bounds_wall_time() -> None:
    from sigserve.server.inline import InlinePolicy

    queued_for_the_gil = _timing(0.0001, wall=InlinePolicy.MAX_THREAD_WALL_SECONDS / 2, contended=True)
    waiting_on_io = _timing(0.0001, wall=InlinePolicy.MAX_THREAD_WALL_SECONDS * 2, contended=True)
    alone_waiting_on_io = _timing(0.0001, wall=InlinePolicy.MAX_INLINE_WALL_SECONDS * 2)
    policy = InlinePolicy()
    for _ in range(InlinePolicy.WARMUP):
        policy.record(queued_for_the_gil)
    assert policy.allowed(100)
    policy.record(waiting_on_io)
    assert not policy.allowed(100)
    for _ in range(InlinePolicy.WARMUP):
        policy.record(queued_for_the_gil)
    assert policy.allowed(100)
    policy.record(alone_waiting_on_io)
    assert not policy.allowed(100), "nothing queued it: the wall time was its own"


def test_a_moderately_slow_request_in_a_busy_thread_neither_proves_nor_resets() -> None:
    """Scoring threads inflate each other's CPU time; inline, alone, or far slower runs say slow."""
    from sigserve.server.inline import InlinePolicy

    moderate = (InlinePolicy.MAX_CPU_SECONDS + InlinePolicy.MAX_CONTENDED_CPU_SECONDS) / 2
    contended = _timing(moderate, contended=True)
    policy = InlinePolicy()
    for _ in range(InlinePolicy.WARMUP - 1):
        policy.record(_timing(0.0001))
        policy.record(contended)
    assert not policy.allowed(100)
    policy.record(_timing(0.0001))
    assert policy.allowed(100)
    policy.record(_timing(contended.cpu_seconds, inline=True))
    assert not policy.allowed(100), "inline, the same CPU time is slow"
    for _ in range(2 * InlinePolicy.WARMUP):
        policy.record(_timing(0.0001))
    policy.record(_timing(InlinePolicy.MAX_CONTENDED_CPU_SECONDS * 2, contended=True))
    assert not policy.allowed(100), "far slower in a thread is slow"
    for _ in range(4 * InlinePolicy.WARMUP):
        policy.record(_timing(0.0001))
    assert policy.allowed(100)
    policy.record(_timing(moderate))
    assert not policy.allowed(100), "alone in its thread, nothing inflated it: slow"


def test_a_fast_refusal_proves_nothing_but_a_slow_one_still_counts() -> None:
    from sigserve.server.inline import InlinePolicy, Timing

    policy = InlinePolicy()
    for _ in range(InlinePolicy.WARMUP):
        policy.record(_timing(0.0001, size=100))
    policy.record(Timing(10_000_000, 0.0001, 0.0001, False, succeeded=False))
    assert policy.allowed(100) and not policy.allowed(10_000_000), "a fast 415 on a huge body is no proof"
    policy.record(Timing(100, 1.0, 1.0, False, succeeded=False))
    assert not policy.allowed(100)


def test_a_slow_inline_request_doubles_the_next_warmup_and_a_long_streak_halves_it() -> None:
    from sigserve.server.inline import InlinePolicy

    policy = InlinePolicy()
    fast = _timing(0.0001)
    for _ in range(InlinePolicy.WARMUP):
        policy.record(fast)
    policy.record(_timing(0.0001, wall=InlinePolicy.MAX_INLINE_WALL_SECONDS * 2, inline=True))
    for _ in range(InlinePolicy.WARMUP):
        policy.record(fast)
    assert not policy.allowed(100)
    for _ in range(InlinePolicy.WARMUP):
        policy.record(fast)
    assert policy.allowed(100)
    assert policy.warmup == 2 * InlinePolicy.WARMUP
    for _ in range(6 * InlinePolicy.WARMUP):
        policy.record(fast)
    assert policy.warmup == InlinePolicy.WARMUP


def test_answers_carry_a_content_length(echo: SigserveServer) -> None:
    """Scored and refused answers are framed by a Content-Length that counts the bytes sent
    (UTF-8, not characters), read off the wire: httpx would trim or reject a wrong one itself."""
    snowman = "h\u00e9llo \u2603"
    row = [1, 2, 1.5, 2.5, snowman, True, "2020-01-01", "aGk="]
    scored = {"dataframe_split": {"columns": [name for name, _ in ALL_TYPES], "data": [row]}}
    refused = {"dataframe_split": {"columns": ["x"], "data": [[1]]}}

    answers = _exchange(echo, [scored, refused, scored])  # one keep-alive connection

    assert [status for status, _, _ in answers] == [200, 400, 200]
    for _, headers, body in answers:
        assert "transfer-encoding" not in headers
        assert int(headers["content-length"]) == len(body)
        assert json.loads(body)
    assert snowman in answers[0][2].decode() and answers[2][2] == answers[0][2]
    assert len(answers[0][2]) > len(answers[0][2].decode())


def _exchange(server: SigserveServer, bodies: list[dict]) -> list[tuple[int, dict[str, str], bytes]]:
    """POST each body in turn on one raw connection; each answer is read by its Content-Length
    alone, and after the last (`Connection: close`) nothing more may arrive."""
    answers = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        stream = sock.makefile("rb")
        for i, body in enumerate(bodies):
            content = json.dumps(body).encode()
            close = b"Connection: close\r\n" if i == len(bodies) - 1 else b""
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n%s\r\n%s" % (len(content), close, content))
            status_line = stream.readline()
            assert status_line.startswith(b"HTTP/1.1 "), f"answer {i} cut short: {status_line!r}"
            status = int(status_line.split()[1])
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            answers.append((status, headers, stream.read(int(headers["content-length"]))))
        assert stream.read() == b"", "bytes beyond the last Content-Length"
    return answers


def test_inline_scoring_is_off_when_the_timeout_is_too_short_to_protect() -> None:
    from sigserve.server.inline import InlinePolicy

    policy = InlinePolicy(timeout_seconds=InlinePolicy.MAX_CPU_SECONDS)
    for _ in range(InlinePolicy.WARMUP * 2):
        policy.record(_timing(0.0))
    assert not policy.allowed(100)
