"""age_net + gender_net behind the predictor interface, run by cv2.dnn, by the PyTorch twin or by ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agegender_cli.archs.base import Prediction
from agegender_cli.archs.caffenet.deploy import (
    INPUT_SIZE,
    NET_NAMES,
    NUM_CLASSES,
    YEARS_OUTPUT,
    blob_from_faces,
    check_model_folder,
    net_files,
)
from agegender_cli.archs.caffenet.int8 import RANGES_FILE
from agegender_cli.errors import AgeGenderError
from agegender_cli.labels import expected_years
from agegender_cli.onnx_int8 import Int8Unavailable, fp32_instead
from agegender_cli.runtime import describe_precision, device_name, resolve_precision

ENGINES = ("opencv", "torch", "onnx")
ENGINE_NAMES = {"opencv": "cv2.dnn", "torch": "torch (PyTorch twin)", "onnx": "onnxruntime (exported from the twin)"}
# written beside the nets by scripts/caffenet_gpu_train.py, `agegender train` and scripts/caffenet_fc_retrain.py
HISTORIES = ("training.json", "history.json", "finetune_history.json", "fc_history_gender.json", "fc_history_age.json")


class CaffenetPredictor:
    """age_net + gender_net from a model folder, run by cv2.dnn ("opencv", the reference), by the PyTorch twin
    ("torch", on the CPU or a GPU) or by ONNX Runtime ("onnx", CPU; no torch import once exported)."""

    arch = "caffenet"

    def __init__(self, folder: Path, *, engine: str = "opencv", precision: str = "auto", batch_size: int = 64,
                 device: str = "cpu", log: Callable[[str], None] | None = None) -> None:
        if engine not in ENGINES:
            raise AgeGenderError(f"unknown caffenet engine '{engine}': use one of {', '.join(ENGINES)}")
        folder = Path(folder)
        check_model_folder(folder)
        self.engine = engine
        self.batch_size = batch_size
        self.device = device_name(device) if engine == "torch" else "cpu"
        self.bf16 = engine == "torch" and resolve_precision(precision, self.device) == "bf16"
        self.folder = folder
        self.model_path = Path(folder)
        self._log = log or (lambda _: None)
        self._onnx_files: list[Path] = []
        self._ranges, onnx_precision = self._int8_ranges(engine, precision, folder)
        try:
            self._nets = {task: self._load(folder, task) for task in NET_NAMES}
        except Int8Unavailable as exc:
            onnx_precision = fp32_instead(precision, exc, self._log, "caffenet")
            self._ranges, self._onnx_files = None, []
            self._nets = {task: self._load(folder, task) for task in NET_NAMES}
        self.precision = "int8" if self._ranges else "bf16" if self.bf16 else "fp32"
        detail = {"opencv": "cv2.dnn", "onnx": f"ONNX Runtime, {onnx_precision}",
                  "torch": f"PyTorch twin, {self.device}, {describe_precision(precision, self.device)}"}[engine]
        self.description = f"Levi-Hassner age_net + gender_net ({detail}) from {folder}"

    @staticmethod
    def _int8_ranges(engine: str, precision: str, folder: Path) -> tuple[dict | None, str]:
        """On ONNX Runtime, the nets run in int8 where their folder holds calibrated ranges: always with --precision
        int8, with auto where their val check passed auto's bar (onnx_int8.AUTO_SAME_CLASS)."""
        if engine != "onnx":
            if precision == "int8":
                raise AgeGenderError(f"--precision int8 runs on ONNX Runtime, not the {engine} engine")
            return None, ""
        if precision not in ("auto", "int8"):
            return None, "fp32"
        from agegender_cli.archs.caffenet.int8 import read_ranges
        from agegender_cli.onnx_int8 import settle

        return settle(precision, *read_ranges(folder, precision == "auto"))

    def provenance(self) -> dict:
        """Hashes of both nets' files (and training histories), the engine and precision that ran them."""
        from agegender_cli.provenance import bundled_card, file_record

        files = [path for task in NET_NAMES for path in net_files(self.folder, task)]
        files += [self.folder / name for name in (*HISTORIES, RANGES_FILE) if (self.folder / name).is_file()]
        extra = {"onnx_files": [file_record(path) for path in self._onnx_files]} if self._onnx_files else {}
        return {"files": [file_record(path) for path in files], "engine": ENGINE_NAMES[self.engine],
                "precision": self.precision, "device": self.device, **extra,
                **(bundled_card(self.folder) or {})}

    def predict(self, faces: Sequence[np.ndarray]) -> Prediction:
        parts = []
        for start in range(0, len(faces), self.batch_size):
            probs = self._probs(self._nets, faces[start : start + self.batch_size])
            years = expected_years(probs["years"]) if "years" in probs else None
            parts.append(Prediction(gender_prob=probs["gender"], age_prob=probs["age"], age_years=years))
        return Prediction.concat(parts)

    def years_features(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """age_net's fc7 activations (what a years head is trained on), by the twin in fp32."""
        import torch

        from agegender_cli.archs.caffenet.net import torch_input

        twin = self._age_twin()
        parts = []
        with torch.inference_mode():
            for start in range(0, len(faces), self.batch_size):
                x = torch_input(faces[start:start + self.batch_size]).contiguous(memory_format=torch.channels_last)
                parts.append(twin.features(x).numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 512), np.float32)

    def with_years(self, head: Any, info: dict, out: Path) -> Path:
        """This model folder with age_net given the years layers, written into `out` (gender_net copied)."""
        import json
        import shutil

        import torch

        from agegender_cli.archs.caffenet.caffemodel import export_caffemodel
        from agegender_cli.archs.caffenet.net import LeviHassnerNet, deploy_prototxt
        from agegender_cli.fileio import atomic_write_text, make_folder

        out = Path(out)
        make_folder(out, "--out")
        spec = head.spec()
        hidden = spec["hidden"] if spec["kind"] == "mlp" else None
        source = self._age_twin()
        twin = LeviHassnerNet(source.num_classes, years_hidden=hidden, years=True)
        state = {k: v for k, v in source.state_dict().items() if not k.startswith(("fc_years",))}
        twin.load_state_dict(state, strict=False)
        with torch.no_grad():
            if hidden:
                twin.fc_years_hidden.load_state_dict(head.hidden_layer.state_dict())
            twin.fc_years.load_state_dict(head.output.state_dict())
        prototxt, caffemodel = net_files(out, "age")
        atomic_write_text(prototxt, deploy_prototxt(NUM_CLASSES["age"], years_hidden=hidden, years=True))
        export_caffemodel(twin.eval(), caffemodel, fp16=True)
        for path in [*net_files(self.folder, "gender"), *(self.folder / name for name in HISTORIES)]:
            if path.is_file() and path.resolve() != (out / path.name).resolve():
                shutil.copyfile(path, out / path.name)
        atomic_write_text(out / "years_history.json", json.dumps(info, indent=2) + "\n")
        return out

    def _age_twin(self) -> Any:
        """age_net as the PyTorch twin on the CPU (what the years head is fitted to and saved into)."""
        if self.engine == "torch" and self.device == "cpu":
            return self._nets["age"]
        return _load_twin(*net_files(self.folder, "age"), "cpu")

    def _load(self, folder: Path, task: str) -> Any:
        """Load one net and run it once on a blank face, so that a broken file fails here."""
        prototxt, caffemodel = net_files(folder, task)
        if self.engine == "onnx":
            from agegender_cli.archs.caffenet.onnx_engine import load_onnx_net

            # checked and traced at export; quantised from that export where ranges were found
            net, path = load_onnx_net(prototxt, caffemodel, self._log, self._ranges[task] if self._ranges else None)
            self._onnx_files.append(path)
            classes = net.get_outputs()[0].shape[1]
        else:
            from agegender_cli.archs.caffenet.caffemodel import read_cv2_net
            from agegender_cli.archs.caffenet.net import cv2_errors

            with cv2_errors(prototxt, caffemodel):
                net = (read_cv2_net(prototxt, caffemodel) if self.engine == "opencv"
                       else _load_twin(prototxt, caffemodel, self.device))
                classes = self._probs({task: net}, [np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)])[task].shape[1]
        if classes != NUM_CLASSES[task]:
            raise AgeGenderError(f"{caffemodel} gives {classes} classes; the {task} net must give {NUM_CLASSES[task]}")
        return net

    def _probs(self, nets: dict, faces: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        if self.engine == "torch":
            from agegender_cli.archs.caffenet.net import torch_input

            return _torch_probs(nets, torch_input(faces), self.bf16, self.device)
        blob = blob_from_faces(faces)
        return _opencv_probs(nets, blob) if self.engine == "opencv" else _onnx_probs(nets, blob)


def _load_twin(prototxt: Path, caffemodel: Path, device: str) -> Any:
    import torch

    from agegender_cli.archs.caffenet.caffemodel import twin_from_caffemodel

    return twin_from_caffemodel(prototxt, caffemodel).eval().to(device, memory_format=torch.channels_last)


def _opencv_probs(nets: dict, blob: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for task, net in nets.items():
        net.setInput(blob)
        if YEARS_OUTPUT in net.getLayerNames():
            probs, years = net.forward(["prob", YEARS_OUTPUT])
            out["years"] = years.reshape(len(blob), -1).astype(np.float32)
        else:
            probs = net.forward()
        out[task] = probs.reshape(len(blob), -1).astype(np.float32)
    return out


def _onnx_probs(nets: dict, blob: np.ndarray) -> dict[str, np.ndarray]:
    from agegender_cli.archs.caffenet.onnx_engine import onnx_probs

    out = {}
    for task, net in nets.items():
        found = onnx_probs(net, blob)
        out[task] = found["probs"]
        if "years" in found:
            out["years"] = found["years"]
    return out


def _torch_probs(nets: dict, x: Any, bf16: bool, device: str) -> dict[str, np.ndarray]:
    import torch

    if device == "cuda":  # page-locked: the copy to the GPU overlaps the work queued before it
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.contiguous(memory_format=torch.channels_last)
    out = {}
    with torch.inference_mode():
        for task, net in nets.items():
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                features = net.features(x)
                out[task] = torch.softmax(net.fc8(features).float(), dim=1).cpu().numpy()
            if net.has_years:  # in fp32: a 101-way expectation is sensitive to bf16 rounding
                out["years"] = torch.softmax(net.years_logits(features.float()), dim=1).cpu().numpy()
    return out
