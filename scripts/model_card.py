"""Write agegender_cli/assets/MODEL_CARD.md from the bundled models' own metadata and test metrics.

Usage: python scripts/model_card.py --manifest data/utkface/manifest.csv
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from agegender_cli.archs.caffenet import ARCH as CAFFENET
from agegender_cli.archs.facenet import ARCH as FACENET
from agegender_cli.archs.registry import names
from agegender_cli.config import ASSETS_DIR as ASSETS
from agegender_cli.config import EvaluateConfig
from agegender_cli.data.utkface import read_manifest
from agegender_cli.evaluation.metrics import evaluate_predictions
from agegender_cli.fileio import atomic_write_text
from agegender_cli.formatting import with_interval
from agegender_cli.formatting import years as fmt_years
from agegender_cli.service import evaluate_models

BUNDLED_FACENET, BUNDLED_CAFFENET = FACENET.bundled, CAFFENET.bundled


def line(r: dict, label: str) -> str:
    g, a = r["gender"], r["age"]
    return (f"| {label} | {r['n']} | {100 * g['accuracy']:.2f}% | {g['auc']:.3f} | {100 * a['accuracy']:.2f}% | "
            f"{100 * a['one_off']:.2f}% | {a['macro_f1']:.3f} | {a['mean_error']:.3f} | {a['std_error']:.3f} |")


def years_rows(result: dict, info: dict | None) -> str:
    """The age-in-years paragraph and table of one bundled model (empty without a years head)."""
    years = result.get("years")
    if not years or not info:
        return ""
    chosen = info["chosen"]
    ci = years["ci95"]
    return (f"\n\nAge in years: a `{chosen['kind']}` head (label-distribution loss, sigma {chosen['sigma']}) on the "
            f"features the class heads read, trained on {info['train_faces']:,} train faces with an age (gap ages "
            f"included), chosen on {info['val_faces']:,} val faces (val MAE {info['val_mae']:.2f} years; tried: "
            + ", ".join(f"{t['kind']} sigma {t['sigma']}: {t['val_mae']:.2f}" for t in info["tried"])
            + "); the class outputs are unchanged.\n\n| test faces with an age | MAE (years) | median abs. error | "
            "CS@5 | mean signed error |\n|---|---|---|---|---|\n"
            f"| {years['n']} | {fmt_years(years['mae'], ci['mae'])} | {years['median_ae']:.2f} | "
            f"{with_interval(years['cs5'], ci['cs5'])} | {years['bias']:+.2f} |")


def test_metrics(manifest: Path, marker: str) -> tuple[dict, dict]:
    """Per architecture: the test metrics of `agegender evaluate --split test`, and the same on the test
    faces whose path holds `marker` (one pass over the images)."""
    evaluation = evaluate_models(EvaluateConfig(archs=names(), manifest=manifest, split="test"))
    mask = np.array([marker in str(r.path) for r in evaluation["records"]])
    gender_true, age_true = evaluation["truth"]
    part = {}
    for arch, p in evaluation["predictions"].items():
        has_gender, has_age = mask & (gender_true >= 0), mask & (age_true >= 0)
        part[arch] = evaluate_predictions(gender_true[has_gender], p.gender_prob[has_gender], age_true[has_age],
                                          p.age_prob[has_age])
    return evaluation["results"], part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--subset", default="utkface_crop_part1", help="second line: test faces from this folder")
    args = parser.parse_args()
    records = read_manifest(args.manifest)
    splits = Counter(r.split for r in records)
    groups = {r.group for r in records if r.group}
    results, part = test_metrics(args.manifest, f"/{args.subset}/")
    ckpt = torch.load(BUNDLED_FACENET, weights_only=True)
    c, val = ckpt["config"], ckpt["val_metrics"]
    history = json.loads((BUNDLED_CAFFENET / "history.json").read_text()) \
        if (BUNDLED_CAFFENET / "history.json").exists() else []
    tuning = json.loads((BUNDLED_CAFFENET / "finetune_history.json").read_text()) \
        if (BUNDLED_CAFFENET / "finetune_history.json").exists() else []
    refits = [json.loads(path.read_text()) for path in sorted(BUNDLED_CAFFENET.glob("fc_history_*.json"))]
    refit = "".join(
        f"\n- `{r['task']}_net`: then its {'fc6-fc8' if r['layers'] == 'fc6' else 'fc8'} retrained on cached conv "
        f"features of this train split (`python scripts/caffenet_fc_retrain.py --task {r['task']} --layers "
        f"{r['layers']}`: {len(r['views'])} views a face, AdamW lr {r['lr']}, {r['epochs']} epochs; val accuracy "
        f"{r['history'][0]['val_acc']:.4f} at the start, {r['history'][r['best_epoch']]['val_acc']:.4f} at the kept "
        f"epoch {r['best_epoch']})." for r in refits if r["best_epoch"] > 0)
    tuned = "; ".join(f"epoch {e['epoch']}: val gender {e['val']['gender']['acc']:.3f}, "
                      f"age {e['val']['age']['acc']:.3f}" for e in tuning)
    header = "| test faces | images | gender acc. | gender AUC | age acc. | one-off | age macro-F1 | class err. | std |"

    def rows(arch: str) -> str:
        return (f"{header}\n|---|---|---|---|---|---|---|---|---|\n{line(results[arch], 'all')}\n"
                f"{line(part[arch], args.subset)}{years_rows(results[arch], years_info[arch])}")

    years_info = {"facenet": (ckpt.get("years_head") or {}).get("info"),
                  "caffenet": json.loads((BUNDLED_CAFFENET / "years_history.json").read_text())
                  if (BUNDLED_CAFFENET / "years_history.json").exists() else None}
    n_gap = sum(r.age is not None and r.age_class is None for r in records)

    text = f"""# Bundled models

