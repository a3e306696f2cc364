"""Bounded, all-or-nothing extraction of dataset archives (.zip, .tar, .tar.gz/.bz2/.xz)."""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import BinaryIO

from agegender_cli.config import Limits
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display
from agegender_cli.limits import current_limits, raise_hint

CHUNK = 1 << 20
MARKER = ".agegender-extracted"  # a folder, not a file: the dataset scan lists files only
RATIO_FLOOR = 1 << 20  # below this many bytes a high compression ratio costs nothing; not checked
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# What a damaged archive raises while it is read (gzip.BadGzipFile and bz2 errors are OSErrors without errno).
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
            RuntimeError, ValueError)


class _Budget:
    """Counts members and bytes of one archive against the limits."""

    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive, self.limits = archive, limits
        self.size = max(archive.stat().st_size, 1)
        self.members = 0
        self.declared = 0
        self.written = 0

    def count(self, n: int = 1) -> None:
        """Admit `n` more members."""
        self.members += n
        if self.members > self.limits.archive_max_members:
            self._refuse(f"more than {self.limits.archive_max_members:,} members", "archive_max_members")

    def declare(self, n_bytes: int) -> None:
        """Admit a member whose header announces `n_bytes`, before reading it."""
        self.declared += n_bytes
        self._check(self.declared)

    def add(self, n_bytes: int) -> None:
        """Admit `n_bytes` actually written (headers can lie)."""
        self.written += n_bytes
        self._check(self.written)

    def member_ratio(self, name: str, size: int, compressed: int) -> None:
        """Refuse one member that expands suspiciously (zip gives each member's compressed size)."""
        if size > RATIO_FLOOR and size > self.limits.archive_max_ratio * max(compressed, 1):
            self._refuse(f"member '{display(name)}' expands {size / max(compressed, 1):,.0f} times its compressed size"
                         f" (more than {self.limits.archive_max_ratio:g}, a likely zip bomb)", "archive_max_ratio")

    def _check(self, total: int) -> None:
        if total > self.limits.archive_max_bytes:
            self._refuse(f"uncompressed size would exceed {_size(self.limits.archive_max_bytes)}",
                         "archive_max_bytes")
        if total > RATIO_FLOOR and total > self.limits.archive_max_ratio * self.size:
            self._refuse(f"expands more than {self.limits.archive_max_ratio:g} times its size of"
                         f" {_size(self.size)}, a likely zip bomb", "archive_max_ratio")

    def _refuse(self, what: str, field: str) -> None:
        raise AgeGenderError(f"{display(self.archive)}: {what} ({field}); {raise_hint(field)}")


def _size(n_bytes: float) -> str:
    if n_bytes < 1024:
        return f"{int(n_bytes)} B"
    for unit in ("KiB", "MiB", "GiB"):
        n_bytes /= 1024
        if n_bytes < 1024 or unit == "GiB":
            break
    return f"{n_bytes:.1f} {unit}"


def extract_archive(archive: Path, target: Path, limits: Limits | None = None) -> Path:
    """Extract `archive` into `target` within the limits, all or nothing: members go to a hidden folder beside
    `target`, which replaces `target` (an earlier extraction only) once every member is written."""
    extract = _extractor(archive)
    limits = limits or current_limits()
    try:
        _extract_into(archive, Path(os.path.abspath(target)), extract, limits)
    except OSError as exc:
        raise AgeGenderError(_os_error_line(archive, exc)) from exc
    except _CORRUPT as exc:
        raise AgeGenderError(_corrupt_line(archive, exc)) from exc
    return target


def prune_extractions(folder: Path, targets: Collection[Path]) -> None:
    """Before several archives are extracted into subfolders of `folder`: remove what an earlier run extracted
    there and this run will not replace (a single archive's files, other sources' folders), so no stale image
    stays on disk. Only folders this tool made are removed."""
    folder = Path(os.path.abspath(folder))
    if folder.is_symlink() or not folder.is_dir() or not _is_ours(folder):
        return
    if (folder / MARKER).is_dir():  # one archive was extracted here whole
        shutil.rmtree(folder)
        return
    keep = {Path(os.path.abspath(t)) for t in targets}
    for entry in folder.iterdir():
        if entry not in keep:
            shutil.rmtree(entry)


