"""`text/csv` as written by `DataFrame.to_csv(index=False)`, parsed by pyarrow with signature types.

Only the columns the model can use are decoded (`selection.py`), and the body is read as a
stream of blocks, counting rows and decoded bytes, so an oversized one is refused early.
"""

from __future__ import annotations

import csv
import io
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from sigserve.codecs.arrow import arrow_table, python_text_bytes
from sigserve.codecs.arrow_memory import arrow_copy
from sigserve.codecs.base import Decoded
from sigserve.codecs.limits import DEFAULT_LIMITS, DecodeLimits
from sigserve.codecs.selection import select_columns
from sigserve.errors import BadRequest
from sigserve.model.schema import DataType, Schema

WHAT = "The CSV body"
HEADER_BYTES = 1024 * 1024  # pyarrow's default block size, which a header had to fit in
# pyarrow keeps about 1.5 KB per column per block on top of the values: wide tables are read
# in larger blocks (at 10 000 columns, 1 MB blocks cost 4 times the values, 4 MB blocks 2)
BLOCK_BYTES_PER_COLUMN = 4 * 1024
MAX_BLOCK_BYTES = 16 * 1024 * 1024

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

    def decode(
        self, body: bytes, schema: Schema | None, params: dict[str, str], limits: DecodeLimits = DEFAULT_LIMITS
    ) -> Decoded:
        if not body.strip():
            raise BadRequest("Empty CSV body: expected a header line and rows")
        names = header_names(body)
        if not names:
            raise BadRequest(f"Failed to parse the CSV body: no header line in its first {HEADER_BYTES} bytes")
        selection = select_columns(names, schema, limits, WHAT)
        # with no usable column, the first one is still read, for the row count
        source = _Source(arrow_copy(body), selection.read or names[:1], limits)
        types = {name: t for name, t in column_types(schema).items() if name in source.include}
        try:
            try:
                table = source.read(types)
            except pa.ArrowInvalid:
                table = _read_integral_floats(source, types)
        except pa.ArrowInvalid as exc:
            raise _conversion_error(source, types) or BadRequest(f"Failed to parse the CSV body: {exc}") from None
        except (pa.ArrowException, UnicodeDecodeError, KeyError) as exc:
            raise BadRequest(f"Failed to parse the CSV body: {exc}") from None
        if not selection.read:
            table = table.select([])
        return Decoded(arrow_table(table, selection.unread), None, "csv")


def header_names(body: bytes) -> list[str]:
    """The header's column names, as pyarrow reads them (quoting, a byte order mark, blank lines
    before it), at the cost of one line: pyarrow has no way to list them without reading every
    column, which costs about 10 KB each."""
    text = body[:HEADER_BYTES].decode("utf-8-sig", errors="surrogateescape")
    lines = io.StringIO(text, newline="")
    try:
        names = next((row for row in csv.reader(lines) if row), [])
    except csv.Error as exc:
        raise BadRequest(f"Failed to parse the CSV header: {exc}") from None
    if len(body) > HEADER_BYTES and lines.tell() >= len(text):
        raise BadRequest(f"Failed to parse the CSV body: its header line is longer than {HEADER_BYTES} bytes")
    try:
        "".join(names).encode()
    except UnicodeEncodeError as exc:
        raise BadRequest(f"Column names are not valid UTF-8: {exc}") from None
    return names


