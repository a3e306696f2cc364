"""Retrain the fully connected layers of a caffenet model on cached conv features (a CPU-sized fine-tune).

The conv layers stay; each train face's pool5 activations (ONNX Runtime, 3 views: whole, mirrored, a random
227 crop of the 256-resized face, mirrored half the time) are computed once, and fc6-fc8 (or fc8 alone) are
trained on them from the model's own weights: AdamW, weight decay 5e-4, dropout 0.5, class weights for age,
optionally distilled from another model's probabilities. The epoch with the best val accuracy is kept, the
starting net counting as epoch 0, so a net no epoch beats stays as it was. A net with years layers keeps fc6
and fc7 (its years head reads fc7): use --layers fc8 for it.

Usage: python scripts/caffenet_fc_retrain.py --manifest data/utkface/manifest.csv --task gender \
         --init agegender_cli/assets/caffenet --out runs/caffenet-fc [--epochs 12] [--distill 0.0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from agegender_cli.archs.base import class_weights
from agegender_cli.archs.caffenet.caffemodel import export_caffemodel, twin_from_caffemodel
from agegender_cli.archs.caffenet.deploy import INPUT_SIZE, MEAN_BGR, net_files
from agegender_cli.archs.registry import load_predictor
from agegender_cli.config import ModelOptions
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.inputs import load_image
from agegender_cli.onnx_models import export_module, session

VIEWS = ("whole", "mirrored", "crop")
FC_LAYERS = ("fc6", "fc7", "fc8")


class Pool5(nn.Module):
    """The conv part of a Levi-Hassner twin: faces in, flattened pool5 activations out."""

    def __init__(self, twin: nn.Module) -> None:
        super().__init__()
        self.twin = twin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.twin.conv_features(x)


def view(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind != "crop":
        face = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE))
        return face[:, ::-1] if kind == "mirrored" else face
    big = cv2.resize(image, (256, 256))
    top, left = rng.integers(0, 256 - INPUT_SIZE + 1, 2)
    face = big[top:top + INPUT_SIZE, left:left + INPUT_SIZE]
    return face[:, ::-1] if rng.random() < 0.5 else face


def pool5_features(net, images: list[np.ndarray], kind: str, seed: int) -> np.ndarray:
    """(N, 18816) float16 pool5 activations of one view of every image."""
    rng = np.random.default_rng(seed)
    mean = np.array(MEAN_BGR, np.float32).reshape(1, 3, 1, 1)
    parts = []
    for start in range(0, len(images), 64):
        batch = np.stack([view(im, kind, rng) for im in images[start:start + 64]]).astype(np.float32)
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2) - mean)
        parts.append(net.run(None, {"faces": blob})[0].astype(np.float16))
    return np.concatenate(parts)


def fc_head(twin: nn.Module) -> nn.Sequential:
    head = nn.Sequential(nn.Linear(18816, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 512), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(512, twin.fc8.out_features))
    for layer, index in zip(FC_LAYERS, (0, 3, 6), strict=True):
        head[index].load_state_dict(getattr(twin, layer).state_dict())
    return head


def accuracy(head: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    head.eval()
    with torch.no_grad():
        logits = torch.cat([head(torch.from_numpy(x[i:i + 1024]).float()) for i in range(0, len(x), 1024)])
    return float((logits.argmax(1).numpy() == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--task", choices=("gender", "age"), required=True)
    parser.add_argument("--init", type=Path, default=Path("agegender_cli/assets/caffenet"))
    parser.add_argument("--out", type=Path, default=Path("runs/caffenet-fc"))
    parser.add_argument("--layers", choices=("fc6", "fc8"), default="fc6", help="train from this layer on")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--distill", type=float, default=0.0, help="weight of facenet's soft labels (T=2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    started = time.monotonic()
    twin = twin_from_caffemodel(*net_files(args.init, args.task)).eval()
    if twin.has_years and args.layers != "fc8":
        raise SystemExit(f"{args.init}: the {args.task} net has years layers reading fc7; use --layers fc8")
    records = {s: [r for r in read_manifest(args.manifest, s) if r.age_class is not None] for s in ("train", "val")}
    label = (lambda r: r.gender) if args.task == "gender" else (lambda r: r.age_class)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{args.task}_pool5.onnx"
    export_module(Pool5(twin), (torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE),), onnx_path, ["faces"], ["pool5"])
    net = session(onnx_path)
    images = {s: [load_image(r.path) for r in rs] for s, rs in records.items()}
    train_x = [pool5_features(net, images["train"], kind, args.seed + k) for k, kind in enumerate(VIEWS)]
    val_x = pool5_features(net, images["val"], "whole", args.seed)
    onnx_path.unlink()
    train_y = torch.tensor([label(r) for r in records["train"]])
    val_y = np.array([label(r) for r in records["val"]])
    print(f"{len(train_y)} train faces x {len(VIEWS)} views, {len(val_y)} val faces: features in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    soft = None
    if args.distill > 0:
        teacher = load_predictor("facenet", ModelOptions())
        probs = teacher.predict(images["train"])
        p = probs.gender_prob if args.task == "gender" else probs.age_prob
        z = np.log(np.clip(p, 1e-8, 1)) / 2.0
        soft = torch.softmax(torch.from_numpy(z).float(), 1)
    head = fc_head(twin)
    trainable = list(head.parameters()) if args.layers == "fc6" else list(head[6].parameters())
    weight = torch.from_numpy(class_weights(train_y.numpy(), twin.fc8.out_features)) if args.task == "age" else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=5e-4)
    history = [{"epoch": 0, "val_acc": accuracy(head, val_x, val_y)}]
    best = (history[0]["val_acc"], 0, {k: v.clone() for k, v in head.state_dict().items()})
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        head.train()
        order = torch.randperm(len(train_y), generator=generator)
        for start in range(0, len(order), 128):
            index = order[start:start + 128]
            x = torch.from_numpy(train_x[int(torch.randint(0, len(VIEWS), (1,), generator=generator))][index.numpy()])
            logits = head(x.float())
            loss = loss_fn(logits, train_y[index])
            if soft is not None:
                kd = nn.functional.kl_div(torch.log_softmax(logits / 2.0, 1), soft[index], reduction="batchmean")
                loss = (1 - args.distill) * loss + args.distill * 4.0 * kd
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append({"epoch": epoch, "val_acc": accuracy(head, val_x, val_y)})
        print(f"epoch {epoch}: val accuracy {history[-1]['val_acc']:.4f}", flush=True)
        if history[-1]["val_acc"] > best[0]:
            best = (history[-1]["val_acc"], epoch, {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[2])
    for source in args.init.iterdir():
        if source.is_file() and not (args.out / source.name).exists():
            shutil.copyfile(source, args.out / source.name)
    with torch.no_grad():
        for layer, index in zip(FC_LAYERS, (0, 3, 6), strict=True):
            getattr(twin, layer).load_state_dict(head[index].state_dict())
    export_caffemodel(twin.eval(), net_files(args.out, args.task)[1], fp16=True)
    record = {"task": args.task, "init": str(args.init), "manifest": str(args.manifest), "layers": args.layers,
              "views": list(VIEWS), "epochs": args.epochs, "lr": args.lr, "weight_decay": 5e-4,
              "distill": args.distill, "seed": args.seed, "best_epoch": best[1], "history": history,
              "seconds": round(time.monotonic() - started, 1)}
    (args.out / f"fc_history_{args.task}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"kept epoch {best[1]} (val accuracy {best[0]:.4f}, start {history[0]['val_acc']:.4f}) -> {args.out}")


if __name__ == "__main__":
    main()
