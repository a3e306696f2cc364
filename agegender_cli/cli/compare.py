"""`agegender compare`: every architecture on the same images, tables side by side, statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agegender_cli import service
from agegender_cli.cli.common import (
    RichReporter,
    check_split_option,
    fail_cleanly,
    parse_arch_option,
    print_json,
    stderr,
    stdout,
)
from agegender_cli.cli.tables import report_tables
from agegender_cli.config import DEFAULT_MANIFEST, EvaluateConfig
from agegender_cli.formatting import num, pct


@fail_cleanly
def compare(
    arch: Annotated[str, typer.Option(help="Architectures, comma-separated, or both.")] = "both",
    manifest: Annotated[Path, typer.Option(help="Manifest from `agegender dataset`.")] = DEFAULT_MANIFEST,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    images: Annotated[Path | None, typer.Option(help="A UTKFace-named folder, evaluated whole.")] = None,
    facenet_model: Annotated[Path | None, typer.Option(help="facenet checkpoint (default: bundled).")] = None,
    caffenet_model: Annotated[Path | None, typer.Option(help="caffenet folder (default: bundled).")] = None,
    caffe_weights: Annotated[Path | None, typer.Option(help="Original caffemodels folder, or 'original'.")] = None,
    backbone_weights: Annotated[Path | None, typer.Option(help="facenet backbone .pt/.pb (offline use).")] = None,
    engine: Annotated[str, typer.Option(help="caffenet engine: opencv (cv2.dnn) or torch.")] = "opencv",
    precision: Annotated[str, typer.Option(help="bf16 or fp32.")] = "bf16",
    plots: Annotated[Path | None, typer.Option(help="Folder for ROC, confusion and error figures.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write a Markdown report (with figures).")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """The report's tables for every architecture, bootstrap CIs, McNemar's test, per-race/gender gaps."""
    archs = parse_arch_option(arch)
    check_split_option(split)
    cfg = EvaluateConfig(
        archs=archs,
        manifest=manifest,
        split=split,
        images=images,
        facenet_model=facenet_model,
        caffenet_model=caffenet_model,
        caffe_weights=caffe_weights,
        backbone_weights=backbone_weights,
        engine=engine,
        precision=precision,
        plots=plots,
        report=report,
        bootstrap=bootstrap,
        seed=seed,
    )
    result = service.compare(cfg, RichReporter())
    if as_json:
        print_json(result)
        return
    results = {a: result[a] for a in archs}
    cis = {a: result[a]["ci95"] for a in archs}
    for table in report_tables(results, cis, confusion=False):
        stdout.print(table)
    if result["mcnemar"]:
        stdout.print(mcnemar_table(result["mcnemar"]))
    stdout.print(groups_table(results, "race"))
    for failure in result["failed"]:
        stderr.print(f"[red]skipped[/] {failure['error']}", highlight=False)
    for key in ("report",):
        if result.get(key):
            stdout.print(f"{key}: {result[key]}")


def mcnemar_table(tests: dict) -> Table:
    table = Table(title="McNemar's test (b: only the first right, c: only the second)")
    for column in ("pair", "task", "b", "c", "statistic", "p-value", "method"):
        table.add_column(column)
    for pair, tasks in tests.items():
        for task, t in tasks.items():
            table.add_row(pair, task, str(t["b"]), str(t["c"]), num(t["statistic"]), f"{t['p_value']:.3g}", t["method"])
    return table


def groups_table(results: dict, group: str) -> Table:
    table = Table(title=f"Accuracy per {group} (gender / age)")
    table.add_column(group)
    for arch in results:
        table.add_column(arch, justify="right")
    names = list(next(iter(results.values()))["groups"][group]["metrics"])
    for name in names:
        cells = []
        for r in results.values():
            m = r["groups"][group]["metrics"][name]
            cells.append(f"{pct(m['gender_accuracy'])} / {pct(m['age_accuracy'])} (n={m['n']})")
        table.add_row(name, *cells)
    for arch, r in results.items():
        for metric, gap in r["groups"][group]["largest_gap"].items():
            if gap and gap.get("gap") is not None:
                table.add_row(
                    f"[dim]{arch}: largest {metric.split('_')[0]} gap[/]",
                    *(
                        [f"{gap['best_group']} vs {gap['worst_group']}: {100 * gap['gap']:.1f} pts"]
                        + [""] * (len(results) - 1)
                    ),
                )
    return table
