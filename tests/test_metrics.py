"""Metrics of agegender_cli.evaluation.metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agegender_cli.evaluation.metrics import evaluate_predictions

# Gender, 6 faces (0 = male, 1 = female); predicted = female prob > 0.5.
GENDER_TRUE = np.array([0, 0, 0, 0, 1, 1])
FEMALE_PROB = np.array([0.1, 0.2, 0.7, 0.4, 0.6, 0.3])
# predicted: 0 0 1 0 1 0 -> correct T T F T T F -> accuracy 4/6

# Age, 6 faces; distances |pred - true| = 0 1 0 2 0 7
AGE_TRUE = np.array([0, 1, 2, 3, 4, 7])
AGE_PRED = np.array([0, 2, 2, 5, 4, 0])


def gender_prob(female: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - female, female])


def age_prob(pred: np.ndarray) -> np.ndarray:
    return 0.6 * np.eye(8)[pred] + 0.4 / 8


@pytest.fixture(scope="module")
def result() -> dict:
    return evaluate_predictions(GENDER_TRUE, gender_prob(FEMALE_PROB), AGE_TRUE, age_prob(AGE_PRED))


def test_result_is_plain_json(result):
    assert json.loads(json.dumps(result)) == result
    assert result["n"] == 6


def test_gender_accuracy_and_confusion(result):
    gender = result["gender"]
    assert gender["accuracy"] == pytest.approx(4 / 6)
    # rows true, columns predicted: male -> 3 male, 1 female; female -> 1 male, 1 female
    assert gender["confusion"] == [[3, 1], [1, 1]]


def test_gender_auc_and_roc(result):
    gender = result["gender"]
    # female scores {0.6, 0.3} vs male scores {0.1, 0.2, 0.7, 0.4}:
    # 0.6 beats 0.1, 0.2, 0.4 (3); 0.3 beats 0.1, 0.2 (2) -> 5 of 8 pairs
    assert gender["auc"] == pytest.approx(5 / 8)
    # thresholds 0.7 (male), 0.6 (female), 0.4 (male), 0.3 (female), then the collinear tail to (1, 1)
    assert gender["roc"]["fpr"] == pytest.approx([0, 0.25, 0.25, 0.5, 0.5, 1])
    assert gender["roc"]["tpr"] == pytest.approx([0, 0, 0.5, 0.5, 1, 1])


def test_gender_per_class(result):
    per_class = result["gender"]["per_class"]
    # male: TP 3, FN 1, FP 1, TN 1
    assert per_class["male"] == pytest.approx(
        {
            "precision": 3 / 4,
            "recall": 3 / 4,
            "f1": 6 / 8,
            "miss_rate": 1 / 4,
            "fall_out": 1 / 2,
            "support": 4,
        }
    )
    # female: TP 1, FN 1, FP 1, TN 3
    assert per_class["female"] == pytest.approx(
        {
            "precision": 1 / 2,
            "recall": 1 / 2,
            "f1": 2 / 4,
            "miss_rate": 1 / 2,
            "fall_out": 1 / 4,
            "support": 2,
        }
    )


def test_age_summary(result):
    age = result["age"]
    assert age["accuracy"] == pytest.approx(3 / 6)  # distances 0 at three faces
    assert age["one_off"] == pytest.approx(4 / 6)  # distances 0, 1, 0, 0
    assert age["mean_error"] == pytest.approx(10 / 6)  # (0 + 1 + 0 + 2 + 0 + 7) / 6
    # mean 5/3; squared deviations 3 * 25/9 + 4/9 + 1/9 + 256/9 = 336/9; / 6 = 56/9
    assert age["std_error"] == pytest.approx(math.sqrt(56 / 9))
    assert age["error_hist"] == [3, 1, 1, 0, 0, 0, 0, 1]
    # f1 over classes seen (0 1 2 3 4 5 7): 2/3, 0, 2/3, 0, 1, 0, 0 -> (7/3) / 7
    assert age["macro_f1"] == pytest.approx(1 / 3)


def test_age_confusion(result):
    expected = np.zeros((8, 8), dtype=int)
    for true, pred in zip(AGE_TRUE, AGE_PRED, strict=True):
        expected[true, pred] += 1
    assert result["age"]["confusion"] == expected.tolist()
    assert result["age"]["confusion"][3][5] == 1 and result["age"]["confusion"][7][0] == 1


def test_age_per_class(result):
    per_class = result["age"]["per_class"]
    assert list(per_class) == ["0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60+"]
    # "0-2": TP 1 (face 0), FP 1 (face 5), FN 0, TN 4
    assert per_class["0-2"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3, "miss_rate": 0.0, "fall_out": 1 / 5, "support": 1}
    )
    # "4-6": TP 0, FN 1, never predicted -> precision undefined
    assert per_class["4-6"] == {
        "precision": None,
        "recall": 0.0,
        "f1": 0.0,
        "miss_rate": 1.0,
        "fall_out": 0.0,
        "support": 1,
    }
    # "38-43": never true, predicted once -> FP 1, TN 5
    assert per_class["38-43"] == pytest.approx(
        {"precision": 0.0, "recall": None, "f1": 0.0, "miss_rate": None, "fall_out": 1 / 6, "support": 0}
    )
    # "48-53": neither true nor predicted
    assert per_class["48-53"] == {
        "precision": None,
        "recall": None,
        "f1": None,
        "miss_rate": None,
        "fall_out": 0.0,
        "support": 0,
    }


def test_perfect_predictions():
    gender_true = np.array([0, 1, 0, 1])
    age_true = np.array([0, 3, 5, 7])
    result = evaluate_predictions(
        gender_true, gender_prob(gender_true * 0.8 + 0.1), age_true, age_prob(age_true)
    )
    assert result["gender"]["accuracy"] == 1.0
    assert result["gender"]["auc"] == 1.0
    assert result["age"]["accuracy"] == result["age"]["one_off"] == result["age"]["macro_f1"] == 1.0
    assert result["age"]["mean_error"] == result["age"]["std_error"] == 0.0
    assert result["age"]["error_hist"] == [4, 0, 0, 0, 0, 0, 0, 0]
    for metrics in result["gender"]["per_class"].values():
        assert metrics["miss_rate"] == metrics["fall_out"] == 0.0


def test_inverted_gender_predictions():
    gender_true = np.array([0, 1, 0, 1])
    age_true = np.array([0, 1, 2, 3])
    result = evaluate_predictions(
        gender_true, gender_prob(0.9 - gender_true * 0.8), age_true, age_prob(7 - age_true)
    )
    assert result["gender"]["accuracy"] == 0.0
    assert result["gender"]["auc"] == 0.0
    assert result["gender"]["confusion"] == [[0, 2], [2, 0]]
    # predicted 7 6 5 4 -> distances 7, 5, 3, 1: none exact, one within one class
    assert result["age"]["accuracy"] == 0.0
    assert result["age"]["one_off"] == pytest.approx(1 / 4)
    assert result["age"]["error_hist"] == [0, 1, 0, 1, 0, 1, 0, 1]


def test_single_class_subset_has_no_auc():
    gender_true = np.zeros(3, dtype=int)
    result = evaluate_predictions(
        gender_true,
        gender_prob(np.array([0.2, 0.7, 0.1])),
        np.array([4, 4, 4]),
        age_prob(np.array([4, 4, 5])),
    )
    gender = result["gender"]
    assert gender["auc"] is None and gender["roc"] is None
    assert gender["accuracy"] == pytest.approx(2 / 3)
    assert gender["per_class"]["female"]["support"] == 0
    assert gender["per_class"]["female"]["recall"] is None
    assert gender["per_class"]["male"]["fall_out"] is None  # no female faces, so no negatives for male
    # class 4: TP 2, FN 1 -> f1 4/5; class 5: FP 1 -> f1 0; the other classes are unseen
    assert result["age"]["macro_f1"] == pytest.approx(2 / 5)


def test_empty_input():
    result = evaluate_predictions(np.zeros(0), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 8)))
    assert result["n"] == 0
    assert result["gender"]["accuracy"] is None and result["gender"]["auc"] is None
    assert result["age"]["mean_error"] is None
    assert result["age"]["error_hist"] == [0] * 8
    json.dumps(result)


@pytest.mark.parametrize(
    ("gender_prob_shape", "age_true_len", "age_prob_shape"),
    [((3, 3), 3, (3, 8)), ((3, 2), 3, (3, 7)), ((3, 2), 2, (3, 8))],
)
def test_shape_mismatch_is_rejected(gender_prob_shape, age_true_len, age_prob_shape):
    with pytest.raises(ValueError):
        evaluate_predictions(
            np.zeros(3), np.ones(gender_prob_shape), np.zeros(age_true_len), np.ones(age_prob_shape)
        )


def test_tasks_may_be_scored_on_different_images():
    result = evaluate_predictions(np.zeros(3), np.eye(2)[[0, 0, 1]], np.zeros(0), np.ones((0, 8)))
    assert result["n"] == 3 and result["gender"]["n"] == 3 and result["age"]["n"] == 0
    assert result["gender"]["accuracy"] == pytest.approx(2 / 3) and result["age"]["accuracy"] is None


def test_out_of_range_label_is_rejected():
    with pytest.raises(ValueError, match="age labels"):
        evaluate_predictions(np.zeros(2), np.ones((2, 2)), np.array([0, 8]), np.ones((2, 8)))
