"""`agegender dataset`: index a UTKFace folder or archive into a split manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agegender_cli import service
from agegender_cli.cli.common import RichReporter, fail_cleanly, print_json, stderr, stdout
from agegender_cli.config import DEFAULT_DATA_DIR, DatasetConfig
from agegender_cli.labels import AGE_CLASSES, GENDERS


@fail_cleanly
def dataset(
    source: Annotated[Path, typer.Argument(help="UTKFace folder (any depth), .tar.gz or .zip.")],
    out: Annotated[Path, typer.Option(help="Folder that receives manifest.csv.")] = DEFAULT_DATA_DIR,
    gaps: Annotated[str, typer.Option(help="Ages between the classes: 'drop' (the report) or 'nearest'.")] = "drop",
    seed: Annotated[int, typer.Option(help="Seed of the stratified 70/10/20 split.")] = 0,
    check: Annotated[bool, typer.Option(help="Decode every image to catch unreadable files.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print only JSON.")] = False,
) -> None:
    """Parse UTKFace names, map ages to 8 classes, split 70/10/20 (stratified), write manifest.csv."""
    if gaps not in ("drop", "nearest"):
        raise typer.BadParameter("choose 'drop' or 'nearest'", param_hint="--gaps")
    cfg = DatasetConfig(source=source, out=out, gaps=gaps, seed=seed, check_images=check)
    summary = service.make_dataset(cfg, RichReporter())
    if as_json:
        print_json(summary)
        return
    stdout.print(counts_table(summary))
    stdout.print(
        f"{summary['n_usable']} usable images, {summary['n_skipped']} skipped; manifest: {summary['manifest']}"
    )
    gap_ages = [s for s in summary["skipped"] if "between the age classes" in s["reason"]]
    others = [s for s in summary["skipped"] if s not in gap_ages]
    if gap_ages:
        stderr.print(f"skipped {len(gap_ages)} images whose age lies between the classes (--gaps nearest keeps them)")
    for item in others[:20]:
        stderr.print(f"skipped {item['file']}: {item['reason']}", highlight=False, soft_wrap=True)
    if len(others) > 20:
        stderr.print(f"... and {len(others) - 20} more skipped files (see --json)")


def counts_table(summary: dict) -> Table:
    splits = summary["splits"]
    table = Table(title="Images per split and class")
    table.add_column("class")
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("all", justify="right")
    for group, names in (("age", AGE_CLASSES), ("gender", GENDERS)):
        for name in names:
            row = [splits[s][group][name] for s in splits]
            table.add_row(f"{group} {name}", *map(str, row), str(sum(row)))
        table.add_section()
    totals = [splits[s]["n"] for s in splits]
    table.add_row("[bold]total", *(f"{n} ({n / max(sum(totals), 1):.0%})" for n in totals), str(sum(totals)))
    return table
