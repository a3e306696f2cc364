"""`agegender train --arch fused`: the weights of the fused answer, fitted on the val split of a manifest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from agegender_cli.archs.base import TrainResult
from agegender_cli.archs.fused.config import PARTS, FusedTrainConfig
from agegender_cli.archs.fused.predictor import FORMAT, fuse
from agegender_cli.config import EvaluateConfig
from agegender_cli.fileio import atomic_write_text, display
from agegender_cli.progress import SILENT, Reporter

GRID = np.round(np.linspace(0.0, 1.0, 21), 2)  # facenet's weight, in steps of 0.05; 0 and 1: one model alone


def _log_loss(prob: np.ndarray, truth: np.ndarray) -> float:
    return float(-np.log(np.clip(prob[np.arange(len(truth)), truth], 1e-7, 1)).mean())


def _scores(first, second, truth: dict[str, np.ndarray]) -> dict[str, list[dict]]:
    """For every weight of GRID: gender and age accuracy (and log-loss), years MAE, on the val faces that have
    each label."""
    rows: dict[str, list[dict]] = {"gender": [], "age": [], "years": []}
    for w in GRID:
        fused = fuse(first, second, {"gender": w, "age": w, "years": w})
        for task, prob in (("gender", fused.gender_prob), ("age", fused.age_prob)):
            known = truth[task] >= 0
            y, p = truth[task][known], prob[known]
            rows[task].append({"weight": float(w), "accuracy": float((p.argmax(1) == y).mean()),
                               "log_loss": _log_loss(p, y)})
        aged = truth["years"] >= 0
        if fused.age_years is not None and aged.any():
            rows["years"].append({"weight": float(w), "mae": float(np.abs(fused.age_years[aged] -
                                                                           truth["years"][aged]).mean())})
    return rows


def _best(task: str, rows: list[dict]) -> dict:
    """The weight with the best val score: accuracy (ties: the lower log-loss) or the lowest MAE."""
    if task == "years":
        return min(rows, key=lambda r: r["mae"])
    return max(rows, key=lambda r: (r["accuracy"], -r["log_loss"]))


def fit_fusion(cfg: FusedTrainConfig, reporter: Reporter = SILENT) -> TrainResult:
    """Both parts answer the val faces once; each task's weight is the grid point with the best val score."""
    from agegender_cli.service import evaluate_models

    started = time.monotonic()
    evaluation = evaluate_models(EvaluateConfig(archs=PARTS, manifest=cfg.manifest, split="val",
                                                detector=cfg.detector, pick=cfg.pick), reporter)
    first, second = (evaluation["predictions"][p] for p in PARTS)
    gender_true, age_true = evaluation["truth"]
    ages = np.array([-1 if r.age is None else r.age for r in evaluation["records"]], np.float64)
    rows = _scores(first, second, {"gender": gender_true, "age": age_true, "years": ages})
    chosen = {task: _best(task, rows[task]) for task in rows if rows[task]}
    if "years" not in chosen:
        chosen["years"] = {"weight": 1.0 if second.age_years is None else 0.0}
    weights = {task: chosen[task]["weight"] for task in ("gender", "age", "years")}
    paths = {p: evaluation["predictors"][p] for p in PARTS}
    record = {
        "format": FORMAT, "parts": list(PARTS), "weights": weights,
        "rule": "weights[task] * facenet + (1 - weights[task]) * caffenet: gender and age-class probabilities, "
                "years",
        "fitted_on": {"manifest": display(cfg.manifest), "split": "val", "detector": cfg.detector,
                      "pick": cfg.pick, "faces": len(evaluation["records"]),
                      "gender_faces": int((gender_true >= 0).sum()), "age_faces": int((age_true >= 0).sum()),
                      "years_faces": int((ages >= 0).sum())},
        "parts_models": {p: {"model": display(getattr(pred, "model_path", "") or "bundled"),
                             "engine": getattr(pred, "engine", None), "precision": getattr(pred, "precision", None)}
                         for p, pred in paths.items()},
        "val": {task: {"fused": chosen[task], "facenet": next(r for r in rows[task] if r["weight"] == 1.0),
                       "caffenet": next(r for r in rows[task] if r["weight"] == 0.0)}
                for task in rows if rows[task]},
        "grid": rows,
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "fused.json"
    atomic_write_text(target, json.dumps(record, indent=1) + "\n")
    reporter.message("fused weights (facenet's share): " + ", ".join(f"{t} {w:.2f}" for t, w in weights.items()))
    val = {f"{task}_{key}": value for task, r in chosen.items() for key, value in r.items() if key != "weight"}
    return TrainResult(arch="fused", checkpoint=str(target), best_epoch={}, epochs_run=0, val=val,
                       history=str(target), seconds=round(time.monotonic() - started, 1),
                       details={"weights": weights})
