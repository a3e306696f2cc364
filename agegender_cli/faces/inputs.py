"""Expand the inputs of `agegender predict` and decode their frames ahead of the consumer."""

from __future__ import annotations

import glob
import io
import os
import queue
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from agegender_cli.config import Limits
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display
from agegender_cli.limits import current_limits, raise_hint

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
    relative: str = ""  # its name for outputs: the path under the folder given, else the file name


@dataclass(frozen=True)
class Frame:
    """A decoded still image (index None) or video frame, or the reason it could not be decoded."""

    source: str | None  # None: an image given in memory (the Python API)
    index: int | None
    image: np.ndarray | None  # BGR uint8
    error: str | None = None
    fps: float | None = None  # a video's frame rate (None: a photo, or a header without one)

    @property
    def time(self) -> float | None:
        """A video frame's time in seconds (3 decimals); None for a photo or an unknown frame rate."""
        return None if self.index is None or not self.fps else round(self.index / self.fps, 3)


def expand_inputs(specs: Sequence[str], *, stdin: TextIO | None = None) -> list[InputItem]:
    """Turn files, folders (recursive), globs and "-" (paths on stdin) into items, duplicates dropped."""
    return list(InputStream(specs, stdin=stdin))


class InputStream:
    """The items of the inputs in order, duplicates dropped; paths on stdin are read by a thread and handed
    over as they arrive, so the first photo is processed before the producer of the list has finished."""

    _END = object()

    def __init__(self, specs: Sequence[str], *, stdin: TextIO | None = None) -> None:
        self.streamed = "-" in specs
        self._stdin = stdin if stdin is not None else sys.stdin  # looked up at call time, not import time
        self._queue: queue.Queue = queue.Queue()
        self._seen: set[str] = set()
        self._failure: BaseException | None = None
        self._done = False
        if self.streamed:
            threading.Thread(target=self._produce, args=(list(specs),), daemon=True, name="inputs").start()
        else:  # listing files and folders is quick: all items are known before the first is processed
            self._produce(list(specs))

    def known(self) -> list[InputItem]:
        """Every item, duplicates dropped, when none come from stdin; [] when they do (not known yet)."""
        if self.streamed:
            return []
        seen: set[str] = set()
        return [item for item in list(self._queue.queue) if item is not self._END and _first(item, seen)]

    def _produce(self, specs: list[str]) -> None:
        try:
            for spec in specs:
                if spec != "-":
                    for item in _expand_spec(spec):
                        self._queue.put(item)
                    continue
                for line in self._stdin:
                    if path := line.rstrip("\r\n"):
                        for item in _expand_path(path, explicit=True):
                            self._queue.put(item)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._failure = exc
        finally:
            self._queue.put(self._END)

    def __iter__(self) -> InputStream:
        return self

    def __next__(self) -> InputItem:
        while not self._done:
            item = self._queue.get()
            if item is self._END:
                self._done = True
                if self._failure is not None:
                    raise self._failure
                break
            if _first(item, self._seen):
                return item
        raise StopIteration

    def ready(self) -> bool:
        """Whether the next item (or the end) can be taken without waiting for stdin."""
        return self._done or not self._queue.empty()


def walk_inputs(specs: Sequence[str], *, stdin: TextIO | None = None) -> Iterator[InputItem]:
    """The items of the inputs one at a time, never listed whole (for archives of millions of photos): folders
    are walked a directory at a time (sorted within each), globs matched lazily, stdin read line by line.
    Duplicates are the caller's to drop."""
    for spec in specs:
        if spec == "-":
            for line in stdin if stdin is not None else sys.stdin:
                if path := line.rstrip("\r\n"):
                    yield from _walk_path(path, explicit=True)
        elif Path(spec).exists() or not GLOB_CHARS & set(spec):
            yield from _walk_path(spec, explicit=True)
        else:
            matched = False
            for match in glob.iglob(spec, recursive=True):
                for item in _walk_path(match, explicit=False):
                    matched = True
                    yield item
            if not matched:
                yield InputItem(spec, "error", "no images or videos match this pattern")


def _walk_path(path: str, *, explicit: bool) -> Iterator[InputItem]:
    if not os.path.isdir(path):
        yield from _expand_path(path, explicit=explicit)
        return
    found = False
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            full = os.path.join(folder, name)
            if not name.startswith(".") and _is_media(Path(name)) and os.path.isfile(full):
                found = True
                yield InputItem(full, _kind(Path(name)), relative=os.path.relpath(full, path))
    if not found:
        yield InputItem(path, "error", "folder has no images or videos")


def _first(item: InputItem, seen: set[str]) -> bool:
    """Whether `item` is met for the first time (a file named twice, or by two routes, is read once)."""
    key = item.path if item.kind == "error" else str(Path(item.path).resolve())
    if key in seen:
        return False
    seen.add(key)
    return True


def _expand_spec(spec: str) -> list[InputItem]:
    if Path(spec).exists() or not GLOB_CHARS & set(spec):
        return _expand_path(spec, explicit=True)
    found = [item for match in sorted(glob.glob(spec, recursive=True)) for item in _expand_path(match, explicit=False)]
    return found or [InputItem(spec, "error", "no images or videos match this pattern")]


