"""Write agegender_cli/assets/MODEL_CARD.md from the bundled models' own metadata and test metrics.

Usage: python scripts/model_card.py --manifest data/utkface/manifest.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from agegender_cli.archs.caffenet import ARCH as CAFFENET
from agegender_cli.archs.facenet import ARCH as FACENET
from agegender_cli.archs.registry import names
from agegender_cli.config import ASSETS_DIR as ASSETS
from agegender_cli.config import EvaluateConfig
from agegender_cli.fileio import atomic_write_text
from agegender_cli.service import evaluate

BUNDLED_FACENET, BUNDLED_CAFFENET = FACENET.bundled, CAFFENET.bundled


def line(r: dict) -> str:
    g, a = r["gender"], r["age"]
    return (f"| {r['n']} | {100 * g['accuracy']:.2f}% | {g['auc']:.3f} | {100 * a['accuracy']:.2f}% | "
            f"{100 * a['one_off']:.2f}% | {a['macro_f1']:.3f} | {a['mean_error']:.3f} | {a['std_error']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    args = parser.parse_args()
    results = {arch: evaluate(EvaluateConfig(archs=(arch,), manifest=args.manifest, split="test"))
               for arch in names()}
    ckpt = torch.load(BUNDLED_FACENET, weights_only=True)
    c, val = ckpt["config"], ckpt["val_metrics"]
    history = json.loads((BUNDLED_CAFFENET / "history.json").read_text()) \
        if (BUNDLED_CAFFENET / "history.json").exists() else []
    header = "| test images | gender acc. | gender AUC | age acc. | one-off | age macro-F1 | class error | std |"
    text = f"""# Bundled models

Both were trained on `../shared/data/utkface_crop_part1` (UTKFace "crop_part1", non-commercial research
licence), indexed by `agegender dataset` with the defaults (8 age classes, gaps dropped, stratified
70/10/20 split, seed 0: 4,546 train / 649 val / 1,299 test images). Every choice was made on the val
split; the test split was used once, for the numbers below (`python scripts/model_card.py`).

## facenet.pt (architecture A)

- Backbone: InceptionResnetV1, `{ckpt['backbone']['name']}` weights (sha256 of the converted state dict
  `{ckpt['backbone']['sha256']}`), frozen up to `{c['unfreeze']}`; fetched by the weights resolver.
- Trained: `{c['unfreeze']}` onwards + `{c['head']}` heads; preprocessing `{ckpt['preprocess']['name']}`;
  {c['views']} cached augmented views per image; Adam lr {c['lr']}, weight decay {c['weight_decay']},
  label smoothing {c['label_smoothing']}, batch {c['batch_size']}, best epoch {ckpt['epoch']} chosen by
  val {c.get('select', 'loss')}.
- Val: gender {val.get('gender_acc', float('nan')):.4f}, age {val.get('age_acc', float('nan')):.4f}.
- Stored in fp16 ({BUNDLED_FACENET.stat().st_size / 1e6:.1f} MB); computed in bf16 autocast or fp32.

{header}
|---|---|---|---|---|---|---|---|
{line(results['facenet'])}

## caffenet/ (architecture B)

- `age_net` and `gender_net`: the Levi & Hassner (2015) deploy nets, trained from scratch in PyTorch,
  exported to `.caffemodel` with fp16 blobs, run here by `cv2.dnn` ({len(history)} epochs; best val epoch per task).
- Input: 227x227 BGR minus mean (78.4263377603, 87.7689143744, 114.895847746), swapRB=False.

{header}
|---|---|---|---|---|---|---|---|
{line(results['caffenet'])}

Limits: UTKFace crops are aligned, frontal-ish faces; on whole photos the crop framing of `predict`
imitates them. Age classes between the ranges (3, 7, 14-24, 33-37, 44-47, 54-59) are not represented.
Accuracy differs across UTKFace's race groups: `agegender compare` prints the largest gap.
"""
    atomic_write_text(ASSETS / "MODEL_CARD.md", text)
    print(text)


if __name__ == "__main__":
    main()
