"""Champion and challenger: shadow scoring, canary shares, `X-Model-Alias`, and both following
their aliases as they move — on real `sigserve serve` processes and a real MLflow SQLite registry.

The versions are PythonModels with known, different predictions: version 1 returns x; versions
2 and 3 add 0.5 and 2.0 to each x > 0 (so the rows x <= 0 agree); version 2 raises on x = 13 and
version 4, like 2, first sleeps. Per request of ROWS, champion and version 2 then agree on 2 of 4
rows and differ by 0.5 on each of the other 2.
"""

from __future__ import annotations

import importlib
import math
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from helpers import (
    REQUIREMENTS,
    ConfigServer,
    SigserveServer,
    metric_samples,
    mlflow_sqlite_tracking,
    run_cli,
    total,
    wait_for,
)

from sigserve.manager.traffic import TrafficPolicy
from sigserve.server.shadow import Comparison, compare

NAME = "shift"
MOVER = "mover"
SLOW_SECONDS = 3.0
X = [-1.0, 0.0, 1.0, 2.5]
ROWS = {"dataframe_split": {"columns": ["x"], "data": [[x] for x in X]}}
CHAMPION = [-1.0, 0.0, 1.0, 2.5]  # version 1
CHALLENGER = [-1.0, 0.0, 1.5, 3.0]  # version 2
MOVED = [-1.0, 0.0, 3.0, 4.5]  # version 3
ANSWERS = {f"{NAME}/1": CHAMPION, f"{NAME}/2": CHALLENGER}
SHARE = 0.3

MODEL_CODE = '''
import time

import numpy as np

import mlflow.pyfunc


class Shift(mlflow.pyfunc.PythonModel):
    """x, plus `offset` where x > 0; refuses x = `fails_on`; sleeps `sleep` seconds first."""

    def __init__(self, offset=0.0, fails_on=None, sleep=0.0):
        self.offset, self.fails_on, self.sleep = offset, fails_on, sleep

    def predict(self, context, model_input, params=None):
        x = model_input["x"].to_numpy(dtype=np.float64)
        if self.fails_on is not None and (x == self.fails_on).any():
            raise ValueError("this version refuses %s" % self.fails_on)
        time.sleep(self.sleep)
        return np.where(x > 0, x + self.offset, x)
'''


# --- a registry of known versions, and the servers --------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`shift` versions 1-4 (@champion 1, @challenger 2); `mover` versions 1-3 (the same models
    as shift 1-3, @champion 1, @challenger 2), whose alias a test moves."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    root = tmp_path_factory.mktemp("traffic")
    code = root / "code" / "sigtest_traffic_models.py"
    code.parent.mkdir()
    code.write_text(MODEL_CODE)
    sys.path.insert(0, str(code.parent))
    try:
        shift = importlib.import_module("sigtest_traffic_models").Shift
    finally:
        sys.path.remove(str(code.parent))
    signature = ModelSignature(inputs=Schema([ColSpec("double", "x")]))
    versions = [shift(0.0), shift(0.5, fails_on=13.0), shift(2.0), shift(0.5, sleep=SLOW_SECONDS)]
    with mlflow_sqlite_tracking(root) as (uri, experiment):
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        with mlflow.start_run(experiment_id=experiment):
            for number, model in enumerate(versions, 1):
                logged = mlflow.pyfunc.log_model(name=f"v{number}", python_model=model, signature=signature,
                                                 code_paths=[str(code)], registered_model_name=NAME,
                                                 pip_requirements=REQUIREMENTS)
                if number <= 3:
                    mlflow.register_model(logged.model_uri, MOVER)
        for name in (NAME, MOVER):
            client.set_registered_model_alias(name, "champion", "1")
            client.set_registered_model_alias(name, "challenger", "2")
        yield {"uri": uri, "client": client, "root": root}


