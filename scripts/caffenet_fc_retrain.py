"""Retrain the fully connected layers of a caffenet model on cached conv features (a CPU-sized fine-tune).

The conv layers stay; each train face's pool5 activations (ONNX Runtime) are computed once for a few views, and
fc6-fc8 (and age_net's years layers, which read fc7), fc8 alone, or age_net's years layers alone (`--layers years`:
the class outputs stay exactly as they were) are trained on them from the model's own
weights: AdamW, weight decay 5e-4, dropout 0.5, class weights for age, optionally distilled from facenet.

Views: `geometric` (whole, mirrored, a random 227 crop of the 256-resized face) or `wild` (whole, mirrored and
two views with the detector's jitter, blur, low resolution, JPEG, colour and grayscale: data/augment.py).
`--detector auto` frames every face as `predict` does (detect, align; data/chips.py), so UTKFace chips and the
in-the-wild sets (AAF, LFW) train through the same path; a face with one label only trains that task.

The epoch with the best val score is kept (gender: accuracy; age: class accuracy minus MAE / 100 where the net has
years layers; `--layers years`: MAE alone), the starting net counting as epoch 0, so a net no epoch beats stays
as it was.

Usage: python scripts/caffenet_fc_retrain.py --manifest data/wild/manifest.csv --task gender \
         --init agegender_cli/assets/caffenet --out runs/caffenet-wild --detector auto --augment wild
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

from agegender_cli.archs.base import MISSING_LABEL, class_weights, labelled_loss
from agegender_cli.archs.caffenet.caffemodel import export_caffemodel, twin_from_caffemodel
from agegender_cli.archs.caffenet.deploy import INPUT_SIZE, MEAN_BGR, net_files
from agegender_cli.archs.registry import load_predictor
from agegender_cli.archs.years_head import label_distributions
from agegender_cli.config import ModelOptions
from agegender_cli.data.augment import make_view
from agegender_cli.data.chips import framed_records
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.align import warp_chip
from agegender_cli.faces.inputs import load_image
from agegender_cli.labels import MAX_YEARS, N_BINS
from agegender_cli.onnx_models import export_module, session
from agegender_cli.progress import Reporter

VIEWS = {"geometric": ("whole", "mirrored", "crop"), "wild": ("whole", "mirrored", "wild", "wild")}
YEARS_SIGMA, YEARS_WEIGHT = 2.0, 1.0  # as the GPU training (scripts/caffenet_gpu_train.py)

class Pool5(nn.Module):
    """The conv part of a Levi-Hassner twin: faces in, flattened pool5 activations out."""

    def __init__(self, twin: nn.Module) -> None:
        super().__init__()
        self.twin = twin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.twin.conv_features(x)


class FcPart(nn.Module):
    """The twin's own fc layers on pool5 activations: (class logits, years logits or None)."""

    def __init__(self, twin: nn.Module) -> None:
        super().__init__()
        self.twin = twin

    def forward(self, pool5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = self.twin
        fc7 = t.drop7(t.relu7(t.fc7(t.drop6(t.relu6(t.fc6(pool5))))))
        return t.fc8(fc7), (t.years_logits(fc7) if t.has_years else None)


def view(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "wild":
        return make_view(image, INPUT_SIZE, rng, "wild")
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


def faces_of(records, detector: str) -> tuple[list, list[np.ndarray]]:
    """The records whose face is found, and their 200x200 chips (or the images as they are: detector none)."""
    if detector == "none":
        return records, [load_image(r.path) for r in records]
    kept, matrices = framed_records(records, detector, reporter=Printed())
    return kept, [warp_chip(load_image(r.path), m) for r, m in zip(kept, matrices, strict=True)]


class Printed(Reporter):
    """Messages printed as they come (this script has no progress bars)."""

    def message(self, text: str) -> None:
        print(text, flush=True)


def scores(part: FcPart, x: np.ndarray, y: np.ndarray, ages: np.ndarray) -> dict[str, float]:
    """Val accuracy on the faces with a label, and the years MAE on those with an age (years layers only)."""
    part.eval()
    with torch.no_grad():
        outs = [part(torch.from_numpy(x[i:i + 1024]).float()) for i in range(0, len(x), 1024)]
    logits = torch.cat([o[0] for o in outs]).numpy()
    known = y != MISSING_LABEL
    out = {"val_acc": float((logits.argmax(1)[known] == y[known]).mean())}
    if outs[0][1] is not None:
        years = torch.softmax(torch.cat([o[1] for o in outs]), 1).numpy() @ np.arange(N_BINS)
        aged = ages >= 0
        out["val_mae"] = float(np.abs(years[aged] - np.minimum(ages[aged], MAX_YEARS)).mean())
    return out


def score_of(metrics: dict[str, float], layers: str) -> float:
    if layers == "years":
        return -metrics["val_mae"]
    return metrics["val_acc"] - metrics.get("val_mae", 0.0) / 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--task", choices=("gender", "age"), required=True)
    parser.add_argument("--init", type=Path, default=Path("agegender_cli/assets/caffenet"))
    parser.add_argument("--out", type=Path, default=Path("runs/caffenet-fc"))
    parser.add_argument("--layers", choices=("fc6", "fc8", "years"), default="fc6",
                        help="train from this layer on (years: age_net's years layers only)")
    parser.add_argument("--detector", choices=("none", "auto", "mtcnn", "haar"), default="none")
    parser.add_argument("--augment", choices=tuple(VIEWS), default="geometric")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--distill", type=float, default=0.0, help="weight of facenet's soft labels (T=2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    started = time.monotonic()
    twin = twin_from_caffemodel(*net_files(args.init, args.task)).eval()
    label = (lambda r: r.gender) if args.task == "gender" else (lambda r: r.age_class)
    if args.layers == "years" and not (args.task == "age" and twin.has_years):
        parser.error("--layers years: only an age_net with years layers (--task age) has them")
    years = twin.has_years and args.layers in ("fc6", "years")
    records, images = {}, {}
    for split in ("train", "val"):
        usable = [r for r in read_manifest(args.manifest, split)
                  if label(r) is not None or (years and r.age is not None)]
        if args.layers == "years":
            usable = [r for r in usable if r.age is not None]
        records[split], images[split] = faces_of(usable, args.detector)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{args.task}_pool5.onnx"
    export_module(Pool5(twin), (torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE),), onnx_path, ["faces"], ["pool5"])
    net = session(onnx_path)
    views = VIEWS[args.augment]
    train_x = [pool5_features(net, images["train"], kind, args.seed + k) for k, kind in enumerate(views)]
    val_x = pool5_features(net, images["val"], "whole", args.seed)
    onnx_path.unlink()

    def labels(split: str) -> tuple[np.ndarray, np.ndarray]:
        rs = records[split]
        return (np.array([MISSING_LABEL if label(r) is None else label(r) for r in rs]),
                np.array([MISSING_LABEL if r.age is None else r.age for r in rs]))

    (train_y, train_age), (val_y, val_age) = labels("train"), labels("val")
    print(f"{len(train_y)} train faces x {len(views)} views, {len(val_y)} val faces: features in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    soft = None
    if args.distill > 0:
        teacher = load_predictor("facenet", ModelOptions())
        probs = teacher.predict(images["train"])
        p = probs.gender_prob if args.task == "gender" else probs.age_prob
        soft = torch.softmax(torch.from_numpy(np.log(np.clip(p, 1e-8, 1)) / 2.0).float(), 1)
    part = FcPart(twin)
    if args.layers == "fc6":
        trainable = [p for name, p in twin.named_parameters() if not name.startswith("conv")]
    elif args.layers == "years":
        trainable = [p for name, p in twin.named_parameters() if name.startswith("fc_years")]
    else:
        trainable = list(twin.fc8.parameters())
    known = train_y != MISSING_LABEL
    weight = (torch.from_numpy(class_weights(train_y[known], twin.fc8.out_features)) if args.task == "age"
              else None)
    loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=MISSING_LABEL)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=5e-4)
    history = [{"epoch": 0, **scores(part, val_x, val_y, val_age)}]
    best = (score_of(history[0], args.layers), 0, {k: v.clone() for k, v in twin.state_dict().items()})
    generator = torch.Generator().manual_seed(args.seed)
    ty, tage = torch.from_numpy(train_y), torch.from_numpy(train_age)
    bins = torch.arange(N_BINS, dtype=torch.float32)
    for epoch in range(1, args.epochs + 1):
        part.train()
        order = torch.randperm(len(ty), generator=generator)
        for start in range(0, len(order), 128):
            index = order[start:start + 128]
            x = torch.from_numpy(train_x[int(torch.randint(0, len(views), (1,), generator=generator))][index.numpy()])
            logits, years_logits = part(x.float())
            y = ty[index]
            loss = labelled_loss(loss_fn, logits, y) if args.layers != "years" else logits.new_zeros(())
            if soft is not None:
                kd = nn.functional.kl_div(torch.log_softmax(logits / 2.0, 1), soft[index], reduction="batchmean")
                loss = (1 - args.distill) * loss + args.distill * 4.0 * kd
            aged = tage[index] >= 0
            if years and bool(aged.any()):
                ages = tage[index][aged]
                log_p = torch.log_softmax(years_logits[aged].float(), 1)
                yl = nn.functional.kl_div(log_p, label_distributions(ages, YEARS_SIGMA), reduction="batchmean")
                yl = yl + (log_p.exp() @ bins - ages.clamp(0, MAX_YEARS).float()).abs().mean() / 10
                loss = loss + YEARS_WEIGHT * yl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append({"epoch": epoch, **scores(part, val_x, val_y, val_age)})
        print(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "epoch"),
              flush=True)
        if score_of(history[-1], args.layers) > best[0]:
            best = (score_of(history[-1], args.layers), epoch, {k: v.clone() for k, v in twin.state_dict().items()})
    twin.load_state_dict(best[2])
    for source in args.init.iterdir():
        if source.is_file() and not (args.out / source.name).exists():
            shutil.copyfile(source, args.out / source.name)
    export_caffemodel(twin.eval(), net_files(args.out, args.task)[1], fp16=True)
    record = {"task": args.task, "init": str(args.init), "manifest": str(args.manifest), "layers": args.layers,
              "detector": args.detector, "augment": args.augment, "views": list(views), "epochs": args.epochs,
              "lr": args.lr, "weight_decay": 5e-4, "distill": args.distill, "seed": args.seed,
              "train_faces": len(train_y), "val_faces": len(val_y), "best_epoch": best[1], "history": history,
              "seconds": round(time.monotonic() - started, 1)}
    (args.out / f"fc_history_{args.task}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"kept epoch {best[1]} ({history[best[1]]}, start {history[0]}) -> {args.out}")


if __name__ == "__main__":
    main()
