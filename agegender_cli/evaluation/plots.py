"""Evaluation and training figures drawn with matplotlib's Agg canvas and saved atomically."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agegender_cli.config import COLUMN_WIDTH_IN, PAPER_FONT_PT, PAPER_WIDTH_IN, PLOT_DPI, PLOT_FORMATS
from agegender_cli.fileio import atomic_write
from agegender_cli.labels import AGE_CLASSES, GENDERS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from agegender_cli.evaluation.result import TaskCalibration

LOSS_KEYS = ("train_loss", "val_loss")
ACCURACY_KEYS = ("train_gender_acc", "val_gender_acc", "train_age_acc", "val_age_acc")
# readable legend names of the history keys: "val_gender_acc" -> "val gender accuracy"
SERIES_WORDS = {"acc": "accuracy", "loss": "loss", "train": "train", "val": "val"}
Interval = tuple[float, float] | Sequence[float] | None


def _grid(panels: int, most: int) -> tuple[int, int]:
    """(columns, rows) for `panels` panels, at most `most` a row."""
    columns = max(1, min(panels, most))
    return columns, -(-max(panels, 1) // columns)


def _panels(fig: Figure, panels: int, columns: int, rows: int, **shared: Any) -> tuple[np.ndarray, np.ndarray]:
    """(every axes of the grid, the first `panels` of them); the grid's spare axes are hidden."""
    grid = fig.subplots(rows, columns, squeeze=False, **shared).ravel()
    for spare in grid[panels:]:
        spare.set_axis_off()
    return grid, grid[:panels]


# text at print size: the figures are drawn as large as they print (PAPER_WIDTH_IN, COLUMN_WIDTH_IN)
PAPER_TEXT = {"font.size": PAPER_FONT_PT, "axes.titlesize": PAPER_FONT_PT, "axes.labelsize": PAPER_FONT_PT,
              "xtick.labelsize": PAPER_FONT_PT - 1, "ytick.labelsize": PAPER_FONT_PT - 1,
              "legend.fontsize": PAPER_FONT_PT - 1, "legend.title_fontsize": PAPER_FONT_PT - 1,
              "figure.titlesize": PAPER_FONT_PT + 1}


def _paper_text(draw: Callable[..., Any]) -> Callable[..., Any]:
    """`draw` with its text set in PAPER_TEXT's sizes (text takes its size when it is created)."""

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        from matplotlib import rc_context

        with rc_context(PAPER_TEXT):
            return draw(*args, **kwargs)

    return drawn


@_paper_text
def plot_roc(
    curves: Mapping[str, tuple],
    path: str | os.PathLike,
    title: str = "Gender ROC (female positive)",
    n: int | None = None,
) -> Path:
    """ROC curves of one or several architectures on one axes, each labelled with its AUC and, when the
    curve tuple (fpr, tpr, auc[, ci95]) has one, the AUC's 95% interval; `n` faces in the title. One column
    wide."""
    fig = _figure((COLUMN_WIDTH_IN, COLUMN_WIDTH_IN + 0.2))
    ax = fig.add_subplot()
    for name, (fpr, tpr, auc, *rest) in curves.items():
        ci = rest[0] if rest else None
        label = f"{name}: AUC n/a" if auc is None else f"{name}: AUC {auc:.3f}" + _interval(ci, "{:.3f}")
        ax.plot(fpr, tpr, lw=1.5, label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate",
           title=_with_n(title, n))
    ax.legend(loc="lower right", title="AUC (95% CI)" if any(len(c) > 3 for c in curves.values()) else None)
    return _save(fig, path)


@_paper_text
def plot_confusions(
    matrices: Mapping[str, np.ndarray | Sequence[Sequence[int]]],
    class_names: Sequence[str],
    title: str,
    path: str | os.PathLike,
    normalize: bool = False,
) -> Path:
    """Confusion matrices (rows true, columns predicted) in rows of up to two (three for two classes) at full
    page width, one shared colour scale and one labelled colour bar; counts or (normalize) row shares in the
    cells, each true class's size on the axis."""
    from matplotlib.colors import Normalize

    from agegender_cli.evaluation.metrics import confusion_shares

    counts = {name: np.asarray(m) for name, m in matrices.items()}
    shown = {name: confusion_shares(m) if normalize else m for name, m in counts.items()}
    top = 1.0 if normalize else max((float(m.max()) for m in shown.values() if m.size), default=1.0) or 1.0
    scale = Normalize(vmin=0.0, vmax=top)
    columns, rows = _grid(len(shown), 3 if len(class_names) <= 2 else 2)
    side = PAPER_WIDTH_IN / columns
    fig = _figure((PAPER_WIDTH_IN, rows * side * (0.75 if len(class_names) <= 2 else 1.0) + 0.3))
    grid, axes = _panels(fig, len(shown), columns, rows)
    image = None
    ticks = np.arange(len(class_names))
    for ax, (name, values) in zip(axes, shown.items(), strict=True):
        image = ax.imshow(values, cmap="Blues", norm=scale)
        sizes = counts[name].sum(axis=1)
        ax.set_xticks(ticks, class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, [f"{c} (n={int(k):,})" for c, k in zip(class_names, sizes, strict=True)])
        ax.set(xlabel="Predicted", ylabel="True (faces)", title=f"{name}, n = {int(sizes.sum()):,}")
        for (row, col), value in np.ndenumerate(values):
            color = "white" if value > top / 2 else "black"
            text = f"{value:.2f}" if normalize else f"{int(value):,}"
            ax.text(col, row, text, ha="center", va="center", color=color, fontsize=PAPER_FONT_PT - 1)
    label = "Share of the true class (rows sum to 1)" if normalize else "Faces"
    fig.colorbar(image, ax=list(grid), fraction=0.04, pad=0.02, label=label)
    fig.suptitle(title)
    return _save(fig, path)


