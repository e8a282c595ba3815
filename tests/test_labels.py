import numpy as np
import pytest

from ferlite.labels import FERPLUS_CLASSES, TARGET_MODES, class_names, sample_probability_targets, votes_to_targets


def v(*counts):
    return np.array([counts], dtype=float)


def test_class_order():
    assert FERPLUS_CLASSES == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                               "unknown", "NF")
    assert class_names(8) == FERPLUS_CLASSES[:8]
    with pytest.raises(ValueError, match="8 .* or 9"):
        class_names(10)


def test_seed9_drops_nf_and_normalises():
    # votes neutral 4, anger 1, contempt 4, unknown 1 (NF 0) -> /10 over 9 classes
    t = votes_to_targets(v(4, 0, 0, 0, 1, 0, 0, 4, 1, 0), "seed9")
    np.testing.assert_allclose(t.targets[0], [0.4, 0, 0, 0, 0.1, 0, 0, 0.4, 0.1], atol=1e-7)
    # NF-only face has no usable votes: dropped and counted
    t = votes_to_targets(np.vstack([v(0, 0, 0, 0, 0, 0, 0, 0, 0, 10), v(10, 0, 0, 0, 0, 0, 0, 0, 0, 0)]), "seed9")
    assert t.keep.tolist() == [False, True] and t.dropped == 1


def test_seed9_with_8_classes_drops_unknown():
    t = votes_to_targets(v(2, 0, 0, 0, 0, 0, 0, 0, 2, 0), "seed9", 8)
    np.testing.assert_allclose(t.targets[0], [1, 0, 0, 0, 0, 0, 0, 0])


def test_majority_outlier_rule_and_weak_faces():
    # 6 happiness, 3 neutral, 1 surprise: the 1 is an outlier -> S = 9, 6 > 4.5 -> happiness
    t = votes_to_targets(v(3, 6, 1, 0, 0, 0, 0, 0, 0, 0), "majority")
    assert t.keep.all() and t.targets[0].argmax() == 1 and t.targets[0].max() == 1.0
    # 4 neutral, 4 sadness, 2 anger: S = 10, no class > 5 -> unknown -> discarded
    assert votes_to_targets(v(4, 0, 0, 4, 2, 0, 0, 0, 0, 0), "majority").dropped == 1
    # top class NF -> discarded
    assert votes_to_targets(v(2, 0, 0, 0, 0, 0, 0, 0, 0, 8), "majority").dropped == 1


def test_crossentropy_takes_top_classes_to_75_percent():
    # 5 neutral, 3 sadness, 2 anger: S = 10; take 5 (50%) then 3 (80% >= 75%) -> stop; 8/10 > 50%
    t = votes_to_targets(v(5, 0, 0, 3, 2, 0, 0, 0, 0, 0), "crossentropy")
    np.testing.assert_allclose(t.targets[0], [5 / 8, 0, 0, 3 / 8, 0, 0, 0, 0], atol=1e-6)
    # probability uses the same distribution
    np.testing.assert_allclose(votes_to_targets(v(5, 0, 0, 3, 2, 0, 0, 0, 0, 0), "probability").targets, t.targets)


def test_crossentropy_unknown_reached_after_emotion_is_dropped():
    # 4 neutral, then unknown 3 (i >= 8 reached after an emotion): unknown dropped again; 4/9 <= 50% -> discarded
    assert votes_to_targets(v(4, 0, 0, 2, 0, 0, 0, 0, 3, 0), "crossentropy").dropped == 1
    # 6 neutral, 3 unknown: 6/9 = 67% < 75% -> unknown reached and dropped; 6/9 > 50% -> neutral alone
    t = votes_to_targets(v(6, 0, 0, 0, 0, 0, 0, 0, 3, 0), "crossentropy")
    np.testing.assert_allclose(t.targets[0], [1, 0, 0, 0, 0, 0, 0, 0])


def test_multi_target_rule():
    # 5 happiness, 3 surprise, 2 neutral: S = 10; >= 3 kept: happiness, surprise (8/10 > 50%)
    t = votes_to_targets(v(2, 5, 3, 0, 0, 0, 0, 0, 0, 0), "multi_target")
    expected = np.array([0.001, 1.001, 1.001, 0.001, 0.001, 0.001, 0.001, 0.001])
    np.testing.assert_allclose(t.targets[0], expected / expected.sum(), atol=1e-6)


def test_all_zero_and_bad_input():
    zero = np.zeros((3, 10))
    for mode in TARGET_MODES:
        t = votes_to_targets(zero, mode)
        assert t.dropped == 3 and t.targets.shape[0] == 0
    with pytest.raises(ValueError, match=r"shape \(N, 10\)"):
        votes_to_targets(np.zeros((2, 9)))
    with pytest.raises(ValueError, match="non-negative"):
        votes_to_targets(-np.ones((1, 10)))
    with pytest.raises(ValueError, match="valid modes"):
        votes_to_targets(zero, "nope")


def test_probability_sampling_is_one_hot_from_support():
    dists = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    onehot = sample_probability_targets(dists, np.random.default_rng(0))
    assert onehot.sum(axis=1).tolist() == [1, 1] and onehot[0, 1] == 1 and onehot[1, 1] == 0


def test_counts_on_shared_valid(ferplus_valid):
    import csv

    rows = list(csv.reader(open(ferplus_valid / "label.csv")))
    votes = np.array([[float(x) for x in r[2:]] for r in rows])
    kept = {m: int(votes_to_targets(votes, m).keep.sum()) for m in TARGET_MODES}
    assert len(votes) == 3579
    assert kept == {"seed9": 3579, "majority": 3191, "probability": 3508, "crossentropy": 3508, "multi_target": 3472}
