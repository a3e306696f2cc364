"""Calibration of the top-class confidence: equal-width reliability bins and expected calibration error."""

from __future__ import annotations

import numpy as np


def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin 0..n_bins-1 of each confidence; bin i holds (i/n_bins, (i+1)/n_bins], bin 0 also holds 0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.digitize(np.asarray(confidence, np.float64), edges[1:-1], right=True)


def calibration(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 15) -> dict:
    """ECE (sum over bins of n_bin / n * |accuracy - mean confidence|), the largest bin gap (MCE) and the
    reliability bins, for the predicted class (argmax) and its probability."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    prob = np.asarray(prob, np.float64)
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    confidence = prob.max(axis=1) if len(prob) else np.zeros(0)
    correct = (prob.argmax(axis=1) == y_true) if len(prob) else np.zeros(0, bool)
    bins = bin_index(confidence, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    rows, ece, mce = [], 0.0, 0.0
    for index in range(n_bins):
        inside = bins == index
        count = int(inside.sum())
        row = {"low": float(edges[index]), "high": float(edges[index + 1]), "n": count,
               "confidence": None, "accuracy": None}
        if count:
            row["confidence"] = float(confidence[inside].mean())
            row["accuracy"] = float(correct[inside].mean())
            gap = abs(row["accuracy"] - row["confidence"])
            ece += count / len(y_true) * gap
            mce = max(mce, gap)
        rows.append(row)
    empty = len(y_true) == 0
    return {"ece": None if empty else float(ece), "mce": None if empty else float(mce), "n_bins": n_bins,
            "n": len(y_true), "bins": rows}