@_paper_text
def plot_reliability(
    calibrations: Mapping[str, TaskCalibration],
    path: str | os.PathLike,
    title: str,
    cis: Mapping[str, Interval] | None = None,
) -> Path:
    """Reliability diagrams in rows of up to two at full page width: accuracy against mean confidence per
    equal-width bin (bars), the gap to the diagonal shaded, the faces per bin below; the ECE (with its 95%
    interval) and n above."""
    columns, rows = _grid(len(calibrations), 2)
    fig = _figure((PAPER_WIDTH_IN, rows * 3.9 + 0.3))
    grid = fig.add_gridspec(2 * rows, columns, height_ratios=(3, 1) * rows)
    for index, (name, calibration) in enumerate(calibrations.items()):
        row, column = divmod(index, columns)
        top = fig.add_subplot(grid[2 * row, column])
        bottom = fig.add_subplot(grid[2 * row + 1, column], sharex=top)
        bins = calibration.bins
        centres = np.array([(b.low + b.high) / 2 for b in bins])
        width = bins[0].high - bins[0].low if bins else 1.0
        filled = [i for i, b in enumerate(bins) if b.n]
        accuracy = np.array([bins[i].accuracy for i in filled])
        confidence = np.array([bins[i].confidence for i in filled])
        top.bar(centres[filled], accuracy, width * 0.95, color="tab:blue", edgecolor="navy", label="accuracy")
        top.bar(centres[filled], confidence - accuracy, width * 0.95, bottom=accuracy, color="tab:red",
                alpha=0.3, hatch="//", edgecolor="tab:red", label="gap to confidence")
        top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
        ece = calibration.ece
        ece_text = "n/a" if ece is None else f"{ece:.3f}" + _interval((cis or {}).get(name), "{:.3f}")
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="Accuracy",
                title=f"{name}: ECE {ece_text}\nn = {calibration.n:,}, {calibration.n_bins} bins")
        top.legend(loc="upper left", fontsize=PAPER_FONT_PT - 1)
        top.tick_params(labelbottom=False)
        bottom.bar(centres, [b.n for b in bins], width * 0.95, color="grey")
        bottom.set(xlabel="Confidence (probability of the predicted class)", ylabel="Faces")
        _integer_ticks(bottom, "y", most=3)
    fig.suptitle(title)
    return _save(fig, path)


@_paper_text
def plot_error_distribution(
    hists: Mapping[str, Sequence[int]], path: str | os.PathLike, title: str = "Age-class error distribution"
) -> Path:
    """Grouped bars of how many faces were off by 0, 1, 2, ... age classes, one colour per architecture."""
    fig = _figure((PAPER_WIDTH_IN, 2.8))
    ax = fig.add_subplot()
    length = max((len(h) for h in hists.values()), default=len(AGE_CLASSES))
    x = np.arange(length)
    width = 0.8 / max(len(hists), 1)
    for index, (name, hist) in enumerate(hists.items()):
        offset = (index - (len(hists) - 1) / 2) * width
        ax.bar(x[: len(hist)] + offset, hist, width, label=f"{name} (n = {int(sum(hist)):,})")
    ax.set_xticks(x)
    _integer_ticks(ax, "y")
    ax.set(xlabel="|predicted class - true class| (age classes)", ylabel="Faces", title=title)
    if hists:
        ax.legend()
    return _save(fig, path)


@_paper_text
def plot_training_curves(
    history: Sequence[Mapping[str, float]],
    path: str | os.PathLike,
    title: str = "Training curves",
    best_epochs: Mapping[str, int] | None = None,
) -> Path:
    """Loss and accuracy per epoch in two panels (integer epoch ticks, readable names); keys absent from the
    history are skipped; a dotted line marks each best epoch (per task, or one for all)."""
    fig = _figure((PAPER_WIDTH_IN, 3.0))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, keys, label in ((loss_ax, LOSS_KEYS, "Loss"), (acc_ax, ACCURACY_KEYS, "Accuracy")):
        _mark_best(ax, best_epochs or {})
        _plot_series(ax, history, keys)
        ax.set(xlabel="Epoch", ylabel=label, title=label)
        _integer_ticks(ax, "x")
    fig.suptitle(title)
    return _save(fig, path)


