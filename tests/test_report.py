"""The comparison report: intervals and calibration error against hand-computed values, provenance, HTML,
figure formats, row-normalised confusion, and a report that regenerates from the same data."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jpeg
from test_hostile_security import write_manifest
from typer.testing import CliRunner

from agegender_cli.cli.app import app
from agegender_cli.evaluation import bootstrap as b
from agegender_cli.evaluation.calibration import calibration
from agegender_cli.evaluation.stats import gap_doubt

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
AGES = (1, 5, 10, 18, 28, 40, 50, 70)


@pytest.fixture
def faces(tmp_path) -> Path:
    """32 labelled faces (4 per age class, both genders, 5 races) and a manifest of them as the test split."""
    folder = tmp_path / "faces"
    rows = []
    for k in range(32):
        age, gender, race = AGES[k % 8], (k // 8) % 2, k % 5
        image = write_jpeg(folder / f"{age}_{gender}_{race}_2017010{k % 9}1234567{k % 10}.jpg", seed=k, size=40)
        rows.append({"path": image.name, "age": age, "gender": gender, "race": race, "age_class": k % 8,
                     "split": "test"})
    write_manifest(folder / "manifest.csv", rows)
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- calibration error, hand-computed

HAND_PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
HAND_TRUE = np.array([0, 1, 1, 0])  # right at 0.9 and 0.8, wrong at 0.6 and 0.7


def test_ece_of_a_hand_made_case():
    # 5 bins: (0.4, 0.6] holds 0.6 (accuracy 0): 1/4 * 0.6; (0.6, 0.8] holds 0.7 and 0.8 (accuracy 1/2,
    # confidence 0.75): 2/4 * 0.25; (0.8, 1] holds 0.9 (accuracy 1): 1/4 * 0.1 -> 0.15 + 0.125 + 0.025 = 0.3
    five = calibration(HAND_TRUE, HAND_PROBS, n_bins=5)
    assert five["ece"] == pytest.approx(0.3)
    assert five["mce"] == pytest.approx(0.6)
    assert [row["n"] for row in five["bins"]] == [0, 0, 1, 2, 1]
    assert five["bins"][3] == pytest.approx({"low": 0.6, "high": 0.8, "n": 2, "confidence": 0.75, "accuracy": 0.5})
    # 15 bins: every face alone in its bin -> (0.1 + 0.2 + 0.6 + 0.7) / 4
    assert calibration(HAND_TRUE, HAND_PROBS)["ece"] == pytest.approx(0.4)
    assert calibration(HAND_TRUE, HAND_PROBS)["n_bins"] == 15


def test_bootstrapped_ece_is_the_ece_of_each_resample():
    counts = np.array([[2.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    ece = b.ece_of(HAND_PROBS.max(1), HAND_PROBS.argmax(1) == HAND_TRUE, 5)(counts)
    # resample 1: faces 0, 0, 2, 3 -> bins (0.4,0.6]: 0.6 wrong; (0.6,0.8]: 0.7 wrong; (0.8,1]: 0.9, 0.9 right
    assert ece == pytest.approx([(0.6 + 0.7 + 2 * 0.1) / 4, 0.3])


# ---------------------------------------------------------------- bootstrap intervals, hand-computed


def test_interval_bounds_of_one_right_in_three():
    # resampled accuracy of [1, 0, 0] is k/3 with k ~ Binomial(3, 1/3): P(0) = 8/27, P(<= 2/3) = 26/27;
    # so the 5% quantile is 0 and the 95% quantile 2/3 (26/27 = 0.963 > 0.95)
    found = b.bootstrap_intervals({"acc": b.mean_of(np.array([1, 0, 0]))}, 3, 20_000, seed=1, level=0.9)
    assert found["acc"] == pytest.approx((0.0, 2 / 3))
    # at 95% the upper bound is 1 (P(3 of 3) = 1/27 = 0.037 > 0.025)
    found = b.bootstrap_intervals({"acc": b.mean_of(np.array([1, 0, 0]))}, 3, 20_000, seed=1)
    assert found["acc"] == pytest.approx((0.0, 1.0))


def test_intervals_of_every_headline_metric_on_a_tiny_case():
    true = np.array([0, 0, 1, 1, 2, 2])
    distance = np.array([0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    stats = {
        "auc": b.auc_of(np.array([0, 0, 0, 1, 1, 1], bool), np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])),
        "macro_f1": b.macro_f1_of(true, true, 3),  # perfect: 1 in every resample
        "error_mean": b.mean_of(distance),
        "error_std": b.std_of(np.ones(6)),  # constant: 0 in every resample
        "gap": b.difference(b.mean_of(np.ones(6), true == 0), b.mean_of(np.zeros(6), true == 1)),
    }
    found = b.bootstrap_intervals(stats, 6, 2000, seed=0)
    assert found["auc"] == (1.0, 1.0)  # separated classes; resamples with one class only are left out
    assert found["macro_f1"] == (1.0, 1.0)
    assert found["error_std"] == (0.0, 0.0)
    # the mean of four 2s and two 0s in 6 draws: k twos, k ~ Binomial(6, 2/3): P(k <= 1) = 0.018 < 0.025
    # < P(k <= 2) = 0.100 and P(k >= 6) = 0.088 > 0.025 -> bounds 2 * 2/6 and 2
    assert found["error_mean"] == pytest.approx((2 / 3, 2.0))
    assert found["gap"] == (1.0, 1.0)  # group 0 always right, group 1 always wrong


def test_auc_and_macro_f1_match_sklearn_on_a_resample():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    y, score = rng.integers(0, 2, 300), np.round(rng.random(300), 1)  # ties on purpose
    true, pred = rng.integers(0, 8, 300), rng.integers(0, 8, 300)
    drawn = rng.integers(0, 300, 300)
    counts = np.bincount(drawn, minlength=300)[None].astype(float)
    assert b.auc_of(y == 1, score)(counts)[0] == pytest.approx(roc_auc_score(y[drawn], score[drawn]))
    assert b.macro_f1_of(true, pred, 8)(counts)[0] == pytest.approx(
        f1_score(true[drawn], pred[drawn], average="macro"))


def test_a_gap_over_few_faces_reads_as_uncertain():
    gap = {"n_best": 120, "n_worst": 7}
    assert gap_doubt(gap, (0.05, 0.30), min_n=20) == "n = 7 < 20"
    assert gap_doubt({"n_best": 120, "n_worst": 90}, (-0.02, 0.1), 20) == "interval includes 0"
    assert gap_doubt({"n_best": 120, "n_worst": 90}, (0.01, 0.1), 20) is None


# ---------------------------------------------------------------- the commands


def test_evaluate_json_carries_intervals_calibration_and_provenance(tiny_arch, faces):
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(faces / "manifest.csv"), "--json",
                                 "--bootstrap", "200", "--normalize"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    data = {**envelope["results"]["tiny"], "provenance": envelope["provenance"]}
    assert set(data["ci95"]["gender"]) == {"accuracy", "auc", "ece"}
    assert set(data["ci95"]["age"]) == {"accuracy", "one_off", "macro_f1", "mean_error", "std_error", "ece"}
    low, high = data["ci95"]["age"]["accuracy"]
    assert low <= data["age"]["accuracy"] <= high
    assert data["calibration"]["age"]["n_bins"] == 15 and len(data["calibration"]["age"]["bins"]) == 15
    assert data["calibration"]["gender"]["ece"] >= 0
    gaps = data["groups"]["race"]["largest_gap"]["gender_accuracy"]
    assert gaps["uncertain"] and "< 20" in gaps["doubt"]  # 32 faces over 5 races: every group is small
    for row in data["age"]["confusion_row_normalised"]:
        assert sum(row) == pytest.approx(1.0)
    assert data["provenance"]["data"]["manifest"]["sha256"] == sha256(faces / "manifest.csv")


def test_provenance_fields_of_a_compare_run(tiny_arch, faces, tmp_path, monkeypatch):
    from agegender_cli import __version__
    from agegender_cli.cli import app as cli_app

    model = tmp_path / "model.bin"
    model.write_bytes(b"tiny weights")
    (faces / "broken_0_0_20170101000000000.jpg").write_bytes(b"x")  # not UTKFace-named: not listed
    manifest = faces / "manifest.csv"
    bad = write_jpeg(faces / "unused.jpg")
    bad.write_bytes(b"not a jpeg")
    with manifest.open("a") as handle:
        handle.write("unused.jpg,28,0,0,4,test\n")
    report = tmp_path / "out" / "report.md"
    argv = ["agegender", "compare", "--arch", "tiny", "--manifest", str(manifest), "--model", f"tiny={model}",
            "--report", str(report), "--bootstrap", "100", "--seed", "7", "--json"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli_app.main()
    assert exit_info.value.code == 1  # one image could not be read
    text = report.read_text()
    assert "agegender compare --arch tiny --manifest" in text and "--seed 7" in text
    assert sha256(model) in text and sha256(manifest) in text
    assert f"agegender {__version__}" in text
    assert "Images skipped | 1" in text and "unused.jpg" in text
    # citable: what to cite, the commit and every version that decides the numbers, the detector pinned
    references = text.split("## References", 1)[1]
    for cited in ("UTKFace", "Levi, T. Hassner", "Schroff", "VGGFace2", "Multitask Cascaded", "Federici"):
        assert cited in references
    import onnxruntime

    assert f"| onnxruntime | {onnxruntime.__version__} |" in text
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert f"| agegender commit | {commit.strip()}" in text
    from agegender_cli.config import EvaluateConfig

    rerun = text.split("Rerun:", 1)[1].splitlines()[0]
    assert f"--detector {EvaluateConfig().detector}" in rerun and rerun.count("--seed") == 1  # defaults pinned


def test_provenance_in_json(tiny_arch, faces, tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"tiny weights")
    manifest = faces / "manifest.csv"
    result = runner.invoke(app, ["compare", "--arch", "tiny", "--manifest", str(manifest), "--model",
                                 f"tiny={model}", "--bootstrap", "50", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    p = json.loads(result.stdout)["provenance"]
    assert p["tool"]["name"] == "agegender" and p["seed"] == 3 and p["bootstrap"]["resamples"] == 50
    (file,) = p["models"]["tiny"]["files"]
    assert file == {"path": str(model.resolve()), "bytes": len(b"tiny weights"), "sha256": sha256(model)}
    assert p["models"]["tiny"]["engine"] == "numpy" and p["models"]["tiny"]["description"].startswith("tiny")
    assert p["data"]["manifest"] == {"path": str(manifest.resolve()), "bytes": manifest.stat().st_size,
                                     "sha256": sha256(manifest)}
    assert p["data"]["used"] == p["data"]["listed"] == 32 and p["data"]["skipped"] == []
    assert re.fullmatch(r"[0-9a-f]{64}", p["data"]["images_sha256"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", p["date"])
    assert p["software"]["numpy"] == np.__version__


def test_html_report_is_self_contained(tiny_arch, faces, tmp_path):
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["compare", "--arch", "tiny", "--manifest", str(faces / "manifest.csv"),
                                 "--report", str(report), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Provenance: run" in page and "Accuracy per race" in page
    sources = re.findall(r'(?:src|href|data)="([^"]*)"', page)
    assert len(sources) == 6 and all(s.startswith("data:image/svg+xml;base64,") for s in sources)  # vector
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    assert page.count("<figcaption>") == 6 and "n = 32 faces" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "report.html"]  # no figures folder


def test_figures_are_vector_and_sized_to_print_in_a_two_column_paper(tiny_arch, faces, tmp_path):
    """Figures were as wide as 22 inches with 8-point numbers (unreadable once printed), each of another width; now
    each is one column (3.4 in) or the page (7.0 in) wide as drawn, in SVG by default, no text under 7 points."""
    from agegender_cli.config import COLUMN_WIDTH_IN, PAPER_WIDTH_IN

    result = runner.invoke(app, ["compare", "--arch", "tiny,tiny", "--manifest", str(faces / "manifest.csv"),
                                 "--plots", str(tmp_path / "figures"), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    figures = sorted((tmp_path / "figures").iterdir())
    assert len(figures) == 6 and {f.suffix for f in figures} == {".svg"}
    for figure in figures:
        text = figure.read_text()
        width = float(re.search(r'<svg[^>]* width="([0-9.]+)pt"', text).group(1)) / 72
        assert width == pytest.approx(PAPER_WIDTH_IN) or width == pytest.approx(COLUMN_WIDTH_IN), figure.name
        sizes = [float(s) for s in re.findall(r"font-size: ?([0-9.]+)px", text)]
        assert sizes and min(sizes) >= 7, figure.name


def test_markdown_report_links_figures_relative_to_itself(tiny_arch, faces, tmp_path):
    report = tmp_path / "out" / "report.md"
    result = runner.invoke(app, ["compare", "--arch", "tiny", "--manifest", str(faces / "manifest.csv"),
                                 "--report", str(report), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    text = report.read_text()
    links = re.findall(r"!\[Figure \d+\]\(([^)]+)\)", text)
    assert links[0] == "report_figures/roc_gender.svg" and len(links) == 6
    assert all((report.parent / link).is_file() for link in links)
    assert "*Figure 6.* Reliability diagrams of the age class task of tiny" in text
    for metric in ("Gender AUC", "Gender ECE", "Age macro-F1", "Age class error mean", "Age ECE"):
        assert re.search(rf"\| {metric} \| [0-9.%]+ \[[0-9.]+, [0-9.]+\] \|", text), metric


def test_report_regenerates_from_the_same_data(tiny_arch, faces, tmp_path):
    def run(folder: Path) -> tuple[str, dict[str, bytes]]:
        report = folder / "report.md"
        result = runner.invoke(app, ["compare", "--arch", "tiny", "--manifest", str(faces / "manifest.csv"),
                                     "--report", str(report), "--bootstrap", "300"])
        assert result.exit_code == 0, result.output
        text = re.sub(r"\| Date \(UTC\) \| [^|]+ \|", "", report.read_text())
        return text.replace(str(folder), "DIR"), {p.name: p.read_bytes() for p in (folder / "report_figures").iterdir()}

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second


@pytest.mark.parametrize(("fmt", "magic"), [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_plot_format_writes_those_files(tiny_arch, faces, tmp_path, fmt, magic):
    plots = tmp_path / "plots"
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(faces / "manifest.csv"), "--plots",
                                 str(plots), "--plot-format", fmt, "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in plots.iterdir())
    assert names == sorted(f"{n}.{fmt}" for n in ("roc_gender", "confusion_gender", "confusion_age",
                                                  "age_error_distribution", "reliability_gender", "reliability_age"))
    assert all((plots / n).read_bytes().startswith(magic) for n in names)
    summary = tmp_path / "summary"
    result = runner.invoke(app, ["predict", str(faces), "--arch", "tiny", "--detector", "none", "--summary-plot",
                                 str(summary), "--plot-format", fmt])
    assert result.exit_code == 0, result.output
    assert summary.read_bytes().startswith(magic)
    result = runner.invoke(app, ["predict", str(faces), "--arch", "tiny", "--detector", "none", "--summary-plot",
                                 str(tmp_path / "s.png"), "--plot-format", fmt])
    assert result.exit_code == 2 and "--plot-format" in result.output
    assert runner.invoke(app, ["evaluate", "--arch", "tiny", "--plot-format", "gif"]).exit_code == 2


def test_normalize_prints_rows_that_sum_to_one(tiny_arch, faces):
    result = runner.invoke(app, ["evaluate", "--arch", "tiny", "--manifest", str(faces / "manifest.csv"),
                                 "--normalize", "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert "Age confusion matrix: tiny (row-normalised)" in result.stdout
    rows = [line for line in result.stdout.splitlines() if re.match(r"│ \d+[-+]\d* *\(n=\d+\)", line)]
    assert len(rows) == 8
    for line in rows:
        shares = [float(v) for v in re.findall(r"\b(\d+\.\d)%", line.split(")", 1)[1])]
        assert len(shares) == 8 and sum(shares) == pytest.approx(100.0, abs=0.5)


def test_report_replaces_only_a_report_it_wrote_unless_overwrite(tiny_arch, tiny_utkface, tmp_path):
    """--report once replaced any file that was not an input (a photo, a labels file) and made a figures folder
    beside it."""
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg, but the user's")
    args = ["compare", "--arch", "tiny,tiny", "--images", str(tiny_utkface), "--bootstrap", "20"]
    refused = runner.invoke(app, [*args, "--report", str(photo)])
    assert refused.exit_code == 1 and "not a report agegender wrote" in " ".join(refused.stderr.split())
    assert photo.read_bytes() == b"\xff\xd8 not really a jpeg, but the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.jpg", "utk"]
    # (tiny_utkface holds a few unreadable files: the runs exit 1 with the report written)
    report = tmp_path / "report.md"
    for _ in range(2):  # its own report is replaced
        assert "not a report agegender wrote" not in runner.invoke(app, [*args, "--report", str(report)]).stderr
        assert report.read_text().startswith("# ")
    html = tmp_path / "report.html"
    for _ in range(2):
        assert "not a report agegender wrote" not in runner.invoke(app, [*args, "--report", str(html)]).stderr
        assert html.read_text().startswith("<!DOCTYPE html>")
    runner.invoke(app, [*args, "--report", str(photo), "--overwrite"])
    assert photo.read_text().startswith("# ")
