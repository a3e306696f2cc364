"""Faces aligned like the training chips: a similarity transform of a face's 5 landmarks onto the chips' template."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CHIP_SIDE = 200  # UTKFace chips: what both bundled models were trained on
# Where MTCNN finds the eyes, nose and mouth corners on UTKFace's train chips (mean of 1,989; std 3.7-6.6 px):
# `python scripts/align_template.py --manifest data/classes/manifest.csv --faces 2000`
TEMPLATE = np.array([[60.06, 58.52], [138.68, 58.40], [99.13, 104.78], [63.89, 139.36], [134.54, 139.38]],
                    np.float32)


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) taking `source` points nearest to `target` in
    least squares (Umeyama 1991)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    covariance = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = (s**2).sum() / len(source)
    scale = np.trace(np.diag(d) @ sign) / variance if variance > 0 else 1.0
    shift = mean_t - scale * rotation @ mean_s
    return np.hstack([scale * rotation, shift[:, None]])


def alignment_matrix(landmarks: Sequence[Sequence[float]], side: int = CHIP_SIDE) -> np.ndarray:
    """The 2x3 matrix taking image pixels to a `side` x `side` chip with the landmarks on the template."""
    return similarity(np.asarray(landmarks, np.float64), TEMPLATE * (side / CHIP_SIDE))


def warp_chip(image: np.ndarray, matrix: np.ndarray, side: int = CHIP_SIDE) -> np.ndarray:
    """The `side` x `side` chip a 2x3 matrix (image pixels to chip pixels) frames: bilinear; outside the image,
    edges are replicated (as crop_face does)."""
    import cv2

    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_face(image: np.ndarray, landmarks: Sequence[Sequence[float]], side: int = CHIP_SIDE) -> np.ndarray:
    """The face as a `side` x `side` chip, its landmarks on the template."""
    return warp_chip(image, alignment_matrix(landmarks, side), side)
