"""age_net and gender_net in int8 on ONNX Runtime: activation ranges calibrated on train faces, stored beside the
nets (int8_ranges.json), read back and checked against the nets they were made for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agegender_cli.archs.caffenet.deploy import NET_NAMES, blob_from_faces, net_files
from agegender_cli.onnx_int8 import SETTINGS, activation_ranges, auto_refusal, checked_ranges, load_ranges_file
from agegender_cli.onnx_models import file_digest

RANGES_FILE = "int8_ranges.json"
FORMAT = 1


def ranges_path(folder: Path) -> Path:
    """Where a model folder keeps the int8 ranges of its two nets."""
    return Path(folder) / RANGES_FILE


def read_ranges(folder: Path, auto: bool = False) -> tuple[dict[str, dict[str, list[float]]] | None, str]:
    """({task: {tensor: [min, max]}}, why int8) when the folder's ranges file fits both nets (and, for
    --precision auto, its val check passed auto's bar), else (None, why not)."""
    path = ranges_path(folder)
    if not path.is_file():
        return None, f"no {RANGES_FILE} beside the nets"
    try:
        doc = load_ranges_file(path, FORMAT)
        found = {}
        for task in NET_NAMES:
            entry = doc["nets"][task]
            if entry["caffemodel_sha256"] != file_digest(net_files(folder, task)[1]):
                return None, f"{RANGES_FILE} was calibrated for another {NET_NAMES[task]}.caffemodel"
            found[task] = checked_ranges(entry["ranges"])
        refusal = auto_refusal(doc, RANGES_FILE) if auto else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__}: {exc}); delete it or calibrate again"
    if refusal:
        return None, refusal
    return found, f"ranges calibrated on {doc.get('faces', '?')} train faces in {RANGES_FILE}"


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
