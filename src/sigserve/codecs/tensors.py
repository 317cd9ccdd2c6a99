"""The V2 tensor core shared by JSON, binary (HTTP) and gRPC: named, shaped, typed tensors in,
the same enforcement-ready model data out; predictions back as named output tensors.

Every transport only parses its own framing into `InputTensor`s and serializes `OutputTensor`s,
so the three give the same verdicts on the same values. JSON gives each tensor's values as a list,
held to its declared `datatype` here; binary and gRPC give a numpy array already of that datatype
(BYTES: an object array of `bytes`), which reaches enforcement without a trip through Python
lists and goes through the same exact conversion rule as JSON's values.
"""

from __future__ import annotations

import base64
import math
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from sigserve.codecs.base import Decoded, ModelData, Nested, Table
from sigserve.codecs.json_encode import encode_json
from sigserve.codecs.json_parse import LIST_BYTES, VALUE_BYTES
from sigserve.codecs.limits import DecodeLimits
from sigserve.codecs.tables import object_column
from sigserve.errors import BadRequest
from sigserve.model.schema import ColSpec, DataType, Schema, TensorSpec

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8), "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
DATATYPE_NAMES = sorted(DATATYPES)
FORMAT = "v2"
DEFAULT_OUTPUT = "predict"
# The largest finite FP16/FP32 values, as clients print them (numpy prints float32's as 3.4028235e38).
FLOAT_LIMITS = {"FP16": 65504.0, "FP32": 3.4028235e38}
# What one BYTES element decoded from binary costs as a Python object, beyond its text.
BYTES_ELEMENT_COST = 64
# A list slot holding an object CPython keeps one of (True, False, the ints of UINT8), or one already made.
SLOT_BYTES = 8
CACHED_DATATYPES = frozenset({"BOOL", "UINT8"})
SHOWN_CHARS = 200  # a client's value echoed in a message is cut here
_INT64_MAX = np.iinfo(np.int64).max
_BYTES_LENGTH = struct.Struct("<I")  # each BYTES element's little-endian length
_KIND_DATATYPES = {"b": "BOOL", "O": "BYTES", "U": "BYTES", "S": "BYTES", "M": "BYTES"}


@dataclass(frozen=True)
class InputTensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    data: list[Any] | np.ndarray  # flat, row-major; JSON gives a list, binary/gRPC a numpy array
    #                               (BYTES: a 1-D object array of `bytes`)


@dataclass(frozen=True)
class OutputTensor:
    name: str
    shape: tuple[int, ...]
    datatype: str
    array: np.ndarray  # flat, row-major; numbers and BOOL in the datatype's dtype, BYTES an object array


class ObjectBudget:
    """What one request's tensors cost as Python objects, held to `--max-decoded-bytes` as one total
    for the whole request: binary and gRPC tensors are compact numpy arrays until something makes
    them objects (4 900 UINT16 per row became 200 MB of lists from a 10 MB body). A transport adds
    each BYTES input with `add_bytes` before making its elements; `decode_tensors` adds every other
    conversion to objects before making it (and any BYTES input the transport did not add)."""

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self.total = 0
        self.bytes_inputs: set[str] = set()

    def add(self, name: str, nbytes: int) -> None:
        if not nbytes:
            return
        alone = self.total == 0
        self.total += nbytes
        what = f"V2 input {shown(name)}" if alone else f"The V2 request's inputs up to {shown(name)}"
        self.limits.check_decoded(self.total, what, estimated=True)

    def add_bytes(self, name: str, shape: tuple[int, ...], size: int) -> None:
        """A BYTES input of `size` bytes (its raw bytes or typed contents), before its elements are made."""
        self.bytes_inputs.add(name)
        self.add(name, size + BYTES_ELEMENT_COST * math.prod(shape))


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A client's value as a message echoes it: its repr, cut at `limit` characters."""
    if isinstance(value, (list, tuple)) and len(value) > limit:
        value = value[:limit]  # the repr of the rest is never made
        return repr(value)[:limit] + "…"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# --------------------------------------------------------------------------- checks on the fields


def check_datatype(name: str, datatype: Any) -> str:
    """The declared datatype, which must be one of the protocol's (a JSON object or list is not)."""
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise BadRequest(f"V2 input {shown(name)}: unknown datatype {shown(datatype)}; "
                         f"expected one of {DATATYPE_NAMES}")
    return datatype


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        given = list(shape) if isinstance(shape, tuple) else shape
        raise BadRequest(f"V2 input {shown(name)}: 'shape' must be a list of non-negative integers, got {shown(given)}")
    return tuple(shape)


