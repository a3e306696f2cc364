"""A tiny architecture for tests, added as a real one is: this folder and one registry line
(`registry.register(Tiny())`). Cheap and deterministic."""

from __future__ import annotations

from pathlib import Path

from agegender_cli.archs.base import TrainResult
from agegender_cli.archs.entry import Entry
from agegender_cli.config import ModelOptions
from tiny_arch.config import KNOBS, TINY_WEIGHTS, TinyTrainConfig
from tiny_arch.predictor import TinyPredictor


class Tiny(Entry):
    name = "tiny"
    summary = "a test architecture"
    train_config = TinyTrainConfig
    knobs = KNOBS
    weight_options = (TINY_WEIGHTS,)
    resume_file = "model.txt"

    def __init__(self, name: str = "tiny", bias: float = 0.0) -> None:
        self.name, self.bias = name, bias
        self.loaded: list[tuple[Path | None, ModelOptions]] = []

    def load_predictor(self, model, options, log):
        self.loaded.append((model, options))
        weights = options.weight(TINY_WEIGHTS.name)
        bias = self.bias + (weights.read_bytes()[0] / 255.0 if weights is not None else 0.0)
        return TinyPredictor(model, bias)

    def framing(self, detector, options):
        return "box" if detector == "none" else "utkface"

    def trainer(self):
        def fit(cfg: TinyTrainConfig, reporter) -> TrainResult:
            reporter.start("training tiny", cfg.epochs)
            for epoch in range(cfg.epochs):
                reporter.advance(1, val_gender_acc=0.5 + epoch / 10)
            reporter.finish()
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
            (Path(cfg.out) / "model.txt").write_text(f"tiny {cfg.brightness_bins}")
            return TrainResult(arch=self.name, checkpoint=str(Path(cfg.out) / "model.txt"),
                               best_epoch={"gender": cfg.epochs, "age": 1}, epochs_run=cfg.epochs,
                               val={"gender_acc": 0.7}, history=str(Path(cfg.out) / "history.json"))

        return fit



# the fault tests' variants, built on Tiny
from tiny_arch.faulty import DyingForGood, DyingOnce, Misbehaving  # noqa: E402

__all__ = ["DyingForGood", "DyingOnce", "Misbehaving", "Tiny", "TinyPredictor"]
