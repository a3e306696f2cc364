"""Join manifests written by `agegender dataset` into one (each image keeps its split; an image listed twice is
refused), e.g. UTKFace with the in-the-wild sets for `agegender train`.

Usage: python scripts/merge_manifests.py data/utkface/manifest.csv data/aaf_train/manifest.csv \
         data/lfw_gender/manifest.csv --out data/wild/manifest.csv
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from agegender_cli.data.utkface import read_manifest, write_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifests", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    records, seen = [], {}
    for manifest in args.manifests:
        for record in read_manifest(manifest):
            real = os.path.realpath(record.path)
            if real in seen:
                raise SystemExit(f"{record.path}: in {seen[real]} and {manifest}; give each image once")
            seen[real] = manifest
            records.append(record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(records, args.out)
    counts = Counter((Path(r.source).name or "?", r.split) for r in records)
    for (source, split), n in sorted(counts.items()):
        print(f"{source:24s} {split:6s} {n:6d}")
    print(f"{args.out}: {len(records)} images")


if __name__ == "__main__":
    main()
