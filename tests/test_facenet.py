"""Architecture A: the trunk/tail cut, augmentation, class weights, training, checkpoints, the predictor."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agegender_cli.archs.base import class_weights
from agegender_cli.archs.facenet.config import FacenetTrainConfig
from agegender_cli.archs.facenet.model import build, standardize
from agegender_cli.config import DatasetConfig
from agegender_cli.data.augment import make_view, view_matrix
from agegender_cli.data.utkface import build_dataset


def test_class_weights_are_inverse_frequency():
    # counts 6, 2, 0 x6 of 8 samples: weight = 8 / (8 * count)
    weights = class_weights(np.array([0, 0, 0, 0, 0, 0, 1, 1]), 8)
    assert weights[:2].tolist() == pytest.approx([8 / 48, 8 / 16])
    assert weights[2:].tolist() == [0.0] * 6


def test_plain_view_is_a_resize_and_augmented_views_vary():
    image = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    assert make_view(image, 160).shape == (160, 160, 3)
    a = make_view(image, 160, np.random.default_rng(1))
    b = make_view(image, 160, np.random.default_rng(2))
    assert a.shape == (160, 160, 3) and not np.array_equal(a, b)
    identity = view_matrix(160, 160, 160, None)
    assert np.allclose(identity, [[1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("unfreeze", ["last_linear", "block8", "repeat_3"])
def test_trunk_and_tail_reproduce_the_backbone(unfreeze):
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    backbone = InceptionResnetV1().eval()
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        expected = backbone.last_bn(backbone.last_linear(torch.flatten(
            backbone.avgpool_1a(backbone.block8(backbone.repeat_3(backbone.mixed_7a(backbone.repeat_2(
                backbone.mixed_6a(backbone.repeat_1(backbone.conv2d_4b(backbone.conv2d_4a(backbone.conv2d_3b(
                    backbone.maxpool_3a(backbone.conv2d_2b(backbone.conv2d_2a(backbone.conv2d_1a(x)))))))))))))), 1)))
        trunk, tail = build(backbone, unfreeze, "linear", 0, 0.0)
        tail.eval()
        features = trunk(x)
        embedding = tail.last_bn(tail.last_linear(
            torch.flatten(torch.nn.functional.adaptive_avg_pool2d(tail.blocks(features), 1), 1)
            if len(tail.blocks) else features))
    assert torch.allclose(embedding, expected, atol=1e-5)
    assert not any(p.requires_grad for p in trunk.parameters())
    trainable = {n.split(".")[0] for n, p in tail.named_parameters() if p.requires_grad}
    assert {"last_linear", "last_bn", "gender_head", "age_head"} <= trainable
    assert ("blocks" in trainable) == (unfreeze != "last_linear")


def test_standardize_is_rgb_and_centred():
    bgr = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)
    x = standardize(bgr)
    assert x.shape == (1, 3, 1, 1)
    assert x[0, :, 0, 0].tolist() == pytest.approx([(255 - 127.5) / 128, 0.5 / 128, -127.5 / 128])


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory, shared_utkface) -> Path:
    """60 real faces (4 per class x gender where possible) split by the dataset command."""
    folder = tmp_path_factory.mktemp("tiny")
    picked: dict[tuple[int, int], int] = {}
    from agegender_cli.data.utkface import label_record

    for path in sorted(shared_utkface.iterdir()):
        record = label_record(path, "drop")
        if hasattr(record, "age_class") and picked.get((record.age_class, record.gender), 0) < 5:
            picked[(record.age_class, record.gender)] = picked.get((record.age_class, record.gender), 0) + 1
            (folder / "images").mkdir(exist_ok=True)
            (folder / "images" / path.name).symlink_to(path)
    build_dataset(DatasetConfig(sources=(folder / "images",), out=folder, fractions=(0.6, 0.2, 0.2)))
    return folder / "manifest.csv"


@pytest.mark.integration
def test_training_on_a_tiny_set_resumes_and_round_trips(tiny_manifest, tmp_path):
    from agegender_cli.archs.facenet.predictor import FacenetPredictor, load_checkpoint
    from agegender_cli.archs.facenet.train import train_facenet
    from agegender_cli.faces.inputs import load_image

    cfg = FacenetTrainConfig(manifest=tiny_manifest, out=tmp_path / "run", preprocess="none", views=2, epochs=2,
                             batch_size=16, lr=1e-3)
    first = train_facenet(cfg)
    assert first.epochs_run == 2 and Path(first.checkpoint).is_file()
    assert first.best_epoch["gender"] == first.best_epoch["age"] in (1, 2)
    assert Path(first.curves).stat().st_size > 5000
    resumed = train_facenet(replace(cfg, epochs=3, resume=True))
    assert resumed.epochs_run == 3
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]

    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")  # weights_only=True inside
    assert ckpt["arch"] == "facenet" and ckpt["classes"]["age"][0] == "0-2"
    assert ckpt["backbone"]["name"] == "vggface2" and len(ckpt["backbone"]["sha256"]) == 64
    assert ckpt["preprocess"]["name"] == "none" and "val_gender_acc" in ckpt["history"][0]

    predictor = FacenetPredictor(tmp_path / "run" / "model.pt", precision="fp32")
    faces = [load_image(p) for p in sorted(tiny_manifest.parent.joinpath("images").iterdir())[:5]]
    prediction = predictor.predict(faces)
    assert prediction.gender_prob.shape == (5, 2) and prediction.age_prob.shape == (5, 8)
    assert np.allclose(prediction.gender_prob.sum(1), 1, atol=1e-5)
    # the predictor reproduces what the tail saw in training: same trunk, same plain view
    again = predictor.predict(faces[:2])
    assert np.allclose(again.age_prob, prediction.age_prob[:2], atol=1e-5)


@pytest.mark.integration
def test_uncached_training_runs_the_trunk_each_epoch(tiny_manifest, tmp_path):
    from agegender_cli.archs.facenet.train import train_facenet

    cfg = FacenetTrainConfig(manifest=tiny_manifest, out=tmp_path / "nocache", preprocess="paper",
                             feature_cache=False, epochs=1, batch_size=16, head="mlp")
    result = train_facenet(cfg)
    assert result.epochs_run == 1 and Path(result.checkpoint).is_file()


def test_interrupted_save_leaves_no_broken_file(tmp_path, monkeypatch):
    from agegender_cli.fileio import atomic_torch_save

    target = tmp_path / "model.pt"
    atomic_torch_save({"a": torch.ones(2)}, target)

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"a": torch.zeros(2)}, target)
    assert torch.load(target, weights_only=True)["a"].tolist() == [1.0, 1.0]
    assert list(tmp_path.iterdir()) == [target]
