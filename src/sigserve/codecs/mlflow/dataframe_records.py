"""`dataframe_records`: `[{"col": value, ...}, ...]`."""

from __future__ import annotations

from typing import Any

from sigserve.codecs.base import ModelData
from sigserve.codecs.tables import table_from_records
from sigserve.model.schema import Schema


class DataframeRecordsDecoder:
    field = "dataframe_records"

    def decode(self, value: Any, schema: Schema | None) -> ModelData:
        return table_from_records(value, "dataframe_records")
