"""`agegender train`: train architecture A (facenet) or B (caffenet) on a manifest."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated

import typer

from agegender_cli import service
from agegender_cli.cli.common import RichReporter, fail_cleanly, print_json, stdout
from agegender_cli.config import DEFAULT_MANIFEST, CaffenetTrainConfig, FacenetTrainConfig

F = FacenetTrainConfig()


@fail_cleanly
def train(
    arch: Annotated[str, typer.Option(help="facenet (A) or caffenet (B).")] = "facenet",
    manifest: Annotated[Path, typer.Option(help="Manifest from `agegender dataset`.")] = DEFAULT_MANIFEST,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/ARCH).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (default 30 facenet, 60 caffenet).")] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    precision: Annotated[str, typer.Option(help="bf16 (autocast) or fp32.")] = "bf16",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in the same folder.")] = False,
    backbone: Annotated[str, typer.Option(help="facenet: vggface2 or casia-webface.")] = F.backbone,
    backbone_weights: Annotated[Path | None, typer.Option(help="facenet: backbone .pt or .pb file.")] = None,
    preprocess: Annotated[str, typer.Option(help="facenet: paper (the report's) or none.")] = F.preprocess,
    unfreeze: Annotated[str, typer.Option(help="facenet: last_linear, block8 or repeat_3.")] = F.unfreeze,
    head: Annotated[str, typer.Option(help="facenet: linear or mlp heads.")] = F.head,
    hidden: Annotated[int, typer.Option(help="facenet: MLP hidden units.")] = F.hidden,
    dropout: Annotated[float, typer.Option(help="facenet: MLP dropout.")] = F.dropout,
    weight_decay: Annotated[float | None, typer.Option(help="Adam weight decay.")] = None,
    patience: Annotated[int, typer.Option(help="facenet: early-stopping patience (epochs).")] = F.patience,
    views: Annotated[int, typer.Option(help="facenet: augmented views cached per training image.")] = F.views,
    feature_cache: Annotated[bool, typer.Option(help="facenet: train on cached trunk features.")] = True,
    label_smoothing: Annotated[float, typer.Option(help="facenet: label smoothing.")] = 0.0,
    select: Annotated[str, typer.Option(help="facenet: best-val epoch by loss or accuracy.")] = F.select,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Train an architecture on the train split; best-val checkpoint, curves, resumable."""
    if arch not in ("facenet", "caffenet"):
        raise typer.BadParameter("choose facenet or caffenet", param_hint="--arch")
    given = dict(manifest=manifest, batch_size=batch_size, lr=lr, device=device, precision=precision,
                 seed=seed, resume=resume, out=out or Path("runs") / arch)
    if epochs is not None:
        given["epochs"] = epochs
    if weight_decay is not None:
        given["weight_decay"] = weight_decay
    if arch == "facenet":
        given.update(backbone=backbone, backbone_weights=backbone_weights, preprocess=preprocess,
                     unfreeze=unfreeze, head=head, hidden=hidden, dropout=dropout, patience=patience, views=views,
                     feature_cache=feature_cache, label_smoothing=label_smoothing, select=select)
    base = FacenetTrainConfig() if arch == "facenet" else CaffenetTrainConfig()
    known = {f.name for f in fields(base)}
    cfg = replace(base, **{k: v for k, v in given.items() if k in known})
    result = service.train(arch, cfg, RichReporter())
    if as_json:
        print_json(result)
        return
    stdout.print(f"[bold]{arch}[/] trained: {result.get('epochs')} epochs, best epoch {result.get('best_epoch')}")
    for key in ("checkpoint", "model_dir", "curves"):
        if result.get(key):
            stdout.print(f"{key}: {result[key]}")
    if result.get("val"):
        stdout.print("val: " + ", ".join(f"{k} {v:.4f}" for k, v in result["val"].items()
                                         if isinstance(v, float)))
