"""The one predictor interface that every architecture implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for a batch of faces."""

    gender_prob: np.ndarray  # (N, 2): male, female
    age_prob: np.ndarray  # (N, 8): the classes of labels.AGE_CLASSES

    def __len__(self) -> int:
        return len(self.gender_prob)

    @staticmethod
    def concat(parts: Sequence[Prediction]) -> Prediction:
        if not parts:
            return Prediction(np.zeros((0, 2), np.float32), np.zeros((0, 8), np.float32))
        return Prediction(
            np.concatenate([p.gender_prob for p in parts]), np.concatenate([p.age_prob for p in parts])
        )


class Predictor(Protocol):
    """Takes face crops (BGR uint8, any size, framed like a UTKFace crop) and returns probabilities."""

    arch: str
    description: str

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction: ...
