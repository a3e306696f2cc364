"""Wall time of `python -m agegender_cli --help` (or `COMMAND --help`): fresh subprocesses after a warm-up, min,
median and max, and a PASS/FAIL line against a limit (0.20 s); then the 10 imports that take the most cumulative
time (`python -X importtime`). `--against DIR` times another checkout too, interleaved run by run, so that the
load of a shared machine falls on both alike.

Usage: python benchmarks/help_time.py [--runs 15] [--command compare] [--limit 0.20] [--against /path/to/checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def help_args(command: str | None) -> list[str]:
    return ["-m", "agegender_cli", *([command] if command else []), "--help"]


def environment(checkout: Path) -> dict[str, str]:
    """The checkout first on the path (not whatever an editable install points at), a fixed width."""
    env = dict(os.environ, COLUMNS="100")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(checkout), os.environ.get("PYTHONPATH"))))
    return env


def timed_run(python: str, checkout: Path, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([python, *args], cwd=checkout, env=environment(checkout), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def top_imports(python: str, checkout: Path, args: list[str], n: int = 10) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the `n` imports with the most cumulative time."""
    result = subprocess.run([python, "-X", "importtime", *args], cwd=checkout, env=environment(checkout),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|", 2))
        if own.isdigit():
            rows.append((int(cumulative), int(own), name))
    return sorted(rows, reverse=True)[:n]


def summary(label: str, times: list[float]) -> str:
    return (f"{label}: min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s "
            f"({len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="Timed runs (after --warmup untimed ones).")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--command", default=None, help="Time `COMMAND --help` instead of the top-level help.")
    parser.add_argument("--limit", type=float, default=0.20, help="Seconds the median must not exceed.")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--against", type=Path, default=None, help="Another checkout, timed interleaved.")
    args = parser.parse_args()

    argv = help_args(args.command)
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    for checkout in checkouts:
        for _ in range(args.warmup):
            timed_run(args.python, checkout, argv)
    times: dict[Path, list[float]] = {checkout: [] for checkout in checkouts}
    for _ in range(args.runs):
        for checkout in checkouts:
            times[checkout].append(timed_run(args.python, checkout, argv))
    baseline = timed_run_floor(args.python, args.runs)

    shown = "python -m agegender_cli " + " ".join(argv[2:])
    print(f"{shown}  ({args.python})")
    for checkout in checkouts:
        print(summary(str(checkout), times[checkout]))
    print(summary("python -c pass (the floor)", baseline))
    median = statistics.median(times[ROOT])
    verdict = "PASS" if median <= args.limit else "FAIL"
    print(f"{verdict}: median {median:.3f} s {'<=' if median <= args.limit else '>'} {args.limit:.2f} s")

    print(f"\ntop 10 imports by cumulative time ({ROOT}):")
    print(f"{'cumulative ms':>14} {'self ms':>8}  module")
    for cumulative, own, name in top_imports(args.python, ROOT, argv):
        print(f"{cumulative / 1000:14.1f} {own / 1000:8.1f}  {name.strip()}")
    sys.exit(0 if verdict == "PASS" else 1)


def timed_run_floor(python: str, runs: int) -> list[float]:
    """The interpreter's own start-up, for scale."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
