"""Train the Levi-Hassner nets from scratch on a lent GPU: pack the faces for the trip, train variants side by side.

Maintainer script, in four steps (docs/results.md says how the bundled nets came out of it):
  python scripts/caffenet_gpu_train.py teacher --manifest data/utkface/manifest.csv --out T.npz
  python scripts/caffenet_gpu_train.py pack --manifest data/utkface/manifest.csv --teacher T.npz --out PACK
  (on the GPU machine, PACK's files gathered in one folder) python scripts/caffenet_gpu_train.py train --data PACK
      --out $OUT --budget 420
  python scripts/caffenet_gpu_train.py unpack --results RESULTS_DIR --out runs/caffenet-gpu
T.npz holds the bundled facenet's probabilities on the train and val faces, the targets of the distilled variants.
The parts are the original JPEG bytes, about 48 MiB each for make demo's manifest, so that each fits one call to a
lent machine.

Each variant trains a gender_net and an age_net (with a years output where the variant has one) on the train
split; an epoch ends with a pass over val, and each net is kept at its best val epoch. The learning rate follows
a one-cycle curve over a wall-clock budget, so that variants running side by side on one GPU all finish in time;
the number of epochs each one ran is recorded. The nets of the variant best on val are exported, and every
variant is scored on the test split with the PyTorch twin, for the record (the choice is made on val alone).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
TRAIN_SIZE, CROP = 256, 227
PART_FILE = "part{}.bin"
INDEX_FILE = "index.npz"
WEIGHT_CHUNK = 15 << 20  # files coming back from the GPU machine may hold 16 MiB each


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to train the pair of nets."""

    name: str
    lr: float = 3e-4
    batch_size: int = 128
    gender_all: bool = True  # gender_net also learns from the faces whose age lies between the classes
    smoothing: float = 0.1
    years: bool = True  # age_net gets a years output (fc7 -> 256 -> 101), trained on every face with an age
    distill: float = 0.0  # weight of facenet's soft labels (KL at temperature 2) against the hard labels
    weight_decay: float = 5e-4


VARIANTS = {
    # the project's recipe (caffenet train's defaults): class faces only, no years output, no smoothing
    "recipe": Variant("recipe", lr=1e-4, batch_size=64, gender_all=False, smoothing=0.0, years=False),
    "all": Variant("all"),
    "all-kd": Variant("all-kd", distill=0.5),
    "all-lr1e-4": Variant("all-lr1e-4", lr=1e-4),
    "all-kd8": Variant("all-kd8", distill=0.8),
}
YEARS_HIDDEN, YEARS_SIGMA, YEARS_WEIGHT = 256, 2.0, 1.0
TEMPERATURE = 2.0


def teacher(manifest: Path, out: Path) -> None:
    """The bundled facenet's probabilities on the train and val faces of the manifest (11 min on 2 cores)."""
    from agegender_cli.archs import registry
    from agegender_cli.faces.inputs import load_image

    base = manifest.parent
    rows = [r for r in csv.DictReader(manifest.open(newline="")) if r["split"] in ("train", "val")]
    predictor = registry.load_predictor("facenet")
    parts = []
    for start in range(0, len(rows), 64):
        chunk = rows[start:start + 64]
        parts.append(predictor.predict([load_image(base / r["path"]) for r in chunk]))
        print(f"{start + len(chunk)}/{len(rows)}", end="\r", file=sys.stderr)
    np.savez(out, paths=np.array([r["path"] for r in rows]),
             gender_prob=np.concatenate([p.gender_prob for p in parts]),
             age_prob=np.concatenate([p.age_prob for p in parts]))
    print(f"{out}: facenet's probabilities on {len(rows)} faces")


