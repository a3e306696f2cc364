"""age_net and gender_net on ONNX Runtime: each net exported once from its caffemodel, then run without torch."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agegender_cli.archs.caffenet.deploy import (
    MAX_CAFFEMODEL_BYTES,
    MAX_PROTOTXT_BYTES,
    YEARS_OUTPUT,
    check_file_size,
)
from agegender_cli.cache import Log
from agegender_cli.onnx_models import cached_export, export_module, file_digest, session

if TYPE_CHECKING:
    import onnxruntime

INPUT = "blob"


def load_onnx_net(prototxt: Path, caffemodel: Path, log: Log,
                  ranges: dict[str, list[float]] | None = None) -> tuple[onnxruntime.InferenceSession, Path]:
    """The net's ONNX Runtime session and its cached ONNX file, exported from the twin on first use (where the
    files are checked as for cv2.dnn: the cache key is their hash, so a cached export was made from checked bytes).
    With `ranges` (its calibrated activation ranges), the int8 model quantised from that export, also cached;
    Int8Unavailable where the ranges do not fit it."""
    path = onnx_file(prototxt, caffemodel, log)
    if ranges is not None:
        from agegender_cli.onnx_int8 import int8_model

        path = int8_model("caffenet-int8", path, ranges, log)
    return session(path), path


def onnx_file(prototxt: Path, caffemodel: Path, log: Log) -> Path:
    """The fp32 ONNX export of one net, from the cache or made now."""
    check_file_size(prototxt, MAX_PROTOTXT_BYTES)
    check_file_size(caffemodel, MAX_CAFFEMODEL_BYTES)
    digest = hashlib.sha256()
    for path in (prototxt, caffemodel):
        digest.update(file_digest(path).encode())
    path, _meta = cached_export("caffenet", digest.hexdigest()[:32], lambda out: _export(prototxt, caffemodel, out),
                                log)
    return path


def onnx_probs(net: onnxruntime.InferenceSession, blob: np.ndarray) -> dict[str, np.ndarray]:
    """{"probs": class probabilities, "years": the years distribution where the net has one}."""
    names = [output.name for output in net.get_outputs()]
    outputs = dict(zip(names, net.run(names, {INPUT: np.ascontiguousarray(blob, np.float32)}), strict=True))
    found = {"probs": outputs["prob"]}
    if YEARS_OUTPUT in outputs:
        found["years"] = outputs[YEARS_OUTPUT]
    return found


def _export(prototxt: Path, caffemodel: Path, out: Path) -> dict:
    import torch

    from agegender_cli.archs.caffenet.caffemodel import read_cv2_net, twin_from_caffemodel
    from agegender_cli.archs.caffenet.net import cv2_errors

    with cv2_errors(prototxt, caffemodel):  # the pair must be a model the reference engine reads
        read_cv2_net(prototxt, caffemodel)
    twin = twin_from_caffemodel(prototxt, caffemodel).eval()

    class Probabilities(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.twin = twin

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            features = self.twin.features(x)
            probs = torch.softmax(self.twin.fc8(features), dim=1)
            if not self.twin.has_years:
                return (probs,)
            return probs, torch.softmax(self.twin.years_logits(features), dim=1)

    outputs = ["prob", YEARS_OUTPUT] if twin.has_years else ["prob"]
    export_module(Probabilities(), (torch.zeros(2, 3, 227, 227),), out, [INPUT], outputs)
    return {"prototxt": str(prototxt), "caffemodel": str(caffemodel), "outputs": outputs}

