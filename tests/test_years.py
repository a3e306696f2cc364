"""Age in years: the head, caffenet's years layers (cv2.dnn and twin), gap ages in manifests, evaluation, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_caffenet import _twin, _write_net
from typer.testing import CliRunner

from agegender_cli.archs.caffenet.deploy import NET_NAMES, NUM_CLASSES, net_files
from agegender_cli.archs.caffenet.net import YEARS_OUTPUT, LeviHassnerNet
from agegender_cli.archs.caffenet.predictor import CaffenetPredictor
from agegender_cli.archs.years_head import N_BINS, YearsHead, choose_years_head, expected_years, head_from_state
from agegender_cli.cli.app import app

runner = CliRunner()


def _synthetic_ages(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 16)) * 4 + 2).astype(np.float32)
    ages = np.clip(35 + x[:, :3] @ np.array([3.0, -2.0, 1.5]), 0, 95).astype(np.float32)
    return x, ages


def test_years_head_learns_and_its_folded_scaling_matches_val_mae() -> None:
    x, ages = _synthetic_ages(1600)
    candidates = ({"kind": "linear", "epochs": 15, "batch_size": 32}, {"kind": "mlp", "hidden": 32, "epochs": 15,
                                                                        "batch_size": 32})
    fit, tried = choose_years_head(x[:1200], ages[:1200], x[1200:], ages[1200:], candidates=candidates)
    assert len(tried) == 2 and fit.val_mae == pytest.approx(min(t["val_mae"] for t in tried), abs=1e-4)
    with torch.no_grad():
        years = expected_years(torch.softmax(fit.head(torch.from_numpy(x[1200:])), 1).numpy())
    mae = float(np.abs(years - ages[1200:]).mean())
    assert mae == pytest.approx(fit.val_mae, abs=0.06)  # raw features in, standardisation folded into layer 1
    baseline = float(np.abs(ages[1200:] - np.median(ages[:1200])).mean())
    assert mae < baseline / 2


def test_expected_years_is_the_mean_of_the_distribution() -> None:
    probs = np.zeros((2, N_BINS), np.float32)
    probs[0, 20], probs[0, 30] = 0.5, 0.5
    probs[1, 100] = 1.0
    assert expected_years(probs).tolist() == [25.0, 100.0]


def test_head_from_state_refuses_misfit_weights() -> None:
    head = YearsHead(512, "mlp", 64)
    assert head_from_state(head.spec(), head.state_dict()).kind == "mlp"
    with pytest.raises(ValueError):
        head_from_state({**head.spec(), "hidden": 32}, head.state_dict())
    with pytest.raises(ValueError):
        head_from_state({"kind": "tree", "in_features": 512, "hidden": 64}, head.state_dict())
    broken = {k: v.clone() for k, v in head.state_dict().items()}
    broken["hidden_layer.weight"][0, 0] = float("inf")
    with pytest.raises(ValueError, match="not a finite number"):
        head_from_state(head.spec(), broken)


def test_a_constant_feature_keeps_the_folded_head_finite_in_fp16() -> None:
    """An embedding dimension that barely varies must not blow its folded weight past fp16 (a head once stored
    `inf` there and answered NaN years for every face)."""
    x, ages = _synthetic_ages(800)
    x[:, 5] = 0.25 + np.random.default_rng(1).normal(size=len(x)).astype(np.float32) * 1e-7
    fit, _ = choose_years_head(x[:600], ages[:600], x[600:], ages[600:],
                               candidates=({"kind": "mlp", "hidden": 16, "epochs": 5, "batch_size": 32},))
    for tensor in fit.head.state_dict().values():
        assert bool(torch.isfinite(tensor.half()).all())


@pytest.fixture(scope="module")
def years_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A caffenet folder whose age_net carries years layers (an MLP head), written by `with_years`."""
    base = tmp_path_factory.mktemp("caffenet_base")
    for seed, task in enumerate(NET_NAMES):
        _write_net(base, task, _twin(NUM_CLASSES[task], seed), fp16=True)
    torch.manual_seed(3)
    head = YearsHead(512, "mlp", 32).eval()
    with torch.no_grad():
        head.output.weight.mul_(20)
    out = tmp_path_factory.mktemp("caffenet_years")
    CaffenetPredictor(base, engine="torch").with_years(head, {"val_mae": 1.0}, out)
    return out


def _faces(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (200, 200, 3), dtype=np.uint8) for _ in range(count)]


