"""Does accuracy hold on whole photos? Test-split faces pasted into larger scenes, detected, re-cropped.

For each face: the crop alone (--detector none) against the same face pasted at a random place and size
into a 640x480 noisy scene, found by the detector and cropped with the training framing. Prints the
detection rate and gender/age accuracy of both routes for each architecture.
Usage: python benchmarks/whole_photo_accuracy.py [--manifest data/utkface/manifest.csv] [--images 300]
With --write DIR it writes the scenes and a labels.csv (path, age, gender, race, the face's box, split test)
instead, for `agegender dataset DIR --labels DIR/labels.csv --split-from-source` and `evaluate --detector`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from agegender_cli.archs.registry import framing as framing_for
from agegender_cli.archs.registry import load_predictor
from agegender_cli.config import ModelOptions
from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.detection import box_iou, crop_face, make_detector
from agegender_cli.faces.inputs import load_image


def scene(face: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    canvas = cv2.GaussianBlur(rng.integers(40, 215, (480, 640, 3), dtype=np.uint8), (0, 0), 6)
    side = int(rng.integers(110, 280))
    x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
    canvas[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return canvas, (x, y, x + side, y + side)


def write_scenes(records, folder: Path, rng: np.random.Generator) -> None:
    """Each face pasted into a scene, saved as JPEG, and one labels.csv row with the pasted box."""
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    rows = ["path,age,gender,race,x1,y1,x2,y2,split"]
    for number, record in enumerate(records):
        photo, (x1, y1, x2, y2) = scene(load_image(record.path), rng)
        name = f"photos/{number:05d}.jpg"
        cv2.imwrite(str(folder / name), photo, [cv2.IMWRITE_JPEG_QUALITY, 92])
        race = "" if record.race is None else record.race
        rows.append(f"{name},{record.age},{record.gender},{race},{x1},{y1},{x2},{y2},test")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    print(f"{len(records)} scenes and labels.csv written to {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--write", type=Path, help="write the scenes and labels.csv into this folder")
    args = parser.parse_args()
    records = read_manifest(args.manifest, "test", both_labels=True)
    records = records[:: max(1, len(records) // args.images)][: args.images]
    rng = np.random.default_rng(0)
    if args.write:
        write_scenes(records, args.write, rng)
        return
    detector = make_detector(args.detector)
    faces, crops, found = [], [], []
    for record in records:
        face = load_image(record.path)
        photo, pasted = scene(face, rng)
        detections = detector.detect([photo])[0]
        best = max(detections, key=lambda d: box_iou(d.box, pasted), default=None)
        if best is None or box_iou(best.box, pasted) < 0.3:
            found.append(False)
            continue
        found.append(True)
        faces.append(face)
        crops.append((photo, best.box))
    kept = [r for r, ok in zip(records, found, strict=True) if ok]
    gender = np.array([r.gender for r in kept])
    age = np.array([r.age_class for r in kept])
    print(f"{len(records)} test faces pasted into scenes; {args.detector} found {len(kept)} ({np.mean(found):.1%})")
    for arch in ("facenet", "caffenet"):
        predictor = load_predictor(arch, ModelOptions(engine="torch"))
        framing = framing_for(arch, args.detector, ModelOptions())
        direct = predictor.predict(faces)
        detected = predictor.predict([crop_face(photo, box, framing=framing) for photo, box in crops])
        for name, p in (("crop as given", direct), ("detected in the scene", detected)):
            print(f"{arch:9s} {name:22s} gender {np.mean(p.gender_prob.argmax(1) == gender):.4f}  "
                  f"age {np.mean(p.age_prob.argmax(1) == age):.4f}  "
                  f"one-off {np.mean(np.abs(p.age_prob.argmax(1) - age) <= 1):.4f}")


if __name__ == "__main__":
    main()
