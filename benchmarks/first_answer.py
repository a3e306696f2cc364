"""Time to the first answer: wall time and peak memory of `agegender predict PHOTO --arch both --json` as a whole
process, and where that time goes.

Prints the machine (CPU model and flags, cores, threads, engine, precision with its reason, device), then:
- the whole command: after one untimed warm-up run (files into the page cache, ONNX exports cached), --runs runs,
  each a fresh process started by a small wrapper process that times it (perf_counter around subprocess.run:
  interpreter start to exit) and reports its peak RSS (getrusage(RUSAGE_CHILDREN).ru_maxrss of the wrapper,
  whose only child is the command); the median wall time and the median and largest peak RSS (MB = 10^6 bytes);
- whether the command imported torch, onnxruntime, cv2 and facenet_pytorch (one more run, sys.modules at exit);
- the parts, each alone in a fresh process (so its imports are cold in the process; the page cache is warm),
  timed with perf_counter around that part only after an untimed setup: interpreter start, importing the CLI,
  torch, cv2 and onnxruntime, loading each predictor, building the auto detector, decoding the photo, detecting
  its faces, and each architecture's first prediction on them; with each process's peak RSS. A part includes the
  imports it triggers, so parts overlap and do not add up to the whole;
- the targets, whole command <= 2.0 s (median) and <= 900 MB (largest peak): PASS/FAIL. A report: the exit
  status is 0 either way (1 only when the command itself fails).

Usage: OMP_NUM_THREADS=2 python benchmarks/first_answer.py [--photo examples/grace_hopper.jpg] [--runs 5]
       [--part-runs 1] [--engine auto]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from machine import print_machine

from agegender_cli.archs.registry import names
from agegender_cli.config import ENGINES

TARGET_SECONDS = 2.0
TARGET_MB = 900.0
WATCHED = ("torch", "onnxruntime", "cv2", "facenet_pytorch")
MARK = "@@benchmark "  # the line a helper process reports on, among whatever else it prints

# runs argv[1:] as its only child; reports the child's wall seconds, peak RSS (KiB), exit status, lines of stdout
# and what the child itself reported after MARK. A process started by a big one carries the big one's peak RSS
# (Linux keeps the highest RSS across fork and exec), so every measured process is started by this small wrapper.
WRAPPER = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    start = time.perf_counter()
    done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    lines = done.stdout.splitlines()
    child = [json.loads(line[len(%(mark)r):]) for line in lines if line.startswith(%(mark)r)]
    print(%(mark)r + json.dumps({"seconds": seconds, "peak_kib": peak, "code": done.returncode,
                                 "lines": len(lines), "child": child[-1] if child else None}))
""") % {"mark": MARK}

# runs the CLI in this process and reports, at exit, which of WATCHED it imported
WATCHER = textwrap.dedent("""
    import atexit, json, runpy, sys
    def report():
        print(%r + json.dumps({m: m in sys.modules for m in %r}), file=sys.stderr)
    atexit.register(report)
    sys.argv = ["agegender"] + sys.argv[1:]
    runpy.run_module("agegender_cli", run_name="__main__", alter_sys=True)
""") % (MARK, WATCHED)

# one part: setup (untimed), then the timed statement(s)
PART = textwrap.dedent("""
    import json, time
    {setup}
    start = time.perf_counter()
    {timed}
    seconds = time.perf_counter() - start
    print({mark!r} + json.dumps({{"seconds": seconds}}))
""")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=Path("examples/grace_hopper.jpg"))
    parser.add_argument("--runs", type=int, default=5, help="timed runs of the whole command (median)")
    parser.add_argument("--part-runs", type=int, default=1, help="fresh processes per part (median)")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="passed to the command and the parts")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.part_runs < 1:
        parser.error("--runs and --part-runs must be at least 1")
    if not args.photo.is_file():
        parser.error(f"{args.photo}: no such photo")
    return args


def reported(output: str) -> dict:
    """The JSON a helper process printed after MARK (its last such line)."""
    lines = [line for line in output.splitlines() if line.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"the helper process reported nothing; its output ended:\n{output[-2000:]}")
    return json.loads(lines[-1][len(MARK):])


def command(photo: Path, engine: str) -> list[str]:
    argv = [sys.executable, "-m", "agegender_cli", "predict", str(photo), "--arch", "both", "--json"]
    return argv + (["--engine", engine] if engine != "auto" else [])


