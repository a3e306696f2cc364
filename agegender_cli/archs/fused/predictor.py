"""Two models' answers as one: a weighted mean of their probabilities (gender, age classes) and of their years."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import Prediction
from agegender_cli.errors import AgeGenderError
from agegender_cli.fileio import display

FORMAT = "agegender-fused/1"
TASKS = ("gender", "age", "years")


@dataclass(frozen=True)
class FusionWeights:
    """The weight of the first part (facenet) per task; the second gets the rest. Where it came from."""

    parts: tuple[str, str]
    weights: Mapping[str, float]
    path: Path
    record: Mapping

    def of(self, task: str) -> float:
        return float(self.weights[task])


def read_weights(path: Path) -> FusionWeights:
    """A fused.json written by `agegender train --arch fused`; weights outside [0, 1], NaN or missing are refused."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AgeGenderError(f"{display(path)}: no fusion weights here; fit them with `agegender train --arch "
                             "fused`") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise AgeGenderError(f"{display(path)}: not readable fusion weights ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise AgeGenderError(f"{display(path)}: not a fused.json of agegender (format {FORMAT} expected)")
    weights, parts = record.get("weights"), record.get("parts")
    if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, str) for p in parts)):
        raise AgeGenderError(f"{display(path)}: 'parts' must name the two architectures it fuses")
    if not isinstance(weights, dict) or set(weights) != set(TASKS) or not all(
            isinstance(w, int | float) and math.isfinite(w) and 0 <= w <= 1 for w in weights.values()):
        raise AgeGenderError(f"{display(path)}: 'weights' must give {', '.join(TASKS)} a number from 0 to 1")
    return FusionWeights((parts[0], parts[1]), weights, Path(path), record)


def fuse(first: Prediction, second: Prediction, weights: Mapping[str, float]) -> Prediction:
    """weights[task] * first + (1 - weights[task]) * second, per task; years where both give them, else the one
    that does."""
    def mix(task: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        w = float(weights[task])
        return (w * a.astype(np.float64) + (1 - w) * b.astype(np.float64)).astype(np.float32)

    years = first.age_years if second.age_years is None else second.age_years if first.age_years is None else mix(
        "years", first.age_years, second.age_years)
    return Prediction(mix("gender", first.gender_prob, second.gender_prob), mix("age", first.age_prob,
                                                                                 second.age_prob), years)


class FusedPredictor:
    """The fused architecture's Predictor: its parts run on the same crops, or their answers are combined
    (combine()) where they ran anyway."""

    def __init__(self, parts: Mapping[str, object], weights: FusionWeights) -> None:
        missing = [p for p in weights.parts if p not in parts]
        if missing:
            raise AgeGenderError(f"{display(weights.path)}: fuses {', '.join(weights.parts)}; "
                                 f"{', '.join(missing)} not loaded")
        self.arch = "fused"
        self.parts = weights.parts
        self._predictors = {p: parts[p] for p in weights.parts}
        self.fusion = weights
        self.model_path = weights.path
        w = weights.weights
        self.description = (f"{' + '.join(weights.parts)}, {weights.parts[0]}'s share gender {w['gender']:.2f}, age "
                            f"{w['age']:.2f}, years {w['years']:.2f} ({display(weights.path)})")
        self.engine = "+".join(str(getattr(p, "engine", "?")) for p in self._predictors.values())
        self.precision = "+".join(str(getattr(p, "precision", "?")) for p in self._predictors.values())

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        return self.combine({name: p.predict(faces) for name, p in self._predictors.items()})  # type: ignore[attr-defined]

    def combine(self, answers: Mapping[str, Prediction]) -> Prediction:
        first, second = (answers[p] for p in self.parts)
        return fuse(first, second, self.fusion.weights)

    def provenance(self) -> dict:
        """The weights file, and each part's own provenance."""
        from agegender_cli.provenance import file_record

        parts = {name: p.provenance() if hasattr(p, "provenance") else {} for name, p in self._predictors.items()}
        files = [file_record(self.fusion.path)] + [f for part in parts.values() for f in part.get("files", [])]
        return {"files": files, "engine": self.engine, "precision": self.precision,
                "fusion": {"weights": dict(self.fusion.weights), "parts": list(self.parts),
                           "fitted_on": self.fusion.record.get("fitted_on")}, "parts": parts}