class _Source:
    """The body and the columns to read from it, read as a stream within the limits."""

    def __init__(self, buffer: pa.Buffer, include: list[str], limits: DecodeLimits) -> None:
        self.buffer, self.include, self.limits = buffer, include, limits
        block_size = min(MAX_BLOCK_BYTES, max(HEADER_BYTES, len(include) * BLOCK_BYTES_PER_COLUMN))
        # one block gains nothing from reading ahead on another thread
        self.read_options = pacsv.ReadOptions(block_size=block_size, use_threads=buffer.size > block_size)

    def read(self, types: dict[str, pa.DataType], include: list[str] | None = None, as_text: bool = False) -> pa.Table:
        """`as_text`: cells re-read as text to name a refused value, which stay Arrow strings."""
        include = self.include if include is None else include
        try:
            return self.stream(_options(types, include), python_text=not as_text)
        except pa.ArrowInvalid:
            if all(name in types for name in include):
                raise
        # A column typed by inference from the first block met a wider type later: read_csv
        # unifies the blocks' types, once a text-only pass has bounded the body.
        self.stream(_options(dict.fromkeys(include, pa.string()), include), keep=False)
        table = pacsv.read_csv(self.buffer, read_options=self.read_options, convert_options=_options(types, include))
        self.limits.check_decoded(sum(_decoded_bytes(batch, True) for batch in table.to_batches()), WHAT)
        return table

    def stream(self, options: pacsv.ConvertOptions, keep: bool = True, python_text: bool = True) -> pa.Table:
        """Block by block, counting rows and, for what is kept, decoded bytes."""
        reader = pacsv.open_csv(self.buffer, read_options=self.read_options, convert_options=options)
        batches, rows, nbytes = [], 0, 0
        for batch in reader:
            rows += batch.num_rows
            self.limits.check_rows(rows, WHAT, more=True)
            if keep:
                nbytes += _decoded_bytes(batch, python_text)
                self.limits.check_decoded(nbytes, WHAT)
                batches.append(batch)
        return pa.Table.from_batches(batches, reader.schema)


def _decoded_bytes(batch: pa.RecordBatch, python_text: bool) -> int:
    """Arrow's bytes, and text again as the Python strings it becomes."""
    return batch.nbytes + (sum(python_text_bytes(column) for column in batch.columns) if python_text else 0)


def _read_integral_floats(source: _Source, types: dict[str, pa.DataType]) -> pa.Table:
    """Integer columns written as `2.0` or `1e17` (as pandas reads them): read as floats, then
    converted back only if every value is integral and in range."""
    as_floats = {name: pa.float64() if pa.types.is_integer(t) else t for name, t in types.items()}
    table = source.read(as_floats)
    for name, arrow_type in types.items():
        if pa.types.is_integer(arrow_type) and name in table.column_names:
            index = table.column_names.index(name)
            table = table.set_column(index, name, _integral(table.column(name), name, arrow_type, source))
    return table


_FLOAT64_EXACT = 2.0**53
_FLOAT_INT_FLOOR = -(2.0**63)  # as in the JSON rule: a float must lie strictly between -2**63 and 2**63


def _integral(column: pa.ChunkedArray, name: str, arrow_type: pa.DataType, source: _Source) -> pa.Array:
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


def _cells_as_text(source: _Source, name: str, rows: np.ndarray) -> list[str]:
    return source.read({name: pa.string()}, [name], as_text=True).column(name).take(pa.array(rows)).to_pylist()


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


def _options(types: dict[str, pa.DataType], include: list[str]) -> pacsv.ConvertOptions:
    if not any(pa.types.is_boolean(t) for t in types.values()):
        return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, include_columns=include)
    return pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, include_columns=include,
                                true_values=_TRUE_VALUES, false_values=_FALSE_VALUES)


def _conversion_error(source: _Source, types: dict[str, pa.DataType]) -> BadRequest | None:
    """Re-read the typed columns as text to name the column, row and value that failed."""
    typed = [name for name, arrow_type in types.items() if arrow_type != pa.string()]
    try:
        table = source.read(dict.fromkeys(typed, pa.string()), typed, as_text=True) if typed else None
    except (pa.ArrowException, UnicodeDecodeError, KeyError):
        return None
    for name in typed:
        row = 0
        for chunk in table.column(name).chunks:
            try:  # whole blocks at once; only the block that fails is looked at value by value
                chunk.cast(types[name])
            except pa.ArrowException:
                return _first_refused(chunk, name, types[name], row)
            row += len(chunk)
    return None


def _first_refused(chunk: pa.Array, name: str, arrow_type: pa.DataType, first_row: int) -> BadRequest | None:
    for row, text in enumerate(chunk.to_pylist(), start=first_row):
        if text is None:
            continue
        try:
            pa.array([text]).cast(arrow_type)
        except pa.ArrowException:
            return BadRequest(f"Column {name!r}, row {row}: value {text!r} cannot be converted to {arrow_type}.")
    return None
