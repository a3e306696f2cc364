"""Try facenet's feature options on val: more cached views, and both backbones' features side by side.

The trunk features are the ones `agegender train --arch facenet --preprocess none` caches (~/.cache/agegender/
features; a missing cache is computed and written the same way, which takes one trunk pass per view and face).
On them the bundled recipe's tail (last_linear + linear heads, Adam lr 1e-3, early stopping on the val loss,
patience 10) is trained for each variant:
- vggface2 on its first 1, 2, ... --views cached views (each view a random flip, rotation and crop);
- casia-webface alone on its first --pair-views views;
- both side by side on those views: one last_linear over the 1,792 + 1,792 pooled values, started from the two
  pretrained ones (so it begins as the sum of the two embeddings), then the heads; predict would run two trunks.
A view is the same crop of the same face for both backbones (the views' seeds do not depend on the backbone).
Each variant runs --seeds times (the heads' start and the batch order change, the views do not): a row per run
(best val epoch, val gender and age accuracy and loss) and the mean; --out gets every epoch's scores (JSON).

Usage: python scripts/facenet_backbone_trial.py --manifest data/utkface/manifest.csv --views 4 --pair-views 2 \
         --out runs/facenet_backbone_trial.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agegender_cli.archs.base import class_weights
from agegender_cli.archs.facenet.backbone import load_backbone, resolve_backbone
from agegender_cli.archs.facenet.config import FacenetTrainConfig
from agegender_cli.archs.facenet.model import AgeGenderTail, build
from agegender_cli.archs.facenet.train import epoch_batches, evaluate_tail, record_labels, trunk_features
from agegender_cli.data.utkface import read_manifest
from agegender_cli.fileio import atomic_write_text
from agegender_cli.labels import AGE_CLASSES
from agegender_cli.progress import SILENT
from agegender_cli.runtime import seed_everything

CPU = torch.device("cpu")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--views", type=int, default=4, help="vggface2's cached views (tried 1, 2, 4, ... up to it)")
    parser.add_argument("--pair-views", type=int, default=2, help="views of casia-webface and of the pair")
    parser.add_argument("--seeds", type=int, default=3, help="runs per variant (head start and batch order)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not 1 <= args.pair_views <= args.views or args.seeds < 1:
        parser.error("--pair-views must lie between 1 and --views, and --seeds be at least 1")
    return args


def backbone_features(cfg: FacenetTrainConfig, records: dict) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(the backbone, train features (views, N, 1792), val features (N, 1792)) from the feature cache."""
    resolved = resolve_backbone(cfg.backbone, log=lambda message: print(message, file=sys.stderr))
    backbone = load_backbone(resolved)
    trunk, _ = build(backbone, "last_linear", "linear", cfg.hidden, cfg.dropout)
    train, val, _ = trunk_features(cfg, trunk, resolved, records["train"], records["val"], CPU, SILENT, {})
    return backbone, train, val


def fresh_tail(backbones: list[nn.Module], seed: int) -> AgeGenderTail:
    """The recipe's tail over the backbones' pooled features side by side: last_linear a copy of their own (one
    run must not start from another's training), last_bn the pretrained one for one backbone, fresh for two."""
    seed_everything(seed)
    weights = torch.cat([b.last_linear.weight.detach() for b in backbones], dim=1)
    linear = nn.Linear(weights.shape[1], weights.shape[0], bias=False)
    linear.weight.data.copy_(weights)
    norm = copy.deepcopy(backbones[0].last_bn) if len(backbones) == 1 else nn.BatchNorm1d(weights.shape[0], eps=1e-3)
    return AgeGenderTail(nn.Sequential(), linear, norm.requires_grad_(True), "linear")


