"""Train the Levi-Hassner gender and age nets in PyTorch on face crops, then export them as Caffe models."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from agegender_cli.archs.base import MISSING_LABEL, TrainResult, class_weights, labelled_loss
from agegender_cli.archs.caffenet.caffemodel import export_caffemodel, twin_from_caffemodel
from agegender_cli.archs.caffenet.config import CaffenetTrainConfig
from agegender_cli.archs.caffenet.deploy import NET_NAMES, NUM_CLASSES, check_model_folder, net_files, resize_face
from agegender_cli.archs.caffenet.net import INPUT_SIZE, LeviHassnerNet, deploy_prototxt, mean_subtract
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.inputs import load_image
from agegender_cli.fileio import atomic_torch_save, atomic_write_text
from agegender_cli.progress import SILENT, Reporter
from agegender_cli.runtime import describe_precision, pick_device, resolve_precision
from agegender_cli.torchfiles import MAX_RESUME_BYTES, load_checked

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
CHECKPOINT_FORMAT = "agegender-caffenet-train/1"
# Settings a resumed run must share with its checkpoint (they fix the LR schedule and the data order).
RESUME_KEYS = ("tasks", "init", "epochs", "batch_size", "resize", "crop", "lr", "weight_decay", "seed")

Progress = Callable[[int, int, dict[str, Any]], None]
Log = Callable[[str], None]


class FaceRecord(Protocol):
    path: Path
    gender: int
    age_class: int


@dataclasses.dataclass
class _Run:
    """Everything that changes during training and goes into the checkpoint."""

    nets: dict[str, LeviHassnerNet]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    epoch: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def fit(cfg: CaffenetTrainConfig, reporter: Reporter = SILENT) -> TrainResult:
    """The Trainer of architecture B: both nets on the manifest's train split, each kept at its best val epoch."""
    from agegender_cli.data.utkface import read_manifest

    # a face with one label trains that task only (LFW: gender; a gap age has no class)
    usable = [r for r in read_manifest(cfg.manifest) if r.split in ("train", "val")
              and any((r.gender if task == "gender" else r.age_class) is not None for task in cfg.tasks)]
    frames = None
    if cfg.detector != "none":
        from agegender_cli.data.chips import framed_records

        usable, matrices = framed_records(usable, cfg.detector, what="train and val images", pick=cfg.pick,
                                           reporter=reporter)
        frames = {r.path: m for r, m in zip(usable, matrices, strict=True)}
    train_records = [r for r in usable if r.split == "train"]
    val_records = [r for r in usable if r.split == "val"]
    if not train_records or not val_records:
        raise AgeGenderError(f"{cfg.manifest}: the train and val splits must both hold images")
    reporter.start("training caffenet", cfg.epochs)

    def progress(epoch: int, total: int, info: dict[str, Any]) -> None:
        reporter.advance(1, **{k: v for k, v in info.items() if isinstance(v, int | float)})

    try:
        run = train_caffenet(cfg, train_records, val_records, progress=progress, log=reporter.message, frames=frames)
    finally:
        reporter.finish()
    best = run["best"]
    return TrainResult(
        arch="caffenet", checkpoint=run["out"], best_epoch={task: info["epoch"] for task, info in best.items()},
        epochs_run=run["epochs_run"], history=run["history"], curves=run["curves"], seconds=run["seconds"],
        val={f"{task}_acc": info["val_acc"] for task, info in best.items() if info["val_acc"] is not None}
        | {f"{task}_loss": info["val_loss"] for task, info in best.items() if info["val_loss"] is not None},
        details={"files": run["files"], "fp16": run["fp16"], "best": best},
    )


