"""Images/s of `predict --ray` with 1 and 2 model actors on a local Ray, next to local `predict` on the same files.

Every run is end to end as a user sees it (model loading included; the local Ray is started once, before the
Ray runs, and its start is printed apart). The Ray runs' records are checked against the local ones. Local
predict runs before and after the Ray runs: on a machine shared with other work, a gap between the two says
how much the load changed meanwhile.
Usage: python benchmarks/ray_scaling.py [--images 2000] [--cpus 2] [--detector none] [--arch both]
           [--data ../shared/data/utkface_crop_part1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import ray

from agegender_cli.archs.registry import parse_archs
from agegender_cli.config import PredictConfig, RayConfig
from agegender_cli.distributed.shards import read_shards
from agegender_cli.service import predict, predict_on_ray


def key(record: dict) -> tuple:
    return record["file"], -1 if record["frame"] is None else record["frame"], record.get("face") or 0


def largest_difference(local: list[dict], remote: list[dict], archs: tuple[str, ...]) -> float:
    """The largest gap between two runs' probabilities, record by record (sorted by file, frame, face)."""
    worst = 0.0
    for a, b in zip(sorted(local, key=key), sorted(remote, key=key), strict=True):
        assert key(a) == key(b), (key(a), key(b))
        for arch in archs:
            if arch in a:
                pairs = [(a[arch]["gender_prob"], b[arch]["gender_prob"])]
                pairs += [(a[arch]["age_probs"][c], b[arch]["age_probs"][c]) for c in a[arch]["age_probs"]]
                worst = max(worst, *(abs(x - y) for x, y in pairs))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--detector", default="none")
    parser.add_argument("--arch", default="both")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/utkface_crop_part1"))
    args = parser.parse_args()

    paths = tuple(str(p) for p in sorted(args.data.glob("*.jpg"))[: args.images])
    archs = parse_archs(args.arch)
    cfg = PredictConfig(inputs=paths, archs=archs, detector=args.detector)
    print(f"{len(paths)} UTKFace crops, --detector {args.detector}, --arch {','.join(archs)}; "
          f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), local Ray of {args.cpus} CPUs")

    local: list[dict] = []
    local_rate = run_locally(cfg, local.append)
    print(f"local predict:          {local_rate:6.1f} images/s")

    started = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
    print(f"local Ray start:        {time.perf_counter() - started:6.1f} s (not in the rates below)")
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        for actors in (1, 2):
            out = Path(folder) / f"actors{actors}"
            started = time.perf_counter()
            summary = predict_on_ray(cfg, RayConfig(actors=actors, out=out))
            rates[actors] = len(paths) / (time.perf_counter() - started)
            gap = largest_difference(local, read_shards(out), archs)
            print(f"--ray, {actors} actor{'s' if actors > 1 else ' '}:        {rates[actors]:6.1f} images/s "
                  f"({summary['records']} records, largest probability gap to local {gap:.1e})")
    ray.shutdown()
    local_after = run_locally(cfg, lambda _record: None)
    print(f"local predict again:    {local_after:6.1f} images/s")
    local_mean = (local_rate + local_after) / 2
    print(f"2 actors / 1 actor:     {rates[2] / rates[1]:6.2f}")
    print(f"1 actor / local (mean): {rates[1] / local_mean:6.2f}")
    print(f"2 actors / local (mean):{rates[2] / local_mean:6.2f}")


def run_locally(cfg: PredictConfig, emit) -> float:
    """Images/s of local predict, end to end."""
    started = time.perf_counter()
    predict(cfg, emit)
    return len(cfg.inputs) / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
