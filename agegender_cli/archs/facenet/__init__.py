"""Architecture A: facenet-pytorch's InceptionResnetV1 (VGGFace2 or CASIA-WebFace) with gender and age heads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from agegender_cli.config import ASSETS_DIR, FacenetTrainConfig

if TYPE_CHECKING:
    from agegender_cli.archs.base import Log, Predictor, Trainer
    from agegender_cli.config import ModelOptions


class Facenet:
    """The registry entry; torch is imported only when a model is loaded or trained."""

    name = "facenet"
    summary = "InceptionResnetV1 trunk (VGGFace2) + gender and age heads, PyTorch / ONNX Runtime"
    train_config = FacenetTrainConfig
    bundled = ASSETS_DIR / "facenet.pt"

    def load_predictor(self, model: Path | None, options: ModelOptions, log: Log) -> Predictor:
        from agegender_cli.runtime import choose_engine

        choice = choose_engine(options.engine, options.device, options.precision, options.workload)
        if choice.engine == "onnx":
            from agegender_cli.archs.facenet.onnx_predictor import FacenetOnnxPredictor

            predictor = FacenetOnnxPredictor(model or self.bundled, backbone_weights=options.backbone_weights,
                                             precision=choice.precision, batch_size=options.batch_size, log=log)
        else:
            from agegender_cli.archs.facenet.predictor import FacenetPredictor

            # --engine opencv is caffenet's: facenet then runs in PyTorch
            predictor = FacenetPredictor(model or self.bundled, backbone_weights=options.backbone_weights,
                                         device=options.device, precision=choice.precision,
                                         batch_size=options.batch_size, log=log)
        predictor.engine_choice = choice
        return predictor

    def resolve_weights(self, model: Path | None, options: ModelOptions, log: Log) -> ModelOptions:
        """The backbone the checkpoint was trained on, resolved now (cache, download or conversion) to a state-dict
        file that can be shipped to machines without internet."""
        from agegender_cli.archs.facenet.backbone import resolve_backbone
        from agegender_cli.archs.facenet.predictor import load_checkpoint

        name = load_checkpoint(model or self.bundled)["backbone"]["name"]
        return replace(options, backbone_weights=resolve_backbone(name, options.backbone_weights, log=log).path)

    def framing(self, detector: str, options: ModelOptions) -> str:
        from agegender_cli.faces.detection import DEFAULT_FRAMING

        return DEFAULT_FRAMING[detector]

    def trainer(self) -> Trainer:
        from agegender_cli.archs.facenet.train import train_facenet

        return train_facenet


ARCH = Facenet()
