"""`--detector auto` (predict's default): face crops taken whole, faces found in photos."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import make_image
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.config import PredictConfig
from agegender_cli.faces import records
from agegender_cli.faces.detection import AutoCropDetector, Detection, WholeImageDetector, pick_face
from agegender_cli.faces.inputs import Frame

runner = CliRunner()
CROP, PHOTO = (200, 200, 3), (480, 640, 3)


def _face(x1: int, y1: int, x2: int, y2: int, score: float = 0.99) -> Detection:
    return Detection((x1, y1, x2, y2), score)


def test_auto_rule_takes_a_face_crop_whole_and_a_photo_face_as_found():
    whole_crop = ((0, 0, 200, 200), True)
    # MTCNN on a UTKFace chip: 0.87 x 1.10 of it, leaving it at the top
    assert pick_face(CROP, [_face(13, -18, 187, 202)], auto=True) == whole_crop
    assert pick_face(CROP, [_face(20, 10, 180, 190)], auto=True) == whole_crop  # inside, but fills it
    assert pick_face(CROP, [], auto=True) is None  # no face found: crop_faces' padded test decides, not the size
    assert pick_face(PHOTO, [], auto=True) is None  # a photo where no face is found
    assert pick_face(PHOTO, [_face(300, 200, 420, 330)], auto=True) == ((300, 200, 420, 330), False)
    assert pick_face(PHOTO, [_face(100, 50, 380, 330)], auto=True) == ((100, 50, 380, 330), False)  # 0.26 of it
    # a face cut by the top of a photo is still a face in the photo, not a crop
    assert pick_face(PHOTO, [_face(100, -20, 230, 120)], auto=True) == ((100, -20, 230, 120), False)
    assert pick_face(PHOTO, [_face(50, 0, 600, 480)], auto=True) == ((0, 0, 640, 480), True)  # a close-up
    assert pick_face(PHOTO, [_face(30, -40, 420, 430)], auto=True) == ((0, 0, 640, 480), True)  # cut close-up
    assert pick_face(CROP, [_face(13, -18, 187, 202)]) == ((13, -18, 187, 202), False)  # auto off


def test_pick_takes_the_largest_face_or_the_one_nearest_the_centre():
    big_aside, small_centred = _face(10, 10, 200, 220), _face(280, 200, 360, 290)
    assert pick_face(PHOTO, [small_centred, big_aside]) == (big_aside.box, False)
    assert pick_face(PHOTO, [big_aside, small_centred], pick="centre") == (small_centred.box, False)
    assert pick_face(PHOTO, [], pick="centre") is None
    # a labelled box still wins over either rule
    assert pick_face(PHOTO, [big_aside, small_centred], (15, 15, 195, 210), pick="centre") == (big_aside.box, False)


def test_auto_detector_reports_a_whole_image_face_and_keeps_photo_faces():
    found = [_face(13, -18, 187, 202, 0.97), _face(150, 150, 170, 170, 0.92)]
    (whole,) = AutoCropDetector._pick(CROP, found)
    assert whole == Detection((0, 0, 200, 200), 0.97, whole=True)
    in_photo = [_face(300, 200, 420, 330), _face(40, 60, 120, 150)]
    assert AutoCropDetector._pick(PHOTO, in_photo) == in_photo


def test_a_whole_image_face_is_the_image_itself_and_its_record_says_so():
    image = make_image(3, 120)
    frames = [Frame("crop.jpg", None, image)]
    detections, owners, crops = records.detect_and_crop(frames, AutoCropDetector(WholeImageDetector()),
                                                        {"a": "utkface", "b": "opencv20"})
    assert detections[0][0].whole and len(owners) == 1
    assert all(np.array_equal(crops[arch][0], image) for arch in ("a", "b"))  # no framing around a crop
    record = records.face_record("crop.jpg", None, 0, detections[0][0], {})
    assert record["note"] == records.WHOLE_IMAGE_NOTE and record["box"] == [0, 0, 120, 120]
    assert "note" not in records.face_record("p.jpg", None, 0, _face(1, 2, 30, 40), {})


def test_auto_is_predicts_default():
    assert PredictConfig().detector == "auto"


@pytest.mark.integration
def test_predict_by_default_takes_real_utkface_crops_whole(shared_utkface, tmp_path):
    names = ("10_1_0_20170109204617417.jpg.chip.jpg", "27_0_0_20170105164657988.jpg.chip.jpg",
             "24_1_4_20170103235057348.jpg.chip.jpg")
    for name in names:
        shutil.copyfile(shared_utkface / name, tmp_path / name)
    result = runner.invoke(app, ["predict", str(tmp_path), "--arch", "both", "--json"])
    assert result.exit_code == 0, result.output
    faces = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(faces) == 3
    for face in faces:
        assert face["note"] == records.WHOLE_IMAGE_NOTE and face["box"] == [0, 0, 200, 200] and face["score"] > 0.9
        assert face["facenet"]["gender"] in ("male", "female") and face["caffenet"]["age"]
    table = runner.invoke(app, ["predict", str(tmp_path / names[0]), "--arch", "facenet"])
    assert "whole image" in table.stdout
