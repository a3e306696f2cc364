"""scripts/facenet_backbone_trial.py and scripts/int8_calibrate.py: the pair's tail starts as the two embeddings
summed and learns from cached views; the calibration script takes only facenet's module names to keep in fp32."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import load_file
from torch import nn

from agegender_cli.archs.facenet.config import FacenetTrainConfig

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str):
    return load_file(SCRIPTS / f"{name}.py", f"script_{name}")


@pytest.fixture(scope="module")
def trial():
    return _script("facenet_backbone_trial")


def _backbone(seed: int, features: int = 12) -> SimpleNamespace:
    torch.manual_seed(seed)
    return SimpleNamespace(last_linear=nn.Linear(features, 512, bias=False), last_bn=nn.BatchNorm1d(512, eps=1e-3))


def test_the_pair_starts_as_the_sum_of_the_two_pretrained_embeddings(trial) -> None:
    first, second = _backbone(1), _backbone(2, features=7)
    tail = trial.fresh_tail([first, second], seed=0)
    x1, x2 = torch.randn(5, 12), torch.randn(5, 7)
    with torch.no_grad():
        together = tail.last_linear(torch.cat([x1, x2], dim=1))
        apart = first.last_linear(x1) + second.last_linear(x2)
    assert together.shape == (5, 512)
    torch.testing.assert_close(together, apart)
    assert all(p.requires_grad for p in tail.parameters())


def test_each_run_starts_from_the_pretrained_weights_not_from_the_last_run(trial) -> None:
    backbone = _backbone(5)
    pretrained = backbone.last_linear.weight.detach().clone()
    first = trial.fresh_tail([backbone], seed=0)
    with torch.no_grad():
        first.last_linear.weight.add_(1.0)
        first.last_bn.weight.add_(1.0)
    second = trial.fresh_tail([backbone], seed=0)
    torch.testing.assert_close(backbone.last_linear.weight, pretrained)
    torch.testing.assert_close(second.last_linear.weight, pretrained)
    torch.testing.assert_close(second.last_bn.weight, torch.ones(512))


def test_fit_learns_from_cached_views_and_keeps_the_best_val_epoch(trial) -> None:
    generator = torch.Generator().manual_seed(0)
    genders, ages = torch.randint(0, 2, (120,), generator=generator), torch.randint(0, 8, (120,), generator=generator)
    # features that carry the labels, so that the tail can learn them
    signal = torch.cat([nn.functional.one_hot(genders, 2), nn.functional.one_hot(ages, 8)], dim=1).float()
    features = torch.cat([signal * 4, torch.randn(120, 2, generator=generator)], dim=1)
    views = torch.stack([features + 0.1 * torch.randn(120, 12, generator=generator) for _ in range(2)])
    labels = {"train": (genders[:90], ages[:90]), "val": (genders[90:], ages[90:])}
    cfg = FacenetTrainConfig(lr=1e-2, epochs=25, patience=5, batch_size=16)
    tail = trial.fresh_tail([_backbone(3, features=6), _backbone(4, features=6)], seed=0)
    result = trial.fit(cfg, tail, views[:, :90], features[90:], labels)
    history = result["history"]
    best = result["best_by_loss"]
    assert best["loss"] == min(epoch["loss"] for epoch in history)
    assert history[best["epoch"] - 1]["loss"] == best["loss"]
    assert best["gender_acc"] > 0.9 and best["age_acc"] > 0.6
    assert len(history) <= best["epoch"] + cfg.patience


def test_the_pair_needs_views_vggface2_has(trial) -> None:
    with pytest.raises(SystemExit):
        trial.parse_args(["--manifest", "m.csv", "--views", "2", "--pair-views", "4", "--out", "o.json"])
    assert trial.parse_args(["--manifest", "m.csv", "--out", "o.json"]).pair_views == 2


def test_int8_calibration_keeps_only_facenet_modules_in_fp32(capsys) -> None:
    calibrate = _script("int8_calibrate")
    args = calibrate.parse_args(["--arch", "facenet", "--manifest", "m.csv", "--keep-fp32", "conv2d_2a", "block8"])
    assert args.keep_fp32 == ["conv2d_2a", "block8"]
    with pytest.raises(SystemExit) as exit_info:
        calibrate.parse_args(["--arch", "facenet", "--manifest", "m.csv", "--keep-fp32", "conv2d_9z"])
    assert exit_info.value.code == 2
    assert calibrate.main(["--arch", "caffenet", "--manifest", "m.csv", "--keep-fp32", "block8"]) == 2
    assert "caffenet keeps its first convolution" in capsys.readouterr().err
    assert calibrate.spread(list(range(10)), 3) == [0, 3, 6]
