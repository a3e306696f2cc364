"""`agegender train`: one architecture's trainer on a manifest, or a years head added to a trained model."""

from __future__ import annotations

from pathlib import Path

from agegender_cli.archs.entry import YEARS
from agegender_cli.archs.registry import capable, resume_files
from agegender_cli.config import DEFAULT_RUNS_DIR, TRAIN_PRECISIONS, ModelOptions, YearsTrainConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display
from agegender_cli.progress import SILENT, Reporter
from agegender_cli.service.loading import load_predictors


def train(arch: str, cfg, reporter: Reporter = SILENT, *, overwrite: bool = False) -> dict:
    """`agegender train`: one architecture's trainer on a manifest's train split, chosen on val; the training
    images' fingerprints are stored beside the model (evaluate warns when it is scored on them). A run folder
    that already holds files is refused unless the run resumes it or `overwrite` is set."""
    from agegender_cli.archs.registry import trainer
    from agegender_cli.data.fingerprints import hash_images, write_fingerprints
    from agegender_cli.data.utkface import read_manifest

    if getattr(cfg, "precision", "auto") not in TRAIN_PRECISIONS:
        raise AgeGenderError(f"training runs in {', '.join(TRAIN_PRECISIONS)}, not {cfg.precision} (int8 is for "
                             "running a trained model)")
    refuse_used_folder(Path(cfg.out), cfg.resume or overwrite)
    _mark_run(Path(cfg.out), arch, resume=bool(getattr(cfg, "resume", False)))
    if hasattr(cfg, "precision") and hasattr(cfg, "device"):  # PyTorch's --precision auto may consult it
        from agegender_cli.runtime import calibrate_first

        calibrate_first("torch", cfg.device, cfg.precision, reporter.message)
    result = trainer(arch)(cfg, reporter).to_dict()
    if not Path(cfg.manifest).is_file():  # a trainer that reads its data elsewhere: no fingerprints
        return result
    paths = [record.path for record in read_manifest(cfg.manifest, "train")]
    reporter.start("fingerprinting the training images", len(paths))
    hashes = hash_images(paths, reporter.advance)
    reporter.finish()
    result["train_fingerprints"] = str(write_fingerprints(hashes, Path(result["checkpoint"])))
    return result


RUN_MARK = "run.json"  # which architecture a run folder trains: --resume continues only that one


