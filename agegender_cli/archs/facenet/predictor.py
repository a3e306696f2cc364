"""Architecture A behind the predictor interface: backbone + trained tail from a checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from agegender_cli.archs.base import Prediction
from agegender_cli.archs.facenet.model import FORMAT, build, standardize
from agegender_cli.config import PreprocessConfig
from agegender_cli.data.augment import make_view
from agegender_cli.data.preprocessing import preprocess
from agegender_cli.errors import AgeGenderError
from agegender_cli.runtime import autocast, describe_precision, pick_device, resolve_precision


def load_checkpoint(path: Path) -> dict:
    """A facenet checkpoint, loaded safely (weights_only) and checked."""
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError as exc:
        raise AgeGenderError(f"{path}: no such model file; train one with `agegender train --arch facenet`") from exc
    except Exception as exc:  # a truncated or foreign file
        raise AgeGenderError(f"{path}: not a readable model checkpoint ({type(exc).__name__})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise AgeGenderError(f"{path}: not an agegender facenet checkpoint (format {FORMAT} expected)")
    return ckpt


class FacenetPredictor:
    """InceptionResnetV1 trunk + the checkpoint's tail; faces in, probabilities out."""

    arch = "facenet"

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
        self.checkpoint = ckpt
        self.description = (f"InceptionResnetV1 ({ckpt['backbone']['name']}) + {cfg['head']} heads, "
                            f"preprocess {ckpt['preprocess']['name']}, {describe_precision(precision, self.device)}")

    def _batch(self, faces: Sequence[np.ndarray]) -> torch.Tensor:
        views = [make_view(preprocess(face, self.preprocess_cfg), self.image_size) for face in faces]
        x = standardize(torch.from_numpy(np.stack(views))).to(self.device)
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        parts = []
        for start in range(0, len(faces), self.batch_size):
            x = self._batch(faces[start:start + self.batch_size])
            with autocast(self.device, self.precision):
                gender, age = self.tail(self.trunk(x))
            parts.append(Prediction(torch.softmax(gender.float(), 1).cpu().numpy(),
                                    torch.softmax(age.float(), 1).cpu().numpy()))
        return Prediction.concat(parts)
