"""Metrics in one process, and summed over real worker processes sharing a multiprocess directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import SigserveServer, metric_samples
from prometheus_client import values
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from sigserve.server import metrics as metrics_module
from sigserve.server.metrics import (
    MULTIPROC_ENV,
    Metrics,
    mark_process_dead,
    prepare_multiprocess_dir,
)

Samples = dict[tuple[str, frozenset], float]

# A worker: runs the Metrics calls given as JSON, then prints its pid.
WORKER = """
import json, os, sys
from sigserve.server.metrics import Metrics
metrics = Metrics()
for method, *args in json.loads(sys.argv[1]):
    getattr(metrics, method)(*args)
print(os.getpid())
"""

# A gunicorn-like master: loads the model, then forks workers; the second reloads version 2.
PRELOADING_MASTER = """
import json, os
from sigserve.server.metrics import Metrics
metrics = Metrics()
metrics.model_loaded("iris", "iris", "1", "champion", 0.25)
workers = []
for reload in (False, True):
    pid = os.fork()
    if pid == 0:
        metrics.request_started()
        metrics.request_finished(200, "json", 0.01, 3, "iris")
        if reload:
            metrics.model_loaded("iris", "iris", "2", "champion", 0.5)
        os._exit(0)
    workers.append(pid)
for pid in workers:
    os.waitpid(pid, 0)
print(json.dumps({"master": os.getpid(), "workers": workers}))
"""


def parse(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def labels(**pairs: str) -> frozenset:
    return frozenset(pairs.items())


def series(samples: Samples, metric: str) -> dict[frozenset, float]:
    """Every series of one metric: exact label set -> value."""
    return {labels: v for (name, labels), v in samples.items() if name == metric}


def model_info(samples: Samples) -> dict[tuple[str, str, str, str], float]:
    """sigserve_model_info as (model, name, version, alias) -> value; no other label may appear."""
    info = series(samples, "sigserve_model_info")
    assert all({k for k, _ in key} == {"model", "name", "version", "alias"} for key in info)
    return {(d["model"], d["name"], d["version"], d["alias"]): v for d, v in ((dict(k), v) for k, v in info.items())}


def model_versions(samples: Samples) -> dict[str, float]:
    """The served iris versions; fails if a series names another model."""
    info = model_info(samples)
    assert all(key[:2] == ("iris", "iris") for key in info)
    return {version: v for (_, _, version, _), v in info.items()}


@pytest.fixture(autouse=True)
def restore_value_class() -> Iterator[None]:
    """Metrics switches prometheus_client's value storage; leave other tests the one they had."""
    saved = values.ValueClass, metrics_module._value_class_dir
    yield
    values.ValueClass, metrics_module._value_class_dir = saved


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


@pytest.fixture
def shared_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    return tmp_path


def run_workers(*calls: list[list]) -> list[int]:
    """Run one real process per call list, all at once; return their pids."""
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(c)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for c in calls
    ]
    pids = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        pids.append(int(out))
    return pids


