"""Images/s of `agegender evaluate --arch both` and `agegender compare` on a manifest split, against the
forward-only ceiling.

Prints the machine (CPU model and flags, cores, threads, engine, precision with its reason, device, each model as
loaded), then, on the first --limit images of the split (a temporary manifest of those rows):
- evaluate: `service.evaluate` of both architectures as the command runs it (models loaded, images decoded in
  threads and batched, metrics with --bootstrap resamples, provenance), images / median seconds of the rounds;
- compare: `service.compare` likewise (evaluate's work, paired tests included, under compare's name), images /
  median seconds;
- ceiling: each loaded predictor's `.predict(faces)` on the same images already decoded in memory, both
  architectures one after the other, images / median seconds;
- the ratios evaluate / ceiling and compare / ceiling, each checked to be <= 1.03: a FAIL line and exit status 1
  above that.
All three are warmed up first at the timed batch shapes (a full batch and the last, partial one), then timed in
alternating rounds (evaluate, compare, ceiling, evaluate, ...); each figure is the median of --rounds.

Usage: OMP_NUM_THREADS=2 python benchmarks/evaluate_throughput.py [--manifest data/utkface/manifest.csv]
       [--split test] [--limit 500] [--rounds 3] [--engine auto] [--precision auto] [--device auto]
       [--batch-size 64] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from machine import (
    alternating_rounds,
    ceiling_task,
    load_predictors,
    median_rate,
    print_machine,
    rate_line,
    report_ratio,
    warm_count,
    warm_up_line,
)

from agegender_cli.archs.registry import names
from agegender_cli.config import ENGINES, EvaluateConfig, ModelOptions
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.inputs import load_image
from agegender_cli.service import compare, evaluate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=500, help="the first N images of the split")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (median; at least 3)")
    parser.add_argument("--engine", choices=ENGINES, default="auto")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32", "int8"), default="auto")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bootstrap", type=int, default=EvaluateConfig().bootstrap,
                        help="resamples of the metrics' intervals, as evaluate --bootstrap")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (a median of fewer is no defence against noise)")
    if args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def limited_manifest(manifest: Path, split: str, limit: int, out: Path) -> int:
    """Write to `out` a manifest of the first `limit` rows of `split` in `manifest`, each path made absolute
    (a manifest's relative paths are relative to its folder); returns how many rows it holds."""
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        rows = []
        for row in reader:
            if row.get("split") == split:
                row["path"] = str((manifest.parent / row["path"]).resolve())
                rows.append(row)
                if len(rows) == limit:
                    break
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def evaluate_task(run: Callable, cfg: EvaluateConfig, count: int) -> Callable[[], None]:
    """`run` (service.evaluate or service.compare) on `cfg`, checked to have scored every image."""
    def task() -> None:
        result = run(cfg)
        failed = len(result.failed)
        if failed or sum(result.skipped.values()):
            raise RuntimeError(f"{run.__name__} left out images ({failed} unreadable, skipped {dict(result.skipped)})"
                               f" of {count}: the rates would not be of the same work")
    return task


def configs(folder: Path, args: argparse.Namespace, options: ModelOptions, count: int) -> tuple[EvaluateConfig, ...]:
    """(the timed config, the warm-up config): of folder/manifest.csv (the first `count` rows, written already)
    and of a manifest of the warm-up's first rows, written here."""
    timed, warm = folder / "manifest.csv", folder / "warm.csv"
    limited_manifest(args.manifest, args.split, warm_count(count, args.batch_size), warm)
    return tuple(EvaluateConfig(archs=names(), manifest=m, split=args.split, options=options, detector="none",
                                bootstrap=args.bootstrap) for m in (timed, warm))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.manifest.is_file():
        sys.exit(f"{args.manifest}: no manifest here (give --manifest; `agegender dataset` writes one)")
    options = ModelOptions(engine=args.engine, precision=args.precision, device=args.device,
                           batch_size=args.batch_size)
    with tempfile.TemporaryDirectory(prefix="evaluate-throughput-") as scratch:
        count = limited_manifest(args.manifest, args.split, args.limit, Path(scratch) / "manifest.csv")
        if count == 0:
            sys.exit(f"{args.manifest}: no rows of split '{args.split}'")
        timed, warm = configs(Path(scratch), args, options, count)
        faces = [load_image(r.path) for r in read_manifest(timed.manifest, args.split)]
        predictors = load_predictors(options)
        print_machine(args.engine, args.precision, args.device, {a: p.description for a, p in predictors.items()})
        print(f"{count} images of split '{args.split}' of {args.manifest}, batch {args.batch_size}, architectures "
              f"{', '.join(names())}, bootstrap {args.bootstrap}; {warm_up_line(count, args.batch_size)}; then "
              f"{args.rounds} rounds alternating evaluate / compare / ceiling", flush=True)
        ceiling_task(predictors, faces[:warm_count(count, args.batch_size)])()
        for run in (evaluate, compare):
            evaluate_task(run, warm, warm_count(count, args.batch_size))()
        seconds = alternating_rounds({"evaluate": evaluate_task(evaluate, timed, count),
                                      "compare": evaluate_task(compare, timed, count),
                                      "ceiling": ceiling_task(predictors, faces)}, args.rounds)
    print(rate_line("evaluate --arch both (models loaded in each round)", count, seconds["evaluate"]))
    print(rate_line("compare (models loaded in each round)", count, seconds["compare"]))
    print(rate_line("forward-only ceiling (decoded images in memory, both predictors)", count, seconds["ceiling"]))
    ceiling = median_rate(count, seconds["ceiling"])
    ok = report_ratio("evaluate", median_rate(count, seconds["evaluate"]), ceiling)
    ok &= report_ratio("compare", median_rate(count, seconds["compare"]), ceiling)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
