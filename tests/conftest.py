"""Shared fixtures: the real data folder when present, and tiny generated UTKFace-like folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def load_file(path: Path, name: str):
    """A script or benchmark (a file, not a package module) imported under `name`, registered in sys.modules (a
    dataclass of it resolves its annotations there)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
SHARED_UTKFACE = REPO.parent / "shared" / "data" / "utkface_crop_part1"


def pytest_configure(config) -> None:
    """One engine calibration for the whole run, its workers and the processes its tests start, whatever
    AGEGENDER_HOME each test sets (a calibration takes about 7 s; it is keyed by CPU, flags and versions)."""
    import os
    import tempfile

    os.environ.setdefault("AGEGENDER_CALIBRATION_DIR",
                          str(Path(tempfile.gettempdir()) / f"agegender-tests-{os.getuid()}" / "engine"))


@pytest.fixture(scope="session")
def shared_utkface() -> Path:
    if not SHARED_UTKFACE.is_dir():
        pytest.skip("../shared/data/utkface_crop_part1 is not here")
    return SHARED_UTKFACE


@pytest.fixture(scope="session")
def utkface_test_records(shared_utkface, tmp_path_factory) -> list:
    """The test split of ../shared's crop_part1 as `agegender dataset` makes it (seed 0, duplicates grouped): built
    once a run (a worker) for every test that scores real test faces."""
    from agegender_cli.config import DatasetConfig
    from agegender_cli.data.utkface import build_dataset, read_manifest

    out = tmp_path_factory.mktemp("crop_part1")
    build_dataset(DatasetConfig(sources=(shared_utkface,), out=out))
    return read_manifest(out / "manifest.csv", "test")


def write_jpeg(path: Path, seed: int = 0, size: int = 64) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 3, (200, 180, 160), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def tiny_utkface(tmp_path: Path) -> Path:
    """A folder of 200 small images over every age class and gender, plus a few bad files."""
    folder = tmp_path / "utk"
    ages = [1, 5, 10, 18, 28, 40, 50, 70]
    n = 0
    for age in ages:
        for gender in (0, 1):
            for k in range(12):
                name = f"{age}_{gender}_{k % 5}_2017010{k % 9}1234567{n % 10}.jpg.chip.jpg"
                write_jpeg(folder / f"sub{k % 2}" / name, seed=n, size=32)
                n += 1
    (folder / "35_0_0_20170101000000000.jpg").write_bytes(b"")  # gap age
    (folder / "readme.txt").write_text("not an image")
    (folder / "20_3_0_20170101000000001.jpg").write_bytes(b"x")  # bad gender
    (folder / "25_1_0_20170101000000002.jpg").write_bytes(b"not a jpeg")  # corrupt
    (folder / "hello.jpg").write_bytes(b"x")  # malformed name
    return folder


def make_image(seed: int, size: int = 200) -> np.ndarray:
    """Return a random BGR picture: a smooth colour field with random filled shapes and a little noise."""
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(6, 11))):
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 12, size // 3))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, color, -1)
        else:
            cv2.rectangle(img, (x - r, y - r // 2), (x + r, y + r // 2), color, -1)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """16 small UTKFace-named images, two of each age class."""
    folder = tmp_path / "faces"
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70) * 2):
        write_jpeg(folder / f"{age}_{k % 2}_{k % 5}_2017010{k % 9}12345678{k % 10}.jpg", seed=k, size=48)
    return folder


@pytest.fixture
def tiny_arch():
    """The tiny test architecture, registered as "tiny" for one test."""
    from tiny_arch import Tiny

    from agegender_cli.archs import registry

    arch = registry.register(Tiny("tiny"))
    yield arch
    registry.unregister(arch.name)
