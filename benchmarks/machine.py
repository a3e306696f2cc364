"""Shared by the throughput benchmarks: the machine facts they print, timed rounds run in alternation, their
medians, the forward-only ceiling's task, and the check that an end-to-end rate does not beat that ceiling.

Not a benchmark itself; the scripts beside it import it (`from machine import ...`: a script's folder is on
sys.path when it is run as `python benchmarks/NAME.py`).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping

# the CPU facts come from the package (one reader; AGEGENDER_CPU_FEATURES shown where it overrides the flags)
from agegender_cli.cpu import RELEVANT_FLAGS, flags_line, parse_cpuinfo, read_cpuinfo, this_cpu  # noqa: F401

# end to end may not beat its ceiling; 3% above it is allowed for timing noise on a shared machine
RATIO_TOLERANCE = 1.03


def core_count() -> tuple[int, int]:
    """(logical CPUs of the machine, CPUs this process may run on)."""
    total = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    return total, usable


def threads_line() -> str:
    """Threads the engines use: torch's intra-op pool, OMP_NUM_THREADS, ONNX Runtime's intra-op setting."""
    parts = []
    try:
        import torch

        parts.append(f"torch {torch.get_num_threads()} (torch.get_num_threads)")
    except ImportError:
        parts.append("torch not installed")
    parts.append(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    try:
        from agegender_cli.onnx_models import onnx_runtime_available, threads

        if onnx_runtime_available():
            count = threads()
            parts.append(f"onnxruntime intra-op {count or 'default (one per physical core)'}")
    except ImportError:
        pass
    return ", ".join(parts)


def device_line(device: str) -> str:
    if device != "cuda":
        return device
    import torch

    return f"cuda ({torch.cuda.get_device_name()})"


def machine_lines(engine: str, precision: str, device: str, models: Mapping[str, str] | None = None) -> list[str]:
    """What a reader needs to judge the figures: CPU and its flags, cores, threads, engine, precision (with why,
    for auto) and device (`device`: --device as given; it is resolved here), and each loaded model's
    description (what really ran: the engine and precision it reports)."""
    from agegender_cli.runtime import describe_precision, device_name

    cpu = this_cpu()
    total, usable = core_count()
    resolved = device_name(device)
    lines = [f"CPU: {cpu.label}; {flags_line(cpu.flags)}",
             f"cores: {total} logical, {usable} usable by this process",
             f"threads: {threads_line()}",
             f"engine: {engine}; precision: {describe_precision(precision, resolved)}; "
             f"device: {device_line(resolved)} (--device {device})",
             f"python {platform.python_version()} on {platform.system()} {platform.machine()}"]
    lines += [f"model {arch}: {description}" for arch, description in (models or {}).items()]
    return lines


def print_machine(engine: str, precision: str, device: str, models: Mapping[str, str] | None = None) -> None:
    for line in machine_lines(engine, precision, device, models):
        print(line)
    sys.stdout.flush()


def alternating_rounds(tasks: Mapping[str, Callable[[], object]], rounds: int,
                       clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds of each task in each round, the tasks run in turn within every round (a, b, a, b, ...), so that
    a slow spell of a shared machine falls on all of them alike rather than on whichever ran then."""
    if rounds < 1:
        raise ValueError("at least one round")
    seconds: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            start = clock()
            task()
            seconds[name].append(clock() - start)
    return seconds


def median_rate(count: int, seconds: list[float]) -> float:
    """Items per second at the median round."""
    return count / statistics.median(seconds)


def rate_line(label: str, count: int, seconds: list[float], unit: str = "images/s") -> str:
    """e.g. 'end to end: 41.3 images/s (1000 in median 24.2 s of 3 rounds: 24.2, 25.0, 23.9)'."""
    rounds = ", ".join(f"{s:.2f}" for s in seconds)
    return (f"{label}: {median_rate(count, seconds):8.1f} {unit} ({count} in median {statistics.median(seconds):.2f} "
            f"s of {len(seconds)} rounds: {rounds})")


