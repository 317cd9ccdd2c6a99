"""`inputs` (TF Serving columnar format): an array, or `{name: array}`."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import ModelData, Nested
from sigserve.model.schema import Schema


class InputsDecoder:
    field = "inputs"

    def decode(self, value: Any, schema: Schema | None) -> ModelData:
        return Nested(value)