def check_rows(name: str, shape: Any, limits: DecodeLimits) -> None:
    """An input's first dimension (its rows) within the row limit, before its data is read."""
    if limits.max_rows is not None and isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], int) \
            and shape[0] > limits.max_rows:
        limits.check_rows(shape[0], f"V2 input {shown(name)} of shape {shown(list(shape))}")


# --------------------------------------------------------------------------- decoding


def decode_tensors(
    inputs: list[InputTensor], parameters: dict[str, Any] | None, schema: Schema | None, limits: DecodeLimits,
    budget: ObjectBudget | None = None,
) -> Decoded:
    """Tensors to the model data `/invocations` would decode from the same values: table columns
    for column signatures (or none, when every input is 1-D), tensors otherwise; `parameters`
    become params. `budget`: the transport's, holding the BYTES inputs it added; every array that
    becomes Python objects is added to it before it does."""
    if not inputs:
        raise BadRequest("A V2 inference request needs a non-empty 'inputs' list")
    repeated = [(name, count) for name, count in Counter(item.name for item in inputs).items() if count > 1]
    if repeated:
        name, count = repeated[0]
        raise BadRequest(f"V2 input names must be unique, but {shown(name)} names {count} inputs")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest("V2 'parameters' must be an object")
    for item in inputs:
        check_datatype(item.name, item.datatype)
        check_shape(item.name, item.shape)
        check_rows(item.name, item.shape, limits)
        _check_size(item)
        if not isinstance(item.data, np.ndarray):
            check_values(item.name, item.datatype, item.data)
    specs = [_spec_for(schema, item.name, position) for position, item in enumerate(inputs)]
    table = _is_table(inputs, schema)
    budget = budget if budget is not None else ObjectBudget(limits)
    for item, spec in zip(inputs, specs):
        budget.add(item.name, _object_cost(item, spec, table, budget.bytes_inputs))
    ready = [_from_array(item, spec) if isinstance(item.data, np.ndarray) else item
             for item, spec in zip(inputs, specs)]
    return Decoded(_model_data(ready, schema, table), parameters, FORMAT)


def _object_cost(item: InputTensor, spec: ColSpec | TensorSpec | None, table: bool, counted: set[str]) -> int:
    """An estimate of the Python objects a binary or gRPC tensor becomes (JSON's values are objects
    already, bounded before the JSON was parsed): BYTES elements (unless the transport counted
    them) and their text, UINT64 past int64 as ints, and a column fed rows of lists."""
    data = item.data
    if not isinstance(data, np.ndarray):
        return 0
    cost, objects = 0, data.dtype.kind == "O"
    if item.datatype == "BYTES":
        times = (item.name not in counted) + _becomes_text(item, spec)  # the bytes, then their text
        if times:
            cost += times * (sum(map(len, data)) + BYTES_ELEMENT_COST * len(data))
    elif _beyond_int64(data, item.datatype):
        cost, objects = VALUE_BYTES * len(data), True
    if table and _rows_of_lists(item.shape):
        per_value = SLOT_BYTES if objects or item.datatype in CACHED_DATATYPES else VALUE_BYTES
        cost += per_value * len(data) + LIST_BYTES * _list_count(item.shape)
    return cost


def _list_count(shape: tuple[int, ...]) -> int:
    """The lists `tolist()` makes of an array of this shape: one per element of every outer dimension."""
    return sum(math.prod(shape[:depth]) for depth in range(1, len(shape)))


def _rows_of_lists(shape: tuple[int, ...]) -> bool:
    """A table column of this shape takes one list per row (for Array columns)."""
    return len(shape) > 2 or (len(shape) == 2 and shape[1] != 1)


def _beyond_int64(data: np.ndarray, datatype: str) -> bool:
    return datatype == "UINT64" and len(data) > 0 and data.max() > _INT64_MAX


def _check_size(item: InputTensor) -> None:
    expected = math.prod(item.shape)
    if len(item.data) != expected:
        raise BadRequest(
            f"V2 input {shown(item.name)}: shape {list(item.shape)} holds {expected} values, "
            f"but 'data' has {len(item.data)}"
        )
    if isinstance(item.data, np.ndarray):
        wanted = DATATYPES[item.datatype]
        if item.data.ndim != 1 or item.data.dtype.kind != wanted.kind or item.data.dtype.itemsize != wanted.itemsize:
            raise BadRequest(f"V2 input {shown(item.name)}: its data is {item.data.dtype}, not a {item.datatype}")


