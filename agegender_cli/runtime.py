"""Device, precision and seeding helpers shared by training and inference."""

from __future__ import annotations

import contextlib
import glob
import random
import sys
from typing import TYPE_CHECKING

import numpy as np

from agegender_cli.config import DEVICES, ENGINES, PRECISIONS
from agegender_cli.cpu import this_cpu
from agegender_cli.errors import AgeGenderError

if TYPE_CHECKING:
    import torch

    from agegender_cli.engine_choice import EngineChoice


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


def bf16_support(device: str | torch.device) -> tuple[bool, str]:
    """Whether `device` runs bf16 natively (not emulated), and why: emulated bf16 on a CPU without AMX or
    AVX512-BF16 is several times slower than fp32. The CPU's flags come from cpu.this_cpu (overridable)."""
    if _device_type(device) == "cuda":
        import torch

        native = torch.cuda.is_bf16_supported()
        return native, f"CUDA GPU {'with' if native else 'without'} native bf16"
    kind = this_cpu().kind
    if kind == "amx":
        return True, "CPU with AMX bf16 tiles"
    if kind == "avx512-bf16":
        return True, "CPU with AVX512-BF16"
    return False, "CPU without AMX or AVX512-BF16 (bf16 would be emulated)"


def _precision_on(device: str | torch.device) -> tuple[str, str]:
    """What --precision auto gives PyTorch on `device`, and why: on a GPU bf16 where native; on a CPU bf16 only
    where it is native and this machine's calibration measured it faster than fp32."""
    native, why = bf16_support(device)
    if _device_type(device) == "cuda":
        return ("bf16" if native else "fp32"), why
    from agegender_cli import engine_choice

    return engine_choice.torch_precision(engine_choice.calibration() if native else None, native, why)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """'auto' -> bf16 where the hardware runs it natively (on a CPU: and measured faster), else fp32; others as
    given."""
    if precision not in PRECISIONS:
        raise AgeGenderError(f"precision must be auto, bf16, fp32 or int8, not '{precision}'")
    if precision != "auto":
        return precision
    return _precision_on(device)[0]


def describe_precision(precision: str, device: str | torch.device) -> str:
    """e.g. 'fp32 (auto: CPU without AMX or AVX512-BF16 (bf16 would be emulated))'."""
    if precision != "auto":
        return precision
    chosen, why = _precision_on(device)
    return f"{chosen} (auto: {why})"


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


def pick_engine(engine: str, device: str, precision: str, workload: int | None = None) -> str:
    """The engine a model runs on. A named engine is checked against the device and precision. --engine auto: on
    a GPU PyTorch; on a CPU the engine measured fastest here for `workload` faces (engine_choice: ONNX Runtime
    unless PyTorch, bf16 or fp32, beats it by 5% with its import counted), ONNX Runtime for int8."""
    return choose_engine(engine, device, precision, workload).engine


def calibrate_first(engine: str, device: str, precision: str, log) -> None:
    """Measure this CPU's engines now, telling `log`, where auto will consult the measurement: --engine auto in
    fp32 or auto with onnxruntime installed, or PyTorch's --precision auto on a CPU with native bf16. Once a
    machine; run alone, not beside the models' loading; elsewhere nothing."""
    if engine not in ENGINES or precision not in ("auto", "fp32") or device_name(device) != "cpu":
        return
    from agegender_cli import engine_choice
    from agegender_cli.onnx_models import onnx_runtime_available

    engine_auto = engine == "auto" and onnx_runtime_available()
    torch_auto = precision == "auto" and engine != "onnx" and bf16_support("cpu")[0]
    if engine_auto or torch_auto:
        engine_choice.calibration(log=log)


def choose_engine(engine: str, device: str, precision: str, workload: int | None = None) -> EngineChoice:
    """pick_engine's answer with the precision it implies and its reason (what `info` and the reports show)."""
    from agegender_cli import engine_choice
    from agegender_cli.engine_choice import EngineChoice
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
        return EngineChoice(engine, precision, workload or 1, reason="named on the command line")
    if precision == "int8":
        return EngineChoice("onnx", "int8", workload or 1, reason="int8 runs on ONNX Runtime")
    if not on_cpu:
        return EngineChoice("torch", precision, workload or 1, reason="a GPU: PyTorch")
    native = bf16_support("cpu")[0]
    ort = onnx_runtime_available()
    measured = engine_choice.calibration() if ort and precision != "bf16" else None
    return engine_choice.choose(measured, precision, workload, native_bf16=native, onnx=ort,
                                torch_loaded=engine_choice.torch_loaded())
