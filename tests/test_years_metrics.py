"""Age-in-years metrics and the Wilcoxon signed-rank test of agegender_cli.evaluation.years against hand-computed
values (and scipy.stats.wilcoxon where scipy is importable)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agegender_cli.evaluation.years import median_of, wilcoxon_signed_rank, years_metrics

# Six faces. age_class from labels.AGE_RANGES: 26 and 30 -> 25-32 (4), 5 -> 4-6 (1), 10 -> 8-13 (2),
# 22 -> between 15-20 and 25-32 (-1), 70 -> 60+ (7).
TRUE = np.array([26, 5, 10, 22, 30, 70])
PRED = np.array([28.0, 5.0, 16.0, 20.5, 25.0, 62.0])
AGE_CLASS = np.array([4, 1, 2, -1, 4, 7])
RACE = np.array([0, 0, 1, 1, "Others", None], dtype=object)  # White, White, Black, Black, Others, unknown
GENDER = np.array([0, 1, 0, 1, 0, -1])  # male, female, male, female, male, unknown
# pred - true = [2, 0, 6, -1.5, -5, -8]; |error| = [2, 0, 6, 1.5, 5, 8]
# MAE = (2 + 0 + 6 + 1.5 + 5 + 8) / 6 = 22.5 / 6 = 3.75
# median AE: sorted [0, 1.5, 2, 5, 6, 8] -> (2 + 5) / 2 = 3.5
# CS@5: 2, 0, 1.5 and 5 (exactly five counts) are <= 5 -> 4 / 6
# bias = (2 + 0 + 6 - 1.5 - 5 - 8) / 6 = -6.5 / 6
# per class: 25-32 = faces 26 and 30: MAE (2 + 5) / 2 = 3.5, CS@5 2 / 2; 4-6: 0, 1; 8-13: 6, 0;
#            between classes: 1.5, 1; 60+: 8, 0
# per race: White (2, 0): MAE 1, CS@5 1; Black (6, 1.5): MAE 3.75, CS@5 0.5; Others (5): 5, 1; unknown (8): 8, 0
# per gender: male (2, 6, 5): MAE 13 / 3, CS@5 2 / 3; female (0, 1.5): MAE 0.75, CS@5 1; unknown (8): 8, 0
# race gap (unknown left out): best White 1, worst Others 5, gap 4; gender gap: 13 / 3 - 0.75


def six_faces(**options) -> dict:
    return years_metrics(TRUE, PRED, age_class=AGE_CLASS, race=RACE, gender=GENDER, **options)


def test_six_faces_match_hand_arithmetic():
    result = six_faces(bootstrap=200)
    assert result["n"] == 6
    assert result["mae"] == pytest.approx(3.75)
    assert result["median_ae"] == pytest.approx(3.5)
    assert result["cs5"] == pytest.approx(4 / 6)
    assert result["bias"] == pytest.approx(-6.5 / 6)
    assert result["per_age_class"] == {
        "4-6": {"n": 1, "mae": 0.0, "cs5": 1.0},
        "8-13": {"n": 1, "mae": 6.0, "cs5": 0.0},
        "25-32": {"n": 2, "mae": 3.5, "cs5": 1.0},
        "60+": {"n": 1, "mae": 8.0, "cs5": 0.0},
        "between classes": {"n": 1, "mae": 1.5, "cs5": 1.0},
    }
    assert list(result["per_age_class"]) == ["4-6", "8-13", "25-32", "60+", "between classes"]
    race = {group: (m["n"], m["mae"], m["cs5"]) for group, m in result["per_race"].items()}
    assert race == {"Black": (2, 3.75, 0.5), "Others": (1, 5.0, 1.0), "White": (2, 1.0, 1.0),
                    "unknown": (1, 8.0, 0.0)}
    gender = {group: (m["n"], m["mae"], m["cs5"]) for group, m in result["per_gender"].items()}
    assert list(gender) == ["female", "male", "unknown"]
    assert gender["male"] == pytest.approx((3, 13 / 3, 2 / 3))
    assert (gender["female"], gender["unknown"]) == ((2, 0.75, 1.0), (1, 8.0, 0.0))


def test_largest_gap_is_lowest_against_highest_mae_and_doubts_small_groups():
    gaps = six_faces(bootstrap=200, min_group_n=2)["largest_gap"]
    race = gaps["race"]
    assert (race["best_group"], race["worst_group"]) == ("White", "Others")
    assert (race["best"], race["worst"], race["gap"]) == pytest.approx((1.0, 5.0, 4.0))
    assert (race["n_best"], race["n_worst"]) == (2, 1)
    assert "n = 1 < 2" in race["doubt"] and race["uncertain"]
    gender = gaps["gender"]
    assert (gender["best_group"], gender["worst_group"]) == ("female", "male")
    assert gender["gap"] == pytest.approx(13 / 3 - 0.75)
    assert gender["ci95"][0] <= gender["gap"] <= gender["ci95"][1]


def test_clear_gap_between_large_groups_is_trusted():
    n = 200
    true = np.full(n, 30)
    pred = np.where(np.arange(n) < n // 2, 31.0, 40.0)  # men 1 year off, women 10
    gender = (np.arange(n) >= n // 2).astype(int)
    result = years_metrics(true, pred, age_class=np.full(n, 4), race=np.zeros(n, int), gender=gender)
    gap = result["largest_gap"]["gender"]
    assert (gap["best_group"], gap["gap"], gap["doubt"], gap["uncertain"]) == ("male", 9.0, None, False)
    one_race = result["largest_gap"]["race"]  # one race only: as stats.largest_gap, a gap of 0 that is doubted
    assert (one_race["best_group"], one_race["gap"], one_race["uncertain"]) == ("White", 0.0, True)


def test_cs5_counts_exactly_five_years():
    true = np.array([10, 10, 10, 10])
    pred = np.array([15.0, 5.0, 15.5, 4.5])  # 5, 5, 5.5, 5.5 years off
    result = years_metrics(true, pred, age_class=np.full(4, 2), race=np.zeros(4, int), gender=np.zeros(4, int),
                           bootstrap=50)
    assert result["cs5"] == 0.5
    assert result["per_age_class"]["8-13"]["cs5"] == 0.5


def test_bootstrap_intervals_contain_the_estimate_and_follow_the_seed():
    rng = np.random.default_rng(1)
    true = rng.integers(1, 90, 300)
    pred = true + rng.normal(0, 6, 300)
    kwargs = {"age_class": np.full(300, -1), "race": rng.integers(0, 5, 300), "gender": rng.integers(0, 2, 300)}
    first = years_metrics(true, pred, seed=3, **kwargs)
    assert first == years_metrics(true, pred, seed=3, **kwargs)
    assert first["ci95"] != years_metrics(true, pred, seed=4, **kwargs)["ci95"]
    for key in ("mae", "median_ae", "cs5"):
        low, high = first["ci95"][key]
        assert low < first[key] < high
    for cell in [*first["per_race"].values(), *first["per_gender"].values()]:
        assert cell["ci95"]["mae"][0] < cell["mae"] < cell["ci95"]["mae"][1]
    # normal approximation for the MAE of 300 half-normal errors (sd 6 * sqrt(1 - 2 / pi)): +-0.41
    assert first["ci95"]["mae"][1] - first["ci95"]["mae"][0] == pytest.approx(2 * 1.96 * 6 * 0.6028 / math.sqrt(300),
                                                                             rel=0.2)
    json.dumps(first)  # plain floats, ints, lists and None only


def test_median_of_resamples_matches_numpy_median_of_the_drawn_values():
    values = np.array([4.0, 1.0, 7.0, 2.5, 9.0])
    counts = np.array([[1, 1, 1, 1, 1], [2, 0, 0, 1, 1], [0, 3, 0, 0, 0], [1, 0, 2, 1, 0], [0, 0, 0, 0, 0]], float)
    got = median_of(values)(counts)
    for row, median in zip(counts, got, strict=True):
        expected = np.median(np.repeat(values, row.astype(int))) if row.sum() else np.nan
        np.testing.assert_equal(median, expected)


def test_empty_input_and_ages_not_in_years():
    empty = years_metrics(np.array([], int), np.array([]), age_class=np.array([], int), race=np.array([]),
                          gender=np.array([], int))
    assert (empty["n"], empty["mae"], empty["median_ae"], empty["cs5"], empty["bias"]) == (0, None, None, None, None)
    assert empty["ci95"] == {"mae": None, "median_ae": None, "cs5": None}
    assert empty["largest_gap"]["race"]["gap"] is None
    json.dumps(empty)
    # a negative true age is not given in years: the face is left out
    only_two = years_metrics(np.array([-1, 20, 30]), np.array([50.0, 22.0, 30.0]), age_class=np.array([-1, 3, 4]),
                             race=np.array([0, 0, 0]), gender=np.array([0, 0, 0]), bootstrap=20)
    assert (only_two["n"], only_two["mae"]) == (2, 1.0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same length"):
        years_metrics(TRUE, PRED[:5], age_class=AGE_CLASS, race=RACE, gender=GENDER)
    with pytest.raises(ValueError, match="age_class"):
        years_metrics(TRUE, PRED, age_class=AGE_CLASS + 4, race=RACE, gender=GENDER)
    with pytest.raises(ValueError, match="finite"):
        years_metrics(TRUE, np.r_[PRED[:5], np.nan], age_class=AGE_CLASS, race=RACE, gender=GENDER)
    with pytest.raises(ValueError, match="race 5"):
        years_metrics(TRUE, PRED, age_class=AGE_CLASS, race=np.full(6, 5), gender=GENDER)
    with pytest.raises(ValueError, match="bootstrap"):
        years_metrics(TRUE, PRED, age_class=AGE_CLASS, race=RACE, gender=GENDER, bootstrap=0)
    with pytest.raises(ValueError, match="differ in length"):
        wilcoxon_signed_rank(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        wilcoxon_signed_rank(np.array([1.0, np.inf]), np.zeros(2))


def test_race_keys_are_named_as_the_manifest_names_them():
    # a plain list mixing indices, names and None keeps its types; -1 is an unknown race like None
    result = years_metrics(TRUE, PRED, age_class=AGE_CLASS, race=[0, 0, 1, 1, "Others", -1], gender=GENDER,
                           bootstrap=20)
    assert list(result["per_race"]) == ["Black", "Others", "White", "unknown"]
    named_gap = years_metrics(TRUE, PRED, age_class=AGE_CLASS, race=["gap"] * 3 + ["other"] * 3, gender=GENDER,
                              bootstrap=20)  # a group's name never clashes with the gap's interval
    assert named_gap["per_race"]["gap"]["ci95"]["mae"] != named_gap["largest_gap"]["race"]["ci95"]


# Wilcoxon examples: absolute errors of model A and model B on the same faces (d = a - b).
# d = [1, -2, 3, 0, 4, 5]: the zero is dropped; |d| = 1..5 ranked 1..5; W+ = 1 + 3 + 4 + 5 = 13, W- = 2.
# Of the 2**5 = 32 sign patterns, rank sums <= 2 are {}, {1}, {2}: P(W <= 2) = 3 / 32, p = 6 / 32 = 0.1875.
# median of d: sorted [-2, 0, 1, 3, 4, 5] -> (1 + 3) / 2 = 2.
SMALL_A, SMALL_B = np.array([3.0, 1, 5, 2, 6, 7]), np.array([2.0, 3, 2, 2, 2, 2])


def test_wilcoxon_exact_small_example_by_hand():
    result = wilcoxon_signed_rank(SMALL_A, SMALL_B)
    assert result == {"n": 6, "n_nonzero": 5, "w_plus": 13.0, "w_minus": 2.0, "statistic": 2.0, "z": None,
                      "p_value": pytest.approx(0.1875), "method": "exact", "note": None,
                      "median_difference": 2.0, "better": None}


def test_wilcoxon_exact_names_the_better_model():
    # six differences all positive (A worse): W- = 0, P(W <= 0) = 1 / 64, p = 2 / 64
    result = wilcoxon_signed_rank(np.arange(1.0, 7.0) + 1, np.ones(6))
    assert (result["statistic"], result["p_value"], result["better"]) == (0.0, pytest.approx(2 / 64), "b")
    assert wilcoxon_signed_rank(np.ones(6), np.arange(1.0, 7.0) + 1)["better"] == "a"


def test_wilcoxon_exact_matches_the_critical_value_table():
    # published table, n = 10, two-sided 0.05: critical T = 8; 25 of the 1024 patterns have W <= 8
    signs = np.where(np.isin(np.arange(1, 11), [1, 7]), -1, 1)  # W- = 1 + 7 = 8
    result = wilcoxon_signed_rank(5 + signs * np.arange(1, 11) / 10, np.full(10, 5.0))
    assert result["statistic"] == 8.0
    assert result["p_value"] == pytest.approx(2 * 25 / 1024)
    signs = np.where(np.isin(np.arange(1, 11), [2, 7]), -1, 1)  # W- = 9: P(W <= 9) = 33 / 1024
    assert wilcoxon_signed_rank(5 + signs * np.arange(1, 11) / 10, np.full(10, 5.0))["p_value"] == pytest.approx(
        2 * 33 / 1024)


def test_wilcoxon_ties_and_zeros_use_average_ranks_and_the_normal_approximation():
    # d = [1, 1, -2, 3, 3, 3, 0]: zero dropped, m = 6; |d| ranks: 1, 1 -> 1.5 each; 2 -> 3; 3, 3, 3 -> 5 each
    # W+ = 1.5 + 1.5 + 5 + 5 + 5 = 18, W- = 3; mean = 6 * 7 / 4 = 10.5
    # variance = 6 * 7 * 13 / 24 - ((2**3 - 2) + (3**3 - 3)) / 48 = 22.75 - 0.625 = 22.125
    # z = (18 - 10.5 - 0.5) / sqrt(22.125) = 7 / 4.70372 = 1.48818; p = erfc(1.48818 / sqrt(2)) = 0.13670
    d = np.array([1.0, 1, -2, 3, 3, 3, 0])
    result = wilcoxon_signed_rank(10 + d, np.full(7, 10.0))
    assert (result["n"], result["n_nonzero"], result["w_plus"], result["w_minus"]) == (7, 6, 18.0, 3.0)
    assert result["method"] == "normal" and "ties" in result["note"]
    assert result["z"] == pytest.approx(1.48818, abs=1e-5)
    assert result["p_value"] == pytest.approx(0.13670, abs=1e-5)
    assert result["median_difference"] == 1.0


def test_wilcoxon_normal_large_example_by_hand():
    # d = -1..-10 and +11..+30, no ties: W- = 55, W+ = 465 - 55 = 410; mean = 30 * 31 / 4 = 232.5
    # variance = 30 * 31 * 61 / 24 = 2363.75; z = (410 - 232.5 - 0.5) / 48.61841 = 3.64059
    # p = erfc(3.64059 / sqrt(2)) = 2.7205e-4; A's errors are larger, so B is better
    d = np.r_[-np.arange(1.0, 11), np.arange(11.0, 31)]
    result = wilcoxon_signed_rank(50 + d, np.full(30, 50.0))
    assert (result["statistic"], result["method"], result["note"], result["better"]) == (55.0, "normal", None, "b")
    assert result["z"] == pytest.approx(3.64059, abs=1e-5)
    assert result["p_value"] == pytest.approx(2.7205e-4, rel=1e-3)


def test_wilcoxon_switches_from_exact_to_normal_above_25_and_handles_no_differences():
    for m, method in ((25, "exact"), (26, "normal")):
        d = np.arange(1.0, m + 1) * np.where(np.arange(m) % 3 == 0, -1, 1)
        assert wilcoxon_signed_rank(50 + d, np.full(m, 50.0))["method"] == method
    same = wilcoxon_signed_rank(np.ones(4), np.ones(4))
    assert (same["n_nonzero"], same["statistic"], same["p_value"], same["better"]) == (0, 0.0, 1.0, None)
    assert wilcoxon_signed_rank(np.array([]), np.array([]))["median_difference"] is None


def test_wilcoxon_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    for m in (8, 25):  # exact, no ties, no zeros
        a, b = rng.permutation(m) + 0.5, rng.permutation(m) * 1.01
        ours, theirs = wilcoxon_signed_rank(a, b), stats.wilcoxon(a, b, method="exact")
        assert (ours["method"], ours["statistic"]) == ("exact", theirs.statistic)
        assert ours["p_value"] == pytest.approx(theirs.pvalue, rel=1e-9)
    for a, b in ((np.round(rng.gamma(2, 4, 300)), np.round(rng.gamma(2, 4.5, 300))),  # ties and zeros
                 (10 + np.array([1.0, 1, -2, 3, 3, 3, 0]), np.full(7, 10.0))):
        ours = wilcoxon_signed_rank(a, b)
        theirs = stats.wilcoxon(a, b, zero_method="wilcox", correction=True, method="approx")
        assert ours["method"] == "normal"
        assert ours["statistic"] == pytest.approx(theirs.statistic)
        assert ours["p_value"] == pytest.approx(theirs.pvalue, rel=1e-9)