def fit(cfg: FacenetTrainConfig, tail: AgeGenderTail, train: torch.Tensor, val: torch.Tensor, labels: dict) -> dict:
    """Train on cached views as `agegender train` does; the best val epoch (by loss) and its scores."""
    g_train, a_train = labels["train"]
    weights = torch.from_numpy(class_weights(a_train.numpy(), len(AGE_CLASSES)))
    loss_fns = (nn.CrossEntropyLoss(), nn.CrossEntropyLoss(weight=weights))
    optimizer = torch.optim.Adam([p for p in tail.parameters() if p.requires_grad], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
    generator = torch.Generator().manual_seed(cfg.seed)
    best, bad, history = {"loss": float("inf")}, 0, []
    for epoch in range(1, cfg.epochs + 1):
        tail.train()
        for idx, x in epoch_batches(cfg, epoch, generator, train, None, None, CPU):
            gender_logits, age_logits = tail(x)
            loss = loss_fns[0](gender_logits, g_train[idx]) + loss_fns[1](age_logits, a_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scores = evaluate_tail(tail, val, *labels["val"], loss_fns, CPU, "fp32")
        scheduler.step(scores["loss"])
        history.append(scores)
        if scores["loss"] < best["loss"]:
            best, bad = {"epoch": epoch, **scores}, 0
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    top = max(range(len(history)), key=lambda i: history[i]["gender_acc"] + history[i]["age_acc"])
    return {"best_by_loss": best, "best_by_accuracy": {"epoch": top + 1, **history[top]}, "history": history}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = FacenetTrainConfig(manifest=args.manifest, preprocess="none", lr=1e-3, epochs=100, patience=10)
    records = {split: read_manifest(args.manifest, split, both_labels=True) for split in ("train", "val")}
    labels = {split: record_labels(split_records) for split, split_records in records.items()}
    vgg, vgg_train, vgg_val = backbone_features(replace(base, backbone="vggface2", views=args.views), records)
    casia, casia_train, casia_val = backbone_features(
        replace(base, backbone="casia-webface", views=args.pair_views), records)
    variants = [(f"vggface2, {v} view{'s' * (v > 1)}", [vgg], vgg_train[:v], vgg_val, base.lr)
                for v in sorted({1, 2, args.pair_views, args.views}) if v <= args.views]
    n = args.pair_views
    pair_train, pair_val = torch.cat([vgg_train[:n], casia_train[:n]], dim=2), torch.cat([vgg_val, casia_val], dim=1)
    variants += [(f"casia-webface, {n} views", [casia], casia_train[:n], casia_val, base.lr)]
    variants += [(f"vggface2 + casia-webface, {n} views, lr {lr:g}", [vgg, casia], pair_train, pair_val, lr)
                 for lr in (base.lr, base.lr / 3)]
    results = []
    print(f"{'variant':45} {'seed':>4} {'epoch':>5} {'gender':>7} {'age':>7} {'loss':>7}   best by accuracy")
    for name, backbones, train, val, lr in variants:
        runs = []
        for seed in range(args.seeds):
            started = time.perf_counter()
            run = {"seed": seed, **fit(replace(base, lr=lr, seed=seed), fresh_tail(backbones, seed), train, val,
                                        labels), "seconds": round(time.perf_counter() - started, 1)}
            runs.append(run)
            b, a = run["best_by_loss"], run["best_by_accuracy"]
            print(f"{name:45} {seed:>4} {b['epoch']:>5} {b['gender_acc']:>7.4f} {b['age_acc']:>7.4f} "
                  f"{b['loss']:>7.4f}   epoch {a['epoch']}: {a['gender_acc']:.4f} / {a['age_acc']:.4f}", flush=True)
        best = {key: [r["best_by_loss"][key] for r in runs] for key in ("gender_acc", "age_acc", "loss")}
        mean = {key: float(np.mean(values)) for key, values in best.items()}
        spread = {key: float(np.std(values)) for key, values in best.items()}
        print(f"{name:45} mean       {mean['gender_acc']:>7.4f} {mean['age_acc']:>7.4f} {mean['loss']:>7.4f}   "
              f"(std {spread['gender_acc']:.4f} / {spread['age_acc']:.4f})", flush=True)
        results.append({"variant": name, "lr": lr, "mean": mean, "std": spread, "runs": runs})
    atomic_write_text(args.out, json.dumps({"manifest": str(args.manifest), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
