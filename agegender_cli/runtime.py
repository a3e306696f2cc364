"""Device, precision and seeding helpers shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
import glob
import random
import sys
from typing import TYPE_CHECKING

import numpy as np

from agegender_cli.config import DEVICES, ENGINES, PRECISIONS
from agegender_cli.errors import AgeGenderError

if TYPE_CHECKING:
    import torch


def maybe_cuda() -> bool:
    """Whether this machine may have a CUDA GPU, without importing torch (seconds and hundreds of MB): an
    NVIDIA device node or driver entry, or torch already imported. False means none: auto is then the CPU."""
    if "torch" in sys.modules:
        return True
    return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*")) or sys.platform == "win32"


def device_name(name: str) -> str:
    """'cpu' or 'cuda' for --device auto|cpu|cuda; torch is imported only where a GPU may be present."""
    if name not in DEVICES:
        raise AgeGenderError(f"--device must be cpu, cuda or auto, not '{name}'")
    if name == "cpu" or (name == "auto" and not maybe_cuda()):
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if name == "cuda":
        raise AgeGenderError("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    return "cpu"


def pick_device(name: str) -> torch.device:
    import torch

    return torch.device(device_name(name))


def _device_type(device: str | torch.device) -> str:
    return device if isinstance(device, str) else device.type


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


def bf16_support(device: str | torch.device) -> tuple[bool, str]:
    """Whether `device` runs bf16 natively (not emulated), and why: measured, emulated bf16 on a CPU
    without AMX or AVX512-BF16 is several times slower than fp32."""
    if _device_type(device) == "cuda":
        import torch

        native = torch.cuda.is_bf16_supported()
        return native, f"CUDA GPU {'with' if native else 'without'} native bf16"
    flags = _cpu_flags()
    if "amx_bf16" in flags:
        return True, "CPU with AMX bf16 tiles"
    if "avx512_bf16" in flags:
        return True, "CPU with AVX512-BF16"
    return False, "CPU without AMX or AVX512-BF16 (bf16 would be emulated)"


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """'auto' -> bf16 where the hardware runs it natively, else fp32; 'bf16'/'fp32' as given."""
    if precision not in PRECISIONS:
        raise AgeGenderError(f"precision must be auto, bf16, fp32 or int8, not '{precision}'")
    if precision != "auto":
        return precision
    return "bf16" if bf16_support(device)[0] else "fp32"


def describe_precision(precision: str, device: str | torch.device) -> str:
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
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_engine(engine: str, device: str, precision: str) -> str:
    """The engine a model runs on: --engine auto is ONNX Runtime where the model runs in fp32 or int8 on a CPU and
    onnxruntime is installed (faster than PyTorch there, and a warm start never imports torch), PyTorch elsewhere
    (GPUs, CPUs with native bf16); a named engine is checked against the device and precision."""
    from agegender_cli.onnx_models import onnx_runtime_available

    if engine not in ENGINES:
        raise AgeGenderError(f"--engine must be auto, onnx, torch or opencv, not '{engine}'")
    on_cpu = device_name(device) == "cpu"
    if precision == "int8" and (engine not in ("auto", "onnx") or not on_cpu):
        raise AgeGenderError("--precision int8 runs on ONNX Runtime on the CPU: use --engine auto or onnx with "
                             "--device cpu, or another --precision")
    if engine == "onnx" or precision == "int8":
        if not on_cpu:
            raise AgeGenderError("--engine onnx runs on the CPU: use --device cpu, or --engine torch on a GPU")
        if precision == "bf16":
            raise AgeGenderError("--engine onnx runs in fp32 or int8: use --precision fp32, int8 or auto, or "
                                 "--engine torch for bf16")
        if not onnx_runtime_available():
            raise AgeGenderError(f"--{'engine onnx' if engine == 'onnx' else 'precision int8'} needs onnxruntime: "
                                 "pip install onnxruntime, or use --engine torch")
    if engine != "auto":
        return engine
    if precision == "int8":
        return "onnx"
    fp32 = resolve_precision(precision, "cpu" if on_cpu else "cuda") == "fp32"
    return "onnx" if on_cpu and fp32 and onnx_runtime_available() else "torch"
