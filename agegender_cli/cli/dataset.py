"""`agegender dataset`: index a UTKFace folder or archive into a split manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agegender_cli import service
from agegender_cli.cli import options as o
from agegender_cli.cli.common import RichReporter, fail_cleanly, print_json, stderr, stdout
from agegender_cli.config import DUPLICATE_POLICIES, GAPS, DatasetConfig
from agegender_cli.labels import AGE_CLASSES, GENDERS

D = DatasetConfig()
Gaps, Policy = o.choice(GAPS), o.choice(DUPLICATE_POLICIES)


@fail_cleanly
def dataset(
    sources: Annotated[list[Path], typer.Argument(help="UTKFace folders (any depth), .tar.gz or .zip files.")],
    out: Annotated[Path, typer.Option(help="Folder that receives manifest.csv.")] = D.out,
    gaps: Annotated[Gaps, typer.Option(help="Ages between the classes: 'drop' (the report) or 'nearest'.")] = D.gaps,
    seed: Annotated[int, typer.Option(min=0, max=o.MAX_SEED, help="Seed of the stratified 70/10/20 split.")] = D.seed,
    check: Annotated[bool, typer.Option(help="Decode every image to catch unreadable files.")] = D.check_images,
    duplicates: Annotated[Policy, typer.Option(help="Copies of one photo: group (one split), drop (keep one) "
                                                    "or ignore.")] = D.duplicates,
    duplicate_threshold: Annotated[float, typer.Option(min=0.5, max=1.0, callback=o.finite,
                                                       help="Thumbnail correlation from which "
                                                       "two images are copies.")] = D.duplicate_threshold,
    keep_splits_from: Annotated[Path | None, typer.Option(help="An earlier manifest: its images keep their split "
                                                          "(a copy of a train image goes to train).")] = None,
    as_json: o.Json = False,
) -> None:
    """Parse UTKFace names, map ages to 8 classes, split 70/10/20 (stratified), write manifest.csv."""
    cfg = DatasetConfig(sources=tuple(sources), out=out, gaps=gaps, seed=seed, check_images=check,
                        duplicates=duplicates, duplicate_threshold=duplicate_threshold,
                        keep_splits_from=keep_splits_from)
    summary = service.make_dataset(cfg, RichReporter())
    if as_json:
        print_json(summary)
        return
    stdout.print(counts_table(summary))
    stdout.print(
        f"{summary['n_usable']} usable images, {summary['n_skipped']} skipped; manifest: {summary['manifest']}"
    )
    dup = summary["duplicates"]
    if dup["policy"] != "ignore":
        action = "each kept inside one split" if dup["policy"] == "group" else f"{dup['dropped']} copies dropped"
        stdout.print(f"duplicates: {dup['groups']} groups of copies ({dup['images']} images, "
                     f"{dup['conflicting_labels']} with conflicting labels), {action}")
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
