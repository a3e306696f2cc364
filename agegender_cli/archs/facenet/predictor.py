"""Architecture A behind the predictor interface: backbone + trained tail from a checkpoint."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agegender_cli.archs.base import Prediction
from agegender_cli.archs.facenet.config import HEADS
from agegender_cli.archs.facenet.model import FORMAT, UNFREEZE_CHOICES, build, standardize
from agegender_cli.config import PreprocessConfig
from agegender_cli.data.augment import make_view
from agegender_cli.data.preprocessing import preprocess
from agegender_cli.errors import AgeGenderError
from agegender_cli.labels import AGE_CLASSES, GENDERS
from agegender_cli.runtime import autocast, describe_precision, pick_device, resolve_precision

# The settings a checkpoint may carry, as `agegender train` and `agegender preprocess` accept them: a
# hand-edited value beyond these would build huge layers or filters, or fail deep inside torch or OpenCV.
_HIDDEN = (1, 65_536)
_IMAGE_SIZE = (75, 512)  # InceptionResnetV1 needs 75 px at least; the tool trains at 160
_PREPROCESS_INTS = {"blur_kernel": (1, 255), "clahe_tile": (1, 256), "gabor_kernel": (1, 255)}
_PREPROCESS_POSITIVE = ("clahe_clip", "gabor_sigma", "gabor_lambda", "gabor_gamma")


def load_checkpoint(path: Path) -> dict:
    """A facenet checkpoint, loaded safely (weights_only, bounded size) and checked field by field."""
    from agegender_cli.torchfiles import TorchFileError, check_torch_file, torch_load_reason

    try:
        check_torch_file(path)
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError as exc:
        raise AgeGenderError(f"{path}: no such model file; train one with `agegender train --arch facenet`") from exc
    except TorchFileError as exc:
        raise AgeGenderError(f"{path}: not a readable model checkpoint ({exc})") from exc
    except Exception as exc:  # a truncated or foreign file
        raise AgeGenderError(f"{path}: not a readable model checkpoint ({torch_load_reason(exc)})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise AgeGenderError(f"{path}: not an agegender facenet checkpoint (format {FORMAT} expected)")
    problem = _checkpoint_problem(ckpt)
    if problem:
        raise AgeGenderError(f"{path}: broken facenet checkpoint ({problem})")
    return ckpt


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _real_in(value: Any, low: float, high: float) -> bool:
    real = isinstance(value, int | float) and not isinstance(value, bool)
    return real and math.isfinite(value) and low <= value <= high


def _checkpoint_problem(ckpt: dict) -> str | None:
    """What makes a checkpoint of the right format unusable, or None."""
    cfg, backbone, preprocess = (ckpt.get(key) for key in ("config", "backbone", "preprocess"))
    if not (isinstance(cfg, dict) and isinstance(backbone, dict) and isinstance(preprocess, dict)):
        return "config, backbone and preprocess must be dicts"
    if not (isinstance(backbone.get("name"), str) and isinstance(backbone.get("sha256"), str)):
        return "backbone needs a name and a sha256"
    unfreeze, head = cfg.get("unfreeze"), cfg.get("head")
    if not (isinstance(unfreeze, str) and unfreeze in UNFREEZE_CHOICES and isinstance(head, str) and head in HEADS):
        return f"config unfreeze must be one of {', '.join(UNFREEZE_CHOICES)} and head one of {', '.join(HEADS)}"
    if not (_int_in(cfg.get("hidden"), *_HIDDEN) and _real_in(cfg.get("dropout"), 0.0, 1.0)):
        return f"config hidden must be an integer in {_HIDDEN[0]}..{_HIDDEN[1]} and dropout a number in 0..1"
    classes = ckpt.get("classes")
    if classes is not None and classes != {"gender": list(GENDERS), "age": list(AGE_CLASSES)}:
        return f"classes must be gender {list(GENDERS)} and age {list(AGE_CLASSES)}, in that order"
    if not _int_in(ckpt.get("image_size"), *_IMAGE_SIZE):
        return f"image_size must be an integer in {_IMAGE_SIZE[0]}..{_IMAGE_SIZE[1]}"
    return _preprocess_problem(preprocess) or _tail_problem(ckpt.get("state_dict"), cfg) or _years_problem(ckpt)


def _years_problem(ckpt: dict) -> str | None:
    """An optional years head must be a spec + weights that fit it, reading the 512-value embedding."""
    years = ckpt.get("years_head")
    if years is None:
        return None
    from agegender_cli.archs.years_head import head_from_state

    if not isinstance(years, dict) or not isinstance(years.get("spec"), dict) \
            or not isinstance(years.get("state_dict"), dict):
        return "years_head must hold a spec and a state_dict"
    try:
        head = head_from_state(years["spec"], years["state_dict"])
    except ValueError as exc:
        return str(exc)
    return None if head.in_features == 512 else "years_head must read the 512-value embedding"


def _preprocess_problem(raw: dict) -> str | None:
    """A preprocess entry must name itself and hold PreprocessConfig fields in the ranges the CLI accepts."""
    if not isinstance(raw.get("name"), str):
        return "preprocess needs a name"
    defaults = {f.name: getattr(PreprocessConfig(), f.name) for f in fields(PreprocessConfig)}
    for key, value in raw.items():
        if key != "name" and (key not in defaults or not _preprocess_ok(key, value, defaults[key])):
            return f"preprocess setting {str(key)[:40]} is unknown or out of range"
    return None


def _preprocess_ok(key: str, value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _int_in(value, *_PREPROCESS_INTS[key]) and (key != "blur_kernel" or value % 2 == 1)
    if not _real_in(value, -math.inf, math.inf):
        return False
    if key in _PREPROCESS_POSITIVE:
        return value > 0
    return value >= 0 or key != "blur_sigma"  # the Gabor angle and phase may be negative


def _tail_problem(state: Any, cfg: dict) -> str | None:
    """Whether the weights fit the tail the config describes, checked on a meta-device model (no memory)."""
    from facenet_pytorch import InceptionResnetV1

    from agegender_cli.archs.facenet.backbone import is_weight

    if not isinstance(state, dict):
        return "state_dict must be a dict of tensors"
    with torch.device("meta"):
        _, tail = build(InceptionResnetV1(), cfg["unfreeze"], cfg["head"], cfg["hidden"], cfg["dropout"])
    want = {key: tuple(value.shape) for key, value in tail.state_dict().items()}
    missing = sorted(set(want) - set(state))
    unexpected = sorted(str(key)[:80] for key in set(state) - set(want))
    wrong = sorted(key for key in want if key in state and not is_weight(state[key], want[key]))
    if missing or unexpected or wrong:
        return (f"its weights do not fit a {cfg['head']} head unfrozen from {cfg['unfreeze']}: {len(missing)} missing,"
                f" {len(unexpected)} unexpected, {len(wrong)} mis-shaped or non-tensor; first: "
                f"{(missing + unexpected + wrong)[:3]}")
    broken = sorted(key for key, value in state.items()
                    if value.is_floating_point() and not bool(torch.isfinite(value).all()))
    if broken:
        return (f"{len(broken)} weight tensors hold values that are not finite numbers (NaN or infinite), first: "
                f"{broken[0]}; retrain the model or restore it from its run folder")
    return None


class FacenetPredictor:
    """InceptionResnetV1 trunk + the checkpoint's tail; faces in, probabilities out."""

    arch = "facenet"
    engine = "torch"

    def __init__(
        self, checkpoint_path: Path, *, backbone_weights: Path | None = None, device: str = "auto",
        precision: str = "auto", batch_size: int = 64, log: Callable[[str], None] | None = None,
    ) -> None:
        from agegender_cli.archs.facenet.backbone import load_backbone, resolve_backbone

        ckpt = load_checkpoint(checkpoint_path)
        cfg = ckpt["config"]
        resolved = resolve_backbone(ckpt["backbone"]["name"], backbone_weights, log=log or (lambda _: None))
        if resolved.sha256 != ckpt["backbone"]["sha256"] and log:
            log(f"note: backbone file {resolved.sha256[:12]} differs from the one trained on "
                f"({ckpt['backbone']['sha256'][:12]}); same weights are expected from either route")
        self.trunk, self.tail = build(load_backbone(resolved), cfg["unfreeze"], cfg["head"], cfg["hidden"],
                                      cfg["dropout"])
        self.tail.load_state_dict({k: v.float() if v.is_floating_point() else v
                                   for k, v in ckpt["state_dict"].items()})
        self.tail.eval()
        self.device = pick_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.image_size = int(ckpt["image_size"])
        self.preprocess_cfg = PreprocessConfig(**{k: v for k, v in ckpt["preprocess"].items() if k != "name"})
        self.trunk.to(self.device).to(memory_format=torch.channels_last)
        self.tail.to(self.device)
        self.years_head = _years_head(ckpt)
        if self.years_head is not None:
            self.years_head.to(self.device)
        self.checkpoint = ckpt
        self.path = self.model_path = Path(checkpoint_path)
        self.backbone = resolved
        self.description = (f"InceptionResnetV1 ({ckpt['backbone']['name']}) + {cfg['head']} heads, "
                            f"preprocess {ckpt['preprocess']['name']}, {describe_precision(precision, self.device)}")

    def provenance(self) -> dict:
        """The checkpoint's hash, the backbone it was trained on and the one that ran, how it was trained."""
        from agegender_cli.provenance import bundled_card, file_record

        ckpt, cfg = self.checkpoint, self.checkpoint["config"]
        trained = {"manifest": cfg.get("manifest"), "epoch": ckpt.get("epoch"), "val": ckpt.get("val_metrics"),
                   "select": cfg.get("select"), "seed": cfg.get("seed")}
        return {"files": [file_record(self.path)], "engine": "torch", "precision": self.precision,
                "device": str(self.device),
                "backbone": {"name": ckpt["backbone"]["name"], "trained_sha256": ckpt["backbone"]["sha256"],
                             "sha256": self.backbone.sha256, "source": str(self.backbone.source),
                             "path": str(self.backbone.path)},
                "trained": trained, **(bundled_card(self.path) or {})}

    def _batch(self, faces: Sequence[np.ndarray]) -> torch.Tensor:
        views = [make_view(preprocess(face, self.preprocess_cfg), self.image_size) for face in faces]
        x = standardize(torch.from_numpy(np.stack(views)))
        if self.device.type == "cuda":  # page-locked: the copy to the GPU overlaps the work queued before it
            x = x.pin_memory().to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        from agegender_cli.labels import expected_years

        parts = []
        for start in range(0, len(faces), self.batch_size):
            x = self._batch(faces[start:start + self.batch_size])
            with autocast(self.device, self.precision):
                embedding = self.tail.embed(self.trunk(x))
                gender, age = self.tail.gender_head(embedding), self.tail.age_head(embedding)
            years = None
            if self.years_head is not None:  # in fp32: a 101-way expectation is sensitive to bf16 rounding
                years = expected_years(torch.softmax(self.years_head(embedding.float()), 1).cpu().numpy())
            parts.append(Prediction(torch.softmax(gender.float(), 1).cpu().numpy(),
                                    torch.softmax(age.float(), 1).cpu().numpy(), years))
        return Prediction.concat(parts)

    @torch.inference_mode()
    def years_features(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """The embedding the class heads read (what a years head is trained on), in fp32."""
        parts = []
        for start in range(0, len(faces), self.batch_size):
            x = self._batch(faces[start:start + self.batch_size])
            parts.append(self.tail.embed(self.trunk(x)).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 512), np.float32)

    def with_years(self, head: torch.nn.Module, info: dict, out: Path) -> Path:
        """This checkpoint plus a years head, saved as out/facenet.pt (fp16 weights, like the heads)."""
        from agegender_cli.fileio import atomic_write

        ckpt = dict(self.checkpoint)
        weights = {k: _half_if_it_fits(v.detach().cpu()) for k, v in head.state_dict().items()}
        ckpt["years_head"] = {"spec": head.spec(), "info": info, "state_dict": weights}
        path = Path(out) / "facenet.pt"
        return atomic_write(path, lambda handle: torch.save(ckpt, handle))


def _half_if_it_fits(tensor: torch.Tensor) -> torch.Tensor:
    """fp16 where every value fits it (finite after the cast), else fp32 as it is."""
    half = tensor.half()
    return half if bool(torch.isfinite(half).all()) else tensor.float()


def _years_head(ckpt: dict) -> torch.nn.Module | None:
    from agegender_cli.archs.years_head import head_from_state

    years = ckpt.get("years_head")
    return None if years is None else head_from_state(years["spec"], years["state_dict"])
