"""--precision auto: bf16 only where the hardware runs it natively."""

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
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset(flags))
    assert runtime.resolve_precision("auto", CPU) == expected
    assert runtime.describe_precision("auto", CPU).startswith(f"{expected} (auto: CPU")
    assert runtime.resolve_precision("bf16", CPU) == "bf16" and runtime.resolve_precision("fp32", CPU) == "fp32"


def test_bad_precision_is_refused():
    with pytest.raises(AgeGenderError, match="auto, bf16, fp32 or int8"):
        runtime.resolve_precision("fp8", CPU)
