"""`agegender dataset`: index a UTKFace folder or archive into a split manifest."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agegender_cli.cli import options as o
from agegender_cli.cli.common import RichReporter, fail_cleanly, print_json, show_table, stderr, stdout
from agegender_cli.config import DUPLICATE_POLICIES, GAPS, LABEL_FORMATS, DatasetConfig
from agegender_cli.errors import AgeGenderError
from agegender_cli.formatting import plural
from agegender_cli.labels import AGE_CLASSES, GENDERS

D = DatasetConfig()
Gaps, Policy, LabelFormat = o.choice(GAPS), o.choice(DUPLICATE_POLICIES), o.choice(LABEL_FORMATS)


@fail_cleanly
def dataset(
    sources: Annotated[list[Path], typer.Argument(help="UTKFace folders (any depth), .tar.gz or .zip files.")],
    out: Annotated[Path, typer.Option(help="Folder that receives manifest.csv.")] = D.out,
    gaps: Annotated[Gaps, typer.Option(help="Ages between the classes: 'drop' (the report), 'nearest', or 'keep' "
                                                    "(no age class: years only).")] = D.gaps,
    seed: Annotated[int, typer.Option(min=0, max=o.MAX_SEED, help="Seed of the stratified 70/10/20 split.")] = D.seed,
    check: Annotated[bool, typer.Option(help="Decode every image to catch unreadable files.")] = D.check_images,
    duplicates: Annotated[Policy, typer.Option(help="Copies of one photo: group (one split), drop (keep one) "
                                                    "or ignore.")] = D.duplicates,
    duplicate_threshold: Annotated[float, typer.Option(min=0.5, max=1.0, callback=o.finite,
                                                       help="Thumbnail correlation from which "
                                                       "two images are copies.")] = D.duplicate_threshold,
    keep_splits_from: Annotated[Path | None, typer.Option(help="An earlier manifest: its images keep their split "
                                                          "(a copy of a train image goes to train).")] = None,
    labels: Annotated[list[Path] | None, typer.Option(
        help="A label file instead of UTKFace names (repeatable): CSV/TSV, fairface_label_*.csv or Adience "
             "fold_N_data.txt.")] = None,
    label_format: Annotated[LabelFormat, typer.Option("--format", help="Label file layout: auto (by its name), csv, "
                                                      "fairface or adience.")] = D.label_format,
    columns: Annotated[list[str] | None, typer.Option(
        metavar="FIELD=HEADER,...", help="CSV/TSV headers for path, age, gender, race, split.")] = None,
    split_from_source: Annotated[bool, typer.Option(help="Keep the dataset's own split (a split column, FairFace's "
                                                    "train/val files, Adience's folds).")] = D.split_from_source,
    as_json: o.Json = False,
) -> None:
    """Index face images into manifest.csv: UTKFace names (or a label file) mapped to 8 age classes, copies
    grouped, split 70/10/20 (stratified)."""
    from agegender_cli import service
    from agegender_cli.data.labelled import parse_columns

    try:
        column_pairs = parse_columns(columns or [])
    except AgeGenderError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None
    if (columns or split_from_source or label_format != "auto") and not labels:
        raise typer.BadParameter("--columns, --format and --split-from-source need --labels FILE",
                                 param_hint="--labels")
    cfg = DatasetConfig(sources=tuple(sources), out=out, gaps=gaps, seed=seed, check_images=check,
                        duplicates=duplicates, duplicate_threshold=duplicate_threshold,
                        keep_splits_from=keep_splits_from, labels=tuple(labels or ()), label_format=label_format,
                        columns=column_pairs, split_from_source=split_from_source)
    summary = service.make_dataset(cfg, RichReporter())
    if as_json:
        print_json(summary)
        return
    if show_table():
        stdout.print(counts_table(summary))
    stdout.print(
        f"{plural(summary['n_usable'], 'usable image')}, {summary['n_skipped']:,} skipped; "
        f"manifest: {summary['manifest']}"
    )
    dup = summary["duplicates"]
    if dup["policy"] != "ignore":
        action = "each kept inside one split" if dup["policy"] == "group" else \
            f"{plural(dup['dropped'], 'copy', 'copies')} dropped"
        stdout.print(f"duplicates: {plural(dup['groups'], 'group')} of copies ({plural(dup['images'], 'image')}, "
                     f"{dup['conflicting_labels']:,} with conflicting labels), {action}")
    if summary.get("labels"):
        info = summary["labels"]
        stdout.print(f"labels: {plural(info['with_gender'], 'image')} with a gender, {info['with_age_class']:,} with "
                     "an age class")
        for reason, n in list(info["labels_left_out"].items())[:10]:
            stderr.print(f"label left out ({plural(n, 'image')}): {reason}", highlight=False, soft_wrap=True)
    gap_ages = [s for s in summary["skipped"] if "between the age classes" in s["reason"]]
    others = [s for s in summary["skipped"] if s not in gap_ages]
    if gap_ages:
        stderr.print(f"skipped {plural(len(gap_ages), 'image')} whose age lies between the classes (--gaps keep "
                     "keeps them for age in years)", soft_wrap=True)
    for item in others[:20]:
        stderr.print(f"skipped {item['file']}: {item['reason']}", highlight=False, soft_wrap=True)
    if len(others) > 20:
        stderr.print(f"... and {plural(len(others) - 20, 'more skipped file')} (see --json)")


def counts_table(summary: dict) -> Table:
    splits = summary["splits"]
    table = Table(title="Images per split and class")
    table.add_column("class", overflow="fold")
    for split in splits:
        table.add_column(split, justify="right", overflow="fold")
    table.add_column("all", justify="right", overflow="fold")
    for group, names in (("age", AGE_CLASSES), ("gender", GENDERS)):
        for name in names:
            row = [splits[s][group][name] for s in splits]
            table.add_row(f"{group} {name}", *map(str, row), str(sum(row)))
        table.add_section()
    totals = [splits[s]["n"] for s in splits]
    table.add_row("[bold]total", *(f"{n} ({n / max(sum(totals), 1):.0%})" for n in totals), str(sum(totals)))
    return table
