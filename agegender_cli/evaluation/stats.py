"""Bootstrap intervals, McNemar's test and per-group accuracy for comparing the architectures."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

EXACT_BELOW = 25  # McNemar: b + c below this uses the exact binomial test


def bootstrap_ci(
    correct: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy of a boolean per-sample `correct` array."""
    from agegender_cli.evaluation.bootstrap import bootstrap_intervals, mean_of

    correct = np.asarray(correct, dtype=bool).reshape(-1)
    if len(correct) == 0:
        raise ValueError("bootstrap_ci needs at least one sample")
    return bootstrap_intervals({"accuracy": mean_of(correct)}, len(correct), n_resamples, seed, level)["accuracy"]


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's test of paired correctness: b = only A right, c = only B right; two-sided p-value."""
    correct_a = np.asarray(correct_a, dtype=bool).reshape(-1)
    correct_b = np.asarray(correct_b, dtype=bool).reshape(-1)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"paired arrays differ in length: {len(correct_a)} and {len(correct_b)}")
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    if b + c < EXACT_BELOW:
        statistic, p_value, method = float(min(b, c)), _exact_binomial_p(b, c), "exact binomial"
    else:
        statistic = (abs(b - c) - 1) ** 2 / (b + c)
        # chi-square survival function with one degree of freedom
        p_value, method = math.erfc(math.sqrt(statistic / 2)), "chi-square with continuity correction"
    return {"b": b, "c": c, "statistic": float(statistic), "p_value": float(p_value), "method": method}


def _exact_binomial_p(b: int, c: int) -> float:
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def group_metrics(
    groups: np.ndarray,
    gender_true: np.ndarray,
    gender_pred: np.ndarray,
    age_true: np.ndarray,
    age_pred: np.ndarray,
) -> dict[str, dict]:
    """Per group value (keyed by str(value), in sorted order): n (faces with a label of either task), gender and
    age accuracy, age one-off; a label of -1 (not given) is left out of its task (None when a group has none),
    and a face with neither (an age between the classes, scored in years only) is not counted."""
    groups = np.asarray(groups).reshape(-1)
    arrays = [np.asarray(a).reshape(-1) for a in (gender_true, gender_pred, age_true, age_pred)]
    if any(len(a) != len(groups) for a in arrays):
        raise ValueError("groups and predictions must have the same length")
    gender_true, gender_pred, age_true, age_pred = arrays
    result = {}
    for value in np.unique(groups):
        mask = groups == value
        gender_mask, age_mask = mask & (gender_true >= 0), mask & (age_true >= 0)
        age_distance = np.abs(age_pred[age_mask].astype(np.int64) - age_true[age_mask].astype(np.int64))
        result[str(value)] = {
            "n": int((gender_mask | age_mask).sum()),
            "gender_accuracy": _mean(gender_pred[gender_mask] == gender_true[gender_mask]),
            "age_accuracy": _mean(age_distance == 0),
            "one_off": _mean(age_distance <= 1),
        }
    return result


def _mean(hits: np.ndarray) -> float | None:
    return float(np.mean(hits)) if len(hits) else None


def largest_gap(group_dict: Mapping[str, Mapping], key: str, min_n: int = 1) -> dict:
    """Best and worst group by `key` among groups with at least `min_n` samples; ties keep the first."""
    values = {
        group: metrics[key]
        for group, metrics in group_dict.items()
        if metrics.get(key) is not None and metrics.get("n", min_n) >= min_n
    }
    if not values:
        return {
            "metric": key,
            "best_group": None,
            "worst_group": None,
            "best": None,
            "worst": None,
            "gap": None,
            "n_best": None,
            "n_worst": None,
        }
    best = max(values, key=values.__getitem__)
    worst = min(values, key=values.__getitem__)
    return {
        "metric": key,
        "best_group": best,
        "worst_group": worst,
        "best": float(values[best]),
        "worst": float(values[worst]),
        "gap": float(values[best] - values[worst]),
        "n_best": group_dict[best].get("n"),
        "n_worst": group_dict[worst].get("n"),
    }


def gap_doubt(gap: Mapping, ci95: tuple[float, float] | None, min_n: int) -> str | None:
    """Why a group gap cannot be trusted (its interval includes 0, or the smaller group has fewer than
    `min_n` faces), or None when it can."""
    reasons = []
    smaller = min(n for n in (gap.get("n_best"), gap.get("n_worst")) if n is not None)
    if smaller < min_n:
        reasons.append(f"n = {smaller} < {min_n}")
    if ci95 is None or ci95[0] <= 0 <= ci95[1]:
        reasons.append("interval includes 0")
    return "; ".join(reasons) or None
