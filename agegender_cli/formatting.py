"""How numbers are written in tables, reports and messages."""

from __future__ import annotations


def pct(value: float | None, digits: int = 2) -> str:
    """0.8735 -> '87.35%'; None (undefined, e.g. 0/0) -> '-'."""
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def with_interval(value: float | None, ci, *, share: bool = True) -> str:
    """A value with its 95% interval: '92.51% [91.5%, 93.5%]' for shares, '0.976 [0.971, 0.980]' otherwise."""
    text = pct(value) if share else num(value)
    if ci is None or value is None:
        return text
    low, high = ci
    return f"{text} [{pct(low, 1)}, {pct(high, 1)}]" if share else f"{text} [{low:.3f}, {high:.3f}]"


def years(value: float | None, ci=None) -> str:
    """Years with two decimals, and the 95% interval when given: '4.64 [4.49, 4.80]'."""
    if value is None:
        return "-"
    return f"{value:.2f}" if ci is None else f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def plural(n: int, word: str, words: str | None = None) -> str:
    """1 -> '1 face', 3 -> '3 faces' (`words` for irregular plurals); thousands separated."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"


METRIC_ROWS = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F-score"),
               ("miss_rate", "Miss rate (FNR)"), ("fall_out", "Fall-out (FPR)"))
