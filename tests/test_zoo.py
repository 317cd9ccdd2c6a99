"""Every zoo model answers as MLflow answers: the same status and the same predictions, on every
payload format and on bad requests, from a real sigserve process with MLflow importable and,
for the models sigserve loads natively, from one where `import mlflow` fails."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pandas as pd
import pytest

from helpers import MlflowScorer, SigserveServer, SigserveWithoutMlflow, frame_to_csv, frame_to_parquet
from zoo import ZooModel, boosting, python_models, sklearn_models

JSON = "application/json"
NAMES = (*sklearn_models.NAMES, *getattr(boosting, "NAMES", ()), *python_models.NAMES)

Request = tuple[str, str, Any]  # label, content type, body
DOCUMENTED = " (a documented difference)"


def requests_for(model: ZooModel) -> list[Request]:
    requests: list[Request] = []
    rows = model.rows
    if len(rows.columns):
        requests += [(payload, *_payload(rows, payload)) for payload in model.payloads]
        requests += _bad_requests(rows)
    requests += [(f"request {i}", content_type, body) for i, (content_type, body) in enumerate(model.requests)]
    return requests


def _split(frame: pd.DataFrame) -> dict[str, Any]:
    return json.loads(frame.to_json(orient="split", index=False, date_format="iso"))


def _payload(rows: pd.DataFrame, payload: str) -> tuple[str, Any]:
    records = json.loads(rows.to_json(orient="records", date_format="iso"))
    if payload == "dataframe_split":
        return JSON, {"dataframe_split": _split(rows)}
    if payload == "dataframe_records":
        return JSON, {"dataframe_records": records}
    if payload == "instances":
        return JSON, {"instances": records}
    if payload == "inputs":
        return JSON, {"inputs": {column: [record[column] for record in records] for column in rows.columns}}
    if payload == "csv":
        return "text/csv", frame_to_csv(rows)
    if payload == "parquet":
        return "application/vnd.apache.parquet", frame_to_parquet(rows)
    raise ValueError(payload)


def _bad_requests(rows: pd.DataFrame) -> list[Request]:
    """Missing, extra, wrongly typed and null columns, as `dataframe_split`: the first column,
    the last, and the first string column, since each kind of column has its own rules."""
    strings = [column for column in rows.columns if rows[column].dtype.kind == "O"]
    chosen = list(dict.fromkeys([rows.columns[0], rows.columns[-1], *strings[:1]]))
    requests: list[Request] = [("extra column", JSON, {"dataframe_split": _split(rows.assign(unexpected_extra=1))})]
    for column in chosen:
        position = list(rows.columns).index(column)
        # MLflow casts "yes" and null to True/False in a boolean column; sigserve refuses "yes" and
        # keeps null as None (README: "differs on purpose"), so only the error shape is compared.
        tag = DOCUMENTED if rows[column].dtype.kind == "b" else ""
        wrong, nulls = _split(rows), _split(rows)
        wrong["data"][0][position] = "not a value of this column" if column not in strings else 12345
        for row in nulls["data"]:
            row[position] = None
        requests += [
            (f"missing {column}", JSON, {"dataframe_split": _split(rows.drop(columns=[column]))}),
            (f"wrong type in {column}{tag}", JSON, {"dataframe_split": wrong}),
            (f"null {column}{tag}", JSON, {"dataframe_split": nulls}),
        ]
    return requests


def _encoded(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def sigserve_answers(server: SigserveServer, requests: list[Request]) -> list[tuple[int, Any]]:
    answers = []
    with httpx.Client(timeout=60) as client:
        for _, content_type, body in requests:
            response = client.post(server.url + "/invocations", content=_encoded(body),
                                   headers={"Content-Type": content_type})
            answers.append((response.status_code, response.json()))
    return answers


def nan_as_null(answer: Any) -> Any:
    """MLflow writes NaN predictions as the invalid JSON token NaN; sigserve as null (README)."""
    if isinstance(answer, float) and answer != answer:
        return None
    if isinstance(answer, list):
        return [nan_as_null(item) for item in answer]
    if isinstance(answer, dict):
        return {key: nan_as_null(value) for key, value in answer.items()}
    return answer


def differences(requests: list[Request], ours: list[tuple[int, Any]], theirs: list[tuple[int, Any]]) -> list[str]:
    found = []
    for (label, _, body), (status, answer), (mlflow_status, mlflow_answer) in zip(requests, ours, theirs):
        if label.endswith(DOCUMENTED):
            if status not in (200, 400):
                found.append(f"{label}: sigserve {status} {answer}")
        elif status != mlflow_status:
            found.append(f"{label}: sigserve {status} {str(answer)[:300]} / MLflow {mlflow_status} {str(mlflow_answer)[:300]}")
        elif status == 200 and answer != nan_as_null(mlflow_answer):
            found.append(f"{label}: sigserve {str(answer)[:300]} / MLflow {str(mlflow_answer)[:300]}")
        elif status != 200 and set(answer) != {"error_code", "message"}:
            found.append(f"{label}: error body {answer}")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_answers_as_mlflow_does(name: str, zoo: dict[str, ZooModel]) -> None:
    model = zoo[name]
    requests = requests_for(model)
    servers = {"": SigserveServer(model.path).launch()}
    if model.native:
        servers["without MLflow: "] = SigserveWithoutMlflow(model.path).launch()
    try:
        reference = MlflowScorer(model.path)  # while the servers boot
        theirs = [reference.score(_encoded(body), content_type) for _, content_type, body in requests]
        found = []
        for prefix, server in servers.items():
            ours = sigserve_answers(server.wait_ready(), requests)
            found += [prefix + difference for difference in differences(requests, ours, theirs)]
    finally:
        for server in servers.values():
            server.stop()
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", ["churn_pipeline_proba", "typehint_pydantic"])
def test_zoo_model_answers_as_a_real_mlflow_models_serve_does(name: str, zoo: dict[str, ZooModel]) -> None:
    """The in-process reference above is MLflow's own `invocations`; here the whole server."""
    from test_against_mlflow_server import MlflowServer

    model = zoo[name]
    requests = requests_for(model)
    ours_server = SigserveServer(model.path).launch()
    mlflow_server = MlflowServer(model.path)
    try:
        theirs = []
        with httpx.Client(timeout=60) as client:
            for _, content_type, body in requests:
                response = client.post(mlflow_server.url + "/invocations", content=_encoded(body),
                                       headers={"Content-Type": content_type})
                theirs.append((response.status_code, response.json() if response.status_code == 200 else response.text))
        found = differences(requests, sigserve_answers(ours_server.wait_ready(), requests), theirs)
    finally:
        ours_server.stop()
        mlflow_server.stop()
    assert not found, "\n".join(found)


def test_type_hint_models_document_only_the_inputs_body(zoo: dict[str, ZooModel]) -> None:
    from sigserve.model.mlmodel import read_mlmodel
    from sigserve.server.openapi import openapi_document

    document = openapi_document(read_mlmodel(zoo["typehint_pydantic"].path))
    branches = document["components"]["schemas"]["InvocationRequest"]["oneOf"]
    assert [branch["title"] for branch in branches] == ["inputs"]
