"""The comparison report as blocks (headings, text, tables, figures), rendered to Markdown or self-contained HTML;
every number comes from the results, nothing is written by hand."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agegender_cli.evaluation.coverage import coverage_table
from agegender_cli.evaluation.provenance_tables import deviations_table, provenance_tables, rerun_line, skipped_table
from agegender_cli.evaluation.result import Coverage, Figure, ModelResult, PairTests, Provenance
from agegender_cli.evaluation.tables import TableModel, groups_table, mcnemar_table, report_tables
from agegender_cli.evaluation.years_tables import wilcoxon_table

TITLE = "Gender and age classification: architectures compared"


@dataclass(frozen=True)
class Text:
    """A paragraph; `code` spans and **bold** are the only markup."""

    text: str


@dataclass(frozen=True)
class FigureRef:
    number: int
    path: str
    caption: str


Block = Text | TableModel | FigureRef


def report_blocks(results: Mapping[str, ModelResult], tests: Mapping[str, PairTests], provenance: Provenance,
                  figures: Sequence[Figure], coverage: Coverage | None = None,
                  training_overlap: Mapping[str, int] | None = None, normalize: bool = False) -> list[Block]:
    """The whole comparison in reading order: what was run on what, every image counted by what happened to it,
    the tables with their intervals, the statistics, per-group accuracy and gaps, the provenance needed to cite and
    rerun it, the figures."""
    data = provenance.data
    skipped = len(data.skipped)
    counted = (f"{coverage.scored:,} faces scored of {coverage.seen:,} images seen (what happened to each: Data and "
               "coverage)" if coverage is not None else f"{data.used:,} faces used of {data.listed:,} listed"
               + (f", {skipped:,} skipped (see below)" if skipped else ""))
    blocks: list[Block] = [Text(
        f"Images: `{data.source}`: {counted}. Every headline number carries its 95% "
        f"interval: Wilson's for the shares of faces (accuracies, one-off), else a bootstrap "
        f"({provenance.bootstrap.resamples} resamples, seed {provenance.seed}); "
        f"the provenance section holds the hashes and the command line that regenerate this report."),
        Text(rerun_line(provenance))]
    if coverage is not None:
        blocks.append(coverage_table(coverage, training_overlap or {}))
    blocks.append(deviations_table())
    blocks += report_tables(results, confusion=False, normalize=normalize)
    if tests:
        blocks.append(mcnemar_table(tests))
        blocks += [table for table in (wilcoxon_table(tests),) if table is not None]
    groups = next(iter(results.values())).groups
    blocks += [groups_table(results, group) for group in groups]
    blocks += provenance_tables(provenance)
    if skipped:
        blocks.append(skipped_table(data.skipped))
    blocks += [FigureRef(k, f.path, f.caption) for k, f in enumerate(figures, 1)]
    return blocks


def markdown_table(model: TableModel) -> str:
    """A table model as GitHub Markdown, with its title as a heading and its note below."""
    cells = [[f"**{_cell(c)}**" if (i, j) in model.emphasis else _cell(c) for j, c in enumerate(row)]
             for i, row in enumerate(model.rows)]
    lines = [f"## {model.title}", "", "| " + " | ".join(model.header) + " |", "|" + "---|" * len(model.header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    if model.note:
        lines += ["", model.note]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(blocks: list[Block], base: Path) -> str:
    """Markdown, the figures linked relative to `base` (the report's folder): images for PNG and SVG, a link
    for PDF (which Markdown viewers do not show inline)."""
    out = [f"# {TITLE}", ""]
    figures_started = False
    for block in blocks:
        if isinstance(block, Text):
            out += [block.text, ""]
        elif isinstance(block, TableModel):
            out.append(markdown_table(block))
        else:
            if not figures_started:
                out += ["## Figures", ""]
                figures_started = True
            link = os.path.relpath(block.path, base).replace(os.sep, "/")
            shown = f"[Figure {block.number} (PDF)]({link})" if link.endswith(".pdf") else \
                f"![Figure {block.number}]({link})"
            out += [shown, "", f"*Figure {block.number}.* {block.caption}", ""]
    return "\n".join(out)


def written_by_us(path: Path) -> bool:
    """Whether an existing file is a report this tool wrote (Markdown or HTML: its title in the first 4 kB)."""
    import html

    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith(f"# {TITLE}\n") or f"<title>{html.escape(TITLE)}</title>" in head