def _extract_into(archive: Path, target: Path, extract: Callable[[Path, Path, _Budget], None], limits: Limits
                  ) -> None:
    if _is_within(target, archive):
        raise AgeGenderError(f"{display(archive)}: lies inside {display(target)}, the folder it would be"
                             " extracted to; move it")
    _check_replaceable(archive, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        os.chmod(partial, 0o777 & ~_umask())  # mkdtemp makes 0700; give what a plain mkdir would
        (partial / MARKER).mkdir()
        extract(archive, partial, _Budget(archive, limits))
        _swap_in(archive, partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _extractor(archive: Path) -> Callable[[Path, Path, _Budget], None]:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return _extract_zip
    if name.endswith(TAR_SUFFIXES):
        return _extract_tar
    raise AgeGenderError(f"{display(archive)}: unsupported archive; give a folder, .tar.gz or .zip")


def _is_within(root: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _is_ours(folder: Path) -> bool:
    """A folder this tool may delete: an earlier extraction, an empty folder, or one holding only extractions
    (the parent of several sources' folders)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    if (folder / MARKER).is_dir():
        return True
    return all(entry.is_dir() and not entry.is_symlink() and (entry / MARKER).is_dir() for entry in folder.iterdir())


def _check_replaceable(archive: Path, target: Path) -> None:
    if (target.exists() or target.is_symlink()) and not _is_ours(target):
        raise AgeGenderError(f"{display(archive)}: cannot extract into {display(target)}: it exists and was"
                             " not made by `agegender dataset`; move it away or choose another --out")


def _swap_in(archive: Path, partial: Path, target: Path) -> None:
    """Rename `partial` to `target`; an earlier extraction there is renamed away first, then deleted."""
    if not (target.exists() or target.is_symlink()):
        os.rename(partial, target)
        return
    _check_replaceable(archive, target)
    graveyard = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, graveyard / target.name)
    try:
        os.rename(partial, target)
    except BaseException:
        os.rename(graveyard / target.name, target)
        graveyard.rmdir()
        raise
    shutil.rmtree(graveyard, ignore_errors=True)


def _check_member(archive: Path, root: Path, member: str) -> Path:
    destination = root / member
    if Path(member).is_absolute() or not _is_within(root, destination):
        raise AgeGenderError(f"{display(archive)}: member '{display(member)}' would escape the target folder;"
                             " refusing it")
    return destination


def _refuse_member(archive: Path, member: str, what: str) -> None:
    raise AgeGenderError(f"{display(archive)}: member '{display(member)}' is {what}; refusing the archive")


def _extract_zip(archive: Path, root: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        budget.count(len(infos))
        for info in infos:
            budget.declare(info.file_size)  # the central directory's sizes, all before writing anything
        for info in infos:
            destination = _check_member(archive, root, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # unix mode bits, when the zip was made on unix
            if kind == stat.S_IFLNK:
                _refuse_member(archive, info.filename, "a link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                _refuse_member(archive, info.filename, "a device, FIFO or socket")
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            budget.member_ratio(info.filename, info.file_size, info.compress_size)
            with zf.open(info) as source:
                _stream(archive, info.filename, source, destination, info.file_size, budget)


def _extract_tar(archive: Path, root: Path, budget: _Budget) -> None:
    # Iterating reads members in order (no backward seek); the data after the last member is read too, so
    # that gzip, bz2 and xz check their length and CRC, which is how a truncated .tar.gz shows.
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            budget.count()
            destination = _check_member(archive, root, member.name)
            if member.issym() or member.islnk():
                _refuse_member(archive, member.name, "a link")
            if member.isdir():
                destination.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                budget.declare(member.size)
                source = tf.extractfile(member)
                if source is None:  # pragma: no cover - isfile() members always have data
                    _refuse_member(archive, member.name, "unreadable")
                _stream(archive, member.name, source, destination, member.size, budget)
            else:
                _refuse_member(archive, member.name, "a device, FIFO or other special file")
        while block := tf.fileobj.read(CHUNK):
            budget.add(len(block))


def _stream(archive: Path, name: str, source: BinaryIO, destination: Path, declared: int, budget: _Budget) -> None:
    """Copy one member in chunks, counting real bytes; a second member of the same name is refused."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists() or destination.is_symlink():
        _refuse_member(archive, name, "listed twice (or clashes with a folder)")
    with open(destination, "xb") as out:  # exclusive all the same: nothing is ever overwritten
        written = 0
        while block := source.read(CHUNK):
            written += len(block)
            if written > declared:
                _refuse_member(archive, name, f"larger than the {declared:,} bytes its header says")
            budget.add(len(block))
            out.write(block)


def _os_error_line(archive: Path, exc: OSError) -> str:
    if exc.errno is None:  # gzip and bz2 report damaged data as an OSError without errno
        return _corrupt_line(archive, exc)
    where = f"{display(exc.filename)}: " if exc.filename else ""
    return f"{display(archive)}: cannot extract it ({where}{exc.strerror or _one_line(exc)})"


def _corrupt_line(archive: Path, exc: BaseException) -> str:
    return f"{display(archive)}: cannot read it, corrupt or truncated ({_one_line(exc)})"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
