"""Vote-to-target protocols, checked on hand-worked vote rows and on the counts of the whole shared FER2013Valid.

Vote columns, in FER+ order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
"""

import csv

import numpy as np
import pytest

from ferlite.labels import (
    EMOTIONS,
    FERPLUS_CLASSES,
    TARGET_MODES,
    balance,
    class_names,
    sample_probability_targets,
    votes_to_targets,
)

PAPER_MODES = ("majority", "probability", "crossentropy", "multi_target")


def v(*counts):
    return np.array([counts], dtype=float)


def onehot(i, n=8):
    return np.eye(n)[i]


def test_class_order_and_class_sets():
    assert FERPLUS_CLASSES == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                               "unknown", "NF")
    assert EMOTIONS == FERPLUS_CLASSES[:8]
    assert class_names(8) == EMOTIONS and class_names(9) == (*EMOTIONS, "unknown")
    with pytest.raises(ValueError, match=r"8 .* or 9 .*got 10"):
        class_names(10)
    # defaults: seed9 has 9 classes, the paper schemes 8
    assert votes_to_targets(v(10, 0, 0, 0, 0, 0, 0, 0, 0, 0), "seed9").classes == class_names(9)
    for mode in PAPER_MODES:
        t = votes_to_targets(v(10, 0, 0, 0, 0, 0, 0, 0, 0, 0), mode)
        assert t.classes == class_names(8) and t.mode == mode and t.targets.dtype == np.float32


def test_seed9_drops_nf_and_normalises():
    # neutral 4, anger 1, contempt 4, unknown 1, NF 0: no outlier rule in seed9 -> /10 over the 9 classes
    t = votes_to_targets(v(4, 0, 0, 0, 1, 0, 0, 4, 1, 0), "seed9")
    np.testing.assert_allclose(t.targets[0], [0.4, 0, 0, 0, 0.1, 0, 0, 0.4, 0.1], atol=1e-7)
    # NF is dropped before normalising: neutral 6, NF 4 -> neutral 6/6
    np.testing.assert_allclose(votes_to_targets(v(6, 0, 0, 0, 0, 0, 0, 0, 0, 4), "seed9").targets[0], onehot(0, 9))
    # an NF-only face has no usable votes: dropped and counted
    t = votes_to_targets(np.vstack([v(0, 0, 0, 0, 0, 0, 0, 0, 0, 10), v(10, 0, 0, 0, 0, 0, 0, 0, 0, 0)]), "seed9")
    assert t.keep.tolist() == [False, True] and t.dropped == 1 and t.targets.shape == (1, 9)


def test_seed9_with_8_classes_drops_unknown_too():
    # neutral 2, unknown 2: with 8 classes unknown is dropped like NF -> neutral 2/2
    t = votes_to_targets(v(2, 0, 0, 0, 0, 0, 0, 0, 2, 0), "seed9", 8)
    np.testing.assert_allclose(t.targets[0], onehot(0))
    # unknown-only: nothing left among the 8 emotions -> dropped
    assert votes_to_targets(v(0, 0, 0, 0, 0, 0, 0, 0, 10, 0), "seed9", 8).dropped == 1


def test_outlier_rule_decides_the_majority():
    # neutral 5, happiness 4, surprise 1. Without the outlier rule S = 10 and 5 is not > 5 (no majority);
    # with it the single surprise vote goes, S = 9, and 5 > 4.5 -> neutral.
    t = votes_to_targets(v(5, 4, 1, 0, 0, 0, 0, 0, 0, 0), "majority")
    assert t.keep.all()
    np.testing.assert_array_equal(t.targets[0], onehot(0))
    # every count is 1 -> all removed as outliers -> no votes left: every paper scheme drops the face, seed9 keeps it
    ones = v(*[1] * 10)
    for mode in PAPER_MODES:
        assert votes_to_targets(ones, mode).dropped == 1, mode
    np.testing.assert_allclose(votes_to_targets(ones, "seed9").targets[0], np.full(9, 1 / 9), atol=1e-7)


