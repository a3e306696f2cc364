"""Measure the 5-point face template of the training chips: where MTCNN puts the eyes, nose and mouth corners on
UTKFace's train chips, averaged. faces/align.py maps every detected face onto it (a similarity transform of its
5 landmarks), so that a face found in a photo reaches the models framed as the chips they were trained on.

Each chip is padded by detection.CROP_PAD of its side in its mean colour (MTCNN misses faces that fill the image),
searched by the project's MTCNN, and its largest face's landmarks (chip coordinates) are kept; the template is
their mean, printed with the spread, as Python to paste into faces/align.py. Train faces only.

Usage: python scripts/align_template.py --manifest data/utkface/manifest.csv [--faces 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agegender_cli.data.utkface import read_manifest
from agegender_cli.faces.detection import CROP_PAD, _pad, make_detector
from agegender_cli.faces.inputs import load_image

CHIP = 200


def measure(manifest: Path, count: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean landmarks 5x2, their standard deviation 5x2, chips used) over `count` train chips of `manifest`."""
    records = read_manifest(manifest, "train")
    records = records[:: max(1, len(records) // count)][:count]
    detector = make_detector("mtcnn", min_face=20, min_score=0.9, device="cpu", engine="onnx")
    points = []
    for start in range(0, len(records), 64):
        images = [load_image(r.path) for r in records[start:start + 64]]
        padded, pads = [], []
        for image in images:
            if image.shape[:2] != (CHIP, CHIP):
                continue
            pad = int(round(CROP_PAD * CHIP))
            padded.append(_pad(image, pad, [int(v) for v in image.reshape(-1, 3).mean(0)]))
            pads.append(pad)
        for pad, faces in zip(pads, detector.detect(padded), strict=True):
            face = max(faces, key=lambda d: d.width * d.height, default=None)
            if face is not None and face.landmarks is not None:
                points.append(np.array(face.landmarks, np.float64) - pad)
    found = np.stack(points)
    return found.mean(0), found.std(0), len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--faces", type=int, default=2000)
    args = parser.parse_args()
    mean, spread, used = measure(args.manifest, args.faces)
    print(f"# {used} train chips of {args.manifest}; landmark spread (std, px): "
          + ", ".join(f"{s:.1f}" for s in spread.mean(1)))
    print("TEMPLATE = np.array([" + ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in mean) + "], np.float32)")


if __name__ == "__main__":
    main()
