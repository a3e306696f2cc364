"""`--engine auto` and `--precision auto` on a CPU: the engine that is fastest here for the work at hand, chosen from
this machine's calibration (engine_calibration, run once and cached under the CPU and the library versions)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agegender_cli.cpu import CPU_ENV, this_cpu

CALIBRATION_TIMEOUT_S = 90.0  # a first run waits this long at most; past it auto falls back to ONNX Runtime in fp32
FIRST_ANSWER_FACES = 1  # the work assumed where a caller does not say how much (the Python API, paths on stdin)
PREFER_ONNX_WITHIN = 0.05  # an engine must beat ONNX Runtime by this share to be taken: no torch import, less memory
BF16_GAIN = 0.05  # torch runs bf16 under auto only where it is measured at least this much faster than fp32
CALIBRATION_VERSION = 2  # bumped when what is measured changes: older files are measured again
CALIBRATION_DIR_ENV = "AGEGENDER_CALIBRATION_DIR"
VERSIONED = ("torch", "onnxruntime", "facenet-pytorch", "numpy")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Calibration:
    """This CPU's measured speeds: seconds per face through both bundled models on each engine/precision, and what
    a process pays before its first face (torch: its import and facenet-pytorch's; each: its first batch)."""

    per_face_s: dict[str, float]  # "onnx/fp32", "onnx/auto", "torch/fp32", "torch/bf16" (only where bf16 is native)
    first_call_s: dict[str, float]
    torch_import_s: float
    torch_build_s: float
    cpu: str
    threads: int
    measured_s: float  # how long the calibration took
    path: str  # the cache file

    def start_s(self, path: str, torch_loaded: bool) -> float:
        """What running on `path` costs before its first face in this process."""
        start = self.first_call_s.get(path, 0.0)
        if path.startswith("torch/") and not torch_loaded:
            start += self.torch_import_s + self.torch_build_s
        return start

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "threads": self.threads, "per_face_ms": _ms(self.per_face_s),
                "first_call_ms": _ms(self.first_call_s), "torch_import_s": round(self.torch_import_s, 3),
                "torch_build_s": round(self.torch_build_s, 3), "measured_s": round(self.measured_s, 2),
                "path": self.path}


def _ms(seconds: dict[str, float]) -> dict[str, float]:
    return {name: round(value * 1000, 3) for name, value in seconds.items()}


@dataclass(frozen=True)
class EngineChoice:
    """What auto runs: the engine, the precision it gives the models ('auto' on ONNX Runtime: each model's int8 where
    its ranges passed the val check, else fp32), the work it was chosen for, each candidate's estimated seconds."""

    engine: str
    precision: str
    faces: int
    estimated_s: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict:
        return {"engine": self.engine, "precision": self.precision, "faces": self.faces,
                "estimated_s": {k: round(v, 3) for k, v in self.estimated_s.items()}, "reason": self.reason}


def candidates(precision: str, native_bf16: bool, onnx: bool) -> list[str]:
    """The engine/precision paths auto may take on a CPU for --precision auto, fp32 or bf16; onnx/auto is ONNX
    Runtime with each model's int8 where its ranges passed their val check (the bundled caffenet), else fp32."""
    if precision == "bf16":
        return ["torch/bf16"]
    paths = [f"onnx/{'auto' if precision == 'auto' else 'fp32'}"] if onnx else []
    if precision == "auto" and native_bf16:
        paths.append("torch/bf16")
    return [*paths, "torch/fp32"]


def choose(calibration: Calibration | None, precision: str, faces: int | None, *, native_bf16: bool, onnx: bool,
           torch_loaded: bool) -> EngineChoice:
    """The cheapest path for `faces` faces (start-up plus faces x per-face seconds); ONNX Runtime unless another
    path is measured to be PREFER_ONNX_WITHIN faster. Without a calibration: ONNX Runtime where installed."""
    faces = max(1, faces or FIRST_ANSWER_FACES)
    paths = candidates(precision, native_bf16, onnx)
    per_face = dict(calibration.per_face_s) if calibration else {}
    per_face.setdefault("onnx/auto", per_face.get("onnx/fp32"))  # a calibration without int8 (no onnxruntime then)
    if calibration is None or not all(per_face.get(p) for p in paths):
        engine, chosen = paths[0].split("/")
        return EngineChoice(engine, chosen, faces, {}, "no calibration of this CPU: ONNX Runtime where installed, "
                                                       "else PyTorch")
    cost = {p: calibration.start_s(p, torch_loaded) + faces * per_face[p] for p in paths}
    best = min(paths, key=cost.__getitem__)
    onnx_path = paths[0] if paths[0].startswith("onnx/") else None
    if onnx_path and cost[onnx_path] <= cost[best] * (1 + PREFER_ONNX_WITHIN):
        best = onnx_path
    engine, chosen = best.split("/")
    runner_up = min((p for p in paths if p != best), key=cost.__getitem__, default=None)
    reason = f"fastest measured here for {faces:,} face{'s' if faces != 1 else ''}: {best} ~{cost[best]:.2f} s"
    if runner_up:
        reason += f" against {runner_up} ~{cost[runner_up]:.2f} s"
    return EngineChoice(engine, chosen, faces, cost, reason)


