"""Weight files packed on the driver and unpacked on each worker machine, so that no worker downloads anything."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from agegender_cli.cache import cache_dir
from agegender_cli.config import ModelOptions

Files = dict[str, bytes]  # relative path -> content ("" for a single file)


@dataclass(frozen=True)
class WeightLayout:
    """Which ModelOptions paths were packed, under which names; small, sent to every worker with the options."""

    digest: str  # of all packed bytes: the folder they are unpacked into on each machine
    entries: tuple[tuple[str, str], ...]  # (slot, file or folder name); slot: "model-ARCH" or "weights-NAME"


def _slots(options: ModelOptions) -> dict[str, Path]:
    """Every file or folder the options name: the models given, and the weights given by the architectures' weight
    options (ModelOptions.weights)."""
    slots = {f"model-{arch}": Path(path) for arch, path in options.models}
    slots.update({f"weights-{name}": Path(path) for name, path in options.weights})
    return slots


def _read(path: Path) -> Files:
    """A file's bytes, or every file under a folder (links followed: a cache view links to the real files)."""
    if path.is_dir():
        return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}
    return {"": path.read_bytes()}


def pack(options: ModelOptions) -> tuple[WeightLayout, dict[str, Files]]:
    """Every weight file or folder named by `options` (resolved beforehand), read into memory, and its layout."""
    packed = {slot: _read(path) for slot, path in _slots(options).items()}
    digest = hashlib.sha256()
    for slot, files in sorted(packed.items()):
        for name, data in sorted(files.items()):
            digest.update(f"{slot}\0{name}\0{len(data)}\0".encode())
            digest.update(data)
    entries = tuple((slot, path.name) for slot, path in _slots(options).items())
    return WeightLayout(digest.hexdigest(), entries), packed


def unpacked_folder(layout: WeightLayout) -> Path:
    """Where this machine keeps the files of `layout` (one copy per content, shared by its workers and runs)."""
    return cache_dir() / "shipped" / layout.digest[:32]


def unpack(layout: WeightLayout, fetch, options: ModelOptions) -> ModelOptions:
    """`options` pointing at this machine's copy of the packed files; `fetch()` returns the packed files and is
    only called when this machine has no copy yet."""
    if not layout.entries:
        return options
    target = unpacked_folder(layout)
    if not target.is_dir():
        _write_all(target, fetch(), layout)
    paths = {slot: target / slot / name for slot, name in layout.entries}
    models = tuple((arch, paths.get(f"model-{arch}", Path(path))) for arch, path in options.models)
    weights = tuple((name, paths.get(f"weights-{name}", Path(path))) for name, path in options.weights)
    return replace(options, models=models, weights=weights)


def _write_all(target: Path, packed: dict[str, Files], layout: WeightLayout) -> None:
    """Write into a temp folder and rename it into place: a worker killed half-way leaves no half copy, and two
    workers of one machine unpacking at once both end with the same complete folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for slot, name in layout.entries:
            for relative, data in packed[slot].items():
                path = staging / slot / name / relative if relative else staging / slot / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # not another worker's copy in place: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