def ratio_check(end_to_end_rate: float, ceiling_rate: float, tolerance: float = RATIO_TOLERANCE
                ) -> tuple[float, bool]:
    """(end to end / ceiling, whether it is believable): a path that does all the ceiling's work and more cannot
    be faster than it, so a ratio above 1 (beyond `tolerance` for noise) means the measurement is wrong."""
    if ceiling_rate <= 0:
        raise ValueError("the ceiling rate must be positive")
    ratio = end_to_end_rate / ceiling_rate
    return ratio, ratio <= tolerance


# (max - min) / median of a task's rounds above this: the machine was busy while it ran
NOISY_SPREAD = 0.15


def spread(seconds: list[float]) -> float:
    """(max - min) / median of one task's rounds."""
    return (max(seconds) - min(seconds)) / statistics.median(seconds)


def report_ratio(label: str, end_to_end_rate: float, ceiling_rate: float, rounds_spread: float = 0.0) -> bool:
    """Prints the ratio, and a FAIL line where it is above the tolerance; returns whether it passed. Where the
    ratio is above 1 and the rounds spread over NOISY_SPREAD, it says the machine was noisy instead."""
    ratio, ok = ratio_check(end_to_end_rate, ceiling_rate)
    if ratio > 1 and rounds_spread > NOISY_SPREAD:
        print(f"ratio {label} / ceiling: not reported: the rounds spread {rounds_spread:.0%} (over "
              f"{NOISY_SPREAD:.0%}): a noisy machine; rerun with more --rounds on a quiet one")
        return True
    print(f"ratio {label} / ceiling: {ratio:.3f} ({'PASS' if ok else 'FAIL'}: must be <= {RATIO_TOLERANCE})")
    if not ok:
        print(f"FAIL: {label} ran {ratio:.2f}x its forward-only ceiling; it does all of the ceiling's work and more, "
              "so this cannot be: the timing is wrong (a missed warm-up, a busy machine, or a ceiling that does "
              "different work). Rerun with more --rounds on a quiet machine.")
    return ok


def batch_shapes(count: int, batch_size: int) -> list[int]:
    """The distinct batch sizes of `count` items run in batches of `batch_size`: a full batch (if any) and the
    last, partial one (if any)."""
    full = [batch_size] if count >= batch_size else []
    return full + ([count % batch_size] if count % batch_size else [])


def warm_count(count: int, batch_size: int) -> int:
    """How many items, run in batches of `batch_size`, give exactly the batch shapes of a run of `count`: one
    full batch and the last, partial one (each where there is one)."""
    return sum(batch_shapes(count, batch_size))


def warm_up_line(count: int, batch_size: int) -> str:
    shapes = " and ".join(str(n) for n in batch_shapes(count, batch_size))
    return f"warm-up on {warm_count(count, batch_size)} images first (batches of {shapes}, the timed runs' shapes)"


def load_predictors(options) -> dict:
    """Every registered architecture's predictor under `options` (a ModelOptions); an engine, precision or device
    a model does not offer ends the run with one line."""
    from agegender_cli.archs.registry import load_predictor, names
    from agegender_cli.errors import AgeGenderError

    try:
        return {arch: load_predictor(arch, options) for arch in names()}
    except AgeGenderError as exc:
        sys.exit(f"--engine {options.engine} --precision {options.precision} --device {options.device}: {exc}")


def ceiling_task(predictors: Mapping, faces: list) -> Callable[[], None]:
    """The forward-only ceiling: every predictor's `.predict` on faces already decoded in memory, one after the
    other, each checked to answer for every face."""
    def run() -> None:
        for arch, predictor in predictors.items():
            if len(predictor.predict(faces)) != len(faces):
                raise RuntimeError(f"{arch} answered for fewer faces than it was given")
    return run