def train_caffenet(
    cfg: CaffenetTrainConfig,
    train_records: Sequence[FaceRecord],
    val_records: Sequence[FaceRecord],
    *,
    progress: Progress | None = None,
    log: Log | None = None,
    fp16: bool = True,
    frames: dict[Path, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Train one net per task of cfg.tasks, keep each task's best-val epoch, export Caffe models to cfg.out;
    `frames`: each photo's chip matrix (data.chips) where faces are framed as `predict` frames them."""
    log = log or (lambda _message: None)
    _check_config(cfg, train_records)
    started = time.time()
    device = pick_device(cfg.device)
    log(f"caffenet: {device.type}, precision {describe_precision(cfg.precision, device)}")
    torch.manual_seed(cfg.seed)
    log(f"caffenet: decoding {len(train_records)} training and {len(val_records)} validation images")
    data = _Data(
        _load_images(train_records, cfg.resize, frames),
        _labels(train_records, cfg.tasks),
        _load_images(val_records, INPUT_SIZE, frames),
        _labels(val_records, cfg.tasks),
    )
    criteria = _criteria(data.train_y, device)
    run = _new_run(cfg, len(train_records), device)
    checkpoint = Path(cfg.out) / CHECKPOINT
    if cfg.resume:
        _restore(run, checkpoint, cfg, len(train_records), log)
    if cfg.init is not None and run.epoch == 0:
        # the starting nets are epoch 0: fine-tuning keeps them unless an epoch beats them on val
        start = _evaluate(run.nets, data.val_x, data.val_y, criteria, cfg.batch_size, device,
                          resolve_precision(cfg.precision, device) == "bf16")
        _update_best(run, 0, start)
        log(f"caffenet: starting from {cfg.init}: " + ", ".join(
            f"val {task} acc {m['acc']:.3f}" for task, m in (start or {}).items()))
    first = run.epoch + 1
    for epoch in range(first, cfg.epochs + 1):
        entry = _run_epoch(run, cfg, data, criteria, device, epoch)
        _save(run, checkpoint, cfg, len(train_records))
        atomic_write_text(Path(cfg.out) / HISTORY, json.dumps(run.history, indent=2) + "\n")
        log(f"caffenet: epoch {epoch}/{cfg.epochs} {_describe(entry)}")
        if progress is not None:
            progress(epoch, cfg.epochs, _flat(entry))
    files = _export(run, Path(cfg.out), fp16)
    best = {task: {k: v for k, v in info.items() if k != "state_dict"} for task, info in run.best.items()}
    curves = plot_curves(run.history, Path(cfg.out) / f"curves.{cfg.plot_format}",
                         {task: info["epoch"] for task, info in best.items() if info.get("epoch") is not None})
    return {
        "out": str(cfg.out),
        "epochs": cfg.epochs,
        "epochs_run": run.epoch,
        "best": best,
        "files": [str(f) for f in files],
        "history": str(Path(cfg.out) / HISTORY),
        "curves": str(curves),
        "fp16": fp16,
        "seconds": round(time.time() - started, 1),
    }


def plot_curves(history: list[dict], path: Path, best_epochs: dict[str, int] | None = None) -> Path:
    """The loss/accuracy figure of both nets (losses summed over the tasks), each net's best epoch marked."""
    from agegender_cli.evaluation.plots import plot_training_curves

    rows = []
    for entry in history:
        row = {"epoch": entry["epoch"]}
        for split in ("train", "val"):
            row[f"{split}_loss"] = sum(entry[split][task]["loss"] for task in entry[split])
            for task in entry[split]:
                row[f"{split}_{task}_acc"] = entry[split][task]["acc"]
        rows.append(row)
    return plot_training_curves(rows, path, title="caffenet: age_net + gender_net", best_epochs=best_epochs)


def _check_config(cfg: CaffenetTrainConfig, train_records: Sequence[FaceRecord]) -> None:
    if not train_records:
        raise AgeGenderError("no training images: check the manifest's train split")
    if not cfg.tasks or set(cfg.tasks) - set(NET_NAMES):
        raise AgeGenderError(f"tasks {cfg.tasks} must be a non-empty subset of {tuple(NET_NAMES)}")
    if cfg.crop != INPUT_SIZE or cfg.resize < cfg.crop:
        raise AgeGenderError(f"crop must be {INPUT_SIZE} (the nets' input) and resize at least that")


def _load_images(records: Sequence[FaceRecord], size: int, frames: dict[Path, np.ndarray] | None = None
                 ) -> torch.Tensor:
    """(N, size, size, 3) uint8 BGR: every image decoded (its face cut out by its chip matrix, with `frames`) and
    resized once, kept in memory."""
    from agegender_cli.faces.align import warp_chip

    out = np.empty((len(records), size, size, 3), np.uint8)

    def fill(index: int) -> None:
        image = load_image(records[index].path)
        if frames is not None:
            image = warp_chip(image, frames[records[index].path])
        out[index] = resize_face(image, size)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fill, range(len(records))))
    return torch.from_numpy(out)


