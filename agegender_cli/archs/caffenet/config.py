"""caffenet's training defaults (`agegender train --arch caffenet`) and the weights it can be given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agegender_cli.archs.entry import WeightOption
from agegender_cli.config import DEFAULT_MANIFEST, DEFAULT_RUNS_DIR

ORIGINAL = "original"  # --caffe-weights original: the cached (or, online, downloaded) original Levi-Hassner files


@dataclass(frozen=True)
class CaffenetTrainConfig:
    """Architecture B: the two Levi-Hassner nets, trained in PyTorch, exported to Caffe."""

    manifest: Path = DEFAULT_MANIFEST
    out: Path = DEFAULT_RUNS_DIR / "caffenet"
    tasks: tuple[str, ...] = ("gender", "age")
    init: Path | None = None  # a trained model folder to start from (fine-tuning); None: from scratch
    lr: float = 1e-4
    weight_decay: float = 5e-4
    epochs: int = 60
    batch_size: int = 64
    resize: int = 256
    crop: int = 227
    detector: str = "none"  # how faces are framed: none (the images are face crops), auto, mtcnn or haar
    pick: str = "largest"  # which found face of a photo is its labelled one (PICK_RULES; LFW: centre)
    augment: str = "geometric"  # or "wild": the detector's jitter, blur, low resolution, JPEG, colour
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    resume: bool = False
    plot_format: str = "png"  # the training curves' format, one of PLOT_FORMATS


CAFFE_WEIGHTS = WeightOption("caffe_weights", "Folder with the original Levi-Hassner .caffemodel files, or "
                                              f"'{ORIGINAL}'.")
