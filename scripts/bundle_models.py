"""Copy trained models into agegender_cli/assets (fp16 for facenet's tail), the bundled defaults.

Usage: python scripts/bundle_models.py --facenet runs/c/model.pt --caffenet runs/caffenet
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from agegender_cli.archs.caffenet import ARCH as CAFFENET
from agegender_cli.archs.facenet import ARCH as FACENET
from agegender_cli.archs.facenet.predictor import load_checkpoint
from agegender_cli.fileio import atomic_torch_save

BUNDLED_FACENET, BUNDLED_CAFFENET = FACENET.bundled, CAFFENET.bundled


def bundle_facenet(source: Path) -> None:
    ckpt = load_checkpoint(source)
    ckpt["state_dict"] = {k: v.half() if v.is_floating_point() and "running_" not in k else v
                          for k, v in ckpt["state_dict"].items()}
    ckpt["storage"] = "fp16 (batch-norm statistics fp32)"
    atomic_torch_save(ckpt, BUNDLED_FACENET)
    print(f"{BUNDLED_FACENET}: {BUNDLED_FACENET.stat().st_size / 1e6:.1f} MB")


def bundle_caffenet(folder: Path) -> None:
    BUNDLED_CAFFENET.mkdir(parents=True, exist_ok=True)
    for name in ("age_net.prototxt", "age_net.caffemodel", "gender_net.prototxt", "gender_net.caffemodel"):
        shutil.copyfile(folder / name, BUNDLED_CAFFENET / name)
        print(f"{BUNDLED_CAFFENET / name}: {(BUNDLED_CAFFENET / name).stat().st_size / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--facenet", type=Path)
    parser.add_argument("--caffenet", type=Path)
    args = parser.parse_args()
    if args.facenet:
        bundle_facenet(args.facenet)
    if args.caffenet:
        bundle_caffenet(args.caffenet)


if __name__ == "__main__":
    main()
