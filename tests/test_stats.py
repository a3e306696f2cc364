"""Bootstrap, McNemar and group metrics of agegender_cli.evaluation.stats against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agegender_cli.evaluation.stats import bootstrap_ci, group_metrics, largest_gap, mcnemar


def correct_array(n_correct: int, n: int) -> np.ndarray:
    return np.arange(n) < n_correct


def paired(b: int, c: int, both: int = 5, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Paired correctness with b faces only A gets right and c faces only B gets right."""
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return np.array(a), np.array(bb)


def test_bootstrap_is_deterministic_by_seed():
    correct = correct_array(701, 1000)
    assert bootstrap_ci(correct, seed=3) == bootstrap_ci(correct, seed=3)
    assert bootstrap_ci(correct, seed=3) != bootstrap_ci(correct, seed=4)


def test_bootstrap_contains_accuracy_and_narrows_with_n():
    small = bootstrap_ci(correct_array(70, 100))
    large = bootstrap_ci(correct_array(7000, 10000))
    assert small[0] < 0.7 < small[1]
    assert large[0] < 0.7 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 5  # width shrinks like 1 / sqrt(n)
    # normal approximation for n = 100: 1.96 * sqrt(0.7 * 0.3 / 100) ~ 0.09 either side
    assert small == pytest.approx((0.61, 0.79), abs=0.03)