def check_values(name: str, datatype: str, values: list[Any]) -> None:
    """JSON values must be of their declared datatype: checked with one C-level pass over them;
    only a refusal looks for the offending value in Python."""
    if _fits(datatype, values):
        return
    bad = next((v for v in values if not _fits(datatype, [v])), None)
    limit = FLOAT_LIMITS.get(datatype)
    beyond = f" (out of range: its largest finite value is {limit!r})" if limit and _is_number(bad) else ""
    raise BadRequest(f"V2 input {shown(name)}: value {shown(bad)} is not a {datatype}{beyond}")


def _fits(datatype: str, values: list[Any]) -> bool:
    if not values:
        return True
    kind = infer_dtype(object_column(values), skipna=False)
    if datatype == "BYTES":
        return kind in ("string", "bytes")
    if datatype == "BOOL":
        return kind == "boolean"
    if datatype.startswith(("INT", "UINT")):
        if kind != "integer":
            return False
        info = np.iinfo(DATATYPES[datatype])
        try:
            return info.min <= min(values) and max(values) <= info.max
        except TypeError:
            return False
    return kind in ("integer", "floating", "mixed-integer-float") and _in_float_range(datatype, values)


def _in_float_range(datatype: str, values: list[Any]) -> bool:
    """Finite FP16/FP32 values must be finite in that type; explicit inf and NaN are left to enforcement."""
    limit = FLOAT_LIMITS.get(datatype)
    if limit is None:
        return True
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        return False
    magnitudes = np.abs(numbers)
    with np.errstate(invalid="ignore"):
        return bool(((magnitudes <= limit) | ~np.isfinite(magnitudes)).all())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _spec_for(schema: Schema | None, name: str, position: int) -> ColSpec | TensorSpec | None:
    if schema is None:
        return None
    if schema.has_names:
        return next((spec for spec in schema.inputs if spec.name == name), None)
    return schema.inputs[position] if position < len(schema.inputs) else None


def _from_array(item: InputTensor, spec: ColSpec | TensorSpec | None) -> InputTensor:
    """BYTES elements stay bytes for a binary column or a bytes tensor; elsewhere they are text,
    as JSON strings are (no signature: text when they are UTF-8)."""
    data = item.data
    if _beyond_int64(data, item.datatype):
        # beyond int64, as Python ints: the exact rule then takes them as it takes JSON's
        return InputTensor(item.name, item.shape, item.datatype, data.astype(object))
    if not data.flags.writeable and not _converted(data.dtype, spec):
        # a view of the request body would reach the model as it is: a model may write to its input
        return InputTensor(item.name, item.shape, item.datatype, data.copy())
    if not _becomes_text(item, spec):
        return item
    return InputTensor(item.name, item.shape, item.datatype, _as_text(item.name, data, strict=spec is not None))


def _becomes_text(item: InputTensor, spec: ColSpec | TensorSpec | None) -> bool:
    if item.datatype != "BYTES" or not len(item.data):
        return False
    if isinstance(spec, ColSpec) and spec.type is DataType.binary:
        return False
    return not (isinstance(spec, TensorSpec) and spec.dtype.kind == "S")


def _converted(dtype: np.dtype, spec: ColSpec | TensorSpec | None) -> bool:
    """Enforcement makes a new array from one of this dtype for this spec."""
    if isinstance(spec, TensorSpec):
        return spec.dtype != dtype
    if isinstance(spec, ColSpec) and isinstance(spec.type, DataType):
        return not (spec.type is DataType.boolean and dtype.kind == "b")
    return False


def _as_text(name: str, data: np.ndarray, strict: bool) -> np.ndarray:
    try:
        decoded = [element.decode("utf-8") for element in data]
    except (UnicodeDecodeError, AttributeError):  # not UTF-8, or not all bytes: element by element
        return _as_text_each(name, data, strict)
    text = np.empty(len(data), dtype=object)
    text[:] = decoded
    return text


def _as_text_each(name: str, data: np.ndarray, strict: bool) -> np.ndarray:
    text = np.empty(len(data), dtype=object)
    for i, element in enumerate(data):
        if isinstance(element, (bytes, bytearray, memoryview)):
            try:
                element = bytes(element).decode("utf-8")
            except UnicodeDecodeError:
                if strict:
                    raise BadRequest(
                        f"V2 input {shown(name)}: BYTES element {i} is not UTF-8 text, which the model's signature "
                        "expects here (raw bytes fit only a binary column or a bytes tensor)"
                    ) from None
                return data
        text[i] = element
    return text


