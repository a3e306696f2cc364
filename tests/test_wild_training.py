"""Training for photos: a person's photos in one split, faces framed as `predict` frames them (detect, align,
cached), photo-like augmentation, and images that lack one task's label."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_own_datasets import chips_in_photos, faces, run_dataset, save

from agegender_cli.archs.facenet.config import FacenetTrainConfig
from agegender_cli.data.augment import make_view, photo_like
from agegender_cli.data.chips import chip_matrix, locate_records
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.align import TEMPLATE, align_face, warp_chip
from agegender_cli.faces.detection import Detection, crop_face


def test_a_persons_photos_stay_in_one_split(tmp_path):
    lines = ["path,gender,person"]
    for i, image in enumerate(faces(60, size=40)):
        save(tmp_path / "imgs" / f"{i}.png", image)
        lines.append(f"imgs/{i}.png,{('male', 'female')[i % 2]},person{i % 12}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    summary = run_dataset(str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.csv"), "--out",
                          str(tmp_path / "ds"), "--duplicates", "ignore")
    assert summary["labels"]["groups"] == 12
    splits: dict[str, set[str]] = {}
    for record in read_manifest(tmp_path / "ds" / "manifest.csv"):
        splits.setdefault(record.group, set()).add(record.split)
    assert len(splits) == 12 and all(len(s) == 1 for s in splits.values())
    assert {s for found in splits.values() for s in found} == {"train", "val", "test"}


def test_a_chip_matrix_frames_the_face_as_predict_does():
    rng = np.random.default_rng(1)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (7, 7), 0)
    landmarks = tuple(map(tuple, TEMPLATE * 0.8 + np.array([90.0, 40.0])))
    aligned = Detection((90, 40, 250, 200), 0.99, landmarks)
    warped = warp_chip(photo, chip_matrix(aligned, photo.shape))
    assert np.abs(warped.astype(int) - align_face(photo, landmarks)).max() <= 1
    boxed = Detection((100, 60, 180, 160), 0.99)  # no landmarks (Haar): the measured box framing, resized
    expected = cv2.resize(crop_face(photo, boxed.box), (200, 200), interpolation=cv2.INTER_LINEAR)
    assert np.abs(warp_chip(photo, chip_matrix(boxed, photo.shape)).astype(int) - expected).mean() < 4
    whole = Detection((0, 0, 400, 300), 1.0, whole=True)
    assert np.abs(warp_chip(photo, chip_matrix(whole, photo.shape)).astype(int)
                  - cv2.resize(photo, (200, 200))).mean() < 4


def test_wild_views_vary_and_keep_their_size():
    chip = faces(1, size=200)[0]
    rng = np.random.default_rng(0)
    views = [make_view(chip, 160, rng, "wild") for _ in range(20)]
    assert all(v.shape == (160, 160, 3) and v.dtype == np.uint8 for v in views)
    assert len({v.tobytes() for v in views}) == 20
    gray = [v for v in views if np.array_equal(v[..., 0], v[..., 1]) and np.array_equal(v[..., 1], v[..., 2])]
    assert len(gray) < 10  # grayscale now and then, not always
    # the same seed gives the same views: cached features are reproducible
    again = [make_view(chip, 160, np.random.default_rng(0), "wild") for _ in range(1)]
    assert np.array_equal(again[0], views[0])
    assert photo_like(chip, np.random.default_rng(3)).shape == chip.shape


@pytest.mark.integration
def test_located_faces_are_cached_and_a_blank_image_has_none(tmp_path, monkeypatch, shared_utkface):
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    chip = sorted(shared_utkface.glob("*.jpg"))[0]
    photo = np.full((400, 500, 3), 90, np.uint8)
    photo[100:300, 150:350] = cv2.imread(str(chip))
    save(tmp_path / "photo.jpg", photo)
    save(tmp_path / "blank.png", np.full((300, 300, 3), 128, np.uint8))
    from agegender_cli.data.utkface import Record

    records = [Record(tmp_path / "photo.jpg", 30, 0, None, 4), Record(tmp_path / "blank.png", 30, 0, None, 4),
               Record(chip, 30, 0, None, 4)]
    matrices = locate_records(records, "auto")
    assert matrices[0] is not None and matrices[1] is None and matrices[2] is not None
    face = warp_chip(photo, matrices[0])
    # the face comes out where the chip had it: the chip pasted at (150, 100) aligns close to the chip itself
    assert np.abs(face.astype(int) - cv2.imread(str(chip)).astype(int)).mean() < 40
    cached = list((tmp_path / "home" / "chips").glob("auto-*.json"))
    assert len(cached) == 1 and len(json.loads(cached[0].read_text())) == 3
    monkeypatch.setattr("agegender_cli.faces.detection.make_detector", lambda *a, **k: pytest.fail("detected again"))
    again = locate_records(records, "auto")
    assert all((a is None) == (b is None) for a, b in zip(matrices, again, strict=True))


def test_pick_centre_trains_on_the_middle_face_and_is_cached_apart(tmp_path, monkeypatch, shared_utkface):
    """LFW's labelled person sits in the middle: `--pick centre` frames that face, not a larger one beside it."""
    monkeypatch.setenv("AGEGENDER_HOME", str(tmp_path / "home"))
    first, second = sorted(shared_utkface.glob("*.jpg"))[:2]
    photo = np.full((600, 800, 3), 90, np.uint8)
    photo[20:280, 20:280] = cv2.resize(cv2.imread(str(first)), (260, 260))
    photo[210:390, 310:490] = cv2.resize(cv2.imread(str(second)), (180, 180))
    save(tmp_path / "two.jpg", photo)
    from agegender_cli.data.utkface import Record

    records = [Record(tmp_path / "two.jpg", 30, 0, None, 4)]

    def chip_centre(matrix: np.ndarray) -> np.ndarray:
        inverse = cv2.invertAffineTransform(matrix)
        return inverse @ np.array([100.0, 100.0, 1.0])

    (largest,) = locate_records(records, "auto")
    (centre,) = locate_records(records, "auto", pick="centre")
    assert np.linalg.norm(chip_centre(largest) - (150, 150)) < 40
    assert np.linalg.norm(chip_centre(centre) - (400, 300)) < 40
    (cache,) = (tmp_path / "home" / "chips").glob("auto-*.json")
    assert len(json.loads(cache.read_text())) == 2


