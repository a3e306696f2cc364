"""`agegender evaluate`: one architecture's metrics on a manifest split or a UTKFace folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agegender_cli import service
from agegender_cli.cli.common import RichReporter, check_split_option, fail_cleanly, print_json, stderr, stdout
from agegender_cli.cli.tables import report_tables
from agegender_cli.config import DEFAULT_MANIFEST, EvaluateConfig


@fail_cleanly
def evaluate(
    arch: Annotated[str, typer.Option(help="facenet or caffenet.")] = "facenet",
    manifest: Annotated[Path, typer.Option(help="Manifest from `agegender dataset`.")] = DEFAULT_MANIFEST,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    images: Annotated[Path | None, typer.Option(help="A UTKFace-named folder, evaluated whole.")] = None,
    model: Annotated[Path | None, typer.Option(help="facenet .pt or caffenet folder (default: bundled).")] = None,
    caffe_weights: Annotated[Path | None, typer.Option(help="Original caffemodels folder, or 'original'.")] = None,
    backbone_weights: Annotated[Path | None, typer.Option(help="facenet backbone .pt/.pb (offline use).")] = None,
    engine: Annotated[str, typer.Option(help="caffenet engine: opencv (cv2.dnn) or torch.")] = "opencv",
    precision: Annotated[str, typer.Option(help="bf16 or fp32.")] = "bf16",
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    plots: Annotated[Path | None, typer.Option(help="Folder for ROC, confusion and error figures.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Accuracy, per-class precision/recall/F/FNR/FPR, ROC-AUC, age-class error: the report's tables."""
    if arch not in ("facenet", "caffenet"):
        raise typer.BadParameter("choose facenet or caffenet", param_hint="--arch")
    check_split_option(split)
    cfg = EvaluateConfig(
        archs=(arch,),
        manifest=manifest,
        split=split,
        images=images,
        caffe_weights=caffe_weights,
        backbone_weights=backbone_weights,
        facenet_model=model if arch == "facenet" else None,
        caffenet_model=model if arch == "caffenet" else None,
        engine=engine,
        precision=precision,
        batch_size=batch_size,
        plots=plots,
    )
    result = service.evaluate(cfg, RichReporter())
    if as_json:
        print_json(result)
        return
    for table in report_tables({arch: result}):
        stdout.print(table)
    for failure in result["failed"]:
        stderr.print(f"[red]skipped[/] {failure['error']}", highlight=False)
    for path in result.get("plots", []):
        stdout.print(f"figure: {path}")
