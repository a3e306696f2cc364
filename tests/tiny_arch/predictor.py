"""The tiny model: gender from the mean brightness, age from it too; cheap and deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import Prediction


class TinyPredictor:
    """Gender from the mean brightness, age from the mean hue: cheap and deterministic."""

    arch = "tiny"
    engine = "numpy"
    precision = "fp32"

    def __init__(self, model: Path | None, bias: float) -> None:
        self.description = f"tiny model {model}"
        self.bias = bias
        self.model = model

    def provenance(self) -> dict:
        from agegender_cli.provenance import file_record

        files = [file_record(self.model)] if self.model is not None and Path(self.model).is_file() else []
        return {"files": files, "engine": "numpy", "precision": "fp32", "device": "cpu"}

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        means = np.array([f.mean() / 255.0 for f in faces], np.float32).reshape(-1)
        female = np.clip(means + self.bias, 0.0, 1.0)
        gender = np.stack([1 - female, female], axis=1)
        age = np.zeros((len(faces), 8), np.float32)
        age[np.arange(len(faces)), (means * 7.99).astype(int)] = 1.0
        return Prediction(gender, age, np.round(means * 90, 1).astype(np.float32))
