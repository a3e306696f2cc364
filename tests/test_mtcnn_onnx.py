"""The torch-free MTCNN (ONNX Runtime + numpy) finds what facenet-pytorch's MTCNN finds, without importing torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agegender_cli.errors import AgeGenderError
from agegender_cli.faces import mtcnn_onnx
from agegender_cli.faces.detection import MtcnnDetector, box_iou, mtcnn_engine

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
# Measured on the examples, 200 UTKFace crops and 30 scenes: boxes and landmarks within 2e-4 px, probabilities
# within 3e-7 (ONNX Runtime's and torch's float32 kernels round differently; every other step is bit-exact).
MIN_IOU = 0.999
MAX_LANDMARK_PX = 0.05
MAX_PROB = 1e-4
# Faces in the examples, cut generously around the box MTCNN finds (x1, y1, x2, y2).
EXAMPLE_FACES = {"astronaut.jpg": (150, 30, 300, 200), "grace_hopper.jpg": (150, 90, 380, 370)}


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory) -> Path:
    """A cache folder holding the three nets, exported once for this module."""
    home = tmp_path_factory.mktemp("agegender_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGEGENDER_HOME", str(home))
        mtcnn_onnx.net_sessions(log=lambda message: None)
    return home


@pytest.fixture(scope="module")
def onnx_mtcnn(onnx_home) -> mtcnn_onnx.OnnxMtcnn:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGEGENDER_HOME", str(onnx_home))
        return mtcnn_onnx.OnnxMtcnn(log=pytest.fail)  # the cache is warm: exporting again would be a failure


@pytest.fixture(scope="module")
def torch_mtcnn():
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, min_face_size=20)


def rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def scene(faces: list[np.ndarray], seed: int) -> np.ndarray:
    """Faces pasted into a 640x480 gray canvas at random sizes (40-180 px), one per third of its width."""
    rng = np.random.default_rng(seed)
    canvas = np.full((480, 640, 3), 127, np.uint8)
    for slot, face in enumerate(faces[:3]):
        side = int(rng.integers(40, 181))
        x = slot * 213 + int(rng.integers(0, 213 - side + 1))
        y = int(rng.integers(0, 480 - side + 1))
        canvas[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return canvas


def assert_agree(onnx_mtcnn, torch_mtcnn, image: np.ndarray) -> int:
    """Both engines find the same faces in the same order; returns how many."""
    import torch

    boxes, probs, points = onnx_mtcnn.detect(image)
    with torch.no_grad():
        ref_boxes, ref_probs, ref_points = (found[0] for found in torch_mtcnn.detect([image], landmarks=True))
    if ref_boxes is None:
        assert boxes is None and probs is None and points is None
        return 0
    assert boxes is not None and boxes.shape == ref_boxes.shape and points.shape == ref_points.shape
    for box, ref_box in zip(boxes, ref_boxes, strict=True):
        assert float_iou(box, ref_box) >= MIN_IOU
    assert np.abs(points - ref_points).max() <= MAX_LANDMARK_PX
    assert np.abs(probs - np.asarray(ref_probs, np.float32)).max() <= MAX_PROB
    return len(boxes)


def float_iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg"])
def test_the_examples_give_facenet_pytorchs_faces(onnx_mtcnn, torch_mtcnn, name):
    assert assert_agree(onnx_mtcnn, torch_mtcnn, rgb(EXAMPLES / name)) == 1


def test_scenes_of_pasted_faces_give_facenet_pytorchs_faces(onnx_mtcnn, torch_mtcnn):
    faces = [rgb(EXAMPLES / name)[y1:y2, x1:x2] for name, (x1, y1, x2, y2) in EXAMPLE_FACES.items()]
    found = [assert_agree(onnx_mtcnn, torch_mtcnn, scene([faces[k % 2], faces[(k + 1) % 2], faces[k % 2]], k))
             for k in range(4)]
    assert sum(found) >= 8  # most of the 12 pasted faces are found, so the comparison is about faces


@pytest.mark.parametrize("shape", [(200, 300), (20, 20), (25, 400), (480, 640)])
def test_images_without_faces_give_none_like_facenet_pytorch(onnx_mtcnn, torch_mtcnn, shape):
    noise = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert assert_agree(onnx_mtcnn, torch_mtcnn, np.full((*shape, 3), 90, np.uint8)) == 0
    assert_agree(onnx_mtcnn, torch_mtcnn, noise)


@pytest.mark.integration
def test_utkface_crops_and_scenes_of_them_give_facenet_pytorchs_faces(onnx_mtcnn, torch_mtcnn, shared_utkface):
    files = sorted(shared_utkface.glob("*.jpg"))
    crops = [rgb(path) for path in files[:: max(1, len(files) // 30)][:30]]
    found = [assert_agree(onnx_mtcnn, torch_mtcnn, crop) for crop in crops]
    assert sum(found) >= 25
    scenes = [scene(crops[3 * k : 3 * k + 3], seed=k) for k in range(5)]
    assert sum(assert_agree(onnx_mtcnn, torch_mtcnn, image) for image in scenes) >= 10


def test_area_resampling_is_torchs_interpolate_area_bit_for_bit():
    import torch
    from torch.nn.functional import interpolate

    rng = np.random.default_rng(1)
    for _ in range(40):
        height, width, out_height, out_width = (int(v) for v in rng.integers(3, 120, 4))
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        tensor = torch.as_tensor(image[None]).permute(0, 3, 1, 2).float()
        expected = interpolate(tensor, size=(out_height, out_width), mode="area")[0].permute(1, 2, 0).numpy()
        assert np.array_equal(mtcnn_onnx.area_resize(image, out_height, out_width), expected)
        corners = np.array([[1, 2, width, height], [0, 0, 2, 1]])
        regions = mtcnn_onnx.AreaResampler(image).regions(corners, 24)
        for (x1, y1, x2, y2), region in zip(corners, regions, strict=True):
            crop = interpolate(tensor[:, :, y1:y2, x1:x2], size=(24, 24), mode="area")[0].permute(1, 2, 0)
            assert np.array_equal(region, crop.numpy())


def test_nms_keeps_what_torchvision_keeps():
    import torch
    from torchvision.ops import nms

    rng = np.random.default_rng(2)
    corners = rng.uniform(0, 100, (300, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (300, 2)).astype(np.float32)], axis=1)
    scores = rng.random(300).astype(np.float32)
    for threshold in (0.5, 0.7):
        expected = nms(torch.as_tensor(boxes), torch.as_tensor(scores), threshold).numpy()
        assert np.array_equal(mtcnn_onnx.nms(boxes, scores, threshold), expected)


def test_the_detector_gives_the_same_detections_on_either_engine(onnx_home, monkeypatch):
    monkeypatch.setenv("AGEGENDER_HOME", str(onnx_home))
    bgr = cv2.imread(str(EXAMPLES / "astronaut.jpg"))
    onnx = MtcnnDetector(engine="onnx", log=pytest.fail)
    reference = MtcnnDetector(engine="torch")
    assert (onnx.engine, reference.engine) == ("onnx", "torch")
    found, expected = onnx.detect([bgr])[0], reference.detect([bgr])[0]
    assert [face.box for face in found] == [face.box for face in expected]
    for face, ref in zip(found, expected, strict=True):
        assert face.score == pytest.approx(ref.score, abs=MAX_PROB)
        assert np.allclose(face.landmarks, ref.landmarks, atol=MAX_LANDMARK_PX)
    assert box_iou(found[0].box, expected[0].box) == 1.0


def test_engine_auto_is_onnx_on_the_cpu_and_torch_on_a_gpu():
    assert mtcnn_engine("auto", "cpu") == "onnx"
    assert mtcnn_engine("auto", "cuda") == "torch"
    assert mtcnn_engine("onnx", "cuda") == "onnx"
    with pytest.raises(AgeGenderError, match="unknown MTCNN engine"):
        mtcnn_engine("tensorrt", "cpu")


DETECT_WITHOUT_TORCH = """
import sys
import cv2
from agegender_cli.faces.detection import make_detector
faces = make_detector("mtcnn").detect([cv2.imread(sys.argv[1])])[0]
print(len(faces), "torch" in sys.modules)
"""


def test_a_warm_cache_detects_without_importing_torch(onnx_home):
    env = {**os.environ, "AGEGENDER_HOME": str(onnx_home), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", DETECT_WITHOUT_TORCH, str(EXAMPLES / "grace_hopper.jpg")],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.split() == ["1", "False"]
    assert "exporting" not in out.stderr
