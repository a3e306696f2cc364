"""95% intervals of every headline metric, per-group accuracies and group gaps of one model: Wilson's score interval
for the shares of faces (accuracy, one-off: exact enough at any n, where a bootstrap of 3 faces all right says
[100%, 100%]), a seeded bootstrap for everything else."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from agegender_cli.evaluation import bootstrap as b
from agegender_cli.evaluation.stats import gap_doubt, group_metrics, largest_gap
from agegender_cli.labels import AGE_CLASSES, GENDERS

GROUP_METRICS = ("gender_accuracy", "age_accuracy", "one_off")
GAP_METRICS = ("gender_accuracy", "age_accuracy")


Z95 = 1.959963984540054  # the standard normal's 97.5% point


def wilson(successes: int, n: int, z: float = Z95) -> list[float] | None:
    """Wilson's score interval of a share `successes` / `n` (None for n = 0): within [0, 1], never of zero width."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def model_intervals(
    gender_true: np.ndarray,
    gender_prob: np.ndarray,
    age_true: np.ndarray,
    age_prob: np.ndarray,
    groups: Mapping[str, np.ndarray],
    *,
    n_resamples: int,
    seed: int,
    n_bins: int,
    min_group_n: int,
) -> dict:
    """{"ci95": {task: {metric: [low, high]}}, "groups": {name: {"metrics", "largest_gap"}}}: every interval
    from the same seeded resamples of the faces, so reruns give the same numbers."""
    gender_pred, age_pred = gender_prob.argmax(1), age_prob.argmax(1)
    gender_hit, age_hit = gender_pred == gender_true, age_pred == age_true
    distance = np.abs(age_pred - age_true).astype(np.float64)
    female = GENDERS.index("female")
    # a label of -1 is not given (a dataset labelled for one task only): each task counts its labelled faces
    g, a = gender_true >= 0, age_true >= 0
    statistics: dict[str, b.Statistic] = {
        "gender.accuracy": b.mean_of(gender_hit, g),
        "gender.ece": b.on(g, b.ece_of(gender_prob.max(1)[g], gender_hit[g], n_bins)),
        "age.accuracy": b.mean_of(age_hit, a),
        "age.one_off": b.mean_of(distance <= 1, a),
        "age.macro_f1": b.on(a, b.macro_f1_of(age_true[a], age_pred[a], len(AGE_CLASSES))),
        "age.mean_error": b.mean_of(distance, a),
        "age.std_error": b.on(a, b.std_of(distance[a])),
        "age.ece": b.on(a, b.ece_of(age_prob.max(1)[a], age_hit[a], n_bins)),
    }
    if len(np.unique(gender_true[g])) == 2:
        statistics["gender.auc"] = b.on(g, b.auc_of(gender_true[g] == female, gender_prob[g, female]))
    per_face = {"gender_accuracy": gender_hit, "age_accuracy": age_hit, "one_off": distance <= 1}
    labelled = {"gender_accuracy": g, "age_accuracy": a, "one_off": a}
    tables, gaps = {}, {}
    for name, labels in groups.items():
        tables[name] = group_metrics(labels, gender_true, gender_pred, age_true, age_pred)
        gaps[name] = {key: largest_gap(tables[name], key) for key in GAP_METRICS}
        for group in tables[name]:
            for key in GROUP_METRICS:
                statistics[f"{name}:{group}:{key}"] = b.mean_of(per_face[key], (labels == group) & labelled[key])
        for key, gap in gaps[name].items():
            if gap["gap"] is not None:
                statistics[f"{name}:gap:{key}"] = b.difference(
                    b.mean_of(per_face[key], (labels == gap["best_group"]) & labelled[key]),
                    b.mean_of(per_face[key], (labels == gap["worst_group"]) & labelled[key]))
    found = b.bootstrap_intervals(statistics, len(gender_true), n_resamples, seed)
    shares = {"gender.accuracy": (gender_hit, g), "age.accuracy": (age_hit, a), "age.one_off": (distance <= 1, a)}
    for name, labels in groups.items():
        for group in tables[name]:
            for key in GROUP_METRICS:
                shares[f"{name}:{group}:{key}"] = (per_face[key], (labels == group) & labelled[key])
    for key, (hits, mask) in shares.items():
        found[key] = wilson(int(hits[mask].sum()), int(mask.sum()))
    ci95: dict[str, dict] = {"gender": {}, "age": {}}
    for key, interval in found.items():
        if "." in key and ":" not in key:
            task, metric = key.split(".")
            ci95[task][metric] = interval
    ci95["gender"].setdefault("auc", None)
    result_groups = {}
    for name, table in tables.items():
        for group, metrics in table.items():
            metrics["ci95"] = {key: found[f"{name}:{group}:{key}"] for key in GROUP_METRICS}
        for key, gap in gaps[name].items():
            gap["ci95"] = found.get(f"{name}:gap:{key}")
            gap["doubt"] = gap_doubt(gap, gap["ci95"], min_group_n) if gap["gap"] is not None else None
            gap["uncertain"] = gap["doubt"] is not None or gap["gap"] is None
        result_groups[name] = {"metrics": table, "largest_gap": gaps[name]}
    return {"ci95": ci95, "groups": result_groups}
