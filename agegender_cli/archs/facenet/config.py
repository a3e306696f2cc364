"""facenet's training defaults and the training options it offers (`agegender train --arch facenet`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agegender_cli.archs.entry import Knob, WeightOption
from agegender_cli.config import DEFAULT_MANIFEST, DEFAULT_RUNS_DIR, PREPROCESS_PRESETS

BACKBONES = ("vggface2", "casia-webface")
UNFREEZE_POINTS = ("last_linear", "block8", "repeat_3")  # the backbone trains from this block on
HEADS = ("linear", "mlp")
SELECT_BY = ("loss", "accuracy")


@dataclass(frozen=True)
class FacenetTrainConfig:
    """Architecture A: InceptionResnetV1 backbone with gender and age heads."""

    manifest: Path = DEFAULT_MANIFEST
    out: Path = DEFAULT_RUNS_DIR / "facenet"
    backbone: str = "vggface2"  # one of BACKBONES
    backbone_weights: Path | None = None
    preprocess: str = "paper"  # "paper" or "none"
    # "last_linear" is the report's recipe; deeper options unfreeze whole blocks too.
    unfreeze: str = "last_linear"  # last_linear | block8 | repeat_3
    head: str = "linear"  # linear | mlp
    hidden: int = 256
    dropout: float = 0.3
    lr: float = 1e-4
    weight_decay: float = 0.0
    epochs: int = 30
    patience: int = 5
    batch_size: int = 64
    views: int = 4  # augmented views per training image cached when features are cached
    feature_cache: bool = True
    label_smoothing: float = 0.0
    select: str = "loss"  # best-val checkpoint by "loss" (the report) or "accuracy" (gender + age)
    device: str = "auto"
    precision: str = "auto"  # one of PRECISIONS
    seed: int = 0
    resume: bool = False
    image_size: int = 160
    plot_format: str = "png"  # the training curves' format, one of PLOT_FORMATS
    detector: str = "none"  # how faces are framed: none (the images are face crops), auto, mtcnn or haar
    pick: str = "largest"  # which found face of a photo is its labelled one (PICK_RULES; LFW: centre)
    augment: str = "geometric"  # or "wild": the detector's jitter, blur, low resolution, JPEG, colour


BACKBONE_WEIGHTS = WeightOption("backbone_weights", "InceptionResnetV1 backbone .pt/.pb (offline use).")

KNOBS = (
    Knob("backbone", "Pretrained backbone.", choices=BACKBONES),
    Knob("preprocess", "paper (the report's) or none.", choices=tuple(PREPROCESS_PRESETS)),
    Knob("unfreeze", "Backbone block from which on it trains.", choices=UNFREEZE_POINTS),
    Knob("head", "Heads: linear or mlp.", choices=HEADS),
    Knob("hidden", "MLP hidden units.", int, low=1, high=65_536),
    Knob("dropout", "MLP dropout.", float, low=0.0, high=1.0),
    Knob("patience", "Early-stopping patience (epochs).", int, low=1),
    Knob("views", "Augmented views cached per training image.", int, low=1, high=64),
    Knob("feature_cache", "Train on cached trunk features.", bool),
    Knob("label_smoothing", "Label smoothing.", float, low=0.0, high=1.0),
    Knob("select", "Best-val epoch by loss or accuracy.", choices=SELECT_BY),
)
