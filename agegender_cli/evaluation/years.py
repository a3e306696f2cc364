"""Age-in-years metrics (MAE, median error, CS@5, per group, with intervals) and the Wilcoxon signed-rank test."""

from __future__ import annotations

import math

import numpy as np

from agegender_cli.evaluation import bootstrap as b
from agegender_cli.evaluation.stats import gap_doubt, largest_gap
from agegender_cli.labels import AGE_CLASSES, GENDERS, UNKNOWN, race_name

CS_YEARS = 5  # cumulative score: share of faces within this many years
BETWEEN = "between classes"  # the per-class entry of ages in a gap between two AGE_CLASSES (age_class -1)
EXACT_UP_TO = 25  # Wilcoxon: up to this many nonzero differences (without ties) use the exact distribution


def years_metrics(
    true_age: np.ndarray,
    pred_years: np.ndarray,
    *,
    age_class: np.ndarray,
    race: np.ndarray,
    gender: np.ndarray,
    bootstrap: int = 1000,
    seed: int = 0,
    min_group_n: int = 20,
) -> dict:
    """Error in years of one model: n, mae, median_ae, cs5, bias (pred - true), seeded 95% intervals, per age
    class / race / gender tables and the largest race and gender MAE gaps; faces with a negative true age (no
    age in years) are left out. JSON-ready."""
    true_age = np.asarray(true_age).reshape(-1)
    race = np.asarray(race, dtype=object).reshape(-1)  # object: a mix of indices and names keeps its types
    columns = [np.asarray(a).reshape(-1) for a in (pred_years, age_class, gender)]
    if any(len(a) != len(true_age) for a in (*columns, race)):
        raise ValueError("true_age, pred_years, age_class, race and gender must have the same length")
    pred_years, age_class, gender = columns
    if np.any((age_class < -1) | (age_class >= len(AGE_CLASSES))):
        raise ValueError(f"age_class must lie in -1..{len(AGE_CLASSES) - 1}")
    if not np.all(np.isfinite(pred_years.astype(np.float64))):
        raise ValueError("pred_years holds a value that is not a finite number")
    if bootstrap < 1:
        raise ValueError(f"bootstrap must be at least 1, got {bootstrap}")
    keep = true_age >= 0
    error = pred_years[keep].astype(np.float64) - true_age[keep].astype(np.float64)
    groups = {
        "age_class": np.array([AGE_CLASSES[c] if c >= 0 else BETWEEN for c in age_class[keep]], dtype=object),
        "race": np.array([race_name(r) for r in race[keep]], dtype=object),
        "gender": np.array([GENDERS[g] if g >= 0 else UNKNOWN for g in gender[keep]], dtype=object),
    }
    n = len(error)
    if n == 0:
        return _empty()
    absolute = np.abs(error)
    within = absolute <= CS_YEARS
    statistics: dict[str, b.Statistic] = {
        "mae": b.mean_of(absolute), "median_ae": median_of(absolute), "cs5": b.mean_of(within)}
    order = {"age_class": [*AGE_CLASSES, BETWEEN]}
    tables: dict[str, dict] = {}
    for name, labels in groups.items():
        names = order.get(name, sorted(set(labels)))
        tables[name] = {group: _cell(absolute[labels == group], within[labels == group])
                        for group in names if np.any(labels == group)}
    gaps = {}
    for name in ("race", "gender"):
        for group in tables[name]:
            statistics[f"{name}:{group}"] = b.mean_of(absolute, groups[name] == group)
        gaps[name] = _mae_gap({g: m for g, m in tables[name].items() if g != UNKNOWN})
        if gaps[name]["gap"] is not None:
            statistics[f"gap:{name}"] = b.difference(
                b.mean_of(absolute, groups[name] == gaps[name]["worst_group"]),
                b.mean_of(absolute, groups[name] == gaps[name]["best_group"]))
    found = {key: _listed(interval) for key, interval in b.bootstrap_intervals(statistics, n, bootstrap, seed).items()}
    for name in ("race", "gender"):
        for group, cell in tables[name].items():
            cell["ci95"] = {"mae": found[f"{name}:{group}"]}
        gap = gaps[name]
        gap["ci95"] = found.get(f"gap:{name}")
        gap["doubt"] = gap_doubt(gap, gap["ci95"], min_group_n) if gap["gap"] is not None else None
        gap["uncertain"] = gap["doubt"] is not None or gap["gap"] is None
    return {
        "n": n,
        "mae": float(absolute.mean()),
        "median_ae": float(np.median(absolute)),
        "cs5": float(within.mean()),
        "bias": float(error.mean()),
        "ci95": {key: found[key] for key in ("mae", "median_ae", "cs5")},
        "per_age_class": tables["age_class"],
        "per_race": tables["race"],
        "per_gender": tables["gender"],
        "largest_gap": gaps,
    }