def run_wrapped(argv: list[str]) -> dict:
    """One run of `argv` as the only child of a fresh wrapper: its seconds, peak RSS and exit status."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True)
    result = reported(done.stdout)
    if result["code"] != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {result['code']}):\n{done.stderr[-2000:]}")
    return result


def imported_modules(photo: Path, engine: str) -> dict[str, bool]:
    argv = command(photo, engine)[3:]  # without `python -m agegender_cli`
    done = subprocess.run([sys.executable, "-c", WATCHER, *argv], capture_output=True, text=True)
    return reported(done.stderr)


def run_part(setup: str, timed: str) -> dict:
    """One part in a fresh process: the seconds it reported for the timed code, and its process's peak RSS."""
    code = PART.format(setup=setup, timed=timed, mark=MARK)
    result = run_wrapped([sys.executable, "-c", code])
    return {"seconds": result["child"]["seconds"], "peak_kib": result["peak_kib"]}


def parts(photo: Path, engine: str) -> list[tuple[str, str, str]]:
    """(name, setup, timed code) of every part; setup and timed code are one line each (statements joined
    by ';')."""
    options = f"ModelOptions(engine={engine!r})"
    load = "from agegender_cli.archs.registry import load_predictor; from agegender_cli.config import ModelOptions"
    image = f"from agegender_cli.faces.inputs import load_image; image = load_image({str(photo)!r})"
    detector = "from agegender_cli.faces.detection import make_detector; detector = make_detector('auto')"
    found = "found = detector.detect([image])[0]"
    listed = [("import agegender_cli.cli.app", "", "import agegender_cli.cli.app"),
              ("import torch", "", "import torch"),
              ("import cv2", "", "import cv2")]
    if importlib.util.find_spec("onnxruntime") is not None:
        listed.append(("import onnxruntime", "", "import onnxruntime"))
    listed += [(f"load {arch} predictor", load, f"load_predictor({arch!r}, {options})") for arch in names()]
    listed += [("make_detector('auto')", "from agegender_cli.faces.detection import make_detector",
                "make_detector('auto')"),
               ("decode the photo (load_image)", "from agegender_cli.faces.inputs import load_image",
                f"load_image({str(photo)!r})"),
               ("detect faces (auto)", f"{image}; {detector}", found)]
    for arch in names():
        crops = ("from agegender_cli.archs.registry import framing; "
                 "from agegender_cli.faces.detection import crop_face; "
                 f"crops = [crop_face(image, f.box, framing=framing({arch!r}, 'auto', {options})) for f in found] "
                 "or [image]")
        setup = f"{load}; predictor = load_predictor({arch!r}, {options}); {image}; {detector}; {found}; {crops}"
        listed.append((f"first {arch} prediction", setup, "predictor.predict(crops)"))
    return listed


def print_part(name: str, results: list[dict]) -> None:
    seconds = statistics.median(r["seconds"] for r in results)
    peak = statistics.median(mb(r["peak_kib"]) for r in results)
    print(f"  {name:<36} {seconds:8.3f} {peak:8.0f}", flush=True)


def mb(kib: float) -> float:
    return kib * 1024 / 1e6


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_machine(args.engine, "auto", "auto")
    argv = command(args.photo, args.engine)
    print(f"command: {' '.join(argv)}; 1 warm-up run, then {args.runs} timed", flush=True)
    run_wrapped(argv)
    runs = [run_wrapped(argv) for _ in range(args.runs)]
    seconds = statistics.median(r["seconds"] for r in runs)
    peaks = [mb(r["peak_kib"]) for r in runs]
    records = statistics.median(r["lines"] for r in runs)
    shown = ", ".join(f"{r['seconds']:.2f}" for r in runs)
    print(f"whole command: median {seconds:.2f} s of {shown}; peak RSS median {statistics.median(peaks):.0f} MB, "
          f"largest {max(peaks):.0f} MB; JSON records written (one per face): {records:.0f}")
    loaded = imported_modules(args.photo, args.engine)
    print("imported by the command: " + ", ".join(f"{m} {'yes' if v else 'no'}" for m, v in loaded.items()))
    print(f"parts, each alone in a fresh process (median of {args.part_runs}; they overlap, so they do not add up):")
    print(f"  {'part':<36} {'seconds':>8} {'peak MB':>8}")
    started = [run_wrapped([sys.executable, "-c", "pass"]) for _ in range(args.part_runs)]
    print_part("python start to exit (whole process)", started)
    for name, setup, timed in parts(args.photo, args.engine):
        print_part(name, [run_part(setup, timed) for _ in range(args.part_runs)])
    print(f"target wall time <= {TARGET_SECONDS} s: {seconds:.2f} s, {verdict(seconds <= TARGET_SECONDS)}")
    print(f"target peak RSS <= {TARGET_MB:.0f} MB: {max(peaks):.0f} MB, {verdict(max(peaks) <= TARGET_MB)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
