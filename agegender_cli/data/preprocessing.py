"""The report's image pipeline: grayscale, Gaussian blur, CLAHE, Gabor filter."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np

from agegender_cli.config import PreprocessConfig


def config_key(cfg: PreprocessConfig) -> str:
    """A short stable id of the settings, for caches keyed by them."""
    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]


def gabor_kernel(cfg: PreprocessConfig) -> np.ndarray:
    import cv2

    size = cfg.gabor_kernel
    kernel = cv2.getGaborKernel(
        (size, size), cfg.gabor_sigma, cfg.gabor_theta, cfg.gabor_lambda, cfg.gabor_gamma, cfg.gabor_psi,
        ktype=cv2.CV_32F,
    )
    # OpenCV's gabor sample normalisation: keeps the output in the input's brightness range
    total = float(kernel.sum())
    return kernel / (1.5 * total) if abs(total) > 1e-6 else kernel


def stages(image_bgr: np.ndarray, cfg: PreprocessConfig) -> list[tuple[str, np.ndarray]]:
    """Every enabled stage's output, starting with the input (for previews)."""
    import cv2

    out = [("input", image_bgr)]
    image = image_bgr
    if cfg.grayscale:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        out.append(("grayscale", image))
    if cfg.blur:
        k = cfg.blur_kernel
        if k % 2 == 0 or k < 1:
            raise ValueError(f"blur kernel must be a positive odd number, not {k}")
        image = cv2.GaussianBlur(image, (k, k), cfg.blur_sigma)
        out.append((f"gaussian blur {k}x{k}", image))
    if cfg.clahe:
        clahe = cv2.createCLAHE(clipLimit=cfg.clahe_clip, tileGridSize=(cfg.clahe_tile, cfg.clahe_tile))
        if image.ndim == 2:
            image = clahe.apply(image)
        else:  # equalise lightness only, so colours stay
            lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
            lab[..., 0] = clahe.apply(lab[..., 0])
            image = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        out.append(("CLAHE", image))
    if cfg.gabor:
        image = cv2.filter2D(image, cv2.CV_8U, gabor_kernel(cfg))
        out.append(("Gabor filter", image))
    return out


def preprocess(image_bgr: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Apply the pipeline; always returns a 3-channel BGR uint8 image of the same size."""
    if cfg.is_identity:
        return image_bgr
    import cv2

    image = stages(image_bgr, cfg)[-1][1]
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
