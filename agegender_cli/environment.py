"""What `agegender info` reports: versions, the device and precision a run would use, threads, cache, weights."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from agegender_cli.cache import HOME_ENV, cache_dir
from agegender_cli.config import ASSETS_DIR

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
        found[shown] = next((v for d in distributions if (v := _version(d))), None)
    found["platform"] = platform.platform()
    return found


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def runtime() -> dict:
    """The device, precision and engine that `--device auto --precision auto --engine auto` would pick, and why;
    the thread counts."""
    import cv2
    import torch

    from agegender_cli.runtime import bf16_support, pick_device, pick_engine, resolve_precision

    device = pick_device("auto")
    engine = pick_engine("auto", device.type, "auto")
    engine_why = {"onnx": "ONNX Runtime: fp32 on a CPU, int8 where a model ships ranges that kept its classes on "
                          "val (the bundled caffenet; facenet with --precision int8), models exported once into the "
                          "cache",
                  "torch": "PyTorch: a GPU, native bf16, or onnxruntime missing"}[engine]
    if device.type == "cuda":
        why = f"CUDA GPU visible: {torch.cuda.get_device_name(device)}"
    else:
        why = "no CUDA GPU visible" if torch.version.cuda else "torch built without CUDA"
    return {
        "device": device.type, "device_reason": why,
        "precision": resolve_precision("auto", device), "precision_reason": bf16_support(device)[1],
        "engine": engine, "engine_reason": engine_why,
        "threads": {"torch": torch.get_num_threads(), "opencv": cv2.getNumThreads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    }


def weights() -> list[dict]:
    """The bundled models' weight files and the weights in the cache (backbones, downloaded originals), hashed."""
    from agegender_cli.provenance import file_record

    root = cache_dir()
    found = [{"where": "bundled", "name": str(p.relative_to(ASSETS_DIR)), **file_record(p)}
             for p in _weight_files(ASSETS_DIR)]
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
    return {"versions": versions(), **runtime(), "cache": cache, "weights": weights()}
