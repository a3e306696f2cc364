"""What `agegender info` reports: versions, the device and precision a run would use, threads, cache, weights."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from agegender_cli.cache import HOME_ENV, cache_dir
from agegender_cli.config import ASSETS_DIR
from agegender_cli.versions import package_version

PACKAGES = {  # the name shown: the distributions that provide it, first found wins
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python"),
    "facenet-pytorch": ("facenet-pytorch",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "numpy": ("numpy",),
}
WEIGHT_SUFFIXES = frozenset({".pt", ".pth", ".caffemodel", ".pb", ".onnx"})
NOT_WEIGHTS = ("features",)  # cache folders of computed features, not weights


def versions() -> dict[str, str | None]:
    from agegender_cli import __version__

    found: dict[str, str | None] = {"agegender": __version__, "python": sys.version.split()[0]}
    for shown, distributions in PACKAGES.items():
        found[shown] = next((v for d in distributions if (v := package_version(d))), None)
    found["platform"] = platform.platform()
    return found


INFO_WORKLOADS = (1, 300, 4000)  # a first answer, a folder of crops, compare on the test split


def runtime() -> dict:
    """The device, precision and engine that `--device auto --precision auto --engine auto` would pick, and why
    (on a CPU for each of INFO_WORKLOADS, from this machine's calibration, with its figures); the thread counts."""
    import cv2
    import torch

    from agegender_cli import engine_choice
    from agegender_cli.cpu import flags_line, this_cpu
    from agegender_cli.onnx_models import onnx_runtime_available
    from agegender_cli.runtime import bf16_support, describe_precision, pick_device, resolve_precision

    device = pick_device("auto")
    cpu = this_cpu()
    found: dict = {"cpu": cpu.label, "cpu_flags": flags_line(cpu.flags)}
    if device.type == "cuda":
        why = f"CUDA GPU visible: {torch.cuda.get_device_name(device)}"
        choices = [engine_choice.EngineChoice("torch", resolve_precision("auto", device), n, reason="a GPU: PyTorch")
                   for n in INFO_WORKLOADS]
    else:
        why = "no CUDA GPU visible" if torch.version.cuda else "torch built without CUDA"
        ort = onnx_runtime_available()
        measured = engine_choice.calibration() if ort else None
        found["calibration"] = measured.to_dict() if measured else None
        # as a fresh `agegender` process would choose (this one has imported torch for the figures above)
        choices = [engine_choice.choose(measured, "auto", n, native_bf16=bf16_support("cpu")[0], onnx=ort,
                                        torch_loaded=False) for n in INFO_WORKLOADS]
    first = choices[0]
    return {
        **found, "device": device.type, "device_reason": why,
        "precision": first.precision, "precision_reason": "on ONNX Runtime each model's calibrated int8 where it "
        "kept its classes on val, else fp32" if first.engine == "onnx" else describe_precision("auto", device),
        "torch_precision": describe_precision("auto", device),
        "engine": first.engine, "engine_reason": first.reason,
        "engine_by_work": [choice.to_dict() for choice in choices],
        "threads": {"torch": torch.get_num_threads(), "opencv": cv2.getNumThreads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }


def weights() -> list[dict]:
    """The bundled models' weight files and the weights in the cache (backbones, downloaded originals), hashed."""
    from agegender_cli.provenance import file_record

    root = cache_dir()
    bundled = _weight_files(ASSETS_DIR) + [p for p in (ASSETS_DIR / "fused.json",) if p.is_file()]
    found = [{"where": "bundled", "name": str(p.relative_to(ASSETS_DIR)), **file_record(p)} for p in bundled]
    found += [{"where": "cache", "name": str(p.relative_to(root)), **file_record(p)} for p in _weight_files(root)
              if p.relative_to(root).parts[0] not in NOT_WEIGHTS]
    return found


def _weight_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file())


def describe() -> dict:
    root = cache_dir()
    cache = {"path": str(root), "from": HOME_ENV if os.environ.get(HOME_ENV) else "the platform's user cache folder",
             "exists": root.is_dir()}
    return {"versions": versions(), **runtime(), "cache": cache, "weights": weights(), "fusion": fusion()}


def fusion() -> dict | None:
    """The bundled fused answer's weights (facenet's share per task) and what they were fitted on."""
    from agegender_cli.archs.fused import ARCH
    from agegender_cli.archs.fused.predictor import read_weights
    from agegender_cli.errors import AgeGenderError

    try:
        fitted = read_weights(ARCH.bundled)
    except AgeGenderError as exc:
        return {"error": str(exc)}
    return {"file": str(fitted.path), "parts": list(fitted.parts), "weights": dict(fitted.weights),
            "fitted_on": fitted.record.get("fitted_on"), "val": fitted.record.get("val")}
