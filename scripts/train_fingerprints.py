"""Store the training-set fingerprints beside each bundled model, for evaluate's training-overlap warning.

The bundled models learned from the train split of data/utkface/manifest.csv (assets/MODEL_CARD.md); each model
gets the sorted 64-bit pixel hashes of those images (data/fingerprints.py), about 113 kB for the 14,349 train
images (the class heads learned from those with an age class, the years heads from all of them).
Usage: python scripts/train_fingerprints.py [--manifest data/utkface/manifest.csv] [--arch facenet --arch caffenet]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agegender_cli.archs import registry
from agegender_cli.data.fingerprints import hash_images, write_fingerprints
from agegender_cli.data.utkface import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--arch", action="append", help="default: every architecture with a bundled model")
    args = parser.parse_args()
    paths = [record.path for record in read_manifest(args.manifest, "train")]
    hashes = hash_images(paths)
    print(f"{len(paths)} train images of {args.manifest}: {len(hashes)} distinct pixel hashes")
    for name in args.arch or registry.names():
        bundled = getattr(registry.get(name), "bundled", None)
        if bundled is None:
            continue
        target = write_fingerprints(hashes, bundled)
        print(f"{target}: {target.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
