"""How numbers are written in tables and reports."""

from __future__ import annotations


def pct(value: float | None) -> str:
    """0.8735 -> '87.35%'; None (undefined, e.g. 0/0) -> '-'."""
    return "-" if value is None else f"{100 * value:.2f}%"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


METRIC_ROWS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F-score"),
               ("miss_rate", "Miss rate (FNR)"), ("fall_out", "Fall-out (FPR)"))