def torch_loaded() -> bool:
    """Whether this process has imported torch already (its import then costs a PyTorch engine nothing more)."""
    return "torch" in sys.modules


def torch_precision(calibration: Calibration | None, native_bf16: bool, cpu_why: str) -> tuple[str, str]:
    """(precision, reason) for PyTorch on this CPU under --precision auto: bf16 where native and measured faster;
    `cpu_why` says what the CPU has (runtime.bf16_support)."""
    if not native_bf16:
        return "fp32", cpu_why
    if calibration is None or "torch/bf16" not in calibration.per_face_s:
        return "bf16", f"{cpu_why}, not measured"
    bf16, fp32 = calibration.per_face_s["torch/bf16"], calibration.per_face_s["torch/fp32"]
    if bf16 <= fp32 * (1 - BF16_GAIN):
        return "bf16", f"{cpu_why}, measured {fp32 / bf16:.1f}x fp32's speed here"
    return "fp32", f"{cpu_why}, but bf16 measured no faster than fp32 here ({bf16 * 1000:.1f} against " \
                   f"{fp32 * 1000:.1f} ms a face)"


# ------------------------------------------------------------------ the cached calibration


@functools.cache
def _versions() -> dict[str, str | None]:
    """The versions the calibration is kept under; looked up once a process (each lookup reads package metadata)."""
    from agegender_cli import __version__
    from agegender_cli.versions import package_version

    return {"agegender": __version__, "python": sys.version.split()[0],
            **{name: package_version(name) for name in VERSIONED}}


def _threads() -> int:
    from agegender_cli.onnx_models import threads

    if threads():
        return threads()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def calibration_file() -> Path:
    """The cache file of this CPU (its model and flags, an override included), versions and thread count: in
    $AGEGENDER_CALIBRATION_DIR where set (one measurement shared by several AGEGENDER_HOMEs: a test suite, a
    fleet of identical nodes), else in the cache folder."""
    from agegender_cli.cache import cache_dir

    cpu = this_cpu()
    key = json.dumps({"v": CALIBRATION_VERSION, "cpu": cpu.model, "flags": sorted(cpu.flags),
                      "versions": _versions(), "threads": _threads()}, sort_keys=True)
    folder = Path(os.environ[CALIBRATION_DIR_ENV]) if os.environ.get(CALIBRATION_DIR_ENV) else cache_dir() / "engine"
    return folder / f"calibration-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


_MEMO: dict[str, Calibration | None] = {}
_LOCK = threading.Lock()


def calibration(log: Log | None = None) -> Calibration | None:
    """This machine's calibration: remembered in this process, else read from the cache, else measured now in a
    fresh interpreter (once; about 7 s, torch's import included). None where it cannot be had (said once)."""
    path = calibration_file()
    with _LOCK:
        if str(path) in _MEMO:
            return _MEMO[str(path)]
        found = _read(path)
        if found is None:
            found = _measure(path, log)
        _MEMO[str(path)] = found
        return found


def forget() -> None:
    """Drop what this process remembers (tests)."""
    with _LOCK:
        _MEMO.clear()


def _read(path: Path) -> Calibration | None:
    try:
        data = json.loads(path.read_text())
        return _from_measurement(data, path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _from_measurement(data: dict, path: Path) -> Calibration:
    per_face = {str(k): float(v) for k, v in data["per_face_s"].items()}
    if not per_face or not all(0 < v < 60 for v in per_face.values()):
        raise ValueError("implausible calibration")
    return Calibration(per_face, {str(k): float(v) for k, v in data["first_call_s"].items()},
                       float(data["torch_import_s"]), float(data["torch_build_s"]), str(data["cpu"]),
                       int(data["threads"]), float(data["seconds"]), str(path))


def _measure(path: Path, log: Log | None) -> Calibration | None:
    from agegender_cli.cache import print_to_stderr

    say = log or print_to_stderr
    say(f"measuring this CPU's engines once for --engine auto (about 7 s; kept in {path.parent})")
    threads = os.environ.get("OMP_NUM_THREADS", "")
    command = [sys.executable, "-m", "agegender_cli.engine_calibration", *([threads] if threads.isdigit() else [])]
    start = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CALIBRATION_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError((done.stderr.strip().splitlines() or ["exit status " + str(done.returncode)])[-1])
        data = json.loads(done.stdout)
        found = _from_measurement(data, path)
    except subprocess.TimeoutExpired:
        say(f"engine calibration gave no answer in {CALIBRATION_TIMEOUT_S:.0f} s: auto runs ONNX Runtime in fp32")
        return None
    except (RuntimeError, ValueError, KeyError, TypeError, OSError) as exc:
        say(f"engine calibration failed ({exc}): auto runs ONNX Runtime in fp32")
        return None
    from agegender_cli.fileio import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({**data, "versions": dict(_versions()), "cpu_override":
                                            os.environ.get(CPU_ENV) or None}, indent=1))
    except OSError as exc:
        say(f"engine calibration not kept ({exc}); it will be measured again next time")
    say(f"engine calibration took {time.monotonic() - start:.1f} s")
    return found
