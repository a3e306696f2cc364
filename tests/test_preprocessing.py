"""The report's preprocessing pipeline on generated images."""

from __future__ import annotations

import numpy as np
import pytest

from agegender_cli.config import PreprocessConfig
from agegender_cli.data.preprocessing import config_key, preprocess, stages


def _face(size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(1)
    image = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
    image[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = (30, 90, 220)
    return image


def test_paper_pipeline_runs_every_stage_and_returns_gray_bgr():
    cfg = PreprocessConfig()
    names = [name for name, _ in stages(_face(), cfg)]
    assert names == ["input", "grayscale", "gaussian blur 5x5", "CLAHE", "Gabor filter"]
    out = preprocess(_face(), cfg)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_matches_opencv_calls_step_by_step():
    import cv2

    cfg = PreprocessConfig(gabor=False)
    expected = cv2.cvtColor(_face(), cv2.COLOR_BGR2GRAY)
    expected = cv2.GaussianBlur(expected, (5, 5), 0)
    expected = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(expected)
    assert np.array_equal(preprocess(_face(), cfg)[..., 0], expected)


def test_every_step_can_be_switched_off():
    image = _face()
    assert preprocess(image, PreprocessConfig.none()) is image
    only_blur = PreprocessConfig(grayscale=False, clahe=False, gabor=False)
    out = preprocess(image, only_blur)
    assert out.shape == image.shape and not np.array_equal(out[..., 0], out[..., 2])


def test_clahe_raises_contrast_of_a_flat_image():
    ramp = np.linspace(110, 140, 64).astype(np.uint8)
    flat = np.repeat(np.tile(ramp, (64, 1))[..., None], 3, axis=2)
    out = preprocess(flat, PreprocessConfig(blur=False, gabor=False))
    assert out.std() > flat.std()


def test_bad_blur_kernel_is_refused():
    with pytest.raises(ValueError):
        preprocess(_face(), PreprocessConfig(blur_kernel=4))


def test_config_key_changes_with_settings():
    assert config_key(PreprocessConfig()) == config_key(PreprocessConfig())
    assert config_key(PreprocessConfig()) != config_key(PreprocessConfig(clahe_clip=3.0))
