"""Calibrate a model for int8 on ONNX Runtime, check it on val, write its ranges file beside it.

The activation ranges of the model's exported graph (min and max of each tensor that int8 quantises) are measured
on --faces train faces of the manifest (every k-th, so the sample spans the split; never a val or test face). The
model is then run on the val split twice, in fp32 and in int8 from those ranges, both through the predictor that
`agegender` itself loads: accuracy of each task and, where the model estimates years, the MAE. The ranges file
(caffenet: int8_ranges.json in the folder; facenet: NAME.int8_ranges.json beside NAME.pt) is written (temp file,
then rename) only when no task loses more than --tolerance points. `agegender evaluate|compare|predict` then run
the model in int8 on ONNX Runtime with --precision int8, and with --precision auto where int8 also gave fp32's
class for at least 99% of the val faces in each task (onnx_int8.AUTO_SAME_CLASS).

Usage: python scripts/int8_calibrate.py --arch facenet --manifest data/utkface/manifest.csv \
         [--model PATH] [--faces 1024] [--tolerance 0.3] [--keep-fp32 conv2d_2a conv2d_2b ...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agegender_cli.archs import registry
from agegender_cli.archs.facenet.model import TRUNK_ORDER
from agegender_cli.config import ModelOptions
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.inputs import load_image
from agegender_cli.fileio import atomic_write_text
from agegender_cli.onnx_int8 import auto_refusal

BATCH = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=registry.names(), required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="checkpoint or model folder (default: the bundled one)")
    parser.add_argument("--faces", type=int, default=1024, help="train faces to calibrate on")
    parser.add_argument("--tolerance", type=float, default=0.3, help="most points a task may lose on val")
    parser.add_argument("--keep-fp32", nargs="+", metavar="MODULE", choices=TRUNK_ORDER[:-1],
                        help="facenet: the backbone modules left in fp32 (default: int8.FP32_MODULES)")
    return parser.parse_args(argv)


def spread(items: list, n: int) -> list:
    """n items spaced evenly through the list (all of them when it is shorter)."""
    if len(items) <= n:
        return items
    return [items[i * len(items) // n] for i in range(n)]


def scores(predictor, faces: list[np.ndarray], records: list) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Val accuracy of each task (faces with an age class), the MAE in years where the model estimates them; each
    task's predicted classes."""
    prediction = predictor.predict(faces)
    classes = {"gender": prediction.gender_prob.argmax(1), "age": prediction.age_prob.argmax(1)}
    classed = np.array([r.age_class is not None for r in records])
    truth = {"gender": np.array([-1 if r.gender is None else r.gender for r in records]),
             "age": np.array([-1 if r.age_class is None else r.age_class for r in records])}
    result = {}
    for task, predicted in classes.items():
        kept = classed & (truth[task] >= 0)
        result[f"{task}_acc"] = float(np.mean(predicted[kept] == truth[task][kept]))
    if prediction.age_years is not None:
        ages = np.array([np.nan if r.age is None else r.age for r in records], dtype=float)
        result["mae"] = float(np.nanmean(np.abs(prediction.age_years - ages)))
    return result, classes


def trial_copy(model: Path, int8, doc: dict, folder: Path) -> Path:
    """The model linked into `folder` with the new ranges beside it, so that the predictor reads them as a user's
    machine will, before anything is written next to the real model."""
    trial = folder / model.name
    if model.is_dir():
        trial.mkdir()
        for path in model.iterdir():
            if path.is_file() and path.name != int8.ranges_path(model).name:
                (trial / path.name).symlink_to(path.resolve())
    else:
        trial.symlink_to(model.resolve())
    atomic_write_text(int8.ranges_path(trial), json.dumps(doc) + "\n")
    return trial


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.keep_fp32 and args.arch != "facenet":
        print("--keep-fp32 names facenet's backbone modules; caffenet keeps its first convolution", file=sys.stderr)
        return 2
    started = time.perf_counter()
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    int8 = importlib.import_module(f"agegender_cli.archs.{args.arch}.int8")
    model = args.model or registry.get(args.arch).bundled
    train = spread(read_manifest(args.manifest, "train"), args.faces)
    val = read_manifest(args.manifest, "val")
    chosen = {"fp32_modules": tuple(args.keep_fp32)} if args.keep_fp32 else {}
    doc = int8.calibrate(model, [load_image(r.path) for r in train], batch_size=BATCH, log=log,
                         source=f"{len(train)} train faces of {args.manifest}, evenly spaced", **chosen)
    val_faces = [load_image(r.path) for r in val]
    check, classes = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        trial = trial_copy(model, int8, doc, Path(folder))
        for precision in ("fp32", "int8"):
            options = ModelOptions(models=((args.arch, trial),), engine="onnx", precision=precision,
                                   batch_size=BATCH)
            predictor = registry.load_predictor(args.arch, options, log)
            check[precision], classes[precision] = scores(predictor, val_faces, val)
    moved = {key: 100 * (check["int8"][key] - check["fp32"][key]) for key in check["fp32"] if key.endswith("_acc")}
    same = {task: float(np.mean(classes["int8"][task] == classes["fp32"][task])) for task in classes["fp32"]}
    doc["val_check"] = {"faces": len(val), **check, "points": moved, "same_class": same}
    print(json.dumps(doc["val_check"], indent=2))
    target = int8.ranges_path(model)
    worst = min(moved.values())
    if worst < -args.tolerance:
        print(f"int8 loses {-worst:.2f} points on val (more than {args.tolerance}): {target} not written",
              file=sys.stderr)
        return 1
    atomic_write_text(target, json.dumps(doc, indent=1) + "\n")
    refusal = auto_refusal(doc, target.name)
    print(f"wrote {target} in {time.perf_counter() - started:.0f} s; --precision int8 runs it, auto "
          f"{'keeps fp32: ' + refusal if refusal else 'runs it too'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