def _labels(records: Sequence[FaceRecord], tasks: Sequence[str]) -> dict[str, torch.Tensor]:
    fields = {"gender": "gender", "age": "age_class"}
    return {task: torch.tensor([MISSING_LABEL if getattr(r, fields[task]) is None else int(getattr(r, fields[task]))
                                for r in records]) for task in tasks}


def _criteria(train_y: dict[str, torch.Tensor], device: torch.device) -> dict[str, nn.Module]:
    """Cross-entropy per task; age weighted by inverse class frequency (its classes are unbalanced)."""
    criteria: dict[str, nn.Module] = {}
    for task, y in train_y.items():
        weight = None
        if task == "age":
            weight = torch.from_numpy(class_weights(y[y != MISSING_LABEL].numpy(), NUM_CLASSES[task])).to(device)
        criteria[task] = _MaskedLoss(nn.CrossEntropyLoss(weight=weight, ignore_index=MISSING_LABEL))
    return criteria


def _new_run(cfg: CaffenetTrainConfig, n_train: int, device: torch.device) -> _Run:
    nets = {task: LeviHassnerNet(NUM_CLASSES[task]) for task in cfg.tasks}
    if cfg.init is not None:
        check_model_folder(Path(cfg.init))
        for task, net in nets.items():
            net.load_state_dict(twin_from_caffemodel(*net_files(Path(cfg.init), task)).state_dict())
    nets = {task: net.to(device, memory_format=torch.channels_last) for task, net in nets.items()}
    params = [p for net in nets.values() for p in net.parameters()]
    # One optimizer over both nets is two independent Adams: they share no parameter.
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * math.ceil(n_train / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
    generator = torch.Generator().manual_seed(cfg.seed)
    return _Run(nets, optimizer, scheduler, generator)


@dataclasses.dataclass(frozen=True)
class _Data:
    """Training images at cfg.resize, validation images at 227, (N, H, W, 3) uint8; labels per task."""

    train_x: torch.Tensor
    train_y: dict[str, torch.Tensor]
    val_x: torch.Tensor
    val_y: dict[str, torch.Tensor]


def _run_epoch(
    run: _Run, cfg: CaffenetTrainConfig, data: _Data, criteria: dict[str, nn.Module], device: torch.device, epoch: int
) -> dict[str, Any]:
    """Train one epoch, validate, record it in the history and keep the best weights."""
    tic = time.time()
    lr = run.scheduler.get_last_lr()[0]
    bf16 = resolve_precision(cfg.precision, device) == "bf16"
    train = _train_epoch(run, cfg, data.train_x, data.train_y, criteria, device, bf16)
    val = _evaluate(run.nets, data.val_x, data.val_y, criteria, cfg.batch_size, device, bf16)
    entry = {"epoch": epoch, "lr": lr, "seconds": round(time.time() - tic, 1), "train": train, "val": val}
    run.epoch = epoch
    run.history.append(entry)
    _update_best(run, epoch, val)
    return entry


def _train_epoch(
    run: _Run,
    cfg: CaffenetTrainConfig,
    images: torch.Tensor,
    labels: dict[str, torch.Tensor],
    criteria: dict[str, nn.Module],
    device: torch.device,
    bf16: bool,
) -> dict[str, dict[str, float]]:
    for net in run.nets.values():
        net.train()
    totals = _Totals(run.nets)
    order = torch.randperm(len(images), generator=run.generator)
    for start in range(0, len(order), cfg.batch_size):
        index = order[start : start + cfg.batch_size]
        x = _augmented_batch(images, index, cfg.crop, run.generator, cfg.augment).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = {task: net(x) for task, net in run.nets.items()}
        losses = {task: criteria[task](out.float(), labels[task][index].to(device)) for task, out in logits.items()}
        run.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        run.optimizer.step()
        run.scheduler.step()
        totals.add(losses, logits, labels, index)
    return totals.summary()


def _augmented_batch(images: torch.Tensor, index: torch.Tensor, crop: int, generator: torch.Generator,
                     augment: str = "geometric") -> torch.Tensor:
    """Random crop + random horizontal flip of each (H, W, 3) image, as a mean-subtracted NCHW batch; `wild`
    takes data/augment.py's views instead (the detector's jitter, blur, low resolution, JPEG, colour)."""
    if augment == "wild":
        from agegender_cli.data.augment import make_view

        rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
        views = np.stack([make_view(images[i].numpy(), crop, rng, "wild") for i in index.tolist()])
        return mean_subtract(torch.from_numpy(views).permute(0, 3, 1, 2))
    span = images.shape[1] - crop + 1
    tops = torch.randint(span, (len(index),), generator=generator).tolist()
    lefts = torch.randint(span, (len(index),), generator=generator).tolist()
    flips = (torch.rand(len(index), generator=generator) < 0.5).tolist()
    crops = []
    for i, top, left, flip in zip(index.tolist(), tops, lefts, flips, strict=True):
        patch = images[i, top : top + crop, left : left + crop]
        crops.append(patch.flip(1) if flip else patch)
    # NHWC storage seen as NCHW is channels_last, the fast layout on CPU.
    return mean_subtract(torch.stack(crops).permute(0, 3, 1, 2))


@torch.inference_mode()
def _evaluate(
    nets: dict[str, LeviHassnerNet],
    images: torch.Tensor,
    labels: dict[str, torch.Tensor],
    criteria: dict[str, nn.Module],
    batch_size: int,
    device: torch.device,
    bf16: bool,
) -> dict[str, dict[str, float]] | None:
    """Loss and accuracy on whole faces resized to 227, exactly the inference input."""
    if len(images) == 0:
        return None
    for net in nets.values():
        net.eval()
    totals = _Totals(nets)
    for start in range(0, len(images), batch_size):
        index = torch.arange(start, min(start + batch_size, len(images)))
        x = mean_subtract(images[index].permute(0, 3, 1, 2)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = {task: net(x) for task, net in nets.items()}
        losses = {task: criteria[task](out.float(), labels[task][index].to(device)) for task, out in logits.items()}
        totals.add(losses, logits, labels, index)
    return totals.summary()


class _MaskedLoss(nn.Module):
    """A loss over the images that have the label; a batch with none of them adds nothing (not NaN)."""

    def __init__(self, loss: nn.CrossEntropyLoss) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return labelled_loss(self.loss, logits, labels)


class _Totals:
    """Running sums of loss and correct predictions per task, over the images that have the task's label."""

    def __init__(self, nets: dict[str, LeviHassnerNet]) -> None:
        self.loss = dict.fromkeys(nets, 0.0)
        self.correct = dict.fromkeys(nets, 0)
        self.count = dict.fromkeys(nets, 0)

    def add(self, losses: dict, logits: dict, labels: dict[str, torch.Tensor], index: torch.Tensor) -> None:
        for task, loss in losses.items():
            known = labels[task][index] != MISSING_LABEL
            self.loss[task] += loss.item() * int(known.sum())
            predicted = logits[task].argmax(1).cpu()
            self.correct[task] += int((predicted == labels[task][index])[known].sum())
            self.count[task] += int(known.sum())

    def summary(self) -> dict[str, dict[str, float]]:
        return {task: {"loss": self.loss[task] / max(self.count[task], 1),
                       "acc": self.correct[task] / max(self.count[task], 1)} for task in self.loss}


def _update_best(run: _Run, epoch: int, val_metrics: dict[str, dict[str, float]] | None) -> None:
    """Keep each task's best epoch: highest val accuracy, then lowest val loss (the last one without val)."""
    for task, net in run.nets.items():
        metrics = val_metrics[task] if val_metrics else None
        previous = run.best.get(task)
        if metrics and previous and (metrics["acc"], -metrics["loss"]) <= (previous["val_acc"], -previous["val_loss"]):
            continue
        state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        run.best[task] = {
            "epoch": epoch,
            "val_acc": metrics["acc"] if metrics else None,
            "val_loss": metrics["loss"] if metrics else None,
            "state_dict": state,
        }


def _config_dict(cfg: CaffenetTrainConfig) -> dict[str, Any]:
    """The config as plain types (torch.load(weights_only=True) reads no Path or tuple)."""
    plain = {}
    for key, value in dataclasses.asdict(cfg).items():
        plain[key] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
    return plain


def _save(run: _Run, path: Path, cfg: CaffenetTrainConfig, n_train: int) -> None:
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "config": _config_dict(cfg),
            "n_train": n_train,
            "epoch": run.epoch,
            "nets": {task: net.state_dict() for task, net in run.nets.items()},
            "best": run.best,
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "rng": {"generator": run.generator.get_state(), "torch": torch.get_rng_state()},
            "history": run.history,
        },
        path,
    )


