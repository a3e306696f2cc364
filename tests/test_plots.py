"""Every plot writes a non-empty PNG atomically and leaves no temp file behind."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from agegender_cli.evaluation import plots
from agegender_cli.labels import AGE_CLASSES, GENDERS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png_alone(path: Path, folder: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 1000
    assert sorted(p.name for p in folder.iterdir()) == [path.name]


def test_plot_roc_several_architectures(tmp_path):
    curves = {"facenet": ([0, 0.1, 1], [0, 0.8, 1], 0.93), "levi_hassner": ([0, 0.3, 1], [0, 0.7, 1], None)}
    path = plots.plot_roc(curves, tmp_path / "roc.png")
    assert path == tmp_path / "roc.png"
    assert_png_alone(path, tmp_path)


def test_plot_confusion(tmp_path):
    matrix = np.arange(64).reshape(8, 8)
    path = plots.plot_confusions({"a": matrix}, AGE_CLASSES, "Age confusion", tmp_path / "confusion.png")
    assert_png_alone(path, tmp_path)


def test_plot_error_distribution(tmp_path):
    hists = {"facenet": [50, 30, 10, 5, 2, 1, 1, 1], "levi_hassner": [40, 35, 15, 5, 2, 1, 1, 1]}
    path = plots.plot_error_distribution(hists, tmp_path / "errors.png")
    assert_png_alone(path, tmp_path)


def test_plot_training_curves_skips_missing_keys(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 2.2, "train_gender_acc": 0.6},
        {"epoch": 2, "train_loss": 1.5, "val_loss": None, "train_gender_acc": 0.7, "val_age_acc": 0.3},
        {"train_loss": 1.2},
    ]
    path = plots.plot_training_curves(history, tmp_path / "curves.png")
    assert_png_alone(path, tmp_path)


def test_plot_training_curves_empty_history(tmp_path):
    assert_png_alone(plots.plot_training_curves([], tmp_path / "empty.png"), tmp_path)


@pytest.mark.parametrize(
    "counts",
    [
        np.arange(16).reshape(2, 8),
        {
            (gender, age): i + 1
            for i, (gender, age) in enumerate((g, a) for g in GENDERS for a in AGE_CLASSES)
        },
        {(0, 0): 3, (1, 7): 4},
    ],
    ids=["array", "names", "indices"],
)
def test_plot_summary_bars(tmp_path, counts):
    assert_png_alone(plots.plot_summary_bars(counts, tmp_path / "summary.png"), tmp_path)


def test_plot_summary_bars_rejects_bad_counts(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_summary_bars(np.zeros((2, 7)), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="unknown class"):
        plots.plot_summary_bars({("other", "0-2"): 1}, tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []


def test_creates_folder_and_replaces_only_a_figure_it_wrote(tmp_path):
    from agegender_cli.errors import AgeGenderError
    from agegender_cli.ownership import replacing

    path = tmp_path / "nested" / "roc.png"
    path.parent.mkdir()
    path.write_bytes(b"old")
    with pytest.raises(AgeGenderError, match="agegender did not write it"):
        plots.plot_roc({"a": ([0, 1], [0, 1], 0.5)}, path)
    assert path.read_bytes() == b"old"
    with replacing(True):  # --overwrite
        plots.plot_roc({"a": ([0, 1], [0, 1], 0.5)}, path)
    assert_png_alone(path, path.parent)
    plots.plot_roc({"a": ([0, 1], [0.2, 1], 0.6)}, path)  # its own figure: replaced without --overwrite
    assert_png_alone(path, path.parent)
    plots.plot_roc({"a": ([0, 1], [0, 1], 0.5)}, tmp_path / "made" / "roc.png")
    assert (tmp_path / "made" / "roc.png").read_bytes()[:8] == PNG_MAGIC


def test_failed_save_leaves_no_temp_file(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_roc({"a": ([0, 1], [0, 1], 0.5)}, tmp_path / "roc.notaformat")
    assert list(tmp_path.iterdir()) == []


def test_pyplot_state_untouched(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.plot_error_distribution({"a": [1, 2, 3]}, tmp_path / "e.png")
    assert plt.get_fignums() == before


def test_training_curves_mark_the_best_epochs_with_readable_names(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_gender_acc": 0.5 + e / 20,
                "val_age_acc": 0.3 + e / 30} for e in range(1, 7)]
    path = plots.plot_training_curves(history, tmp_path / "curves.svg", best_epochs={"gender": 5, "age": 3})
    svg = path.read_text()
    assert svg.startswith("<?xml") and "val gender accuracy" in svg and "train loss" in svg
    assert "best epoch 3 (age)" in svg and "best epoch 5 (gender)" in svg
    labels = re.findall(r">([^<>]+)</text", svg)
    assert labels[:6] == ["1", "2", "3", "4", "5", "6"]  # integer epoch ticks only


def test_vector_figures_are_the_same_file_for_the_same_data(tmp_path):
    for name in ("a.svg", "b.svg", "a.pdf", "b.pdf"):
        plots.plot_error_distribution({"x": [3, 2, 1]}, tmp_path / name)
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