def test_every_method_in_one_process(single_process: None) -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.request_started()
    metrics.request_finished(200, "json", 0.003, 5, "iris")
    metrics.request_finished(400, "csv", 0.2, None)  # named no served model
    metrics.schema_error("missing_column")
    metrics.schema_error("missing_column")
    metrics.rejected("body_too_large")
    metrics.rejected("timeout")
    metrics.model_loaded("iris", "iris", "3", "champion", 1.5)
    metrics.reload_succeeded("iris")
    metrics.reload_failed("iris", "load_error")
    metrics.registry_error("iris")
    s = parse(metrics)

    assert series(s, "sigserve_requests_total") == {
        labels(status="200", format="json", model="iris", protocol="rest"): 1,
        labels(status="400", format="csv", model="", protocol="rest"): 1,
    }
    rest = {"protocol": "rest"}
    assert value(s, "sigserve_request_duration_seconds_bucket", format="json", model="iris", le="0.0025", **rest) == 0
    assert value(s, "sigserve_request_duration_seconds_bucket", format="json", model="iris", le="0.005", **rest) == 1
    assert value(s, "sigserve_request_duration_seconds_bucket", format="csv", model="", protocol="rest", le="30.0") == 1
    assert value(s, "sigserve_request_duration_seconds_sum", format="csv", model="", **rest) == pytest.approx(0.2)
    assert value(s, "sigserve_request_rows_bucket", le="1.0") == 0
    assert value(s, "sigserve_request_rows_bucket", le="10.0") == 1
    assert value(s, "sigserve_request_rows_bucket", le="100000.0") == 1
    assert value(s, "sigserve_request_rows_count") == 1
    assert value(s, "sigserve_in_flight_requests") == 1
    assert value(s, "sigserve_schema_errors_total", reason="missing_column") == 2
    assert value(s, "sigserve_rejected_requests_total", reason="body_too_large") == 1
    assert value(s, "sigserve_rejected_requests_total", reason="timeout") == 1
    assert model_info(s) == {("iris", "iris", "3", "champion"): 1}
    assert series(s, "sigserve_model_load_seconds") == {labels(model="iris"): 1.5}
    assert series(s, "sigserve_model_reloads_total") == {labels(model="iris"): 1}
    assert series(s, "sigserve_model_reload_failures_total") == {labels(model="iris", reason="load_error"): 1}
    assert series(s, "sigserve_registry_errors_total") == {labels(model="iris"): 1}


def test_each_instance_has_its_own_registry(single_process: None) -> None:
    first, second = Metrics(), Metrics()
    first.registry_error("iris")
    second.registry_error("wine")
    assert series(parse(first), "sigserve_registry_errors_total") == {labels(model="iris"): 1}
    assert series(parse(second), "sigserve_registry_errors_total") == {labels(model="wine"): 1}


def test_reload_in_one_process_shows_only_the_new_version(single_process: None) -> None:
    metrics = Metrics()
    metrics.model_loaded("iris", "iris", "1", None, 0.5)
    metrics.model_loaded("iris", "iris", "2", None, 0.75)
    s = parse(metrics)
    assert model_versions(s) == {"2": 1}
    assert value(s, "sigserve_model_info", model="iris", name="iris", version="2", alias="") == 1
    assert series(s, "sigserve_model_load_seconds") == {labels(model="iris"): 0.75}


def test_two_models_each_have_their_series_and_unloading_one_keeps_the_other(single_process: None) -> None:
    metrics = Metrics()
    metrics.model_loaded("iris", "iris", "3", "champion", 0.5)
    metrics.model_loaded("wine", "wine-clf", "7", None, 1.25)
    for model, status, payload_format in (("iris", 200, "json"), ("iris", 200, "json"), ("wine", 200, "json"),
                                          ("wine", 400, "csv"), ("", 404, "json")):
        metrics.request_started()
        metrics.request_finished(status, payload_format, 0.01, 1, model)
    s = parse(metrics)
    assert model_info(s) == {("iris", "iris", "3", "champion"): 1, ("wine", "wine-clf", "7", ""): 1}
    assert series(s, "sigserve_model_load_seconds") == {labels(model="iris"): 0.5, labels(model="wine"): 1.25}
    requests = {
        labels(status="200", format="json", model="iris", protocol="rest"): 2,
        labels(status="200", format="json", model="wine", protocol="rest"): 1,
        labels(status="400", format="csv", model="wine", protocol="rest"): 1,
        labels(status="404", format="json", model="", protocol="rest"): 1,
    }
    assert series(s, "sigserve_requests_total") == requests
    assert value(s, "sigserve_request_duration_seconds_count", format="json", model="iris", protocol="rest") == 2
    assert value(s, "sigserve_request_duration_seconds_count", format="json", model="wine", protocol="rest") == 1

    metrics.model_loaded("iris", "iris", "4", "champion", 0.5)  # a reload of one model leaves the other
    assert model_info(parse(metrics)) == {("iris", "iris", "4", "champion"): 1, ("wine", "wine-clf", "7", ""): 1}
    metrics.model_unloaded("wine")
    s = parse(metrics)
    assert model_info(s) == {("iris", "iris", "4", "champion"): 1}
    assert series(s, "sigserve_requests_total") == requests
    metrics.model_loaded("wine", "wine-clf", "7", None, 1.0)  # loaded again: shown again
    assert model_info(parse(metrics)) == {("iris", "iris", "4", "champion"): 1, ("wine", "wine-clf", "7", ""): 1}


