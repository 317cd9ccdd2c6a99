"""The model zoo: the models MLflow users log, built once per test session by the real MLflow.

Each builder module returns `ZooModel`s: a saved model directory plus rows it should score, so
one generic test (`test_zoo.py`) can compare sigserve with MLflow on every payload format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

PAYLOADS = ("dataframe_split", "dataframe_records", "instances", "inputs", "csv", "parquet")


Request = tuple[str, Any]  # (content type, JSON-able body or raw bytes)


@dataclass(frozen=True)
class ZooModel:
    path: Path
    rows: pd.DataFrame  # valid input, columns named and typed as the signature wants; may be empty
    native: bool  # sigserve loads it without MLflow
    payloads: tuple[str, ...] = PAYLOADS  # formats to send `rows` in
    notes: dict[str, str] = field(default_factory=dict)
    requests: tuple[Request, ...] = ()  # more requests, good and bad, beyond those built from `rows`


def build_zoo(root: Path) -> dict[str, ZooModel]:
    from zoo import boosting, python_models, sklearn_models

    zoo: dict[str, ZooModel] = {}
    for module in (sklearn_models, boosting, python_models):
        built = module.build(root)
        assert not set(built) & set(zoo), f"duplicate zoo names from {module.__name__}"
        zoo.update(built)
    return zoo
