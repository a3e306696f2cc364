"""Which --detector should `predict` default to? Every detector on face crops and on whole photos.

Crops: UTKFace crops of one manifest split (a seeded sample), given to the detector as they are. Photos: other
faces of that split pasted into 640x480 scenes (benchmarks/whole_photo_accuracy.py's scenes). Each image runs
through predict's own path (make_detector, records.detect_and_crop, the bundled models); the face scored is the
largest one in a crop and the one over the pasted box (IoU >= 0.3) in a scene; an image without it counts as
wrong, so the accuracies are over all images. Prints one table and, for each architecture and task, how far the
default (auto) is from the best explicit detector.
Usage: python benchmarks/detector_choice.py [--split test] [--crops 300] [--scenes 200] [--threads 1]
       [--dump rows.csv]  (per image: the face's share of the image, cut by the edge, and which routes were right)
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_photo_accuracy import scene  # noqa: E402

from agegender_cli.archs.registry import framing as framing_for  # noqa: E402
from agegender_cli.archs.registry import load_predictor  # noqa: E402
from agegender_cli.config import DETECTORS, ModelOptions, PredictConfig  # noqa: E402
from agegender_cli.data.utkface import read_manifest  # noqa: E402
from agegender_cli.faces import records as face_records  # noqa: E402
from agegender_cli.faces.detection import box_iou, make_detector  # noqa: E402
from agegender_cli.faces.inputs import Frame, load_image  # noqa: E402

ARCHS = ("facenet", "caffenet")
TOLERANCE = 0.005  # the default may lose at most half a point against the best explicit choice


def samples(manifest: Path, split: str, crops: int, scenes: int, seed: int):
    """(crop records, scene records, scene images with their pasted boxes), disjoint, seeded."""
    records = read_manifest(manifest, split, both_labels=True)
    order = np.random.default_rng(seed).permutation(len(records))
    crop_records = [records[i] for i in order[:crops]]
    scene_records = [records[i] for i in order[crops:crops + scenes]]
    rng = np.random.default_rng(seed + 1)
    return crop_records, scene_records, [scene(load_image(r.path), rng) for r in scene_records]


def chosen_faces(frames: list[Frame], detector, framings: dict, pasted: list | None):
    """Per frame: the index of the scored face among the crops (None: not found), the face's share of the
    image and whether its box leaves the image; and the crops of every face."""
    detections, owners, crops = face_records.detect_and_crop(frames, detector, framings)
    start, picks = 0, []
    for n, (frame, found) in enumerate(zip(frames, detections, strict=True)):
        height, width = frame.image.shape[:2]
        if pasted is None:
            best = max(range(len(found)), key=lambda k: found[k].width * found[k].height, default=None)
        else:
            best = max(range(len(found)), key=lambda k: box_iou(found[k].box, pasted[n]), default=None)
            if best is not None and box_iou(found[best].box, pasted[n]) < 0.3:
                best = None
        if best is None:
            picks.append((None, 0.0, False))
        else:
            x1, y1, x2, y2 = found[best].box
            cut = x1 < 0 or y1 < 0 or x2 > width or y2 > height
            picks.append((start + best, (x2 - x1) * (y2 - y1) / (width * height), cut))
        start += len(found)
    return picks, crops


def run(images, labels, pasted, name: str, predictors: dict) -> dict:
    """Gender and age right/wrong per image and architecture for one detector (a missed face is wrong)."""
    frames = [Frame(f"image{n}", None, image) for n, image in enumerate(images)]
    detector = make_detector(name)
    framings = {arch: framing_for(arch, name, ModelOptions()) for arch in predictors}
    gender, age = labels
    size = len(images)
    out: dict = {"found": np.zeros(size, bool), "share": np.zeros(size), "cut": np.zeros(size, bool)}
    for arch in predictors:
        out[arch] = {"gender": np.zeros(len(images), bool), "age": np.zeros(len(images), bool)}
    for lo in range(0, len(images), 32):
        picks, crops = chosen_faces(frames[lo:lo + 32], detector, framings, pasted and pasted[lo:lo + 32])
        for arch, predictor in predictors.items():
            prediction = predictor.predict(crops[arch]) if crops[arch] else None
            for n, (k, share, cut) in enumerate(picks, start=lo):
                out["found"][n], out["share"][n], out["cut"][n] = k is not None, share, cut
                if k is not None:
                    out[arch]["gender"][n] = prediction.gender_prob[k].argmax() == gender[n]
                    out[arch]["age"][n] = prediction.age_prob[k].argmax() == age[n]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--crops", type=int, default=300)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dump", type=Path, help="write per-image rows (share, cut, right or wrong) to this CSV")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    crop_records, scene_records, scenes = samples(args.manifest, args.split, args.crops, args.scenes, args.seed)
    predictors = {arch: load_predictor(arch, ModelOptions(engine="torch")) for arch in ARCHS}
    sets = {"crops": ([load_image(r.path) for r in crop_records], crop_records, None),
            "photos": ([image for image, _ in scenes], scene_records, [box for _, box in scenes])}
    default = PredictConfig().detector
    results: dict = {}
    for set_name, (images, recs, pasted) in sets.items():
        labels = (np.array([r.gender for r in recs]), np.array([r.age_class for r in recs]))
        for name in DETECTORS:
            results[set_name, name] = run(images, labels, pasted, name, predictors)
    print(f"{args.split} split, seed {args.seed}: {len(crop_records)} crops, {len(scene_records)} pasted-scene "
          f"photos; accuracy over all images (a missed face is wrong); default --detector {default}")
    print(f"{'images':7s} {'detector':8s} {'found':>6s}" + "".join(f" {a + ' ' + t:>16s}" for a in ARCHS
                                                             for t in ("gender", "age")))
    for (set_name, name), out in results.items():
        cells = "".join(f" {out[a][t].mean():16.4f}" for a in ARCHS for t in ("gender", "age"))
        print(f"{set_name:7s} {name:8s} {out['found'].mean():6.3f}{cells}")
    worst = 0.0
    for set_name in sets:
        for arch in ARCHS:
            for task in ("gender", "age"):
                explicit = {n: results[set_name, n][arch][task].mean() for n in DETECTORS if n != default}
                best = max(explicit, key=explicit.get)
                loss = explicit[best] - results[set_name, default][arch][task].mean()
                worst = max(worst, loss)
                print(f"{set_name:7s} {arch:9s} {task:6s} {default} is {0.0 - loss * 100:+.1f} points against the best "
                      f"explicit ({best})" + ("  ** more than 0.5 points lost" if loss > TOLERANCE else ""))
    print(f"largest loss of the default: {worst * 100:.1f} points")
    if args.dump:
        with args.dump.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["images", "detector", "image", "found", "share", "cut",
                             *(f"{a}_{t}" for a in ARCHS for t in ("gender", "age"))])
            for (set_name, name), out in results.items():
                for n in range(len(out["found"])):
                    right = (int(out[a][t][n]) for a in ARCHS for t in ("gender", "age"))
                    writer.writerow([set_name, name, n, int(out["found"][n]), round(float(out["share"][n]), 4),
                                     int(out["cut"][n]), *right])


if __name__ == "__main__":
    main()
