"""`predict --ray` against local `predict` on the same photos, as users run them (whole commands, end to end).

1. Per-node efficiency: local `predict` and `predict --ray` in turn (paired runs), on a cluster started the usual
   way (`ray start --head` with no CPUs of its own, and one worker node with this machine's CPUs), joined by its
   address with token authentication; and on a local Ray started by each run (also without Ray's own start and
   stop, which a node of a running cluster does not pay). The time split of each Ray run comes from its _SUCCESS
   (listing, joining, model load per actor, decoding, inference, writing).
2. A scaling curve: a head and 1, 2, ... worker nodes of 1 CPU each (`ray start --address ... --num-cpus 1`), each
   against local `predict --threads 1` (what one such node does alone).
Every Ray run's records are checked against local predict's. Figures are from one run of this script: compare
only what it prints together.
Usage: python benchmarks/ray_scaling.py [--images 1500] [--pairs 3] [--detector none] [--arch both] [--workers 1,2]
           [--data ../shared/data/utkface_crop_part1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ray_cluster import start_cluster  # noqa: E402

from agegender_cli.distributed.shards import read_shards  # noqa: E402

AGEGENDER = str(Path(sys.executable).with_name("agegender"))


def key(record: dict) -> tuple:
    return record["file"], -1 if record["frame"] is None else record["frame"], record.get("face") or 0


def largest_difference(local: list[dict], remote: list[dict], archs: list[str]) -> float:
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


def run(args: list[str], listing: Path, env: dict | None = None, stdout=subprocess.DEVNULL) -> float:
    """Seconds of one whole command, paths on stdin."""
    started = time.perf_counter()
    with open(listing, "rb") as paths:
        done = subprocess.run([AGEGENDER, *args], stdin=paths, stdout=stdout, stderr=subprocess.PIPE, env=env)
    if done.returncode != 0:
        raise SystemExit(f"agegender {' '.join(args)} failed:\n{done.stderr.decode()[-2000:]}")
    return time.perf_counter() - started


def timing(out: Path) -> dict:
    return json.loads((out / "_SUCCESS").read_text())["timing"]


def split(out: Path) -> str:
    return ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in timing(out).items() if k.endswith("_s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--detector", default="none")
    parser.add_argument("--arch", default="both")
    parser.add_argument("--workers", default="1,2", help="worker nodes of 1 CPU for the curve ('' to skip it)")
    parser.add_argument("--curve-only", action="store_true", help="skip part 1")
    parser.add_argument("--pairs", type=int, default=3, help="runs of local predict and --ray, in turn (part 1)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/utkface_crop_part1"))
    args = parser.parse_args()

    cpus = len(os.sched_getaffinity(0))
    paths = sorted(str(p.resolve()) for p in args.data.glob("*.jpg"))[: args.images]
    common = ["--detector", args.detector, "--arch", args.arch]
    archs = ["facenet", "caffenet", "fused"] if args.arch == "both" else args.arch.split(",")
    print(f"{len(paths)} UTKFace crops, --detector {args.detector}, --arch {args.arch}; {cpus} cores "
          f"({platform.processor() or platform.machine()}); whole commands, paths on stdin")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        listing = work / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        if not args.curve_only:
            node_efficiency(work, listing, common, archs, paths, cpus, args.pairs)
        curve(work, listing, common, paths, [int(n) for n in args.workers.split(",") if n])


def node_efficiency(work: Path, listing: Path, common: list[str], archs: list[str], paths: list[str],
                    cpus: int, pairs: int) -> None:
    """Local predict and --ray in turn (this machine's speed drifts between minutes: each ratio is of a pair)."""
    local_out = work / "local.jsonl"
    with open(local_out, "wb") as out:
        run(["predict", "-", *common, "--json"], listing, stdout=out)  # a warm-up: the weights, the disk cache
    local = [json.loads(line) for line in local_out.read_text().splitlines()]
    print(f"\n1. one node of {cpus} CPUs, {pairs} pairs (local predict, then --ray), medians (min-max)")
    cluster = start_cluster(workers=1, cpus=cpus)
    try:
        out = work / "cluster"
        ray_args = ["predict", "-", *common, "--ray", "--ray-address", cluster.address, "--out", str(out)]
        paired(ray_args, listing, common, paths, pairs, out, "a started cluster (head + 1 node)", cluster.env())
        print(f"   probability gap to local predict: {largest_difference(local, read_shards(out), archs):.1e}")
    finally:
        cluster.stop()
    out = work / "local-ray"
    paired(["predict", "-", *common, "--ray", "--out", str(out)], listing, common, paths, pairs, out,
           "a local Ray started by each run")


def paired(ray_args: list[str], listing: Path, common: list[str], paths: list[str], pairs: int, out: Path,
           what: str, env: dict | None = None) -> None:
    local_s, ray_s, splits, ray_start_stop = [], [], [], []
    for _ in range(pairs):
        local_s.append(run(["predict", "-", *common, "--json"], listing))
        ray_s.append(run(ray_args, listing, env=env))
        splits.append(split(out))
        ray_start_stop.append(timing(out).get("connect_s", 0) + timing(out).get("ray_stop_s", 0))
    ratios = [a / b for a, b in zip(local_s, ray_s, strict=True)]
    print(f"--ray, {what}: local {median(local_s):.1f} s, --ray {median(ray_s):.1f} s "
          f"({len(paths) / median(ray_s):.1f} images/s); {median(ratios):.2f} x local "
          f"({min(ratios):.2f}-{max(ratios):.2f})")
    if max(ray_start_stop) > 0.5:  # a Ray started and stopped by the run: the node's work is the rest
        without = [a / (b - c) for a, b, c in zip(local_s, ray_s, ray_start_stop, strict=True)]
        print(f"   of which Ray's own start and stop {median(ray_start_stop):.1f} s; without them "
              f"{median(without):.2f} x local ({min(without):.2f}-{max(without):.2f})")
    print(f"   time split of the last run (s): {splits[-1]}")


def curve(work: Path, listing: Path, common: list[str], paths: list[str], workers: list[int]) -> None:
    if not workers:
        return
    one_core = run(["--threads", "1", "predict", "-", *common, "--json"], listing)
    print(f"\n2. scaling: worker nodes of 1 CPU each (against local predict --threads 1: {one_core:.1f} s, "
          f"{len(paths) / one_core:.1f} images/s)")
    print(f"{'nodes':>5s} {'seconds':>8s} {'images/s':>9s} {'per node':>9s} {'x one core':>11s}")
    for n in workers:
        cluster = start_cluster(workers=n, cpus=1)
        try:
            out = work / f"curve{n}"
            seconds = run(["predict", "-", *common, "--ray", "--ray-address", cluster.address, "--out",
                           str(out)], listing, env=cluster.env())
        finally:
            cluster.stop()
        rate = len(paths) / seconds
        print(f"{n:5d} {seconds:8.1f} {rate:9.1f} {rate / n:9.1f} {one_core / seconds / n:11.2f}   "
              f"split: {split(out)}")


if __name__ == "__main__":
    main()
