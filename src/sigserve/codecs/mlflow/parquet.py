"""`application/vnd.apache.parquet`, read by pyarrow; its column types are kept.

Parquet compresses well enough to be a bomb: 200 KB of run-length-encoded zeros hold 25 M
rows, and a 1 KB dictionary page can repeat one long string into gigabytes. So the footer
is read first: rows, columns and the decoded size of the columns the model can use are
checked before any page is decoded. Text columns are read still dictionary-encoded, their
decoded size summed from the dictionary, and expanded only if it fits.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sigserve.codecs.arrow import PYTHON_STR_BYTES, arrow_table, python_text_bytes
from sigserve.codecs.arrow_memory import arrow_copy
from sigserve.codecs.base import Decoded
from sigserve.codecs.limits import DEFAULT_LIMITS, DecodeLimits
from sigserve.codecs.parquet_footer import RowGroup, row_groups
from sigserve.codecs.selection import select_columns
from sigserve.errors import BadRequest
from sigserve.model.schema import Schema

WHAT = "The Parquet body"
_PANDAS_INDEX_PREFIX = "__index_level_"
_WIDTHS = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}
_TEXT = {"STRING", "NONE", "JSON", "BSON", "ENUM"}  # byte arrays pyarrow reads as string/binary
_OFFSET_BYTES = 8  # per value of a variable-width or nested column


class ParquetDecoder:
    media_type = "application/vnd.apache.parquet"

    def decode(
        self, body: bytes, schema: Schema | None, params: dict[str, str], limits: DecodeLimits = DEFAULT_LIMITS
    ) -> Decoded:
        try:
            table, unread = _read(body, schema, limits)
            return Decoded(arrow_table(table, unread), None, "parquet")  # text that is not UTF-8 fails here
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BadRequest(f"Failed to read the Parquet body: {exc}") from None


def _read(body: bytes, schema: Schema | None, limits: DecodeLimits) -> tuple[pa.Table, tuple[str, ...]]:
    source = arrow_copy(body)
    file = pq.ParquetFile(source)
    metadata, arrow_schema = file.metadata, file.schema_arrow
    names = [name for name in arrow_schema.names if not name.startswith(_PANDAS_INDEX_PREFIX)]
    selection = select_columns(names, schema, limits, WHAT)
    limits.check_rows(metadata.num_rows, WHAT)
    groups = row_groups(body, metadata.num_columns)
    limits.check_rows(sum(group.num_rows for group in groups), WHAT)
    leaves = _leaves(metadata.schema, set(selection.read))
    limits.check_columns(len(leaves), WHAT)  # nested fields are columns too: a struct may hold 100 000
    limits.check_decoded(_stored_bytes(metadata.schema, groups, leaves), WHAT)
    dictionary_paths = [
        metadata.schema.column(leaf).path
        for leaf in leaves
        if _is_text(metadata.schema.column(leaf)) and any(group.chunks[leaf].has_dictionary for group in groups)
    ]
    if dictionary_paths:  # text read still encoded, so no value is repeated before the expansion fits
        file = pq.ParquetFile(source, metadata=metadata, read_dictionary=dictionary_paths)
    table = file.read(columns=selection.read, use_pandas_metadata=False)
    if dictionary_paths:
        target = pa.schema([arrow_schema.field(name) for name in table.column_names])
        decoded = sum(
            _decoded_bytes(chunk, field.type) for column, field in zip(table.columns, target) for chunk in column.chunks
        )
        limits.check_decoded(decoded, WHAT)
        table = table.cast(target)
    return table, selection.unread


def _leaves(parquet_schema: pq.ParquetSchema, selected: set[str]) -> list[int]:
    """The leaf columns (Parquet's unit of storage) under the selected top-level columns."""
    leaves = []
    for index in range(len(parquet_schema)):
        parts = parquet_schema.column(index).path.split(".")
        if any(".".join(parts[:depth]) in selected for depth in range(1, len(parts) + 1)):
            leaves.append(index)
    return leaves


def _is_text(column: pq.ColumnSchema) -> bool:
    return column.physical_type == "BYTE_ARRAY" and column.logical_type.type in _TEXT


def _stored_bytes(parquet_schema: pq.ParquetSchema, groups: list[RowGroup], leaves: list[int]) -> int:
    """What reading the leaves costs, from the footer alone: values times their width for
    fixed-width types; for byte arrays the uncompressed pages (the values themselves, or a
    dictionary and its indices: `_decoded_bytes` then counts the expansion), and for text
    those bytes again as the Python strings they become."""
    total = 0
    for leaf in leaves:
        column = parquet_schema.column(leaf)
        kind = column.physical_type
        for group in groups:
            chunk = group.chunks[leaf]
            values = max(chunk.num_values, group.num_rows)  # a column holds a value (or null) per row at least
            if kind == "FIXED_LEN_BYTE_ARRAY":
                total += values * column.length
            elif kind in _WIDTHS:
                total += values * _WIDTHS[kind]
            elif _is_text(column):
                total += 2 * chunk.uncompressed_bytes + values * (_OFFSET_BYTES + PYTHON_STR_BYTES)
            else:
                total += chunk.uncompressed_bytes + values * _OFFSET_BYTES
    return total


def _decoded_bytes(array: pa.Array, target: pa.DataType) -> int:
    """The size of `array` once cast to `target`, its text counted again as Python strings: a
    dictionary read in place of text counts every value it repeats."""
    kind = array.type
    if pa.types.is_dictionary(kind) and not pa.types.is_dictionary(target):
        text = pc.sum(pc.binary_length(array.dictionary).take(array.indices)).as_py() or 0
        values = len(array) - array.null_count
        return 2 * text + len(array) * _OFFSET_BYTES + values * PYTHON_STR_BYTES
    if pa.types.is_struct(kind):
        return sum(_decoded_bytes(array.field(i), target.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        children = _decoded_bytes(array.keys, target.key_type) + _decoded_bytes(array.items, target.item_type)
        return children + len(array) * _OFFSET_BYTES
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _decoded_bytes(array.values, target.value_type) + len(array) * _OFFSET_BYTES
    return array.nbytes + python_text_bytes(array)