def test_train_refuses_pick_without_a_detector():
    from typer.testing import CliRunner

    from agegender_cli.cli.app import app

    result = CliRunner().invoke(app, ["train", "--arch", "facenet", "--pick", "centre"])
    assert result.exit_code == 2 and "--detector" in result.output


@pytest.mark.integration
def test_facenet_trains_on_photos_with_one_label_missing(tmp_path, shared_utkface):
    """Gender-only photos (as LFW) and class faces together, framed by the detector, with wild views."""
    from agegender_cli.archs.facenet.train import train_facenet
    from agegender_cli.progress import Reporter

    class Heard(Reporter):
        def __init__(self) -> None:
            self.messages: list[str] = []

        def message(self, text: str) -> None:
            self.messages.append(text)

    rows = ["path,age,gender"]
    chips = sorted(shared_utkface.glob("*.jpg"))[:40]
    for i, (name, age, gender) in enumerate(chips_in_photos(tmp_path / "photos", chips, 320, 360, (40, 4))):
        rows.append(f"{name},{age if i % 3 else ''},{gender}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    run_dataset(str(tmp_path / "photos"), "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "ds"),
                "--duplicates", "ignore")
    cfg = FacenetTrainConfig(manifest=tmp_path / "ds" / "manifest.csv", out=tmp_path / "run", preprocess="none",
                             views=2, epochs=2, batch_size=8, lr=1e-3, detector="auto", augment="wild",
                             precision="fp32")
    result = train_facenet(cfg)
    assert result.epochs_run == 2 and Path(result.checkpoint).is_file()
    history = json.loads(Path(result.history).read_text())
    assert all(np.isfinite(h["train_loss"]) and 0 <= h["val_gender_acc"] <= 1 for h in history)
    saved = torch.load(result.checkpoint, weights_only=True)
    assert saved["config"]["detector"] == "auto" and saved["config"]["augment"] == "wild"
    # the same framing: the features come from the cache
    train_facenet(replace(cfg, out=tmp_path / "run2", epochs=1), second := Heard())
    assert any("features from the cache" in m for m in second.messages)


@pytest.mark.integration
def test_caffenet_trains_on_photos_with_one_label_missing(tmp_path, shared_utkface):
    """`agegender train --arch caffenet --detector auto --augment wild` on photos, a third of them gender-only."""
    from typer.testing import CliRunner

    from agegender_cli.cli.app import app

    rows = ["path,age,gender"]
    chips = sorted(shared_utkface.glob("*.jpg"))[100:130]
    for i, (name, age, gender) in enumerate(chips_in_photos(tmp_path / "photos", chips, 300, 340, (30, 5))):
        rows.append(f"{name},{age if i % 3 else ''},{gender}")
    save(tmp_path / "photos" / "blank.jpg", np.full((300, 340, 3), 128, np.uint8))
    rows.append("photos/blank.jpg,30,female")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    run_dataset(str(tmp_path / "photos"), "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "ds"),
                "--duplicates", "ignore")
    result = CliRunner().invoke(app, ["train", "--arch", "caffenet", "--manifest", str(tmp_path / "ds/manifest.csv"),
                                      "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8",
                                      "--detector", "auto", "--augment", "wild", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs_run"] == 1 and 0 <= summary["val"]["gender_acc"] <= 1
    assert all((tmp_path / "run" / f"{net}.caffemodel").is_file() for net in ("gender_net", "age_net"))
    refused = CliRunner().invoke(app, ["train", "--arch", "caffenet", "--manifest", str(tmp_path / "ds/manifest.csv"),
                                       "--out", str(tmp_path / "run2"), "--detector", "sideways"])
    assert refused.exit_code == 2
