"""Training-set fingerprints: 64-bit hashes of decoded pixels, kept beside a model, matched at evaluation."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

FINGERPRINTS_NAME = "train_fingerprints.npy"  # inside a model folder; beside a model file: STEM.train_fingerprints.npy


def image_hash(image: np.ndarray) -> int:
    """The 64-bit hash of a decoded image's pixels and shape: equal for the same pixels whatever the file's name,
    folder or container (PNG, a JPEG copied byte for byte), different after any change of a pixel."""
    digest = hashlib.blake2b(repr((image.shape, image.dtype.str)).encode(), digest_size=8)
    digest.update(np.ascontiguousarray(image).data)
    return int.from_bytes(digest.digest(), "little")


def fingerprint_file(model: Path) -> Path:
    """Where the fingerprints of the model at `model` (a folder or a file) are kept."""
    model = Path(model)
    return model / FINGERPRINTS_NAME if model.is_dir() else model.with_name(f"{model.stem}.{FINGERPRINTS_NAME}")


def hash_images(paths: Sequence[Path], progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The sorted, distinct hashes of the images at `paths` (unreadable files are left out)."""
    from agegender_cli.faces.batches import iter_image_batches

    hashes: list[int] = []
    for batch in iter_image_batches(list(paths), 256):
        hashes += [image_hash(image) for image in batch.images]
        if progress is not None:
            progress(len(batch.indices) + len(batch.failed))
    return np.unique(np.array(hashes, np.uint64))


def write_fingerprints(hashes: np.ndarray, model: Path) -> Path:
    """Store sorted uint64 hashes beside `model` (atomically); returns the file."""
    from agegender_cli.fileio import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, np.unique(np.asarray(hashes, np.uint64)), allow_pickle=False)
    target = fingerprint_file(model)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def read_fingerprints(model: Path) -> np.ndarray | None:
    """The training-set hashes stored beside `model`, or None when it has none (or they cannot be read)."""
    path = fingerprint_file(model)
    if not path.is_file():
        return None
    try:
        hashes = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return hashes if hashes.dtype == np.uint64 and hashes.ndim == 1 else None


def count_overlap(hashes: Iterable[int], fingerprints: np.ndarray) -> int:
    """How many of `hashes` are among the (sorted) fingerprints."""
    wanted = np.fromiter(hashes, np.uint64)
    if not len(wanted) or not len(fingerprints):
        return 0
    at = np.searchsorted(fingerprints, wanted).clip(0, len(fingerprints) - 1)
    return int(np.count_nonzero(fingerprints[at] == wanted))
