"""A protobuf wire-format writer for tests, independent of the project's reader and writer."""

from __future__ import annotations


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int, wire: int = 2) -> bytes:
    """One field: a varint (wire 0), fixed 8 or 4 bytes (1, 5), or length-delimited bytes (2)."""
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire in (1, 5):
        return key + payload
    return key + varint(len(payload)) + payload