def _restore(run: _Run, path: Path, cfg: CaffenetTrainConfig, n_train: int, log: Log) -> None:
    if not path.is_file():
        log(f"caffenet: no checkpoint at {path}, starting from epoch 1")
        return
    saved = load_checked(path, "training checkpoint", MAX_RESUME_BYTES)
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise AgeGenderError(f"{path} is not a caffenet training checkpoint: delete it or choose another --out")
    _check_resumable(saved, path, cfg, n_train)
    for task, net in run.nets.items():
        net.load_state_dict(saved["nets"][task])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    run.generator.set_state(saved["rng"]["generator"])
    torch.set_rng_state(saved["rng"]["torch"])
    run.epoch, run.history, run.best = saved["epoch"], saved["history"], saved["best"]
    log(f"caffenet: resuming {path} after epoch {run.epoch}")


def _check_resumable(saved: dict[str, Any], path: Path, cfg: CaffenetTrainConfig, n_train: int) -> None:
    now = _config_dict(cfg)
    differ = [f"{key}={saved['config'].get(key)}" for key in RESUME_KEYS if saved["config"].get(key) != now[key]]
    if saved.get("n_train") != n_train:
        differ.append(f"{saved.get('n_train')} training images")
    if differ:
        raise AgeGenderError(
            f"{path} was saved with {', '.join(differ)}: resume with the same settings, or train without --resume"
        )


