"""facenet in int8 on ONNX Runtime: the activation ranges of a checkpoint's exported graph, calibrated on train faces,
stored beside the checkpoint (NAME.int8_ranges.json, int8_ranges.py), read back and checked against the checkpoint and
backbone they were made for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agegender_cli.archs.facenet.int8_ranges import FORMAT, FP32_MODULES, module_scopes, ranges_path, read_ranges
from agegender_cli.onnx_int8 import SETTINGS, activation_ranges
from agegender_cli.onnx_models import file_digest

__all__ = ["FP32_MODULES", "calibrate", "module_scopes", "ranges_path", "read_ranges"]


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
