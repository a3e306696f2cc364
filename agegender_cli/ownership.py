"""Which existing files agegender wrote itself: only those may be replaced without --overwrite."""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display

MARK = b"written by agegender"  # in a JPEG's comment, a PNG's tEXt chunk, a figure's metadata
CSV_HEADER = "file,frame,time,face,"  # the first columns of `predict --csv`
HEAD_BYTES = 1 << 16


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(HEAD_BYTES)
    except OSError:
        return b""


def marked(path: Path) -> bool:
    """An image or figure agegender wrote: its MARK near the start."""
    head = _head(path)
    return MARK in head


def begins_with(path: Path, prefix: bytes) -> bool:
    """Whether the file starts with `prefix` (a header this tool writes); only its head is read."""
    return _head(path).startswith(prefix)


def predictions_csv(path: Path) -> bool:
    """A `predict --csv` file."""
    return begins_with(path, CSV_HEADER.encode())


def refuse_foreign(path: str | os.PathLike[str] | None, option: str, ours: Callable[[Path], bool], *,
                   overwrite: bool, why: str = "agegender did not write it") -> None:
    """A one-line error when `path` is an existing regular file that `ours` does not recognise (devices, pipes and
    stdout are written through; a file this tool wrote is replaced), unless `overwrite`; `why` words it."""
    if path is None or overwrite or str(path) == "-":
        return
    target = Path(path)
    try:
        info = target.stat()
    except OSError:
        return
    if stat.S_ISREG(info.st_mode) and not ours(target):
        raise AgeGenderError(f"{option} {display(target)}: the file exists and {why}; choose another name, or pass "
                             "--overwrite to replace it")


_REPLACE_ANY: ContextVar[bool] = ContextVar("replace_any", default=False)


@contextlib.contextmanager
def replacing(allowed: bool) -> Iterator[None]:
    """Within it, with `allowed` (a command's --overwrite), figures may replace files agegender did not write."""
    token = _REPLACE_ANY.set(allowed)
    try:
        yield
    finally:
        _REPLACE_ANY.reset(token)


def refuse_foreign_figure(path: Path) -> None:
    """Before a figure is written: a file there that agegender did not write stays, unless within replacing(True)."""
    if not _REPLACE_ANY.get() and foreign(path):
        raise AgeGenderError(f"{display(path)}: the file exists and agegender did not write it; choose another "
                             "name or folder, or pass --overwrite to replace it")


def foreign(path: Path, ours: Callable[[Path], bool] = marked) -> bool:
    """An existing file that this tool did not write (an output folder's file to keep, not replace)."""
    return path.is_file() and not ours(path)


def with_mark(data: bytes, suffix: str) -> bytes:
    """Encoded image bytes with MARK added: a JPEG comment after SOI, a PNG tEXt chunk after IHDR; other formats
    as they are."""
    kind = suffix.lower()
    if kind in (".jpg", ".jpeg") and data[:2] == b"\xff\xd8":
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(MARK) + 2) + MARK + data[2:]
    if kind == ".png" and data[:8] == b"\x89PNG\r\n\x1a\n":
        ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
        text = b"Software\0" + MARK
        chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
        return data[:ihdr_end] + chunk + data[ihdr_end:]
    return data