def _expand_path(path: str, *, explicit: bool) -> list[InputItem]:
    p = Path(path)
    if p.is_dir():
        found = [InputItem(str(f), _kind(f), relative=str(f.relative_to(p))) for f in _media_files(p)]
        return found or [InputItem(path, "error", "folder has no images or videos")]
    if p.is_file():
        # A file named explicitly is tried even with an unknown extension; decoding reports it.
        return [InputItem(path, _kind(p), relative=p.name)] if explicit or _is_media(p) else []
    if p.exists():  # reading a FIFO or a device would wait or never end
        return [InputItem(path, "error", "not a regular file or folder (a device, pipe or socket); skipped")]
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


def iter_frames(
    items: Iterable[InputItem], *, every: int = 1, workers: int = 2, ahead: int | None = None,
    ready: Callable[[], bool] | None = None,
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
    ready = ready or getattr(items, "ready", lambda: True)  # whether taking one more item would wait
    try:
        while True:
            while len(pending) < ahead and (not pending or ready()) and (item := next(remaining, None)) is not None:
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


def read_image_frame(path: str, limits: Limits | None = None) -> Frame:
    """Decode one still image as BGR uint8 (grayscale, RGBA, 16-bit converted; EXIF rotation applied)."""
    image, error = read_image(path, limits)
    return Frame(path, None, image, error)


NOT_A_FILE = "not a regular file (a device, pipe or socket); give an image file"


def read_image(path: str, limits: Limits | None = None) -> tuple[np.ndarray | None, str | None]:
    """Decode an image file into BGR uint8, or say why not; works with non-ASCII paths. The file size and
    the pixel count in the header are checked against the limits before anything is decoded."""
    import cv2

    limits = limits or current_limits()
    try:
        # a device, pipe or socket (/dev/zero named by a manifest row) would be read without end or block open()
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None, NOT_A_FILE
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_image_bytes:
                return None, (f"file is {size / 2**20:.0f} MB, above the {limits.max_image_bytes / 2**20:.0f} MB "
                              f"limit for an image; {raise_hint('max_image_bytes')}")
            raw = handle.read(limits.max_image_bytes + 1)  # a file that grows while read stays bounded
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if len(raw) > limits.max_image_bytes:
        return None, f"file grew above the {limits.max_image_bytes / 2**20:.0f} MB limit for an image while read"
    if not raw:
        return None, DECODE_ERROR
    if (too_large := _too_many_pixels(raw, limits)) is not None:
        return None, too_large
    try:
        image = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    return (None, DECODE_ERROR) if image is None else (image, None)


def _too_many_pixels(data: bytes, limits: Limits) -> str | None:
    """Why the image is refused by its header's size (PIL reads only the header), or None."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the limit below replaces PIL's own warning/error
    try:
        with Image.open(io.BytesIO(data)) as header:  # BytesIO shares the bytes, no copy
            width, height = header.size
    except Exception:  # noqa: BLE001 - PIL raises many types on odd headers; OpenCV decides below
        return None
    return too_many_pixels(width, height, limits)


def too_many_pixels(width: int, height: int, limits: Limits | None = None) -> str | None:
    """Why an image of this size is refused (above the max_image_pixels limit), or None."""
    limits = limits or current_limits()
    if width * height <= limits.max_image_pixels:
        return None
    return (f"image is {width} x {height} = {width * height / 1e6:.0f} MP, above the "
            f"{limits.max_image_pixels / 1e6:.0f} MP limit; {raise_hint('max_image_pixels')}")


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file as BGR uint8, or raise a one-line AgeGenderError naming it."""
    image, error = read_image(str(path))
    if image is None:
        raise AgeGenderError(f"{path}: {error}")
    return image


def read_video(path: str, *, every: int = 1) -> Iterator[Frame]:
    """Yield frames 0, every, 2*every, ... of a video; one error frame if it has none to give."""
    import cv2

    if display(path) != path:  # OpenCV's string conversion crashes the process on such names
        yield Frame(path, None, None, "cannot open video: its file name is not valid UTF-8; rename the file")
        return
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            yield Frame(path, None, None, "cannot open video: unsupported format or corrupt file")
            return
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0) or None
        count, read = yield from _video_frames(capture, path, every, fps)
        if count == 0:
            yield Frame(path, None, None, "cannot decode video: no frames could be read")
        elif read < declared - max(2, declared // 100):  # a count estimated from the duration errs a little
            yield Frame(path, read, None, f"video ends early: read {read} of the {declared} frames its header "
                                          "declares (truncated or corrupt file); the frames read were used")
    finally:
        capture.release()


def expected_frames(items: Sequence[InputItem], every: int) -> int | None:
    """How many frames predict will take from the items (a photo is one), or None when a video's header
    does not say how long it is."""
    import cv2

    total = 0
    for item in items:
        if item.kind != "video":
            total += 1
            continue
        if display(item.path) != item.path:  # read_video answers such a name with one error frame
            total += 1
            continue
        capture = cv2.VideoCapture(item.path)
        try:
            opened = capture.isOpened()
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if opened else 0
        finally:
            capture.release()
        if opened and declared <= 0:
            return None
        total += -(-declared // every) if opened else 1  # a video that does not open is one error frame
    return total


def _video_frames(capture, path: str, every: int, fps: float | None):
    index = count = 0
    # grab() skips a frame without the cost of converting it; retrieve() only for frames we keep.
    while capture.grab():
        if index % every == 0:
            ok, image = capture.retrieve()
            if ok and image is not None:
                count += 1
                yield Frame(path, index, image, fps=fps)
        index += 1
    return count, index
