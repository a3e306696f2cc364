"""Rich rendering of the report's table models (evaluation.tables)."""

from __future__ import annotations

from rich.table import Table

from agegender_cli.evaluation.tables import TableModel


def rich_table(model: TableModel) -> Table:
    table = Table(title=model.title, caption=model.note or None)
    for index, column in enumerate(model.header):
        table.add_column(column, justify="left" if index == 0 else "right")
    for i, row in enumerate(model.rows):
        table.add_row(*(f"[bold]{cell}[/]" if (i, j) in model.emphasis else cell for j, cell in enumerate(row)))
    return table