def test_majority_tie_and_weak_faces_become_unknown():
    # neutral 5, sadness 5: S = 10, largest 5 is not > 5 -> unknown -> discarded (8 classes) ...
    tie = v(5, 0, 0, 5, 0, 0, 0, 0, 0, 0)
    assert votes_to_targets(tie, "majority").dropped == 1
    # ... and kept as 'unknown' with 9 classes
    t9 = votes_to_targets(tie, "majority", 9)
    assert t9.keep.all()
    np.testing.assert_array_equal(t9.targets[0], onehot(8, 9))
    # neutral 4, sadness 4, anger 2: S = 10, no class > 5 -> unknown -> discarded
    assert votes_to_targets(v(4, 0, 0, 4, 2, 0, 0, 0, 0, 0), "majority").dropped == 1
    # NF 8, neutral 2: majority NF -> discarded with 8 and with 9 classes
    for n in (8, 9):
        assert votes_to_targets(v(2, 0, 0, 0, 0, 0, 0, 0, 0, 8), "majority", n).dropped == 1


def test_crossentropy_takes_top_classes_to_75_percent():
    # neutral 5, sadness 3, anger 2: S = 10; take 5 (50%), then 3 (80% >= 75%) -> stop; 8/10 > 50% -> 5/8, 3/8
    t = votes_to_targets(v(5, 0, 0, 3, 2, 0, 0, 0, 0, 0), "crossentropy")
    np.testing.assert_allclose(t.targets[0], [5 / 8, 0, 0, 3 / 8, 0, 0, 0, 0], atol=1e-6)
    # probability rows are the same distribution (drawn from each epoch)
    np.testing.assert_allclose(votes_to_targets(v(5, 0, 0, 3, 2, 0, 0, 0, 0, 0), "probability").targets, t.targets)
    # at most 3 classes: 4, 2, 2, 2 (S = 10) -> 4 (40%), then the three 2s tied at once -> 4 classes > 3 -> unknown
    for mode in ("crossentropy", "probability"):
        assert votes_to_targets(v(4, 2, 2, 2, 0, 0, 0, 0, 0, 0), mode).dropped == 1


def test_crossentropy_ties_are_taken_together():
    # neutral 4, happiness 4, surprise 2: S = 10; both 4s tied -> taken together (80% >= 75%) -> 1/2, 1/2
    t = votes_to_targets(v(4, 4, 2, 0, 0, 0, 0, 0, 0, 0), "crossentropy")
    np.testing.assert_allclose(t.targets[0], [0.5, 0.5, 0, 0, 0, 0, 0, 0], atol=1e-6)


def test_crossentropy_unknown_and_nf_rules():
    # neutral 4, unknown 3, sadness 2: S = 9; take 4 (44%), then unknown is reached after an emotion:
    # stop and drop it again -> taken 4/9 <= 50% -> unknown -> discarded
    assert votes_to_targets(v(4, 0, 0, 2, 0, 0, 0, 0, 3, 0), "crossentropy").dropped == 1
    # neutral 6, unknown 3: S = 9; 6/9 = 67% < 75% -> unknown reached and dropped; 6/9 > 50% -> neutral alone
    t = votes_to_targets(v(6, 0, 0, 0, 0, 0, 0, 0, 3, 0), "crossentropy")
    np.testing.assert_allclose(t.targets[0], onehot(0))
    # unknown 6, neutral 4: unknown is reached first and kept (nothing before it) -> its top is unknown:
    # discarded with 8 classes, kept as 'unknown' with 9
    first = v(4, 0, 0, 0, 0, 0, 0, 0, 6, 0)
    assert votes_to_targets(first, "crossentropy").dropped == 1
    np.testing.assert_allclose(votes_to_targets(first, "crossentropy", 9).targets[0], onehot(8, 9))
    # neutral 5 tied with NF 5: both reached at once, NF dropped again; 5/10 <= 50% -> unknown -> discarded
    assert votes_to_targets(v(5, 0, 0, 0, 0, 0, 0, 0, 0, 5), "crossentropy").dropped == 1


