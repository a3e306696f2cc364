"""Write agegender_cli/assets/MODEL_CARD.md from the bundled models' own metadata and test metrics.

Usage: python scripts/model_card.py --manifest data/utkface/manifest.csv
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from agegender_cli.archs.caffenet import ARCH as CAFFENET
from agegender_cli.archs.facenet import ARCH as FACENET
from agegender_cli.archs.registry import names
from agegender_cli.config import ASSETS_DIR as ASSETS
from agegender_cli.config import EvaluateConfig, ModelOptions
from agegender_cli.data.utkface import read_manifest
from agegender_cli.evaluation.metrics import evaluate_predictions
from agegender_cli.fileio import atomic_write_text
from agegender_cli.formatting import with_interval
from agegender_cli.formatting import years as fmt_years
from agegender_cli.onnx_int8 import auto_refusal
from agegender_cli.service import evaluate_models

BUNDLED_FACENET, BUNDLED_CAFFENET = FACENET.bundled, CAFFENET.bundled


def line(r: dict, label: str) -> str:
    g, a = r["gender"], r["age"]
    return (f"| {label} | {r['n']} | {100 * g['accuracy']:.2f}% | {g['auc']:.3f} | {100 * a['accuracy']:.2f}% | "
            f"{100 * a['one_off']:.2f}% | {a['macro_f1']:.3f} | {a['mean_error']:.3f} | {a['std_error']:.3f} |")


def years_rows(result: dict, how: str | None) -> str:
    """The age-in-years paragraph (`how` the head was trained) and table of one bundled model."""
    years = result.get("years")
    if not years or not how:
        return ""
    ci = years["ci95"]
    return (f"\n\nAge in years: {how}\n\n| test faces with an age | MAE (years) | median abs. error | "
            "CS@5 | mean signed error |\n|---|---|---|---|---|\n"
            f"| {years['n']} | {fmt_years(years['mae'], ci['mae'])} | {years['median_ae']:.2f} | "
            f"{with_interval(years['cs5'], ci['cs5'])} | {years['bias']:+.2f} |")


def fitted_head(info: dict | None) -> str | None:
    """How a years head fitted on a trained model's features was chosen (facenet's)."""
    if not info:
        return None
    chosen = info["chosen"]
    return (f"a `{chosen['kind']}` head (label-distribution loss, sigma {chosen['sigma']}) on the features the "
            f"class heads read, trained on {info['train_faces']:,} train faces with an age (gap ages included), "
            f"chosen on {info['val_faces']:,} val faces (val MAE {info['val_mae']:.2f} years; tried: "
            + ", ".join(f"{t['kind']} sigma {t['sigma']}: {t['val_mae']:.2f}" for t in info["tried"])
            + "); the class outputs are unchanged.")


def _mae(val: dict) -> str:
    return f"{val['years_mae']:.2f}" if "years_mae" in val else "-"


def gpu_training(training: dict) -> tuple[str, str, str]:
    """caffenet's training bullets, the table of the variants tried and its years sentence, from the training.json
    that scripts/caffenet_gpu_train.py's runs left beside the nets."""
    kept, runs = training["kept"], training["runs"]
    counts = runs[0]["counts"]
    device = runs[0]["variants"][kept["gender"]["variant"]]["device"]
    rows = []
    for number, run in enumerate(runs, 1):
        for name, v in run["variants"].items():
            b, cfg = v["best"], v["variant"]
            rows.append(f"| {number} | `{name}` | {cfg['lr']:g} | {cfg['batch_size']} | "
                        f"{'all' if cfg['gender_all'] else 'class'} | {cfg['smoothing']:g} | "
                        f"{'yes' if cfg['years'] else 'no'} | {cfg['distill']:g} | {v['epochs']} | "
                        f"{b['gender']['val']['gender_acc']:.4f} | {b['age']['val']['age_acc']:.4f} | "
                        f"{_mae(b['age']['val'])} |")
    table = ("| run | variant | lr | batch | gender_net faces | smoothing | years output | distillation | epochs | "
             "val gender | val age | val MAE |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    g, a = kept["gender"], kept["age"]
    text = (f"- `age_net` and `gender_net`: the Levi & Hassner (2015) deploy nets, trained from scratch in PyTorch "
            f"on one {device} (`{training['script']}`) on the {counts['train']:,} train faces, each variant "
            "for the same wall-clock budget (AdamW, weight decay 5e-4, a one-cycle learning rate over the budget, "
            "random 227x227 crops of 256x256 faces, flips, bf16). The age classes learn from the faces with an "
            "age class (class-weighted cross-entropy); `gender_net` also from the faces between the classes "
            f"(`all`); distillation adds the probabilities of {training['teacher']} on the train faces, at "
            "temperature 2. Each net kept at its best val epoch; the variants, chosen on the "
            f"{counts['val']:,} val faces (table below).\n"
            f"- Kept: `gender_net` of run {g['run']} `{g['variant']}`, epoch {g['epoch']} (val gender "
            f"{g['val']['gender_acc']:.4f}); `age_net` of run {a['run']} `{a['variant']}`, epoch {a['epoch']} "
            f"(val age {a['val']['age_acc']:.4f}, one-off {a['val']['age_one_off']:.4f}, MAE "
            f"{a['val']['years_mae']:.2f} years). `training.json` holds every epoch of every variant.")
    years = ("`age_net`'s years output (fc7 -> 256 -> 101 bins, a distribution over 0-100 years whose "
             "expectation is the estimate), trained with the rest of the net on every train face with an age "
             "(label-distribution loss, sigma 2, plus the L1 error of the expectation / 10).")
    return text, table, years


def wild_retrain(folder: Path) -> str:
    """caffenet's bullet on the CPU retraining of its fc layers for photos (scripts/caffenet_fc_retrain.py), from
    the wild_TASK.json histories beside the nets."""
    parts, first = [], None
    for name in ("gender", "age", "age_years"):
        file = folder / f"wild_{name}.json"
        if not file.is_file():
            continue
        h = json.loads(file.read_text())
        first = first or h
        task = h["task"]
        best, start = h["history"][h["best_epoch"]], h["history"][0]
        if h["layers"] == "years":
            kept = (f"epoch {h['best_epoch']} kept (val MAE {start['val_mae']:.2f} -> {best['val_mae']:.2f}, lr "
                    f"{h['lr']:g}, {h['epochs']} epochs)" if h["best_epoch"] else "no epoch beat the starting net")
            parts.append(f"then `age_net`'s years layers alone, on the same faces with an age ({h['train_faces']:,} "
                         f"train / {h['val_faces']:,} val), its class outputs unchanged: {kept}")
            continue

        def said(entry: dict) -> str:
            return f"accuracy {entry['val_acc']:.4f}" + (f", MAE {entry['val_mae']:.2f}" if "val_mae" in entry else "")

        later = max(h["history"][1:], key=lambda e: e["val_acc"])
        outcome = (f"epoch {h['best_epoch']} kept (val {said(start)} -> {said(best)})" if h["best_epoch"] else
                   f"no epoch beat the starting net (val {said(start)}; the best later epoch, {later['epoch']}: "
                   f"{said(later)}), so it stays as it was")
        parts.append(f"`{task}_net` {h['layers']}-fc8{' and years layers' if task == 'age' else ''} "
                     f"({h['train_faces']:,} train / {h['val_faces']:,} val faces with its label): {outcome}")
    if not parts:
        return ""
    return ("- Then retrained for photos on a CPU (`scripts/caffenet_fc_retrain.py --detector auto --augment wild`, "
            f"lr {first['lr']:g}, {first['epochs']} epochs, on `{first['manifest']}`: UTKFace with AAF and LFW's train "
            "splits, faces found and aligned as `predict` "
            "does, 4 pool5 views of each: whole, mirrored and two with the detector's jitter, blur, low resolution, "
            "JPEG, colour and grayscale): " + "; ".join(parts) + ".\n")


def fused_text(path: Path) -> str:
    """The fused answer's bullets, from the weights file `agegender train --arch fused` wrote."""
    doc = json.loads(path.read_text())
    w, fit, val = doc["weights"], doc["fitted_on"], doc["val"]

    def said(task: str, key: str, fmt: str) -> str:
        return ", ".join(f"{name} {format(val[task][name][key], fmt)}" for name in ("fused", *doc["parts"]))

    return (f"- {doc['rule']}. facenet's share: gender {w['gender']:.2f}, age {w['age']:.2f}, years "
            f"{w['years']:.2f}; each the point of a 0.05 grid with the best val score (accuracy, then log-loss; MAE "
            f"for years), fitted by `agegender train --arch fused` on the {fit['split']} split of "
            f"`{fit['manifest']}` (`--detector {fit['detector']} --pick {fit['pick']}`: {fit['faces']:,} faces; "
            f"{fit['gender_faces']:,} with a gender, {fit['age_faces']:,} with an age class, {fit['years_faces']:,} "
            "with an age).\n"
            f"- Val: gender {said('gender', 'accuracy', '.4f')}; age {said('age', 'accuracy', '.4f')}; MAE "
            f"{said('years', 'mae', '.2f')} years.\n"
            "- Runs both models once: `--arch both` combines the answers they give anyway; `--arch fused` runs "
            "them and shows only the fused answer.")


def data_sources(manifest: Path | None) -> str:
    """The train/val/test faces of each source of the training manifest, as a sentence."""
    if manifest is None or not manifest.is_file():
        return ""
    counts = Counter((Path(r.source).name, r.split) for r in read_manifest(manifest))
    names = sorted({source for source, _ in counts})
    return "; ".join(f"`{n}` {counts[(n, 'train')]:,} / {counts[(n, 'val')]:,} / {counts[(n, 'test')]:,}"
                     for n in names)


def wild_rows(sets: list[tuple[str, Path]], centred: set[str]) -> str:
    """Every bundled model (fused too) on each in-the-wild test split, whole photos through --detector auto
    (`centred`: the sets whose labelled face is the one nearest the centre, --pick centre)."""
    if not sets:
        return ""
    archs = names()
    lines = ["| test photos | found | " + " | ".join(f"{a} gender (balanced)" for a in archs) + " | "
             + " | ".join(f"{a} age / MAE" for a in archs) + " |", "|---|---|" + "---|" * (2 * len(archs))]
    for name, manifest in sets:
        pick = "centre" if name in centred else "largest"
        evaluation = evaluate_models(EvaluateConfig(archs=names(), manifest=manifest, split="test", detector="auto",
                                                    pick=pick))
        found = evaluation["detection"]
        cells = [f"{name} ({found['photos']:,}{', centre face' if pick == 'centre' else ''})",
                 f"{100 * found['recall']:.1f}%"]
        for arch in archs:
            g = evaluation["results"][arch]["gender"]
            recalls = [c["recall"] for c in g["per_class"].values()]
            cells.append(f"{100 * g['accuracy']:.2f}% ({100 * sum(recalls) / len(recalls):.2f}%)")
        for arch in archs:
            r, years = evaluation["results"][arch], (evaluation["results"][arch].get("years") or {})
            age = "-" if r["age"]["accuracy"] is None else f"{100 * r['age']['accuracy']:.2f}%"
            cells.append(f"{age} / {years['mae']:.2f} y" if years.get("mae") is not None and r["age"]["n"] else age)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def ranges_doc(arch: str, bundled: Path) -> tuple[Path, dict, str | None]:
    """The bundled model's int8 ranges file, its document, and why --precision auto keeps fp32 (None: it runs int8)."""
    ranges = importlib.import_module(f"agegender_cli.archs.{arch}.int8").ranges_path(bundled)
    doc = json.loads(ranges.read_text())
    return ranges, doc, auto_refusal(doc, ranges.name)


def other_precision(manifest: Path, ranges: dict[str, tuple[Path, dict, str | None]]) -> dict[str, tuple[str, dict]]:
    """Per architecture (its ranges_doc), the precision --precision auto does not run on ONNX Runtime (fp32 where
    auto runs int8, else int8) and the test metrics in it."""
    found = {}
    for arch, (_path, _doc, refusal) in ranges.items():
        other = "fp32" if refusal is None else "int8"
        config = EvaluateConfig(archs=(arch,), manifest=manifest, split="test", options=ModelOptions(precision=other))
        found[arch] = other, evaluate_models(config)["results"][arch]
    return found


def int8_text(ranges_found: tuple[Path, dict, str | None], other: tuple[str, dict]) -> str:
    """The bullet on int8 (from the model's ranges_doc): how the ranges were made, what val said, whether auto runs
    it, the other precision's test numbers."""
    ranges, doc, refusal = ranges_found
    check = doc["val_check"]
    precision, result = other
    years = result.get("years") or {}
    mae = f", MAE {years['mae']:.2f} years" if "mae" in years else ""
    kept = (f" ({', '.join(doc['fp32_modules'])} and the first convolution kept in fp32)"
            if doc.get("fp32_modules") else "")
    when = ("under `--precision auto` (the default on a CPU without native bf16) and `--precision int8`"
            if refusal is None else "under `--precision int8` only: `auto` keeps fp32, as " + refusal.split(";")[0])
    return (f"- Run in int8 by ONNX Runtime{kept} {when}: activation ranges in `{ranges.name}`, measured on "
            f"{doc['faces']:,} train faces; on val, gender {check['points']['gender_acc']:+.2f} and age "
            f"{check['points']['age_acc']:+.2f} points against fp32 (faces with an age class), the same class for "
            f"{100 * check['same_class']['gender']:.2f}% / {100 * check['same_class']['age']:.2f}% of its "
            f"{check['faces']:,} faces. The tables are what `auto` runs ({'int8' if refusal is None else 'fp32'}); "
            f"in {precision} (`--precision {precision}`) the test faces give gender "
            f"{100 * result['gender']['accuracy']:.2f}%, age {100 * result['age']['accuracy']:.2f}%, one-off "
            f"{100 * result['age']['one_off']:.2f}%{mae}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, default=Path("data/utkface/manifest.csv"))
    parser.add_argument("--subset", default="utkface_crop_part1", help="second line: test faces from this folder")
    parser.add_argument("--trained-on", type=Path, default=Path("data/wild/manifest.csv"),
                        help="the manifest the bundled models were last trained on (its sources are counted)")
    parser.add_argument("--wild", nargs=2, action="append", default=[], metavar=("NAME", "MANIFEST"),
                        help="an in-the-wild manifest whose test split is measured on whole photos (repeatable)")
    parser.add_argument("--centre", action="append", default=[], metavar="NAME",
                        help="a --wild set whose labelled face is the one nearest the centre (LFW; --pick centre)")
    args = parser.parse_args()
    records = read_manifest(args.manifest)
    splits = Counter(r.split for r in records)
    groups = {r.group for r in records if r.group}
    results, part = test_metrics(args.manifest, f"/{args.subset}/")
    wild = wild_rows([(name, Path(path)) for name, path in args.wild], set(args.centre))
    retrain = wild_retrain(BUNDLED_CAFFENET)
    sources = data_sources(args.trained_on)
    ranges = {arch: ranges_doc(arch, path) for arch, path in (("facenet", BUNDLED_FACENET),
                                                               ("caffenet", BUNDLED_CAFFENET))}
    other = other_precision(args.manifest, ranges)
    ckpt = torch.load(BUNDLED_FACENET, weights_only=True)
    c, val = ckpt["config"], ckpt["val_metrics"]
    training = json.loads((BUNDLED_CAFFENET / "training.json").read_text())
    caffenet_text, caffenet_variants, caffenet_years = gpu_training(training)
    header = "| test faces | images | gender acc. | gender AUC | age acc. | one-off | age macro-F1 | class err. | std |"

    def rows(arch: str) -> str:
        return (f"{header}\n|---|---|---|---|---|---|---|---|---|\n{line(results[arch], 'all')}\n"
                f"{line(part[arch], args.subset)}{years_rows(results[arch], years_info[arch])}")

    years_info = {"facenet": fitted_head((ckpt.get("years_head") or {}).get("info")), "caffenet": caffenet_years,
                  "fused": "the weighted mean of the two models' years (facenet's share above)."}
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

Photos (issue 26): the models were then trained for faces found in photos on `{args.trained_on}`, which
adds the train splits of two in-the-wild sets to UTKFace's (train / val / test by source: {sources}).
AAF (All-Age-Faces, `../shared/data/aaf_train`) and LFW (`../shared/data/lfw_gender`, each person in one
split: `dataset --labels` reads its `person` column) were split by `agegender dataset` (seed 0); their test
parts were never trained on. Every face, UTKFace's chips included, went through `--detector auto`: found by
MTCNN and aligned onto the chips' 5-point template, as `predict` sees faces. Both models on the in-the-wild
test splits (whole photos, `agegender evaluate --detector auto`; balanced accuracy: the mean of the female and
male recalls; MAE on the faces with an age class):

{wild}

## facenet.pt (architecture A)

- Backbone: InceptionResnetV1, `{ckpt['backbone']['name']}` weights (sha256 of the converted state dict
  `{ckpt['backbone']['sha256']}`), frozen up to `{c['unfreeze']}`; fetched by the weights resolver.
- Trained: `{c['unfreeze']}` onwards + `{c['head']}` heads; preprocessing `{ckpt['preprocess']['name']}`;
  faces framed by `--detector {c.get('detector', 'none')}`, `--augment {c.get('augment', 'geometric')}` on
  `{c['manifest']}`; {c['views']} cached augmented views per image; Adam lr {c['lr']}, weight decay {c['weight_decay']},
  label smoothing {c['label_smoothing']}, batch {c['batch_size']}, best epoch {ckpt['epoch']} chosen by
  val {c.get('select', 'loss')}.
- Val: gender {val.get('gender_acc', float('nan')):.4f}, age {val.get('age_acc', float('nan')):.4f}.
- Stored in fp16 ({BUNDLED_FACENET.stat().st_size / 1e6:.1f} MB); computed in bf16 where the hardware runs it natively.
{int8_text(ranges['facenet'], other['facenet'])}

{rows('facenet')}

## caffenet/ (architecture B)

{caffenet_text}
{retrain}- Exported to `.caffemodel` with fp16 blobs, run by ONNX Runtime (the default engine on a CPU), by `cv2.dnn`
  (`--engine opencv`, the reference) or by its PyTorch twin (within 2e-5 of `cv2.dnn` in fp32).
{int8_text(ranges['caffenet'], other['caffenet'])}
- Input: 227x227 BGR minus mean (78.4263377603, 87.7689143744, 114.895847746), swapRB=False.

The variants (`training.json`):

{caffenet_variants}

{rows('caffenet')}

## fused.json (both answers combined)

{fused_text(ASSETS / "fused.json")}

{rows('fused')}

Limits: UTKFace crops are aligned, frontal-ish faces; on whole photos the crop framing of `predict`
imitates them. Age classes between the ranges (3, 7, 14-24, 33-37, 44-47, 54-59) are not represented by
the class heads; the years heads learned them too.
Accuracy differs across UTKFace's race groups: `agegender compare` prints the largest gap.
"""
    atomic_write_text(ASSETS / "MODEL_CARD.md", text)
    print(text)


if __name__ == "__main__":
    main()
