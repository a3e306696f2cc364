"""Expand the inputs of `agegender predict` and decode their frames ahead of the consumer."""

from __future__ import annotations

import glob
import queue
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from agegender_cli.errors import AgeGenderError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})
GLOB_CHARS = frozenset("*?[")
DECODE_ERROR = "cannot decode image: not an image or corrupt file"
VIDEO_QUEUE = 4  # decoded frames a video keeps ready ahead of the consumer


@dataclass(frozen=True)
class InputItem:
    """One image or video to read, or an input that could not be resolved (error set)."""

    path: str
    kind: str  # "image" | "video" | "error"
    error: str | None = None


@dataclass(frozen=True)
class Frame:
    """A decoded still image (index None) or video frame, or the reason it could not be decoded."""

    source: str
    index: int | None
    image: np.ndarray | None  # BGR uint8
    error: str | None = None


def expand_inputs(specs: Sequence[str], *, stdin: TextIO | None = None) -> list[InputItem]:
    """Turn files, folders (recursive), globs and "-" (paths on stdin) into items, duplicates dropped."""
    stdin = stdin if stdin is not None else sys.stdin  # looked up at call time, not import time
    items: list[InputItem] = []
    for spec in specs:
        if spec == "-":
            for line in stdin:
                if path := line.rstrip("\r\n"):
                    items.extend(_expand_path(path, explicit=True))
        else:
            items.extend(_expand_spec(spec))
    return _dedupe(items)


def _expand_spec(spec: str) -> list[InputItem]:
    if Path(spec).exists() or not GLOB_CHARS & set(spec):
        return _expand_path(spec, explicit=True)
    found = [item for match in sorted(glob.glob(spec, recursive=True)) for item in _expand_path(match, explicit=False)]
    return found or [InputItem(spec, "error", "no images or videos match this pattern")]


def _expand_path(path: str, *, explicit: bool) -> list[InputItem]:
    p = Path(path)
    if p.is_dir():
        found = [InputItem(str(f), _kind(f)) for f in _media_files(p)]
        return found or [InputItem(path, "error", "folder has no images or videos")]
    if p.is_file():
        # A file named explicitly is tried even with an unknown extension; decoding reports it.
        return [InputItem(path, _kind(p))] if explicit or _is_media(p) else []
    return [InputItem(path, "error", "no such file or folder")]


def _media_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if _is_media(f) and not _hidden(f, folder) and f.is_file())


def _hidden(path: Path, folder: Path) -> bool:
    # Skipped because macOS "._photo.jpg" companions and .thumbnails caches are not photos.
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def _kind(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def _dedupe(items: list[InputItem]) -> list[InputItem]:
    seen: set[str] = set()
    unique = []
    for item in items:
        key = item.path if item.kind == "error" else str(Path(item.path).resolve())
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def iter_frames(
    items: Iterable[InputItem], *, every: int = 1, workers: int = 2, ahead: int | None = None
) -> Iterator[Frame]:
    """Yield the frames of the items in order; `workers` threads decode up to `ahead` items early.

    Memory stays bounded: at most `ahead` items are in flight, each holding one image or up to
    VIDEO_QUEUE video frames.  Videos yield frames 0, every, 2*every, ...
    """
    if every < 1:
        raise ValueError("every must be at least 1")
    ahead = ahead or 2 * max(1, workers)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode")
    pending: deque[_Job] = deque()
    remaining = iter(items)
    try:
        while True:
            while len(pending) < ahead and (item := next(remaining, None)) is not None:
                pending.append(_start(pool, item, every, stop))
            if not pending:
                return
            yield from pending.popleft().frames()
    finally:
        stop.set()  # unblocks video readers waiting on a full queue when the consumer quits early
        pool.shutdown(wait=True, cancel_futures=True)


class _Job:
    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError


class _ImageJob(_Job):
    def __init__(self, future: Future[Frame]) -> None:
        self._future = future

    def frames(self) -> Iterator[Frame]:
        yield self._future.result()


class _ErrorJob(_Job):
    def __init__(self, item: InputItem) -> None:
        self._item = item

    def frames(self) -> Iterator[Frame]:
        yield Frame(self._item.path, None, None, self._item.error)


class _VideoJob(_Job):
    _END = object()

    def __init__(self, pool: ThreadPoolExecutor, path: str, every: int, stop: threading.Event) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=VIDEO_QUEUE)
        self._stop = stop
        self._future = pool.submit(self._run, path, every)

    def frames(self) -> Iterator[Frame]:
        while (frame := self._queue.get()) is not self._END:
            yield frame
        self._future.result()  # re-raise a bug in the reader instead of losing it

    def _run(self, path: str, every: int) -> None:
        try:
            for frame in read_video(path, every=every):
                if not self._put(frame):
                    return
        finally:
            self._put(self._END)

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _start(pool: ThreadPoolExecutor, item: InputItem, every: int, stop: threading.Event) -> _Job:
    if item.kind == "error":
        return _ErrorJob(item)
    if item.kind == "video":
        return _VideoJob(pool, item.path, every, stop)
    return _ImageJob(pool.submit(read_image_frame, item.path))


def read_image_frame(path: str) -> Frame:
    """Decode one still image as BGR uint8 (grayscale, RGBA, 16-bit converted; EXIF rotation applied)."""
    image, error = read_image(path)
    return Frame(path, None, image, error)


def read_image(path: str) -> tuple[np.ndarray | None, str | None]:
    """Decode an image file into BGR uint8, or say why not; works with non-ASCII paths."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if data.size == 0:
        return None, DECODE_ERROR
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    return (None, DECODE_ERROR) if image is None else (image, None)


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file as BGR uint8, or raise a one-line AgeGenderError naming it."""
    image, error = read_image(str(path))
    if image is None:
        raise AgeGenderError(f"{path}: {error}")
    return image


def read_video(path: str, *, every: int = 1) -> Iterator[Frame]:
    """Yield frames 0, every, 2*every, ... of a video; one error frame if it has none to give."""
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            yield Frame(path, None, None, "cannot open video: unsupported format or corrupt file")
            return
        count = yield from _video_frames(capture, path, every)
        if count == 0:
            yield Frame(path, None, None, "cannot decode video: no frames could be read")
    finally:
        capture.release()


def _video_frames(capture, path: str, every: int):
    index = count = 0
    # grab() skips a frame without the cost of converting it; retrieve() only for frames we keep.
    while capture.grab():
        if index % every == 0:
            ok, image = capture.retrieve()
            if ok and image is not None:
                count += 1
                yield Frame(path, index, image)
        index += 1
    return count
