"""scripts/caffenet_gpu_train.py: the faces packed for the trip decode to what was packed; the weights that come
back in chunks make the model folder they left as."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import load_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "caffenet_gpu_train.py"


@pytest.fixture(scope="module")
def gpu_train():
    return load_file(SCRIPT, "caffenet_gpu_train")


def _faces(tmp_path: Path) -> tuple[Path, list[dict]]:
    rng = np.random.default_rng(0)
    rows = []
    for i, (split, age, age_class) in enumerate([("test", 30, 4), ("train", 1, 0), ("val", 40, 5), ("train", 35, ""),
                                                   ("train", 70, 7), ("test", 23, ""), ("val", 5, 1)]):
        path = tmp_path / f"{age}_{i % 2}_0_2017{i:04d}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 256, (48 + i, 40 + i, 3), dtype=np.uint8))
        rows.append({"path": str(path), "age": age, "gender": i % 2, "race": 0, "age_class": age_class,
                     "split": split, "source": str(tmp_path), "group": "", "box": ""})
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest, rows


def test_packed_faces_decode_to_the_resized_images_with_their_labels(gpu_train, tmp_path: Path) -> None:
    manifest, rows = _faces(tmp_path)
    teacher = tmp_path / "teacher.npz"
    known = [r for r in rows if r["split"] != "test"][:3]
    np.savez(teacher, paths=np.array([r["path"] for r in known]), gender_prob=np.full((3, 2), 0.5, np.float32),
             age_prob=np.full((3, 8), 0.125, np.float32), age_years=np.zeros(3))
    packed, work = tmp_path / "pack", tmp_path / "work"
    gpu_train.pack(manifest, packed, 2, teacher)
    assert sorted(p.name for p in packed.iterdir()) == ["index.npz", "part0.bin", "part1.bin"]
    counts = gpu_train.decode(packed, work, threads=2)
    assert counts == {"train": 3, "val": 2, "test": 2}
    for split, size in (("train", 256), ("val", 227), ("test", 227)):
        expected = [r for r in rows if r["split"] == split]  # the manifest's order within each split
        images = np.load(work / f"{split}_x.npy")
        assert images.shape == (len(expected), size, size, 3)
        for image, row in zip(images, expected, strict=True):
            want = cv2.resize(cv2.imread(row["path"]), (size, size), interpolation=cv2.INTER_LINEAR)
            assert np.array_equal(image, want)
        assert np.load(work / f"{split}_age.npy").tolist() == [r["age"] for r in expected]
        assert np.load(work / f"{split}_age_class.npy").tolist() == [
            -1 if r["age_class"] == "" else r["age_class"] for r in expected]
    soft = np.load(work / "train_soft_gender.npy")
    has_teacher = [any(k["path"] == r["path"] for k in known) for r in rows if r["split"] == "train"]
    assert (~np.isnan(soft[:, 0])).tolist() == has_teacher


def test_a_part_damaged_on_the_way_is_refused(gpu_train, tmp_path: Path) -> None:
    manifest, _ = _faces(tmp_path)
    packed = tmp_path / "pack"
    gpu_train.pack(manifest, packed, 2, None)
    data = bytearray((packed / "part1.bin").read_bytes())
    data[10] ^= 0xFF
    (packed / "part1.bin").write_bytes(bytes(data))
    with pytest.raises(SystemExit, match="part1.bin: damaged in transit"):
        gpu_train.decode(packed, tmp_path / "work", threads=1)


def test_weights_in_chunks_make_the_model_folder(gpu_train, tmp_path: Path, monkeypatch) -> None:
    from agegender_cli.archs.caffenet.caffemodel import twin_from_caffemodel
    from agegender_cli.archs.caffenet.net import LeviHassnerNet

    torch.manual_seed(0)
    runs, back = tmp_path / "runs", tmp_path / "back"
    runs.mkdir()
    nets = {"gender": LeviHassnerNet(2), "age": LeviHassnerNet(8, gpu_train.YEARS_HIDDEN, True)}
    torch.save({task: net.state_dict() for task, net in nets.items()}, runs / "all.pt")
    monkeypatch.setattr(gpu_train, "WEIGHT_CHUNK", 8 << 20)
    gpu_train._export_chosen(runs, back, {"gender": "all", "age": "all"})
    assert len(list(back.glob("chosen.pt.*"))) == 6  # 46 MB of fp16 weights in 8 MiB chunks
    gpu_train.unpack(back, tmp_path / "model")
    for task, name in (("gender", "gender_net"), ("age", "age_net")):
        twin = twin_from_caffemodel(tmp_path / "model" / f"{name}.prototxt", tmp_path / "model" / f"{name}.caffemodel")
        for key, value in nets[task].state_dict().items():
            assert torch.equal(twin.state_dict()[key], value.half().float()), key
    chunk = back / "chosen.pt.2"
    chunk.write_bytes(chunk.read_bytes()[:-1])
    with pytest.raises(SystemExit, match="do not add up"):
        gpu_train.unpack(back, tmp_path / "again")
