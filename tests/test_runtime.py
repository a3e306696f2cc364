"""--precision auto: bf16 only where the hardware runs it natively and it is measured faster than fp32."""

from __future__ import annotations

import pytest
import torch

from agegender_cli import runtime
from agegender_cli.errors import AgeGenderError

CPU = torch.device("cpu")


@pytest.mark.parametrize(("flags", "expected"), [
    ({"avx2", "amx_bf16", "amx_tile"}, "bf16"), ({"avx512f", "avx512_bf16"}, "bf16"), ({"avx2", "fma"}, "fp32"),
    (set(), "fp32"),
])
def test_auto_picks_bf16_only_on_cpus_with_native_bf16(monkeypatch, flags, expected):
    from engine_figures import fake_calibration

    monkeypatch.setenv("AGEGENDER_CPU_FEATURES", ",".join(sorted(flags)) or "none")
    monkeypatch.setattr("agegender_cli.engine_choice.calibration", lambda log=None: fake_calibration("amx"))
    assert runtime.resolve_precision("auto", CPU) == expected
    assert runtime.describe_precision("auto", CPU).startswith(f"{expected} (auto: CPU")
    assert runtime.resolve_precision("bf16", CPU) == "bf16" and runtime.resolve_precision("fp32", CPU) == "fp32"


def test_bad_precision_is_refused():
    with pytest.raises(AgeGenderError, match="auto, bf16, fp32 or int8"):
        runtime.resolve_precision("fp8", CPU)


def test_auto_keeps_fp32_in_pytorch_where_bf16_is_native_but_measured_no_faster(monkeypatch):
    import dataclasses

    from engine_figures import fake_calibration

    slow = fake_calibration("avx512-bf16")
    slow = dataclasses.replace(slow, per_face_s={**slow.per_face_s, "torch/bf16": slow.per_face_s["torch/fp32"]})
    monkeypatch.setenv("AGEGENDER_CPU_FEATURES", "avx512-bf16")
    monkeypatch.setattr("agegender_cli.engine_choice.calibration", lambda log=None: slow)
    assert runtime.resolve_precision("auto", CPU) == "fp32"
    assert "no faster than fp32" in runtime.describe_precision("auto", CPU)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_gpu_is_bf16_where_the_gpu_has_it(monkeypatch, native, expected):
    """The CUDA path without a GPU: the precision auto resolves to there (measured speeds need a lent GPU)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: native)
    assert runtime.resolve_precision("auto", "cuda") == expected
    assert runtime.describe_precision("auto", "cuda").startswith(f"{expected} (auto: CUDA GPU")
    monkeypatch.setattr(runtime, "device_name", lambda name: "cuda")
    choice = runtime.choose_engine("auto", "auto", "auto", 5000)
    assert (choice.engine, choice.precision) == ("torch", "auto")
