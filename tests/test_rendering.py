"""Tables people can read at 80 columns and in files, one number style, group gaps in their own columns,
the side-by-side summary plot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.cli.common import ResultConsole
from agegender_cli.cli.dataset import counts_table
from agegender_cli.cli.predict import closing_line, faces_table, summary_table
from agegender_cli.cli.tables import rich_table
from agegender_cli.evaluation.result import ModelResult, PairTests
from agegender_cli.evaluation.tables import groups_table, mcnemar_table, report_tables
from agegender_cli.formatting import plural, with_interval
from agegender_cli.labels import AGE_CLASSES, GENDERS

runner = CliRunner()
DEEP = "photos/2024/summer holiday in the mountains/day three/a very long file name of a photo.jpg"


def rendered(renderable, width: int = 80) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def face_row(file: str, face: int, **extra) -> dict:
    out = {"gender": "female", "gender_prob": 0.9251, "age": "25-32", "age_prob": 0.6123}
    return {"file": file, "frame": None, "face": face, "box": [1200, 340, 1520, 760], "score": 0.9987,
            "facenet": out, "caffenet": dict(out, gender="male", gender_prob=0.55), **extra}


def arch_result(shift: float) -> ModelResult:
    """A hand-made evaluation result whose numbers say which architecture they belong to."""
    per_class = {"precision": 0.9, "recall": 0.8, "f1": 0.85, "miss_rate": 0.2, "fall_out": 0.1, "support": 5}
    groups = {name: {"n": n, "gender_accuracy": 0.9 - shift, "age_accuracy": 0.5 - shift, "one_off": 0.8 - shift,
                     "ci95": {"gender_accuracy": [0.8 - shift, 0.95 - shift]}}
              for name, n in (("White", 1200), ("Black", 600), ("Others", 7))}
    gap = {"metric": "gender_accuracy", "best_group": "White", "worst_group": "Others", "gap": 0.12 + shift,
           "best": 0.9, "worst": 0.78 - shift, "n_best": 1200, "n_worst": 7, "ci95": [-0.031, 0.302],
           "doubt": "n = 7 < 20", "uncertain": True}
    gender = {"n": 1807, "accuracy": 0.9251 - shift, "auc": 0.97, "roc": None,
              "per_class": {g: per_class for g in GENDERS}, "confusion": [[900, 100], [35, 772]],
              "confusion_row_normalised": [[0.9, 0.1], [0.04, 0.96]]}
    eye = np.eye(8, dtype=int).tolist()
    return ModelResult.from_json({
        "arch": "x", "model": "a hand-made model", "n": 1807, "gender": gender,
        "age": {"n": 1807, "accuracy": 0.5, "one_off": 0.8, "macro_f1": 0.45, "mean_error": 0.7, "std_error": 0.9,
                "error_hist": [5, 3, 0, 0, 0, 0, 0, 0], "per_class": {a: per_class for a in AGE_CLASSES},
                "confusion": eye, "confusion_row_normalised": eye},
        "ci95": {"gender": {"accuracy": [0.915 - shift, 0.935 - shift]}, "age": {}},
        "groups": {"race": {"metrics": groups, "largest_gap": {"gender_accuracy": gap, "age_accuracy": None}}}})


def test_faces_table_at_80_columns_folds_instead_of_cutting_and_drops_the_box():
    rows = [face_row(DEEP, 0), face_row(DEEP, 1)]
    text = rendered(faces_table(rows, ("facenet", "caffenet"), folders=("photos",), width=80))
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    assert "box" not in text and "1200,340" not in text  # the box column went
    assert "2024/summer" in text.replace("\n", "") or "2024/" in text  # the path under the folder given
    assert "photos/2024" not in text
    for value in ("female 93%", "25-32 61%", "male 55%", "100%"):
        assert value in text, value
    wide = rendered(faces_table(rows, ("facenet", "caffenet"), folders=("photos",), width=400), width=400)
    assert "1200,340,1520,760" in wide and "summer holiday in the mountains/day three/a very long" in wide


def test_faces_table_names_files_by_basename_and_video_frames_by_time():
    rows = [face_row("/data/clips/clip.mp4", 0, frame=12, time=0.48), face_row("/tmp/x/one.jpg", 0)]
    text = rendered(faces_table(rows, ("facenet",), width=200), width=200)
    assert "clip.mp4 frame 12 (0.48 s)" in text and "one.jpg" in text and "/data" not in text


@pytest.mark.parametrize("width", [80, 120])
def test_report_tables_at_narrow_widths_lose_nothing(width):
    results = {"facenet": arch_result(0.0), "caffenet": arch_result(0.1)}
    tables = [*report_tables(results), groups_table(results, "race"),
              mcnemar_table({"facenet vs caffenet": PairTests.from_json({
                  "gender": {"b": 30, "c": 12, "statistic": 7.7, "p_value": 0.0055, "method": "chi2"},
                  "age": {"b": 3, "c": 1, "statistic": 1.0, "p_value": 0.625, "method": "exact binomial"}})})]
    text = "".join(rendered(rich_table(t), width) for t in tables)
    assert "…" not in text and max(map(len, text.splitlines())) <= width
    flat = text.replace("\n", "").replace(" ", "").replace("│", "").replace("┃", "")
    for value in ("92.51%[91.5%,93.5%]", "82.51%[81.5%,83.5%]", "0.970", "p-value", "0.0055"):
        assert value in flat, value


def test_race_gaps_sit_in_their_own_architectures_columns():
    results = {"facenet": arch_result(0.0), "caffenet": arch_result(0.1)}
    table = groups_table(results, "race")
    header = list(table.header)
    rows = {row[0]: row for row in table.rows}
    facenet, caffenet = header.index("facenet gender"), header.index("caffenet gender")
    assert rows["largest gap"][facenet] == "12.00% [-3.1%, 30.2%]"
    assert rows["largest gap"][caffenet] == "22.00% [-3.1%, 30.2%]"
    assert rows["between"][facenet] == "White vs Others"
    assert rows["trusted"][caffenet] == "no: n = 7 < 20"
    assert rows["largest gap"][header.index("facenet age")] == ""  # no age gap: empty, not shifted
    assert all(len(row) == len(header) for row in table.rows)
    assert rows["White"][facenet] == "90.00% [80.0%, 95.0%]" and rows["White"][caffenet].startswith("80.00%")


def test_titles_stand_alone_and_keep_the_report_number_as_a_note():
    results = {"facenet": arch_result(0.0)}
    for table in report_tables(results):
        assert "Table 5" not in table.title
    accuracy, gender, age = report_tables(results)[:3]
    assert "Table 5.1" in accuracy.note and "Table 5.2" in gender.note and "Table 5.4" in age.note
    assert "Table 5.1" in rendered(rich_table(accuracy))


def test_one_number_style():
    assert with_interval(0.92514, (0.915, 0.935)) == "92.51% [91.5%, 93.5%]"
    assert with_interval(0.976, (0.971, 0.98), share=False) == "0.976 [0.971, 0.980]"
    assert [plural(1, "face"), plural(2, "face"), plural(0, "face")] == ["1 face", "2 faces", "0 faces"]
    assert closing_line({"faces": 1, "frames": 1, "errors": 0}) == "1 face in 1 image/frame; 0 unreadable"
    assert closing_line({"faces": 1200, "frames": 3, "errors": 2}) == "1,200 faces in 3 images/frames; 2 unreadable"
    counts = {"facenet": {g: {a: 1 for a in AGE_CLASSES} for g in GENDERS}}
    assert "1 (6%)" in rendered(summary_table({"counts": counts}, ("facenet",)))


def test_dataset_table_fits_80_columns():
    splits = {s: {"n": 100, "age": {a: 12 for a in AGE_CLASSES}, "gender": {g: 50 for g in GENDERS}}
              for s in ("train", "val", "test")}
    text = rendered(counts_table({"splits": splits}))
    assert "…" not in text and "100 (33%)" in text and "300" in text


def test_results_written_to_a_file_are_full_width_and_a_terminal_gets_its_width():
    piped = ResultConsole(file=io.StringIO())
    assert piped.width > 1000
    terminal = ResultConsole(file=io.StringIO(), force_terminal=True, width=80)
    assert terminal.width == 80


def test_predict_table_on_a_pipe_is_one_unfolded_line_per_face(tiny_arch, tmp_path):
    folder = tmp_path / "photos" / "a rather long folder name for a holiday" / "and a second long level"
    folder.mkdir(parents=True)
    image = folder / "a photo with a long name that would be cut at eighty columns.jpg"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    result = runner.invoke(app, ["predict", str(tmp_path / "photos"), "--arch", "tiny", "--detector", "none"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "a photo with a long name" in line)
    assert len(line) > 80 and "…" not in result.stdout
    assert "a rather long folder name for a holiday/and a second long level/a photo" in line
    assert str(tmp_path) not in result.stdout and "0,0,64,64" in line
    assert "1 face in 1 image/frame; 0 unreadable" in result.stderr


def test_summary_plot_of_two_models_has_two_titled_panels(tmp_path):
    from agegender_cli.evaluation.plots import summary_figure
    from agegender_cli.service import model_title

    counts = np.arange(16).reshape(2, 8)
    model = tmp_path / "mine.pt"
    model.write_bytes(b"x")
    fig = summary_figure({model_title("facenet", None): counts, model_title("caffenet", model): counts * 2})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["facenet: bundled model (n = 120)", "caffenet: mine.pt (n = 240)"]


def test_predict_summary_plot_with_two_archs_draws_both(tmp_path, tiny_arch):
    from tiny_arch import Tiny

    from agegender_cli.archs import registry

    second = registry.register(Tiny("tiny2", bias=0.3))
    try:
        image = tmp_path / "face.png"
        cv2.imwrite(str(image), np.full((64, 64, 3), 200, np.uint8))
        chart = tmp_path / "summary.svg"
        result = runner.invoke(app, ["predict", str(image), "--arch", "tiny,tiny2", "--detector", "none", "--json",
                                     "--summary-plot", str(chart)])
    finally:
        registry.unregister(second.name)
    assert result.exit_code == 0, result.output
    svg = chart.read_text()
    assert "tiny: bundled model (n = 1)" in svg and "tiny2: bundled model (n = 1)" in svg
    assert json.loads(result.stdout.splitlines()[0])["file"] == str(image)


def test_paths_under_folders_are_shown_relative(tmp_path):
    from agegender_cli.cli.predict import input_folders, short_name

    (tmp_path / "in").mkdir()
    folders = input_folders([str(tmp_path / "in") + "/", "-", str(tmp_path / "x.jpg")])
    assert folders == (str(tmp_path / "in"),)
    assert short_name(str(tmp_path / "in" / "a" / "b.jpg"), folders) == str(Path("a") / "b.jpg")
    assert short_name("/elsewhere/c.jpg", folders) == "c.jpg"
