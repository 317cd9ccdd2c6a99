"""`instances` (TF Serving row format): a list of rows, or a list of `{name: value}` dicts."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import ModelData, Nested
from sigserve.codecs.mlflow.tf_serving import nested_to_table
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema


class InstancesDecoder:
    field = "instances"

    def decode(self, value: Any, schema: Schema | None) -> ModelData:
        if schema is not None and not schema.is_tensor:
            return nested_to_table(value, schema, self.field)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return Nested(_stack_rows(value))
        return Nested(value)


def _stack_rows(rows: list[Any]) -> dict[str, list[Any]]:
    """Row dicts to name → list of per-row values; every row must name the same inputs."""
    names = list(rows[0])
    stacked: dict[str, list[Any]] = {name: [] for name in names}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.keys() != stacked.keys():
            raise BadRequest(f"instances: row {i} does not have the inputs {names} of row 0")
        for name in names:
            stacked[name].append(row[name])
    return stacked
