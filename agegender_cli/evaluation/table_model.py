"""A table as plain text cells, before any renderer (Rich, Markdown, HTML) draws it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableModel:
    """One table: cells are plain text; `emphasis` marks (row, column) cells to stress (a diagonal)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    emphasis: frozenset[tuple[int, int]] = frozenset()
    note: str = ""
