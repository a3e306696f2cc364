"""Calibrate a caffenet model folder for int8 on ONNX Runtime, check it on val, write int8_ranges.json beside it.

Each net's activation ranges (the inputs and outputs of its convolutions, min and max) are measured on --faces
train faces of the manifest (every k-th, so the sample spans the split; never a val or test face). The int8
nets are then scored against fp32 on the val split: accuracy of each task and, where age_net has its years
output, the MAE. The file is written (temp file, then rename) only when no task loses more than --tolerance
points; `agegender evaluate|compare|predict` with --precision auto then run the nets in int8 on ONNX Runtime.

Usage: python scripts/caffenet_int8_calibrate.py --manifest data/utkface/manifest.csv \
         [--model agegender_cli/assets/caffenet] [--faces 1024] [--tolerance 0.3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from agegender_cli.archs.caffenet.deploy import NET_NAMES, blob_from_faces, net_files
from agegender_cli.archs.caffenet.int8 import RANGES_FILE, calibrate
from agegender_cli.archs.caffenet.onnx_engine import load_onnx_net, onnx_probs
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.inputs import load_image
from agegender_cli.fileio import atomic_write_text
from agegender_cli.labels import expected_years

BATCH = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=Path("agegender_cli/assets/caffenet"))
    parser.add_argument("--faces", type=int, default=1024, help="train faces to calibrate on")
    parser.add_argument("--tolerance", type=float, default=0.3, help="most points a task may lose on val")
    return parser.parse_args(argv)


def spread(items: list, n: int) -> list:
    """n items spaced evenly through the list (all of them when it is shorter)."""
    if len(items) <= n:
        return items
    return [items[i * len(items) // n] for i in range(n)]


def scores(nets: dict, faces: list[np.ndarray], records: list) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Val accuracy of each task (faces with an age class) and the MAE in years where age_net has the output;
    each task's predicted classes."""
    outputs: dict[str, list] = {}
    for start in range(0, len(faces), BATCH):
        blob = blob_from_faces(faces[start:start + BATCH])
        for task, net in nets.items():
            found = onnx_probs(net, blob)
            outputs.setdefault(task, []).append(found["probs"])
            if "years" in found:
                outputs.setdefault("years", []).append(expected_years(found["years"]))
    classed = np.array([r.age_class is not None for r in records])
    truth = {"gender": np.array([-1 if r.gender is None else r.gender for r in records]),
             "age": np.array([-1 if r.age_class is None else r.age_class for r in records])}
    result, classes = {}, {}
    for task in NET_NAMES:
        predicted = classes[task] = np.concatenate(outputs[task]).argmax(1)
        kept = classed & (truth[task] >= 0)
        result[f"{task}_acc"] = float(np.mean(predicted[kept] == truth[task][kept]))
    if "years" in outputs:
        ages = np.array([np.nan if r.age is None else r.age for r in records], dtype=float)
        years = np.concatenate(outputs["years"])
        result["mae"] = float(np.nanmean(np.abs(years - ages)))
    return result, classes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    train = spread(read_manifest(args.manifest, "train"), args.faces)
    val = read_manifest(args.manifest, "val")
    doc = calibrate(args.model, [load_image(r.path) for r in train], batch_size=BATCH, log=log,
                    source=f"{len(train)} train faces of {args.manifest}, evenly spaced")
    val_faces = [load_image(r.path) for r in val]
    check, classes = {}, {}
    for precision in ("fp32", "int8"):
        nets = {task: load_onnx_net(*net_files(args.model, task), log,
                                    doc["nets"][task]["ranges"] if precision == "int8" else None)[0]
                for task in NET_NAMES}
        check[precision], classes[precision] = scores(nets, val_faces, val)
    moved = {key: 100 * (check["int8"][key] - check["fp32"][key]) for key in check["fp32"] if key.endswith("_acc")}
    same = {task: float(np.mean(classes["int8"][task] == classes["fp32"][task])) for task in NET_NAMES}
    doc["val_check"] = {"faces": len(val), **check, "points": moved, "same_class": same}
    print(json.dumps(doc["val_check"], indent=2))
    worst = min(moved.values())
    if worst < -args.tolerance:
        print(f"int8 loses {-worst:.2f} points on val (more than {args.tolerance}): {RANGES_FILE} not written",
              file=sys.stderr)
        return 1
    atomic_write_text(args.model / RANGES_FILE, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.model / RANGES_FILE} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
