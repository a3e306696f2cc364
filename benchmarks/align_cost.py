"""What aligning a face costs next to the box crop it replaced, and next to a photo's whole time in `predict`.

Prints the machine, then per face the box crop (crop_face, "utkface" framing) and the alignment (face_crop: a
similarity warp onto the chips' template), each the mean of --repeats passes over the faces MTCNN finds in
--photos photos, and the added share of a photo's time, taking `--photo-ms` (measured by `predict_throughput.py
--all-engines`: 34 ms a photo under auto on a 2-core AMX Xeon) as the whole.

Usage: python benchmarks/align_cost.py [--photos 100] [--data ../shared/data/aaf_train/images] [--photo-ms 34]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from machine import print_machine

from agegender_cli.faces.detection import crop_face, face_crop, make_detector
from agegender_cli.faces.inputs import load_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/aaf_train/images"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--photo-ms", type=float, default=34.0)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: no such folder (give --data)")
    paths = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [load_image(p) for p in paths[:: max(1, len(paths) // args.photos)][: args.photos]]
    print_machine("onnx (MTCNN)", "fp32", "cpu")
    found = make_detector("mtcnn", engine="onnx").detect(images)
    faces = [(image, faces[0]) for image, faces in zip(images, found, strict=True) if faces]
    seconds = {}
    for name, crop in (("box crop", lambda image, face: crop_face(image, face.box, framing="utkface")),
                       ("aligned", lambda image, face: face_crop(image, face, "utkface"))):
        start = time.perf_counter()
        for _ in range(args.repeats):
            for image, face in faces:
                crop(image, face)
        seconds[name] = (time.perf_counter() - start) / args.repeats / len(faces)
        print(f"{name:9s} {seconds[name] * 1000:7.3f} ms a face ({len(faces)} faces, {args.repeats} passes)")
    added = (seconds["aligned"] - seconds["box crop"]) * 1000 * len(faces) / len(images)
    print(f"alignment adds {added:.3f} ms a photo: {added / args.photo_ms:.1%} of {args.photo_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
