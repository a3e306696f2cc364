"""facenet-pytorch's MTCNN (its bundled P/R/O-nets exported once to ONNX) run by ONNX Runtime and numpy, no torch."""

from __future__ import annotations

import hashlib
import importlib.util
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agegender_cli import onnx_models
from agegender_cli.cache import Log, print_to_stderr
from agegender_cli.errors import AgeGenderError

if TYPE_CHECKING:
    import onnxruntime

# facenet-pytorch's defaults (MTCNN and detect_face), which MtcnnDetector has always used.
THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709
NETS = ("pnet", "rnet", "onet")
OUTPUTS = {"pnet": ["reg", "prob"], "rnet": ["reg", "prob"], "onet": ["reg", "points", "prob"]}
CROP_SIDE = {"rnet": 24, "onet": 48}
BATCH = 512  # facenet-pytorch runs RNet and ONet on at most 512 crops per call
PNET_STRIDE, PNET_CELL = 2, 12

Detected = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]


def weights_folder() -> Path:
    """facenet-pytorch's data folder (pnet.pt, rnet.pt, onet.pt), found without importing it or torch."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        raise AgeGenderError("MTCNN needs the weights bundled with facenet-pytorch: pip install facenet-pytorch")
    return Path(spec.origin).parent / "data"


def weights_key(folder: Path) -> str:
    """A hash of the three nets' weight files: a new facenet-pytorch wheel with other weights exports again."""
    digest = hashlib.sha256()
    for net in NETS:
        digest.update((folder / f"{net}.pt").read_bytes())
    return digest.hexdigest()[:20]


def export_net(net: str, path: Path) -> dict[str, Any]:
    """Write facenet-pytorch's `net` ("pnet", "rnet" or "onet") with its bundled weights to ONNX at `path`."""
    import torch
    from facenet_pytorch.models import mtcnn

    module = {"pnet": mtcnn.PNet, "rnet": mtcnn.RNet, "onet": mtcnn.ONet}[net]()
    side = CROP_SIDE.get(net, 40)
    spatial = None
    if net == "pnet":  # fully convolutional: it runs on every level of the image pyramid
        spatial = {name: {2: "height", 3: "width"} for name in ["image", *OUTPUTS[net]]}
    onnx_models.export_module(module, torch.zeros(1, 3, side, side), path, ["image"], OUTPUTS[net], spatial)
    return {"net": net, "outputs": OUTPUTS[net]}


def net_sessions(log: Log = print_to_stderr) -> dict[str, onnxruntime.InferenceSession]:
    """ONNX Runtime sessions of the three nets, exported on the first call (which imports torch) and cached."""
    key = weights_key(weights_folder())
    paths = {net: onnx_models.cached_export(f"mtcnn-{net}", key, partial(export_net, net), log)[0] for net in NETS}
    return {net: onnx_models.session(path) for net, path in paths.items()}


