"""The tiny architecture's training defaults, and the training option of its own it offers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agegender_cli.archs.entry import Knob, WeightOption
from agegender_cli.config import DEFAULT_MANIFEST


@dataclass(frozen=True)
class TinyTrainConfig:
    manifest: Path = DEFAULT_MANIFEST
    out: Path = Path("runs/tiny")
    epochs: int = 3
    seed: int = 0
    resume: bool = False
    brightness_bins: int = 8  # its own setting: `train --brightness-bins`


KNOBS = (Knob("brightness_bins", "Bins of the tiny model's brightness rule.", int, low=2, high=64),)
# its own weights option: `--tiny-weights FILE` in every command that runs models, `tiny_weights=` in the API
TINY_WEIGHTS = WeightOption("tiny_weights", "A file whose first byte biases the tiny model's gender.")
