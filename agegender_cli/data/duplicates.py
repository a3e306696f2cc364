"""Find pixel-identical, near-identical and mirrored copies of face images by correlating band-pass thumbnails."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SIDE = 16
"""Signatures are SIDE x SIDE band-pass thumbnails, flattened to SIDE * SIDE floats."""

DEFAULT_THRESHOLD = 0.95
"""Minimum correlation of two signatures for the images to count as copies (validated on UTKFace)."""

_WORK = 50  # working thumbnail side: what IMREAD_REDUCED_GRAYSCALE_4 gives for a 200 px UTKFace image
_FINE_SIGMA = 1.75  # band-pass on the working thumbnail: drops JPEG noise and sub-pixel detail ...
_COARSE_SIGMA = 7.0  # ... and the face-shape / lighting layout that all aligned faces share
_MARGIN = 3  # working pixels cut from each side: borders differ most between re-crops of one photo


def _decode_small(path: Path) -> np.ndarray | None:
    """The image at a quarter of its size, grayscale; None when it does not decode."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_REDUCED_GRAYSCALE_4) if data.size else None
    return None if img is None or img.size == 0 else img


def signature_of(img: np.ndarray) -> np.ndarray | None:
    """The signature of a decoded grayscale image; None for a flat one (no structure to compare)."""
    import cv2

    work = img.astype(np.float32)
    if work.shape != (_WORK, _WORK):
        work = cv2.resize(work, (_WORK, _WORK), interpolation=cv2.INTER_AREA)
    band = cv2.GaussianBlur(work, (0, 0), _FINE_SIGMA) - cv2.GaussianBlur(work, (0, 0), _COARSE_SIGMA)
    band = band[_MARGIN : _WORK - _MARGIN, _MARGIN : _WORK - _MARGIN]
    thumb = cv2.resize(band, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    thumb -= thumb.mean()
    norm = float(np.linalg.norm(thumb))
    if norm < 1e-3:  # flat image: no structure to compare
        return None
    return (thumb / norm).ravel()


def scan_images(paths: Sequence[Path], workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(readable flags, signatures) of every path in one decoding pass; unreadable and flat images get zeros."""
    readable = np.zeros(len(paths), dtype=bool)
    out = np.zeros((len(paths), SIDE * SIDE), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, img in enumerate(pool.map(_decode_small, paths, chunksize=64)):
            if img is not None:
                readable[i] = True
                sig = signature_of(img)
                if sig is not None:
                    out[i] = sig
    return readable, out


def image_signatures(paths: Sequence[Path], workers: int = 2) -> np.ndarray:
    """Return an (N, SIDE * SIDE) float32 array of signatures; dot products are Pearson correlations.

    An unreadable (or completely flat) image gets an all-zero row, which matches nothing.
    """
    return scan_images(paths, workers)[1]


def _mirror(signatures: np.ndarray) -> np.ndarray:
    """Return the signatures of the horizontally mirrored images (a flip keeps mean and norm)."""
    n, d = signatures.shape
    side = _side(d)
    return np.ascontiguousarray(signatures.reshape(n, side, side)[:, :, ::-1].reshape(n, d))


def _side(d: int) -> int:
    """Return the side of a square signature of length d."""
    side = round(d**0.5)
    if side * side != d:
        raise ValueError(f"signature length {d} is not a square")
    return side


def _split_symmetric(signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split signatures into mirror-symmetric and antisymmetric coordinates.

    With x = (s, a): x . y = s_x . s_y + a_x . a_y and x . mirror(y) = s_x . s_y - a_x . a_y,
    so the better of the plain and the mirrored correlation costs one product of full length.
    """
    n, d = signatures.shape
    side = _side(d)
    grid = signatures.reshape(n, side, side)
    half = side // 2
    left = grid[:, :, :half]
    right = grid[:, :, side - half :][:, :, ::-1]
    parts = [(left + right).reshape(n, -1) * np.float32(0.5**0.5)]
    if side % 2:
        parts.append(grid[:, :, half])
    sym = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
    anti = np.ascontiguousarray((left - right).reshape(n, -1) * np.float32(0.5**0.5), dtype=np.float32)
    return sym, anti


def similar_pairs(
    signatures: np.ndarray, threshold: float = DEFAULT_THRESHOLD, mirrored: bool = True, block: int = 2048
) -> list[tuple[int, int]]:
    """Return every pair (i, j), i < j, whose correlation (or, if mirrored, that with j mirrored) is >= threshold.

    Works blockwise on matrix products; the pairs come sorted. Rows that are all zero match nothing.
    """
    sig = np.asarray(signatures, dtype=np.float32)
    n = sig.shape[0]
    if n < 2:
        return []
    valid = np.any(sig != 0, axis=1)
    if mirrored:
        sym, anti = _split_symmetric(sig)
    else:
        sym, anti = np.ascontiguousarray(sig), None
    pairs: list[tuple[int, int]] = []
    for i0 in range(0, n, block):
        for j0 in range(i0, n, block):
            sim = sym[i0 : i0 + block] @ sym[j0 : j0 + block].T
            if anti is not None:
                other = anti[i0 : i0 + block] @ anti[j0 : j0 + block].T
                sim += np.abs(other, out=other)
            rows = np.flatnonzero(sim.max(axis=1) >= threshold)  # hits are rare: scan only rows that have one
            if rows.size == 0:
                continue
            sub, jj = np.nonzero(sim[rows] >= threshold)
            ii = rows[sub] + i0
            jj += j0
            keep = (ii < jj) & valid[ii] & valid[jj]
            pairs.extend(zip(ii[keep].tolist(), jj[keep].tolist(), strict=True))
    pairs.sort()
    return pairs


def duplicate_groups(pairs: Iterable[tuple[int, int]], n: int) -> list[list[int]]:
    """Return the connected components of size >= 2, each sorted, ordered by their smallest index."""
    parent = list(range(n))

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for x in range(n):
        members.setdefault(find(x), []).append(x)
    return sorted((g for g in members.values() if len(g) >= 2), key=lambda g: g[0])


def groups_of(signatures: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Groups of indices into `signatures` whose images are copies of one another (mirrored too)."""
    return duplicate_groups(similar_pairs(signatures, threshold), len(signatures))


def find_duplicates(
    paths: Sequence[Path], threshold: float = DEFAULT_THRESHOLD, workers: int = 2
) -> list[list[int]]:
    """Return groups of indices into paths whose images are copies of one another."""
    return groups_of(image_signatures(paths, workers), threshold)
