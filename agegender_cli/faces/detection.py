"""Face detectors (MTCNN, Haar, none) and face crops framed like the training data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from agegender_cli.config import PICK_RULES  # noqa: F401 (named in pick_face's docstring)
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.detectors import NAMES as DETECTOR_NAMES
from agegender_cli.faces.detectors import SPECS as DETECTOR_SPECS

if TYPE_CHECKING:
    from agegender_cli.cache import Log

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in image pixels, x2/y2 exclusive
Point = tuple[float, float]

DETECTORS = DETECTOR_NAMES
FRAMINGS = ("utkface", "opencv20", "box")
# What crop_face should use for each detector (faces/detectors.py): "none" means the input already is a face
# crop; "auto" frames the faces MTCNN finds like "mtcnn", and an image it takes whole (Detection.whole) like "none".
DEFAULT_FRAMING = {name: spec.framing for name, spec in DETECTOR_SPECS.items()}

# UTKFace "crop_part1" chips are tight: measured on 200 of them pasted into a canvas, an MTCNN box
# is 0.87 x 1.10 of the chip (w x h) and its centre sits 0.07 of the chip above the chip centre;
# a Haar box is 1.01 x 1.01 and sits 0.08 above.  On two real portraits, the chip placed from the
# landmarks is 1.05-1.09 x sqrt(w*h) of the MTCNN box.  So: side = 1.05 * sqrt(w*h), shifted down.
UTKFACE_SCALE = 1.05
UTKFACE_SHIFT = 0.07  # fraction of the crop side between box centre and crop centre (downwards)
OPENCV_PADDING = 20  # the OpenCV age/gender demo pads the detector box by 20 px and clips


@dataclass(frozen=True)
class Detection:
    """One face: integer box in image pixels (may extend past the edges), score 0..1, 5 landmarks."""

    box: Box
    score: float
    landmarks: tuple[Point, ...] | None = None  # eyes, nose, mouth corners (MTCNN only)
    whole: bool = False  # the whole image taken as the face (--detector auto on a face crop)

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


class FaceDetector(Protocol):
    """Finds faces in BGR uint8 images; one list of detections per image, left to right."""

    name: str

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


def make_detector(
    name: str, *, min_face: int = 20, min_score: float = 0.9, device: str = "cpu", max_side: int | None = None,
    engine: str = "auto", log: Log | None = None,
) -> FaceDetector:
    """Build a detector by name: "auto" (MTCNN, but an image that already is a face crop is taken whole),
    "mtcnn", "haar" or "none" (the whole image is the face); photos longer than `max_side` (default: the
    detect_max_side limit) are searched at that size. `engine` is MTCNN's (MTCNN_ENGINES; --engine's values are
    taken too: opencv means auto); `log` hears of a first export to ONNX."""
    engine = "auto" if engine == "opencv" else engine  # opencv runs the models only; others: mtcnn_engine checks
    if max_side is None:
        from agegender_cli.limits import current_limits

        max_side = current_limits().detect_max_side
    if name == "auto":
        return AutoCropDetector(make_detector("mtcnn", min_face=min_face, min_score=min_score, device=device,
                                              max_side=max_side, engine=engine, log=log))
    if name == "mtcnn":
        mtcnn = MtcnnDetector(min_face=min_face, min_score=min_score, device=device, engine=engine, log=log)
        return DownscalingDetector(mtcnn, max_side)
    if name == "haar":
        return DownscalingDetector(HaarDetector(min_face=min_face, min_score=min_score), max_side)
    if name == "none":
        return WholeImageDetector()
    raise AgeGenderError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")


class DownscalingDetector:
    """Another detector run on photos shrunk to `max_side` pixels on their long side, its boxes and landmarks
    mapped back to the photo's pixels: MTCNN's image pyramid on a 12000 px photo takes gigabytes."""

    def __init__(self, inner: FaceDetector, max_side: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_side = max_side

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        import cv2

        shrunk, scales = [], []
        for image in images:
            height, width = image.shape[:2]
            scale = min(1.0, self.max_side / max(height, width))
            if scale < 1.0:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            shrunk.append(image)
            scales.append(scale)
        found = self.inner.detect(shrunk)
        return [faces if scale == 1.0 else [_scaled(face, 1.0 / scale) for face in faces]
                for faces, scale in zip(found, scales, strict=True)]


def _scaled(face: Detection, factor: float) -> Detection:
    box = tuple(round(v * factor) for v in face.box)
    marks = None if face.landmarks is None else tuple((x * factor, y * factor) for x, y in face.landmarks)
    return Detection(box, face.score, marks)  # type: ignore[arg-type]


MTCNN_ENGINES = ("auto", "onnx", "torch")


class MtcnnDetector:
    """facenet-pytorch's MTCNN with the weights bundled in its wheel, one image per call, run by facenet-pytorch
    itself ("torch") or exported to ONNX Runtime ("onnx", which never imports torch once the export is cached:
    `import torch` alone takes seconds). "auto": ONNX on the CPU when onnxruntime is installed, else torch."""

    name = "mtcnn"

    def __init__(
        self, *, min_face: int = 20, min_score: float = 0.9, device: str = "cpu", engine: str = "auto",
        log: Log | None = None,
    ) -> None:
        from agegender_cli.runtime import device_name

        self.min_face = min_face
        self.min_score = min_score
        device = device_name(device)
        self.engine = mtcnn_engine(engine, device)
        if self.engine == "onnx":
            from agegender_cli.cache import print_to_stderr
            from agegender_cli.faces.mtcnn_onnx import OnnxMtcnn

            self._onnx = OnnxMtcnn(min_face_size=min_face, log=log or print_to_stderr)
        else:
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(keep_all=True, min_face_size=min_face, device=device)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        # One image per MTCNN call: a batched call picks boxes a few pixels apart for the same photo depending on
        # the other photos in the batch (kernels differ with the batch size, NMS breaks near-ties differently), so
        # a photo's record would depend on its neighbours, and `predict --ray` could not give local's answers.
        # On a CPU a batch saves little (measured: within 20% for 64 UTKFace crops, one thread).
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> list[Detection]:
        if min(image.shape[:2]) < self.min_face:
            return []  # MTCNN's image pyramid is empty (and it raises) below min_face
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        if self.engine == "onnx":
            return self._to_detections(*self._onnx.detect(rgb))
        boxes, probs, points = self._mtcnn.detect([rgb], landmarks=True)
        return self._to_detections(boxes[0], probs[0], points[0])

    def _to_detections(self, boxes, probs, points) -> list[Detection]:
        if boxes is None:
            return []
        found = [
            Detection(_round_box(box), float(prob), tuple((float(x), float(y)) for x, y in marks))
            for box, prob, marks in zip(
                np.asarray(boxes, np.float64), probs, np.asarray(points, np.float64), strict=True
            )
            if float(prob) >= self.min_score
        ]
        return _reading_order(found)


def mtcnn_engine(engine: str, device: str) -> str:
    """"onnx" or "torch" for MTCNN on `device` ("cpu" or "cuda"); ONNX Runtime here runs on the CPU only."""
    if engine not in MTCNN_ENGINES:
        raise AgeGenderError(f"unknown MTCNN engine {engine!r}: choose one of {', '.join(MTCNN_ENGINES)}")
    if engine != "auto":
        return engine
    from agegender_cli.onnx_models import onnx_runtime_available

    return "onnx" if device == "cpu" and onnx_runtime_available() else "torch"


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade.

    Score: the cascade's final-stage level weight squashed with a logistic, 1 / (1 + exp(-w)).
    Faces typically score w = 3..10 (0.95..1.0); w = 2.2 is 0.9, the default min_score.
    """

    name = "haar"

    def __init__(self, *, min_face: int = 20, min_score: float = 0.9) -> None:
        import cv2

        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise AgeGenderError(f"cannot load the Haar cascade {path}")
        self.min_face = min_face
        self.min_score = min_score

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> list[Detection]:
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=5,
            minSize=(self.min_face, self.min_face),
            outputRejectLevels=True,
        )
        found = []
        for (x, y, w, h), weight in zip(rects, np.ravel(weights), strict=True):
            score = 1.0 / (1.0 + math.exp(-float(weight)))
            if score >= self.min_score:
                found.append(Detection((int(x), int(y), int(x + w), int(y + h)), score))
        return _reading_order(found)


