"""`inputs` (TF Serving columnar format): an array, or `{name: array}`."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import ModelData, Nested
from sigserve.codecs.mlflow.tf_serving import nested_to_table
from sigserve.model.schema import Schema


class InputsDecoder:
    field = "inputs"

    def decode(self, value: Any, schema: Schema | None) -> ModelData:
        if schema is not None and not schema.is_tensor:
            return nested_to_table(value, schema, self.field)
        return Nested(value)