@pytest.fixture(scope="module")
def servers(registry) -> Iterator[dict[str, SigserveServer]]:
    """Every server of this module, booting side by side:
    - shadow: --traffic shift=shadow (flags);
    - slow: a challenger that sleeps, with one scoring slot;
    - canary: a config file, 30% to the challenger, sticky per X-User;
    - moving: a config file serving `mover` twice, shadowed and as a canary, polling every second."""
    root: Path = registry["root"]
    flags = ("--registry-uri", registry["uri"])
    canary_config = root / "canary.yaml"
    canary_config.write_text(
        f"models:\n  - uri: models:/{NAME}@champion\n  - uri: models:/{NAME}@challenger\n"
        f"traffic:\n  {NAME}:\n    policy: canary\n    share: {SHARE}\n    sticky_header: X-User\n"
    )
    moving_config = root / "moving.yaml"
    moving_config.write_text(
        "models:\n"
        + "".join(f"  - {{uri: 'models:/{MOVER}@{alias}', name: {name}}}\n"
                  for name in ("shadowed", "canaried") for alias in ("champion", "challenger"))
        + "traffic:\n  shadowed: shadow\n  canaried: canary:0.5\n"
    )
    started = {
        "shadow": SigserveServer(f"models:/{NAME}@champion", "-m", f"models:/{NAME}@challenger",
                                 "--traffic", f"{NAME}=shadow", "--reload-interval", "0", *flags),
        "slow": SigserveServer(f"models:/{NAME}@champion", "-m", f"models:/{NAME}/4", "--traffic", f"{NAME}=shadow",
                               "--max-concurrency", "1", "--reload-interval", "0", *flags),
        "canary": ConfigServer(str(canary_config), "--reload-interval", "0", *flags),
        "moving": ConfigServer(str(moving_config), "--reload-interval", "1", *flags),
    }
    try:
        for server in started.values():
            server.launch()
        for server in started.values():
            server.wait_ready(120)
        yield started
    finally:
        for server in started.values():
            server.stop()


def score(client: httpx.Client, url: str, path: str = "/invocations", body: Any = ROWS,
          **headers: str) -> httpx.Response:
    return client.post(url + path, json=body, headers={k.replace("_", "-"): v for k, v in headers.items()})


def shadow_totals(url: str, model: str) -> dict[str, float]:
    samples = metric_samples(url)
    counts = {outcome: total(samples, "sigserve_shadow_requests_total", model=model, outcome=outcome)
              for outcome in ("compared", "dropped", "failed")}
    counts["identical"] = total(samples, "sigserve_shadow_rows_total", model=model, agreement="identical")
    counts["different"] = total(samples, "sigserve_shadow_rows_total", model=model, agreement="different")
    counts["abs_difference"] = total(samples, "sigserve_shadow_abs_difference_total", model=model)
    counts["values"] = total(samples, "sigserve_shadow_compared_values_total", model=model)
    return counts


def version_count(url: str, model: str, version: str) -> float:
    return total(metric_samples(url), "sigserve_version_duration_seconds_count", model=model, version=version)


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in after}


# --- shadow ------------------------------------------------------------------------------------


def test_shadow_answers_with_the_champion_and_records_agreement(servers) -> None:
    url = servers["shadow"].url
    before, challenger_before = shadow_totals(url, NAME), version_count(url, f"{NAME}@challenger", "2")
    requests = 25
    with httpx.Client(timeout=30) as client:
        alone = score(client, url, X_Model_Alias="champion")
        assert alone.status_code == 200 and alone.json() == {"predictions": CHAMPION}
        for _ in range(requests):
            answer = score(client, url)
            assert answer.status_code == 200, answer.text
            assert answer.content == alone.content
            assert (answer.headers["x-model-version"], answer.headers["x-model-alias"]) == (f"{NAME}/1", "champion")

    def compared() -> dict[str, float]:
        return delta(shadow_totals(url, NAME), before)

    assert wait_for(lambda: compared()["compared"] == requests, 30), compared()
    counts = compared()
    assert (counts["dropped"], counts["failed"]) == (0, 0)
    assert (counts["identical"], counts["different"]) == (2 * requests, 2 * requests)
    assert counts["values"] == 4 * requests
    assert counts["abs_difference"] == pytest.approx(1.0 * requests)
    assert counts["abs_difference"] / counts["values"] == pytest.approx(0.25)  # the mean absolute difference
    assert version_count(url, f"{NAME}@challenger", "2") - challenger_before == requests  # its latency, by version


