"""Training of architecture A, on cached trunk features when the trunk is frozen."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agegender_cli.archs.base import MISSING_LABEL, TrainResult, class_weights, labelled_loss
from agegender_cli.archs.facenet.config import FacenetTrainConfig
from agegender_cli.archs.facenet.model import FORMAT, build, standardize
from agegender_cli.cache import cache_dir
from agegender_cli.config import PREPROCESS_PRESETS
from agegender_cli.data.augment import make_view
from agegender_cli.data.preprocessing import config_key, preprocess
from agegender_cli.data.utkface import Record, read_manifest
from agegender_cli.errors import AgeGenderError
from agegender_cli.faces.inputs import load_image
from agegender_cli.fileio import atomic_torch_save, atomic_write_text
from agegender_cli.labels import AGE_CLASSES, GENDERS
from agegender_cli.progress import SILENT, Reporter
from agegender_cli.runtime import autocast, describe_precision, pick_device, resolve_precision, seed_everything
from agegender_cli.torchfiles import MAX_FEATURE_CACHE_BYTES, MAX_RESUME_BYTES, load_checked


def load_images(records: list[Record], preprocess_name: str, reporter: Reporter, side: int = 200,
                frames: list[np.ndarray] | None = None) -> np.ndarray:
    """Decode, preprocess and square every image once: (N, side, side, 3) BGR uint8; with `frames` (the chip
    matrices of data.chips), each face is cut out of its photo as `predict` frames it."""
    import cv2

    from agegender_cli.faces.align import warp_chip

    cfg = PREPROCESS_PRESETS[preprocess_name]
    out = np.empty((len(records), side, side, 3), np.uint8)
    for i, record in enumerate(reporter.track(records, "decoding images", len(records))):
        image = load_image(record.path)
        if frames is not None:
            image = warp_chip(image, frames[i], side)
        elif image.shape[:2] != (side, side):
            image = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        out[i] = preprocess(image, cfg)
    return out


@torch.no_grad()
def extract_features(trunk, images: np.ndarray, size: int, seeds: list[int | None], device, precision: str,
                     batch_size: int, reporter: Reporter, label: str, augment: str = "geometric") -> torch.Tensor:
    """Trunk outputs of every image for every seed (None: the plain view); (views, N, ...) fp16."""
    trunk.to(device).to(memory_format=torch.channels_last)
    views = []
    total = len(seeds) * len(images)
    reporter.start(f"features {label}", total)
    for seed in seeds:
        rng = None if seed is None else np.random.default_rng(seed)
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([make_view(im, size, rng, augment) for im in images[start:start + batch_size]])
            x = standardize(torch.from_numpy(batch)).to(device).contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                chunks.append(trunk(x).to(torch.float16).cpu())
            reporter.advance(len(batch))
        views.append(torch.cat(chunks))
    reporter.finish()
    return torch.stack(views)


def record_labels(records: list[Record]) -> tuple[torch.Tensor, torch.Tensor]:
    """(genders, age classes); MISSING_LABEL where a record lacks one (LFW has no age, a gap age has no class)."""
    return (torch.tensor([MISSING_LABEL if r.gender is None else r.gender for r in records]),
            torch.tensor([MISSING_LABEL if r.age_class is None else r.age_class for r in records]))


def task_losses(loss_fns, gender_logits, age_logits, genders, ages) -> torch.Tensor:
    """The two tasks' losses over the images that have each label (a batch without one adds nothing)."""
    return labelled_loss(loss_fns[0], gender_logits, genders) + labelled_loss(loss_fns[1], age_logits, ages)


def trainable_records(records: list[Record]) -> list[Record]:
    """Images with a gender or an age class (the other may be missing)."""
    return [r for r in records if r.gender is not None or r.age_class is not None]


