"""Geometric augmentation of face crops in one affine warp: flip, rotation, random crop."""

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


def make_view(image: np.ndarray, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A size x size view of `image`: augmented when rng is given, else the whole image resized."""
    import cv2

    h, w = image.shape[:2]
    if rng is None:
        interpolation = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
        return cv2.resize(image, (size, size), interpolation=interpolation)
    matrix = view_matrix(h, w, size, rng)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT101,
    )
