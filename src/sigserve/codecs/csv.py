"""`text/csv` as written by `DataFrame.to_csv(index=False)`, parsed by pyarrow with signature types."""

from __future__ import annotations

import itertools

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
    """Integer columns written as `2.0` or `1e17` (as pandas reads them): read as floats, then
    converted back only if every value is integral and in range."""
    as_floats = {name: pa.float64() if pa.types.is_integer(t) else t for name, t in types.items()}
    table = _read(source, as_floats)
    for name, arrow_type in types.items():
        if pa.types.is_integer(arrow_type) and name in table.column_names:
            index = table.column_names.index(name)
            table = table.set_column(index, name, _integral(table.column(name), name, arrow_type, source))
    return table


_FLOAT64_EXACT = 2.0**53
_FLOAT_INT_FLOOR = -(2.0**63)  # as in the JSON rule: a float must lie strictly between -2**63 and 2**63


def _integral(column: pa.ChunkedArray, name: str, arrow_type: pa.DataType, source: pa.Buffer) -> pa.Array:
    """Vectorized, except for the rare cells of 2**53 or more, whose text is read again: an
    integer written out (`9007199254740993`) beside a `2.0` in its column is exact, not the
    double it was read as."""
    values = column.to_numpy(zero_copy_only=False)
    nulls = np.isnan(values)
    info = np.iinfo(arrow_type.to_pandas_dtype())
    with np.errstate(invalid="ignore"):
        bad = ~nulls & (
            (values != np.floor(values)) | (values < float(info.min)) | (values >= float(info.max) + 1)
            | (values <= _FLOAT_INT_FLOOR)
        )
        large = ~nulls & (np.abs(values) >= _FLOAT64_EXACT)
    shown: dict[int, str] = {}
    exact: dict[int, int] = {}
    if large.any():
        rows = np.flatnonzero(large)
        for row, text in zip(rows.tolist(), _cells_as_text(source, name, rows)):
            number = _integer_value(text)
            bad[row] = number is None or not info.min <= number <= info.max
            shown[row] = text
            if not bad[row]:
                exact[row] = number
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = shown.get(row, values[row].item())
        raise BadRequest(f"Column {name!r}, row {row}: value {value!r} cannot be converted to {arrow_type}.")
    integers = np.where(nulls | large, 0, values).astype(np.int64)
    for row, number in exact.items():
        integers[row] = number
    return pa.array(integers, mask=nulls if nulls.any() else None).cast(arrow_type)


def _cells_as_text(source: pa.Buffer, name: str, rows: np.ndarray) -> list[str]:
    options = pacsv.ConvertOptions(column_types={name: pa.string()}, include_columns=[name])
    return pacsv.read_csv(source, convert_options=options).column(name).take(pa.array(rows)).to_pylist()


def _integer_value(text: str) -> int | None:
    """An integer written out, exactly; or a float's integer value, when it has no fraction and
    lies strictly between -2**63 and 2**63 (the JSON rule)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    if not number.is_integer() or number <= _FLOAT_INT_FLOOR:
        return None
    return int(number)


def _every_case(word: str) -> list[str]:
    return ["".join(letters) for letters in itertools.product(*((c.lower(), c.upper()) for c in word))]


# Boolean cells: "true"/"false" in any letter case (the JSON rule of enforce/values.py, and what
# pandas' reader takes) and 1/0. pyarrow's own defaults are only true/True/TRUE/1 and the false forms.
_TRUE_VALUES = [*_every_case("true"), "1"]
_FALSE_VALUES = [*_every_case("false"), "0"]


def _options(types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    if not any(pa.types.is_boolean(t) for t in types.values()):
        return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                true_values=_TRUE_VALUES, false_values=_FALSE_VALUES)


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
