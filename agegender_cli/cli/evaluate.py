"""`agegender evaluate`: the metrics of one or more architectures on a manifest split or a UTKFace folder."""

from __future__ import annotations

from agegender_cli import service
from agegender_cli.cli import options as o
from agegender_cli.cli.common import RichReporter, fail_cleanly, print_json, stderr, stdout
from agegender_cli.cli.tables import rich_table
from agegender_cli.config import EvaluateConfig, ModelOptions
from agegender_cli.evaluation.tables import report_tables

D = EvaluateConfig()
M = D.options


@fail_cleanly
@o.with_model_options(M)
def evaluate(
    arch: o.Archs = o.FIRST_ARCH,
    manifest: o.Manifest = D.manifest,
    split: o.Split = D.split,
    images: o.Images = D.images,
    detector: o.EvalDetector = D.detector,
    plots: o.Plots = D.plots,
    as_json: o.Json = False,
    options: ModelOptions = M,
) -> None:
    """Accuracy, per-class precision/recall/F/FNR/FPR, ROC-AUC, age-class error: the report's tables."""
    archs = o.parse_archs(arch)
    cfg = EvaluateConfig(archs=archs, manifest=manifest, split=split, images=images, options=options, plots=plots,
                         detector=detector)
    result = service.evaluate(cfg, RichReporter())
    if as_json:
        print_json(result)
        o.exit_if_failed(result)
        return
    results = {archs[0]: result} if len(archs) == 1 else result["results"]
    for table in report_tables(results):
        stdout.print(rich_table(table))
    o.print_detection(result.get("detection"))
    for failure in result["failed"]:
        stderr.print(f"[red]skipped[/] {failure['error']}", highlight=False)
    for path in result.get("plots", []):
        stdout.print(f"figure: {path}")
    o.exit_if_failed(result)
