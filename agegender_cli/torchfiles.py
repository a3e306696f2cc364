"""Files for torch.load: checked for size and kind before loading, and why a load failed in one line."""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path

# A backbone state dict is 94 MB (112 MB with the release file's logits), a facenet checkpoint a few MB, a
# caffenet training checkpoint 90 MB: torch.load is refused anything that would take more.
MAX_TORCH_FILE_BYTES = 256 << 20
# What the tool writes for itself grows with the data: a caffenet resume file holds both nets, their best
# copies and AdamW's moments (365 MB); cached trunk features are views x faces x 1792 floats.
MAX_RESUME_BYTES = 2 << 30
MAX_FEATURE_CACHE_BYTES = 32 << 30


class TorchFileError(ValueError):
    """A file torch.load must not be given (too large once unpacked, not a regular file, a damaged zip)."""


def check_torch_file(path: Path, max_bytes: int | None = None) -> None:
    """Refuse (TorchFileError) a file torch.load would read into more than MAX_TORCH_FILE_BYTES, before it tries.

    torch.load allocates each zip record at its declared size, so a tiny deflated record can ask for gigabytes.
    """
    max_bytes = MAX_TORCH_FILE_BYTES if max_bytes is None else max_bytes
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):  # a folder, a pipe or /dev/zero
        raise TorchFileError(f"{path.name} is not a regular file")
    size = info.st_size
    if size > max_bytes:
        raise TorchFileError(f"{path.name} has {size:,} bytes, above the cap of {max_bytes:,}")
    if not zipfile.is_zipfile(path):
        return  # the legacy format (or no checkpoint at all): torch.load reads no more than the file holds
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise TorchFileError(f"{path.name} is a damaged zip archive ({exc})") from exc
    if inflated > max_bytes:
        raise TorchFileError(f"{path.name} unpacks to {inflated:,} bytes, above the cap of {max_bytes:,}")


def torch_load_reason(exc: Exception) -> str:
    """One line on why torch.load failed: the global weights_only refused, else the error's first sentence."""
    text = str(exc).strip()
    refused = re.search(r"GLOBAL (\S+)", text)
    if refused:
        return f"it needs {refused.group(1)}, which weights_only loading refuses"
    first = text.splitlines()[0].split(". ")[0][:160] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def load_checked(path: Path, what: str, max_bytes: int | None = None) -> object:
    """torch.load(weights_only=True) of a file the tool wrote earlier (a cache or resume file), checked first
    (`max_bytes`: default MAX_TORCH_FILE_BYTES); a bad one is a one-line error that says to delete it."""
    import torch

    from agegender_cli.errors import AgeGenderError

    try:
        check_torch_file(path, max_bytes)
        return torch.load(path, map_location="cpu", weights_only=True)
    except TorchFileError as exc:
        raise AgeGenderError(f"{path}: not a usable {what} ({exc}); delete it") from exc
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise AgeGenderError(f"{path}: not a usable {what} ({torch_load_reason(exc)}); delete it") from exc