def _mark_run(out: Path, arch: str, *, resume: bool) -> None:
    """A fresh run writes RUN_MARK; --resume is refused on a folder with no run, or with another architecture's."""
    import json

    from agegender_cli.fileio import atomic_write_text

    mark = out / RUN_MARK
    if resume:
        try:
            found = json.loads(mark.read_text()).get("arch") if mark.is_file() else None
        except (OSError, ValueError, AttributeError):
            found = None
        # a run folder older than RUN_MARK: the file its trainer leaves to resume from
        found = found or next((name for name, file in resume_files().items() if (out / file).is_file()), None)
        if found is None:
            raise AgeGenderError(f"--resume: {display(out)} holds no run to continue; train without --resume")
        if found != arch:
            raise AgeGenderError(f"--resume: {display(out)} holds a {found} run, not {arch}; continue it with "
                                 f"--arch {found}, or choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(mark, json.dumps({"arch": arch}) + "\n")


def refuse_used_folder(out: Path, allowed: bool) -> None:
    """A run folder that already holds files is only written into with --resume or --overwrite."""
    if not allowed and out.is_dir() and any(out.iterdir()):
        raise AgeGenderError(f"{display(out)} already holds a training run: pass --resume to continue it or "
                             "--overwrite to train anew in it (or choose another --out)")


def train_years(cfg: YearsTrainConfig, reporter: Reporter = SILENT, *, overwrite: bool = False) -> dict:
    """`agegender train --years`: features of every train/val face with an age (gap ages too) from a trained
    model, a years head chosen on val MAE, the model saved again with that head (class outputs unchanged)."""
    import time

    from agegender_cli.archs.years_head import choose_years_head
    from agegender_cli.data.utkface import read_manifest

    started = time.monotonic()
    if not capable(cfg.arch, YEARS):  # said before any model loads
        raise AgeGenderError(f"{cfg.arch} models cannot learn age in years")
    out = cfg.out or DEFAULT_RUNS_DIR / f"{cfg.arch}-years"
    refuse_used_folder(Path(out), overwrite)
    options = ModelOptions(models=((cfg.arch, cfg.init),) if cfg.init else (), engine="torch", precision="fp32",
                           batch_size=cfg.batch_size)
    predictor = load_predictors((cfg.arch,), options, reporter)[cfg.arch]
    data, train_hashes = {}, []
    for split in ("train", "val"):
        records = [r for r in read_manifest(cfg.manifest, split) if r.age is not None]
        frames = None
        if cfg.detector != "none" and records:
            from agegender_cli.data.chips import framed_records

            records, frames = framed_records(records, cfg.detector, what=f"{split} images with an age",
                                             pick=cfg.pick, reporter=reporter)
        if not records:
            raise AgeGenderError(f"{cfg.manifest}: no {split} image with an age; years need ages in the manifest")
        data[split] = _years_features(predictor, records, cfg, reporter, split,
                                      train_hashes if split == "train" else None, frames)
    reporter.message(f"fitting years heads on {len(data['train'][1])} train faces, chosen on {len(data['val'][1])} "
                     "val faces")
    fit, tried = choose_years_head(*data["train"], *data["val"], seed=cfg.seed)
    info = {"manifest": str(cfg.manifest), "train_faces": len(data["train"][1]), "val_faces": len(data["val"][1]),
            "val_mae": round(fit.val_mae, 4), "epoch": fit.epoch, "chosen": fit.settings, "tried": tried,
            "history": fit.history}
    saved = predictor.with_years(fit.head, info, out)
    fingerprints = _extend_fingerprints(getattr(predictor, "model_path", None), train_hashes, saved)
    return {"arch": cfg.arch, "checkpoint": str(saved), "train_fingerprints": str(fingerprints),
            "seconds": round(time.monotonic() - started, 1), **info}


def _extend_fingerprints(model: Path | None, hashes: list[int], saved: Path) -> Path:
    """The extended model's training set: the images its starting model learned from, and the new head's."""
    import numpy as np

    from agegender_cli.data.fingerprints import read_fingerprints, write_fingerprints

    earlier = None if model is None else read_fingerprints(model)
    new = np.array(hashes, np.uint64)
    return write_fingerprints(new if earlier is None else np.concatenate([earlier, new]), saved)


def _years_features(predictor, records, cfg: YearsTrainConfig, reporter: Reporter, split: str,
                    hashes: list[int] | None = None, frames=None):
    """(features, ages) of the records that decode, from the model's years_features; with `hashes`, the
    images' training-set fingerprints are collected on the way (no second decoding); with `frames` (chip
    matrices, data.chips), each face is cut out of its photo as `predict` frames it."""
    import numpy as np

    from agegender_cli.data.fingerprints import image_hash
    from agegender_cli.faces.align import warp_chip
    from agegender_cli.faces.batches import iter_image_batches

    features, ages = [], []
    reporter.start(f"{split} features", len(records))
    for batch in iter_image_batches([r.path for r in records], cfg.batch_size, cfg.workers):
        if batch.images:
            faces = (batch.images if frames is None
                     else [warp_chip(image, frames[i]) for image, i in zip(batch.images, batch.indices, strict=True)])
            features.append(predictor.years_features(faces))
            ages += [records[i].age for i in batch.indices]
            if hashes is not None:
                hashes += [image_hash(image) for image in batch.images]
        reporter.advance(len(batch.indices) + len(batch.failed))
    reporter.finish()
    return np.concatenate(features).astype(np.float32), np.asarray(ages, np.float32)
