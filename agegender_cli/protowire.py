"""Protocol Buffers wire format, read without protobuf: fields, varints and packed runs, bounds-checked."""

from __future__ import annotations

from collections.abc import Iterator


class WireFormatError(ValueError):
    """The bytes are not a message this reader understands (truncated, a bad wire type, an overlong varint)."""


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; return (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7
        if shift > 63:
            raise WireFormatError("varint too long")


def signed(value: int) -> int:
    """Reinterpret a 64-bit varint as two's complement (negative int32/int64 values)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) for each field of one message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise WireFormatError(f"unsupported wire type {wire}")
        if pos > end:
            raise WireFormatError("truncated field")
        yield number, wire, value


def iter_varints(buf: memoryview) -> Iterator[int]:
    """Every varint of a packed run, as signed 64-bit values."""
    pos = 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        yield signed(value)
