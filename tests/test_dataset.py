"""Split reproducibility and stratification, archive safety, the manifest."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from agegender_cli.config import DatasetConfig
from agegender_cli.data import Record, build_dataset, extract_archive, read_manifest, stratified_split
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
    summary = build_dataset(DatasetConfig(source=tiny_utkface, out=tmp_path / "out"))
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
    first = build_dataset(DatasetConfig(source=tiny_utkface, out=tmp_path / "a"))
    second = build_dataset(DatasetConfig(source=tiny_utkface, out=tmp_path / "b"))
    assert Path(first["manifest"]).read_bytes() == Path(second["manifest"]).read_bytes()


def test_gaps_nearest_keeps_gap_ages(tiny_utkface, tmp_path):
    summary = build_dataset(DatasetConfig(source=tiny_utkface, out=tmp_path / "n", gaps="nearest"))
    reasons = [s["reason"] for s in summary["skipped"]]
    assert not any("between the age classes" in r for r in reasons)


def test_nothing_usable_fails_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(AgeGenderError) as info:
        build_dataset(DatasetConfig(source=tmp_path / "empty", out=tmp_path / "o"))
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
        summary = build_dataset(DatasetConfig(source=archive, out=tmp_path / archive.stem))
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
    summary = build_dataset(DatasetConfig(source=shared_utkface, out=tmp_path))
    assert summary["n_usable"] == 6494
    n = {split: counts["n"] for split, counts in summary["splits"].items()}
    assert abs(n["train"] / 6494 - 0.7) < 0.01 and abs(n["val"] / 6494 - 0.1) < 0.01
    assert abs(n["test"] / 6494 - 0.2) < 0.01
    reasons = Counter(s["reason"].split(" ")[0] for s in summary["skipped"])
    assert reasons["gender"] == 1 and summary["n_skipped"] == 8529 - 6494
