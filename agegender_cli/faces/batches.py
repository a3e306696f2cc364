"""Decode image files in worker threads, ahead of the model, in bounded batches."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ImageBatch:
    """Images that decoded (with their indices into the input) and the ones that failed."""

    indices: list[int]
    images: list[np.ndarray]
    failed: list[tuple[int, str]]


def _decode(path: Path) -> np.ndarray | str:
    from agegender_cli.faces.inputs import read_image
    from agegender_cli.fileio import display

    image, error = read_image(str(path))
    return image if image is not None else f"{display(path)}: {error}"


def _decode_batch(paths: Sequence[Path], start: int) -> ImageBatch:
    batch = ImageBatch([], [], [])
    for offset, path in enumerate(paths):
        result = _decode(path)
        if isinstance(result, str):
            batch.failed.append((start + offset, result))
        else:
            batch.indices.append(start + offset)
            batch.images.append(result)
    return batch


def iter_image_batches(paths: Sequence[Path], batch_size: int, workers: int = 2, ahead: int = 2
                       ) -> Iterator[ImageBatch]:
    """Batches in input order; at most `ahead` batches wait decoded, so memory stays flat."""
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        starts = iter(range(0, len(paths), batch_size))
        for start in starts:
            pending.append(pool.submit(_decode_batch, paths[start:start + batch_size], start))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
