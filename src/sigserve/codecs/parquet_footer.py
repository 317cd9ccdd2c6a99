"""The row groups and column chunks of a Parquet footer, read from its Thrift bytes.

pyarrow's metadata objects cannot be trusted with a hostile footer: `RowGroupMetaData.column()`
lets a C++ exception escape on some malformed ones (a size-statistics histogram of the wrong
length, for one) and the process aborts. Its readers raise properly, but they decode. So the
few numbers the decode limits need are read here, from Thrift's compact protocol, every
length checked: anything malformed is a BadRequest, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sigserve.errors import BadRequest

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
_MAX_DEPTH = 32
# field ids in parquet.thrift: FileMetaData.row_groups, RowGroup.columns and .num_rows,
# ColumnChunk.meta_data, ColumnMetaData.num_values, .total_uncompressed_size, .dictionary_page_offset
_FILE_ROW_GROUPS, _GROUP_COLUMNS, _GROUP_ROWS, _CHUNK_META = 4, 1, 3, 3
_NUM_VALUES, _UNCOMPRESSED, _DICTIONARY_OFFSET = 5, 6, 11
T = TypeVar("T")


@dataclass(frozen=True)
class Chunk:
    num_values: int
    uncompressed_bytes: int
    has_dictionary: bool


@dataclass(frozen=True)
class RowGroup:
    num_rows: int  # what the reader reads, whatever the file's own total says
    chunks: list[Chunk]  # one per leaf column, in schema order


class _Malformed(Exception):
    pass


def row_groups(body: bytes, leaves: int) -> list[RowGroup]:
    if len(body) < 12 or body[-4:] != b"PAR1":
        raise BadRequest("Failed to read the Parquet body: no Parquet footer")
    length = int.from_bytes(body[-8:-4], "little")
    if length > len(body) - 12:
        raise BadRequest("Failed to read the Parquet body: its footer length is past the body")
    footer = body[len(body) - 8 - length : len(body) - 8]
    try:
        return _file(footer, leaves)
    except (_Malformed, IndexError) as exc:
        detail = f": {exc}" if isinstance(exc, _Malformed) else ": it ends early"
        raise BadRequest(f"Failed to read the Parquet body: malformed footer{detail}") from None


def _file(data: bytes, leaves: int) -> list[RowGroup]:
    groups: list[RowGroup] = []
    pos, field = 0, 0
    while True:
        field, kind, pos = _field(data, pos, field)
        if kind == _STOP:
            return groups
        if field == _FILE_ROW_GROUPS and kind == _LIST:
            groups, pos = _struct_list(data, pos, lambda p: _row_group(data, p, leaves))
        else:
            pos = _skip(data, pos, kind, 1)


def _row_group(data: bytes, pos: int, leaves: int) -> tuple[RowGroup, int]:
    chunks: list[Chunk] = []
    rows, field = 0, 0
    while True:
        field, kind, pos = _field(data, pos, field)
        if kind == _STOP:
            break
        if field == _GROUP_COLUMNS and kind == _LIST:
            chunks, pos = _struct_list(data, pos, lambda p: _chunk(data, p))
        elif field == _GROUP_ROWS and kind == _I64:
            rows, pos = _signed(data, pos)
        else:
            pos = _skip(data, pos, kind, 2)
    if len(chunks) != leaves:
        raise _Malformed(f"a row group has {len(chunks)} column chunks for {leaves} columns")
    return RowGroup(max(0, rows), chunks), pos


def _chunk(data: bytes, pos: int) -> tuple[Chunk, int]:
    found, field = None, 0
    while True:
        field, kind, pos = _field(data, pos, field)
        if kind == _STOP:
            break
        if field == _CHUNK_META and kind == _STRUCT:
            found, pos = _meta(data, pos)
        else:
            pos = _skip(data, pos, kind, 3)
    if found is None:
        raise _Malformed("a column chunk has no metadata (encrypted?)")
    return found, pos


def _meta(data: bytes, pos: int) -> tuple[Chunk, int]:
    values: dict[int, int] = {}
    field = 0
    while True:
        field, kind, pos = _field(data, pos, field)
        if kind == _STOP:
            break
        if field in (_NUM_VALUES, _UNCOMPRESSED, _DICTIONARY_OFFSET) and kind == _I64:
            values[field], pos = _signed(data, pos)
        else:
            pos = _skip(data, pos, kind, 4)
    if _NUM_VALUES not in values or _UNCOMPRESSED not in values:
        raise _Malformed("a column chunk's metadata is incomplete")
    return Chunk(max(0, values[_NUM_VALUES]), max(0, values[_UNCOMPRESSED]), _DICTIONARY_OFFSET in values), pos


def _field(data: bytes, pos: int, last: int) -> tuple[int, int, int]:
    """The next field's id and type, and where its value starts; type STOP ends the struct."""
    header = data[pos]
    kind = header & 0x0F
    if kind == _STOP:
        return 0, _STOP, pos + 1
    if header >> 4:
        return last + (header >> 4), kind, pos + 1
    value, pos = _varint(data, pos + 1)
    return (value >> 1) ^ -(value & 1), kind, pos


def _struct_list(data: bytes, pos: int, read: Callable[[int], tuple[T, int]]) -> tuple[list[T], int]:
    size, element, pos = _collection(data, pos)
    if element != _STRUCT:
        raise _Malformed("a list holds the wrong type")
    items = []
    for _ in range(size):
        item, pos = read(pos)
        items.append(item)
    return items, pos


def _collection(data: bytes, pos: int) -> tuple[int, int, int]:
    header = data[pos]
    size = header >> 4
    if size == 15:
        size, pos = _varint(data, pos + 1)
        return size, header & 0x0F, pos
    return size, header & 0x0F, pos + 1


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("a number is too long")


def _signed(data: bytes, pos: int) -> tuple[int, int]:
    value, pos = _varint(data, pos)
    return (value >> 1) ^ -(value & 1), pos


def _skip(data: bytes, pos: int, kind: int, depth: int) -> int:
    """Where the value of `kind` that starts at `pos` ends (a struct's booleans have no bytes)."""
    if depth > _MAX_DEPTH:
        raise _Malformed("nested too deeply")
    if kind in (_TRUE, _FALSE):
        return pos
    if kind in (_I16, _I32, _I64):
        return _varint(data, pos)[1]
    if kind == _BINARY:
        size, pos = _varint(data, pos)
        return _within(data, pos + size)
    if kind in (_BYTE, _DOUBLE):
        return _within(data, pos + (1 if kind == _BYTE else 8))
    if kind in (_LIST, _SET):
        size, element, pos = _collection(data, pos)
        if element in (_TRUE, _FALSE, _BYTE):  # a collection's booleans take a byte each
            return _within(data, pos + size)
        for _ in range(size):
            pos = _skip(data, pos, element, depth + 1)
        return pos
    if kind == _MAP:
        size, pos = _varint(data, pos)
        if not size:
            return pos
        types = data[pos]
        pos += 1
        for _ in range(size):
            for element in (types >> 4, types & 0x0F):
                pos = _within(data, pos + 1) if element in (_TRUE, _FALSE) else _skip(data, pos, element, depth + 1)
        return pos
    if kind == _STRUCT:
        field = 0
        while True:
            field, field_kind, pos = _field(data, pos, field)
            if field_kind == _STOP:
                return pos
            pos = _skip(data, pos, field_kind, depth + 1)
    raise _Malformed(f"unknown type {kind}")


def _within(data: bytes, end: int) -> int:
    if end > len(data):
        raise _Malformed("a value runs past its end")
    return end
