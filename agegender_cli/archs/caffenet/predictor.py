"""age_net + gender_net behind the predictor interface, run by cv2.dnn or by the PyTorch twin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from agegender_cli.archs.base import Prediction
from agegender_cli.archs.caffenet.caffemodel import twin_from_caffemodel
from agegender_cli.archs.caffenet.net import (
    INPUT_SIZE,
    NET_NAMES,
    NUM_CLASSES,
    LeviHassnerNet,
    blob_from_faces,
    check_model_folder,
    cv2_errors,
    net_files,
    read_cv2_net,
    torch_input,
)
from agegender_cli.errors import AgeGenderError
from agegender_cli.runtime import describe_precision, resolve_precision

ENGINES = ("opencv", "torch")
HISTORIES = ("history.json", "finetune_history.json")  # written by `agegender train` beside the nets


class CaffenetPredictor:
    """age_net + gender_net from a model folder, run by cv2.dnn ("opencv") or by the twin ("torch")."""

    arch = "caffenet"

    def __init__(self, folder: Path, *, engine: str = "opencv", precision: str = "auto", batch_size: int = 64) -> None:
        if engine not in ENGINES:
            raise AgeGenderError(f"unknown caffenet engine '{engine}': use one of {', '.join(ENGINES)}")
        folder = Path(folder)
        check_model_folder(folder)
        self.engine = engine
        self.batch_size = batch_size
        cpu = torch.device("cpu")
        self.bf16 = engine == "torch" and resolve_precision(precision, cpu) == "bf16"
        self.folder = folder
        self.model_path = Path(folder)
        self._nets = {task: self._load(folder, task) for task in NET_NAMES}
        detail = "cv2.dnn" if engine == "opencv" else f"PyTorch twin, {describe_precision(precision, cpu)}"
        self.description = f"Levi-Hassner age_net + gender_net ({detail}) from {folder}"

    def provenance(self) -> dict:
        """Hashes of both nets' files (and training histories), the engine and precision that ran them."""
        from agegender_cli.provenance import bundled_card, file_record

        files = [path for task in NET_NAMES for path in net_files(self.folder, task)]
        files += [self.folder / name for name in HISTORIES if (self.folder / name).is_file()]
        return {"files": [file_record(path) for path in files], "engine": "cv2.dnn" if self.engine == "opencv"
                else "torch (PyTorch twin)", "precision": "bf16" if self.bf16 else "fp32", "device": "cpu",
                **(bundled_card(self.folder) or {})}

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        parts = []
        for start in range(0, len(faces), self.batch_size):
            probs = self._probs(self._nets, faces[start : start + self.batch_size])
            parts.append(Prediction(gender_prob=probs["gender"], age_prob=probs["age"]))
        return Prediction.concat(parts)

    def _load(self, folder: Path, task: str) -> cv2.dnn.Net | LeviHassnerNet:
        """Load one net and run it once on a blank face, so that a broken file fails here."""
        prototxt, caffemodel = net_files(folder, task)
        with cv2_errors(prototxt, caffemodel):
            net = read_cv2_net(prototxt, caffemodel) if self.engine == "opencv" else _load_twin(prototxt, caffemodel)
            classes = self._probs({task: net}, [np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)])[task].shape[1]
        if classes != NUM_CLASSES[task]:
            raise AgeGenderError(f"{caffemodel} gives {classes} classes; the {task} net must give {NUM_CLASSES[task]}")
        return net

    def _probs(self, nets: dict, faces: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        if self.engine == "opencv":
            return _opencv_probs(nets, blob_from_faces(faces))
        return _torch_probs(nets, torch_input(faces), self.bf16)


def _load_twin(prototxt: Path, caffemodel: Path) -> LeviHassnerNet:
    return twin_from_caffemodel(prototxt, caffemodel).eval().to(memory_format=torch.channels_last)


def _opencv_probs(nets: dict[str, cv2.dnn.Net], blob: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for task, net in nets.items():
        net.setInput(blob)
        out[task] = net.forward().reshape(len(blob), -1).astype(np.float32)
    return out


def _torch_probs(nets: dict[str, LeviHassnerNet], x: torch.Tensor, bf16: bool) -> dict[str, np.ndarray]:
    x = x.contiguous(memory_format=torch.channels_last)
    out = {}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for task, net in nets.items():
            out[task] = torch.softmax(net(x).float(), dim=1).numpy()
    return out
