"""`text/csv` as written by `DataFrame.to_csv(index=False)`, parsed by pyarrow with signature types."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from sigserve.codecs.arrow import arrow_table
from sigserve.codecs.arrow_memory import arrow_copy
from sigserve.codecs.base import Decoded
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
        types = column_types(schema)
        source = arrow_copy(body)
        try:
            try:
                table = _read(source, types)
            except pa.ArrowInvalid:
                table = _read_integral_floats(source, types)
        except pa.ArrowInvalid as exc:
            raise _conversion_error(source, types) or BadRequest(f"Failed to parse the CSV body: {exc}") from None
        except (pa.ArrowException, UnicodeDecodeError, KeyError) as exc:
            raise BadRequest(f"Failed to parse the CSV body: {exc}") from None
        return Decoded(arrow_table(table), None, "csv")


def _read(source: pa.Buffer, types: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(source, convert_options=_options(types))


def _read_integral_floats(source: pa.Buffer, types: dict[str, pa.DataType]) -> pa.Table:
    """Integer columns written as `2.0` (as pandas reads them): read as floats, then cast back
    only if every value is integral and in range."""
    as_floats = {name: pa.float64() if pa.types.is_integer(t) else t for name, t in types.items()}
    table = _read(source, as_floats)
    for name, arrow_type in types.items():
        if pa.types.is_integer(arrow_type) and name in table.column_names:
            index = table.column_names.index(name)
            table = table.set_column(index, name, _integral(table.column(name), name, arrow_type))
    return table


def _integral(column: pa.ChunkedArray, name: str, arrow_type: pa.DataType) -> pa.ChunkedArray:
    try:
        return column.cast(arrow_type, safe=True)
    except pa.ArrowInvalid:
        values = column.to_numpy(zero_copy_only=False)
        info = np.iinfo(arrow_type.to_pandas_dtype())
        bad = ~np.isnan(values) & ((values != np.floor(values)) | (values < info.min) | (values > info.max))
        row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise BadRequest(
            f"Column {name!r}, row {row}: value {values[row].item()!r} cannot be converted to {arrow_type}."
        ) from None


def _options(types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)


def _conversion_error(source: pa.Buffer, types: dict[str, pa.DataType]) -> BadRequest | None:
    """Re-read the typed columns as text to name the column, row and value that failed."""
    as_text = {name: pa.string() for name in types}
    try:
        table = pacsv.read_csv(source, convert_options=_options(as_text))
    except (pa.ArrowException, UnicodeDecodeError, KeyError):
        return None
    for name, arrow_type in types.items():
        if name not in table.column_names or arrow_type == pa.string():
            continue
        for row, text in enumerate(table.column(name).to_pylist()):
            if text is None:
                continue
            try:
                pa.array([text]).cast(arrow_type)
            except pa.ArrowException:
                return BadRequest(f"Column {name!r}, row {row}: value {text!r} cannot be converted to {arrow_type}.")
    return None