def test_two_models_across_workers_and_unloading_one_in_a_worker(shared_dir: Path) -> None:
    both = [["model_loaded", "iris", "iris", "3", "champion", 0.5],
            ["model_loaded", "wine", "wine-clf", "7", None, 1.25]]
    a, b = run_workers(
        [*both, ["request_started"], ["request_finished", 200, "json", 0.01, 1, "iris"],
         ["request_started"], ["request_finished", 200, "json", 0.01, 1, "wine"], ["model_unloaded", "wine"]],
        [*both, ["request_started"], ["request_finished", 200, "csv", 0.01, 1, "wine"],
         ["request_started"], ["request_finished", 404, "json", 0.01, None]],
    )
    renderer = Metrics()
    requests = {
        labels(status="200", format="json", model="iris", protocol="rest"): 1,
        labels(status="200", format="json", model="wine", protocol="rest"): 1,
        labels(status="200", format="csv", model="wine", protocol="rest"): 1,
        labels(status="404", format="json", model="", protocol="rest"): 1,
    }
    s = parse(renderer)
    assert model_info(s) == {("iris", "iris", "3", "champion"): 1, ("wine", "wine-clf", "7", ""): 1}  # b serves wine
    assert series(s, "sigserve_requests_total") == requests
    assert value(s, "sigserve_request_duration_seconds_count", format="json", model="wine", protocol="rest") == 1

    mark_process_dead(b)
    s = parse(renderer)
    assert model_info(s) == {("iris", "iris", "3", "champion"): 1, ("wine", "wine-clf", "7", ""): 0}  # a unloaded it
    assert series(s, "sigserve_requests_total") == requests

    mark_process_dead(a)
    s = parse(renderer)
    assert model_info(s) == {}
    assert series(s, "sigserve_requests_total") == requests


def test_workers_are_summed_and_dead_workers_leave_live_gauges(shared_dir: Path) -> None:
    a, b, c = run_workers(
        [["model_loaded", "iris", "iris", "1", "champion", 0.5], ["request_started"], ["request_started"],
         ["request_started"], ["request_finished", 200, "json", 0.01, 10, "iris"],
         ["request_finished", 400, "json", 0.02, None, "iris"]],
        [["model_loaded", "iris", "iris", "1", "champion", 0.5], ["request_started"],
         ["request_finished", 200, "json", 0.01, 10, "iris"], ["model_loaded", "iris", "iris", "2", "champion", 0.7],
         ["reload_succeeded", "iris"], ["request_started"], ["request_finished", 200, "csv", 0.01, 1000, "iris"]],
        [["model_loaded", "iris", "iris", "2", "champion", 0.7], ["request_started"], ["request_started"],
         ["schema_error", "missing_column"], ["rejected", "overloaded"], ["registry_error", "iris"]],
    )
    renderer = Metrics()  # the test process is a worker too, with nothing recorded
    s = parse(renderer)
    assert series(s, "sigserve_requests_total") == {
        labels(status="200", format="json", model="iris", protocol="rest"): 2,
        labels(status="400", format="json", model="iris", protocol="rest"): 1,
        labels(status="200", format="csv", model="iris", protocol="rest"): 1,
    }
    assert value(s, "sigserve_request_duration_seconds_count", format="json", model="iris", protocol="rest") == 3
    assert value(s, "sigserve_request_rows_bucket", le="10.0") == 2
    assert value(s, "sigserve_request_rows_count") == 3
    assert value(s, "sigserve_in_flight_requests") == 1 + 0 + 2
    assert value(s, "sigserve_schema_errors_total", reason="missing_column") == 1
    assert value(s, "sigserve_rejected_requests_total", reason="overloaded") == 1
    assert series(s, "sigserve_registry_errors_total") == {labels(model="iris"): 1}
    assert series(s, "sigserve_model_reloads_total") == {labels(model="iris"): 1}
    assert value(s, "sigserve_model_load_seconds", model="iris") in (0.5, 0.7)  # whichever worker loaded last
    assert model_versions(s) == {"1": 1, "2": 1}  # a still serves version 1

    mark_process_dead(a)
    s = parse(renderer)
    assert value(s, "sigserve_in_flight_requests") == 2
    assert model_versions(s) == {"1": 0, "2": 1}  # b reloaded away from it
    assert value(s, "sigserve_requests_total", status="200", format="json", model="iris", protocol="rest") == 2
    assert value(s, "sigserve_request_rows_count") == 3

    mark_process_dead(b)
    mark_process_dead(c)
    s = parse(renderer)
    assert value(s, "sigserve_in_flight_requests") == 0
    assert model_versions(s) == {}
    assert value(s, "sigserve_requests_total", status="200", format="csv", model="iris", protocol="rest") == 1


