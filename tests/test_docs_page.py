"""The /docs page in a real headless Chromium (Debian's, driven by its chromedriver through
Selenium) with the network unavailable: Swagger UI renders every operation from sigserve's own
assets, "Try it out" scores the model's own input example, and no request leaves 127.0.0.1.

Chromium comes from tests/tools/install_chromium.sh, which .ci/run calls; without it this skips."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import SigserveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TIMEOUT = 60

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed (tests/tools/install_chromium.sh installs them)",
)


@pytest.fixture(scope="module")
def server(models: dict[str, Path]) -> Iterator[SigserveServer]:
    with SigserveServer(models["sklearn_skops"]) as running:
        yield running


@pytest.fixture(scope="module")
def browser(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch_module.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver
    profile = tempfile.mkdtemp(prefix="sigserve-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", f"--user-data-dir={profile}",
        # No network but the loopback: no name resolves, every connection goes to a dead proxy.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def page(browser: Any, server: SigserveServer) -> dict[str, Any]:
    """The page loaded, "Try it out" run on POST /invocations; what the browser requested and logged."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, TIMEOUT)
    browser.get(server.url + "/docs")
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    operations = [element.get_attribute("id") for element in browser.find_elements(By.CSS_SELECTOR, ".opblock")]
    title = browser.find_element(By.CSS_SELECTOR, ".info .title").text
    warnings = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".info .error-wrapper, .errors")]

    block = browser.find_element(By.ID, "operations-scoring-invocations")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda _: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    body = wait.until(lambda _: block.find_element(By.CSS_SELECTOR, "textarea.body-param__text"))
    prefilled = body.get_attribute("value")
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait.until(lambda _: block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")).text
    answer = block.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text

    requested = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    console = [(entry["level"], entry["message"]) for entry in browser.get_log("browser")]
    return {"operations": operations, "title": title, "warnings": warnings, "prefilled": prefilled, "status": status,
            "answer": answer, "requested": requested, "console": console}


def test_swagger_ui_renders_every_operation_without_a_warning(page, server):
    assert page["title"].startswith("sklearn_skops")
    assert page["warnings"] == []  # e.g. "OpenAPI.jsonSchemaDialect field contains a value different from…"
    operations = set(page["operations"])
    for operation in ("operations-scoring-invocations", "operations-health-ping", "operations-model-metadata",
                      "operations-v2-v2ModelInfer", "operations-v2-v2ModelMetadata", "operations-v2-v2ServerMetadata",
                      "operations-v2-v2RepositoryIndex"):
        assert operation in operations, sorted(operations)


def test_try_it_out_scores_the_input_example(page, models):
    example = json.loads((models["sklearn_skops"] / "serving_input_example.json").read_text())
    assert json.loads(page["prefilled"]) == example
    assert page["status"].strip().startswith("200"), page["status"]
    answer = json.loads(page["answer"])
    assert len(answer["predictions"]) == len(example["dataframe_split"]["data"])
    assert all(label in (0, 1, 2) for label in answer["predictions"])


def test_no_request_leaves_the_machine(page, server):
    """Every network request the browser made (chrome:// and data: URLs are the browser's own)."""
    network = [url for url in page["requested"] if urlsplit(url).scheme in ("http", "https", "ws", "wss", "ftp")]
    assert {urlsplit(url).netloc for url in network} == {f"127.0.0.1:{server.port}"}, network
    paths = {urlsplit(url).path for url in page["requested"]}
    assert {"/docs", "/openapi.json", "/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css",
            "/invocations"} <= paths


def test_the_browser_logs_no_error_or_warning(page):
    assert [entry for entry in page["console"] if entry[0] in ("SEVERE", "WARNING")] == []