def _is_table(inputs: list[InputTensor], schema: Schema | None) -> bool:
    """Columns when the signature is column-based (or absent and every input is 1-D), tensors otherwise."""
    if schema is not None:
        return not schema.is_tensor
    return all(len(item.shape) == 1 or (len(item.shape) == 2 and item.shape[1] == 1) for item in inputs)


def _model_data(inputs: list[InputTensor], schema: Schema | None, table: bool) -> ModelData:
    if table:
        return _table(inputs)
    tensors = {item.name: _nested(item) for item in inputs}
    if schema is not None and not schema.has_names and len(inputs) == 1:
        return Nested(next(iter(tensors.values())))
    return Nested(tensors)


def _table(inputs: list[InputTensor]) -> Table:
    rows = {item.shape[0] if item.shape else 1 for item in inputs}
    if len(rows) != 1:
        raise BadRequest(f"V2 inputs feeding table columns must have the same first dimension, got {sorted(rows)}")
    columns = {}
    for item in inputs:
        if _rows_of_lists(item.shape):
            columns[item.name] = object_column(_as_list(_nested(item)))  # one list per row, for Array columns
        elif isinstance(item.data, np.ndarray):
            columns[item.name] = item.data  # typed: enforced by the same exact rule as JSON's values
        else:
            columns[item.name] = object_column(item.data)
    return Table(columns, rows.pop())


def _nested(item: InputTensor) -> Any:
    """The flat values in the declared shape: a typed array for binary/gRPC, nested lists for JSON."""
    if isinstance(item.data, np.ndarray):
        return item.data.reshape(item.shape)
    if not item.shape:
        return item.data[0]
    array = np.empty(len(item.data), dtype=object)
    array[:] = item.data
    return array.reshape(item.shape).tolist()


