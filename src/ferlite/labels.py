"""FER+ classes and the protocols that turn annotator votes into training targets.

FER+ gives every face the votes of ten annotators over ten columns, in this order::

    neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF

:func:`votes_to_targets` turns an ``(N, 10)`` array of vote counts into targets with
one of the named modes in :data:`TARGET_MODES`:

``seed9``
    The reference project's protocol: drop NF, normalise the other nine counts,
    drop faces whose counts are all zero.
``majority``, ``probability``, ``crossentropy``, ``multi_target``
    The four schemes of the FER+ paper (Barsoum et al. 2016, arXiv:1608.01041),
    reproducing Microsoft's reference code: votes of exactly one are outliers and
    removed, weak or ambiguous faces become ``unknown``, faces whose top class is
    ``unknown`` or ``NF`` are discarded.

Every mode works with 8 classes (the emotions) or 9 (the emotions + ``unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FERPLUS_CLASSES",
    "EMOTIONS",
    "TARGET_MODES",
    "Targets",
    "class_names",
    "votes_to_targets",
    "sample_probability_targets",
    "balance",
]

FERPLUS_CLASSES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
EMOTIONS: tuple[str, ...] = FERPLUS_CLASSES[:8]
UNKNOWN = 8
NF = 9
TARGET_MODES: tuple[str, ...] = ("seed9", "majority", "probability", "crossentropy", "multi_target")
_DEFAULT_NUM_CLASSES = {"seed9": 9}


@dataclass(frozen=True)
class Targets:
    """Targets made from votes.

    Attributes:
        targets: ``(K, C)`` float32 rows summing to 1, for the faces kept.
        keep: ``(N,)`` bool mask over the input faces: which faces have a target.
        classes: the ``C`` class names, in column order.
        mode: the protocol that made them.
    """

    targets: np.ndarray
    keep: np.ndarray
    classes: tuple[str, ...]
    mode: str

    @property
    def dropped(self) -> int:
        """Number of faces discarded by the protocol."""
        return int(self.keep.size - self.keep.sum())


def class_names(num_classes: int) -> tuple[str, ...]:
    """The FER+ class names for 8 (emotions) or 9 (emotions + unknown) classes."""
    if num_classes not in (8, 9):
        raise ValueError(f"num_classes must be 8 (emotions) or 9 (emotions + unknown), got {num_classes!r}")
    return FERPLUS_CLASSES[:num_classes]


def _check_votes(votes: np.ndarray) -> np.ndarray:
    votes = np.asarray(votes, dtype=np.float64)
    if votes.ndim != 2 or votes.shape[1] != len(FERPLUS_CLASSES):
        raise ValueError(
            f"votes must have shape (N, {len(FERPLUS_CLASSES)}) in FER+ class order, got shape {votes.shape}"
        )
    if not np.all(np.isfinite(votes)) or np.any(votes < 0):
        raise ValueError("votes must be finite and non-negative")
    return votes


def _paper_distribution(raw: np.ndarray, mode: str) -> np.ndarray:
    """One face's 10-entry distribution under a FER+ paper scheme (Microsoft's rules)."""
    raw = np.where(raw <= 1.0, 0.0, raw)  # outlier removal: single votes dropped
    total = raw.sum()
    unknown = np.zeros(10)
    unknown[UNKNOWN] = 1.0
    emotion = np.zeros(10)
    if mode == "majority":
        peak = raw.max()
        if total > 0 and peak > 0.5 * total:
            emotion[int(np.argmax(raw))] = peak
        else:
            return unknown
    elif mode in ("probability", "crossentropy"):
        raw = raw.copy()
        taken, count, valid = 0.0, 0, True
        while taken < 0.75 * total and count < 3 and valid:
            peak = raw.max()
            for i in range(10):
                if raw[i] == peak:
                    emotion[i] = peak
                    raw[i] = 0.0
                    taken += peak
                    count += 1
                    if i >= UNKNOWN:  # unknown or NF reached: stop here
                        valid = False
                        if emotion.sum() > peak:  # an emotion was taken before it
                            emotion[i] = 0.0
                            count -= 1
                        break
        if emotion.sum() <= 0.5 * total or count > 3:
            return unknown
    elif mode == "multi_target":
        emotion = np.where(raw >= 0.3 * total, raw, 0.0) if total > 0 else emotion
        if emotion.sum() <= 0.5 * total or total == 0:
            return unknown
    return emotion / emotion.sum()


def votes_to_targets(votes: np.ndarray, mode: str = "seed9", num_classes: int | None = None) -> Targets:
    """Turn FER+ vote counts into soft targets under a named protocol.

    Args:
        votes: ``(N, 10)`` vote counts in FER+ class order.
        mode: one of :data:`TARGET_MODES`.
        num_classes: 8 (emotions) or 9 (emotions + unknown); ``seed9`` defaults to 9,
            the paper schemes to 8.

    Returns:
        :class:`Targets` with the rows of the faces kept and the mask of which were kept.
        For ``probability`` the rows are the distribution to draw from; use
        :func:`sample_probability_targets` to draw one-hot targets each epoch.
        ``multi_target`` rows set every kept class to 1, mix in a uniform 0.001 and
        are renormalised.
    """
    if mode not in TARGET_MODES:
        raise ValueError(f"unknown target mode {mode!r}; valid modes: {', '.join(TARGET_MODES)}")
    votes = _check_votes(votes)
    n_cls = num_classes if num_classes is not None else _DEFAULT_NUM_CLASSES.get(mode, 8)
    classes = class_names(n_cls)
    if mode == "seed9":
        counts = votes[:, :n_cls]
        sums = counts.sum(axis=1)
        keep = sums > 0
        targets = counts[keep] / sums[keep, None]
        return Targets(targets.astype(np.float32), keep, classes, mode)

    dists = np.stack([_paper_distribution(row, mode) for row in votes]) if len(votes) else np.zeros((0, 10))
    top = dists.argmax(axis=1) if len(votes) else np.zeros(0, dtype=int)
    keep = top < n_cls  # discard faces whose largest entry is unknown (8 classes) or NF
    kept = dists[keep, :n_cls]
    if mode == "multi_target":
        kept = np.where(kept > 0, 1.0, 0.0) + 0.001
    sums = kept.sum(axis=1, keepdims=True)
    targets = kept / np.where(sums > 0, sums, 1.0)
    return Targets(targets.astype(np.float32), keep, classes, mode)


def sample_probability_targets(dists: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one class per row of ``dists`` and return one-hot targets (the paper's ``probability`` scheme)."""
    dists = np.asarray(dists, dtype=np.float64)
    cum = dists.cumsum(axis=1)
    u = rng.random((len(dists), 1)) * cum[:, -1:]
    idx = (u > cum).sum(axis=1).clip(0, dists.shape[1] - 1)
    onehot = np.zeros_like(dists, dtype=np.float32)
    onehot[np.arange(len(dists)), idx] = 1.0
    return onehot


def balance(probs: np.ndarray, prior: np.ndarray, strength: float) -> np.ndarray:
    """Class-balanced probabilities (logit adjustment): each row of ``probs`` divided by ``prior ** strength`` and
    renormalised, float32.

    ``prior`` is the training data's class distribution (a model's sidecar ``class_prior``). Strength 0 leaves the
    model's outputs as they are, FER+'s distribution of the annotators' votes; 1 divides the training prior out
    completely, as if every class had been equally common in training, which favours the rare classes (disgust,
    fear, contempt, anger); values between are a partial correction.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"balance strength must be in [0, 1] (0: the model's outputs, 1: the full correction), "
                         f"got {strength}")
    probs = np.asarray(probs, dtype=np.float64)
    out = probs * np.asarray(prior, dtype=np.float64) ** -strength
    return (out / np.clip(out.sum(axis=-1, keepdims=True), 1e-300, None)).astype(np.float32)
