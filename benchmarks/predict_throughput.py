"""Images/s of `agegender predict --detector none --arch both` on UTKFace crops, against the forward-only ceiling.

Prints the machine (CPU model and flags, cores, threads, engine, precision with its reason, device, each model as
loaded), then:
- end to end: `service.predict` as the command runs it (both models loaded, files decoded in threads, batches,
  one JSON-ready record per image), images / median seconds of the rounds;
- ceiling: each loaded predictor's `.predict(faces)` on the same crops already decoded in memory, both
  architectures one after the other, images / median seconds;
- their ratio, checked to be <= 1.03 (a path that does the ceiling's work and more cannot beat it): a FAIL line
  and exit status 1 above that.
Both are warmed up first at the timed batch shapes (a full batch and the last, partial one), then timed in
alternating rounds (end to end, ceiling, end to end, ceiling, ...); each figure is the median of --rounds.
Optional: --accuracy, the precision the run uses (--precision; auto: bf16 where native, each model's calibrated
int8 on ONNX Runtime) against fp32 on the same images (gender and age accuracy, each within 0.3 points:
PASS/FAIL, exit 1 on FAIL); --demo, the OpenCV demos' one-face-at-a-time cv2.dnn fp32 loop (caffenet only).

--all-engines (engine_rounds.py): instead, every engine and precision of this machine side by side in whole
`agegender predict --arch both` commands, alternating rounds: a first answer on one photo, 300 crops without
detection, --photos in-the-wild photos with detection (100 of ../shared/data/aaf_train by default); auto against
the fastest path (PASS within 10%; a noisy machine is said so instead); and where a photo's time goes.

Usage: OMP_NUM_THREADS=2 python benchmarks/predict_throughput.py [--images 1000]
       [--data ../shared/data/utkface_crop_part1] [--rounds 3] [--engine auto] [--precision auto] [--device auto]
       [--batch-size 64] [--accuracy] [--demo]
       python benchmarks/predict_throughput.py --all-engines [--rounds 3] [--photos DIR] [--photo-count 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from machine import (
    alternating_rounds,
    ceiling_task,
    load_predictors,
    median_rate,
    print_machine,
    rate_line,
    report_ratio,
    spread,
    warm_count,
    warm_up_line,
)

from agegender_cli.archs.registry import load_predictor, names
from agegender_cli.config import ENGINES, ModelOptions, PredictConfig
from agegender_cli.data.utkface import Record, label_record
from agegender_cli.faces.inputs import load_image
from agegender_cli.service import predict

ACCURACY_POINTS = 0.3  # bf16 or int8 may move each task's accuracy by at most this many percentage points
REFERENCE_ENGINE = {"caffenet": "opencv"}  # the fp32 reference of the accuracy check (cv2.dnn); others: torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/utkface_crop_part1"))
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (median; at least 3)")
    parser.add_argument("--engine", choices=ENGINES, default="auto")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32", "int8"), default="auto")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--accuracy", action="store_true", help="also the run's precision against fp32")
    parser.add_argument("--demo", action="store_true", help="also the OpenCV demo loop (caffenet, one at a time)")
    parser.add_argument("--all-engines", action="store_true", help="every engine and precision, whole commands")
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/aaf_train/images"))
    parser.add_argument("--photo-count", type=int, default=100)
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (a median of fewer is no defence against noise)")
    return args


def crop_records(folder: Path, count: int) -> list[Record]:
    """`count` labelled UTKFace crops spread evenly over the folder's sorted names."""
    if not folder.is_dir():
        sys.exit(f"{folder}: no such folder (give --data)")
    records = [r for r in (label_record(p, "drop") for p in sorted(folder.iterdir())) if isinstance(r, Record)]
    return records[:: max(1, len(records) // count)][:count]


def end_to_end_task(paths: list[str], options: ModelOptions) -> Callable[[], None]:
    """`service.predict` of `predict --detector none --arch both`, checked to give one record per image."""
    cfg = PredictConfig(inputs=tuple(paths), archs=names(), detector="none", options=options)

    def run() -> None:
        rows: list[dict] = []
        predict(cfg, rows.append)
        answered = sum(all(arch in row for arch in cfg.archs) for row in rows)
        if answered != len(paths):
            raise RuntimeError(f"end to end answered {answered} of {len(paths)} images")
    return run


def accuracy(prediction, records: list[Record]) -> tuple[float, float]:
    gender = np.mean(prediction.gender_prob.argmax(1) == np.array([r.gender for r in records]))
    age = np.mean(prediction.age_prob.argmax(1) == np.array([r.age_class for r in records]))
    return float(gender), float(age)


def accuracy_check(records: list[Record], faces: list, args: argparse.Namespace) -> bool:
    """The run's precision and engine against the fp32 reference on the same faces, per architecture and task."""
    ok = True
    for arch in names():
        fast = load_predictor(arch, ModelOptions(engine=args.engine, precision=args.precision, device=args.device,
                                                 batch_size=args.batch_size))
        exact = load_predictor(arch, ModelOptions(engine=REFERENCE_ENGINE.get(arch, "torch"), precision="fp32",
                                                  device=args.device, batch_size=args.batch_size))
        fast_out, exact_out = fast.predict(faces), exact.predict(faces)
        (g_fast, a_fast), (g_exact, a_exact) = accuracy(fast_out, records), accuracy(exact_out, records)
        changes = 100 * (g_fast - g_exact), 100 * (a_fast - a_exact)
        passed = all(abs(c) <= ACCURACY_POINTS for c in changes)
        ok &= passed
        same = np.mean(fast_out.age_prob.argmax(1) == exact_out.age_prob.argmax(1))
        print(f"accuracy {arch}: as run [{fast.description}] against fp32 [{exact.description}]")
        print(f"  gender {g_fast:.4f} vs {g_exact:.4f} ({changes[0]:+.2f} points); age {a_fast:.4f} vs "
              f"{a_exact:.4f} ({changes[1]:+.2f} points); same age class {same:.4f}: "
              f"{'PASS' if passed else 'FAIL'} (each within {ACCURACY_POINTS} points, {len(faces)} images)")
    return ok


def demo_rate(faces: list, batch_size: int) -> float:
    """The OpenCV demos' loop: cv2.dnn fp32, one face at a time (caffenet only), after one untimed face."""
    demo = load_predictor("caffenet", ModelOptions(engine="opencv", precision="fp32", batch_size=batch_size))
    demo.predict(faces[:1])
    count = min(100, len(faces))
    start = time.perf_counter()
    for face in faces[:count]:
        demo.predict([face])
    return count / (time.perf_counter() - start)


def all_engines(args: argparse.Namespace) -> int:
    from engine_rounds import print_shares, run_table

    from agegender_cli.runtime import bf16_support

    if not args.photos.is_dir():
        sys.exit(f"{args.photos}: no such folder (give --photos)")
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos = photos[:: max(1, len(photos) // args.photo_count)][: args.photo_count]
    native = bf16_support("cpu")[0]
    print_machine("every path below, auto among them", "auto", "cpu", {})
    ok = run_table(args.data, photos, args.rounds, native)
    print_shares(photos, native)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.all_engines:
        return all_engines(args)
    records = crop_records(args.data, args.images)
    paths = [str(r.path) for r in records]
    faces = [load_image(r.path) for r in records]
    options = ModelOptions(engine=args.engine, precision=args.precision, device=args.device,
                           batch_size=args.batch_size)
    predictors = load_predictors(options)
    print_machine(args.engine, args.precision, args.device, {a: p.description for a, p in predictors.items()})

    print(f"{len(paths)} UTKFace crops from {args.data}, batch {args.batch_size}, architectures "
          f"{', '.join(names())}; {warm_up_line(len(paths), args.batch_size)}; then {args.rounds} rounds "
          "alternating end to end / ceiling", flush=True)
    warm = warm_count(len(faces), args.batch_size)
    ceiling_task(predictors, faces[:warm])()
    end_to_end_task(paths[:warm], options)()
    seconds = alternating_rounds({"end to end": end_to_end_task(paths, options),
                                  "ceiling": ceiling_task(predictors, faces)}, args.rounds)
    print(rate_line("end to end (predict --detector none --arch both, models loaded in each round)", len(paths),
                    seconds["end to end"]))
    print(rate_line("forward-only ceiling (decoded crops in memory, both predictors)", len(paths),
                    seconds["ceiling"]))
    ok = report_ratio("end to end", median_rate(len(paths), seconds["end to end"]),
                      median_rate(len(paths), seconds["ceiling"]), max(map(spread, seconds.values())))
    if args.demo:
        print(f"OpenCV demo loop (cv2.dnn fp32, one face at a time, caffenet only): "
              f"{demo_rate(faces, args.batch_size):8.1f} images/s")
    if args.accuracy:
        ok &= accuracy_check(records, faces, args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