def _as_list(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


# --------------------------------------------------------------------------- encoding


def output_tensors(predictions: Any, default_name: str, wanted: list[str] | None) -> list[OutputTensor]:
    """A DataFrame gives one output per column, a dict one per key, anything else one output
    named `default_name`; `wanted` keeps the named ones (all: None) and refuses unknown names."""
    outputs = [_output(name, values) for name, values in _named_outputs(predictions, default_name)]
    if wanted is None:
        return outputs
    known = {output.name for output in outputs}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise BadRequest(f"Requested outputs {shown(unknown)} are not among the model's outputs {sorted(known)}")
    return [output for output in outputs if output.name in wanted]


def output_name(outputs: Schema | None) -> str:
    """A single unnamed output takes the name of the signature's one output, else `predict`."""
    if outputs is not None and len(outputs.inputs) == 1 and outputs.inputs[0].name:
        return str(outputs.inputs[0].name)
    return DEFAULT_OUTPUT


def datatype_of(dtype: np.dtype) -> str:
    if dtype.kind in _KIND_DATATYPES:
        return _KIND_DATATYPES[dtype.kind]
    if dtype.kind == "f":
        return f"FP{dtype.itemsize * 8}"
    if dtype.kind in "iu":
        return f"{'U' if dtype.kind == 'u' else ''}INT{dtype.itemsize * 8}"
    return "BYTES"


def _named_outputs(predictions: Any, default_name: str) -> list[tuple[str, Any]]:
    if isinstance(predictions, pd.DataFrame):
        return [(str(label), predictions[label].to_numpy()) for label in predictions.columns]
    if isinstance(predictions, pd.Series):
        return [(str(predictions.name) if predictions.name is not None else default_name, predictions.to_numpy())]
    if isinstance(predictions, Mapping):
        return [(str(key), value) for key, value in predictions.items()]
    return [(default_name, predictions)]


def _output(name: str, values: Any) -> OutputTensor:
    array = values if isinstance(values, np.ndarray) else _array(values)
    shape = tuple(int(d) for d in array.shape)
    flat = array.ravel()
    if flat.dtype.kind == "M":
        text = np.empty(len(flat), dtype=object)
        text[:] = [None if np.isnat(v) else str(np.datetime_as_string(v)) for v in flat]
        return OutputTensor(name, shape, "BYTES", text)
    datatype = datatype_of(flat.dtype)
    if flat.dtype.kind == "O":
        datatype, flat = _object_numbers(flat)
    elif datatype == "BYTES":
        flat = flat.astype(object)
    elif not flat.dtype.isnative:
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return OutputTensor(name, shape, datatype, flat)


def _array(values: Any) -> np.ndarray:
    try:
        return np.asarray(values)
    except ValueError:  # ragged lists
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array


def _object_numbers(flat: np.ndarray) -> tuple[str, np.ndarray]:
    """Object arrays of plain numbers (e.g. from a list with None) are still numbers; missing
    values (None, NaN, pd.NA) make them FP64, whose NaN holds a missing value in every encoding."""
    missing = pd.isna(flat)
    kind = infer_dtype(flat[~missing], skipna=False)
    if kind in ("integer", "boolean") and not missing.any():
        datatype = "INT64" if kind == "integer" else "BOOL"
    elif kind in ("integer", "boolean", "floating", "mixed-integer-float"):
        datatype = "FP64"
    else:
        return "BYTES", flat
    try:
        return datatype, np.where(missing, np.nan, flat).astype(DATATYPES[datatype]) if datatype == "FP64" \
            else flat.astype(DATATYPES[datatype])
    except (OverflowError, TypeError, ValueError):  # integers beyond int64
        return "BYTES", flat


def json_data(tensor: OutputTensor) -> list[Any]:
    """The tensor's values as JSON: NaN as null, bytes as base64, as on `/invocations`."""
    flat = tensor.array
    if flat.dtype.kind == "f":
        return np.where(np.isnan(flat), None, flat.astype(np.float64)).tolist()  # type: ignore[call-overload]
    if flat.dtype.kind in "biuU":
        return flat.tolist()
    return [_cell(v) for v in flat]


def _cell(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def bytes_elements(tensor: OutputTensor) -> list[bytes]:
    """A BYTES tensor's elements as raw bytes: text as UTF-8, bytes as they are, a missing value
    empty, anything else as its JSON text."""
    return [_element_bytes(v) for v in tensor.array]


def _element_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    cell = _cell(value)
    if cell is None:
        return b""
    return cell.encode("utf-8") if isinstance(cell, str) else encode_json(cell)


def raw_bytes(tensor: OutputTensor) -> bytes:
    """The tensor as the binary extension and gRPC's `raw_output_contents` carry it: little-endian,
    row-major, BOOL one byte each, each BYTES element after its 4-byte little-endian length."""
    if tensor.datatype == "BYTES":
        elements = bytes_elements(tensor)
        lengths = np.fromiter(map(len, elements), dtype="<u4", count=len(elements))
        return b"".join(part for length, element in zip(lengths, elements)
                        for part in (length.tobytes(), element))
    dtype = DATATYPES[tensor.datatype]
    return np.ascontiguousarray(tensor.array, dtype=dtype.newbyteorder("<")).tobytes()


def raw_array(datatype: str, shape: tuple[int, ...], raw: bytes | memoryview, name: str) -> np.ndarray:
    """A tensor's raw bytes (binary extension, gRPC `raw_input_contents`) as its flat array:
    numbers zero-copy over the buffer, BYTES split at their length prefixes. Sizes that do not
    fit the shape are refused, naming the input."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(raw, count, name)
    dtype = DATATYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise BadRequest(
            f"V2 input {shown(name)}: {len(raw)} bytes of {datatype} data do not fit shape {list(shape)}, "
            f"which holds {count} values of {dtype.itemsize} bytes ({count * dtype.itemsize} bytes)"
        )
    if datatype == "BOOL":
        flags = np.frombuffer(raw, dtype=np.uint8)
        if flags.size and flags.max() > 1:
            raise BadRequest(f"V2 input {shown(name)}: BOOL bytes must be 0 or 1, found {int(flags.max())}")
        return flags.view(np.bool_)
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<"))


def _bytes_elements(raw: bytes | memoryview, count: int, name: str) -> np.ndarray:
    if count * 4 > len(raw):
        raise BadRequest(
            f"V2 input {shown(name)}: {len(raw)} bytes cannot hold {count} BYTES elements (each needs a 4-byte length)"
        )
    data = bytes(raw)
    unpack = _BYTES_LENGTH.unpack_from
    elements: list[bytes] = [b""] * count
    offset, end = 0, len(data)
    for i in range(count):
        if offset + 4 > end:
            raise BadRequest(f"V2 input {shown(name)}: BYTES element {i} has no 4-byte length: "
                             f"the data ends at byte {end}")
        (length,) = unpack(data, offset)
        offset += 4
        if offset + length > end:
            raise BadRequest(
                f"V2 input {shown(name)}: BYTES element {i} of {length} bytes runs past the end of its data "
                f"({end} bytes)"
            )
        elements[i] = data[offset:offset + length]
        offset += length
    if offset != end:
        raise BadRequest(f"V2 input {shown(name)}: {end - offset} bytes are left after its {count} BYTES elements")
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array
