"""Evaluation and training figures drawn with matplotlib's Agg canvas and saved atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agegender_cli.fileio import atomic_write
from agegender_cli.labels import AGE_CLASSES, GENDERS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 120
LOSS_KEYS = ("train_loss", "val_loss")
ACCURACY_KEYS = ("train_gender_acc", "val_gender_acc", "train_age_acc", "val_age_acc")


def plot_roc(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], float | None]],
    path: str | os.PathLike,
    title: str = "Gender ROC (female positive)",
) -> Path:
    """ROC curves of one or several architectures on one axes, each labelled with its AUC."""
    fig = _figure((5.5, 5))
    ax = fig.add_subplot()
    for name, (fpr, tpr, auc) in curves.items():
        label = f"{name} (AUC n/a)" if auc is None else f"{name} (AUC = {auc:.3f})"
        ax.plot(fpr, tpr, lw=2, label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(
        xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate", title=title
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_confusion(
    matrix: np.ndarray | Sequence[Sequence[int]],
    class_names: Sequence[str],
    title: str,
    path: str | os.PathLike,
) -> Path:
    """Confusion matrix (rows true, columns predicted) with the count written in each cell."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.7 * len(class_names) + 2)
    fig = _figure((size + 1, size))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="Predicted", ylabel="True", title=title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(col, row, f"{count:g}", ha="center", va="center", color=color, fontsize=9)
    return _save(fig, path)


def plot_error_distribution(
    hists: Mapping[str, Sequence[int]], path: str | os.PathLike, title: str = "Age-class error distribution"
) -> Path:
    """Grouped bars of how many faces were off by 0, 1, 2, ... age classes, one colour per architecture."""
    fig = _figure((7, 4.5))
    ax = fig.add_subplot()
    length = max((len(h) for h in hists.values()), default=len(AGE_CLASSES))
    x = np.arange(length)
    width = 0.8 / max(len(hists), 1)
    for index, (name, hist) in enumerate(hists.items()):
        offset = (index - (len(hists) - 1) / 2) * width
        ax.bar(x[: len(hist)] + offset, hist, width, label=name)
    ax.set_xticks(x)
    ax.set(xlabel="|predicted class - true class|", ylabel="Faces", title=title)
    if hists:
        ax.legend()
    return _save(fig, path)


def plot_training_curves(
    history: Sequence[Mapping[str, float]], path: str | os.PathLike, title: str = "Training curves"
) -> Path:
    """Loss and accuracy per epoch in two panels; keys absent from the history are skipped."""
    fig = _figure((11, 4.5))
    loss_ax, acc_ax = fig.subplots(1, 2)
    _plot_series(loss_ax, history, LOSS_KEYS)
    loss_ax.set(xlabel="Epoch", ylabel="Loss", title="Loss")
    _plot_series(acc_ax, history, ACCURACY_KEYS)
    acc_ax.set(xlabel="Epoch", ylabel="Accuracy", title="Accuracy")
    fig.suptitle(title)
    return _save(fig, path)


def plot_summary_bars(
    counts: Mapping[tuple[str | int, str | int], int] | np.ndarray,
    path: str | os.PathLike,
    title: str = "Faces per gender and age class",
) -> Path:
    """Grouped bars of face counts per age class, one bar per gender."""
    table = _count_table(counts)
    fig = _figure((8, 4.5))
    ax = fig.add_subplot()
    x = np.arange(len(AGE_CLASSES))
    width = 0.8 / len(GENDERS)
    for index, gender in enumerate(GENDERS):
        offset = (index - (len(GENDERS) - 1) / 2) * width
        bars = ax.bar(x + offset, table[index], width, label=gender)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(x, AGE_CLASSES)
    ax.set(xlabel="Age class", ylabel="Faces", title=title)
    ax.legend()
    return _save(fig, path)


def _count_table(counts: Mapping[tuple[str | int, str | int], int] | np.ndarray) -> np.ndarray:
    if not isinstance(counts, Mapping):
        table = np.asarray(counts)
        if table.shape != (len(GENDERS), len(AGE_CLASSES)):
            raise ValueError(
                f"counts must have shape ({len(GENDERS)}, {len(AGE_CLASSES)}), got {table.shape}"
            )
        return table
    table = np.zeros((len(GENDERS), len(AGE_CLASSES)), dtype=np.int64)
    for (gender, age_class), count in counts.items():
        table[_index(gender, GENDERS), _index(age_class, AGE_CLASSES)] += count
    return table


def _index(key: str | int, names: Sequence[str]) -> int:
    if isinstance(key, str):
        if key not in names:
            raise ValueError(f"unknown class {key!r}; expected one of {', '.join(names)}")
        return names.index(key)
    if not 0 <= int(key) < len(names):
        raise ValueError(f"class index {key} out of range 0..{len(names) - 1}")
    return int(key)


def _plot_series(ax, history: Sequence[Mapping[str, float]], keys: Sequence[str]) -> None:
    plotted = False
    for key in keys:
        points = [
            (row.get("epoch", index + 1), row[key])
            for index, row in enumerate(history)
            if row.get(key) is not None
        ]
        if points:
            epochs, values = zip(*points, strict=True)
            ax.plot(epochs, values, marker="o", ms=3, ls="--" if key.startswith("val") else "-", label=key)
            plotted = True
    if plotted:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _figure(size: tuple[float, float]) -> Figure:
    # A bare Figure on an Agg canvas leaves pyplot's global backend and figure registry untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write to a temp file beside `path`, then rename it into place, so readers never see half a file."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, dpi=DPI))