class WholeImageDetector:
    """No detection: each image is taken as one face (for inputs that already are face crops)."""

    name = "none"

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        return [[Detection((0, 0, image.shape[1], image.shape[0]), 1.0)] for image in images]


class AutoCropDetector:
    """MTCNN's faces, except that an image which already is a face crop (pick_face's auto rule) is one face:
    the whole image, as --detector none would take it."""

    name = "auto"

    def __init__(self, inner: FaceDetector) -> None:
        self.inner = inner

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        found = self.inner.detect(images)
        missing = [i for i, faces in enumerate(found) if not faces]
        crops = dict(zip(missing, crop_faces(self.inner, [images[i] for i in missing]), strict=True))
        picked = []
        for i, (image, faces) in enumerate(zip(images, found, strict=True)):
            if faces:
                picked.append(self._pick(image.shape, faces))
            else:  # no face: the image is one only where the padded test finds a face filling it
                crop = crops[i]
                picked.append([] if crop is None else [Detection((0, 0, image.shape[1], image.shape[0]), crop.score,
                                                                 whole=True)])
        return picked

    @staticmethod
    def _pick(shape: tuple[int, ...], found: list[Detection]) -> list[Detection]:
        picked = pick_face(shape, found, auto=True)
        if picked is None or not picked[1]:
            return found
        return [Detection(picked[0], max(d.score for d in found), whole=True)]


