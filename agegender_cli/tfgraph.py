"""Read a frozen TensorFlow GraphDef (.pb) from its protobuf wire format, without TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# TensorFlow DataType enum -> numpy dtype (the ones frozen weights use).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    19: np.dtype("<f2"),  # DT_HALF (half_val holds the raw 16-bit patterns)
}
# TensorProto repeated value fields: float_val=5, double_val=6, int_val=7, int64_val=10,
# bool_val=11, half_val=13; the letter says how a packed run is decoded.
_VALUE_FIELDS = {5: "f", 6: "d", 7: "v", 10: "v", 11: "v", 13: "v"}


class GraphParseError(ValueError):
    """The bytes are not a GraphDef this parser understands."""


@dataclass(frozen=True)
class Node:
    """One NodeDef: name, op type, inputs and decoded attributes."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise GraphParseError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise GraphParseError("varint too long")


def _signed(value: int) -> int:
    """Reinterpret a 64-bit varint as two's complement (negative int32/int64 values)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field of one message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise GraphParseError(f"unsupported wire type {wire}")
        if pos > end:
            raise GraphParseError("truncated field")
        yield number, wire, value


def _packed_varints(buf: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append(_signed(value))
    return out


def _repeated(wire: int, value: int | memoryview, kind: str) -> list:
    """Values of one repeated numeric field, packed (wire 2) or one at a time."""
    if wire == 0:
        return [_signed(value)]
    if wire == 5:
        return np.frombuffer(value, dtype="<f4").tolist()
    if wire == 1:
        return np.frombuffer(value, dtype="<f8").tolist()
    if kind in "fd":
        return np.frombuffer(value, dtype="<f4" if kind == "f" else "<f8").tolist()
    return _packed_varints(value)


def parse_shape(buf: memoryview) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2, Dim.size = 1 (-1 for unknown)."""
    dims = []
    for number, _, value in iter_fields(buf):
        if number == 2:
            size = next((v for n, _, v in iter_fields(value) if n == 1), 0)
            dims.append(_signed(size))
    return tuple(dims)


def _fill(values: list, shape: tuple[int, ...], dtype: np.dtype, dtype_id: int) -> np.ndarray:
    """Build a tensor from *_val fields; TF repeats the last value to fill the shape."""
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.array(values, dtype=np.uint16 if dtype_id == 19 else dtype)
    flat = flat.view(np.float16) if dtype_id == 19 else flat
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 0:
        return np.zeros(shape, dtype=dtype)
    if flat.size < count:
        return np.concatenate([flat, np.full(count - flat.size, flat[-1], dtype)]).reshape(shape)
    raise GraphParseError(f"tensor has {flat.size} values for shape {shape}")


def parse_tensor(buf: memoryview) -> np.ndarray:
    """Decode a TensorProto (dtype=1, tensor_shape=2, tensor_content=4, *_val) into numpy."""
    dtype_id, shape, content, values = 0, (), None, []
    for number, wire, value in iter_fields(buf):
        if number == 1:
            dtype_id = value
        elif number == 2:
            shape = parse_shape(value)
        elif number == 4:
            content = value
        elif number in _VALUE_FIELDS:
            values.extend(_repeated(wire, value, _VALUE_FIELDS[number]))
    if dtype_id not in _DTYPES:
        raise GraphParseError(f"unsupported tensor dtype {dtype_id}")
    dtype = _DTYPES[dtype_id]
    if content is not None:
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    return _fill(values, shape, dtype, dtype_id)


def _parse_list(buf: memoryview) -> list:
    """AttrValue.ListValue: s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8."""
    out: list = []
    for number, wire, value in iter_fields(buf):
        if number == 2:
            out.append(bytes(value).decode("utf-8", "replace"))
        elif number in (3, 5, 6):
            out.extend(_repeated(wire, value, "v"))
        elif number == 4:
            out.extend(_repeated(wire, value, "f"))
        elif number == 7:
            out.append(parse_shape(value))
        elif number == 8:
            out.append(parse_tensor(value))
    return out


def parse_attr(buf: memoryview) -> Any:
    """AttrValue: list=1, s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8 (others: None)."""
    for number, wire, value in iter_fields(buf):
        if number == 1:
            return _parse_list(value)
        if number == 2:
            return bytes(value).decode("utf-8", "replace")
        if number in (3, 6):
            return _signed(value)
        if number == 4:
            return float(np.frombuffer(value, dtype="<f4")[0]) if wire == 5 else None
        if number == 5:
            return bool(value)
        if number == 7:
            return parse_shape(value)
        if number == 8:
            return parse_tensor(value)
    return None


def parse_node(buf: memoryview) -> Node:
    """NodeDef: name=1, op=2, input=3, attr=5 (map entries key=1, value=2)."""
    name = op = ""
    inputs: list[str] = []
    attrs: dict[str, Any] = {}
    for number, _, value in iter_fields(buf):
        if number == 1:
            name = bytes(value).decode()
        elif number == 2:
            op = bytes(value).decode()
        elif number == 3:
            inputs.append(bytes(value).decode())
        elif number == 5:
            entry = {n: v for n, _, v in iter_fields(value)}
            attrs[bytes(entry.get(1, b"")).decode()] = parse_attr(entry[2]) if 2 in entry else None
    return Node(name, op, tuple(inputs), attrs)


def parse_graph(data: bytes) -> list[Node]:
    """Every node (GraphDef.node = 1) of a serialized GraphDef, in file order."""
    return [parse_node(value) for number, wire, value in iter_fields(memoryview(data)) if number == 1 and wire == 2]


def read_graph(path: Path | str) -> list[Node]:
    """Every node of the frozen GraphDef file at `path`."""
    return parse_graph(Path(path).read_bytes())


def constants(nodes: list[Node]) -> dict[str, np.ndarray]:
    """The `value` tensor of every Const node, by node name."""
    return {n.name: n.attrs["value"] for n in nodes if n.op == "Const" and "value" in n.attrs}


def read_constants(path: Path | str) -> dict[str, np.ndarray]:
    """Every Const tensor of the frozen GraphDef file at `path`, by node name."""
    return constants(read_graph(path))
