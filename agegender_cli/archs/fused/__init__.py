"""The fused answer: facenet's and caffenet's probabilities and years combined with weights fitted on val."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agegender_cli.archs.entry import INT8, ONNX, Entry
from agegender_cli.archs.facenet import ARCH as FACENET
from agegender_cli.archs.fused.config import PARTS, FusedTrainConfig
from agegender_cli.config import ASSETS_DIR

if TYPE_CHECKING:
    from agegender_cli.archs.base import Log, Predictor, Trainer
    from agegender_cli.config import ModelOptions

class Fused(Entry):
    """The registry entry: a composite of PARTS. The registry loads the parts (each once where they run too) and
    compose() builds the fused predictor on them; it has no load_predictor of its own."""

    name = "fused"
    summary = "facenet + caffenet: their probabilities and years averaged with weights fitted on val"
    train_config = FusedTrainConfig
    bundled = ASSETS_DIR / "fused.json"
    parts = PARTS
    capabilities = frozenset({INT8, ONNX})  # what both parts run in; it has no years head of its own to train

    def compose(self, parts: Mapping[str, Predictor], model: Path | None, options: ModelOptions,
                log: Log) -> Predictor:
        """The fused predictor over parts already loaded (`--arch both` loads each model once)."""
        from agegender_cli.archs.fused.predictor import FusedPredictor, read_weights

        return FusedPredictor(parts, read_weights(model or self.bundled))

    def framing(self, detector: str, options: ModelOptions) -> str:
        return FACENET.framing(detector, options)  # the parts share one framing except with --caffe-weights

    def trainer(self) -> Trainer:
        from agegender_cli.archs.fused.fit import fit_fusion

        return fit_fusion


ARCH = Fused()
