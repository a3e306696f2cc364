"""`agegender evaluate`: the metrics of one or more architectures on a manifest split or a UTKFace folder."""

from typing import Annotated

import typer

from agegender_cli.cli import options as o
from agegender_cli.cli.common import RichReporter, command_line, fail_cleanly, print_json, show_table, stdout
from agegender_cli.cli.tables import rich_table
from agegender_cli.config import EvaluateConfig, ModelOptions

D = EvaluateConfig()
M = D.options


@fail_cleanly
@o.with_model_options(M)
def evaluate(
    arch: o.Archs = "both",
    manifest: o.Manifest = D.manifest,
    split: o.Split = D.split,
    images: o.Images = D.images,
    labels: o.EvalLabels = D.labels,
    detector: o.EvalDetector = D.detector,
    pick: o.Pick = D.pick,
    plots: o.Plots = D.plots,
    plot_format: o.PlotFormat = D.plot_format,
    normalize: o.Normalize = D.normalize,
    bootstrap: o.Bootstrap = D.bootstrap,
    seed: o.Seed = D.seed,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Let --plots replace files agegender did not write.")] = D.overwrite,
    as_json: o.Json = False,
    options: ModelOptions = M,
) -> None:
    """Accuracy, per-class precision/recall/F/FNR/FPR, ROC-AUC, age-class error, calibration (ECE), each
    headline number with its 95% interval: the report's tables."""
    from agegender_cli import service
    from agegender_cli.evaluation.tables import groups_table, report_tables

    archs = o.parse_archs(arch)
    cfg = EvaluateConfig(archs=archs, manifest=manifest, split=split, images=images, labels=labels, options=options,
                         plots=plots,
                         plot_format=plot_format, normalize=normalize, bootstrap=bootstrap, seed=seed,
                         command_line=command_line(), detector=detector, pick=pick, overwrite=overwrite)
    result = service.evaluate(cfg, RichReporter())
    if as_json:
        print_json(result.to_json())
        o.exit_if_failed(result)
        return
    if show_table():
        for table in report_tables(result.results, normalize=normalize):
            stdout.print(rich_table(table))
        for group in next(iter(result.results.values())).groups:
            stdout.print(rich_table(groups_table(result.results, group)))
    o.print_after_evaluation(result)
