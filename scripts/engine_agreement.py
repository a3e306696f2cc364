"""Same answer on every engine: class agreement of each engine and precision with PyTorch fp32, on a split's faces.

Both bundled models (or --model ARCH=PATH) run on the split's faces through every path the tool offers on a CPU:
PyTorch fp32 (the reference; for caffenet also cv2.dnn, the Caffe reference), PyTorch bf16 (emulated, and slow,
on a CPU without native bf16), ONNX Runtime fp32 and ONNX Runtime int8 (each model's shipped ranges). For each path
and task it prints the share of faces given the reference's class, the largest probability gap, and accuracy, as a
Markdown table (stdout) and, with --json PATH, as JSON. Nothing here is trained or tuned on the faces it scores.

Usage: python scripts/engine_agreement.py --manifest data/utkface/manifest.csv [--split test] [--limit N]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from agegender_cli.archs.registry import load_predictor
from agegender_cli.config import ModelOptions
from agegender_cli.cpu import this_cpu
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.inputs import load_image

PATHS = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"))
EXTRA = {"caffenet": (("opencv", "fp32"),)}


def agreement(reference, other, truth: dict[str, np.ndarray]) -> dict:
    """Per task: same class as the reference (share), largest probability gap, accuracy on the labelled faces."""
    found = {}
    for task in ("gender", "age"):
        ref, got = getattr(reference, f"{task}_prob"), getattr(other, f"{task}_prob")
        labelled = truth[task] >= 0
        found[task] = {"same_class": float(np.mean(ref.argmax(1) == got.argmax(1))),
                       "max_prob_gap": float(np.abs(ref - got).max()),
                       "accuracy": float(np.mean(got.argmax(1)[labelled] == truth[task][labelled]))}
    return found


def run(manifest: Path, split: str, limit: int | None, archs: tuple[str, ...]) -> dict:
    records = read_manifest(manifest, split)
    if limit:
        records = records[:: max(1, len(records) // limit)][:limit]
    faces = [load_image(r.path) for r in records]
    truth = {"gender": np.array([-1 if r.gender is None else r.gender for r in records]),
             "age": np.array([-1 if r.age_class is None else r.age_class for r in records])}
    table: dict = {}
    for arch in archs:
        reference = load_predictor(arch, ModelOptions(engine="torch", precision="fp32")).predict(faces)
        table[arch] = {"torch/fp32": agreement(reference, reference, truth)}
        for engine, precision in PATHS[1:] + EXTRA.get(arch, ()):
            start = time.perf_counter()
            got = load_predictor(arch, ModelOptions(engine=engine, precision=precision)).predict(faces)
            table[arch][f"{engine}/{precision}"] = {**agreement(reference, got, truth),
                                                   "seconds": round(time.perf_counter() - start, 1)}
            print(f"{arch} {engine}/{precision} done", file=sys.stderr, flush=True)
    return {"manifest": str(manifest), "split": split, "faces": len(faces), "cpu": this_cpu().label,
            "reference": "torch/fp32", "results": table}


def markdown(result: dict) -> str:
    lines = [f"{result['faces']:,} {result['split']} faces of {result['manifest']}; reference PyTorch fp32; "
             f"{result['cpu']}", "",
             "| model | engine/precision | gender: same class | age: same class | largest prob. gap | "
             "gender acc. | age acc. |", "|---|---|---|---|---|---|---|"]
    for arch, paths in result["results"].items():
        for path, row in paths.items():
            gap = max(row["gender"]["max_prob_gap"], row["age"]["max_prob_gap"])
            lines.append(f"| {arch} | {path} | {row['gender']['same_class']:.2%} | {row['age']['same_class']:.2%} | "
                         f"{gap:.2g} | {row['gender']['accuracy']:.2%} | {row['age']['accuracy']:.2%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--limit", type=int, default=None, help="every k-th face, this many at most")
    parser.add_argument("--arch", action="append", choices=("facenet", "caffenet"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        parser.error(f"{args.manifest}: no such manifest (make demo writes data/utkface/manifest.csv)")
    result = run(args.manifest, args.split, args.limit, tuple(args.arch or ("facenet", "caffenet")))
    print(markdown(result))
    if args.json:
        from agegender_cli.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
