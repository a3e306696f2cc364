"""Spreadsheet-safe CSV cells: text that a spreadsheet would run as a formula is quoted (OWASP, CSV injection)."""

from __future__ import annotations

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets; a leading quote is
# escaped too, so that reading a cell back (plain_cell) is exact.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def safe_cell(value: object) -> object:
    """`value` as a CSV cell: text starting like a formula gets a leading `'`; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def plain_cell(text: str) -> str:
    """A cell written by safe_cell, as it was."""
    return text[1:] if text.startswith("'") else text
