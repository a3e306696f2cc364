"""Architecture A: facenet-pytorch's InceptionResnetV1 (VGGFace2 or CASIA-WebFace) with gender and age heads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agegender_cli.archs.entry import INT8, ONNX, YEARS, Entry
from agegender_cli.archs.facenet.config import BACKBONE_WEIGHTS, KNOBS, FacenetTrainConfig
from agegender_cli.config import ASSETS_DIR
from agegender_cli.errors import AgeGenderError

if TYPE_CHECKING:
    from agegender_cli.archs.base import Log, Predictor, Trainer
    from agegender_cli.config import ModelOptions


class Facenet(Entry):
    """The registry entry; torch is imported only when a model is loaded or trained."""

    name = "facenet"
    summary = "InceptionResnetV1 trunk (VGGFace2) + gender and age heads, PyTorch / ONNX Runtime"
    train_config = FacenetTrainConfig
    knobs = KNOBS
    weight_options = (BACKBONE_WEIGHTS,)
    capabilities = frozenset({YEARS, INT8, ONNX})
    resume_file = "progress.pt"
    bundled = ASSETS_DIR / "facenet.pt"

    def load_predictor(self, model: Path | None, options: ModelOptions, log: Log) -> Predictor:
        from agegender_cli.runtime import choose_engine

        choice = choose_engine(options.engine, options.device, options.precision, options.workload)
        backbone_weights = options.weight(BACKBONE_WEIGHTS.name)
        if choice.engine == "onnx":
            from agegender_cli.archs.facenet.onnx_predictor import FacenetOnnxPredictor

            predictor = FacenetOnnxPredictor(model or self.bundled, backbone_weights=backbone_weights,
                                             precision=choice.precision, batch_size=options.batch_size, log=log)
        else:
            from agegender_cli.archs.facenet.predictor import FacenetPredictor

            # --engine opencv is caffenet's: facenet then runs in PyTorch
            predictor = FacenetPredictor(model or self.bundled, backbone_weights=backbone_weights,
                                         device=options.device, precision=choice.precision,
                                         batch_size=options.batch_size, log=log)
        predictor.engine_choice = choice
        return predictor

    def resolve_weights(self, model: Path | None, options: ModelOptions, log: Log) -> ModelOptions:
        """The backbone the checkpoint was trained on, resolved now (cache, download or conversion) to a state-dict
        file that can be shipped to machines without internet."""
        from agegender_cli.archs.facenet.backbone import resolve_backbone

        name = backbone_name(model or self.bundled)
        given = options.weight(BACKBONE_WEIGHTS.name)
        return options.with_weight(BACKBONE_WEIGHTS.name, resolve_backbone(name, given, log=log).path)

    def framing(self, detector: str, options: ModelOptions) -> str:
        from agegender_cli.faces.detection import DEFAULT_FRAMING

        return DEFAULT_FRAMING[detector]

    def trainer(self) -> Trainer:
        from agegender_cli.archs.facenet.train import train_facenet

        return train_facenet


def backbone_name(checkpoint: Path) -> str:
    """The backbone a checkpoint was trained on, remembered in the cache under the checkpoint's sha256: reading it
    from the checkpoint imports torch (1.5 s), which `predict --ray` on ONNX Runtime otherwise never needs."""
    import json

    from agegender_cli.cache import cache_dir
    from agegender_cli.fileio import atomic_write_text
    from agegender_cli.onnx_models import file_digest

    remembered = cache_dir() / "checkpoints" / f"{file_digest(checkpoint)[:32]}.json"
    try:
        return str(json.loads(remembered.read_text())["backbone"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from agegender_cli.archs.facenet.predictor import load_checkpoint

    name = load_checkpoint(checkpoint)["backbone"]["name"]
    try:
        remembered.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(remembered, json.dumps({"backbone": name}) + "\n")
    except (OSError, AgeGenderError):  # a read-only cache: read from the checkpoint each time
        pass
    return name


ARCH = Facenet()
