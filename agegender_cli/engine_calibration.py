"""The engine calibration: how fast this CPU runs each engine and precision, measured on a proxy of the models.

Run as `python -m agegender_cli.engine_calibration` (engine_choice starts it in a fresh interpreter, so that
torch's import is timed as a first run pays it); prints one JSON object on stdout. The proxy has the bundled
models' layers at reduced depth: the Levi-Hassner net of caffenet whole, and facenet's InceptionResnetV1 stem
with one block of each kind; its per-face seconds are scaled by the models' multiply-adds to the real models'.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

BATCH = 16
MEASURE_S = 0.15  # per model and path, after its first call: at least 3 batches


def _proxies() -> dict:
    """{model: (proxy module, its input size)}: caffenet's Levi-Hassner net whole (one of its two nets), facenet's
    InceptionResnetV1 at 160 px with 1 of its 5/10/5 residual blocks each. Random weights, seeded."""
    import torch
    from facenet_pytorch.models.inception_resnet_v1 import (
        BasicConv2d,
        Block8,
        Block17,
        Block35,
        Mixed_6a,
        Mixed_7a,
    )
    from torch import nn

    from agegender_cli.archs.caffenet.net import LeviHassnerNet

    class FacenetProxy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                BasicConv2d(3, 32, kernel_size=3, stride=2), BasicConv2d(32, 32, kernel_size=3, stride=1),
                BasicConv2d(32, 64, kernel_size=3, stride=1, padding=1), nn.MaxPool2d(3, stride=2),
                BasicConv2d(64, 80, kernel_size=1, stride=1), BasicConv2d(80, 192, kernel_size=3, stride=1),
                BasicConv2d(192, 256, kernel_size=3, stride=2))
            self.blocks = nn.Sequential(Block35(scale=0.17), Mixed_6a(), Block17(scale=0.10), Mixed_7a(),
                                        Block8(noReLU=True))
            self.head = nn.Linear(1792, 512, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.blocks(self.stem(x))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    # channels_last, as the models' predictors run them
    return {"caffenet": (LeviHassnerNet(8).eval().to(memory_format=torch.channels_last), 227),
            "facenet": (FacenetProxy().eval().to(memory_format=torch.channels_last), 160)}


def multiply_adds(module, inputs) -> int:
    """Multiply-adds of a module's Conv2d and Linear layers on `inputs` (one face each): the proxy's scale."""
    import torch
    from torch import nn

    total = [0]

    def count(layer, _args, out) -> None:
        if isinstance(layer, nn.Conv2d):
            per_out = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            total[0] += out[:1].numel() * per_out
        elif isinstance(layer, nn.Linear):
            total[0] += out[:1].numel() * layer.in_features

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            module(*(x[:1] for x in inputs))
    finally:
        for hook in hooks:
            hook.remove()
    return total[0]


# Multiply-adds of one face through each bundled model (caffenet: its age and gender nets at 227 px; facenet at 160 px),
# counted by multiply_adds on the real architectures (tests/test_engine_choice.py checks the figures)
MODEL_MACS = {"caffenet": 1_418_503_168, "facenet": 1_417_662_304}
# what --precision auto runs on ONNX Runtime for the bundled models: caffenet in int8, facenet in fp32 (their ranges'
# val checks, onnx_int8.AUTO_SAME_CLASS)
ONNX_AUTO = {"caffenet": "int8", "facenet": "fp32"}


def _timed(run, seconds: float) -> float:
    """Seconds per call of `run`, over as many calls as fit in `seconds` (at least 3)."""
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        run()
        calls += 1
    return (time.perf_counter() - start) / calls


def _first(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(threads: int | None = None) -> dict:
    """Per-face seconds through both bundled models on torch/fp32, torch/bf16 (where the CPU has native bf16),
    onnx/fp32 and onnx/auto (caffenet int8, facenet fp32); each path's first batch; torch's and facenet-pytorch's
    import, which a process pays before PyTorch's first face."""
    started = time.perf_counter()
    import torch

    torch_import_s = time.perf_counter() - started
    from agegender_cli.cpu import this_cpu
    from agegender_cli.runtime import bf16_support

    if threads:
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    build = time.perf_counter()
    proxies = _proxies()  # imports facenet_pytorch (and torchvision), as facenet's PyTorch path does
    torch_build_s = time.perf_counter() - build
    bf16 = bf16_support("cpu")[0]
    per_face: dict[str, float] = {}
    first_call: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="agegender-calibration-") as folder:
        for model, (proxy, size) in proxies.items():
            x = torch.rand(BATCH, 3, size, size, generator=torch.Generator().manual_seed(0)) * 255 - 110
            scale = MODEL_MACS[model] / multiply_adds(proxy, (x,))
            runs = _torch_runs(proxy, x, bf16)
            runs.update(_onnx_runs(proxy, x, Path(folder) / model, int8=ONNX_AUTO[model] == "int8"))
            for name, run in runs.items():
                first_call[name] = first_call.get(name, 0.0) + _first(run)
                per_face[name] = per_face.get(name, 0.0) + _timed(run, MEASURE_S) / BATCH * scale
    return {"per_face_s": per_face, "first_call_s": first_call, "torch_import_s": torch_import_s,
            "torch_build_s": torch_build_s, "batch": BATCH, "threads": torch.get_num_threads(),
            "cpu": this_cpu().label, "seconds": time.perf_counter() - started}


def _torch_runs(proxy, x, bf16: bool) -> dict:
    import torch

    last = x.contiguous(memory_format=torch.channels_last)

    def run(enabled: bool):
        def call() -> None:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                proxy(last)
        return call

    return {"torch/fp32": run(False), **({"torch/bf16": run(True)} if bf16 else {})}


def _onnx_runs(proxy, x, stem: Path, int8: bool) -> dict:
    """The proxy on ONNX Runtime as the models' sessions run it: fp32, and "auto" (int8 where the bundled model of
    its kind runs int8 under auto, quantised as onnx_int8 does; else fp32 again). None without onnxruntime."""
    from agegender_cli.onnx_models import export_module, onnx_runtime_available, session

    if not onnx_runtime_available():
        return {}
    fp32 = stem.with_suffix(".onnx")
    export_module(proxy, x, fp32, ["x"], ["y"])
    feed = {"x": x.numpy()}
    sessions = {"onnx/fp32": session(fp32)}
    if int8:
        from agegender_cli.onnx_int8 import activation_ranges, quantize

        quantized = stem.with_suffix(".int8.onnx")
        quantize(fp32, activation_ranges(fp32, [feed]), quantized)
        sessions["onnx/auto"] = session(quantized)
    else:
        sessions["onnx/auto"] = sessions["onnx/fp32"]
    return {name: (lambda ort=ort: ort.run(None, feed)) for name, ort in sessions.items()}


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else None
    json.dump(measure(threads), sys.stdout)


if __name__ == "__main__":
    main()
