"""Training faces framed as `predict` frames faces in photos: detect, pick, align; each photo's transform cached."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agegender_cli.cache import cache_dir
from agegender_cli.data.utkface import Record
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.align import CHIP_SIDE, alignment_matrix
from agegender_cli.faces.detection import Detection, face_region
from agegender_cli.fileio import atomic_write_text
from agegender_cli.progress import SILENT, Reporter

CHIP_CACHE_VERSION = 1  # bump when detection, picking or framing changes what a photo's chip is
DETECT_BATCH = 16
SAVE_EVERY = 2000  # located faces written to the cache this often


def chip_matrix(face: Detection, shape: tuple[int, ...], side: int = CHIP_SIDE) -> np.ndarray:
    """2x3 matrix taking photo pixels to chip pixels, as face_crop frames the face: landmarks onto the template,
    a face crop taken whole resized, a face without landmarks by the measured UTKFace framing of its box."""
    if face.landmarks is not None and not face.whole:
        return alignment_matrix(face.landmarks, side).astype(np.float32)
    x1, y1, x2, y2 = face.box if face.whole else face_region(face.box, framing="utkface", shape=shape)
    sx, sy = side / max(1, x2 - x1), side / max(1, y2 - y1)
    return np.array([[sx, 0, -x1 * sx], [0, sy, -y1 * sy]], np.float32)


def _key(record: Record, pick: str) -> str:
    stat = os.stat(record.path)
    key = f"{os.path.realpath(record.path)}|{stat.st_size}|{stat.st_mtime_ns}|{record.box}"
    return key if pick == "largest" else f"{key}|{pick}"


def _cache_file(detector: str) -> Path:
    return cache_dir() / "chips" / f"{detector}-v{CHIP_CACHE_VERSION}.json"


def locate_records(records: Sequence[Record], detector: str, *, device: str = "cpu", engine: str = "auto",
                   pick: str = "largest", reporter: Reporter = SILENT) -> list[np.ndarray | None]:
    """Each record's chip matrix (None: no face found), through `detector` (auto, mtcnn or haar) as `evaluate
    --detector --pick` finds faces; cached per file (path, size, time, labelled box, pick) in the tool's cache."""
    from agegender_cli.faces.detection import make_detector
    from agegender_cli.faces.detectors import photo_search
    from agegender_cli.faces.inputs import load_image
    from agegender_cli.faces.locate import locate_faces

    if detector not in ("auto", "mtcnn", "haar"):
        raise AgeGenderError(f"--detector {detector}: training frames faces with auto, mtcnn or haar (none: as "
                             "the images are)")
    cache = _cache_file(detector)
    known = _read_cache(cache, reporter)
    keys = [_key(r, pick) for r in records]
    todo = [i for i, key in enumerate(keys) if key not in known]
    if todo:
        searcher, auto = photo_search(detector)
        finder = make_detector(searcher, device=device, engine=engine)
        reporter.start(f"locating faces ({detector})", len(todo))
        fresh: dict[str, list[float] | None] = {}
        for start in range(0, len(todo), DETECT_BATCH):
            batch = todo[start:start + DETECT_BATCH]
            images = [load_image(records[i].path) for i in batch]
            found = locate_faces(finder, images, [records[i].box for i in batch], auto=auto,
                                 pick=pick)
            for i, image, face in zip(batch, images, found, strict=True):
                fresh[keys[i]] = None if face is None else chip_matrix(face, image.shape).ravel().tolist()
            reporter.advance(len(batch))
            if len(fresh) >= SAVE_EVERY or start + DETECT_BATCH >= len(todo):  # a stopped run keeps its work
                known = _save_cache(cache, fresh, reporter)
                fresh = {}
        reporter.finish()
    return [None if known[k] is None else np.asarray(known[k], np.float32).reshape(2, 3) for k in keys]


def framed_records(records: Sequence[Record], detector: str, *, device: str = "cpu", what: str = "images",
                   pick: str = "largest", reporter: Reporter = SILENT) -> tuple[list[Record], list[np.ndarray]]:
    """The records whose face `detector` finds, with their chip matrices (locate_records); the others are left
    out, and how many is said (`what`: how the message names the records)."""
    matrices = locate_records(records, detector, device=device, pick=pick, reporter=reporter)
    kept = [(record, matrix) for record, matrix in zip(records, matrices, strict=True) if matrix is not None]
    if missed := len(records) - len(kept):
        reporter.message(f"{missed} of {len(records)} {what} left out: --detector {detector} found no face in them")
    return [record for record, _ in kept], [matrix for _, matrix in kept]


def _read_cache(cache: Path, reporter: Reporter) -> dict[str, list[float] | None]:
    if not cache.is_file():
        return {}
    try:
        known = json.loads(cache.read_text())
        return known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        reporter.message(f"{cache}: unreadable, its faces are located again")
        return {}


def _save_cache(cache: Path, fresh: dict, reporter: Reporter) -> dict[str, list[float] | None]:
    """Add `fresh` to what the cache holds now (another run may have added to it meanwhile); returns the whole."""
    known = {**_read_cache(cache, reporter), **fresh}
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps(known))
    return known


def chips_digest(matrices: Sequence[np.ndarray | None]) -> str:
    """A short hash of the framing of every face (feature caches depend on it)."""
    digest = hashlib.sha256()
    for matrix in matrices:
        digest.update(b"-" if matrix is None else np.round(matrix, 3).tobytes())
    return digest.hexdigest()[:16]
