"""Accuracy, ROC and per-class metrics of gender and age-class predictions, as plain JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score, roc_curve

from agegender_cli.labels import AGE_CLASSES, GENDERS


def evaluate_predictions(
    gender_true: np.ndarray, gender_prob: np.ndarray, age_true: np.ndarray, age_prob: np.ndarray
) -> dict:
    """Metrics of both tasks; the predicted class is the argmax of each probability row. The two tasks may
    be scored on different images (a dataset that lacks one task's label for some): "n" is the larger count,
    each task says its own.

    Ratios whose denominator is zero (an empty set, a class never predicted or never present) are None.
    """
    gender_true, gender_prob = _checked(gender_true, gender_prob, len(GENDERS), "gender")
    age_true, age_prob = _checked(age_true, age_prob, len(AGE_CLASSES), "age")
    return {
        "n": max(len(gender_true), len(age_true)),
        "gender": {"n": len(gender_true), **gender_metrics(gender_true, gender_prob)},
        "age": {"n": len(age_true), **age_metrics(age_true, age_prob)},
    }


def gender_metrics(y_true: np.ndarray, prob: np.ndarray) -> dict:
    """Accuracy, female-positive AUC and ROC, per-class metrics and confusion of the gender task."""
    y_pred = prob.argmax(axis=1)
    matrix = _confusion(y_true, y_pred, len(GENDERS))
    return {
        "accuracy": _ratio(np.trace(matrix), matrix.sum()),
        **roc_summary(y_true == GENDERS.index("female"), prob[:, GENDERS.index("female")]),
        "per_class": per_class_metrics(matrix, GENDERS),
        "confusion": matrix.tolist(),
        "confusion_row_normalised": confusion_shares(matrix).tolist(),
    }


def age_metrics(y_true: np.ndarray, prob: np.ndarray) -> dict:
    """Accuracy, one-off, class-distance statistics, per-class metrics and confusion of the age task."""
    y_pred = prob.argmax(axis=1)
    matrix = _confusion(y_true, y_pred, len(AGE_CLASSES))
    distance = np.abs(y_pred - y_true)
    empty = len(y_true) == 0
    return {
        "accuracy": _ratio(np.trace(matrix), matrix.sum()),
        "one_off": None if empty else float(np.mean(distance <= 1)),
        # macro over the classes seen in y_true or y_pred, so absent classes do not count as f1 = 0
        "macro_f1": None if empty else float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "mean_error": None if empty else float(np.mean(distance)),
        "std_error": None if empty else float(np.std(distance)),
        "error_hist": np.bincount(distance, minlength=len(AGE_CLASSES)).tolist(),
        "per_class": per_class_metrics(matrix, AGE_CLASSES),
        "confusion": matrix.tolist(),
        "confusion_row_normalised": confusion_shares(matrix).tolist(),
    }


def confusion_shares(matrix: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """Each row divided by its sum (the share of each true class predicted as each class); empty rows stay 0."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def roc_summary(positive: np.ndarray, score: np.ndarray) -> dict:
    """AUC and ROC points, or None for both when only one class is present (the curve is undefined)."""
    if len(np.unique(positive)) < 2:
        return {"auc": None, "roc": None}
    fpr, tpr, _ = roc_curve(positive, score)
    return {"auc": float(roc_auc_score(positive, score)), "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}}


def per_class_metrics(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, dict]:
    """One-vs-rest precision, recall, f1, miss rate, fall-out and support per class of a confusion matrix."""
    total = int(matrix.sum())
    result = {}
    for index, name in enumerate(class_names):
        tp = int(matrix[index, index])
        fn = int(matrix[index, :].sum()) - tp
        fp = int(matrix[:, index].sum()) - tp
        tn = total - tp - fn - fp
        result[name] = {
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "miss_rate": _ratio(fn, tp + fn),
            "fall_out": _ratio(fp, fp + tn),
            "support": tp + fn,
        }
    return result


def _checked(
    y_true: np.ndarray, prob: np.ndarray, n_classes: int, task: str
) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).astype(np.int64, copy=False).reshape(-1)
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 2 or prob.shape != (len(y_true), n_classes):
        raise ValueError(
            f"{task} probabilities must have shape ({len(y_true)}, {n_classes}), got {prob.shape}"
        )
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= n_classes):
        raise ValueError(f"{task} labels must lie in 0..{n_classes - 1}")
    return y_true, prob


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    if len(y_true) == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None