def test_multi_target_30_percent_rule_and_mix():
    # happiness 5, surprise 3, neutral 2: S = 10; >= 3 kept: happiness, surprise (8/10 > 50%);
    # each kept class -> 1, plus 0.001 everywhere, renormalised: (1.001, 1.001, 6 x 0.001) / 2.008
    t = votes_to_targets(v(2, 5, 3, 0, 0, 0, 0, 0, 0, 0), "multi_target")
    expected = np.array([0.001, 1.001, 1.001, 0.001, 0.001, 0.001, 0.001, 0.001]) / 2.008
    np.testing.assert_allclose(t.targets[0], expected, atol=1e-6)
    # neutral 4, happiness 2, surprise 2, sadness 2: S = 10; only neutral >= 3, 4/10 <= 50% -> unknown -> discarded
    assert votes_to_targets(v(4, 2, 2, 2, 0, 0, 0, 0, 0, 0), "multi_target").dropped == 1


def test_all_zero_faces_are_dropped_and_counted():
    votes = np.vstack([np.zeros((3, 10)), v(0, 10, 0, 0, 0, 0, 0, 0, 0, 0)])
    for mode in TARGET_MODES:
        t = votes_to_targets(votes, mode)
        assert t.dropped == 3 and t.keep.tolist() == [False, False, False, True], mode
        assert t.targets.shape[0] == 1 and t.targets[0].argmax() == 1
        np.testing.assert_allclose(t.targets.sum(axis=1), 1.0, atol=1e-6)
    empty = votes_to_targets(np.zeros((0, 10)), "majority")
    assert empty.targets.shape[0] == 0 and empty.dropped == 0


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"shape \(N, 10\).*got shape \(2, 9\)"):
        votes_to_targets(np.zeros((2, 9)))
    with pytest.raises(ValueError, match=r"got shape \(10,\)"):
        votes_to_targets(np.zeros(10))
    with pytest.raises(ValueError, match="non-negative"):
        votes_to_targets(-np.ones((1, 10)))
    with pytest.raises(ValueError, match="finite"):
        votes_to_targets(np.full((1, 10), np.nan))
    with pytest.raises(ValueError, match="valid modes: seed9"):
        votes_to_targets(np.zeros((1, 10)), "nope")
    with pytest.raises(ValueError, match="got 7"):
        votes_to_targets(np.zeros((1, 10)), "majority", 7)


def test_probability_sampling_is_one_hot_from_support():
    dists = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    draws = np.stack([sample_probability_targets(dists, np.random.default_rng(s)) for s in range(50)])
    assert (draws.sum(axis=2) == 1).all()
    assert (draws[:, 0, 1] == 1).all() and (draws[:, 1, 1] == 0).all()
    # both halves of row 1 are drawn over 50 seeds
    assert 0 < draws[:, 1, 0].sum() < 50


def test_counts_on_shared_valid(ferplus_valid):
    with open(ferplus_valid / "label.csv", newline="") as f:
        votes = np.array([[float(x) for x in r[2:]] for r in csv.reader(f)])
    kept = {m: int(votes_to_targets(votes, m).keep.sum()) for m in TARGET_MODES}
    assert len(votes) == 3579
    assert kept == {"seed9": 3579, "majority": 3191, "probability": 3508, "crossentropy": 3508, "multi_target": 3472}


def test_balance_divides_by_the_prior_to_a_power_and_renormalises():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    prior = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(balance(probs, prior, 0.0), probs, rtol=1e-6)
    full = balance(probs, prior, 1.0)
    expected = probs / prior
    np.testing.assert_allclose(full, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)
    half = balance(probs, prior, 0.5)
    assert full.dtype == np.float32 and np.allclose(half.sum(axis=1), 1)
    assert full[0].argmax() == 0 and half[0, 2] < full[0, 2]  # the rare class gains with the strength
    uniform = balance(probs, np.full(3, 1 / 3), 1.0)
    np.testing.assert_allclose(uniform, probs, rtol=1e-6)  # a uniform prior changes nothing
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"balance strength must be in \\[0, 1\\].*got {bad}"):
            balance(probs, prior, bad)
