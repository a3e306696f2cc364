"""The CPU this process runs on: its model name and feature flags, which AGEGENDER_CPU_FEATURES can override."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

# Read here and nowhere else: a preset name (CPU_PRESETS) or a comma-separated list of /proc/cpuinfo flags. The
# project then decides as it would on such a CPU (native bf16 or not); what it measures is still this machine.
CPU_ENV = "AGEGENDER_CPU_FEATURES"

_BASE = ("sse4_2", "avx", "fma", "avx2")
_AVX512 = (*_BASE, "avx512f", "avx512bw", "avx512vl", "avx512_vnni")
CPU_PRESETS: dict[str, tuple[str, ...]] = {
    "avx2": _BASE,  # e.g. AMD EPYC Zen 2/3: no native bf16
    "avx512-bf16": (*_AVX512, "avx512_bf16"),  # e.g. AMD EPYC Zen 4: bf16 dot products, no AMX
    "amx": (*_AVX512, "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"),  # Intel Xeon Sapphire Rapids and later
}
# the flags that decide which engine and precision can be fast, in the order they are printed
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


@dataclass(frozen=True)
class Cpu:
    """A CPU as the project sees it: model name, flags, and the override that replaced the real flags, if any."""

    model: str
    flags: frozenset[str]
    override: str | None = None

    @property
    def kind(self) -> str:
        """amx, avx512-bf16, avx2 or other: the three kinds of x86-64 CPU whose engine choices differ."""
        if "amx_bf16" in self.flags:
            return "amx"
        if "avx512_bf16" in self.flags:
            return "avx512-bf16"
        return "avx2" if "avx2" in self.flags else "other"

    @property
    def label(self) -> str:
        """e.g. 'Intel(R) Xeon(R) Processor (amx)' or '... (avx2, flags from AGEGENDER_CPU_FEATURES=avx2)'."""
        told = f", flags from {CPU_ENV}={self.override}" if self.override else ""
        return f"{self.model} ({self.kind}{told})"


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo's text; 'unknown' and no flags if absent.
    ARM kernels call the flags 'Features' and may give no model name."""
    model, flags = "unknown", None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep:
            continue
        if key == "model name" and model == "unknown":
            model = value.strip() or "unknown"
        elif key in ("flags", "Features") and flags is None:
            flags = frozenset(value.split())
    return model, flags or frozenset()


def read_cpuinfo(path: str | Path = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """The real CPU's (model, flags); the platform's processor name where /proc/cpuinfo is missing."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        text = ""
    model, flags = parse_cpuinfo(text)
    return (platform.processor() or "unknown") if model == "unknown" else model, flags


def override_flags(value: str) -> frozenset[str]:
    """The flags an AGEGENDER_CPU_FEATURES value stands for: a preset's, or the listed ones."""
    value = value.strip().lower()
    if value in CPU_PRESETS:
        return frozenset(CPU_PRESETS[value])
    return frozenset(flag.strip() for flag in value.split(",") if flag.strip())


def this_cpu() -> Cpu:
    """This machine's CPU; its flags replaced by AGEGENDER_CPU_FEATURES where that is set (read on each call, so
    a test may set it; /proc/cpuinfo is read once)."""
    model, flags = _real_cpu()
    told = os.environ.get(CPU_ENV, "").strip()
    if told:
        return Cpu(model, override_flags(told), told)
    return Cpu(model, flags)


@functools.cache
def _real_cpu() -> tuple[str, frozenset[str]]:
    return read_cpuinfo()


def flags_line(flags: frozenset[str] | set[str]) -> str:
    """e.g. 'avx2 yes, avx512f no, avx512_vnni no, avx512_bf16 no, amx_bf16 no, amx_tile no'."""
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in RELEVANT_FLAGS)
