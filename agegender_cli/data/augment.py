"""Augmentation of face crops: flip, rotation and crop in one affine warp; blur, resolution, JPEG and colour as
faces found in photos have them (`wild`)."""

from __future__ import annotations

import math

import numpy as np


def view_matrix(
    height: int, width: int, size: int, rng: np.random.Generator | None,
    max_rotation: float = 10.0, scale: tuple[float, float] = (0.8, 1.0), max_shift: float = 0.05,
) -> np.ndarray:
    """2x3 matrix mapping output pixels to input pixels; rng None gives the plain resize."""
    side = float(min(height, width))
    angle, flip, shift = 0.0, 1.0, np.zeros(2)
    if rng is not None:
        side *= math.sqrt(rng.uniform(*scale))
        angle = math.radians(rng.uniform(-max_rotation, max_rotation))
        flip = -1.0 if rng.random() < 0.5 else 1.0
        shift = rng.uniform(-max_shift, max_shift, 2) * min(height, width)
    zoom = side / size
    cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
    linear = np.array([[cos * flip, -sin], [sin * flip, cos]])
    centre = np.array([(width - 1) / 2, (height - 1) / 2]) + shift
    offset = centre - linear @ np.array([(size - 1) / 2, (size - 1) / 2])
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


# the detector's jitter: faces found in photos are turned, scaled and shifted more than UTKFace's chips
WILD_GEOMETRY = {"max_rotation": 15.0, "scale": (0.75, 1.1), "max_shift": 0.08}


def make_view(image: np.ndarray, size: int, rng: np.random.Generator | None = None,
              augment: str = "geometric") -> np.ndarray:
    """A size x size view of `image`: augmented when rng is given, else the whole image resized. `wild` adds
    the detector's jitter and a photo's blur, low resolution, JPEG artefacts, colour casts and grayscale."""
    import cv2

    h, w = image.shape[:2]
    if rng is None:
        interpolation = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
        return cv2.resize(image, (size, size), interpolation=interpolation)
    wild = augment == "wild"
    matrix = view_matrix(h, w, size, rng, **(WILD_GEOMETRY if wild else {}))
    view = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE if wild else cv2.BORDER_REFLECT101,
    )
    return photo_like(view, rng) if wild else view


def photo_like(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, low resolution, JPEG quality, colour and grayscale, each drawn independently."""
    import cv2

    size = image.shape[0]
    out = image
    if rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.8))
    if rng.random() < 0.2:
        small = int(rng.integers(24, 72))
        out = cv2.resize(cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        gain = rng.uniform(0.7, 1.3) * rng.uniform(0.9, 1.1, 3)  # brightness and a colour cast
        mean = out.reshape(-1, 3).mean(0)
        contrast = rng.uniform(0.75, 1.25)
        out = np.clip((out.astype(np.float32) - mean) * contrast + mean * gain, 0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < 0.3:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 70))])
        out = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else out
    return np.ascontiguousarray(out)