# A face crop as tight as a UTKFace chip often hides its face from MTCNN, which looks for faces with some
# context; on a copy padded by CROP_PAD of the longer side (in the image's mean colour) MTCNN finds it, filling
# CROP_AREA of the original or more. Blank, noise, text and landscapes give no face there either (measured:
# tests/test_no_face.py). This replaced taking whole any image of at most 400 px where no face was found.
CROP_PAD = 0.25


def crop_faces(detector: FaceDetector, images: Sequence[np.ndarray]) -> list[Detection | None]:
    """For images where `detector` found no face: the face found on a padded copy, in the image's coordinates,
    where it fills CROP_AREA of the image (the image is a face crop); else None (no face: no answer)."""
    if not images:
        return []
    padded, pads = [], []
    for image in images:
        pad = max(1, int(round(CROP_PAD * max(image.shape[:2]))))
        colour = [int(v) for v in image.reshape(-1, image.shape[2] if image.ndim == 3 else 1).mean(0)]
        padded.append(_pad(image, pad, colour))
        pads.append(pad)
    answers: list[Detection | None] = []
    for image, pad, faces in zip(images, pads, detector.detect(padded), strict=True):
        height, width = image.shape[:2]
        face = max(faces, key=lambda d: d.width * d.height, default=None)
        if face is None or face.width * face.height < CROP_AREA * width * height:
            answers.append(None)
            continue
        x1, y1, x2, y2 = face.box
        answers.append(Detection((x1 - pad, y1 - pad, x2 - pad, y2 - pad), face.score))
    return answers


def _pad(image: np.ndarray, pad: int, colour: list[int]) -> np.ndarray:
    import cv2

    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=colour)


# A face box (unclipped) of this share of the image means the image is a face crop. Measured on the val split
# (benchmarks/detector_choice.py --split val --dump): MTCNN's box is 0.65-2.8 of a UTKFace crop (median 1.26),
# 0.03-0.26 of a 640x480 scene with a pasted face. A box cut by the image's edge is no sign of a crop: 14% of
# those scenes' faces touch an edge; the earlier rule (a quarter of the image, or cut) took 15% of the scenes
# whole and lost 5-13.5 points against mtcnn there.
CROP_AREA = 0.5
MATCH_IOU = 0.3  # a detection overlapping a labelled box less than this is not the labelled face