def test_shadow_on_v2_infer_is_compared_too(servers) -> None:
    url = servers["shadow"].url
    before = shadow_totals(url, NAME)
    body = {"inputs": [{"name": "x", "shape": [4], "datatype": "FP64", "data": X}]}
    with httpx.Client(timeout=30) as client:
        answer = score(client, url, f"/v2/models/{NAME}/infer", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == CHAMPION and answer.json()["model_version"] == "1"
    assert wait_for(lambda: delta(shadow_totals(url, NAME), before)["compared"] == 1, 30)
    counts = delta(shadow_totals(url, NAME), before)
    assert (counts["identical"], counts["different"], counts["abs_difference"]) == (2, 2, pytest.approx(1.0))


def test_shadow_on_v2_binary_tensor_data_is_compared_too(servers) -> None:
    """The challenger decodes the same binary body (its JSON header length goes with it)."""
    url = servers["shadow"].url
    before = shadow_totals(url, NAME)
    header = b'{"inputs": [{"name": "x", "shape": [4], "datatype": "FP64", "parameters": {"binary_data_size": 32}}]}'
    answer = httpx.post(f"{url}/v2/models/{NAME}/infer", content=header + np.array(X, "<f8").tobytes(),
                        headers={"Inference-Header-Content-Length": str(len(header))}, timeout=30)
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == CHAMPION, answer.text
    assert wait_for(lambda: delta(shadow_totals(url, NAME), before)["compared"] == 1, 30)
    assert delta(shadow_totals(url, NAME), before)["failed"] == 0


def test_a_failing_challenger_is_counted_and_the_champion_still_answers(servers) -> None:
    server = servers["shadow"]
    before = shadow_totals(server.url, NAME)
    with httpx.Client(timeout=30) as client:
        answer = score(client, server.url, body={"dataframe_split": {"columns": ["x"], "data": [[13.0]]}})
        assert answer.status_code == 200 and answer.json() == {"predictions": [13.0]}
        assert answer.headers["x-model-version"] == f"{NAME}/1"
        assert wait_for(lambda: delta(shadow_totals(server.url, NAME), before)["failed"] == 1, 30)
        assert delta(shadow_totals(server.url, NAME), before)["compared"] == 0
        assert "shadow version shift/2 of shift failed" in server.log()
        picked = score(client, server.url, body={"dataframe_split": {"columns": ["x"], "data": [[13.0]]}},
                       X_Model_Alias="challenger")
        assert picked.status_code == 400 and "this version refuses 13" in picked.json()["message"], picked.text


def test_a_slow_challenger_never_delays_or_fails_the_champion_and_copies_are_dropped(servers) -> None:
    """One scoring slot: while the one shadow copy sleeps, every request is still answered at
    once, by the champion, and the copies that found no room are dropped."""
    url = servers["slow"].url
    before = shadow_totals(url, NAME)
    requests = 10
    started = time.monotonic()
    with httpx.Client(timeout=30) as client:
        answers = [score(client, url) for _ in range(requests)]
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * requests, [a.text for a in answers if a.status_code != 200]
    assert all(a.json() == {"predictions": CHAMPION} and a.headers["x-model-version"] == f"{NAME}/1" for a in answers)
    counts = delta(shadow_totals(url, NAME), before)
    assert elapsed < SLOW_SECONDS, f"{requests} answers took {elapsed:.1f}s: the champion waited for its shadow"
    assert counts["compared"] == 0, "every answer came back while the shadow copy was still sleeping"
    assert counts["dropped"] == requests - 1
    assert wait_for(lambda: delta(shadow_totals(url, NAME), before)["compared"] == 1, 30)
    counts = delta(shadow_totals(url, NAME), before)
    assert (counts["dropped"], counts["failed"]) == (requests - 1, 0)
    samples = metric_samples(url)
    seconds = total(samples, "sigserve_version_duration_seconds_sum", model=f"{NAME}@4", version="4")
    assert seconds >= SLOW_SECONDS, "the challenger's latency is recorded for its version"


# --- canary -----------------------------------------------------------------------------------


def within_binomial(hits: int, draws: int, share: float, sds: float = 4.0) -> bool:
    return abs(hits - draws * share) <= sds * math.sqrt(draws * share * (1 - share))


def test_canary_sends_its_share_to_the_challenger(servers) -> None:
    """400 draws at 0.3: 120 expected, sd 9.2; ±4 sd fails by chance once in ~16,000 runs."""
    url = servers["canary"].url
    samples = metric_samples(url)
    requests_before = total(samples, "sigserve_requests_total", model=f"{NAME}@challenger", status="200")
    draws = 400
    with httpx.Client(timeout=30) as client:
        answers = [score(client, url) for _ in range(draws)]
    assert {a.status_code for a in answers} == {200}
    versions = [a.headers["x-model-version"] for a in answers]
    assert set(versions) <= set(ANSWERS)
    assert all(a.json() == {"predictions": ANSWERS[v]} for a, v in zip(answers, versions)), \
        "the header names the version that answered"
    assert all(a.headers["x-model-alias"] == ("challenger" if v == f"{NAME}/2" else "champion")
               for a, v in zip(answers, versions))
    to_challenger = versions.count(f"{NAME}/2")
    assert within_binomial(to_challenger, draws, SHARE), f"{to_challenger} of {draws} went to the challenger"
    requests_after = total(metric_samples(url), "sigserve_requests_total", model=f"{NAME}@challenger", status="200")
    assert requests_after - requests_before == to_challenger


def test_canary_is_sticky_per_header_value(servers) -> None:
    url = servers["canary"].url
    users = [f"user-{i}" for i in range(200)]
    chosen: dict[str, set[str]] = {user: set() for user in users}
    with httpx.Client(timeout=30) as client:
        for _ in range(3):
            for user in users:
                answer = score(client, url, X_User=user)
                assert answer.status_code == 200
                chosen[user].add(answer.headers["x-model-version"])
    assert all(len(versions) == 1 for versions in chosen.values()), "a user always gets the same version"
    on_challenger = sum(versions == {f"{NAME}/2"} for versions in chosen.values())
    assert within_binomial(on_challenger, len(users), SHARE), f"{on_challenger} of {len(users)} users on the challenger"


def test_an_alias_asked_for_wins_over_the_canary(servers) -> None:
    url = servers["canary"].url
    with httpx.Client(timeout=30) as client:
        sticky_challenger = next(f"user-{i}" for i in range(200)
                                 if score(client, url, X_User=f"user-{i}").headers["x-model-version"] == f"{NAME}/2")
        for alias, version in (("champion", "1"), ("challenger", "2")):
            answers = [score(client, url, X_Model_Alias=alias) for _ in range(30)]
            assert {a.headers["x-model-version"] for a in answers} == {f"{NAME}/{version}"}
        assert score(client, url, X_User=sticky_challenger, X_Model_Alias="champion").headers[
            "x-model-version"] == f"{NAME}/1"


# --- X-Model-Alias ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/invocations", f"/invocations/{NAME}"])
def test_x_model_alias_picks_a_version(servers, path: str) -> None:
    url = servers["shadow"].url
    with httpx.Client(timeout=30) as client:
        for alias, version, predictions in (("challenger", "2", CHALLENGER), ("champion", "1", CHAMPION),
                                            ("2", "2", CHALLENGER), ("", "1", CHAMPION)):
            answer = score(client, url, path, X_Model_Alias=alias)
            assert answer.status_code == 200 and answer.json() == {"predictions": predictions}, answer.text
            assert answer.headers["x-model-version"] == f"{NAME}/{version}"
            assert answer.headers["x-model-alias"] == ("challenger" if version == "2" else "champion")
        unknown = score(client, url, path, X_Model_Alias="nope")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/json"
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "'nope'" in unknown.json()["message"] and "challenger" in unknown.json()["message"]


def test_x_model_alias_on_v2_infer(servers) -> None:
    url = servers["shadow"].url
    body = {"inputs": [{"name": "x", "shape": [4], "datatype": "FP64", "data": X}]}
    with httpx.Client(timeout=30) as client:
        answer = score(client, url, f"/v2/models/{NAME}/infer", body, X_Model_Alias="challenger")
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == CHALLENGER and answer.json()["model_version"] == "2"
        assert answer.headers["x-model-version"] == f"{NAME}/2"
        unknown = score(client, url, f"/v2/models/{NAME}/infer", body, X_Model_Alias="nope")
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"} and "'nope'" in unknown.json()["error"]


# --- configuration ----------------------------------------------------------------------------


def test_traffic_needs_a_second_version_and_a_served_name(registry, tmp_path) -> None:
    flags = ("--registry-uri", registry["uri"], "-p", "1")  # each exits before it would listen
    one = run_cli("serve", "-m", f"models:/{NAME}@champion", "--traffic", f"{NAME}=canary:0.3", *flags)
    assert one.returncode == 2
    assert f"traffic policy canary for '{NAME}' needs a second version" in one.stderr.decode()
    assert "cannot serve" not in one.stderr.decode(), "refused before loading"
    other = run_cli("serve", "-m", f"models:/{NAME}@champion", "-m", f"models:/{NAME}@challenger",
                    "--traffic", "churn=shadow", *flags)
    assert other.returncode == 2 and "'churn', which is not a served model" in other.stderr.decode()
    bad_share = run_cli("serve", "-m", f"models:/{NAME}@champion", "--traffic", f"{NAME}=canary:lots", *flags)
    assert bad_share.returncode == 2 and "the canary share must be a number" in bad_share.stderr.decode()
    config = tmp_path / "models.yaml"
    config.write_text(f"models: ['models:/{NAME}@champion', 'models:/{NAME}@challenger']\n"
                      f"traffic:\n  {NAME}: {{policy: canary, share: 0.2, sticky_header: [x]}}\n")
    bad_header = run_cli("serve", "--config", str(config), *flags)
    assert bad_header.returncode == 2, bad_header.stderr.decode()
    assert "is not an HTTP header name" in bad_header.stderr.decode()
    assert "Traceback" not in bad_header.stderr.decode()


def test_traffic_for_a_model_named_only_once_loaded_needs_a_second_version(registry, tmp_path) -> None:
    """A local directory is named after it: the refusal comes after loading, still exit 2."""
    source = registry["client"].get_model_version_download_uri(NAME, "1")
    solo = shutil.copytree(Path(source.removeprefix("file://")), tmp_path / "solo")
    refused = run_cli("serve", "-m", str(solo), "--traffic", "solo=shadow", "-p", "1")
    assert refused.returncode == 2, refused.stderr.decode()
    assert "traffic policy shadow for 'solo' needs a second version" in refused.stderr.decode()


# --- following aliases ------------------------------------------------------------------------


def test_shadow_and_canary_follow_the_challenger_alias_as_it_moves(registry, servers) -> None:
    url = servers["moving"].url
    with httpx.Client(timeout=30) as client:
        for name in ("shadowed", "canaried"):
            assert score(client, url, f"/invocations/{name}", X_Model_Alias="challenger").headers[
                "x-model-version"] == f"{MOVER}/2"
        registry["client"].set_registered_model_alias(MOVER, "challenger", "3")
        try:
            for name in ("shadowed", "canaried"):
                assert wait_for(lambda name=name: score(client, url, f"/invocations/{name}", X_Model_Alias="challenger")
                                .headers["x-model-version"] == f"{MOVER}/3", 60), servers["moving"].log()[-3000:]
            before, challenger_before = shadow_totals(url, "shadowed"), version_count(url, "shadowed@challenger", "3")
            requests = 10
            for _ in range(requests):
                answer = score(client, url, "/invocations/shadowed")
                assert answer.json() == {"predictions": CHAMPION} and answer.headers["x-model-version"] == f"{MOVER}/1"
            assert wait_for(lambda: delta(shadow_totals(url, "shadowed"), before)["compared"] == requests, 30)
            counts = delta(shadow_totals(url, "shadowed"), before)
            assert counts["abs_difference"] == pytest.approx(4.0 * requests), "compared with version 3 (+2.0)"
            assert version_count(url, "shadowed@challenger", "3") - challenger_before == requests
            canary = [score(client, url, "/invocations/canaried") for _ in range(100)]
            answered = {a.headers["x-model-version"] for a in canary}
            assert answered == {f"{MOVER}/1", f"{MOVER}/3"}, answered
            assert all(a.json()["predictions"] == (MOVED if a.headers["x-model-version"] == f"{MOVER}/3" else CHAMPION)
                       for a in canary)
        finally:
            registry["client"].set_registered_model_alias(MOVER, "challenger", "2")
    samples = metric_samples(url)
    assert total(samples, "sigserve_model_info", model="shadowed@challenger", version="3", alias="challenger") == 1


# --- compare() and TrafficPolicy ---------------------------------------------------------------


@pytest.mark.parametrize(
    "champion, challenger, expected",
    [
        (np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 3.0]), Comparison(3, 2, 0.5, 3)),
        (np.array([1, 2]), np.array([1.0, 2.5]), Comparison(2, 1, 0.5, 2)),
        (np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 5]]), Comparison(2, 1, 1.0, 4)),
        (pd.Series([1.0, 2.0]), np.array([1.0, 2.0]), Comparison(2, 2, 0.0, 2)),
        (pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]}), pd.DataFrame({"b": [0.5, 0.75], "a": [1, 2]}),
         Comparison(2, 1, 0.5, 4)),
        (pd.DataFrame({"label": ["a", "b"], "score": [0.9, 0.2]}),
         pd.DataFrame({"label": ["a", "c"], "score": [0.9, 0.2]}), Comparison(2, 1, 0.0, 2)),
        ({"label": np.array(["a", "b"]), "score": np.array([0.9, 0.2])},
         {"score": np.array([0.9, 0.4]), "label": np.array(["a", "b"])}, Comparison(2, 1, 0.2, 2)),
        ({"a": np.array([1.0, 2.0])}, {"b": np.array([1.0, 2.0])}, Comparison(2, 0)),
        (["yes", "no", "yes"], ["yes", "yes", "yes"], Comparison(3, 2)),
        ("a sentence", "a sentence", Comparison(1, 1)),
        ([{"text": "a"}, {"text": "b"}], [{"text": "a"}, {"text": "c"}], Comparison(2, 1)),
        ([[1, 2], [3]], [[1, 2], [4]], Comparison(2, 1)),
        (np.array([1.0, np.nan, np.nan]), np.array([1.0, np.nan, 2.0]), Comparison(3, 2, 0.0, 1)),
        (np.zeros(3), np.zeros(4), Comparison(3, 0)),
        (np.zeros((3, 1)), np.zeros(3), Comparison(3, 0)),
        (np.array([1.0, 2.0]), np.array(["1.0", "2.0"]), Comparison(2, 0)),
        (np.zeros(0), np.zeros(0), Comparison(0, 0, 0.0, 0)),
        ({"input": {"kind": "frame"}, "params": None}, {"input": {"kind": "frame"}, "params": None}, Comparison(1, 1)),
        ({"input": {"kind": "frame"}, "params": None}, {"input": {"kind": "array"}, "params": None}, Comparison(1, 0)),
    ],
    ids=["floats", "ints-and-floats", "2d", "series-and-array", "dataframe-by-column", "dataframe-strings",
         "dict-of-outputs", "other-output-names", "strings", "one-string", "list-of-dicts", "ragged",
         "nan", "shape-mismatch", "column-vs-vector", "numbers-vs-strings", "no-rows", "nested-dict-same",
         "nested-dict-different"],
)
def test_compare(champion: Any, challenger: Any, expected: Comparison) -> None:
    result = compare(champion, challenger)
    assert (result.rows, result.identical_rows, result.numeric_values) == (
        expected.rows, expected.identical_rows, expected.numeric_values)
    assert result.abs_difference_sum == pytest.approx(expected.abs_difference_sum)


