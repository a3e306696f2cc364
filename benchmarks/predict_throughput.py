"""Images/s of `predict --detector none --arch both` on UTKFace crops, against the forward-only ceiling.

Prints: end-to-end images/s (decoding in threads, batching, both models, JSON records), the forward-only
ceiling (decoded images in memory, both predictors), their ratio, the OpenCV demos' one-image-at-a-time
fp32 loop, and the accuracy change of bf16 against fp32 on the same images.
Usage: python benchmarks/predict_throughput.py [--images 1000] [--data ../shared/data/utkface_crop_part1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from agegender_cli.archs.registry import load_predictor, names
from agegender_cli.config import ModelOptions, PredictConfig
from agegender_cli.data.utkface import Record, label_record
from agegender_cli.faces.inputs import load_image
from agegender_cli.service import predict


def accuracy(prediction, records) -> tuple[float, float]:
    gender = np.mean(prediction.gender_prob.argmax(1) == np.array([r.gender for r in records]))
    age = np.mean(prediction.age_prob.argmax(1) == np.array([r.age_class for r in records]))
    return float(gender), float(age)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/utkface_crop_part1"))
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    records = [r for r in (label_record(p, "drop") for p in sorted(args.data.iterdir())) if isinstance(r, Record)]
    records = records[:: max(1, len(records) // args.images)][: args.images]
    paths = [str(r.path) for r in records]
    faces = [load_image(r.path) for r in records]

    fast_options = ModelOptions(engine="torch", precision="bf16", batch_size=args.batch_size)
    fast = {a: load_predictor(a, fast_options) for a in names()}
    for predictor in fast.values():  # warm-up
        predictor.predict(faces[:8])
    started = time.perf_counter()
    fast_out = {a: p.predict(faces) for a, p in fast.items()}
    ceiling = len(faces) / (time.perf_counter() - started)

    cfg = PredictConfig(inputs=tuple(paths), archs=names(), detector="none", options=fast_options)
    rows = []
    started = time.perf_counter()
    predict(cfg, rows.append)
    end_to_end = len(paths) / (time.perf_counter() - started)

    exact_options = ModelOptions(engine="opencv", precision="fp32", batch_size=args.batch_size)
    exact = {a: load_predictor(a, exact_options) for a in names()}
    exact_out = {a: p.predict(faces) for a, p in exact.items()}

    demo = exact["caffenet"]
    n_demo = min(100, len(faces))
    started = time.perf_counter()
    for face in faces[:n_demo]:
        demo.predict([face])
    demo_rate = n_demo / (time.perf_counter() - started)

    print(f"{len(paths)} UTKFace crops, batch {args.batch_size}, both architectures")
    print(f"end to end (predict --detector none --arch both, bf16): {end_to_end:7.1f} images/s")
    print(f"forward-only ceiling (decoded in memory, bf16):        {ceiling:7.1f} images/s")
    print(f"ratio end to end / ceiling:                             {end_to_end / ceiling:7.2f}")
    print(f"OpenCV demo loop (cv2.dnn fp32, one face at a time):   {demo_rate:7.1f} images/s (caffenet only)")
    for arch in names():
        g_fast, a_fast = accuracy(fast_out[arch], records)
        g_exact, a_exact = accuracy(exact_out[arch], records)
        reference = "fp32" if arch == "facenet" else "cv2.dnn fp32"
        same = np.mean(fast_out[arch].age_prob.argmax(1) == exact_out[arch].age_prob.argmax(1))
        print(f"{arch}: gender {g_fast:.4f} vs {g_exact:.4f} ({reference}), change {100 * (g_fast - g_exact):+.2f} "
              f"points; age {a_fast:.4f} vs {a_exact:.4f}, change {100 * (a_fast - a_exact):+.2f} points; "
              f"same age class {same:.4f}")


if __name__ == "__main__":
    main()
