"""Peak memory of the driver while `predict --ray` lists its inputs: a list of N paths on stdin and a folder tree
of N empty .jpg files, streamed into the listing files the cluster reads, next to what holding the list whole
(as local `predict` does) takes. Each way runs in a fresh process; the figure is its peak resident memory
(ru_maxrss) less the process's own before listing.
Usage: python benchmarks/ray_listing_memory.py [--paths 1000000] [--folder /tmp/listing-bench]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import os, resource, sys, time
from pathlib import Path
from agegender_cli.distributed.journal import Done
from agegender_cli.distributed.listing import write_listing
from agegender_cli.faces.inputs import InputStream, walk_inputs
how, source, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
if how == "held":  # the whole list in memory, as local predict and the earlier --ray held it
    items = list(InputStream(["-"] if source.endswith(".txt") else [source], stdin=open(source)
                             if source.endswith(".txt") else None))
    count = len(items)
else:
    stdin = open(source) if source.endswith(".txt") else None
    listing = write_listing(walk_inputs(["-"] if stdin else [source], stdin=stdin), out, Done(), lambda _: None)
    count = listing.files
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{count} {time.perf_counter() - started:.1f} {(peak - before) / 1024:.0f} {before / 1024:.0f}")
"""


def make_tree(folder: Path, count: int) -> None:
    """`count` empty .jpg files, 1,000 a folder."""
    for n in range(count):
        sub = folder / f"{n // 1000:04d}"
        if n % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        os.close(os.open(sub / f"{n % 1000:03d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "agegender-listing-bench")
    args = parser.parse_args()
    tree = args.folder / "tree"
    if not (tree / f"{(args.paths - 1) // 1000:04d}").is_dir():
        started = time.perf_counter()
        make_tree(tree, args.paths)
        print(f"made {args.paths:,} empty files under {tree} in {time.perf_counter() - started:.0f} s")
    listing = args.folder / "paths.txt"
    with open(listing, "w") as f:
        for folder in sorted(tree.iterdir()):
            f.writelines(f"{folder / name}\n" for name in sorted(os.listdir(folder)))
    print(f"{'input':26s} {'how':34s} {'paths':>9s} {'seconds':>8s} {'peak MiB over start':>20s}")
    for source, label in ((listing, f"{args.paths:,} paths on stdin"), (tree, "a folder tree")):
        for how, words in (("streamed", "streamed into listing files"), ("held", "held whole (local predict)")):
            with tempfile.TemporaryDirectory(dir=args.folder) as out:
                done = subprocess.run([sys.executable, "-c", CHILD, how, str(source), out], capture_output=True,
                                      text=True, check=True)
            count, seconds, peak, start = done.stdout.split()
            print(f"{label:26s} {words:34s} {int(count):9,d} {float(seconds):8.1f} {int(peak):20,d}")
    print(f"(a process of this kind starts at about {start} MiB; ru_maxrss of this machine's kernel, "
          f"{resource.getpagesize()} B pages)")


if __name__ == "__main__":
    main()
