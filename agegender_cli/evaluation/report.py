"""The Markdown comparison report, regenerated from the metrics (no hand-written numbers)."""

from __future__ import annotations

import os
from pathlib import Path

from agegender_cli.evaluation.tables import TableModel, groups_table, mcnemar_table, report_tables


def markdown_table(model: TableModel) -> str:
    """A table model as GitHub Markdown, with its title as a heading and its note below."""
    cells = [[f"**{c}**" if (i, j) in model.emphasis else c for j, c in enumerate(row)]
             for i, row in enumerate(model.rows)]
    lines = [f"## {model.title}", "", "| " + " | ".join(model.header) + " |", "|" + "---|" * len(model.header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    if model.note:
        lines += ["", model.note]
    return "\n".join(lines) + "\n"


def markdown_report(results: dict, mcnemar: dict, source: str, figures: list[str], base: Path) -> str:
    """The whole comparison: the CLI's tables, one per section, then the figures."""
    cis = {a: r["ci95"] for a, r in results.items() if "ci95" in r}
    out = ["# Gender and age classification: architectures compared", "",
           f"Images: `{source}`, {next(iter(results.values()))['n']} faces. "
           "Accuracies with bootstrap 95% confidence intervals.", ""]
    models = report_tables(results, cis, confusion=False)
    if mcnemar:
        models.append(mcnemar_table(mcnemar))
    groups = next(iter(results.values())).get("groups", {})
    models += [groups_table(results, group) for group in groups]
    out += [markdown_table(model) for model in models]
    if figures:
        out += ["## Figures", ""]
        out += [f"![{Path(f).stem}]({os.path.relpath(f, base)})" for f in figures]
        out.append("")
    return "\n".join(out)
