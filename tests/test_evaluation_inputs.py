"""What evaluate says about its images: how many were skipped and why, and which were in a model's training set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_image
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.data.fingerprints import (
    count_overlap,
    fingerprint_file,
    hash_images,
    image_hash,
    read_fingerprints,
    write_fingerprints,
)

runner = CliRunner()


def test_evaluate_counts_skipped_images_by_reason(tiny_arch, tiny_utkface):
    """tiny_utkface: a gap age, a bad gender and a malformed name, a text file, a corrupt JPEG."""
    expected = {"gap_age": 1, "bad_name": 2, "not_image": 1, "unreadable": 1, "no_face": 0, "listed_twice": 0,
                "other": 0}
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--images", str(tiny_utkface), "--json",
                                 "--bootstrap", "10"])
    assert result.exit_code == 1, result.output  # the corrupt JPEG could not be read
    data = json.loads(result.stdout)
    assert data["skipped"] == expected and data["results"]["tiny"]["n"] == 192
    left_out = {Path(item["file"]).name: item["reason"] for item in data["provenance"]["data"]["left_out_by_name"]}
    assert "between the age classes" in left_out["35_0_0_20170101000000000.jpg"]
    assert "malformed" in left_out["hello.jpg"]
    result = runner.invoke(app, ["compare", "--arch", "tiny", "--images", str(tiny_utkface), "--bootstrap", "10"])
    assert "skipped 5 images: 1 age between the classes (gap_age), 2 not a UTKFace name (bad_name), 1 not an " \
           "image (not_image), 1 unreadable (unreadable)" in " ".join(result.stderr.split())
    assert "skipped " in result.stderr and "25_1_0_20170101000000002.jpg" in result.stderr  # the unreadable, named


def test_nothing_skipped_says_nothing(tiny_arch, tmp_path):
    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70)):
        cv2.imwrite(str(tmp_path / f"{age}_{k % 2}_1_2017010{k}12345678.jpg"), make_image(k, 32))
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--images", str(tmp_path), "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.stderr
    data = json.loads(runner.invoke(app, ["evaluate", "--arch", "tiny", "--images", str(tmp_path), "--json",
                                          "--bootstrap", "10"]).stdout)
    assert not any(data["skipped"].values()) and data["training_overlap"] == {}  # tiny keeps no fingerprints


def test_the_report_counts_every_image_once_and_names_the_gap_ages_the_manifest_left_out(tiny_arch, tmp_path):
    """A report said "0 skipped" while gap-age faces were dropped: now a "Data and coverage" table counts each
    image once by what happened to it, and the ages --gaps drop left out of the manifest are said (stderr too)."""
    from conftest import write_jpeg

    for k, age in enumerate((1, 5, 10, 18, 28, 40, 50, 70, 3, 35, 22, 7)):  # 3, 35, 22, 7: between the classes
        write_jpeg(tmp_path / "faces" / f"{age}_{k % 2}_1_2017010{k % 9}1234567{k % 10}.jpg", seed=k, size=32)
    (tmp_path / "faces" / "unreadable_0_1_20170101123456789.jpg").write_bytes(b"x")
    assert runner.invoke(app, ["dataset", str(tmp_path / "faces"), "--out", str(tmp_path / "ds")]).exit_code == 0
    manifest, report = tmp_path / "ds" / "manifest.csv", tmp_path / "report.md"
    result = runner.invoke(app, ["compare", "--arch", "tiny", "--manifest", str(manifest), "--split", "all",
                                 "--report", str(report), "--bootstrap", "10", "--json"])
    assert result.exit_code == 0, result.output
    cover = json.loads(result.stdout)["coverage"]
    assert cover["counts"] == {"gender_and_age": 8} and cover["seen"] == 8 == cover["scored"]
    assert cover["manifest_build"] == {"gaps": "drop", "gap_age": 4}
    said = " ".join(result.stderr.split())
    assert "4 images with an age between the classes were left out of" in said and "--gaps keep" in said
    text = report.read_text()
    assert "Data and coverage" in text and "4 images with an age between the classes were left out" in text
    assert "Protocol: deviations from the student report" in text and "## References" in text
    assert "8 faces scored of 8 images seen" in text  # the first line counts what the coverage table details

    assert runner.invoke(app, ["dataset", str(tmp_path / "faces"), "--out", str(tmp_path / "kept"), "--gaps",
                               "keep"]).exit_code == 0
    result = runner.invoke(app, ["compare", "--arch", "tiny", "--manifest", str(tmp_path / "kept" / "manifest.csv"),
                                 "--split", "all", "--bootstrap", "10", "--json"])
    cover = json.loads(result.stdout)["coverage"]
    assert cover["counts"] == {"gender_and_age": 8, "years_only": 4} and cover["years_faces"] == 12
    assert "left out of" not in result.stderr


def test_a_build_record_speaks_only_for_the_manifest_it_was_written_with(tmp_path):
    from conftest import write_jpeg

    from agegender_cli.data.utkface import read_build_record

    for k, age in enumerate((28, 35, 40)):
        write_jpeg(tmp_path / "faces" / f"{age}_{k % 2}_1_2017010{k}123456789.jpg", size=32)
    assert runner.invoke(app, ["dataset", str(tmp_path / "faces"), "--out", str(tmp_path / "ds")]).exit_code == 0
    manifest = tmp_path / "ds" / "manifest.csv"
    assert read_build_record(manifest)["gap_age"] == 1
    manifest.write_text(manifest.read_text().rsplit("\n", 2)[0] + "\n")  # rewritten since: another manifest
    assert read_build_record(manifest) is None


def test_a_dataset_json_agegender_did_not_write_is_kept(tmp_path):
    from conftest import write_jpeg

    write_jpeg(tmp_path / "faces" / "28_0_1_20170101123456789.jpg", size=32)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset.json").write_text('{"mine": true}')
    result = runner.invoke(app, ["dataset", str(tmp_path / "faces"), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 1 and "dataset.json is not one agegender wrote" in " ".join(result.output.split())
    assert (tmp_path / "ds" / "dataset.json").read_text() == '{"mine": true}'
    assert not (tmp_path / "ds" / "manifest.csv").exists()


def test_pixel_hash_matches_the_same_pixels_under_any_name_and_lossless_format(tmp_path):
    image = make_image(1, 48)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    cv2.imwrite(str(tmp_path / "renamed.bmp"), image)
    changed = image.copy()
    changed[10, 10, 0] ^= 1
    cv2.imwrite(str(tmp_path / "changed.png"), changed)
    assert image_hash(cv2.imread(str(tmp_path / "a.png"))) == image_hash(cv2.imread(str(tmp_path / "renamed.bmp")))
    assert image_hash(image) != image_hash(changed)
    assert image_hash(image) != image_hash(image.reshape(24, 96, 3))  # same bytes, another shape
    hashes = hash_images([tmp_path / "a.png", tmp_path / "renamed.bmp", tmp_path / "changed.png"])
    assert hashes.dtype == np.uint64 and len(hashes) == 2 and list(hashes) == sorted(hashes)
    stored = write_fingerprints(hash_images([tmp_path / "a.png"]), tmp_path / "model.pt")
    assert stored == fingerprint_file(tmp_path / "model.pt") == tmp_path / "model.train_fingerprints.npy"
    fingerprints = read_fingerprints(tmp_path / "model.pt")
    assert count_overlap([image_hash(image), image_hash(changed), image_hash(image)], fingerprints) == 2
    assert count_overlap([], fingerprints) == 0
    (tmp_path / "folder_model").mkdir()
    assert read_fingerprints(tmp_path / "folder_model") is None  # a model without fingerprints: no check
    assert fingerprint_file(tmp_path / "folder_model") == tmp_path / "folder_model" / "train_fingerprints.npy"


@pytest.mark.parametrize("arch", ["facenet", "caffenet"])
def test_bundled_models_carry_small_fingerprints(arch):
    from agegender_cli.archs import registry

    path = fingerprint_file(registry.get(arch).bundled)
    assert path.stat().st_size < 1_000_000
    assert len(read_fingerprints(registry.get(arch).bundled)) > 5000


def _copies(source: Path, trained: bool, folder: Path, count: int = 4) -> Path:
    """`count` UTKFace crops of the 8 classes that the bundled models did (or did not) learn from, told by their
    fingerprints, copied into `folder`."""
    from agegender_cli.archs.facenet import ARCH
    from agegender_cli.data.utkface import Record, label_record
    from agegender_cli.faces.inputs import read_image

    seen = set(read_fingerprints(ARCH.bundled).tolist())
    folder.mkdir()
    picked = 0
    for path in sorted(source.glob("*.jpg.chip.jpg")):
        image, _ = read_image(str(path))
        if image is None or not isinstance(label_record(path, "drop"), Record):
            continue
        if (image_hash(image) in seen) == trained:
            shutil.copyfile(path, folder / path.name)
            picked += 1
            if picked == count:
                break
    return folder


@pytest.mark.integration
def test_images_from_the_training_split_are_flagged_and_test_images_are_not(tmp_path, shared_utkface):
    trained = _copies(shared_utkface, True, tmp_path / "train")
    unseen = _copies(shared_utkface, False, tmp_path / "test")
    result = runner.invoke(app, ["evaluate", "--arch", "facenet", "--images", str(trained), "--json",
                                 "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["training_overlap"] == {"facenet": 4}
    assert "4 of 4 images were in the training set of the facenet model" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["compare", "--images", str(unseen), "--json", "--bootstrap", "10"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["training_overlap"] == {"facenet": 0, "caffenet": 0, "fused": 0}
    assert "training set" not in result.stderr


def test_a_manifest_row_listed_twice_counts_once(tiny_arch, tmp_path):
    """The same image on two rows (or through a link) was scored twice without a word."""
    import cv2

    for i in range(4):
        cv2.imwrite(str(tmp_path / f"30_{i % 2}_0_2017{i}.jpg"), np.full((40, 40, 3), 50 + 30 * i, np.uint8))
    (tmp_path / "link.jpg").symlink_to(tmp_path / "30_0_0_20170.jpg")
    rows = ["path,age,gender,race,age_class,split"]
    rows += [f"{tmp_path}/30_{i % 2}_0_2017{i}.jpg,30,{i % 2},0,4,test" for i in range(4)]
    rows += [f"{tmp_path}/30_1_0_20171.jpg,30,1,0,4,test", f"{tmp_path}/link.jpg,30,0,0,4,test"]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(tmp_path / "manifest.csv"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["results"]["tiny"]["n"] == 4 and data["skipped"]["listed_twice"] == 2