def median_of(values: np.ndarray) -> b.Statistic:
    """The median of `values` (mean of the two middle ones for an even count); nan in an empty resample."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranked = values[order]

    def statistic(counts: np.ndarray) -> np.ndarray:
        reached = np.cumsum(counts[:, order], axis=1)  # faces drawn up to each sorted value
        total = reached[:, -1:]
        # the sorted value at 0-based position k of the resample is the first whose running count exceeds k
        lower = (reached <= np.floor((total - 1) / 2)).sum(axis=1)
        upper = (reached <= np.floor(total / 2)).sum(axis=1)
        middle = (ranked[np.minimum(lower, len(ranked) - 1)] + ranked[np.minimum(upper, len(ranked) - 1)]) / 2
        return np.where(total[:, 0] > 0, middle, np.nan)

    return statistic


def _cell(absolute: np.ndarray, within: np.ndarray) -> dict:
    return {"n": len(absolute), "mae": float(absolute.mean()), "cs5": float(within.mean())}


def _mae_gap(table: dict[str, dict]) -> dict:
    """stats.largest_gap for a metric where lower is better: best = lowest MAE, gap = worst - best >= 0."""
    gap = largest_gap({group: {"n": m["n"], "mae": -m["mae"]} for group, m in table.items()}, "mae")
    for key in ("best", "worst"):
        if gap[key] is not None:
            gap[key] = -gap[key]
    return gap


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def _empty() -> dict:
    gap = {**_mae_gap({}), "ci95": None, "doubt": None, "uncertain": True}
    return {
        "n": 0, "mae": None, "median_ae": None, "cs5": None, "bias": None,
        "ci95": {"mae": None, "median_ae": None, "cs5": None},
        "per_age_class": {}, "per_race": {}, "per_gender": {},
        "largest_gap": {"race": dict(gap), "gender": dict(gap)},
    }


def wilcoxon_signed_rank(abs_err_a: np.ndarray, abs_err_b: np.ndarray) -> dict:
    """Paired two-sided Wilcoxon signed-rank test of two models' absolute errors on the same faces: zero
    differences dropped, average ranks for ties; exact up to EXACT_UP_TO differences without ties, else the
    normal approximation with tie and continuity corrections. `better` names the model with the smaller
    errors when p < 0.05."""
    a = np.asarray(abs_err_a, dtype=np.float64).reshape(-1)
    bb = np.asarray(abs_err_b, dtype=np.float64).reshape(-1)
    if a.shape != bb.shape:
        raise ValueError(f"paired arrays differ in length: {len(a)} and {len(bb)}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(bb))):
        raise ValueError("an error that is not a finite number cannot be ranked")
    difference = a - bb
    nonzero = difference[difference != 0]
    m = len(nonzero)
    _, inverse, ties = np.unique(np.abs(nonzero), return_inverse=True, return_counts=True)
    # the average rank of a run of t equal values starting after `before` smaller ones is before + (t + 1) / 2
    ranks = (np.cumsum(ties) - ties + (ties + 1) / 2)[inverse]
    w_plus, w_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
    statistic = min(w_plus, w_minus)
    tied = bool(np.any(ties > 1))
    z, note = None, None
    if m == 0:
        p_value, method = 1.0, "exact"
    elif m <= EXACT_UP_TO and not tied:
        p_value, method = min(1.0, 2 * _exact_lower_tail(m, int(statistic))), "exact"
    else:
        mean = m * (m + 1) / 4
        variance = m * (m + 1) * (2 * m + 1) / 24 - float(np.sum(ties**3 - ties)) / 48
        # z of W+ (positive: A's errors are the larger); the continuity correction moves it half a rank to 0
        z = (w_plus - mean - 0.5 * np.sign(w_plus - mean)) / math.sqrt(variance)
        p_value, method = min(1.0, math.erfc(abs(z) / math.sqrt(2))), "normal"
        if m <= EXACT_UP_TO:
            note = f"ties among {m} nonzero differences: normal approximation instead of the exact test"
    better = None
    if p_value < 0.05 and w_plus != w_minus:
        better = "a" if w_plus < w_minus else "b"
    return {
        "n": len(a),
        "n_nonzero": m,
        "w_plus": w_plus,
        "w_minus": w_minus,
        "statistic": float(statistic),
        "z": None if z is None else float(z),
        "p_value": float(p_value),
        "method": method,
        "note": note,
        "median_difference": float(np.median(difference)) if len(a) else None,
        "better": better,
    }


def _exact_lower_tail(m: int, statistic: int) -> float:
    """P(W <= statistic) for the signed-rank sum of m untied ranks: every sign pattern equally likely."""
    ways = np.zeros(m * (m + 1) // 2 + 1, dtype=np.int64)  # ways[s]: subsets of ranks 1..k summing to s
    ways[0] = 1
    for rank in range(1, m + 1):
        ways[rank:] = ways[rank:] + ways[:-rank]  # the right side is built before it is stored
    return float(ways[: statistic + 1].sum() / 2**m)
