"""What every architecture provides: a Predictor for inference and a Trainer with one result type."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from agegender_cli.config import ModelOptions
    from agegender_cli.progress import Reporter

Log = Callable[[str], None]


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for a batch of faces."""

    gender_prob: np.ndarray  # (N, 2): male, female
    age_prob: np.ndarray  # (N, 8): the classes of labels.AGE_CLASSES
    age_years: np.ndarray | None = None  # (N,): estimated age in years, where the model has a years head

    def __len__(self) -> int:
        return len(self.gender_prob)

    @staticmethod
    def concat(parts: Sequence[Prediction]) -> Prediction:
        if not parts:
            return Prediction(np.zeros((0, 2), np.float32), np.zeros((0, 8), np.float32))
        years = None if any(p.age_years is None for p in parts) else np.concatenate([p.age_years for p in parts])
        return Prediction(
            np.concatenate([p.gender_prob for p in parts]), np.concatenate([p.age_prob for p in parts]), years
        )


def predict_all(predictors: Mapping[str, Any], crops: Mapping[str, Sequence[np.ndarray]]) -> dict[str, Prediction]:
    """Every predictor's answer for its crops, in the predictors' order; a composite (one with `parts` and
    `combine`, the fused architecture) whose parts answer too combines their answers instead of running them
    again."""
    composite = {arch for arch, p in predictors.items()
                 if getattr(p, "combine", None) is not None and set(getattr(p, "parts", ())) <= set(predictors)}
    answers = {arch: p.predict(crops[arch]) for arch, p in predictors.items() if arch not in composite}
    for arch in composite:
        answers[arch] = predictors[arch].combine({part: answers[part] for part in predictors[arch].parts})
    return {arch: answers[arch] for arch in predictors}


class Predictor(Protocol):
    """Takes face crops (BGR uint8, any size, framed like a UTKFace crop) and returns probabilities.

    It may also offer `provenance() -> dict`: "files" (path, bytes, sha256 of every file the model is made
    of), "engine", "precision", "device", and what the model knows of its training ("training",
    "training_data", "model_card" for the bundled ones); reports show what it gives. And `model_path`: the
    model's file or folder, where evaluate looks for its training-set fingerprints (data/fingerprints.py). And
    `engine_choice` (engine_choice.EngineChoice): how --engine/--precision auto chose, set by the registry's loader;
    `engine` and `precision` attributes: what ran, named in every face record."""

    arch: str
    description: str

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction: ...

    # Optional, for a composite of other architectures (fused): `parts`, their names, and combine(answers) -> its
    # Prediction from theirs (predict_all uses it where the parts run too).
    # Optional, for age in years (`agegender train --years`): years_features(faces) -> (N, D) float32, the
    # features a years head reads, and with_years(head, info, out) -> Path, the model saved with that head.


@dataclass(frozen=True)
class TrainResult:
    """What every trainer returns: where the model is, which epoch won, how it did on val, how long it took."""

    arch: str
    checkpoint: str  # the trained model: a file or a folder, loadable with --model ARCH=PATH
    best_epoch: Mapping[str, int]  # per task ("gender", "age"); one epoch for both when they share a model
    epochs_run: int
    val: Mapping[str, float]  # best-val metrics, e.g. gender_acc, age_acc, loss
    history: str  # history.json of the run
    curves: str | None = None  # the loss/accuracy figure
    seconds: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)  # architecture-specific extras

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "checkpoint": self.checkpoint, "best_epoch": dict(self.best_epoch),
                "epochs_run": self.epochs_run, "val": dict(self.val), "history": self.history,
                "curves": self.curves, "seconds": self.seconds, **self.details}


class Trainer(Protocol):
    """One training loop per architecture. It reads the manifest's train and val splits itself and reports
    through `reporter`: message() for log lines, start()/advance(1, **val metrics)/finish() once per epoch."""

    def __call__(self, cfg: Any, reporter: Reporter) -> TrainResult: ...


class Architecture(Protocol):
    """The methods a registry entry (an archs/entry.py Entry subclass, which holds its declarations: training
    config, options, capabilities, resolve_weights) gives. Its module must stay torch-free: heavy imports happen
    inside the methods."""

    name: str
    summary: str  # one line, shown in help and tables
    train_config: type  # the frozen dataclass of its training defaults (in its folder's config.py)

    def load_predictor(self, model: Path | None, options: ModelOptions, log: Log) -> Predictor:
        """The trained model at `model` (None: the bundled one) as a Predictor. A composite of other
        architectures (fused) has instead `parts` (their names) and compose(parts' predictors, model, options,
        log) -> Predictor; the registry loads the parts."""
        ...

    def framing(self, detector: str, options: ModelOptions) -> str:
        """How a detected face is cropped for this model (faces.detection.FRAMINGS)."""
        ...

    def trainer(self) -> Trainer: ...


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights, mean 1 over the training samples; 0 for a class with no sample."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0).astype(np.float32)


MISSING_LABEL = -100  # a task's label an image lacks (LFW: age): cross-entropy's ignore_index, out of the accuracies


def labelled_loss(loss_fn: Callable[[Any, Any], Any], logits: Any, labels: Any) -> Any:
    """`loss_fn` (a cross-entropy ignoring MISSING_LABEL) over the images that have the label; zero, not NaN, for a
    batch with none of them."""
    if bool((labels != MISSING_LABEL).any()):
        return loss_fn(logits, labels)
    return logits.sum() * 0.0
