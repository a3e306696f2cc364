"""Device, precision and seeding helpers shared by training and inference."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from agegender_cli.errors import AgeGenderError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AgeGenderError("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise AgeGenderError(f"--device must be cpu, cuda or auto, not '{name}'")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16 autocast (AMX on CPU, tensor cores on GPU) or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise AgeGenderError(f"precision must be bf16 or fp32, not '{precision}'")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
