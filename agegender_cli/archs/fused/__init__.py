"""The fused answer: facenet's and caffenet's probabilities and years combined with weights fitted on val."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agegender_cli.config import ASSETS_DIR, FusedTrainConfig

if TYPE_CHECKING:
    from agegender_cli.archs.base import Log, Predictor, Trainer
    from agegender_cli.config import ModelOptions

PARTS = ("facenet", "caffenet")


class Fused:
    """The registry entry: a composite of PARTS; loading it loads them (or takes them loaded, compose())."""

    name = "fused"
    summary = "facenet + caffenet: their probabilities and years averaged with weights fitted on val"
    train_config = FusedTrainConfig
    bundled = ASSETS_DIR / "fused.json"
    parts = PARTS

    def load_predictor(self, model: Path | None, options: ModelOptions, log: Log) -> Predictor:
        from agegender_cli.archs import registry

        return self.compose({part: registry.load_predictor(part, options, log) for part in PARTS}, model, options,
                            log)

    def compose(self, parts: Mapping[str, Predictor], model: Path | None, options: ModelOptions,
                log: Log) -> Predictor:
        """The fused predictor over parts already loaded (`--arch both` loads each model once)."""
        from agegender_cli.archs.fused.predictor import FusedPredictor, read_weights

        return FusedPredictor(parts, read_weights(model or self.bundled))

    def framing(self, detector: str, options: ModelOptions) -> str:
        from agegender_cli.archs import registry

        return registry.framing(PARTS[0], detector, options)

    def trainer(self) -> Trainer:
        from agegender_cli.archs.fused.fit import fit_fusion

        return fit_fusion


ARCH = Fused()
