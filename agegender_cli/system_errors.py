"""What the system refused, in words a user can act on: a full disk, a memory or address-space limit."""

from __future__ import annotations

import errno
import re
import resource
import shutil
from pathlib import Path

MEMORY_HINT = "try a smaller --batch-size or fewer --workers"
_ASKED = re.compile(r"(?:allocate (\d+) bytes|buffer of size (\d+))")
_DISK_FULL = ("no space left on device", "file write failed", "disk quota exceeded")
_NO_MAPPING = ("failed to map segment", "cannot allocate memory", "can't allocate memory", "bad_alloc",
               "failed to allocate memory")
# Measured: `predict --arch both` on one photo (2 cores) runs under `ulimit -v 5000000` and fails under 4000000;
# more threads reserve more (arenas, stacks)
ADDRESS_SPACE_NEED = 5 * 1024**3


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def address_space_limit() -> str:
    """The process's address-space limit (ulimit -v) in words."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return "none" if soft == resource.RLIM_INFINITY else f"{_size(soft)} (ulimit -v {soft // 1024})"


def address_space_warning() -> str | None:
    """A line to print before loading models where the address-space limit is below what they are measured to
    need (a limit that low can end the process inside a library, past any error message)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft >= ADDRESS_SPACE_NEED:
        return None
    return (f"warning: the address-space limit is {address_space_limit()}; loading the models is measured to need "
            f"about {_size(ADDRESS_SPACE_NEED)}: raise it (ulimit -v) if loading fails")


def _refusal(exc: BaseException) -> tuple[str, BaseException] | None:
    """("disk" or "memory", the link of the exception's chain that says so), the first such link; else None."""
    for link in _chain(exc):
        text = str(link).lower()
        if (isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT)) or any(
                words in text for words in _DISK_FULL):
            return "disk", link
        if isinstance(link, MemoryError) or any(words in text for words in _NO_MAPPING):
            return "memory", link
    return None


def disk_full(exc: BaseException) -> bool:
    """Whether the system refused a write for want of disk space (torch.save says so with a RuntimeError)."""
    found = _refusal(exc)
    return found is not None and found[0] == "disk"


def explain(exc: BaseException, where: str | Path | None = None) -> str | None:
    """One line naming the cause and what to do, for a full disk or memory refused; None for anything else.
    `where`: the file being written, when the error does not name it."""
    found = _refusal(exc)
    if found is None:
        return None
    kind, link = found
    if kind == "disk":
        named = getattr(link, "filename", None)
        folder = Path(named or where or Path.cwd() / "-").parent
        try:
            free = f" ({_size(shutil.disk_usage(folder).free)} free on {folder})"
        except OSError:
            free = ""
        writing = f" writing {named}" if named else ""
        return (f"the disk is full{writing}{free}; free some space or write to another disk; nothing "
                "half-written was kept")
    asked = _ASKED.search(str(link).lower())
    what = f" asked for {_size(int(asked.group(1) or asked.group(2)))};" if asked else ""
    return (f"out of memory:{what} the address-space limit is {address_space_limit()}; raise the limit "
            f"(ulimit -v) or {MEMORY_HINT}")
