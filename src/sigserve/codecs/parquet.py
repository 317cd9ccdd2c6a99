"""`application/vnd.apache.parquet`, read by pyarrow; its column types are kept."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from sigserve.codecs.arrow import arrow_table
from sigserve.codecs.arrow_memory import arrow_copy
from sigserve.codecs.base import Decoded
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

_PANDAS_INDEX_PREFIX = "__index_level_"


class ParquetDecoder:
    media_type = "application/vnd.apache.parquet"

    def decode(self, body: bytes, schema: Schema | None, params: dict[str, str]) -> Decoded:
        try:
            table = pq.read_table(arrow_copy(body))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BadRequest(f"Failed to read the Parquet body: {exc}") from None
        index_columns = [n for n in table.column_names if n.startswith(_PANDAS_INDEX_PREFIX)]
        return Decoded(arrow_table(table.drop_columns(index_columns)), None, "parquet")
