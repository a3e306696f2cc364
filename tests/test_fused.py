"""The fused architecture: facenet's and caffenet's answers combined with weights fitted on val."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from agegender_cli.archs.base import Prediction
from agegender_cli.archs.fused.predictor import FORMAT, FusedPredictor, fuse, read_weights
from agegender_cli.cli.app import app
from agegender_cli.errors import AgeGenderError

runner = CliRunner()


def _prediction(female: float, age_class: int, years: float | None) -> Prediction:
    age = np.full((1, 8), 0.02, np.float32)
    age[0, age_class] = 0.86
    return Prediction(np.array([[1 - female, female]], np.float32), age,
                      None if years is None else np.array([years], np.float32))


def test_fuse_is_a_weighted_mean_per_task():
    a, b = _prediction(0.9, 3, 20.0), _prediction(0.3, 5, 40.0)
    fused = fuse(a, b, {"gender": 0.25, "age": 1.0, "years": 0.5})
    assert fused.gender_prob[0, 1] == pytest.approx(0.25 * 0.9 + 0.75 * 0.3)
    assert np.allclose(fused.age_prob, a.age_prob) and fused.age_years[0] == pytest.approx(30.0)
    assert np.allclose(fused.gender_prob.sum(1), 1) and np.allclose(fused.age_prob.sum(1), 1)
    assert fuse(a, _prediction(0.3, 5, None), {"gender": 0.5, "age": 0.5, "years": 0.5}).age_years[0] == 20.0


def _weights_file(tmp_path, **change) -> object:
    record = {"format": FORMAT, "parts": ["facenet", "caffenet"], "weights": {"gender": 0.6, "age": 0.5,
                                                                               "years": 0.7}}
    record.update(change)
    path = tmp_path / "fused.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("change", [{"weights": {"gender": float("nan"), "age": 0.5, "years": 0.5}},
                                    {"weights": {"gender": 1.5, "age": 0.5, "years": 0.5}},
                                    {"weights": {"gender": 0.5}}, {"format": "other"}, {"parts": ["facenet"]}])
def test_bad_weights_are_refused_on_load(tmp_path, change):
    with pytest.raises(AgeGenderError, match="fused"):
        read_weights(_weights_file(tmp_path, **change))


def test_the_fused_predictor_runs_its_parts_or_combines_their_answers(tmp_path):
    class Fixed:
        def __init__(self, answer: Prediction) -> None:
            self.answer, self.calls = answer, 0

        def predict(self, faces):
            self.calls += 1
            return Prediction(*(np.repeat(x, len(faces), 0) for x in (self.answer.gender_prob,
                                                                      self.answer.age_prob)),
                              np.repeat(self.answer.age_years, len(faces)))

    parts = {"facenet": Fixed(_prediction(0.9, 3, 20.0)), "caffenet": Fixed(_prediction(0.3, 5, 40.0))}
    predictor = FusedPredictor(parts, read_weights(_weights_file(tmp_path)))
    alone = predictor.predict([np.zeros((8, 8, 3), np.uint8)] * 2)
    assert alone.gender_prob[:, 1] == pytest.approx([0.6 * 0.9 + 0.4 * 0.3] * 2)
    assert alone.age_years == pytest.approx([0.7 * 20 + 0.3 * 40] * 2)
    from agegender_cli.archs.base import predict_all

    answers = predict_all({**parts, "fused": predictor}, {name: [np.zeros((8, 8, 3), np.uint8)] for name in
                                                           ("facenet", "caffenet", "fused")})
    assert parts["facenet"].calls == 2 and parts["caffenet"].calls == 2  # once alone, once as parts: not thrice
    assert answers["fused"].gender_prob[0, 1] == pytest.approx(0.6 * 0.9 + 0.4 * 0.3)


@pytest.mark.integration
def test_predict_both_gives_a_third_answer_and_fused_alone_only_that():
    from pathlib import Path

    photo = str(Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg")
    both = runner.invoke(app, ["predict", photo, "--arch", "both", "--json", "--engine", "onnx"])
    assert both.exit_code == 0, both.output
    (record,) = [json.loads(line) for line in both.stdout.splitlines()]
    assert {"facenet", "caffenet", "fused"} <= set(record)
    from agegender_cli.archs.fused import ARCH

    w = read_weights(ARCH.bundled).weights
    expected = w["gender"] * record["facenet"]["p_female"] + (1 - w["gender"]) * record["caffenet"]["p_female"]
    assert record["fused"]["p_female"] == pytest.approx(expected, abs=2e-4)
    alone = runner.invoke(app, ["predict", photo, "--arch", "fused", "--json", "--engine", "onnx"])
    (only,) = [json.loads(line) for line in alone.stdout.splitlines()]
    assert "fused" in only and "facenet" not in only and "caffenet" not in only
    assert only["fused"]["p_female"] == pytest.approx(record["fused"]["p_female"], abs=2e-4)
    assert only["fused"]["age"] == record["fused"]["age"]


@pytest.mark.integration
def test_train_fused_fits_weights_on_val_and_compare_tests_it_against_each_part(tmp_path, shared_utkface):
    faces = sorted(shared_utkface.glob("*.jpg"))[:60]
    rows = ["path,age,gender,race,age_class,split"]
    from agegender_cli.labels import age_to_class

    for k, face in enumerate(faces):
        age, gender = (int(x) for x in face.name.split("_")[:2])
        label = age_to_class(age)
        rows.append(f"{face},{age},{gender},0,{'' if label is None else label},{('val', 'test')[k % 2]}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    trained = runner.invoke(app, ["train", "--arch", "fused", "--manifest", str(tmp_path / "manifest.csv"),
                                  "--out", str(tmp_path / "fused"), "--json"])
    assert trained.exit_code == 0, trained.output
    fitted = read_weights(tmp_path / "fused" / "fused.json")
    assert set(fitted.weights) == {"gender", "age", "years"}
    assert fitted.record["fitted_on"]["split"] == "val" and fitted.record["fitted_on"]["faces"] > 0
    compared = runner.invoke(app, ["compare", "--arch", "both", "--manifest", str(tmp_path / "manifest.csv"),
                                   "--model", f"fused={tmp_path / 'fused' / 'fused.json'}", "--bootstrap", "50",
                                   "--json"])
    assert compared.exit_code == 0, compared.output
    result = json.loads(compared.stdout)
    assert {"facenet", "caffenet", "fused"} <= set(result["results"])
    assert {"fused vs facenet", "fused vs caffenet"} <= set(result["tests"]) or \
        {"facenet vs fused", "caffenet vs fused"} <= set(result["tests"])


def test_class_and_years_that_disagree_are_marked():
    from agegender_cli.faces.records import arch_output, consistent
    from agegender_cli.labels import AGE_CLASSES

    assert consistent(AGE_CLASSES.index("25-32"), 30.0) and consistent(AGE_CLASSES.index("25-32"), 41.0)
    assert not consistent(AGE_CLASSES.index("25-32"), 52.0) and not consistent(AGE_CLASSES.index("0-2"), 30.0)
    assert consistent(AGE_CLASSES.index("60+"), 120.0)  # clipped to 0-100
    out = arch_output(np.array([0.4, 0.6]), np.eye(8)[AGE_CLASSES.index("25-32")], 55.0)
    assert out["consistent"] is False
    assert "consistent" not in arch_output(np.array([0.4, 0.6]), np.eye(8)[4])  # no years, nothing to compare