def test_caffenet_years_layers_run_in_cv2_dnn_and_the_twin_alike(years_model: Path) -> None:
    import cv2

    prototxt, _ = net_files(years_model, "age")
    assert YEARS_OUTPUT in prototxt.read_text()
    net = cv2.dnn.readNetFromCaffe(*map(str, net_files(years_model, "age")))
    assert YEARS_OUTPUT in net.getLayerNames()
    faces = _faces(6)
    # fp32 on every engine: the 1e-4 tolerance is fp32's (bf16 or int8, where auto picks them, differ by ~0.03)
    by_engine = {engine: CaffenetPredictor(years_model, engine=engine, precision="fp32").predict(faces)
                 for engine in ("opencv", "torch", "onnx")}
    opencv, twin = by_engine["opencv"], by_engine["torch"]
    assert opencv.age_years is not None and twin.age_years is not None
    assert np.abs(opencv.age_years - twin.age_years).max() <= 0.15  # fp32 vs cv2.dnn, rounded to 0.1 year
    assert np.abs(opencv.age_prob - twin.age_prob).max() < 1e-4
    onnx = by_engine["onnx"]
    assert np.abs(opencv.age_years - onnx.age_years).max() <= 0.15
    assert np.abs(opencv.age_prob - onnx.age_prob).max() < 1e-4
    assert len(set(np.round(opencv.age_years).tolist())) > 1  # the estimate depends on the face


