"""`agegender compare`: every architecture on the same images, tables side by side, statistics."""

from pathlib import Path
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
def compare(
    arch: o.Archs = "both",
    manifest: o.Manifest = D.manifest,
    split: o.Split = D.split,
    images: o.Images = D.images,
    labels: o.EvalLabels = D.labels,
    detector: o.EvalDetector = D.detector,
    pick: o.Pick = D.pick,
    plots: o.Plots = D.plots,
    report: Annotated[Path | None, typer.Option(
        help="Write a report with provenance, intervals and figures: Markdown (figures in NAME_figures/), or "
             "one self-contained HTML file for .html.")] = D.report,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Let --report and --plots replace files agegender did not write.")] = D.overwrite,
    plot_format: o.PlotFormat = D.plot_format,
    normalize: o.Normalize = D.normalize,
    bootstrap: o.Bootstrap = D.bootstrap,
    seed: o.Seed = D.seed,
    as_json: o.Json = False,
    options: ModelOptions = M,
) -> None:
    """The report's tables for every architecture with 95% intervals, calibration (ECE), McNemar's test,
    per-race/gender accuracy and gaps."""
    from agegender_cli import service
    from agegender_cli.evaluation.tables import groups_table, mcnemar_table, report_tables
    from agegender_cli.evaluation.years_tables import wilcoxon_table

    archs = o.parse_archs(arch)
    cfg = EvaluateConfig(archs=archs, manifest=manifest, split=split, images=images, labels=labels, options=options,
                         plots=plots,
                         report=report, bootstrap=bootstrap, seed=seed, plot_format=plot_format, normalize=normalize,
                         command_line=command_line(), detector=detector, pick=pick, overwrite=overwrite)
    result = service.compare(cfg, RichReporter())
    if as_json:
        print_json(result.to_json())
        o.exit_if_failed(result)
        return
    if show_table():
        for table in report_tables(result.results, confusion=False):
            stdout.print(rich_table(table))
        if result.tests:
            stdout.print(rich_table(mcnemar_table(result.tests)))
            years_test = wilcoxon_table(result.tests)
            if years_test is not None:
                stdout.print(rich_table(years_test))
        for group in next(iter(result.results.values())).groups:
            stdout.print(rich_table(groups_table(result.results, group)))
    o.print_after_evaluation(result)