def pack(manifest: Path, out: Path, parts: int, teacher: Path | None) -> None:
    """Every face of the manifest as its original JPEG bytes in `parts` files of about equal size, plus an index."""
    rows = list(csv.DictReader(manifest.open(newline="")))
    rows.sort(key=lambda r: SPLIT_CODES[r["split"]])  # train first: the first part can travel alone
    base = manifest.parent
    blobs = [(Path(r["path"]) if Path(r["path"]).is_absolute() else base / r["path"]).read_bytes() for r in rows]
    total = sum(map(len, blobs))
    out.mkdir(parents=True, exist_ok=True)
    part_of, offsets, lengths, digests = [], [], [], []
    handles = [(out / PART_FILE.format(k)).open("wb") for k in range(parts)]
    written = [0] * parts
    for blob in blobs:
        k = min(parts - 1, int(sum(written) / total * parts))
        part_of.append(k)
        offsets.append(written[k])
        lengths.append(len(blob))
        handles[k].write(blob)
        written[k] += len(blob)
    for handle in handles:
        handle.close()
    for k in range(parts):
        digests.append(hashlib.sha256((out / PART_FILE.format(k)).read_bytes()).hexdigest())
    n = len(rows)
    soft_gender = np.full((n, 2), np.nan, np.float32)
    soft_age = np.full((n, 8), np.nan, np.float32)
    if teacher is not None:
        saved = np.load(teacher)
        where = {p: i for i, p in enumerate(saved["paths"].tolist())}
        for i, r in enumerate(rows):
            j = where.get(r["path"])
            if j is not None:
                soft_gender[i], soft_age[i] = saved["gender_prob"][j], saved["age_prob"][j]
    np.savez(
        out / INDEX_FILE, part=np.array(part_of, np.int8), offset=np.array(offsets, np.int64),
        length=np.array(lengths, np.int64), split=np.array([SPLIT_CODES[r["split"]] for r in rows], np.int8),
        gender=np.array([int(r["gender"]) for r in rows], np.int64),
        age=np.array([int(r["age"]) for r in rows], np.int64),
        age_class=np.array([int(r["age_class"]) if r["age_class"] != "" else -1 for r in rows], np.int64),
        soft_gender=soft_gender, soft_age=soft_age, digests=np.array(digests),
    )
    for k in range(parts):
        print(f"{out / PART_FILE.format(k)}: {written[k] / 2**20:.1f} MiB")
    print(f"{n} faces, {sum(1 for r in rows if r['split'] == 'train')} train; teacher: {teacher}")


def decode(data: Path, work: Path, threads: int) -> dict:
    """Decode every face once: train at 256 x 256, val and test at 227 x 227 (the inference input), as .npy."""
    import cv2

    index = dict(np.load(data / INDEX_FILE))
    for k, digest in enumerate(index["digests"].tolist()):
        got = hashlib.sha256((data / PART_FILE.format(k)).read_bytes()).hexdigest()
        if got != digest:
            raise SystemExit(f"{data / PART_FILE.format(k)}: damaged in transit (sha256 {got[:12]})")
    parts = [np.fromfile(data / PART_FILE.format(k), np.uint8) for k in range(len(index["digests"]))]
    work.mkdir(parents=True, exist_ok=True)
    for code, name in enumerate(SPLIT_CODES):
        rows = np.flatnonzero(index["split"] == code)
        size = TRAIN_SIZE if name == "train" else CROP
        images = np.empty((len(rows), size, size, 3), np.uint8)

        def fill(i: int, rows=rows, images=images, size=size) -> None:
            j = rows[i]
            raw = parts[index["part"][j]][index["offset"][j]:index["offset"][j] + index["length"][j]]
            image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
            images[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fill, range(len(rows))))
        np.save(work / f"{name}_x.npy", images)
        for key in ("gender", "age", "age_class", "soft_gender", "soft_age"):
            np.save(work / f"{name}_{key}.npy", index[key][rows])
    return {name: int((index["split"] == code).sum()) for name, code in SPLIT_CODES.items()}


