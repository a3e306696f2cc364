"""Architecture A on ONNX Runtime: the trunk, tail and heads of a checkpoint exported once, then run without torch."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import Prediction
from agegender_cli.config import PreprocessConfig
from agegender_cli.data.augment import make_view
from agegender_cli.data.preprocessing import preprocess
from agegender_cli.errors import AgeGenderError
from agegender_cli.labels import expected_years
from agegender_cli.onnx_models import cached_export, export_module, file_digest, session

INPUT = "faces"
OUTPUTS = ("gender_prob", "age_prob", "years_prob")


class FacenetOnnxPredictor:
    """A facenet checkpoint (and the backbone it names) as one ONNX graph: standardised RGB faces in, the
    probabilities of both heads (and the years distribution, where the checkpoint has a years head) out."""

    arch = "facenet"
    engine = "onnx"

    def __init__(self, checkpoint_path: Path, *, backbone_weights: Path | None = None, precision: str = "auto",
                 batch_size: int = 64, log: Callable[[str], None] | None = None) -> None:
        path = Path(checkpoint_path)
        if not path.is_file():
            raise AgeGenderError(f"{path}: no such model file; train one with `agegender train --arch facenet`")
        log = log or (lambda _: None)
        key = hashlib.sha256(file_digest(path).encode())
        if backbone_weights is not None:
            key.update(file_digest(Path(backbone_weights)).encode())
        self.onnx_path, self.meta = cached_export(
            "facenet", key.hexdigest()[:32], lambda out: _export(path, backbone_weights, out, log), log)
        self.path = self.model_path = path
        self.int8_path, how = self._int8(precision, log)
        self.precision = "int8" if self.int8_path else "fp32"
        self.session = session(self.int8_path or self.onnx_path)
        self.batch_size = batch_size
        self.image_size = int(self.meta["image_size"])
        self.preprocess_cfg = PreprocessConfig(**self.meta["preprocess"])
        self.description = f"{self.meta['summary']}, ONNX Runtime, {how}"
        self._outputs = [name for name in OUTPUTS if name in self.meta["outputs"]]

    def _int8(self, precision: str, log: Callable[[str], None]) -> tuple[Path | None, str]:
        """The int8 model quantised from the export, where the checkpoint ships calibrated ranges: always with
        --precision int8, with auto where their val check passed auto's bar (onnx_int8.AUTO_SAME_CLASS)."""
        if precision == "fp32":
            return None, "fp32"
        if precision not in ("auto", "int8"):
            raise AgeGenderError(f"ONNX Runtime runs facenet in fp32 or int8, not {precision}")
        from agegender_cli.archs.facenet.int8_ranges import read_ranges
        from agegender_cli.onnx_int8 import Int8Unavailable, fp32_instead, int8_model, settle

        found, how = settle(precision, *read_ranges(self.path, self.meta["backbone"]["sha256"], precision == "auto"))
        if found is None:
            return None, how
        ranges, scopes = found
        try:
            return int8_model("facenet-int8", self.onnx_path, ranges, log, scopes), how
        except Int8Unavailable as exc:
            return None, fp32_instead(precision, exc, log, "facenet")

    def provenance(self) -> dict:
        """The checkpoint's hash, the backbone it was trained on and the one that ran, how it was trained."""
        from agegender_cli.archs.facenet.int8_ranges import ranges_path
        from agegender_cli.provenance import bundled_card, file_record

        files = [file_record(self.path)] + ([file_record(ranges_path(self.path))] if self.int8_path else [])
        onnx_files = [file_record(p) for p in (self.onnx_path, self.int8_path) if p]
        return {"files": files, "onnx_files": onnx_files,
                "engine": "onnxruntime (exported from the checkpoint)", "precision": self.precision, "device": "cpu",
                "backbone": self.meta["backbone"], "trained": self.meta["trained"], **(bundled_card(self.path) or {})}

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        parts = []
        for start in range(0, len(faces), self.batch_size):
            found = dict(zip(self._outputs, self.session.run(self._outputs, {INPUT: self.batch(
                faces[start:start + self.batch_size])}), strict=True))
            years = expected_years(found["years_prob"]) if "years_prob" in found else None
            parts.append(Prediction(found["gender_prob"], found["age_prob"], years))
        return Prediction.concat(parts)

    def batch(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """Faces (BGR) -> the graph's input: preprocessed, resized views, standardised."""
        views = np.stack([make_view(preprocess(face, self.preprocess_cfg), self.image_size) for face in faces])
        return standardized(views)


def standardized(views_bgr: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) BGR uint8 -> (N, 3, H, W) RGB float32: facenet's fixed standardisation, as model.standardize."""
    x = np.empty((views_bgr.shape[0], 3, *views_bgr.shape[1:3]), np.float32)
    for channel in range(3):  # one pass per channel, no float copy of the whole batch
        np.subtract(views_bgr[..., 2 - channel], np.float32(127.5), out=x[:, channel], casting="unsafe")
    x *= np.float32(1 / 128)  # a power of two: the same values as dividing by 128
    return x


def _export(checkpoint: Path, backbone_weights: Path | None, out: Path, log: Callable[[str], None]) -> dict:
    """Export the PyTorch predictor's graph (fp32) and return what a torch-free load needs to know."""
    import torch

    from agegender_cli.archs.facenet.predictor import FacenetPredictor

    model = FacenetPredictor(checkpoint, backbone_weights=backbone_weights, device="cpu", precision="fp32", log=log)
    model.trunk.to(memory_format=torch.contiguous_format)

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk, self.tail, self.years_head = model.trunk, model.tail, model.years_head

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            embedding = self.tail.embed(self.trunk(x))
            gender, age = self.tail.gender_head(embedding), self.tail.age_head(embedding)
            probs = (torch.softmax(gender, 1), torch.softmax(age, 1))
            if self.years_head is None:
                return probs
            return (*probs, torch.softmax(self.years_head(embedding), 1))

    outputs = list(OUTPUTS if model.years_head is not None else OUTPUTS[:2])
    size = model.image_size
    export_module(Probabilities(), (torch.zeros(2, 3, size, size),), out, [INPUT], outputs)
    provenance = model.provenance()
    return {"image_size": size, "preprocess": {k: v for k, v in model.checkpoint["preprocess"].items() if k != "name"},
            "summary": model.description.rsplit(", ", 1)[0], "outputs": outputs,
            "backbone": provenance["backbone"], "trained": provenance["trained"]}
