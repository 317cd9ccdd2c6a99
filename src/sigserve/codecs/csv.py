"""`text/csv` as written by `DataFrame.to_csv(index=False)`, parsed by pyarrow with signature types."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from sigserve.codecs.base import Decoded, Table
from sigserve.errors import BadRequest
from sigserve.model.schema import DataType, Schema

_ARROW_TYPES = {
    DataType.boolean: pa.bool_(),
    DataType.integer: pa.int32(),
    DataType.long: pa.int64(),
    DataType.float: pa.float32(),
    DataType.double: pa.float64(),
    DataType.string: pa.string(),
    DataType.binary: pa.string(),
    DataType.datetime: pa.string(),
}


def column_types(schema: Schema | None) -> dict[str, pa.DataType]:
    if schema is None or schema.is_tensor or not schema.has_names:
        return {}
    return {
        spec.name: _ARROW_TYPES[spec.type]
        for spec in schema.inputs
        if isinstance(spec.type, DataType)
    }


class CsvDecoder:
    media_type = "text/csv"

    def decode(self, body: bytes, schema: Schema | None, params: dict[str, str]) -> Decoded:
        if not body.strip():
            raise BadRequest("Empty CSV body: expected a header line and rows")
        options = pacsv.ConvertOptions(column_types=column_types(schema), strings_can_be_null=True)
        try:
            table = pacsv.read_csv(io.BytesIO(body), convert_options=options)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"Failed to parse the CSV body: {exc}") from None
        return Decoded(arrow_table(table), None, "csv")


def arrow_table(table: pa.Table) -> Table:
    columns = {name: _column_values(table.column(name)) for name in table.column_names}
    if len(columns) != table.num_columns:
        raise BadRequest(f"Duplicate column names: {table.column_names}")
    return Table(columns, table.num_rows, typed=True)


def _column_values(column: pa.ChunkedArray) -> Any:
    """Plain numpy for null-free numbers and booleans (cheap); pandas for everything else."""
    kind = column.type
    if column.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return column.to_numpy()
    return column.to_pandas()