def train_variant(variant: Variant, work: Path, out: Path, budget: float, seed: int) -> None:
    """Train one variant's pair of nets for `budget` seconds; write its best nets and its history."""
    import torch
    from torch import nn

    from agegender_cli.archs.base import class_weights
    from agegender_cli.archs.caffenet.net import LeviHassnerNet, mean_subtract
    from agegender_cli.archs.years_head import label_distributions
    from agegender_cli.labels import MAX_YEARS, N_BINS

    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda"

    def load(split: str, key: str) -> torch.Tensor:
        return torch.from_numpy(np.load(work / f"{split}_{key}.npy")).to(device)

    train_x, val_x = load("train", "x"), load("val", "x")
    y = {key: load("train", key) for key in ("gender", "age", "age_class", "soft_gender", "soft_age")}
    vy = {key: load("val", key) for key in ("gender", "age", "age_class")}
    has_class = y["age_class"] >= 0
    every = torch.arange(len(train_x), device=device)
    rows = every if (variant.gender_all or variant.years) else torch.nonzero(has_class).flatten()
    weights = torch.from_numpy(class_weights(y["age_class"][has_class].cpu().numpy(), 8)).float().to(device)
    cross_entropy = nn.functional.cross_entropy
    bins = torch.arange(N_BINS, dtype=torch.float32, device=device)

    nets = {"gender": LeviHassnerNet(2), "age": LeviHassnerNet(8, YEARS_HIDDEN if variant.years else None,
                                                               variant.years)}
    nets = {task: net.to(device, memory_format=torch.channels_last) for task, net in nets.items()}
    params = [p for net in nets.values() for p in net.parameters()]
    optimizer = torch.optim.AdamW(params, lr=variant.lr, weight_decay=variant.weight_decay)
    generator = torch.Generator(device=device).manual_seed(seed)
    arange = torch.arange(CROP, device=device)
    mean_weight = weights[y["age_class"].clamp_min(0)]

    def learning_rate(progress: float) -> float:
        # torch's OneCycleLR (cosine, 30% warm-up, div 25, final div 1e4) over the wall-clock budget
        start, end = variant.lr / 25, variant.lr / 25 / 1e4
        if progress < 0.3:
            return start + (variant.lr - start) * (1 - math.cos(math.pi * progress / 0.3)) / 2
        t = min(1.0, (progress - 0.3) / 0.7)
        return end + (variant.lr - end) * (1 + math.cos(math.pi * t)) / 2

    def batch(index: torch.Tensor) -> torch.Tensor:
        span = TRAIN_SIZE - CROP + 1
        top = torch.randint(span, (len(index),), device=device, generator=generator)
        left = torch.randint(span, (len(index),), device=device, generator=generator)
        flip = torch.rand(len(index), device=device, generator=generator) < 0.5
        cols = torch.where(flip[:, None], CROP - 1 - arange[None, :], arange[None, :]) + left[:, None]
        rows_ = top[:, None] + arange[None, :]
        crops = train_x[index[:, None, None], rows_[:, :, None], cols[:, None, :]]
        return mean_subtract(crops.permute(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)

    def soft_loss(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        """Per face: KL from the teacher's probabilities to the student's, both at the temperature."""
        log_p = torch.log_softmax(logits / TEMPERATURE, 1)
        target = torch.softmax(torch.log(soft.clamp_min(1e-8)) / TEMPERATURE, 1)
        return (target * (torch.log(target.clamp_min(1e-8)) - log_p)).sum(1) * TEMPERATURE**2

    started = time.time()
    history, best, epoch, step = [], {}, 0, 0
    while time.time() - started < budget:
        epoch += 1
        for net in nets.values():
            net.train()
        order = rows[torch.randperm(len(rows), device=device, generator=generator)]
        sums = torch.zeros(3, device=device)  # summed on the GPU: a float() per step would wait for it
        tic = time.time()
        for s in range(0, len(order) - variant.batch_size + 1, variant.batch_size):
            progress = (time.time() - started) / budget
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(progress)
            index = order[s:s + variant.batch_size]
            x = batch(index)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                g = nets["gender"](x).float()
                feats = nets["age"].features(x)
                a = nets["age"].fc8(feats).float()
                years = nets["age"].years_logits(feats).float() if variant.years else None
            # masks instead of boolean indexing, which would wait for the GPU at every step
            g_mask = torch.ones(len(index), device=device) if variant.gender_all else has_class[index].float()
            a_mask = has_class[index].float()
            classes = y["age_class"][index].clamp_min(0)
            gl = (cross_entropy(g, y["gender"][index], label_smoothing=variant.smoothing, reduction="none")
                  * g_mask).sum() / g_mask.sum().clamp_min(1)
            # the weighted CE's mean over the class faces of the batch, as nn.CrossEntropyLoss(weight) takes it
            al = (cross_entropy(a, classes, weight=weights, label_smoothing=variant.smoothing, reduction="none")
                  * a_mask).sum() / (mean_weight[index] * a_mask).sum().clamp_min(1e-6)
            if variant.distill:
                w = variant.distill
                soft_gender = (soft_loss(g, y["soft_gender"][index]) * g_mask).sum() / g_mask.sum().clamp_min(1)
                gl = (1 - w) * gl + w * soft_gender
                al = (1 - w) * al + w * soft_loss(a, y["soft_age"][index]).mean()
            loss = gl + al
            yl = torch.zeros((), device=device)
            if years is not None:
                ages = y["age"][index]
                log_p = torch.log_softmax(years, 1)
                yl = nn.functional.kl_div(log_p, label_distributions(ages, YEARS_SIGMA), reduction="batchmean")
                yl = yl + (log_p.exp() @ bins - ages.clamp(0, MAX_YEARS).float()).abs().mean() / 10
                loss = loss + YEARS_WEIGHT * yl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            sums += torch.stack([gl.detach(), al.detach(), yl.detach()])
        steps = max(1, len(order) // variant.batch_size)
        val = score(nets, val_x, vy["gender"], vy["age"], vy["age_class"], bf16=bf16)
        losses = dict(zip(("gender", "age", "years"), (sums / steps).tolist(), strict=True))
        entry = {"epoch": epoch, "lr": learning_rate((time.time() - started) / budget),
                 "seconds": round(time.time() - tic, 1), "train_loss": losses,
                 "val": val}
        history.append(entry)
        print(f"{variant.name} epoch {epoch} ({entry['seconds']} s) " + " ".join(
            f"{k} {v:.4f}" for k, v in val.items()), flush=True)
        for task, key in (("gender", "gender_acc"), ("age", "age_acc")):
            if task not in best or val[key] > best[task]["val"][key]:
                state = {k: v.detach().to("cpu", copy=True) for k, v in nets[task].state_dict().items()}
                best[task] = {"epoch": epoch, "val": val, "state": state}
    out.mkdir(parents=True, exist_ok=True)
    torch.save({task: info["state"] for task, info in best.items()}, out / f"{variant.name}.pt")
    summary = {"variant": dataclasses.asdict(variant), "epochs": epoch, "steps": step, "budget_s": budget,
               "seconds": round(time.time() - started, 1),
               "best": {task: {"epoch": info["epoch"], "val": info["val"]} for task, info in best.items()},
               "history": history, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu"}
    (out / f"{variant.name}.json").write_text(json.dumps(summary, indent=1) + "\n")


def score(nets: dict, images, gender, age, age_class, *, bf16: bool) -> dict:
    """Accuracy and one-off on the faces with an age class, and where age_net has a years output its MAE and CS@5
    on every face: what val (during training) and test (at the end) report. Tensors on any device."""
    import torch

    from agegender_cli.archs.caffenet.net import mean_subtract
    from agegender_cli.labels import N_BINS

    device = next(nets["gender"].parameters()).device
    years = nets["age"].has_years
    bins = torch.arange(N_BINS, dtype=torch.float32, device=device)
    for net in nets.values():
        net.eval()
    g, a, estimates = [], [], []
    with torch.inference_mode():
        for s in range(0, len(images), 256):
            x = mean_subtract(images[s:s + 256].to(device).permute(0, 3, 1, 2))
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                g.append(nets["gender"](x).argmax(1).cpu())
                feats = nets["age"].features(x)
                a.append(nets["age"].fc8(feats).argmax(1).cpu())
                logits = nets["age"].years_logits(feats) if years else None
            if logits is not None:  # the expectation in fp32, outside autocast
                estimates.append((torch.softmax(logits.float(), 1) @ bins).cpu())
    g, a = torch.cat(g), torch.cat(a)
    gender, age, age_class = gender.cpu(), age.cpu(), age_class.cpu()
    cls = age_class >= 0
    out = {"gender_acc": float((g == gender)[cls].float().mean()),
           "age_acc": float((a == age_class)[cls].float().mean()),
           "age_one_off": float(((a - age_class).abs() <= 1)[cls].float().mean())}
    if years:
        err = (torch.cat(estimates) - age.float()).abs()
        out |= {"years_mae": float(err.mean()), "cs5": float((err <= 5).float().mean())}
    return out


def score_test(work: Path, out: Path, names: list[str]) -> dict:
    """Every variant's kept nets on the test split (fp32 twin): accuracy, one-off, years MAE and CS@5."""
    import torch

    from agegender_cli.archs.caffenet.net import LeviHassnerNet

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.from_numpy(np.load(work / "test_x.npy"))
    gender, age, age_class = (torch.from_numpy(np.load(work / f"test_{k}.npy")) for k in ("gender", "age", "age_class"))
    scores = {}
    for name in names:
        states = torch.load(out / f"{name}.pt", weights_only=True)
        years = "fc_years.weight" in states["age"]
        nets = {"gender": LeviHassnerNet(2), "age": LeviHassnerNet(8, YEARS_HIDDEN if years else None, years)}
        for task, net in nets.items():
            net.load_state_dict(states[task])
            net.to(device)
        scores[name] = score(nets, x, gender, age, age_class, bf16=False) | {
            "class_faces": int((age_class >= 0).sum()), "faces": len(x)}
    return scores


def train(data: Path, out: Path, budget: float, names: list[str], seed: int, work: Path) -> None:
    """Decode, train the variants side by side (one process each), score them, export the best on val."""
    tic = time.time()
    if (work / "test_x.npy").is_file() and not (data / INDEX_FILE).is_file():
        counts = {name: len(np.load(work / f"{name}_age.npy")) for name in SPLIT_CODES}  # decoded by a run before
    else:
        counts = decode(data, work, threads=os.cpu_count() or 4)
    print(f"decoded {counts} in {time.time() - tic:.1f} s", flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    runs = work / "variants"
    procs = [subprocess.Popen([sys.executable, __file__, "variant", name, "--work", str(work), "--out", str(runs),
                               "--budget", str(budget), "--seed", str(seed)], env=env) for name in names]
    failed = [name for name, proc in zip(names, procs, strict=True) if proc.wait() != 0]
    done = [name for name in names if name not in failed]
    if not done:
        raise SystemExit(f"every variant failed: {failed}")
    summaries = {name: json.loads((runs / f"{name}.json").read_text()) for name in done}
    test = score_test(work, runs, done)
    chosen = {
        "gender": max(done, key=lambda n: summaries[n]["best"]["gender"]["val"]["gender_acc"]),
        "age": max((n for n in done if VARIANTS[n].years), default=None,
                   key=lambda n: summaries[n]["best"]["age"]["val"]["age_acc"]),
    }
    _export_chosen(runs, out, chosen)
    report = {"seconds": round(time.time() - tic, 1), "counts": counts, "failed": failed, "chosen": chosen,
              "variants": {n: summaries[n] | {"test": test[n]} for n in done}}
    (out / "report.json").write_text(json.dumps(report) + "\n")
    print(f"{'variant':<12} {'ep':>3} {'val g':>6} {'val a':>6} {'val mae':>7} | {'test g':>6} {'test a':>6} "
          f"{'1-off':>6} {'mae':>5}")
    for name in done:
        b, t = summaries[name]["best"], test[name]
        print(f"{name:<12} {summaries[name]['epochs']:>3} {b['gender']['val']['gender_acc']:.4f} "
              f"{b['age']['val']['age_acc']:.4f} {b['age']['val'].get('years_mae', float('nan')):7.3f} | "
              f"{t['gender_acc']:.4f} {t['age_acc']:.4f} {t['age_one_off']:.4f} "
              f"{t.get('years_mae', float('nan')):5.2f}")
    print(f"chosen on val: {chosen}; failed: {failed}; {report['seconds']} s in all")


def _export_chosen(runs: Path, out: Path, chosen: dict) -> None:
    """The chosen nets' weights in fp16 (what the caffemodels store) as one torch file, in chunks small enough
    to come back."""
    import torch

    nets = {task: {k: v.half() for k, v in torch.load(runs / f"{name}.pt", weights_only=True)[task].items()}
            for task, name in chosen.items() if name}
    out.mkdir(parents=True, exist_ok=True)
    blob = out / "chosen.pt"
    torch.save(nets, blob)
    raw = blob.read_bytes()
    for k in range(math.ceil(len(raw) / WEIGHT_CHUNK)):
        (out / f"chosen.pt.{k}").write_bytes(raw[k * WEIGHT_CHUNK:(k + 1) * WEIGHT_CHUNK])
    (out / "chosen.sha256").write_text(hashlib.sha256(raw).hexdigest() + "\n")
    blob.unlink()


def unpack(results: Path, out: Path) -> None:
    """Join the chunks that came back, check their hash, and export the chosen nets as a model folder."""
    import torch

    from agegender_cli.archs.caffenet.caffemodel import export_caffemodel
    from agegender_cli.archs.caffenet.deploy import NET_NAMES
    from agegender_cli.archs.caffenet.net import LeviHassnerNet, deploy_prototxt

    chunks = sorted(results.glob("chosen.pt.*"), key=lambda p: int(p.suffix[1:]))
    raw = b"".join(p.read_bytes() for p in chunks)
    if hashlib.sha256(raw).hexdigest() != (results / "chosen.sha256").read_text().strip():
        raise SystemExit("chosen.pt: the chunks do not add up to the file that was written")
    out.mkdir(parents=True, exist_ok=True)
    (out / "chosen.pt").write_bytes(raw)
    states = torch.load(out / "chosen.pt", weights_only=True)
    for task, state in states.items():
        years = "fc_years.weight" in state
        net = LeviHassnerNet(2 if task == "gender" else 8, YEARS_HIDDEN if years else None, years)
        net.load_state_dict({k: v.float() for k, v in state.items()})
        (out / f"{NET_NAMES[task]}.prototxt").write_text(
            deploy_prototxt(net.num_classes, years_hidden=YEARS_HIDDEN if years else None, years=years))
        export_caffemodel(net.eval(), out / f"{NET_NAMES[task]}.caffemodel", fp16=True)
        print(f"{out / NET_NAMES[task]}.caffemodel written")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("teacher")
    f.add_argument("--manifest", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("pack")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--parts", type=int, default=2)
    p.add_argument("--teacher", type=Path)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--budget", type=float, default=360.0, help="seconds of training per variant")
    t.add_argument("--variants", default=",".join(VARIANTS))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--work", type=Path, default=Path("/tmp/caffenet-gpu"))
    v = sub.add_parser("variant")
    v.add_argument("name", choices=list(VARIANTS))
    v.add_argument("--work", type=Path, required=True)
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--budget", type=float, required=True)
    v.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("unpack")
    u.add_argument("--results", type=Path, required=True)
    u.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "teacher":
        teacher(args.manifest, args.out)
    elif args.command == "pack":
        pack(args.manifest, args.out, args.parts, args.teacher)
    elif args.command == "train":
        train(args.data, args.out, args.budget, args.variants.split(","), args.seed, args.work)
    elif args.command == "variant":
        train_variant(VARIANTS[args.name], args.work, args.out, args.budget, args.seed)
    else:
        unpack(args.results, args.out)


if __name__ == "__main__":
    main()