def test_adding_years_keeps_the_class_outputs(years_model: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    for seed, task in enumerate(NET_NAMES):
        _write_net(base, task, _twin(NUM_CLASSES[task], seed), fp16=True)
    faces = _faces(4)
    before = CaffenetPredictor(base, engine="opencv").predict(faces)
    after = CaffenetPredictor(years_model, engine="opencv").predict(faces)
    assert before.age_years is None
    np.testing.assert_allclose(before.age_prob, after.age_prob, atol=1e-6)
    np.testing.assert_allclose(before.gender_prob, after.gender_prob, atol=1e-6)


def test_twin_refuses_a_years_layer_of_the_wrong_size(years_model: Path, tmp_path: Path) -> None:
    import shutil

    from agegender_cli.archs.caffenet.caffemodel import export_caffemodel, twin_from_caffemodel
    from agegender_cli.archs.caffenet.net import deploy_prototxt
    from agegender_cli.errors import AgeGenderError

    bad = LeviHassnerNet(8, years=True)
    bad.fc_years = torch.nn.Linear(512, 50)
    folder = tmp_path / "bad"
    shutil.copytree(years_model, folder)
    prototxt, caffemodel = net_files(folder, "age")
    prototxt.write_text(deploy_prototxt(8, years=True).replace(f"num_output: {N_BINS}", "num_output: 50"))
    export_caffemodel(bad, caffemodel, fp16=True)
    with pytest.raises(AgeGenderError, match="fc_years"):
        twin_from_caffemodel(prototxt, caffemodel)


def _utk_folder(folder: Path, ages: list[int]) -> Path:
    from conftest import write_jpeg

    for n, age in enumerate(ages):
        write_jpeg(folder / f"{age}_{n % 2}_{n % 5}_201701011234567{n:02d}.jpg.chip.jpg", seed=n, size=32)
    return folder


def test_dataset_gaps_keep_adds_gap_ages_without_moving_class_faces(tmp_path: Path) -> None:
    ages = [1, 5, 10, 18, 28, 40, 50, 70] * 6 + [3, 22, 35, 45, 57] * 4
    source = _utk_folder(tmp_path / "utk", ages)
    args = ["dataset", str(source), "--duplicates", "ignore"]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "drop")]).exit_code == 0
    result = runner.invoke(app, [*args, "--gaps", "keep", "--keep-splits-from", str(tmp_path / "drop/manifest.csv"),
                                 "--out", str(tmp_path / "keep"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["gap_rule"].startswith("ages between the classes are kept")
    drop = {r["path"]: r for r in csv.DictReader((tmp_path / "drop/manifest.csv").open())}
    keep = {r["path"]: r for r in csv.DictReader((tmp_path / "keep/manifest.csv").open())}
    gap_rows = [r for r in keep.values() if r["age_class"] == ""]
    assert len(gap_rows) == 20 and {int(r["age"]) for r in gap_rows} == {3, 22, 35, 45, 57}
    assert {r["split"] for r in gap_rows} == {"train", "val", "test"}
    assert all(keep[path]["split"] == row["split"] for path, row in drop.items())


def test_years_metrics_cover_gap_faces(tmp_path: Path) -> None:
    """Records with a gap age (--gaps keep) reach the years metrics, in their own age-class row."""
    from agegender_cli.archs.base import Prediction
    from agegender_cli.config import EvaluateConfig
    from agegender_cli.data.utkface import records_from_folder
    from agegender_cli.service.scoring import add_years

    source = _utk_folder(tmp_path / "utk", [1, 5, 10, 18, 28, 40, 50, 70, 22, 35])
    records, _ = records_from_folder(source, gaps="keep")
    assert sum(r.age_class is None for r in records) == 2
    years = np.array([r.age + 2.0 for r in records], np.float32)
    evaluation = {"records": records, "results": {"x": {}}, "predictions": {"x": Prediction(
        np.tile([0.6, 0.4], (10, 1)), np.tile(np.eye(8)[4], (10, 1)), years)}}
    add_years(evaluation, EvaluateConfig(bootstrap=50))
    metrics = evaluation["results"]["x"]["years"]
    assert metrics["n"] == 10 and metrics["mae"] == pytest.approx(2.0) and metrics["cs5"] == 1.0
    assert metrics["per_age_class"]["between classes"]["n"] == 2


@pytest.mark.integration
def test_train_years_then_predict_and_evaluate_show_years(tmp_path: Path) -> None:
    """The real bundled caffenet gets a years head on 40 + 40 real faces; predict and evaluate report years and
    the class metrics are those of the bundled model."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface_crop_part1"
    files = sorted(shared.glob("*.jpg.chip.jpg"))[::40][:120]
    if len(files) < 120:
        pytest.skip("../shared/data/utkface_crop_part1 is not here")
    source = tmp_path / "utk"
    source.mkdir()
    for f in files:
        (source / f.name).symlink_to(f)
    ds = tmp_path / "ds"
    assert runner.invoke(app, ["dataset", str(source), "--gaps", "keep", "--out", str(ds),
                               "--duplicates", "ignore"]).exit_code == 0
    model = tmp_path / "model"
    result = runner.invoke(app, ["train", "--arch", "caffenet", "--years", "--manifest", str(ds / "manifest.csv"),
                                 "--out", str(model), "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["val_mae"] > 0 and len(trained["tried"]) == 3 and (model / "years_history.json").is_file()
    from agegender_cli.archs.caffenet import ARCH as CAFFENET
    from agegender_cli.data.fingerprints import read_fingerprints

    bundled, extended = read_fingerprints(CAFFENET.bundled), read_fingerprints(model)
    assert set(bundled.tolist()) < set(extended.tolist())  # the bundled net's images and the head's
    one = str(files[0])
    predicted = runner.invoke(app, ["predict", one, "--arch", "caffenet", "--model", str(model), "--detector", "none",
                                    "--json"])
    assert predicted.exit_code == 0, predicted.output
    row = json.loads(predicted.stdout.splitlines()[0])
    assert 0 <= row["caffenet"]["age_years"] <= 100
    table = runner.invoke(app, ["predict", one, "--arch", "caffenet", "--model", str(model), "--detector", "none"])
    assert " y)" in table.stdout
    evaluated = runner.invoke(app, ["evaluate", "--arch", "caffenet", "--model", str(model), "--manifest",
                                    str(ds / "manifest.csv"), "--split", "test", "--json", "--bootstrap", "50"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)["results"]["caffenet"]
    n_test = sum(1 for r in csv.DictReader((ds / "manifest.csv").open()) if r["split"] == "test")
    n_class = sum(1 for r in csv.DictReader((ds / "manifest.csv").open()) if r["split"] == "test" and r["age_class"])
    assert metrics["years"]["n"] == n_test and metrics["gender"]["n"] == n_class
    assert metrics["years"]["mae"] is not None and 0 <= metrics["years"]["cs5"] <= 1


@pytest.mark.integration
def test_bundled_models_tell_years_for_each_face_of_a_photo() -> None:
    """`predict photo.jpg --arch both` shows years for each face, in the table and in --json."""
    photo = str(Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg")
    result = runner.invoke(app, ["predict", photo, "--arch", "both", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    archs = ("facenet", "caffenet", "fused")  # both: the two models and their fused answer
    assert rows and all(0 < row[arch]["age_years"] < 100 for row in rows for arch in archs)
    table = runner.invoke(app, ["predict", photo, "--arch", "both"])
    assert table.stdout.count(" y)") == len(archs) * len(rows)


def test_train_years_refuses_a_folder_that_holds_a_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "age_net.caffemodel").write_bytes(b"earlier")
    result = runner.invoke(app, ["train", "--arch", "caffenet", "--years", "--out", str(out)])
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert (out / "age_net.caffemodel").read_bytes() == b"earlier"


def test_group_counts_leave_out_faces_scored_in_years_only() -> None:
    from agegender_cli.evaluation.stats import group_metrics

    groups = np.array(["A", "A", "A", "B"])
    gender_true, age_true = np.array([0, 1, -1, 1]), np.array([2, -1, -1, 3])  # the third: a gap age
    table = group_metrics(groups, gender_true, np.array([0, 1, 0, 0]), age_true, np.array([2, 0, 0, 3]))
    assert table["A"]["n"] == 2 and table["A"]["gender_accuracy"] == 1.0 and table["A"]["age_accuracy"] == 1.0
    assert table["B"]["n"] == 1
