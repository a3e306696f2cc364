"""Unit tests for duplicates.py on small generated images."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_image

from agegender_cli.data.duplicates import (
    DEFAULT_THRESHOLD,
    SIDE,
    _mirror,
    duplicate_groups,
    find_duplicates,
    image_signatures,
    similar_pairs,
)


def write(path: Path, img: np.ndarray, quality: int = 95) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture
def copies(tmp_path: Path) -> list[Path]:
    """Six copies of one picture (indices 0-5), then three distinct pictures (6-8)."""
    base = make_image(1)
    original = write(tmp_path / "original.jpg", base)
    exact = tmp_path / "exact.jpg"
    shutil.copyfile(original, exact)
    return [
        original,
        exact,
        write(tmp_path / "reencoded.jpg", cv2.imread(str(original)), quality=75),
        write(tmp_path / "shift2.jpg", shifted(base, 2, -2)),
        write(tmp_path / "shift3.jpg", shifted(base, -3, 0)),
        write(tmp_path / "mirror.jpg", base[:, ::-1]),
        write(tmp_path / "other1.jpg", make_image(2)),
        write(tmp_path / "other2.jpg", make_image(3, 120)),
        write(tmp_path / "other3.jpg", make_image(4, 64)),
    ]


def test_signatures_are_zero_mean_unit_norm(copies: list[Path]) -> None:
    sig = image_signatures(copies)
    assert sig.shape == (len(copies), SIDE * SIDE)
    assert sig.dtype == np.float32
    np.testing.assert_allclose(sig.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(sig, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(sig[0] @ sig[1], 1, atol=1e-5)  # byte-identical files


def test_copies_are_grouped_and_distinct_images_are_not(copies: list[Path]) -> None:
    assert find_duplicates(copies) == [[0, 1, 2, 3, 4, 5]]


def test_mirrored_copy_needs_mirrored_search(copies: list[Path]) -> None:
    sig = image_signatures(copies)
    assert (0, 5) in similar_pairs(sig)
    assert (0, 5) not in similar_pairs(sig, mirrored=False)
    assert (0, 1) in similar_pairs(sig, mirrored=False)


def test_distinct_images_are_not_grouped(tmp_path: Path) -> None:
    sizes = [64, 96, 128, 200] * 8
    paths = [write(tmp_path / f"{seed}.jpg", make_image(seed, size)) for seed, size in enumerate(sizes)]
    sig = image_signatures(paths)
    assert similar_pairs(sig) == []
    assert find_duplicates(paths) == []
    assert find_duplicates(paths, threshold=0.7) == []


def test_unreadable_file_matches_nothing(tmp_path: Path, copies: list[Path]) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    broken_copy = tmp_path / "broken_copy.jpg"
    broken_copy.write_bytes(b"not a jpeg at all")
    paths = [broken, *copies[:2], tmp_path / "missing.jpg", broken_copy]
    sig = image_signatures(paths)
    assert not sig[[0, 3, 4]].any()
    assert similar_pairs(sig, threshold=-1.0) == [(1, 2)]
    assert find_duplicates(paths) == [[1, 2]]


def test_empty_and_single_inputs() -> None:
    assert image_signatures([]).shape == (0, SIDE * SIDE)
    assert similar_pairs(np.zeros((0, SIDE * SIDE), np.float32)) == []
    assert find_duplicates([]) == []
    assert duplicate_groups([], 3) == []


def test_duplicate_groups_are_deterministic() -> None:
    pairs = [(7, 9), (1, 4), (4, 6), (0, 8), (2, 3), (6, 10), (3, 5)]
    expected = [[0, 8], [1, 4, 6, 10], [2, 3, 5], [7, 9]]
    assert duplicate_groups(pairs, 12) == expected
    rng = random.Random(0)
    for _ in range(5):
        shuffled = [(j, i) if rng.random() < 0.5 else (i, j) for i, j in pairs]
        rng.shuffle(shuffled)
        assert duplicate_groups(shuffled, 12) == expected
    assert duplicate_groups(iter(pairs), 12) == expected


def test_find_duplicates_is_deterministic(copies: list[Path]) -> None:
    first = find_duplicates(copies, workers=1)
    assert find_duplicates(copies, workers=2) == first
    reordered = copies[::-1]
    assert find_duplicates(reordered) == [[3, 4, 5, 6, 7, 8]]


def test_block_size_does_not_change_pairs(copies: list[Path]) -> None:
    sig = image_signatures(copies)
    assert similar_pairs(sig, 0.5, block=2) == similar_pairs(sig, 0.5)


def test_scale_20000_random_signatures_finds_planted_pairs() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    sig = rng.standard_normal((n, SIDE * SIDE)).astype(np.float32)
    planted = [(5, 19_990), (100, 101), (2_047, 2_048), (4_000, 17_000), (12_345, 12_346)]
    for i, j in planted[:-1]:
        sig[j] = sig[i] + 0.1 * rng.standard_normal(SIDE * SIDE).astype(np.float32)
    i, j = planted[-1]
    sig[j] = _mirror(sig[i : i + 1])[0]  # mirrored copy
    sig -= sig.mean(axis=1, keepdims=True)
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    assert similar_pairs(sig, DEFAULT_THRESHOLD) == sorted(planted)
    assert similar_pairs(sig, DEFAULT_THRESHOLD, mirrored=False) == sorted(planted[:-1])
