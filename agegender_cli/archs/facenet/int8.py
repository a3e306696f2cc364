"""facenet in int8 on ONNX Runtime: the activation ranges of a checkpoint's exported graph, calibrated on train faces,
stored beside the checkpoint (NAME.int8_ranges.json), read back and checked against the checkpoint and backbone they
were made for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agegender_cli.onnx_int8 import SETTINGS, activation_ranges, checked_ranges, read_ranges_file
from agegender_cli.onnx_models import file_digest

RANGES_SUFFIX = ".int8_ranges.json"
FORMAT = 1
# Kept in fp32, chosen on val (2,003 faces, ranges from 512 train faces): the whole trunk in int8 lost 0.93 points of
# age and changed 5% of the age classes; most of that comes from the stem's early convolutions (2a, 2b: the stem
# alone in int8 lost 0.8) and block8, which feeds the embedding. Without them: gender +0.00, age -0.08, 1.5x faster.
FP32_MODULES = ("conv2d_2a", "conv2d_2b", "maxpool_3a", "block8")


def ranges_path(checkpoint: Path) -> Path:
    """Where a checkpoint keeps its int8 ranges: facenet.pt -> facenet.int8_ranges.json."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + RANGES_SUFFIX)


def module_scopes(modules: Sequence[str], unfreeze: str) -> list[str]:
    """The ONNX node-name prefixes of the backbone modules in the exported graph, where the checkpoint's unfreeze
    point splits the backbone into the frozen trunk and the tail's blocks."""
    from agegender_cli.archs.facenet.model import TRUNK_ORDER

    cut = TRUNK_ORDER.index("avgpool_1a" if unfreeze == "last_linear" else unfreeze)
    scopes = []
    for name in modules:
        index = TRUNK_ORDER.index(name)
        scopes.append(f"/trunk/frozen/frozen.{index}/" if index < cut else f"/tail/blocks/blocks.{index - cut}/")
    return scopes


def read_ranges(checkpoint: Path, backbone_sha256: str, auto: bool = False
                ) -> tuple[tuple[dict[str, list[float]], list[str]] | None, str]:
    """((ranges, fp32 scopes), why int8) when the checkpoint's ranges file was made for it and the backbone that
    runs (and, for --precision auto, its val check passed auto's bar), else (None, why not)."""
    path = ranges_path(checkpoint)

    def fit(doc: dict) -> tuple[tuple | None, str | None]:
        if doc["checkpoint_sha256"] != file_digest(Path(checkpoint)):
            return None, f"{path.name} was calibrated for another checkpoint"
        if doc["backbone_sha256"] != backbone_sha256:
            return None, f"{path.name} was calibrated with another backbone file"
        if not isinstance(doc["fp32_scopes"], list) or not all(isinstance(s, str) for s in doc["fp32_scopes"]):
            raise TypeError("fp32_scopes is not a list of node-name prefixes")
        return (checked_ranges(doc["ranges"]), list(doc["fp32_scopes"])), None

    return read_ranges_file(path, FORMAT, "the checkpoint", auto, fit)


def calibrate(checkpoint: Path, faces: Sequence[np.ndarray], *, backbone_weights: Path | None = None,
              batch_size: int = 64, source: str = "", log: Callable[[str], None] | None = None,
              fp32_modules: Sequence[str] = FP32_MODULES) -> dict:
    """The ranges document for `checkpoint`: its exported graph's activation ranges over `faces` (train faces,
    never val or test), the backbone modules `fp32_modules` left out."""
    import onnxruntime

    from agegender_cli.archs.facenet.onnx_predictor import INPUT, FacenetOnnxPredictor
    from agegender_cli.archs.facenet.predictor import load_checkpoint

    fp32 = FacenetOnnxPredictor(checkpoint, backbone_weights=backbone_weights, precision="fp32", log=log)
    scopes = module_scopes(fp32_modules, load_checkpoint(checkpoint)["config"]["unfreeze"])
    batches = ({INPUT: fp32.batch(faces[i:i + batch_size])} for i in range(0, len(faces), batch_size))
    return {"format": FORMAT, "settings": SETTINGS, "faces": len(faces), "source": source,
            "onnxruntime": onnxruntime.__version__, "checkpoint_sha256": file_digest(Path(checkpoint)),
            "backbone_sha256": fp32.meta["backbone"]["sha256"], "fp32_modules": list(fp32_modules),
            "fp32_scopes": scopes, "ranges": activation_ranges(fp32.onnx_path, batches, scopes)}
