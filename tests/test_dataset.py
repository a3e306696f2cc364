"""Split reproducibility and stratification, archive safety, the manifest."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import make_image

from agegender_cli.config import DatasetConfig
from agegender_cli.data.utkface import Record, build_dataset, extract_archive, read_manifest, stratified_split
from agegender_cli.errors import AgeGenderError


def _records(n_per_stratum: int = 50) -> list[Record]:
    return [Record(Path(f"/x/{c}_{g}_{k}.jpg"), 20, g, 0, c) for c in range(8) for g in (0, 1)
            for k in range(n_per_stratum)]


def test_split_is_reproducible_and_seed_dependent():
    records = _records()
    a, b = stratified_split(records, (0.7, 0.1, 0.2), 0), stratified_split(records[::-1], (0.7, 0.1, 0.2), 0)
    assert a == b
    assert a != stratified_split(records, (0.7, 0.1, 0.2), 1)


def test_split_is_stratified_70_10_20():
    split = stratified_split(_records(50), (0.7, 0.1, 0.2), 0)
    per_stratum = Counter((r.age_class, r.gender, r.split) for r in split)
    for c in range(8):
        for g in (0, 1):
            assert (per_stratum[(c, g, "train")], per_stratum[(c, g, "val")], per_stratum[(c, g, "test")]) == (
                35, 5, 10)


def test_bad_fractions_are_refused():
    with pytest.raises(AgeGenderError):
        stratified_split(_records(2), (0.5, 0.1, 0.2), 0)


def test_build_dataset_skips_every_bad_file_with_its_reason(tiny_utkface, tmp_path):
    summary = build_dataset(DatasetConfig(sources=(tiny_utkface,), out=tmp_path / "out"))
    assert summary["n_usable"] == 8 * 2 * 12
    reasons = {Path(s["file"]).name: s["reason"] for s in summary["skipped"]}
    assert "between the age classes" in reasons["35_0_0_20170101000000000.jpg"]
    assert "not an image" in reasons["readme.txt"]
    assert "gender 3" in reasons["20_3_0_20170101000000001.jpg"]
    assert "cannot decode" in reasons["25_1_0_20170101000000002.jpg"]
    assert "malformed" in reasons["hello.jpg"]
    assert summary["n_files"] == summary["n_usable"] + len(reasons)
    records = read_manifest(Path(summary["manifest"]))
    assert len(records) == summary["n_usable"]
    assert Counter(r.split for r in records) == {"train": 144, "val": 16, "test": 32}  # 12 per stratum: 9 / 1 / 2


def test_manifest_is_byte_identical_for_the_same_input_and_seed(tiny_utkface, tmp_path):
    first = build_dataset(DatasetConfig(sources=(tiny_utkface,), out=tmp_path / "a"))
    second = build_dataset(DatasetConfig(sources=(tiny_utkface,), out=tmp_path / "b"))
    assert Path(first["manifest"]).read_bytes() == Path(second["manifest"]).read_bytes()


def test_gaps_nearest_keeps_gap_ages(tiny_utkface, tmp_path):
    summary = build_dataset(DatasetConfig(sources=(tiny_utkface,), out=tmp_path / "n", gaps="nearest"))
    reasons = [s["reason"] for s in summary["skipped"]]
    assert not any("between the age classes" in r for r in reasons)


def test_nothing_usable_fails_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(AgeGenderError) as info:
        build_dataset(DatasetConfig(sources=(tmp_path / "empty",), out=tmp_path / "o"))
    assert "\n" not in str(info.value) and "no usable" in str(info.value)


def test_tar_gz_and_zip_sources(tiny_utkface, tmp_path):
    tar_path = tmp_path / "utk.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(tiny_utkface, arcname="UTKFace")
    zip_path = tmp_path / "utk.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in tiny_utkface.rglob("*"):
            zf.write(p, p.relative_to(tiny_utkface))
    for archive in (tar_path, zip_path):
        summary = build_dataset(DatasetConfig(sources=(archive,), out=tmp_path / archive.stem))
        assert summary["n_usable"] == 192


def test_tar_member_escaping_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("../escaped.jpg")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(AgeGenderError, match="escape"):
        extract_archive(archive, tmp_path / "target")
    assert not (tmp_path / "escaped.jpg").exists()


def test_tar_links_are_refused(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("innocent.jpg")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(AgeGenderError, match="link"):
        extract_archive(archive, tmp_path / "target")


def test_zip_member_escaping_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.jpg", b"abc")
    with pytest.raises(AgeGenderError, match="escape"):
        extract_archive(archive, tmp_path / "target" / "deep")
    assert not (tmp_path / "escaped.jpg").exists()


@pytest.mark.integration
def test_shared_utkface_gives_6494_images_split_70_10_20(shared_utkface, tmp_path):
    summary = build_dataset(DatasetConfig(sources=(shared_utkface,), out=tmp_path))
    assert summary["n_usable"] == 6494
    n = {split: counts["n"] for split, counts in summary["splits"].items()}
    assert abs(n["train"] / 6494 - 0.7) < 0.01 and abs(n["val"] / 6494 - 0.1) < 0.01
    assert abs(n["test"] / 6494 - 0.2) < 0.01
    reasons = Counter(s["reason"].split(" ")[0] for s in summary["skipped"])
    assert reasons["gender"] == 1 and summary["n_skipped"] == 8529 - 6494


def _copies_tree(root: Path) -> tuple[Path, Path]:
    """Two source folders: 64 distinct photos, and copies of four of them (exact, re-encoded, shifted,
    mirrored) under other names, one with another label."""
    a, b = root / "part1", root / "more"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    ages = (1, 5, 10, 18, 28, 40, 50, 70)
    for k in range(64):
        cv2.imwrite(str(a / f"{ages[k % 8]}_{k % 2}_0_20170101{k:09d}.jpg.chip.jpg"), make_image(k, 120))
    shift = np.float32([[1, 0, 2], [0, 1, -2]])
    shifted = cv2.warpAffine(make_image(1, 120), shift, (120, 120), borderMode=cv2.BORDER_REPLICATE)
    copies = {
        f"{ages[0]}_0_1_20170202{0:09d}.jpg": (make_image(0, 120), [cv2.IMWRITE_JPEG_QUALITY, 95]),
        f"{ages[1]}_1_1_20170202{1:09d}.jpg": (shifted, [cv2.IMWRITE_JPEG_QUALITY, 80]),
        f"{ages[2]}_0_1_20170202{2:09d}.jpg": (cv2.flip(make_image(2, 120), 1), [cv2.IMWRITE_JPEG_QUALITY, 90]),
        f"{ages[4]}_1_1_20170202{3:09d}.jpg": (make_image(3, 120), [cv2.IMWRITE_JPEG_QUALITY, 70]),  # label differs
    }
    for name, (image, params) in copies.items():
        cv2.imwrite(str(b / name), image, params)
    return a, b


def test_copies_across_sources_are_grouped_into_one_split(tmp_path):
    a, b = _copies_tree(tmp_path / "data")
    summary = build_dataset(DatasetConfig(sources=(a, b), out=tmp_path / "out", fractions=(0.5, 0.25, 0.25)))
    dup = summary["duplicates"]
    assert (dup["groups"], dup["images"], dup["conflicting_labels"]) == (4, 8, 1)
    assert all(len(group["split"]) == 1 for group in dup["list"])
    assert summary["per_source"] == {str(a): 64, str(b): 4}
    records = read_manifest(Path(summary["manifest"]))
    by_group: dict[str, set[str]] = {}
    for r in records:
        if r.group:
            by_group.setdefault(r.group, set()).add(r.split)
    assert len(by_group) == 4 and all(len(splits) == 1 for splits in by_group.values())
    assert {r.source for r in records} == {os.path.abspath(a), os.path.abspath(b)}


def test_duplicates_drop_keeps_one_per_group_and_ignore_keeps_all(tmp_path):
    a, b = _copies_tree(tmp_path / "data")
    dropped = build_dataset(DatasetConfig(sources=(a, b), out=tmp_path / "d", duplicates="drop"))
    assert dropped["n_usable"] == 64 and dropped["duplicates"]["dropped"] == 4
    assert sum("--duplicates drop" in s["reason"] for s in dropped["skipped"]) == 4
    ignored = build_dataset(DatasetConfig(sources=(a, b), out=tmp_path / "i", duplicates="ignore"))
    assert ignored["n_usable"] == 68 and ignored["duplicates"]["groups"] == 0


def test_same_file_through_two_sources_counts_once(tmp_path):
    a, _ = _copies_tree(tmp_path / "data")
    summary = build_dataset(DatasetConfig(sources=(tmp_path / "data", a), out=tmp_path / "o"))
    assert summary["n_usable"] == 68
    assert sum("listed twice" in s["reason"] for s in summary["skipped"]) == 64


def test_manifest_paths_are_relative_under_its_folder_so_it_moves_with_the_data(tmp_path):
    a, b = _copies_tree(tmp_path / "data")
    summary = build_dataset(DatasetConfig(sources=(a, b), out=tmp_path / "data"))
    text = Path(summary["manifest"]).read_text()
    assert str(tmp_path) not in text and "\npart1/" in text
    (tmp_path / "data").rename(tmp_path / "moved")
    records = read_manifest(tmp_path / "moved" / "manifest.csv")
    assert all(r.path.is_file() for r in records)
    elsewhere = build_dataset(DatasetConfig(sources=(tmp_path / "moved",), out=tmp_path / "manifests"))
    first = read_manifest(Path(elsewhere["manifest"]))[0].path
    assert first.is_absolute() and first.is_file()


def test_symlinked_sources_are_not_resolved(tmp_path):
    a, _ = _copies_tree(tmp_path / "data")
    (tmp_path / "link").symlink_to(a)
    summary = build_dataset(DatasetConfig(sources=(tmp_path / "link",), out=tmp_path / "o"))
    assert str(tmp_path / "link") in Path(summary["manifest"]).read_text()


@pytest.mark.integration
def test_no_test_face_has_a_copy_in_train_on_the_real_data(tmp_path):
    """The split of ../shared/data: groups reported, and no val/test image is a copy of a train image, checked
    both by decoded pixels (exact copies) and by thumbnail correlation, mirrored too."""
    import hashlib

    from agegender_cli.data.duplicates import DEFAULT_THRESHOLD, image_signatures

    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data / "utkface_more").is_dir():
        pytest.skip("../shared/data/utkface_more is not here")
    summary = build_dataset(DatasetConfig(sources=(data,), out=tmp_path))
    assert summary["n_usable"] == 14363 and summary["duplicates"]["groups"] > 0
    records = read_manifest(Path(summary["manifest"]))
    train = [r for r in records if r.split == "train"]
    held_out = [r for r in records if r.split != "train"]

    def pixels(record) -> str:
        return hashlib.sha256(cv2.imread(str(record.path)).tobytes()).hexdigest()

    assert not {pixels(r) for r in train} & {pixels(r) for r in held_out}
    a, b = image_signatures([r.path for r in train]), image_signatures([r.path for r in held_out])
    mirrored = b.reshape(len(b), 16, 16)[:, :, ::-1].reshape(len(b), -1)
    worst = max(float((a @ b.T).max()), float((a @ mirrored.T).max()))
    assert worst < DEFAULT_THRESHOLD, worst


def test_keep_splits_from_an_earlier_manifest(tmp_path):
    a, b = _copies_tree(tmp_path / "data")
    first = build_dataset(DatasetConfig(sources=(a,), out=tmp_path / "old", duplicates="ignore"))
    old = {r.path.name: r.split for r in read_manifest(Path(first["manifest"]))}
    summary = build_dataset(DatasetConfig(sources=(a, b), out=tmp_path / "new",
                                          keep_splits_from=Path(first["manifest"])))
    assert summary["kept_splits_from"] == first["manifest"]
    new = read_manifest(Path(summary["manifest"]))
    groups = {r.group: {m.split for m in new if m.group == r.group} for r in new if r.group}
    for r in new:
        if r.path.name in old and not r.group:
            assert r.split == old[r.path.name]
    for r in new:  # a group with a member trained on goes to train; no held-out copy of a train image
        members = [m for m in new if r.group and m.group == r.group]
        if any(old.get(m.path.name) == "train" for m in members):
            assert groups[r.group] == {"train"}