def test_bootstrap_level_widens_interval():
    correct = correct_array(70, 100)
    narrow, wide = bootstrap_ci(correct, level=0.5), bootstrap_ci(correct, level=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


def test_bootstrap_degenerate_and_invalid():
    assert bootstrap_ci(np.ones(20, dtype=bool)) == (1.0, 1.0)
    assert bootstrap_ci(np.zeros(20, dtype=bool)) == (0.0, 0.0)
    with pytest.raises(ValueError):
        bootstrap_ci(np.zeros(0, dtype=bool))
    with pytest.raises(ValueError):
        bootstrap_ci(np.ones(3, dtype=bool), level=1.0)


def test_mcnemar_exact_branch():
    result = mcnemar(*paired(b=2, c=8))
    # n = 10, P(X <= 2) = (C(10,0) + C(10,1) + C(10,2)) / 2**10 = (1 + 10 + 45) / 1024; two-sided: x 2
    assert result == {"b": 2, "c": 8, "statistic": 2.0, "p_value": 112 / 1024, "method": "exact binomial"}


def test_mcnemar_chi_square_branch():
    result = mcnemar(*paired(b=10, c=20))
    # (|10 - 20| - 1)**2 / 30 = 81 / 30 = 2.7; chi-square(1) tail at 2.7 ~ 0.1003 (table: 2.706 -> 0.100)
    assert result["method"] == "chi-square with continuity correction"
    assert (result["b"], result["c"]) == (10, 20)
    assert result["statistic"] == pytest.approx(2.7)
    assert result["p_value"] == pytest.approx(0.10035, abs=1e-4)


def test_mcnemar_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    assert mcnemar(*paired(b=10, c=20))["p_value"] == pytest.approx(stats.chi2.sf(2.7, 1))
    assert mcnemar(*paired(b=7, c=17))["p_value"] == pytest.approx(stats.binomtest(7, 24).pvalue)


def test_mcnemar_branch_boundary_and_no_disagreement():
    assert mcnemar(*paired(b=12, c=12))["method"] == "exact binomial"  # b + c = 24
    assert mcnemar(*paired(b=12, c=13))["method"].startswith("chi-square")  # b + c = 25
    assert mcnemar(*paired(b=12, c=12))["p_value"] == 1.0  # symmetric: tail > 0.5, capped at 1
    none = mcnemar(*paired(b=0, c=0))
    assert (none["b"], none["c"], none["p_value"]) == (0, 0, 1.0)
    with pytest.raises(ValueError):
        mcnemar(np.ones(3, dtype=bool), np.ones(4, dtype=bool))


GROUPS = np.array(["A", "A", "B", "B", "B", "C"])
GENDER_TRUE = np.array([0, 1, 0, 1, 1, 0])
GENDER_PRED = np.array([0, 1, 1, 1, 0, 0])  # right: A 2/2, B 1/3, C 1/1
AGE_TRUE = np.array([2, 3, 4, 4, 5, 0])
AGE_PRED = np.array([2, 5, 4, 3, 7, 1])  # distances: A 0 2, B 0 1 2, C 1


@pytest.fixture(scope="module")
def groups() -> dict:
    return group_metrics(GROUPS, GENDER_TRUE, GENDER_PRED, AGE_TRUE, AGE_PRED)


def test_group_metrics(groups):
    assert json.loads(json.dumps(groups)) == groups
    assert list(groups) == ["A", "B", "C"]
    assert groups["A"] == {"n": 2, "gender_accuracy": 1.0, "age_accuracy": 0.5, "one_off": 0.5}
    assert groups["B"] == pytest.approx(
        {"n": 3, "gender_accuracy": 1 / 3, "age_accuracy": 1 / 3, "one_off": 2 / 3}
    )
    assert groups["C"] == {"n": 1, "gender_accuracy": 1.0, "age_accuracy": 0.0, "one_off": 1.0}


def test_group_metrics_with_integer_groups():
    result = group_metrics(np.array([2, 0, 2]), [0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 1, 3])
    assert list(result) == ["0", "2"]
    assert result["2"] == {"n": 2, "gender_accuracy": 1.0, "age_accuracy": 0.5, "one_off": 0.5}


def test_largest_gap(groups):
    # gender: A and C tie at 1.0 (first kept), B 1/3
    assert largest_gap(groups, "gender_accuracy") == pytest.approx(
        {
            "metric": "gender_accuracy",
            "best_group": "A",
            "worst_group": "B",
            "best": 1.0,
            "worst": 1 / 3,
            "gap": 2 / 3,
            "n_best": 2,
            "n_worst": 3,
        }
    )
    age = largest_gap(groups, "age_accuracy")
    assert (age["best_group"], age["worst_group"], age["gap"]) == ("A", "C", 0.5)
    # C has one face: with min_n = 2 only A (1/2) and B (2/3) compete on one-off
    one_off = largest_gap(groups, "one_off", min_n=2)
    assert (one_off["best_group"], one_off["worst_group"]) == ("B", "A")
    assert one_off["gap"] == pytest.approx(2 / 3 - 1 / 2)


def test_largest_gap_without_groups():
    assert largest_gap({}, "one_off")["gap"] is None
    assert largest_gap({"A": {"n": 1, "one_off": None}}, "one_off")["best_group"] is None


def test_shares_of_faces_take_wilsons_interval_that_never_collapses():
    """A percentile bootstrap of 3 faces all right said 100% [100, 100] (issue 29)."""
    import numpy as np

    from agegender_cli.evaluation.intervals import model_intervals, wilson

    low, high = wilson(3, 3)
    assert high == 1.0 and 0.43 < low < 0.44  # 0.4385, the textbook value
    low, high = wilson(50, 100)
    assert abs(low - 0.4038) < 1e-3 and abs(high - 0.5962) < 1e-3
    assert wilson(0, 0) is None and wilson(0, 5)[0] == 0.0
    gender_true = np.array([0, 1, 0, 1, 0, 1])
    gender_prob = np.eye(2)[gender_true].astype(float) * 0.8 + 0.1
    age_true = np.array([1, 1, 2, 2, 3, 3])
    age_prob = np.eye(8)[age_true] * 0.9 + 0.0125
    groups = {"race": np.array(["a", "a", "a", "b", "b", "b"])}
    found = model_intervals(gender_true, gender_prob, age_true, age_prob, groups, n_resamples=50, seed=0, n_bins=5,
                            min_group_n=2)
    assert found["ci95"]["gender"]["accuracy"] == wilson(6, 6)
    assert found["groups"]["race"]["metrics"]["a"]["ci95"]["gender_accuracy"] == wilson(3, 3)