def pick_face(
    shape: tuple[int, ...], found: Sequence[Detection], label_box: Box | None = None, *, auto: bool = False,
    pick: str = "largest",
) -> tuple[Box, bool] | None:
    """The labelled face of an image: (box, whole image?) or None when it was not found.

    With a labelled box, the detection that overlaps it most (IoU >= MATCH_IOU); else, by `pick` (PICK_RULES),
    the largest detection or the one whose centre is nearest the image's (LFW: the person sits in the middle).
    With `auto`, an image that already is a face crop (the face's box is CROP_AREA of it or more) is taken whole;
    where no face was found, crop_faces decides (the caller runs it: it needs the detector)."""
    height, width = shape[:2]
    whole = (0, 0, width, height)
    if label_box is not None:
        best = max(found, key=lambda d: box_iou(d.box, label_box), default=None)
        face = best if best is not None and box_iou(best.box, label_box) >= MATCH_IOU else None
    elif pick == "centre":
        face = min(found, key=lambda d: math.dist(((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2),
                                                  (width / 2, height / 2)), default=None)
    else:
        face = max(found, key=lambda d: d.width * d.height, default=None)
    if auto:
        if face is None:
            return None
        if face.width * face.height >= CROP_AREA * width * height:
            return whole, True
    return None if face is None else (face.box, False)


def face_region(box: Box, *, framing: str, shape: tuple[int, ...]) -> Box:
    """The image region crop_face takes for a detector box; may extend past the image edges.

    utkface: a square of side 1.05 * sqrt(w*h), centred 0.07 of the side below the box centre.
    opencv20: the box grown by 20 px on each side, clipped to the image (as the OpenCV demo does).
    box: the box itself.
    """
    x1, y1, x2, y2 = box
    if framing == "box":
        return box
    if framing == "opencv20":
        height, width = shape[:2]
        pad = OPENCV_PADDING
        return max(0, x1 - pad), max(0, y1 - pad), min(width, x2 + pad), min(height, y2 + pad)
    if framing == "utkface":
        side = max(1.0, UTKFACE_SCALE * math.sqrt(max(1, x2 - x1) * max(1, y2 - y1)))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + UTKFACE_SHIFT * side
        left, top = round(cx - side / 2), round(cy - side / 2)
        return left, top, left + round(side), top + round(side)
    raise AgeGenderError(f"unknown framing {framing!r}: choose one of {', '.join(FRAMINGS)}")


def face_crop(image: np.ndarray, detection: Detection, framing: str) -> np.ndarray:
    """The face as a model sees it: a face crop taken whole is the image; a face with landmarks, for a model
    trained on chips ("utkface" framing), is aligned onto the chips' 5-point template (faces/align.py); any other
    face is its box, framed as `framing` says."""
    if detection.whole:
        return crop_face(image, detection.box, framing="box")
    if framing == "utkface" and detection.landmarks is not None:
        from agegender_cli.faces.align import align_face

        return align_face(image, detection.landmarks)
    return crop_face(image, detection.box, framing=framing)


def crop_face(image: np.ndarray, box: Box, *, framing: str = "utkface") -> np.ndarray:
    """Cut the face out as the models saw faces in training; outside the image, edges are replicated."""
    return crop_region(image, face_region(box, framing=framing, shape=image.shape))


def crop_region(image: np.ndarray, region: Box) -> np.ndarray:
    """Copy image[y1:y2, x1:x2], replicating the border pixels where the region leaves the image."""
    x1, y1, x2, y2 = region
    height, width = image.shape[:2]
    if 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height:  # inside: a plain slice is enough
        return np.ascontiguousarray(image[y1:y2, x1:x2])
    rows = np.clip(np.arange(y1, max(y2, y1 + 1)), 0, height - 1)
    cols = np.clip(np.arange(x1, max(x2, x1 + 1)), 0, width - 1)
    return np.ascontiguousarray(image[np.ix_(rows, cols)])


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _round_box(box: np.ndarray) -> Box:
    x1, y1, x2, y2 = (round(float(v)) for v in box[:4])
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def _reading_order(found: list[Detection]) -> list[Detection]:
    return sorted(found, key=lambda d: (d.box[0], d.box[1]))
