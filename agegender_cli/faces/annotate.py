"""Draw face boxes with labels on an image; write annotated images and videos atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import atomic_write_bytes
from agegender_cli.ownership import with_mark

Box = tuple[int, int, int, int]
BOX_COLOR = (0, 200, 0)  # BGR
TEXT_COLOR = (0, 0, 0)


def draw_annotations(
    image: np.ndarray, faces: Sequence[tuple[Box, Sequence[str]]], *, color: tuple[int, int, int] = BOX_COLOR
) -> np.ndarray:
    """A copy of the image with each face box and its label lines on a filled background."""
    import cv2

    out = image.copy()
    style = _Style.for_image(out.shape)
    for box, _lines in faces:
        cv2.rectangle(out, box[:2], box[2:], color, style.thickness, cv2.LINE_AA)
    for box, lines in faces:  # labels after all boxes so no box line crosses a label
        if lines:
            _draw_label(out, box, list(lines), color, style)
    return out


def draw_records(image: np.ndarray, records: Sequence[dict], archs: Sequence[str] | None = None) -> np.ndarray:
    """A copy of the image with the face records' boxes and, for each, a line per architecture (those named, or
    every answer a record holds); records without a face (no face found, an error) draw nothing."""
    labelled = []
    for record in records:
        if record.get("face") is None or not record.get("box"):
            continue
        names = archs if archs is not None else [k for k, v in record.items() if isinstance(v, dict) and "gender" in v]
        lines = [f"{a}: {record[a]['gender']} {record[a]['gender_prob']:.0%}, {record[a]['age']}" for a in names]
        box = tuple(int(v) for v in record["box"])
        if len(box) != 4:
            raise ValueError(f"box {record['box']!r}: give x1, y1, x2, y2")
        labelled.append((box, lines))
    return draw_annotations(image, labelled)


class _Style:
    def __init__(self, scale: float, thickness: int) -> None:
        self.scale = scale
        self.thickness = thickness

    @classmethod
    def for_image(cls, shape: tuple[int, ...]) -> _Style:
        # Text readable on a phone photo and not huge on a thumbnail: scale with the short side.
        short = min(shape[:2])
        scale = float(np.clip(short / 900, 0.4, 2.0))
        return cls(scale, max(1, round(scale * 2)))


def _draw_label(image: np.ndarray, box: Box, lines: list[str], color, style: _Style) -> None:
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, style.scale, style.thickness)[0] for line in lines]
    pad = max(2, style.thickness * 2)
    text_h = max(h for _w, h in sizes)
    line_h = text_h * 3 // 2 + pad  # room for descenders (g, y, p) below the baseline
    width = max(w for w, _h in sizes) + 2 * pad
    height = line_h * len(lines) + pad
    x, y = _label_origin(box, width, height, image.shape)
    cv2.rectangle(image, (x, y), (x + width, y + height), color, cv2.FILLED)
    for i, line in enumerate(lines):
        origin = (x + pad, y + pad + i * line_h + text_h)
        cv2.putText(image, line, origin, font, style.scale, TEXT_COLOR, style.thickness, cv2.LINE_AA)


def _label_origin(box: Box, width: int, height: int, shape: tuple[int, ...]) -> tuple[int, int]:
    img_h, img_w = shape[:2]
    x = min(max(0, box[0]), max(0, img_w - width))
    above = box[1] - height
    y = above if above >= 0 else min(box[3], max(0, img_h - height))  # below the box if no room above
    return x, y


def write_image_atomic(path: str | os.PathLike[str], image: np.ndarray, *, jpeg_quality: int = 90) -> None:
    """Encode by the file extension and replace `path` in one step (never a half-written file)."""
    import cv2

    target = Path(path)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if target.suffix.lower() in {".jpg", ".jpeg"} else []
    try:
        ok, data = cv2.imencode(target.suffix, image, params)
    except cv2.error:
        ok = False
    if not ok:
        raise AgeGenderError(f"cannot write {target}: use an image extension such as .jpg or .png")
    try:
        atomic_write_bytes(target, with_mark(data.tobytes(), target.suffix))
    except OSError as exc:
        raise AgeGenderError(f"cannot write {target}: {exc.strerror or exc}") from exc


# The codec of an annotated video by its container: the family of the input's, so any player of it plays ours.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}
FALLBACK_FPS = 25.0  # a video whose header gives no frame rate


class AnnotatedVideos:
    """Annotated frames written as videos, one per input video at the sampled rate (fps / every): each into a
    temp file beside its target, renamed into place when the video's last frame is in (never half a video)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.source: str | None = None
        self._writer = None
        self._tmp: Path | None = None
        self._target: Path | None = None
        self.written: list[Path] = []

    def write(self, source: str, target: Callable[[], Path], fps: float | None, image: np.ndarray) -> None:
        """Add a frame of `source`; `target` names the output the first time a video's frame arrives."""
        if source != self.source:
            self.close()
            self._open(source, target(), fps, image.shape)
        self._writer.write(image)

    def _open(self, source: str, target: Path, fps: float | None, shape: tuple[int, ...]) -> None:
        import cv2

        codec = VIDEO_CODECS.get(target.suffix.lower())
        if codec is None:
            codec, target = "MJPG", target.with_suffix(".avi")
        target.parent.mkdir(parents=True, exist_ok=True)
        # OpenCV picks the container by the suffix, so the temp name keeps it
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
        rate = (fps if fps and fps > 0 else FALLBACK_FPS) / self.every
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), rate, (shape[1], shape[0]))
        if not writer.isOpened():
            tmp.unlink(missing_ok=True)
            raise AgeGenderError(f"cannot write {target}: OpenCV cannot encode {codec} video there")
        self.source, self._writer, self._tmp, self._target = source, writer, tmp, target

    def close(self, ok: bool = True) -> None:
        """Finish the open video: into place (ok), or removed."""
        if self._writer is None:
            return
        self._writer.release()
        if ok:
            os.replace(self._tmp, self._target)
            self.written.append(self._target)
        else:
            self._tmp.unlink(missing_ok=True)
        self.source = self._writer = self._tmp = self._target = None
