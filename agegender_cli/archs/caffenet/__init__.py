"""Architecture B: the Levi & Hassner (2015) age_net and gender_net, run by OpenCV's cv2.dnn."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agegender_cli.archs.caffenet.config import CAFFE_WEIGHTS, ORIGINAL, CaffenetTrainConfig
from agegender_cli.archs.entry import INT8, ONNX, YEARS, Entry
from agegender_cli.config import ASSETS_DIR

if TYPE_CHECKING:
    from agegender_cli.archs.base import Log, Predictor, Trainer
    from agegender_cli.config import ModelOptions

class Caffenet(Entry):
    """The registry entry; cv2 and torch are imported only when a model is loaded or trained."""

    name = "caffenet"
    summary = "Levi-Hassner age_net + gender_net (CaffeNet-style), cv2.dnn / ONNX Runtime / PyTorch"
    train_config = CaffenetTrainConfig
    weight_options = (CAFFE_WEIGHTS,)
    capabilities = frozenset({YEARS, INT8, ONNX})
    resume_file = "checkpoint.pt"
    bundled = ASSETS_DIR / "caffenet"

    def load_predictor(self, model: Path | None, options: ModelOptions, log: Log) -> Predictor:
        from agegender_cli.archs.caffenet.predictor import CaffenetPredictor

        folder = model or self.bundled
        if (given := options.weight(CAFFE_WEIGHTS.name)) is not None:
            folder = self._original_folder(given, log)
        from agegender_cli.runtime import choose_engine

        # auto: the engine measured fastest on this CPU for the work (engine_choice), PyTorch on a GPU; tests prove
        # each agrees with cv2.dnn (the reference engine, --engine opencv) on >= 99.5% of the test faces
        choice = choose_engine(options.engine, options.device, options.precision, options.workload)
        predictor = CaffenetPredictor(folder, engine=choice.engine, precision=choice.precision,
                                      batch_size=options.batch_size, device=options.device, log=log)
        predictor.engine_choice = choice
        return predictor

    def resolve_weights(self, model: Path | None, options: ModelOptions, log: Log) -> ModelOptions:
        """--caffe-weights original is downloaded (or found in the cache) now, into a folder that can be shipped."""
        given = options.weight(CAFFE_WEIGHTS.name)
        return options if given is None else options.with_weight(CAFFE_WEIGHTS.name, self._original_folder(given, log))

    @staticmethod
    def _original_folder(given: Path, log: Log) -> Path:
        from agegender_cli.archs.caffenet.original import resolve_caffe_weights

        return resolve_caffe_weights(None if str(given) == ORIGINAL and not given.exists() else given, log=log)

    def framing(self, detector: str, options: ModelOptions) -> str:
        from agegender_cli.faces.detection import DEFAULT_FRAMING

        if detector != "none" and options.weight(CAFFE_WEIGHTS.name) is not None:
            return "opencv20"  # the original nets came with the OpenCV demo's 20 px padding
        return DEFAULT_FRAMING[detector]

    def trainer(self) -> Trainer:
        from agegender_cli.archs.caffenet.train import fit

        return fit


ARCH = Caffenet()