def evaluate_tail(tail, features: torch.Tensor, genders, ages, loss_fns, device, precision, batch_size=256):
    """Loss and accuracies of the tail on one view of features."""
    tail.eval()
    totals = {"loss": 0.0, "gender_acc": 0.0, "age_acc": 0.0}
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            x = features[start:start + batch_size].to(device).float()
            g, a = genders[start:start + batch_size].to(device), ages[start:start + batch_size].to(device)
            with autocast(device, precision):
                gl, al = tail(x)
            gl, al = gl.float(), al.float()
            totals["loss"] += task_losses(loss_fns, gl, al, g, a).item() * len(x)
            totals["gender_acc"] += (gl.argmax(1) == g).sum().item()
            totals["age_acc"] += (al.argmax(1) == a).sum().item()
    return {"loss": totals["loss"] / max(len(features), 1),
            "gender_acc": totals["gender_acc"] / max(int((genders != MISSING_LABEL).sum()), 1),
            "age_acc": totals["age_acc"] / max(int((ages != MISSING_LABEL).sum()), 1)}


def _cache_key(cfg: FacenetTrainConfig, backbone_sha: str, manifest: Path, n_views: int, framing: str) -> str:
    payload = json.dumps([backbone_sha, cfg.preprocess, config_key(PREPROCESS_PRESETS[cfg.preprocess]),
                          cfg.unfreeze, n_views, cfg.seed, cfg.image_size,
                          hashlib.sha256(manifest.read_bytes()).hexdigest(), "partial-labels"]
                         + ([cfg.augment, framing] if cfg.detector != "none" or cfg.augment != "geometric" else []))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def trunk_features(cfg, trunk, resolved, train_records, val_records, device, reporter, timing, frames=None):
    """(train features (views, N, ...) or None, val features, train images or None); `frames`: the chip
    matrices of the train and val records (data.chips), None for images taken as they are."""
    from agegender_cli.data.chips import chips_digest

    # shared between runs: the same trunk, views and images give the same features
    n_views = cfg.views if cfg.feature_cache else 0
    train_frames, val_frames = frames or (None, None)
    framing = chips_digest([*train_frames, *val_frames]) if frames else ""
    cache_file = cache_dir() / "features" / f"{_cache_key(cfg, resolved.sha256, cfg.manifest, n_views, framing)}.pt"
    if cache_file.exists():
        reporter.message(f"features from the cache {cache_file}")
        cached = load_checked(cache_file, "feature cache file", MAX_FEATURE_CACHE_BYTES)
        train_images = (None if cfg.feature_cache
                        else load_images(train_records, cfg.preprocess, reporter, frames=train_frames))
        return cached.get("train"), cached["val"], train_images
    started = time.perf_counter()
    train_images = load_images(train_records, cfg.preprocess, reporter, frames=train_frames)
    val_images = load_images(val_records, cfg.preprocess, reporter, frames=val_frames)
    val_feats = extract_features(trunk, val_images, cfg.image_size, [None], device, cfg.precision,
                                 cfg.batch_size, reporter, "val")[0]
    train_feats = None
    if cfg.feature_cache:
        seeds = [cfg.seed * 1000 + v for v in range(n_views)]
        train_feats = extract_features(trunk, train_images, cfg.image_size, seeds, device, cfg.precision,
                                       cfg.batch_size, reporter, "train", cfg.augment)
        train_images = None
    timing["feature_seconds"] = time.perf_counter() - started
    atomic_torch_save({"val": val_feats} | ({"train": train_feats} if cfg.feature_cache else {}), cache_file)
    return train_feats, val_feats, train_images


def epoch_batches(cfg, epoch, generator, train_feats, train_images, trunk, device):
    """(indices, trunk features) of one epoch: a random cached view per image, or fresh views through the trunk."""
    n = len(train_feats[0]) if train_feats is not None else len(train_images)
    order = torch.randperm(n, generator=generator)
    if train_feats is not None:
        view = torch.randint(0, train_feats.shape[0], (n,), generator=generator)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            yield idx, train_feats[view[idx], idx].to(device).float()
        return
    rng = np.random.default_rng([cfg.seed, epoch])
    for start in range(0, n, cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        batch = np.stack([make_view(train_images[i], cfg.image_size, rng, cfg.augment) for i in idx.tolist()])
        x = standardize(torch.from_numpy(batch)).to(device).contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), autocast(device, cfg.precision):
            features = trunk(x).float()
        yield idx, features