def test_compare_leaves_infinite_differences_out_of_the_sum() -> None:
    result = compare(np.array([np.inf, 1.0, np.inf]), np.array([np.inf, 2.0, 0.0]))
    assert (result.rows, result.identical_rows) == (3, 1)
    assert (result.abs_difference_sum, result.numeric_values) == (1.0, 1)


def test_compare_never_raises_on_predictions_numpy_cannot_compare() -> None:
    arrays = [np.array([1, 2]), np.array([3])]
    result = compare(arrays, [np.array([1, 2]), np.array([3, 4])])
    assert result.identical_rows == 0


@pytest.mark.parametrize(
    "text, expected",
    [("shadow", TrafficPolicy("shadow")), ("Shadow", TrafficPolicy("shadow")),
     ("champion", TrafficPolicy()), ("canary:0.1", TrafficPolicy("canary", 0.1)),
     ("canary:1", TrafficPolicy("canary", 1.0)),
     ("canary:0.25:X-User", TrafficPolicy("canary", 0.25, "x-user")),
     ("canary:0.25:", TrafficPolicy("canary", 0.25))],
)
def test_traffic_policy_parse(text: str, expected: TrafficPolicy) -> None:
    assert TrafficPolicy.parse(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [("shadow:0.5", "only canary takes a share"), ("canary", "must be a number"),
     ("canary:lots", "must be a number"), ("canary:0", "share above 0"), ("canary:1.5", "between 0 and 1"),
     ("canary:-0.1", "between 0 and 1"), ("canary:nan", "between 0 and 1"),
     ("canary:0.1:x user", "not an HTTP header name"), ("mirror", "not one of champion, shadow, canary")],
)
def test_traffic_policy_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrafficPolicy.parse(text)


