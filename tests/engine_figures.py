"""Engine calibrations as three kinds of CPU measured them (engine_choice.Calibration), for tests of auto's choice."""

from __future__ import annotations

from agegender_cli.engine_choice import Calibration

# seconds per face through both bundled models, and what a first run pays before its first face
FIGURES = {
    # Intel Xeon with AMX (Sapphire Rapids), 2 cores: `python -m agegender_cli.engine_calibration`
    "amx": ({"onnx/fp32": 0.0180, "onnx/auto": 0.0110, "torch/fp32": 0.0202, "torch/bf16": 0.0058},
            {"onnx/fp32": 0.18, "onnx/auto": 0.11, "torch/fp32": 0.19, "torch/bf16": 0.08}, 0.87, 1.03),
    # AMD EPYC with AVX512-BF16, no AMX, 2 cores: issue 27's whole-command figures (300 crops: torch bf16 11.3 s,
    # ONNX Runtime fp32 7.6 s, int8 5.45 s; first answer 4.96 s against 0.89 s) spread over start-up and faces
    "avx512-bf16": ({"onnx/fp32": 0.0224, "onnx/auto": 0.0152, "torch/fp32": 0.030, "torch/bf16": 0.0211},
                    {"onnx/fp32": 0.3, "onnx/auto": 0.25, "torch/fp32": 0.5, "torch/bf16": 0.6}, 2.2, 1.6),
    # AMD EPYC Zen 3, AVX2 only, 2 cores: bf16 emulated, never a candidate
    "avx2": ({"onnx/fp32": 0.027, "onnx/auto": 0.021, "torch/fp32": 0.036},
             {"onnx/fp32": 0.3, "onnx/auto": 0.25, "torch/fp32": 0.4}, 1.8, 1.4),
}


def fake_calibration(kind: str) -> Calibration:
    per_face, first_call, torch_import, torch_build = FIGURES[kind]
    return Calibration(dict(per_face), dict(first_call), torch_import, torch_build, f"a {kind} CPU", 2, 3.0,
                       "(figures)")
