"""Epoch time of facenet training with and without the trunk-feature cache (prints figures).

Usage: python benchmarks/facenet_epoch_time.py [--manifest data/utkface/manifest.csv] [--images 640]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from agegender_cli.archs.facenet.backbone import load_backbone, resolve_backbone
from agegender_cli.archs.facenet.config import FacenetTrainConfig
from agegender_cli.archs.facenet.model import build
from agegender_cli.archs.facenet.train import _epoch_batches, extract_features, load_images
from agegender_cli.data.utkface import read_manifest
from agegender_cli.progress import SILENT
from agegender_cli.runtime import pick_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--images", type=int, default=640, help="training images timed (an epoch is scaled up)")
    parser.add_argument("--views", type=int, default=4)
    args = parser.parse_args()

    records = read_manifest(args.manifest, "train")
    timed = records[: args.images]
    cfg = replace(FacenetTrainConfig(), manifest=args.manifest, out=Path(tempfile.mkdtemp()), preprocess="none")
    device = pick_device("auto")
    trunk, tail = build(load_backbone(resolve_backbone(cfg.backbone)), cfg.unfreeze, "linear", 0, 0.0)
    trunk.to(device)
    images = load_images(timed, "none", SILENT)
    optimizer = torch.optim.Adam([p for p in tail.parameters() if p.requires_grad], lr=1e-4)
    labels = torch.tensor([r.gender for r in timed]), torch.tensor([r.age_class for r in timed])

    def run_epoch(train_feats, train_images) -> float:
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(0)
        for idx, x in _epoch_batches(cfg, 0, generator, train_feats, train_images, trunk, device):
            gender, age = tail(x)
            loss = torch.nn.functional.cross_entropy(gender, labels[0][idx]) + \
                torch.nn.functional.cross_entropy(age, labels[1][idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started

    scale = len(records) / len(timed)
    uncached = run_epoch(None, images)
    started = time.perf_counter()
    feats = extract_features(trunk, images, cfg.image_size, list(range(args.views)), device, cfg.precision,
                             cfg.batch_size, SILENT, "bench")
    cache_build = time.perf_counter() - started
    cached = np.median([run_epoch(feats, None) for _ in range(3)])
    print(f"device {device}, {len(timed)} images timed, scaled to the {len(records)}-image train split")
    print(f"epoch without the cache (trunk on fresh views): {uncached * scale:8.1f} s")
    print(f"epoch on cached features:                       {cached * scale:8.3f} s")
    print(f"building the cache ({args.views} views, once):          {cache_build * scale:8.1f} s")
    print(f"30 epochs: {30 * uncached * scale / 60:.1f} min without, "
          f"{(cache_build + 30 * cached) * scale / 60:.1f} min with the cache")


if __name__ == "__main__":
    main()