@pytest.mark.parametrize(
    "value, message",
    [({"policy": "shadow", "share": 0.5}, "only a canary"),
     ({"policy": "shadow", "sticky_header": "x"}, "only a canary"),
     ({"policy": "canary", "share": "10%"}, "must be a number"),
     ({"policy": "canary", "share": True}, "must be a number"),
     ({"policy": "canary", "share": 0.1, "sticky_header": 5}, "not an HTTP header name"),
     ({"policy": "canary", "share": 0.1, "weight": 2}, "unknown traffic policy keys"),
     (["shadow"], "string or a mapping")],
)
def test_traffic_policy_from_a_config_mapping_refuses(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrafficPolicy.from_mapping(value)


def test_canary_draws() -> None:
    """A sticky value always draws the same; over many values and random draws, about the share."""
    policy = TrafficPolicy("canary", SHARE, "x-user")
    values = [f"user-{i}".encode() for i in range(4000)]
    assert [policy.goes_to_challenger(v) for v in values] == [policy.goes_to_challenger(v) for v in values]
    assert within_binomial(sum(policy.goes_to_challenger(v) for v in values), len(values), SHARE)
    assert within_binomial(sum(policy.goes_to_challenger(None) for _ in range(4000)), 4000, SHARE)
    wider = TrafficPolicy("canary", 0.6, "x-user")
    assert all(wider.goes_to_challenger(v) for v in values if policy.goes_to_challenger(v)), \
        "raising the share keeps every user already on the challenger there"
    assert not TrafficPolicy("shadow").goes_to_challenger(b"user-1")
