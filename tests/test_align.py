"""Faces aligned like the training chips: the similarity transform, and chips turned, scaled and moved inside a
larger photo that still get the chip's own classes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agegender_cli.faces.align import CHIP_SIDE, TEMPLATE, align_face, similarity
from agegender_cli.faces.detection import Detection, crop_face, face_crop


def test_similarity_recovers_a_turn_a_scale_and_a_shift() -> None:
    angle, scale, shift = np.deg2rad(17), 1.3, np.array([12.0, -40.0])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (scale * turn @ TEMPLATE.T).T + shift
    matrix = similarity(moved, TEMPLATE)
    back = (matrix[:, :2] @ moved.T).T + matrix[:, 2]
    assert np.abs(back - TEMPLATE).max() < 1e-3


def test_a_face_on_the_template_comes_out_as_it_was() -> None:
    rng = np.random.default_rng(0)
    chip = cv2.GaussianBlur(rng.integers(0, 256, (CHIP_SIDE, CHIP_SIDE, 3), dtype=np.uint8), (9, 9), 0)
    assert np.abs(align_face(chip, TEMPLATE).astype(int) - chip).max() <= 1
    assert align_face(chip, TEMPLATE, side=100).shape == (100, 100, 3)


def test_which_faces_are_aligned() -> None:
    image = np.zeros((300, 300, 3), np.uint8)
    marked = Detection((50, 50, 250, 250), 0.99, landmarks=tuple(map(tuple, TEMPLATE + 50)))
    assert face_crop(image, marked, "utkface").shape == (CHIP_SIDE, CHIP_SIDE, 3)  # MTCNN: aligned
    plain = Detection((50, 50, 250, 250), 0.99)  # Haar: no landmarks, the measured framing
    assert np.array_equal(face_crop(image, plain, "utkface"), crop_face(image, plain.box, framing="utkface"))
    assert face_crop(image, marked, "opencv20").shape != (CHIP_SIDE, CHIP_SIDE, 3)  # the original nets' framing
    whole = Detection((0, 0, 300, 300), 0.99, landmarks=marked.landmarks, whole=True)
    assert face_crop(image, whole, "utkface").shape == (300, 300, 3)  # a face crop taken whole stays whole


@pytest.mark.integration
def test_a_chip_turned_scaled_and_moved_in_a_photo_keeps_its_classes(utkface_test_records) -> None:
    """200 test chips, each turned by up to 20 degrees, scaled 0.8-1.3 and moved inside a 420 px photo, found by
    the default detector: the classes the chip itself gets. Measured aligned: gender 93.5-97.3%, age 88.7-92.7%
    (the box framing: age 72.7-87.3%); held here to gender >= 92% and age >= 85%, and to the box framing's age.
    Issue 26 asks for 95% in both: not reached (landmark noise of 4-7 px moves the age class of borderline faces)."""
    from agegender_cli.archs.registry import load_predictor
    from agegender_cli.config import ModelOptions
    from agegender_cli.faces.detection import make_detector
    from agegender_cli.faces.inputs import load_image

    records = utkface_test_records
    chips = [load_image(r.path) for r in records[:: max(1, len(records) // 200)][:200]]
    rng = np.random.default_rng(0)
    scenes = []
    for chip in chips:
        matrix = cv2.getRotationMatrix2D((100, 100), rng.uniform(-20, 20), rng.uniform(0.8, 1.3))
        matrix[:, 2] += 110 + rng.uniform(-60, 60, 2)
        background = np.full((420, 420, 3), [int(v) for v in rng.integers(60, 200, 3)], np.uint8)
        scenes.append(cv2.warpAffine(chip, matrix, (420, 420), dst=background, borderMode=cv2.BORDER_TRANSPARENT))
    detector = make_detector("auto", engine="onnx")
    found = detector.detect(scenes)
    assert sum(bool(f) for f in found) >= 0.99 * len(scenes)
    kept = [i for i, f in enumerate(found) if f]
    faces = [max(found[i], key=lambda d: d.width * d.height) for i in kept]
    for arch in ("facenet", "caffenet"):
        predictor = load_predictor(arch, ModelOptions(engine="onnx", precision="fp32"))
        own = predictor.predict(chips)
        pairs = list(zip(kept, faces, strict=True))
        aligned = predictor.predict([face_crop(scenes[i], face, "utkface") for i, face in pairs])
        boxed = predictor.predict([crop_face(scenes[i], face.box, framing="utkface") for i, face in pairs])
        same = {task: np.mean(getattr(aligned, f"{task}_prob").argmax(1)
                              == getattr(own, f"{task}_prob")[kept].argmax(1)) for task in ("gender", "age")}
        boxed_age = np.mean(boxed.age_prob.argmax(1) == own.age_prob[kept].argmax(1))
        assert same["gender"] >= 0.92 and same["age"] >= 0.85, (arch, same)
        assert same["age"] >= boxed_age, (arch, same["age"], boxed_age)
