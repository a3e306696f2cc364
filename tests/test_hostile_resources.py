"""Hostile and careless input, resources: image size limits before decoding, large photos downscaled for
detection, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.config import Limits
from agegender_cli.faces.detection import Detection, DownscalingDetector
from agegender_cli.faces.inputs import read_image
from agegender_cli.limits import current_limits

runner = CliRunner()


def blank_png(path: Path, height: int, width: int) -> Path:
    """A huge, almost empty PNG: a few hundred KB on disk, gigabytes once decoded."""
    import cv2

    ok, data = cv2.imencode(".png", np.zeros((height, width), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    path.write_bytes(data.tobytes())
    return path


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    big = blank_png(tmp_path / "big.png", 9000, 6000)  # 54 MP, above the 50 MP default
    assert big.stat().st_size < 200_000
    image, error = read_image(str(big))
    assert image is None and "9000" in error and "50 MP" in error and "AGEGENDER_MAX_IMAGE_PIXELS" in error


def test_pixel_limit_is_raised_by_its_environment_variable(tmp_path, monkeypatch):
    small = blank_png(tmp_path / "small.png", 100, 100)
    monkeypatch.setenv("AGEGENDER_MAX_IMAGE_PIXELS", "5000")
    assert "limit" in read_image(str(small))[1]
    monkeypatch.setenv("AGEGENDER_MAX_IMAGE_PIXELS", "10000")
    assert read_image(str(small))[0].shape == (100, 100, 3)


def test_file_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"\xff\xd8" + b"\0" * 5000)
    monkeypatch.setenv("AGEGENDER_MAX_IMAGE_BYTES", "1000")
    assert "above the" in read_image(str(path))[1]


@pytest.mark.parametrize("value", ["0", "-5", "nan", "lots"])
def test_bad_limit_values_are_one_line_errors(monkeypatch, value, tmp_path):
    monkeypatch.setenv("AGEGENDER_MAX_IMAGE_PIXELS", value)
    result = runner.invoke(app, ["preprocess", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "AGEGENDER_MAX_IMAGE_PIXELS" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_huge_image_in_a_batch_is_reported_and_the_batch_goes_on(tiny_arch, tmp_path):
    import cv2

    blank_png(tmp_path / "huge.png", 12000, 12000)
    cv2.imwrite(str(tmp_path / "ok.png"), np.full((40, 40, 3), 120, np.uint8))
    result = runner.invoke(app, ["predict", str(tmp_path), "--arch", "tiny", "--detector", "none", "--json"])
    assert result.exit_code == 1
    rows = {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert "144 MP" in rows["huge.png"]["error"] and rows["ok.png"]["tiny"]["gender"] in ("male", "female")


class RecordingDetector:
    name = "recording"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, images):
        self.shapes += [image.shape for image in images]
        return [[Detection((10, 20, 50, 60), 0.99, ((10.0, 20.0),) * 5)] for _ in images]


def test_large_photos_are_searched_downscaled_and_boxes_mapped_back():
    inner = RecordingDetector()
    detector = DownscalingDetector(inner, max_side=1000)
    photo, small = np.zeros((3000, 4000, 3), np.uint8), np.zeros((500, 400, 3), np.uint8)
    (big_faces, small_faces) = detector.detect([photo, small])
    assert inner.shapes == [(750, 1000, 3), (500, 400, 3)]
    assert big_faces[0].box == (40, 80, 200, 240) and big_faces[0].landmarks[0] == (40.0, 80.0)
    assert small_faces[0].box == (10, 20, 50, 60)


def test_limits_default_values_are_stated():
    assert current_limits() == Limits()
    assert Limits().max_image_pixels == 50_000_000


MTCNN_ON_A_BIG_PHOTO = """
import sys, time
import numpy as np
from agegender_cli.faces.detection import make_detector
from agegender_cli.faces.inputs import read_image
image, error = read_image(sys.argv[1])
assert error is None, error
start = time.perf_counter()
faces = make_detector("mtcnn").detect([image])
# VmHWM is this process's own peak; ru_maxrss would keep the forking parent's (pytest's) peak across exec
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(peak_kb / 1024, time.perf_counter() - start, len(faces[0]))
"""


@pytest.mark.integration
def test_mtcnn_on_a_45_megapixel_photo_stays_under_2_gb(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8), (8200, 5500))
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), texture, [cv2.IMWRITE_JPEG_QUALITY, 60])
    out = subprocess.run([sys.executable, "-c", MTCNN_ON_A_BIG_PHOTO, str(path)], capture_output=True, text=True,
                         timeout=600, check=True)
    peak_mb, seconds, _faces = map(float, out.stdout.split())
    assert peak_mb < 2048, f"peak {peak_mb:.0f} MB"


def test_a_manifest_naming_a_device_or_a_pipe_is_refused_per_row(tiny_arch, tmp_path):
    """Rows naming /dev/zero or a FIFO once read without end (23 GB) or blocked forever; now each is one failed
    row and the rest is evaluated."""
    import os

    import cv2

    for i in range(4):
        cv2.imwrite(str(tmp_path / f"30_{i % 2}_0_2017{i}.jpg"), np.full((48, 48, 3), 60 + 20 * i, np.uint8))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    rows = ["path,age,gender,race,age_class,split"]
    rows += [f"{tmp_path}/30_{i % 2}_0_2017{i}.jpg,30,{i % 2},0,4,test" for i in range(4)]
    rows += ["/dev/zero,30,0,0,4,test", f"{fifo},30,1,0,4,test"]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(tmp_path / "manifest.csv"),
                                 "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["results"]["tiny"]["n"] == 4
    reasons = {Path(f["file"]).name: f["error"] for f in data["failed"]}
    assert "not a regular file" in reasons["zero"] and "not a regular file" in reasons["pipe.jpg"]
    image, error = read_image("/dev/zero")
    assert image is None and "device, pipe or socket" in error