Data: `../shared/data` (UTKFace "crop_part1" and the rest of the aligned & cropped set; non-commercial
research licence), indexed by `make demo`: `agegender dataset` with the defaults (8 age classes,
stratified 70/10/20, seed 0), the crop_part1 split of the first bundled models kept
(`--keep-splits-from`), and copies of one photo kept inside one split (`--duplicates group`:
{len(groups)} groups), then the {n_gap:,} faces whose age lies between the classes added with `--gaps keep`
(no age class: they count for age in years only; the class faces keep their split):
{splits['train']:,} train / {splits['val']:,} val / {splits['test']:,} test images.
No val or test face of this split, nor a copy of one, was ever trained on. Every choice was made on the
val split; the test split was used once, for the numbers below (`python scripts/model_card.py`, which
runs `agegender evaluate --split test`); the second line of each table is the part of the test split
that comes from `{args.subset}`, for comparison with the earlier models.

## facenet.pt (architecture A)

- Backbone: InceptionResnetV1, `{ckpt['backbone']['name']}` weights (sha256 of the converted state dict
  `{ckpt['backbone']['sha256']}`), frozen up to `{c['unfreeze']}`; fetched by the weights resolver.
- Trained: `{c['unfreeze']}` onwards + `{c['head']}` heads; preprocessing `{ckpt['preprocess']['name']}`;
  {c['views']} cached augmented views per image; Adam lr {c['lr']}, weight decay {c['weight_decay']},
  label smoothing {c['label_smoothing']}, batch {c['batch_size']}, best epoch {ckpt['epoch']} chosen by
  val {c.get('select', 'loss')}.
- Val: gender {val.get('gender_acc', float('nan')):.4f}, age {val.get('age_acc', float('nan')):.4f}.
- Stored in fp16 ({BUNDLED_FACENET.stat().st_size / 1e6:.1f} MB); computed in bf16 or fp32 (`--precision auto`).

{rows('facenet')}

## caffenet/ (architecture B)

- `age_net` and `gender_net`: the Levi & Hassner (2015) deploy nets, trained from scratch in PyTorch on the
  crop_part1 train split ({len(history)} epochs, `history.json`), then fine-tuned on this train split
  (`agegender train --arch caffenet --init ... --epochs {len(tuning)} --lr 5e-5`, `finetune_history.json`:
  {tuned}); each net is kept at its best val epoch, epoch 0 being the starting net, so a net that no
  fine-tuned epoch beat stays as it was.{refit}
- Exported to `.caffemodel` with fp16 blobs, run by ONNX Runtime (the default engine on a CPU), by `cv2.dnn`
  (`--engine opencv`, the reference) or by its PyTorch twin (within 2e-5 of `cv2.dnn` in fp32).
- Input: 227x227 BGR minus mean (78.4263377603, 87.7689143744, 114.895847746), swapRB=False.

{rows('caffenet')}

Limits: UTKFace crops are aligned, frontal-ish faces; on whole photos the crop framing of `predict`
imitates them. Age classes between the ranges (3, 7, 14-24, 33-37, 44-47, 54-59) are not represented by
the class heads; the years heads learned them too.
Accuracy differs across UTKFace's race groups: `agegender compare` prints the largest gap.
"""
    atomic_write_text(ASSETS / "MODEL_CARD.md", text)
    print(text)


if __name__ == "__main__":
    main()
