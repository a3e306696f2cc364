"""A tiny architecture for tests: registered like the real ones, cheap and deterministic."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import Prediction, TrainResult
from agegender_cli.config import DEFAULT_MANIFEST, ModelOptions


@dataclass(frozen=True)
class TinyTrainConfig:
    manifest: Path = DEFAULT_MANIFEST
    out: Path = Path("runs/tiny")
    epochs: int = 3
    seed: int = 0
    resume: bool = False


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


class Tiny:
    name = "tiny"
    summary = "a test architecture"
    train_config = TinyTrainConfig

    def __init__(self, name: str = "tiny", bias: float = 0.0) -> None:
        self.name, self.bias = name, bias
        self.loaded: list[tuple[Path | None, ModelOptions]] = []

    def load_predictor(self, model, options, log):
        self.loaded.append((model, options))
        return TinyPredictor(model, self.bias)

    def framing(self, detector, options):
        return "box" if detector == "none" else "utkface"

    def trainer(self):
        def fit(cfg: TinyTrainConfig, reporter) -> TrainResult:
            reporter.start("training tiny", cfg.epochs)
            for epoch in range(cfg.epochs):
                reporter.advance(1, val_gender_acc=0.5 + epoch / 10)
            reporter.finish()
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
            (Path(cfg.out) / "model.txt").write_text("tiny")
            return TrainResult(arch=self.name, checkpoint=str(Path(cfg.out) / "model.txt"),
                               best_epoch={"gender": cfg.epochs, "age": 1}, epochs_run=cfg.epochs,
                               val={"gender_acc": 0.7}, history=str(Path(cfg.out) / "history.json"))

        return fit


class DyingPredictor(TinyPredictor):
    """The tiny predictor whose process dies (os._exit) on its first batch after `marker` appears, once."""

    def __init__(self, marker: Path) -> None:
        super().__init__(None, 0.0)
        self.marker = marker

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        try:
            self.marker.unlink()  # whoever removes the marker dies; the others go on
        except FileNotFoundError:
            return super().predict(faces)
        os._exit(1)


class DyingOnce(Tiny):
    """A tiny architecture whose predictor kills its process once (a crashed Ray actor, for fault tests)."""

    def __init__(self, marker: Path, name: str = "dying") -> None:
        super().__init__(name)
        self.marker = marker

    def load_predictor(self, model, options, log):
        return DyingPredictor(self.marker)


class MisbehavingPredictor(TinyPredictor):
    """The tiny predictor that raises, kills its process or hangs on every batch (`how`)."""

    def __init__(self, how: str) -> None:
        super().__init__(None, 0.0)
        self.how = how

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        if self.how == "raise":
            raise ValueError("the tiny model refuses these faces")
        if self.how == "die":
            os._exit(1)
        import time

        time.sleep(600)
        return super().predict(faces)


class Misbehaving(Tiny):
    """A tiny architecture whose predictor raises, dies or hangs, or that cannot load (the Ray job's fault
    tests)."""

    def __init__(self, how: str, name: str = "misbehaving") -> None:
        super().__init__(name)
        self.how = how

    def load_predictor(self, model, options, log):
        if self.how == "load":
            from agegender_cli.errors import AgeGenderError

            raise AgeGenderError("the tiny model cannot load here")
        return MisbehavingPredictor(self.how)


class DyingForGood(Tiny):
    """A tiny architecture whose predictor kills its process once, after which that actor cannot load again: an
    actor that Ray cannot start again (as on a lost node), for fault tests."""

    def __init__(self, marker: Path, name: str = "dying") -> None:
        super().__init__(name)
        self.marker = marker

    def load_predictor(self, model, options, log):
        dead = self.marker.with_suffix(".dead")
        if dead.exists() and dead.read_text() == _actor_id():
            from agegender_cli.errors import AgeGenderError

            raise AgeGenderError("this actor cannot start again")
        return _DyingForGoodPredictor(self.marker)


def _actor_id() -> str:
    import ray

    return ray.get_runtime_context().get_actor_id() or ""


class _DyingForGoodPredictor(DyingPredictor):
    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        try:
            self.marker.unlink()  # whoever removes the marker dies, and cannot start again
        except FileNotFoundError:
            return TinyPredictor.predict(self, faces)
        self.marker.with_suffix(".dead").write_text(_actor_id())
        os._exit(1)