def train_facenet(cfg: FacenetTrainConfig, reporter: Reporter = SILENT) -> TrainResult:
    """Train the heads (and the unfrozen blocks) of architecture A; returns the run summary."""
    from agegender_cli.archs.facenet.backbone import load_backbone, resolve_backbone

    if cfg.select not in ("loss", "accuracy"):
        raise AgeGenderError(f"--select must be loss or accuracy, not '{cfg.select}'")
    if cfg.preprocess not in PREPROCESS_PRESETS:
        raise AgeGenderError(f"--preprocess must be one of {', '.join(PREPROCESS_PRESETS)}")
    run_started = time.perf_counter()
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    reporter.message(f"facenet: {device.type}, precision {describe_precision(cfg.precision, device)}")
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, device))
    train_records = trainable_records(read_manifest(cfg.manifest, "train"))
    val_records = trainable_records(read_manifest(cfg.manifest, "val"))
    frames = None
    if cfg.detector != "none":
        train_records, val_records, frames = _framed(cfg, train_records, val_records, device, reporter)
    if not train_records or not val_records:
        raise AgeGenderError(f"{cfg.manifest}: the train and val splits must both hold images")
    resolved = resolve_backbone(cfg.backbone, cfg.backbone_weights, log=reporter.message)
    trunk, tail = build(load_backbone(resolved), cfg.unfreeze, cfg.head, cfg.hidden, cfg.dropout)
    tail.to(device)
    trunk.to(device).to(memory_format=torch.channels_last)

    cfg.out.mkdir(parents=True, exist_ok=True)
    timing: dict = {}
    train_feats, val_feats, train_images = trunk_features(cfg, trunk, resolved, train_records, val_records,
                                                          device, reporter, timing, frames)

    g_train, a_train = record_labels(train_records)
    g_val, a_val = record_labels(val_records)
    age_weights = class_weights(a_train[a_train != MISSING_LABEL].numpy(), len(AGE_CLASSES))
    loss_fns = (nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
                nn.CrossEntropyLoss(weight=torch.from_numpy(age_weights).to(device),
                                    label_smoothing=cfg.label_smoothing))
    params = [p for p in tail.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
    state = {"epoch": 0, "best_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0, "history": []}
    progress_file = cfg.out / "progress.pt"
    if cfg.resume and progress_file.exists():
        saved = load_checked(progress_file, "training checkpoint", MAX_RESUME_BYTES)
        tail.load_state_dict(saved["tail"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        reporter.message(f"resuming after epoch {state['epoch']}")

    generator = torch.Generator().manual_seed(cfg.seed + state["epoch"])
    reporter.start("training", cfg.epochs)
    reporter.advance(state["epoch"])
    epoch_seconds = []
    while state["epoch"] < cfg.epochs and state["bad_epochs"] < cfg.patience:
        started = time.perf_counter()
        tail.train()
        sums = {"loss": 0.0, "gender_acc": 0.0, "age_acc": 0.0}
        for idx, x in epoch_batches(cfg, state["epoch"], generator, train_feats, train_images, trunk, device):
            g, a = g_train[idx].to(device), a_train[idx].to(device)
            with autocast(device, cfg.precision):
                gl, al = tail(x)
            gl, al = gl.float(), al.float()
            loss = task_losses(loss_fns, gl, al, g, a)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] += loss.item() * len(idx)
            sums["gender_acc"] += (gl.argmax(1) == g).sum().item()
            sums["age_acc"] += (al.argmax(1) == a).sum().item()
        train_m = {"loss": sums["loss"] / len(train_records),
                   "gender_acc": sums["gender_acc"] / max(int((g_train != MISSING_LABEL).sum()), 1),
                   "age_acc": sums["age_acc"] / max(int((a_train != MISSING_LABEL).sum()), 1)}
        val_m = evaluate_tail(tail, val_feats, g_val, a_val, loss_fns, device, cfg.precision)
        scheduler.step(val_m["loss"])
        state["epoch"] += 1
        epoch_seconds.append(time.perf_counter() - started)
        state["history"].append({
            "epoch": state["epoch"], "lr": optimizer.param_groups[0]["lr"],
            **{f"train_{k}": v for k, v in train_m.items()}, **{f"val_{k}": v for k, v in val_m.items()},
        })
        # lower is better for both criteria
        score = val_m["loss"] if cfg.select == "loss" else -(val_m["gender_acc"] + val_m["age_acc"])
        if score < state["best_loss"]:
            state.update(best_loss=score, best_epoch=state["epoch"], bad_epochs=0, best_val=val_m)
            atomic_torch_save(checkpoint(cfg, tail, resolved, state), cfg.out / "model.pt")
        else:
            state["bad_epochs"] += 1
        atomic_torch_save({"tail": tail.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "state": state}, progress_file)
        reporter.advance(1, loss=val_m["loss"], gender=val_m["gender_acc"], age=val_m["age_acc"])
    reporter.finish()
    history = state["history"]
    atomic_write_text(cfg.out / "history.json", json.dumps(history, indent=2))
    from agegender_cli.evaluation.plots import plot_training_curves

    best_epoch = state["best_epoch"]
    curves = cfg.out / f"curves.{cfg.plot_format}"
    plot_training_curves(history, curves, title=f"facenet: {cfg.head} heads on {cfg.backbone}, from {cfg.unfreeze}",
                         best_epochs={"gender": best_epoch, "age": best_epoch} if best_epoch else None)
    timing["epoch_seconds_mean"] = float(np.mean(epoch_seconds)) if epoch_seconds else None
    return TrainResult(
        arch="facenet", checkpoint=str(cfg.out / "model.pt"), best_epoch={"gender": best_epoch, "age": best_epoch},
        epochs_run=state["epoch"], val=state.get("best_val") or {}, history=str(cfg.out / "history.json"),
        curves=str(curves), seconds=round(time.perf_counter() - run_started, 1),
        details={"backbone": {"name": resolved.name, "sha256": resolved.sha256, "source": resolved.source},
                 "timing": timing, "stopped_early": state["bad_epochs"] >= cfg.patience},
    )


def _framed(cfg: FacenetTrainConfig, train_records, val_records, device, reporter: Reporter):
    """The records whose face the detector finds, with their chip matrices; the others are left out, counted."""
    from agegender_cli.data.chips import framed_records

    records, matrices = framed_records(train_records + val_records, cfg.detector, device=device.type,
                                       what="train and val images", pick=cfg.pick, reporter=reporter)
    kept = list(zip(records, matrices, strict=True))
    train = [(r, m) for r, m in kept if r.split == "train"]
    val = [(r, m) for r, m in kept if r.split == "val"]
    return ([r for r, _ in train], [r for r, _ in val], ([m for _, m in train], [m for _, m in val]))


def checkpoint(cfg: FacenetTrainConfig, tail, resolved, state: dict) -> dict:
    """A self-describing checkpoint: everything needed to rebuild and explain the model."""
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(replace(cfg, resume=False)).items()}
    return {
        "format": FORMAT,
        "arch": "facenet",
        "config": config,
        "classes": {"gender": list(GENDERS), "age": list(AGE_CLASSES)},
        "preprocess": {"name": cfg.preprocess, **asdict(PREPROCESS_PRESETS[cfg.preprocess])},
        "backbone": {"name": resolved.name, "sha256": resolved.sha256},
        "image_size": cfg.image_size,
        "epoch": state["epoch"],
        "val_metrics": state.get("best_val", {}),
        "history": state["history"],
        "state_dict": {k: v.detach().cpu().clone() for k, v in tail.state_dict().items()},
    }
