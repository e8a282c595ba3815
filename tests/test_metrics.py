"""Metrics against values worked out by hand on tiny arrays (Keras counterparts: tests/training/test_metrics.py)."""

import math

import numpy as np
import pytest

from ferlite import metrics as M

Y = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
P = np.array([[0.5, 0.25, 0.25], [0.25, 0.75, 0.0]])
# A prediction of 0 where the target is 1: clipped to 1e-7, so KL = ln(1e7) = 16.1181 and not infinity
Y0 = np.array([[1.0, 0.0]])
P0 = np.array([[0.0, 1.0]])


def test_mae_and_class_mae():
    # |Y - P|: row0 0.5, 0.25, 0.25; row1 0.25, 0.25, 0 -> total 1.5 over 6 entries = 0.25
    assert M.mae(Y, P) == pytest.approx(0.25)
    # per column: (0.5 + 0.25) / 2 = 0.375, (0.25 + 0.25) / 2 = 0.25, (0.25 + 0) / 2 = 0.125
    np.testing.assert_allclose(M.class_mae(Y, P), [0.375, 0.25, 0.125])
    assert M.mae(Y, Y) == 0.0


def test_top1():
    # row0: target argmax 0, prediction argmax 0 -> hit; row1: target tie 0.5/0.5 -> first (0), prediction 1 -> miss
    assert M.top1(Y, P) == pytest.approx(0.5)
    assert M.top1(P, P) == 1.0


def test_kl_divergence():
    # row0: 1 * ln(1 / 0.5) = ln 2; row1: 0.5 ln(0.5 / 0.25) + 0.5 ln(0.5 / 0.75) = 0.5 ln 2 + 0.5 ln(2/3);
    # zero targets add nothing (0 log 0 = 0); mean over the 2 rows
    expected = (math.log(2) + 0.5 * math.log(2) + 0.5 * math.log(2 / 3)) / 2
    assert M.kl_divergence(Y, P) == pytest.approx(expected)
    assert M.kl_divergence(P, P) == pytest.approx(0.0, abs=1e-12)
    assert M.kl_divergence(Y0, P0) == pytest.approx(math.log(1e7), rel=1e-6)


def test_confusion_matrix():
    # (true, pred) pairs: (0,0) (1,1) (1,0) (2,2) -> rows are true classes
    cm = M.confusion_matrix([0, 1, 1, 2], [0, 1, 0, 2], 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert cm.sum() == 4
    with pytest.raises(ValueError, match=r"differ in shape: \(2,\) vs \(3,\)"):
        M.confusion_matrix([0, 1], [0, 1, 2], 3)


def test_class_recall_counts_the_extra_column_as_misses():
    # rows: true class; last column: photos without a face (a miss); class 2 has no face at all
    cm = np.array([[3, 1, 0, 0], [0, 1, 1, 2], [0, 0, 0, 0]])
    recall = M.class_recall(cm)
    assert recall[:2].tolist() == [0.75, 0.25] and np.isnan(recall[2])
    assert M.class_recall(cm[:, :3]).tolist()[:2] == [0.75, 0.5]
    with pytest.raises(ValueError, match=r"expected a \(K, K\) or \(K, K \+ 1\) confusion matrix, got shape \(3, 5\)"):
        M.class_recall(np.zeros((3, 5)))


def test_major8_uses_majority_faces_and_eight_emotion_outputs():
    votes = np.zeros((3, 10))
    votes[0, 1] = 10  # happiness 10 -> majority happiness
    votes[1, 0] = 10  # neutral 10 -> majority neutral
    votes[2, [0, 3]] = 5  # neutral 5 / sadness 5: no class > 5 -> unknown -> not scored
    pred = np.zeros((3, 9))
    pred[0] = [0.1, 0.3, 0, 0, 0, 0, 0, 0, 0.6]  # 'unknown' output largest, but argmax over the 8 emotions is 1: right
    pred[1, 2] = 1  # surprise for neutral: wrong
    pred[2, 0] = 1  # not scored
    # 1 right of 2 scored faces
    assert M.major8_accuracy(votes, pred) == (0.5, 2)
    assert M.major8_accuracy(votes, pred[:, :8]) == (0.5, 2)
    acc, n = M.major8_accuracy(votes[2:], pred[2:])
    assert math.isnan(acc) and n == 0
    with pytest.raises(ValueError, match=r"\(N, >=8\) with N = 3 faces, got \(3, 5\)"):
        M.major8_accuracy(votes, pred[:, :5])
    with pytest.raises(ValueError, match="N = 3 faces"):
        M.major8_accuracy(votes, pred[:2])


def test_shapes_and_empty_input():
    with pytest.raises(ValueError, match=r"both be \(N, C\); got \(2, 3\) and \(1, 3\)"):
        M.mae(Y, P[:1])
    with pytest.raises(ValueError, match="both be"):
        M.top1(Y[0], P[0])
    empty = np.zeros((0, 3))
    assert math.isnan(M.mae(empty, empty)) and math.isnan(M.top1(empty, empty))
    assert math.isnan(M.kl_divergence(empty, empty))