class OnnxMtcnn:
    """MTCNN.detect(image, landmarks=True) of facenet-pytorch for one RGB image, step for step in numpy."""

    def __init__(self, *, min_face_size: int = 20, log: Log = print_to_stderr) -> None:
        self.min_face_size = min_face_size
        self.sessions = net_sessions(log)

    def detect(self, rgb: np.ndarray) -> Detected:
        """Boxes (N, 4) x1 y1 x2 y2, probabilities (N,) and landmarks (N, 5, 2), largest box first; three Nones
        when no face is found."""
        image = AreaResampler(rgb)
        boxes = self._propose(image)
        if len(boxes):
            boxes = self._refine(image, boxes)
        points = np.zeros((0, 5, 2), np.float32)
        if len(boxes):
            boxes, points = self._output(image, boxes)
        if len(boxes) == 0:
            return None, None, None
        order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
        return boxes[order, :4], boxes[order, 4], points[order]

    def _propose(self, image: AreaResampler) -> np.ndarray:
        """Stage 1: PNet over the image pyramid; squared candidate boxes with their scores, (N, 5)."""
        height, width = image.shape
        found = []
        for scale in pyramid_scales(height, width, self.min_face_size):
            level = normalised(image.whole(int(height * scale + 1), int(width * scale + 1)))
            reg, prob = self.sessions["pnet"].run(None, {"image": level[None]})
            candidates = pnet_boxes(reg[0], prob[0, 1], scale, THRESHOLDS[0])
            found.append(candidates[nms(candidates[:, :4], candidates[:, 4], 0.5)])
        boxes = np.concatenate(found) if found else np.zeros((0, 9), np.float32)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        moved = boxes[:, :4] + boxes[:, 5:9] * size
        return square(np.concatenate([moved, boxes[:, 4:5]], axis=1))

    def _refine(self, image: AreaResampler, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: RNet on 24 px crops rejects candidates and corrects the rest."""
        boxes, crops = crops_of(image, boxes, CROP_SIDE["rnet"])
        if len(boxes) == 0:
            return boxes
        reg, prob = run_batched(self.sessions["rnet"], crops)
        keep = prob[:, 1] > THRESHOLDS[1]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return square(regress(boxes[pick], reg[pick]))

    def _output(self, image: AreaResampler, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: ONet on 48 px crops gives the final boxes, scores and five landmarks."""
        boxes, crops = crops_of(image, boxes, CROP_SIDE["onet"])
        if len(boxes) == 0:
            return boxes, np.zeros((0, 5, 2), np.float32)
        reg, marks, prob = run_batched(self.sessions["onet"], crops)
        keep = prob[:, 1] > THRESHOLDS[2]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg, marks = reg[keep], marks[keep]
        width = boxes[:, 2:3] - boxes[:, 0:1] + 1
        height = boxes[:, 3:4] - boxes[:, 1:2] + 1
        xs = width * marks[:, :5] + boxes[:, 0:1] - 1
        ys = height * marks[:, 5:] + boxes[:, 1:2] - 1
        points = np.stack([xs, ys], axis=2)
        boxes = regress(boxes, reg)
        pick = nms_min(boxes[:, :4], boxes[:, 4], 0.7)
        return boxes[pick], points[pick]


def pyramid_scales(height: int, width: int, min_face_size: int, factor: float = FACTOR) -> list[float]:
    """Scales at which a face of min_face_size and every larger one is 12 px, PNet's window, at some level."""
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def normalised(image: np.ndarray) -> np.ndarray:
    """HWC (or NHWC) float32 pixels to the nets' CHW (NCHW) input in [-1, 1]."""
    pixels = (image - np.float32(127.5)) * np.float32(0.0078125)
    return np.ascontiguousarray(np.moveaxis(pixels, -1, -3))


def pooling_windows(size: np.ndarray | int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each output cell's window in torch's adaptive average pooling of `size`
    pixels to `out` (sizes (N, 1) give (N, out))."""
    cells = np.arange(out, dtype=np.int64)
    return cells * size // out, ((cells + 1) * size + out - 1) // out


class AreaResampler:
    """torch interpolate(mode="area") (adaptive average pooling) of one image and of regions of it, bit for bit:
    window sums are exact in float64 (integer pixels) from one summed-area table, then divided in float32 by the
    window's height and then its width, as torch's kernel does. cv2.INTER_AREA weights partly covered pixels
    and upsamples bilinearly, which moves boxes by a pixel now and then."""

    def __init__(self, image: np.ndarray) -> None:
        import cv2

        self.shape = image.shape[:2]
        self.sums = cv2.integral(np.ascontiguousarray(image), sdepth=cv2.CV_64F).reshape(
            self.shape[0] + 1, self.shape[1] + 1, -1)

    def whole(self, height: int, width: int) -> np.ndarray:
        """The image pooled to height x width, HWC float32."""
        top, bottom = pooling_windows(self.shape[0], height)
        left, right = pooling_windows(self.shape[1], width)
        rows = self.sums[bottom] - self.sums[top]  # whole rows first: two cheap gathers instead of four
        window = rows[:, right] - rows[:, left]
        return averaged(window, (bottom - top)[:, None], (right - left)[None, :])

    def regions(self, corners: np.ndarray, side: int) -> np.ndarray:
        """Pixels [top:bottom, left:right] for each row of `corners` (left, top, right, bottom), each pooled to
        side x side: (N, side, side, C) float32."""
        left, top, right, bottom = (corners[:, k : k + 1] for k in range(4))
        upper, lower = (top + edge for edge in pooling_windows(bottom - top, side))
        first, last = (left + edge for edge in pooling_windows(right - left, side))
        rows_from, rows_to, cols_from, cols_to = upper[:, :, None], lower[:, :, None], first[:, None], last[:, None]
        window = (self.sums[rows_to, cols_to] - self.sums[rows_from, cols_to]
                  - self.sums[rows_to, cols_from] + self.sums[rows_from, cols_from])
        return averaged(window, rows_to - rows_from, cols_to - cols_from)


def averaged(window: np.ndarray, tall: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """Window sums over window sizes as torch's pooling computes them: in float32, height first."""
    return window.astype(np.float32) / tall.astype(np.float32)[..., None] / wide.astype(np.float32)[..., None]


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """torch interpolate(image, (height, width), mode="area") for one HWC image."""
    return AreaResampler(image).whole(height, width)


def pnet_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """PNet's hits at one pyramid level as image boxes: x1 y1 x2 y2 score and 4 offsets, (N, 9) float32."""
    rows, cols = np.nonzero(prob >= threshold)
    corner = np.stack([cols, rows], axis=1).astype(np.float32)
    scale32 = np.float32(scale)  # torch does this arithmetic in float32: floor() then lands on the same pixel
    top_left = np.floor((PNET_STRIDE * corner + 1) / scale32)
    bottom_right = np.floor((PNET_STRIDE * corner + PNET_CELL) / scale32)
    return np.concatenate([top_left, bottom_right, prob[rows, cols, None], reg[:, rows, cols].T], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision.ops.nms in float32: indices kept, highest score first, areas without the +1."""
    boxes = boxes.astype(np.float32, copy=False)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter = overlap(boxes[best], boxes[rest], extra=0)
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(iou > threshold)]
    return np.asarray(keep, dtype=np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's nms_numpy 'Min': overlap over the smaller area (+1 pixel sizes), its sort order."""
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = np.argsort(scores)  # its quicksort, so that ties fall the same way
    keep = []
    while order.size:
        best, rest = order[-1], order[:-1]
        keep.append(best)
        ratio = overlap(boxes[best], boxes[rest], extra=1) / np.minimum(areas[best], areas[rest])
        order = rest[ratio <= threshold]
    return np.asarray(keep, dtype=np.int64)


def overlap(box: np.ndarray, others: np.ndarray, extra: int) -> np.ndarray:
    """Intersection areas of `box` with each of `others`; `extra` 1 counts both edge pixels (MATLAB style)."""
    width = np.maximum(0, np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]) + extra)
    height = np.maximum(0, np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]) + extra)
    return width * height


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """facenet-pytorch's bbreg: move each edge by its offset times the box's +1 pixel width or height."""
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    moved = boxes.copy()
    moved[:, :4] = boxes[:, :4] + offsets[:, :4] * np.stack([width, height, width, height], axis=1)
    return moved


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet-pytorch's rerec: each box grown to a square of its longer side around its centre."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    squared = boxes.copy()
    squared[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    squared[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    squared[:, 2] = squared[:, 0] + side
    squared[:, 3] = squared[:, 1] + side
    return squared.astype(np.float32, copy=False)


def crops_of(image: AreaResampler, boxes: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes that overlap the image and their pixels (clipped like facenet-pytorch's pad) as the nets'
    input, (N, 3, side, side). facenet-pytorch fails on a box wholly outside the image; it is dropped here."""
    height, width = image.shape[:2]
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    x1, y1 = np.maximum(corners[:, 0], 1), np.maximum(corners[:, 1], 1)
    x2, y2 = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
    inside = (y2 > y1 - 1) & (x2 > x1 - 1)
    corners = np.stack([x1 - 1, y1 - 1, x2, y2], axis=1)[inside]
    return boxes[inside], normalised(image.regions(corners, side))


def run_batched(session: onnxruntime.InferenceSession, crops: np.ndarray) -> list[np.ndarray]:
    """The net's outputs over all crops, BATCH at a time."""
    parts = [session.run(None, {"image": crops[start : start + BATCH]}) for start in range(0, len(crops), BATCH)]
    return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]