def _mark_best(ax: Axes, best_epochs: Mapping[str, int]) -> None:
    by_epoch: dict[int, list[str]] = {}
    for task, epoch in best_epochs.items():
        by_epoch.setdefault(int(epoch), []).append(task)
    for index, (epoch, tasks) in enumerate(sorted(by_epoch.items())):
        which = "" if len(by_epoch) == 1 else " (" + ", ".join(tasks) + ")"
        ax.axvline(epoch, ls=":", lw=1.5, color=f"C{6 + index}", label=f"best epoch {epoch}{which}")


def plot_summary_bars(
    counts: Mapping[tuple[str | int, str | int], int] | np.ndarray,
    path: str | os.PathLike,
    title: str = "Faces per gender and age class",
    fmt: str | None = None,
) -> Path:
    """Grouped bars of face counts per age class, one bar per gender; `fmt` (else the suffix) sets the format."""
    return _save(summary_figure({title: counts}), path, fmt)


@_paper_text
def summary_figure(panels: Mapping[str, Mapping | np.ndarray], title: str | None = None) -> Figure:
    """One panel of grouped bars (faces per age class, one bar per gender) for each model, side by side on
    one count scale, each titled by its key with its number of faces."""
    tables = {name: _count_table(counts) for name, counts in panels.items()}
    columns, rows = _grid(len(tables), 2)
    fig = _figure((PAPER_WIDTH_IN, 3.0 * rows))
    grid, axes = _panels(fig, len(tables), columns, rows, sharey=True)
    x = np.arange(len(AGE_CLASSES))
    width = 0.8 / len(GENDERS)
    for ax, (name, table) in zip(axes, tables.items(), strict=True):
        for index, gender in enumerate(GENDERS):
            offset = (index - (len(GENDERS) - 1) / 2) * width
            bars = ax.bar(x + offset, table[index], width, label=gender)
            ax.bar_label(bars, fontsize=PAPER_FONT_PT - 2)
        ax.set_xticks(x, AGE_CLASSES)
        _integer_ticks(ax, "y")
        ax.set(xlabel="Age class", title=f"{name} (n = {int(table.sum()):,})")
        ax.legend()
    for ax in grid[::columns]:
        ax.set_ylabel("Faces")
    if title:
        fig.suptitle(title)
    return fig


def plot_summary_panels(panels: Mapping[str, Mapping | np.ndarray], path: str | os.PathLike,
                        fmt: str | None = None) -> Path:
    """`summary_figure` of every model, written to `path` (`fmt`, else the suffix, sets the format)."""
    return _save(summary_figure(panels, "Faces per gender and age class"), path, fmt)


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


def series_name(key: str) -> str:
    """A history key as a legend entry: "val_gender_acc" -> "val gender accuracy"."""
    return " ".join(SERIES_WORDS.get(word, word) for word in key.split("_"))


def _integer_ticks(ax: Axes, axis: str, most: int | str = "auto") -> None:
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(nbins=most, integer=True))


def _interval(ci: Interval, fmt: str) -> str:
    return "" if ci is None else f" ({fmt.format(ci[0])}-{fmt.format(ci[1])})"


def _with_n(title: str, n: int | None) -> str:
    return title if n is None else f"{title}, n = {n:,}"


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
            ax.plot(epochs, values, marker="o", ms=3, ls="--" if key.startswith("val") else "-",
                    label=series_name(key))
            plotted = True
    if plotted or ax.get_legend_handles_labels()[0]:
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


def figure_format(path: str | os.PathLike) -> str:
    """The format a figure path names by its suffix (png without one); a suffix outside PLOT_FORMATS is refused."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in PLOT_FORMATS:
        raise ValueError(f"{path}: figures are written as {', '.join(PLOT_FORMATS)}, not '{fmt}'")
    return fmt


def _save(fig: Figure, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write to a temp file beside `path`, then rename it into place, so readers never see half a file.
    The format follows the suffix unless `fmt` says it; vector formats keep their text as text, and no file
    carries a creation date, so the same data give the same file."""
    path = Path(path)
    fmt = fmt or figure_format(path)
    from agegender_cli.ownership import MARK, refuse_foreign_figure

    refuse_foreign_figure(path)
    mark = MARK.decode()  # ownership.marked() knows the figures agegender wrote by it
    metadata = {"png": {"Software": mark}, "svg": {"Date": None, "Creator": mark},
                "pdf": {"CreationDate": None, "Creator": mark}}[fmt]

    def write(handle) -> None:
        from matplotlib import rc_context

        # TrueType in PDF (journals refuse Type 3 fonts), real text in SVG, stable SVG element ids
        with rc_context({"pdf.fonttype": 42, "svg.fonttype": "none", "svg.hashsalt": "agegender"}):
            fig.savefig(handle, format=fmt, dpi=PLOT_DPI, metadata=metadata)

    return atomic_write(path, write)