def test_preloading_master_claims_no_model_version(shared_dir: Path) -> None:
    master = subprocess.run([sys.executable, "-c", PRELOADING_MASTER], capture_output=True, text=True, check=True)
    pids = json.loads(master.stdout)
    first, second = pids["workers"]
    renderer = Metrics()
    assert model_versions(parse(renderer)) == {"1": 1, "2": 1}
    assert series(parse(renderer), "sigserve_model_load_seconds") == {labels(model="iris"): 0.5}
    mark_process_dead(first)
    assert model_versions(parse(renderer)) == {"1": 0, "2": 1}
    mark_process_dead(second)
    assert model_versions(parse(renderer)) == {}  # the live master holds no model series
    assert series(parse(renderer), "sigserve_requests_total") == {
        labels(status="200", format="json", model="iris", protocol="rest"): 2}


def test_storage_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("one", "two"):
        directory = tmp_path / name
        directory.mkdir()
        monkeypatch.setenv(MULTIPROC_ENV, str(directory))
        metrics = Metrics()
        metrics.registry_error("iris")
        assert series(parse(metrics), "sigserve_registry_errors_total") == {labels(model="iris"): 1}
        assert any(p.name.startswith("counter_") for p in directory.iterdir())
    monkeypatch.delenv(MULTIPROC_ENV)
    metrics = Metrics()
    metrics.registry_error("iris")
    assert metrics.registry is not None
    assert series(parse(metrics), "sigserve_registry_errors_total") == {labels(model="iris"): 1}


def test_prepare_multiprocess_dir_wipes_stale_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("kept")
    assert prepare_multiprocess_dir() == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    monkeypatch.delenv(MULTIPROC_ENV)
    made = prepare_multiprocess_dir()
    assert os.environ[MULTIPROC_ENV] == made and os.path.isdir(made) and made != str(tmp_path)


def test_mark_process_dead_without_a_directory_leaves_the_live_series(single_process: None) -> None:
    """One process and no shared files: marking any pid dead, this one's too, must neither drop
    its live gauges (in flight, model info) nor send later values to some directory."""
    metrics = Metrics()
    metrics.model_loaded("iris", "iris", "1", "champion", 0.5)
    metrics.request_started()
    before = parse(metrics)
    assert value(before, "sigserve_in_flight_requests") == 1
    assert model_info(before) == {("iris", "iris", "1", "champion"): 1}

    mark_process_dead(os.getpid())
    mark_process_dead(os.getpid() + 1)

    assert parse(metrics) == before
    assert MULTIPROC_ENV not in os.environ
    metrics.request_finished(200, "json", 0.01, 2, "iris")
    after = parse(metrics)
    assert value(after, "sigserve_in_flight_requests") == 0
    assert series(after, "sigserve_requests_total") == {
        labels(status="200", format="json", model="iris", protocol="rest"): 1}