def _export(run: _Run, out: Path, fp16: bool) -> list[Path]:
    """Write each task's best weights as <net>.caffemodel with its deploy <net>.prototxt."""
    files = []
    for task in run.nets:
        twin = LeviHassnerNet(NUM_CLASSES[task])
        twin.load_state_dict(run.best[task]["state_dict"])
        prototxt, caffemodel = net_files(out, task)
        atomic_write_text(prototxt, deploy_prototxt(NUM_CLASSES[task]))
        export_caffemodel(twin, caffemodel, fp16)
        files += [prototxt, caffemodel]
    return files


def _flat(entry: dict[str, Any]) -> dict[str, float]:
    """A history entry as numbers only, e.g. val_age_acc, for a progress bar."""
    flat = {key: entry[key] for key in ("epoch", "lr", "seconds")}
    for split in ("train", "val"):
        for task, metrics in (entry[split] or {}).items():
            flat.update({f"{split}_{task}_{name}": value for name, value in metrics.items()})
    return flat


def _describe(entry: dict[str, Any]) -> str:
    parts = []
    for split in ("train", "val"):
        for task, m in (entry[split] or {}).items():
            parts.append(f"{split} {task} loss {m['loss']:.3f} acc {m['acc']:.3f}")
    return f"({entry['seconds']:.0f} s) " + ", ".join(parts)
