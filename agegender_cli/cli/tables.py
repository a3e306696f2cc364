"""Rich rendering of the report's table models (evaluation.tables), and tables that fit a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

if TYPE_CHECKING:
    from agegender_cli.evaluation.tables import TableModel


def rich_table(model: TableModel) -> Table:
    """Labels left, numbers right; a cell too long for a narrow terminal folds onto more lines, never cut."""
    table = Table(title=model.title, caption=model.note or None)
    for index, column in enumerate(model.header):
        table.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
    for i, row in enumerate(model.rows):
        table.add_row(*(f"[bold]{cell}[/]" if (i, j) in model.emphasis else cell for j, cell in enumerate(row)))
    return table


def natural_width(table: Table) -> int:
    """The columns a table takes when nothing is folded."""
    console = Console(width=100_000)
    return Measurement.get(console, console.options, table).maximum
