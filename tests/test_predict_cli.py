"""`agegender predict`, `evaluate` and `compare` end to end with the bundled models."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from agegender_cli.cli.app import app

pytestmark = pytest.mark.integration
runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.jpg"
THREE = ("10_1_0_20170109204617417.jpg.chip.jpg", "27_0_0_20170105164657988.jpg.chip.jpg",
         "24_1_4_20170103235057348.jpg.chip.jpg")


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def group_photo(tmp_path_factory, shared_utkface) -> Path:
    """Three UTKFace faces pasted left to right on a grey canvas (a photo with several people)."""
    canvas = np.full((420, 900, 3), 128, np.uint8)
    for k, name in enumerate(THREE):
        face = cv2.imread(str(shared_utkface / name))
        canvas[110:310, 60 + 290 * k: 260 + 290 * k] = face
    path = tmp_path_factory.mktemp("group") / "group.jpg"
    cv2.imwrite(str(path), canvas)
    return path


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, shared_utkface) -> Path:
    """40 labelled UTKFace crops (links), 5 per age class."""
    folder = tmp_path_factory.mktemp("small")
    taken: dict[str, int] = {}
    from agegender_cli.data.utkface import Record, label_record

    for path in sorted(shared_utkface.iterdir()):
        record = label_record(path, "drop")
        if isinstance(record, Record) and taken.get(str(record.age_class), 0) < 5:
            taken[str(record.age_class)] = taken.get(str(record.age_class), 0) + 1
            (folder / path.name).symlink_to(path)
    return folder


def test_predict_on_a_real_photo_finds_one_face_with_both_archs():
    result = runner.invoke(app, ["predict", str(ASTRONAUT), "--arch", "both", "--json"])
    assert result.exit_code == 0, result.output
    (face,) = _lines(result.stdout)
    assert face["file"] == str(ASTRONAUT) and face["frame"] is None and face["score"] > 0.9
    x1, y1, x2, y2 = face["box"]
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200
    for arch in ("facenet", "caffenet"):
        out = face[arch]
        assert out["gender"] in ("male", "female") and 0.5 <= out["gender_prob"] <= 1
        assert sum(out["age_probs"].values()) == pytest.approx(1, abs=1e-3)
    assert face["facenet"]["gender"] == "female"  # Eileen Collins


def test_multi_face_photo_gives_one_row_per_face_left_to_right(group_photo):
    result = runner.invoke(app, ["predict", str(group_photo), "--arch", "facenet", "--json"])
    assert result.exit_code == 0, result.output
    faces = _lines(result.stdout)
    assert [f["face"] for f in faces] == [0, 1, 2]
    centres = [(f["box"][0] + f["box"][2]) / 2 for f in faces]
    assert centres == sorted(centres) and all(abs(c - (160 + 290 * k)) < 40 for k, c in enumerate(centres))


def test_bad_file_in_a_batch_is_reported_and_the_run_goes_on(tmp_path, shared_utkface):
    good = tmp_path / "good.jpg"
    good.write_bytes((shared_utkface / THREE[1]).read_bytes())
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = runner.invoke(app, ["predict", str(tmp_path), "--detector", "none", "--arch", "caffenet", "--json"])
    assert result.exit_code == 1
    rows = _lines(result.stdout)
    errors = [r for r in rows if "error" in r]
    assert len(errors) == 1 and errors[0]["file"].endswith("broken.jpg") and "decode" in errors[0]["error"]
    assert any(r["file"].endswith("good.jpg") and "caffenet" in r for r in rows)


def test_table_csv_annotate_and_summary(tmp_path, group_photo):
    out_csv, annotated, chart = tmp_path / "faces.csv", tmp_path / "annotated", tmp_path / "summary.png"
    result = runner.invoke(app, ["predict", str(group_photo), str(ASTRONAUT), "--arch", "both", "--csv", str(out_csv),
                                 "--annotate", str(annotated), "--summary", "--summary-plot", str(chart)])
    assert result.exit_code == 0, result.output
    assert "Faces" in result.stdout and "facenet" in result.stdout and "Summary" in result.stdout
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 4 and {"facenet_gender", "caffenet_age", "x1", "score"} <= set(rows[0])
    assert sorted(p.name for p in annotated.iterdir()) == ["astronaut.jpg", "group.jpg"]
    assert chart.stat().st_size > 5000


def test_paths_on_stdin_and_globs(tmp_path, shared_utkface):
    for name in THREE:
        (tmp_path / name).symlink_to(shared_utkface / name)
    result = runner.invoke(app, ["predict", "-", "--detector", "none", "--arch", "facenet", "--json"],
                           input="\n".join(str(tmp_path / n) for n in THREE[:2]) + "\n")
    assert result.exit_code == 0 and len(_lines(result.stdout)) == 2
    result = runner.invoke(app, ["predict", str(tmp_path / "2*.jpg"), "--detector", "none", "--arch", "facenet",
                                 "--json"])
    assert result.exit_code == 0 and len(_lines(result.stdout)) == 2


def test_video_every_nth_frame(tmp_path):
    photo = cv2.resize(cv2.imread(str(ASTRONAUT)), (256, 256))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for _ in range(10):
        writer.write(photo)
    writer.release()
    result = runner.invoke(app, ["predict", str(video), "--every", "4", "--arch", "facenet", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["frame"] for r in _lines(result.stdout)] == [0, 4, 8]


def test_predict_bad_usage_exits_2():
    assert runner.invoke(app, ["predict", str(ASTRONAUT), "--arch", "resnet"]).exit_code == 2
    assert runner.invoke(app, ["predict", str(ASTRONAUT), "--detector", "yolo"]).exit_code == 2
    assert runner.invoke(app, ["predict"]).exit_code == 2


def test_evaluate_json_schema_for_both_archs(small_set):
    for arch in ("facenet", "caffenet"):
        result = runner.invoke(app, ["evaluate", "--arch", arch, "--images", str(small_set), "--json"])
        assert result.exit_code == 0, result.output
        envelope = json.loads(result.stdout)
        assert envelope["schema"] == 1 and envelope["command"] == "evaluate" and list(envelope["results"]) == [arch]
        data = envelope["results"][arch]
        assert data["arch"] == arch and data["n"] == 40
        assert set(data["gender"]) >= {"accuracy", "auc"} and len(data["age"]["confusion"]) == 8
        assert set(data["age"]) >= {"accuracy", "one_off", "mean_error", "std_error", "confusion"}


def test_evaluate_table_and_plots(small_set, tmp_path):
    result = runner.invoke(app, ["evaluate", "--arch", "caffenet", "--images", str(small_set), "--plots",
                                 str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Table 5.1" in result.stdout and "Table 5.4" in result.stdout
    # vector by default: the figures go into papers
    assert {p.name for p in tmp_path.iterdir()} >= {"roc_gender.svg", "confusion_age.svg",
                                                    "age_error_distribution.svg", "reliability_age.svg"}


def test_compare_json_and_markdown_report(small_set, tmp_path):
    report = tmp_path / "report.md"
    result = runner.invoke(app, ["compare", "--images", str(small_set), "--json", "--report", str(report),
                                 "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["schema"] == 1 and envelope["command"] == "compare" and envelope["report"] == str(report)
    data = {**envelope["results"], "tests": envelope["tests"], "provenance": envelope["provenance"]}
    assert {"facenet", "caffenet"} <= set(envelope["results"])
    assert data["facenet"]["n"] == data["caffenet"]["n"] == 40
    low, high = data["facenet"]["ci95"]["gender"]["accuracy"]
    assert low <= data["facenet"]["gender"]["accuracy"] <= high
    low, high = data["facenet"]["ci95"]["gender"]["auc"]
    assert low <= data["facenet"]["gender"]["auc"] <= high
    assert 0 <= data["caffenet"]["calibration"]["age"]["ece"] <= 1
    from agegender_cli.archs.registry import get
    from agegender_cli.fileio import sha256_file

    models = data["provenance"]["models"]
    (facenet_file,) = models["facenet"]["files"]
    assert facenet_file["sha256"] == sha256_file(get("facenet").bundled)
    assert models["facenet"]["backbone"]["trained_sha256"] == models["facenet"]["backbone"]["sha256"]
    caffe = {Path(f["path"]).name: f["sha256"] for f in models["caffenet"]["files"]}
    assert caffe["age_net.caffemodel"] == sha256_file(get("caffenet").bundled / "age_net.caffemodel")
    assert "14,349 train" in models["facenet"]["training_data"]  # from the model card
    assert set(data["tests"]["facenet vs caffenet"]) == {"gender", "age", "years"}  # years: Wilcoxon
    assert data["tests"]["facenet vs caffenet"]["years"]["n"] == data["facenet"]["years"]["n"] == 40
    assert "race" in data["facenet"]["groups"]
    text = report.read_text()
    assert "## Accuracy, AUC and calibration" in text and "McNemar" in text and "## Provenance: models" in text
    assert "## Age in years" in text and "Wilcoxon" in text
    assert "![Figure 1](report_figures/roc_gender.svg)" in text


def test_compare_tables(small_set):
    result = runner.invoke(app, ["compare", "--images", str(small_set), "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    for title in ("Table 5.1", "Table 5.2", "McNemar", "Accuracy per race"):
        assert title in result.stdout


def test_evaluate_without_manifest_is_one_line_exit_1(tmp_path):
    result = runner.invoke(app, ["evaluate", "--manifest", str(tmp_path / "none.csv")])
    assert result.exit_code == 1 and "agegender dataset" in result.stderr
