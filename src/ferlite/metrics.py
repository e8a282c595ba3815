"""Evaluation metrics for soft-label FER, in numpy (their Keras counterparts: :mod:`ferlite.training.metrics`).

* :func:`mae` / :func:`class_mae`: mean absolute error between the target
  distribution and the prediction, over all entries / per class column.
* :func:`top1`: argmax of the prediction equals argmax of the target.
* :func:`major8_accuracy`: the FER+ paper's test metric: faces kept by the
  ``majority`` protocol, argmax over the eight emotion outputs against the majority class.
* :func:`kl_divergence`: KL(target || prediction), averaged over faces.
* :func:`confusion_matrix`: counts of (true, predicted) class pairs.
"""

from __future__ import annotations

import numpy as np

from ferlite.labels import votes_to_targets

__all__ = ["mae", "class_mae", "top1", "major8_accuracy", "kl_divergence", "confusion_matrix", "class_recall"]

_EPS = 1e-7


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"targets and predictions must both be (N, C); got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over every entry of ``(N, C)`` targets and predictions."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.abs(y_true - y_pred).mean()) if y_true.size else float("nan")


def class_mae(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean absolute error per class column, shape ``(C,)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return np.abs(y_true - y_pred).mean(axis=0)


def top1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of faces whose predicted argmax equals the target's argmax."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float((y_true.argmax(axis=1) == y_pred.argmax(axis=1)).mean()) if len(y_true) else float("nan")


def major8_accuracy(votes: np.ndarray, y_pred: np.ndarray) -> tuple[float, int]:
    """FER+ majority accuracy over the eight emotions.

    Args:
        votes: ``(N, 10)`` raw FER+ vote counts.
        y_pred: ``(N, C)`` predictions whose first eight columns are the FER+ emotions (C >= 8).

    Returns:
        ``(accuracy, n)``: accuracy over the ``n`` faces the ``majority`` protocol keeps.
    """
    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 2 or y_pred.shape[1] < 8 or len(y_pred) != len(votes):
        raise ValueError(f"predictions must be (N, >=8) with N = {len(votes)} faces, got {y_pred.shape}")
    t = votes_to_targets(votes, "majority", 8)
    n = int(t.keep.sum())
    if n == 0:
        return float("nan"), 0
    pred = y_pred[t.keep, :8].argmax(axis=1)
    return float((pred == t.targets.argmax(axis=1)).mean()), n


def kl_divergence(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over faces of KL(target || prediction) in nats (0 log 0 taken as 0)."""
    y_true, y_pred = _pair(y_true, y_pred)
    p = np.clip(y_pred, _EPS, 1.0)
    terms = np.where(y_true > 0, y_true * (np.log(np.clip(y_true, _EPS, 1.0)) - np.log(p)), 0.0)
    return float(terms.sum(axis=1).mean()) if len(y_true) else float("nan")


def confusion_matrix(true_idx: np.ndarray, pred_idx: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int counts: rows are true classes, columns predicted classes."""
    true_idx = np.asarray(true_idx, dtype=int)
    pred_idx = np.asarray(pred_idx, dtype=int)
    if true_idx.shape != pred_idx.shape:
        raise ValueError(f"true and predicted indices differ in shape: {true_idx.shape} vs {pred_idx.shape}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (true_idx, pred_idx), 1)
    return cm


def class_recall(confusion: np.ndarray) -> np.ndarray:
    """``(K,)`` recall of each row's class in a ``(K, K)`` or ``(K, K + 1)`` confusion matrix (rows the true class;
    an extra last column, e.g. photos without a face, counts as a miss): the diagonal over the row sums, NaN for a
    class without faces."""
    confusion = np.asarray(confusion)
    k = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] not in (k, k + 1):
        raise ValueError(f"expected a (K, K) or (K, K + 1) confusion matrix, got shape {confusion.shape}")
    true = confusion.sum(axis=1)
    return np.where(true > 0, np.diagonal(confusion[:, :k]) / np.maximum(true, 1), np.nan)
