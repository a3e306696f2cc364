"""Face detection on real photos, crop framing and annotation drawing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.annotate import draw_annotations
from agegender_cli.faces.detection import (
    DEFAULT_FRAMING,
    Detection,
    box_iou,
    crop_face,
    crop_region,
    face_region,
    make_detector,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHARED_UTKFACE = Path(__file__).resolve().parents[2] / "shared/data/utkface_crop_part1"
# Frontal faces that both detectors find (a child, a man, a woman).
UTKFACE_FILES = (
    "10_1_0_20170109204617417.jpg.chip.jpg",
    "27_0_0_20170105164657988.jpg.chip.jpg",
    "24_1_4_20170103235057348.jpg.chip.jpg",
)
ASTRONAUT_FACE = (180, 60, 269, 173)  # checked by eye on examples/astronaut.jpg

needs_utkface = pytest.mark.skipif(not SHARED_UTKFACE.is_dir(), reason=f"{SHARED_UTKFACE} is missing")


@pytest.fixture(scope="module")
def detectors():
    return {name: make_detector(name) for name in ("mtcnn", "haar")}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.imread(str(EXAMPLES / "astronaut.jpg"))


@pytest.fixture(scope="module")
def astronaut_faces(detectors, astronaut) -> dict[str, list[Detection]]:
    return {name: detector.detect([astronaut])[0] for name, detector in detectors.items()}


def utkface_canvas(sizes: list[int], gap: int = 60) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """UTKFace crops pasted side by side on a gray canvas, and the square each one covers."""
    height = max(sizes) + 2 * gap
    canvas = np.full((height, sum(sizes) + gap * (len(sizes) + 1), 3), 127, np.uint8)
    squares, x = [], gap
    for name, size in zip(UTKFACE_FILES, sizes, strict=False):
        crop = cv2.resize(cv2.imread(str(SHARED_UTKFACE / name)), (size, size), interpolation=cv2.INTER_AREA)
        y = gap + (max(sizes) - size) // 2
        canvas[y : y + size, x : x + size] = crop
        squares.append((x, y, x + size, y + size))
        x += size + gap
    return canvas, squares


@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_one_face_found_on_the_astronaut(astronaut_faces, name):
    found = astronaut_faces[name]
    assert len(found) == 1
    assert box_iou(found[0].box, ASTRONAUT_FACE) > 0.6
    assert 0.9 <= found[0].score <= 1.0


def test_mtcnn_gives_landmarks_inside_the_box(astronaut_faces):
    (face,) = astronaut_faces["mtcnn"]
    x1, y1, x2, y2 = face.box
    assert face.landmarks is not None and len(face.landmarks) == 5
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.landmarks)


@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_no_face_on_a_blank_image(detectors, name):
    assert detectors[name].detect([np.full((200, 300, 3), 90, np.uint8)]) == [[]]


def test_mtcnn_batch_gives_the_same_faces_as_one_by_one(detectors, astronaut, astronaut_faces):
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    batched = detectors["mtcnn"].detect([astronaut, np.zeros((8, 8, 3), np.uint8), flipped, astronaut])
    assert [len(faces) for faces in batched] == [1, 0, 1, 1]
    assert batched[0] == astronaut_faces["mtcnn"]  # exactly: a photo's faces do not depend on its neighbours
    assert batched[3][0].box == batched[0][0].box
    x1, y1, x2, y2 = batched[2][0].box
    assert box_iou((512 - x2, y1, 512 - x1, y2), astronaut_faces["mtcnn"][0].box) > 0.8


def test_min_score_above_one_finds_nothing(astronaut):
    assert make_detector("mtcnn", min_score=1.01).detect([astronaut]) == [[]]


def test_none_detector_takes_the_whole_image():
    image = np.zeros((30, 40, 3), np.uint8)
    assert make_detector("none").detect([image]) == [[Detection((0, 0, 40, 30), 1.0)]]
    assert DEFAULT_FRAMING["none"] == "box"


def test_unknown_detector_and_framing_are_user_errors():
    with pytest.raises(AgeGenderError, match="unknown detector"):
        make_detector("dlib")
    with pytest.raises(AgeGenderError, match="unknown framing"):
        crop_face(np.zeros((10, 10, 3), np.uint8), (0, 0, 5, 5), framing="tight")


def test_utkface_framing_is_a_square_a_bit_larger_and_lower_than_the_box():
    x1, y1, x2, y2 = face_region((100, 100, 200, 200), framing="utkface", shape=(1000, 1000, 3))
    assert x2 - x1 == y2 - y1 == 105
    assert (x1 + x2) / 2 == pytest.approx(150, abs=1)
    assert (y1 + y2) / 2 == pytest.approx(150 + 0.07 * 105, abs=1)


def test_opencv20_framing_pads_20px_and_clips_to_the_image():
    assert face_region((10, 30, 60, 90), framing="opencv20", shape=(100, 200, 3)) == (0, 10, 80, 100)
    assert crop_face(np.zeros((100, 200, 3), np.uint8), (10, 30, 60, 90), framing="opencv20").shape == (90, 80, 3)


def test_crop_outside_the_image_replicates_the_border():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
    crop = crop_region(image, (-2, -1, 2, 2))
    assert crop.shape == (3, 4, 3)
    assert crop[:, :, 0].tolist() == [[0, 0, 0, 1], [0, 0, 0, 1], [4, 4, 4, 5]]
    assert crop_region(image, (10, 10, 12, 12))[:, :, 0].tolist() == [[15, 15], [15, 15]]


def test_crop_of_a_face_at_the_image_corner_keeps_its_size():
    image = np.full((100, 100, 3), 50, np.uint8)
    crop = crop_face(image, (-10, -20, 40, 30), framing="utkface")
    assert crop.shape[0] == crop.shape[1] == 52
    assert (crop == 50).all()


def test_draw_annotations_draws_on_a_copy(astronaut):
    faces = [(ASTRONAUT_FACE, ["female 0.97", "25-32 (0.61)"]), ((0, 0, 30, 30), ["at the edge"])]
    drawn = draw_annotations(astronaut, faces)
    assert drawn.shape == astronaut.shape and drawn is not astronaut
    changed = np.any(drawn != astronaut, axis=2)
    assert changed[60, 180:269].any() and changed[20:60, 180:269].mean() > 0.5  # box line and label above
    assert not changed[300:, 300:].any()
    assert np.array_equal(draw_annotations(astronaut, []), astronaut)


@pytest.mark.integration
@needs_utkface
@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_three_faces_found_where_they_were_pasted(detectors, name):
    canvas, squares = utkface_canvas([200, 150, 180])
    (found,) = detectors[name].detect([canvas])
    assert len(found) == 3
    for face, (x1, y1, x2, y2) in zip(found, squares, strict=True):  # detections come left to right
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        assert x1 < cx < x2 and y1 < cy < y2


@pytest.mark.integration
@needs_utkface
@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_utkface_framing_round_trip(detectors, name):
    canvas, squares = utkface_canvas([200, 120, 160])
    (found,) = detectors[name].detect([canvas])
    framing = DEFAULT_FRAMING[name]
    for face, square in zip(found, squares, strict=True):
        assert box_iou(face_region(face.box, framing=framing, shape=canvas.shape), square) > 0.7
        crop = crop_face(canvas, face.box, framing=framing)
        assert crop.shape[0] == crop.shape[1]
        assert abs(crop.shape[0] - (square[2] - square[0])) < 0.2 * (square[2] - square[0])


def test_one_detector_registry_names_frames_and_builds_every_detector():
    """Detector names were listed in three places and detectors built in three (issue 30)."""
    from agegender_cli import config
    from agegender_cli.faces.detection import make_detector
    from agegender_cli.faces.detectors import NAMES, SPECS, photo_search

    assert config.DETECTORS == config.EVAL_DETECTORS == NAMES == tuple(DEFAULT_FRAMING)
    for name in NAMES:
        assert hasattr(make_detector(name), "detect") and SPECS[name].summary
    assert photo_search("auto") == ("mtcnn", True) and photo_search("haar") == ("haar", False)
    with pytest.raises(ValueError):
        photo_search("none")
