"""Safe file writes (temp file + rename, or through a device), output folders, and hashing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from agegender_cli.errors import AgeGenderError

STDOUT = "-"  # an output file named "-" is standard output
# Paths whose files are the process's own streams or kernel files: an atomic rename there would
# detach the shell's redirection (/dev/stdout -> /proc/self/fd/1 -> out.txt), so they are written through.
_STREAM_ROOTS = ("/dev/", "/proc/")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def display(path: str | os.PathLike[str]) -> str:
    """A path as text that any terminal or UTF-8 file takes: bytes that are not UTF-8 appear as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class OutputFile:
    """Where one output file's bytes go: a temp file renamed over the target on commit (regular files),
    the target itself (devices, FIFOs, /dev/stdout), or standard output ("-")."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tmp: Path | None = None
        self._owned = str(path) != STDOUT
        if not self._owned:
            sys.stdout.flush()
            self.handle: BinaryIO = sys.stdout.buffer
            return
        mode, target = _target_kind(self.path)
        if mode == "through":
            try:
                self.handle = open(target, "wb")  # noqa: SIM115 - closed in commit()/discard()
            except OSError as exc:
                raise AgeGenderError(f"cannot write {display(self.path)}: {exc.strerror or exc}") from None
            return
        self.final = target
        make_folder(target.parent)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise AgeGenderError(f"cannot write {display(self.path)}: {exc.strerror or exc}") from None
        self._tmp = Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what a plain open() would
        self.handle = os.fdopen(fd, "wb")

    def commit(self) -> Path:
        """Finish: flush, and put the temp file in place of the target; on failure (a full disk) the temp file
        is removed and the target left as it was."""
        try:
            self.handle.flush()
            if self._tmp is not None:
                os.fsync(self.handle.fileno())
            if self._owned:
                self.handle.close()
            if self._tmp is not None:
                os.replace(self._tmp, self.final)
                self._tmp = None
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Give up: close, and remove the temp file (the target is left as it was)."""
        try:
            if self._owned:
                with contextlib.suppress(OSError):  # its last buffered bytes may not fit either: they are not wanted
                    self.handle.close()
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
                self._tmp = None


def _target_kind(path: Path) -> tuple[str, Path]:
    """("atomic", file to replace) for an absent or regular file, ("through", path) for a device, FIFO or
    stream; a folder, socket or dangling link is a one-line error."""
    name = display(path)
    try:
        info = path.stat()  # follows links
    except FileNotFoundError:
        if path.is_symlink():
            raise AgeGenderError(f"{name}: a link to nothing; give a file name or fix the link") from None
        return "atomic", path
    except OSError as exc:
        raise AgeGenderError(f"cannot write {name}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise AgeGenderError(f"{name}: is a folder; give a file name")
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return "through", path
    if not stat.S_ISREG(info.st_mode):
        raise AgeGenderError(f"{name}: not a regular file, device or pipe; give a file name")
    absolute = os.path.abspath(path)
    if absolute.startswith(_STREAM_ROOTS):
        return "through", path
    real = Path(os.path.realpath(path))
    if path.is_symlink() and str(real).startswith(_STREAM_ROOTS):
        return "through", path
    return "atomic", real  # a link to a regular file: the file it points to is replaced, the link stays


def check_output_file(path: str | os.PathLike[str] | None, option: str) -> None:
    """Before any work: a one-line error if `path` cannot become the output file (a folder is there, or a file
    stands where its folder should be)."""
    if path is None or str(path) == STDOUT:
        return
    try:
        _target_kind(Path(path))
    except AgeGenderError as exc:
        raise AgeGenderError(f"{option} {exc}") from None
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists():
            if not parent.is_dir():
                raise AgeGenderError(f"{option} {display(path)}: {display(parent)} is a file, not a folder")
            break


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> Path:
    """Call `write(handle)` on a temp file beside `path`, then rename it over `path` (through it for a device,
    FIFO or stream; "-" is stdout)."""
    output = OutputFile(path)
    try:
        write(output.handle)
        return output.commit()
    except (OSError, RuntimeError) as exc:  # torch.save says a full disk with a RuntimeError
        output.discard()
        from agegender_cli.system_errors import disk_full

        if isinstance(exc, OSError) or disk_full(exc):
            raise write_failed(path, exc) from None
        raise
    except BaseException:
        output.discard()
        raise


def write_failed(path: str | os.PathLike[str], exc: BaseException) -> AgeGenderError:
    """The one-line error for an output that could not be written: a full disk says so and what to do."""
    from agegender_cli.system_errors import explain

    cause = explain(exc, path) or (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
    return AgeGenderError(f"cannot write {display(path)}: {cause}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: Path) -> Path:
    import torch

    return atomic_write(path, lambda handle: torch.save(obj, handle))


def make_folder(path: str | os.PathLike[str], option: str = "") -> Path:
    """Create an output folder (and its parents) or say in one line why it cannot be one (`option`: the option
    that named it, said before its path)."""
    folder = Path(path)
    named = f"{option} {display(folder)}" if option else display(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AgeGenderError(f"{named}: a file is in the way; give a folder") from None
    except NotADirectoryError:
        raise AgeGenderError(f"{named}: a file is in the way of this folder's path") from None
    except OSError as exc:
        raise AgeGenderError(f"cannot create {named}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AgeGenderError(f"{named}: not writable; give a folder you can write to")
    return folder


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (existing or not), links resolved."""
    return os.path.realpath(a) == os.path.realpath(b)


class OutputNames:
    """File names inside an output folder that never land on an input, on an earlier output of the run, or on a
    file to `keep` (ownership.foreign: one agegender did not write): a clash gets a numbered suffix (x.jpg ->
    x-2.jpg), recorded in `renamed`."""

    def __init__(self, folder: Path, inputs: Iterable[str | os.PathLike[str]] = (),
                 keep: Callable[[Path], bool] | None = None) -> None:
        self.folder = folder
        self._keep = keep
        self._protected = {os.path.realpath(p) for p in inputs}
        self._used: set[str] = set()
        self.renamed: list[tuple[str, str]] = []

    def protect(self, path: str | os.PathLike[str]) -> None:
        """One more input (streamed ones arrive one by one)."""
        self._protected.add(os.path.realpath(path))

    def path_for(self, relative: Path) -> Path:
        """The output path for `relative` (mirrored under the folder), renamed if it would clash."""
        wanted = self.folder / relative
        candidate, number = wanted, 1
        while os.path.realpath(candidate) in self._protected | self._used or (
                self._keep is not None and self._keep(candidate)):
            number += 1
            candidate = wanted.with_name(f"{wanted.stem}-{number}{wanted.suffix}")
        self._used.add(os.path.realpath(candidate))
        if candidate != wanted:
            self.renamed.append((display(wanted), display(candidate)))
        return candidate
