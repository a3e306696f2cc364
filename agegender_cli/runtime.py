"""Device, precision and seeding helpers shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
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


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether `device` runs bf16 natively (not emulated), and why: measured, emulated bf16 on a CPU
    without AMX or AVX512-BF16 is several times slower than fp32."""
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        return native, f"CUDA GPU {'with' if native else 'without'} native bf16"
    flags = _cpu_flags()
    if "amx_bf16" in flags:
        return True, "CPU with AMX bf16 tiles"
    if "avx512_bf16" in flags:
        return True, "CPU with AVX512-BF16"
    return False, "CPU without AMX or AVX512-BF16 (bf16 would be emulated)"


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 where the hardware runs it natively, else fp32; 'bf16'/'fp32' as given."""
    if precision not in ("auto", "bf16", "fp32"):
        raise AgeGenderError(f"precision must be auto, bf16 or fp32, not '{precision}'")
    if precision != "auto":
        return precision
    return "bf16" if bf16_support(device)[0] else "fp32"


def describe_precision(precision: str, device: torch.device) -> str:
    """e.g. 'fp32 (auto: CPU without AMX or AVX512-BF16 (bf16 would be emulated))'."""
    if precision != "auto":
        return precision
    return f"{resolve_precision(precision, device)} (auto: {bf16_support(device)[1]})"


def autocast(device: torch.device, precision: str):
    """bf16 autocast (AMX on CPU, tensor cores on GPU) or nothing for fp32; 'auto' resolved per device."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise AgeGenderError(f"precision must be bf16 or fp32, not '{precision}'")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
