import numpy as np
import pytest

from ferlite import metrics as M

Y = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
P = np.array([[0.5, 0.25, 0.25], [0.25, 0.75, 0.0]])


def test_mae_and_class_mae():
    # |diffs|: row0 0.5, 0.25, 0.25; row1 0.25, 0.25, 0 -> total 1.5 / 6 = 0.25
    assert M.mae(Y, P) == pytest.approx(0.25)
    np.testing.assert_allclose(M.class_mae(Y, P), [0.375, 0.25, 0.125])


def test_top1():
    # row0 argmax 0 vs 0 (hit); row1 argmax 0 (tie -> first) vs 1 (miss)
    assert M.top1(Y, P) == pytest.approx(0.5)


def test_kl():
    # row0: 1*ln(1/0.5) = ln 2; row1: 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln 2 + 0.5 ln(2/3)
    expected = (np.log(2) + 0.5 * np.log(2) + 0.5 * np.log(2 / 3)) / 2
    assert M.kl_divergence(Y, P) == pytest.approx(expected)


def test_confusion_matrix():
    cm = M.confusion_matrix([0, 1, 1, 2], [0, 1, 0, 2], 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_major8():
    votes = np.zeros((3, 10))
    votes[0, 1] = 10  # happiness
    votes[1, 0] = 10  # neutral
    votes[2, [0, 3]] = 5  # tie 5/5: no majority -> not scored
    pred = np.zeros((3, 9))
    pred[0, 1] = 1  # right
    pred[1, 2] = 1  # wrong
    pred[2, 0] = 1
    assert M.major8_accuracy(votes, pred) == (0.5, 2)
    with pytest.raises(ValueError):
        M.major8_accuracy(votes, pred[:, :5])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="both be"):
        M.mae(Y, P[:1])


def test_keras_metrics_match_numpy():
    mae, top1, kl = M.keras_metrics()
    for m in (mae, top1, kl):
        m.update_state(Y, P)
    assert float(mae.result()) == pytest.approx(M.mae(Y, P), abs=1e-6)
    assert float(top1.result()) == pytest.approx(M.top1(Y, P))
    assert float(kl.result()) == pytest.approx(M.kl_divergence(Y, P), abs=1e-5)
