"""Seconds per photo: `service.predict` as scripts called it (models loaded on every call) against
`AgeGender.predict` (loaded once), on the same photo after one untimed warm-up call; checks both give the same
records.

Usage: OMP_NUM_THREADS=1 python benchmarks/api_reuse.py [--image examples/grace_hopper.jpg] [--calls 3]
"""

from __future__ import annotations

import argparse
import time

from agegender_cli import AgeGender, service
from agegender_cli.archs.registry import names
from agegender_cli.config import PredictConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", default="examples/grace_hopper.jpg")
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()

    service.predict(PredictConfig(inputs=(args.image,), archs=names()), lambda _row: None)  # files into the page cache
    reloading = []
    for _ in range(args.calls):
        rows: list[dict] = []
        start = time.perf_counter()
        service.predict(PredictConfig(inputs=(args.image,), archs=names()), rows.append)
        reloading.append(time.perf_counter() - start)
    start = time.perf_counter()
    model = AgeGender(arch="both").load()
    load = time.perf_counter() - start
    kept = []
    for _ in range(args.calls):
        start = time.perf_counter()
        faces = model.predict(args.image)
        kept.append(time.perf_counter() - start)
    assert faces == rows, "the API and service.predict disagree"
    print(f"service.predict, models loaded each call: {', '.join(f'{s:.2f}' for s in reloading)} s per call")
    print(f"AgeGender: load {load:.2f} s once, then {', '.join(f'{s:.2f}' for s in kept)} s per call "
          f"({model.loads} load)")


if __name__ == "__main__":
    main()
