"""Paired percentile bootstrap: every statistic is computed on the same resamples, given as per-sample counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

# A statistic of weighted samples: (resamples, n) counts of each sample in each resample -> (resamples,) values.
Statistic = Callable[[np.ndarray], np.ndarray]
CELLS_PER_CHUNK = 4_000_000  # resamples are drawn in chunks of at most this many counts (memory stays flat)


def resample_counts(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """How often each of n samples is drawn in each resample with replacement, chunk by chunk (seeded)."""
    rng = np.random.default_rng(seed)
    rows = max(1, CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, n_resamples, rows):
        r = min(rows, n_resamples - start)
        draws = rng.integers(0, n, (r, n)) + (np.arange(r) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=r * n).reshape(r, n).astype(np.float64)


def bootstrap_intervals(
    statistics: Mapping[str, Statistic], n: int, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float] | None]:
    """Percentile interval of every statistic over the same resamples; None where no resample defines it
    (a resample that leaves out a group or a class gives nan for that statistic and is left out)."""
    if n < 1:
        raise ValueError("a bootstrap needs at least one sample")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    values: dict[str, list[np.ndarray]] = {name: [] for name in statistics}
    for counts in resample_counts(n, n_resamples, seed):
        for name, statistic in statistics.items():
            with np.errstate(invalid="ignore", divide="ignore"):  # a resample without a group's faces gives nan
                values[name].append(statistic(counts))
    tail = (1 - level) / 2
    intervals: dict[str, tuple[float, float] | None] = {}
    for name, parts in values.items():
        drawn = np.concatenate(parts)
        drawn = drawn[np.isfinite(drawn)]
        if len(drawn) == 0:
            intervals[name] = None
            continue
        low, high = np.quantile(drawn, [tail, 1 - tail])
        intervals[name] = (float(low), float(high))
    return intervals


def _sums_by_key(counts: np.ndarray, keys: np.ndarray, size: int, values: np.ndarray | None = None) -> np.ndarray:
    """(resamples, size): per key 0..size-1, the weighted sum of `values` (1 if None) in each resample."""
    sums = np.zeros((len(counts), size))
    if len(keys) == 0:
        return sums
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    weighted = counts[:, order] if values is None else counts[:, order] * values[order]
    sums[:, sorted_keys[starts]] = np.add.reduceat(weighted, starts, axis=1)
    return sums


def on(mask: np.ndarray, statistic: Statistic) -> Statistic:
    """`statistic` (built on the samples in `mask` only) computed on those samples' counts."""
    mask = np.asarray(mask, bool)
    if not mask.any():  # no face has this task's label: undefined in every resample
        return lambda counts: np.full(len(counts), np.nan)
    return lambda counts: statistic(counts[:, mask])


def mean_of(values: np.ndarray, mask: np.ndarray | None = None) -> Statistic:
    """The mean of `values` (over the samples in `mask`); nan in a resample that draws none of them."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.ones(len(values), bool) if mask is None else np.asarray(mask, bool)

    def statistic(counts: np.ndarray) -> np.ndarray:
        weight = counts[:, mask].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return counts[:, mask] @ values[mask] / weight

    return statistic


def std_of(values: np.ndarray) -> Statistic:
    """The (population) standard deviation of `values`."""
    values = np.asarray(values, dtype=np.float64)

    def statistic(counts: np.ndarray) -> np.ndarray:
        total = counts.sum(axis=1)
        mean = counts @ values / total
        return np.sqrt(np.maximum(counts @ values**2 / total - mean**2, 0.0))

    return statistic


def difference(first: Statistic, second: Statistic) -> Statistic:
    """first - second on the same resamples (a paired difference)."""
    return lambda counts: first(counts) - second(counts)


def auc_of(positive: np.ndarray, score: np.ndarray) -> Statistic:
    """ROC AUC (Mann-Whitney, ties count one half); nan in a resample holding one class only."""
    positive = np.asarray(positive, bool)
    ranks = np.unique(np.asarray(score, np.float64), return_inverse=True)[1]

    size = int(ranks.max()) + 1 if len(ranks) else 1

    def statistic(counts: np.ndarray) -> np.ndarray:
        pos = _sums_by_key(counts[:, positive], ranks[positive], size)
        neg = _sums_by_key(counts[:, ~positive], ranks[~positive], size)
        below = np.cumsum(neg, axis=1) - neg
        with np.errstate(invalid="ignore", divide="ignore"):
            return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))

    return statistic


def macro_f1_of(true: np.ndarray, pred: np.ndarray, n_classes: int) -> Statistic:
    """Macro F1 over the classes present in the resample's truth or predictions (as sklearn's default)."""
    true, pred = np.asarray(true, np.int64), np.asarray(pred, np.int64)
    cells = true * n_classes + pred

    def statistic(counts: np.ndarray) -> np.ndarray:
        matrix = _sums_by_key(counts, cells, n_classes * n_classes).reshape(len(counts), n_classes, n_classes)
        tp = np.diagonal(matrix, axis1=1, axis2=2)
        support, predicted = matrix.sum(axis=2), matrix.sum(axis=1)
        present = (support + predicted) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(present, 2 * tp / (support + predicted), 0.0)
        return f1.sum(axis=1) / present.sum(axis=1)

    return statistic


def ece_of(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> Statistic:
    """Expected calibration error over equal-width confidence bins (see calibration.bin_index)."""
    from agegender_cli.evaluation.calibration import bin_index

    bins = bin_index(confidence, n_bins)
    gap = np.asarray(correct, np.float64) - np.asarray(confidence, np.float64)

    def statistic(counts: np.ndarray) -> np.ndarray:
        sums = _sums_by_key(counts, bins, n_bins, gap)
        return np.abs(sums).sum(axis=1) / counts.sum(axis=1)

    return statistic
