"""age_net and gender_net in int8 on ONNX Runtime: activation ranges calibrated on train faces, stored beside the
nets (int8_ranges.json), read back and checked against the nets they were made for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agegender_cli.archs.caffenet.deploy import NET_NAMES, blob_from_faces, net_files
from agegender_cli.onnx_int8 import SETTINGS, activation_ranges, checked_ranges, read_ranges_file
from agegender_cli.onnx_models import file_digest

RANGES_FILE = "int8_ranges.json"
FORMAT = 1


def ranges_path(folder: Path) -> Path:
    """Where a model folder keeps the int8 ranges of its two nets."""
    return Path(folder) / RANGES_FILE


def read_ranges(folder: Path, auto: bool = False) -> tuple[dict[str, dict[str, list[float]]] | None, str]:
    """({task: {tensor: [min, max]}}, why int8) when the folder's ranges file fits both nets (and, for
    --precision auto, its val check passed auto's bar), else (None, why not)."""

    def fit(doc: dict) -> tuple[dict | None, str | None]:
        for task in NET_NAMES:
            if doc["nets"][task]["caffemodel_sha256"] != file_digest(net_files(folder, task)[1]):
                return None, f"{RANGES_FILE} was calibrated for another {NET_NAMES[task]}.caffemodel"
        return {task: checked_ranges(doc["nets"][task]["ranges"]) for task in NET_NAMES}, None

    return read_ranges_file(ranges_path(folder), FORMAT, "the nets", auto, fit)


def calibrate(folder: Path, faces: Sequence[np.ndarray], *, batch_size: int = 64, source: str = "",
              log: Callable[[str], None] | None = None) -> dict:
    """The ranges document for `folder`'s nets: each net's activation ranges over `faces` (train faces, never
    val or test)."""
    import onnxruntime

    from agegender_cli.archs.caffenet.onnx_engine import INPUT, onnx_file

    log = log or (lambda _: None)
    nets = {}
    for task in NET_NAMES:
        prototxt, caffemodel = net_files(folder, task)
        batches = ({INPUT: blob_from_faces(faces[i:i + batch_size])} for i in range(0, len(faces), batch_size))
        nets[task] = {"caffemodel_sha256": file_digest(caffemodel),
                      "ranges": activation_ranges(onnx_file(prototxt, caffemodel, log), batches)}
    return {"format": FORMAT, "settings": SETTINGS, "faces": len(faces), "source": source,
            "onnxruntime": onnxruntime.__version__, "nets": nets}
