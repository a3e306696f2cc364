"""Wall time of `python -m agegender_cli --help` (or `COMMAND --help`): fresh subprocesses after a warm-up, min,
median and max, and a PASS/FAIL line against a limit (0.20 s) on the median; then the 10 imports that take the most
cumulative time (`python -X importtime`). `--against DIR` times another checkout too, interleaved run by run, so
that the load of a shared machine falls on both alike; the CPU time (user + system) of the runs is shown beside the
wall time, as it varies less with that load.

The runs use compiled bytecode as an installed tool does: with PYTHONDONTWRITEBYTECODE set (as in some shells),
every run would compile the package anew, so the warm-up writes the bytecode under a temporary PYTHONPYCACHEPREFIX
(nothing is written into the checkouts); `--no-bytecode` times the runs that compile instead.

Usage: python benchmarks/help_time.py [--runs 15] [--command compare] [--limit 0.20] [--against /path/to/checkout]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import core_count, flags_line, read_cpuinfo

ROOT = Path(__file__).resolve().parent.parent
# The least a Typer app with Rich help costs: one command, no package of ours (typer.rich_utils imports rich.markdown,
# markdown_it and rich.traceback whatever the app).
TYPER_FLOOR = ("import typer\napp = typer.Typer()\n@app.command()\ndef hello(name: str = 'x') -> None:\n"
               "    \"\"\"Say hello.\"\"\"\napp()\n")
PYCACHE = Path(tempfile.gettempdir()) / "agegender-help-time-pycache"
BYTECODE = True  # --no-bytecode: False


def help_args(command: str | None) -> list[str]:
    return ["-m", "agegender_cli", *([command] if command else []), "--help"]


def environment(checkout: Path) -> dict[str, str]:
    """The checkout first on the path (not whatever an editable install points at), a fixed width."""
    env = dict(os.environ, COLUMNS="100")
    if BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(checkout), os.environ.get("PYTHONPATH"))))
    return env


def timed_run(python: str, checkout: Path, args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([python, *args], cwd=checkout, env=environment(checkout), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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


def summary(label: str, runs: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in runs]
    cpu = statistics.median(c for _, c in runs)
    return (f"{label}: wall min {min(wall):.3f} s, median {statistics.median(wall):.3f} s, max {max(wall):.3f} s; "
            f"CPU median {cpu:.3f} s ({len(runs)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="Timed runs (after --warmup untimed ones).")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--command", default=None, help="Time `COMMAND --help` instead of the top-level help.")
    parser.add_argument("--limit", type=float, default=0.20, help="Seconds the median must not exceed.")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--against", type=Path, default=None, help="Another checkout, timed interleaved.")
    parser.add_argument("--no-bytecode", action="store_true", help="Keep PYTHONDONTWRITEBYTECODE as it is set.")
    args = parser.parse_args()
    global BYTECODE
    BYTECODE = not args.no_bytecode

    argv = help_args(args.command)
    checkouts = [ROOT] + ([args.against.resolve()] if args.against else [])
    for checkout in checkouts:
        for _ in range(args.warmup):
            timed_run(args.python, checkout, argv)
    times: dict[Path, list[tuple[float, float]]] = {checkout: [] for checkout in checkouts}
    for _ in range(args.runs):
        for checkout in checkouts:
            times[checkout].append(timed_run(args.python, checkout, argv))
    floor = [timed_run(args.python, ROOT, ["-c", "pass"]) for _ in range(args.runs)]
    typer_floor = [timed_run(args.python, ROOT, ["-c", TYPER_FLOOR, "--help"]) for _ in range(args.runs)]

    shown = "python -m agegender_cli " + " ".join(argv[2:])
    cpu, flags = read_cpuinfo()
    total, usable = core_count()
    # --help runs no model: no engine, precision or device to report
    print(f"CPU: {cpu}; {flags_line(flags)}; cores: {total} logical, {usable} usable")
    print(f"{shown}  ({args.python}; {'bytecode cached' if BYTECODE else 'PYTHONDONTWRITEBYTECODE as set'})")
    for checkout in checkouts:
        print(summary(str(checkout), times[checkout]))
    print(summary("python -c pass", floor))
    print(summary("a one-command Typer app --help (the floor)", typer_floor))
    median = statistics.median(w for w, _ in times[ROOT])
    verdict = "PASS" if median <= args.limit else "FAIL"
    print(f"{verdict}: median {median:.3f} s {'<=' if median <= args.limit else '>'} {args.limit:.2f} s")

    print(f"\ntop 10 imports by cumulative time ({ROOT}):")
    print(f"{'cumulative ms':>14} {'self ms':>8}  module")
    for cumulative, own, name in top_imports(args.python, ROOT, argv):
        print(f"{cumulative / 1000:14.1f} {own / 1000:8.1f}  {name.strip()}")
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