def test_openmetrics_accept_gets_the_openmetrics_format(single_process: None) -> None:
    metrics = Metrics()
    metrics.request_started()
    metrics.request_finished(200, "json", 0.01, 3, "iris")
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {family.name: family for family in openmetrics_families(body.decode())}
    assert body.endswith(b"# EOF\n")
    requests = families["sigserve_requests"]
    assert requests.type == "counter"
    assert [s.value for s in requests.samples if s.name == "sigserve_requests_total"] == [1.0]
    for accept in (None, "", "text/plain", "*/*", "application/json"):
        body, content_type = metrics.render(accept)
        assert content_type.startswith("text/plain; version=0.0.4"), accept
        assert b"# EOF" not in body


# --------------------------------------------------------------------------- real servers


@pytest.fixture(scope="module")
def failing_and_working(models: dict[str, Path]) -> Iterator[SigserveServer]:
    """One model whose predict always raises, one that answers, with the same signature."""
    with SigserveServer(models["fails"], "-m", str(models["series_out"])) as server:
        yield server


ONE_COLUMN_BODIES = [
    ("application/json", {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}),
    ("application/json", {"dataframe_records": [{"x": 1.0}, {"x": 2.0}]}),
    ("application/json", {"instances": [{"x": 1.0}, {"x": 2.0}]}),
    ("application/json", {"inputs": {"x": [1.0, 2.0]}}),
    ("application/json; format=pandas-records", [{"x": 1.0}, {"x": 2.0}]),
    ("application/json; format=pandas-split", {"columns": ["x"], "data": [[1.0], [2.0]]}),
    ("text/csv", "x\n1.0\n2.0\n"),
]
V2_BODY = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}


def _format_counts(url: str, model: str) -> dict[tuple[str, str], float]:
    """(status, format) -> sigserve_requests_total of one served model."""
    counts: dict[tuple[str, str], float] = {}
    for (name, sample_labels), count in metric_samples(url).items():
        found = dict(sample_labels)
        if name == "sigserve_requests_total" and found.get("model") == model:
            counts[(found["status"], found["format"])] = counts.get((found["status"], found["format"]), 0) + count
    return counts


@pytest.mark.parametrize(("content_type", "body"), ONE_COLUMN_BODIES + [("v2", V2_BODY)])
def test_a_request_the_model_raised_on_is_counted_with_its_decoded_format(failing_and_working, content_type, body):
    """The same body to the model that answers and to the one that raises: the same format label."""
    server = failing_and_working
    labels_seen = {}
    for model, status in (("series_out", "200"), ("fails", "400")):
        before = _format_counts(server.url, model)
        if content_type == "v2":
            response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=30)
        else:
            content = body if isinstance(body, str) else json.dumps(body)
            response = httpx.post(f"{server.url}/invocations/{model}", content=content,
                                  headers={"Content-Type": content_type}, timeout=30)
        assert response.status_code == int(status), response.text
        after = _format_counts(server.url, model)
        grown = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
        assert len(grown) == 1 and next(iter(grown.values())) == 1, grown
        (seen_status, seen_format), = grown
        assert seen_status == status
        labels_seen[model] = seen_format
    assert labels_seen["fails"] == labels_seen["series_out"], labels_seen
    assert labels_seen["fails"] not in ("json", "other"), labels_seen


def test_openmetrics_accept_on_a_real_server(failing_and_working) -> None:
    url = failing_and_working.url + "/metrics"
    openmetrics = httpx.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=10)
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert openmetrics.text.endswith("# EOF\n")
    assert any(family.name == "sigserve_requests" for family in openmetrics_families(openmetrics.text))
    plain = httpx.get(url, timeout=10)
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in plain.text
