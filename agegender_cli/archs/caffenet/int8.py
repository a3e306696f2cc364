"""age_net and gender_net in int8 on ONNX Runtime: activation ranges calibrated on train faces, stored beside the
nets (int8_ranges.json), read back and checked against the nets they were made for."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agegender_cli.archs.caffenet.deploy import NET_NAMES, blob_from_faces, net_files
from agegender_cli.onnx_int8 import SETTINGS, activation_ranges
from agegender_cli.onnx_models import file_digest

RANGES_FILE = "int8_ranges.json"
FORMAT = 1
MAX_BYTES = 1 << 20  # a few hundred bytes per net; anything larger is not ours


def read_ranges(folder: Path) -> tuple[dict[str, dict[str, list[float]]] | None, str]:
    """({task: {tensor: [min, max]}}, why int8) when the folder's ranges file fits both nets, else (None, why not)."""
    path = Path(folder) / RANGES_FILE
    if not path.is_file():
        return None, f"no {RANGES_FILE} beside the nets"
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError("too large")
        doc = json.loads(path.read_text())
        nets = doc["nets"]
        if doc.get("format") != FORMAT or doc.get("settings") != SETTINGS:
            return None, f"{RANGES_FILE} was made for another quantisation (format {doc.get('format')})"
        found = {}
        for task in NET_NAMES:
            entry = nets[task]
            if entry["caffemodel_sha256"] != file_digest(net_files(folder, task)[1]):
                return None, f"{RANGES_FILE} was calibrated for another {NET_NAMES[task]}.caffemodel"
            found[task] = {str(name): _checked_range(value) for name, value in entry["ranges"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__}: {exc}); delete it or calibrate again"
    return found, f"ranges calibrated on {doc.get('faces', '?')} train faces in {RANGES_FILE}"


def _checked_range(value) -> list[float]:
    low, high = (float(v) for v in value)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"bad range {value!r}")
    return [low, high]


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
