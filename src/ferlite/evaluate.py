"""Scoring a model on a dataset: metrics under the documented protocols (the text report and plots of an
:class:`EvalReport`: :mod:`ferlite.report`).

Protocols for a FER+ split folder:

* ``mae``, ``top1``, ``kl``, ``class_mae`` and the confusion matrix use ``seed9`` over the
  model's classes: NF dropped, the counts of the model's classes normalised to sum 1, faces
  without a vote for them dropped (9 classes for a 9-class model, the 8 emotions for an
  8-class one). The confusion matrix counts (argmax of that target, argmax of the prediction)
  pairs; ties go to the first class in FER+ order.
* ``major8_acc`` uses the FER+ paper's ``majority`` protocol: argmax over the first eight
  outputs (the emotions) against the majority class, over the ``major8_n`` faces it keeps.

Only models whose classes are the FER+ ones (the 8 emotions, or those and ``unknown``) can be
scored against FER+ votes.

A generic CSV dataset (see :func:`ferlite.datasets.read_csv_dataset`) is scored against each row's
normalised votes, with the same ``mae``, ``top1``, ``kl``, ``class_mae`` and confusion matrix;
its classes must be the model's, in the same order, and ``major8_acc`` does not apply (``major8_n`` 0).

A folder-per-class dataset (``DIR/<class>/*.jpg``, see :func:`ferlite.datasets.list_class_folders`) gives one
label per image and is scored by the real-photo protocol (:func:`score_photos`, ``docs/evaluation.md``): the classes
scored are those with at least ``min_images`` images (:data:`MIN_IMAGES`), less any left out by name (``exclude``);
the others are listed as left out. The predicted class is the argmax of the model's outputs over the classes scored
(:func:`score_labels`). With ``detect`` the images are whole photos: the largest face the detector finds is cut out
as :meth:`ferlite.recognizer.Recognizer.analyze` does, and a photo without a face is a miss, counted in a ``no face``
column of the confusion matrix (and listed), not dropped. The headline is ``balanced_accuracy``, the mean per-class
recall; ``top1`` is the accuracy; ``class_recall`` and the confusion matrix (rows: the folder's class) are over the
classes scored. ``mae``, ``kl`` and ``class_mae`` need votes and ``major8_acc`` FER+ votes: they are NaN / empty
(``null`` in JSON). Folder-per-class data is scored under the decision a user gets from
:class:`~ferlite.recognizer.Recognizer`: the class-balanced one at the model's recorded strength (``balance``);
FER+ and CSV votes against the model's own outputs (unless ``balance`` says otherwise).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ferlite import metrics as M
from ferlite.datasets import (
    LAYOUTS,
    DataError,
    FaceSet,
    dataset_layout,
    read_class_folders,
    read_csv_classes,
    read_dataset,
    require_faces,
)
from ferlite.detect import DETECTORS
from ferlite.images import face_to_input
from ferlite.labels import FERPLUS_CLASSES, votes_to_targets
from ferlite.recognizer import Recognizer
from ferlite.runtime import Predictor, load_predictor
from ferlite.weights import DEFAULT_MODEL

__all__ = ["EvalReport", "MIN_IMAGES", "NO_FACE", "check_classes", "check_csv_columns", "check_exclude", "score",
           "score_distribution", "score_labels", "score_photos", "select_classes", "score_faces", "evaluate"]

_SCORABLE = (FERPLUS_CLASSES[:8], FERPLUS_CLASSES[:9])
MIN_IMAGES = 20  # the real-photo protocol: classes with fewer images are left out (docs/evaluation.md)
NO_FACE = "no face"  # the confusion matrix's column of photos without a face


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """Return ``classes`` as a tuple if FER+ votes can score a model with them, else raise ValueError."""
    classes = tuple(classes)
    if classes not in _SCORABLE:
        raise ValueError(
            f"a model with classes {list(classes)} cannot be scored on FER+ votes: expected the 8 FER+ emotions "
            f"{list(_SCORABLE[0])}, or those followed by 'unknown' (9 classes), in that order"
        )
    return classes


def check_csv_columns(columns: Sequence[str], classes: Sequence[str], csv_file: str | os.PathLike = "the CSV",
                      model: str | os.PathLike = "the model") -> None:
    """Raise :class:`~ferlite.datasets.DataError` unless a CSV dataset's class ``columns`` are the model's ``classes``,
    in the same order; the message lists the unknown and missing columns and the model's classes."""
    columns, classes = tuple(columns), tuple(classes)
    if columns == classes:
        return
    unknown = [c for c in columns if c not in classes]
    missing = [c for c in classes if c not in columns]
    problems = ([f"unknown column(s) {', '.join(unknown)}"] if unknown else []) + \
               ([f"no column for {', '.join(missing)}"] if missing else [])
    raise DataError(f"{csv_file}, line 1: the dataset's classes {list(columns)} are not the model's {list(classes)} "
                    f"({'; '.join(problems) or 'the same classes in another order'}): a CSV dataset scored by "
                    f"{model} must have the columns image,{','.join(classes)}")


def score(votes: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Score predictions against FER+ vote counts.

    Args:
        votes: ``(N, 10)`` vote counts in FER+ class order.
        probs: ``(N, C)`` predicted probabilities of a model with FER+ ``classes`` (C = 8 or 9).
        classes: the model's class names, in output order.

    Returns:
        ``n``, ``mae``, ``top1``, ``kl``, ``class_mae`` ({class: MAE}) and ``confusion`` ((C, C) int,
        rows true) under ``seed9``; ``major8_acc`` (NaN when ``major8_n`` is 0) and ``major8_n`` under
        the paper's majority protocol; ``classes``, ``faces`` (N) and ``dropped`` (faces without votes).

    Raises:
        ValueError: classes that are not FER+'s, shapes that disagree, or no face with a vote to score.
    """
    classes = check_classes(classes)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(votes), len(classes)):
        raise ValueError(f"predictions must have shape ({len(votes)}, {len(classes)}) for {len(votes)} faces "
                         f"and {len(classes)} classes, got {probs.shape}")
    t = votes_to_targets(votes, "seed9", len(classes))
    if not t.keep.any():
        raise ValueError(f"nothing to score: none of the {len(votes)} faces has a vote for the model's classes")
    major8, n8 = M.major8_accuracy(votes, probs)
    return {**score_distribution(t.targets, probs[t.keep], classes), "major8_acc": major8, "major8_n": n8,
            "faces": len(votes), "dropped": t.dropped}


def score_distribution(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Score predictions against target distributions (rows summing to 1) over any classes.

    Returns:
        ``n``, ``mae``, ``top1``, ``kl``, ``class_mae``, ``confusion`` (rows: target argmax) and
        ``classes`` as :func:`score` does; ``major8_acc`` NaN and ``major8_n`` 0 (no majority protocol);
        ``faces`` N and ``dropped`` 0.
    """
    classes = tuple(classes)
    targets, probs = np.asarray(targets, dtype=np.float64), np.asarray(probs, dtype=np.float64)
    if probs.shape != targets.shape or probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ValueError(f"targets {targets.shape} and predictions {probs.shape} must both have shape "
                         f"(N, {len(classes)}) for classes {list(classes)}")
    if not len(targets):
        raise ValueError("nothing to score: no face")
    return {
        "n": len(targets),
        "mae": M.mae(targets, probs),
        "top1": M.top1(targets, probs),
        "kl": M.kl_divergence(targets, probs),
        "major8_acc": float("nan"),
        "major8_n": 0,
        "class_mae": dict(zip(classes, map(float, M.class_mae(targets, probs)), strict=True)),
        "confusion": M.confusion_matrix(targets.argmax(axis=1), probs.argmax(axis=1), len(classes)),
        "classes": classes,
        "faces": len(targets),
        "dropped": 0,
    }


def score_labels(labels: np.ndarray, probs: np.ndarray, model_classes: Sequence[str],
                 classes: Sequence[str], *, found: np.ndarray | None = None) -> dict:
    """Score predictions against one class label per face (a folder-per-class dataset).

    The predicted class of a face is the argmax of its ``probs`` over the columns of ``classes`` (the classes
    the data has), the model's other outputs ignored; a tie goes to the first in the model's order. With the
    eight FER+ emotions as ``classes`` this is the rule of the FER+ paper's major8 accuracy (argmax over the
    eight emotion outputs, :func:`ferlite.metrics.major8_accuracy`).

    Args:
        labels: ``(N,)`` index into ``classes`` of each face's class.
        probs: ``(N, C)`` predicted probabilities of a model with ``model_classes``.
        model_classes: the model's classes, in output order.
        classes: the data's classes, each one of ``model_classes``, in the model's order.
        found: ``(N,)`` bool, whether a face was found in each photo (None: all are faces): a photo without one is
            a miss, counted in an extra last column of the confusion matrix (``no face``); its ``probs`` row is
            ignored.

    Returns:
        ``n``, ``top1`` (the accuracy), ``balanced_accuracy`` (the mean recall of the classes with a face),
        ``confusion`` ((K, K) int over ``classes``, rows the label; (K, K + 1) with ``found``), ``classes``,
        ``faces`` N and ``dropped`` 0; ``mae``, ``kl`` and ``major8_acc`` NaN, ``major8_n`` 0 and ``class_mae``
        empty (they need votes).

    Raises:
        ValueError: classes that are not the model's or not in its order, shapes that disagree, labels out of
            range, or no face.
    """
    model_classes, classes = tuple(model_classes), tuple(classes)
    cols = [model_classes.index(c) for c in classes if c in model_classes]
    if len(cols) != len(classes) or cols != sorted(set(cols)):
        raise ValueError(f"the data's classes {list(classes)} must be classes of the model, in its order "
                         f"{list(model_classes)}")
    labels, probs = np.asarray(labels, dtype=np.int64), np.asarray(probs)
    if labels.ndim != 1 or probs.shape != (len(labels), len(model_classes)):
        raise ValueError(f"expected labels of shape (N,) and predictions of shape (N, {len(model_classes)}), got "
                         f"{labels.shape} and {probs.shape}")
    if found is not None and np.shape(found) != labels.shape:
        raise ValueError(f"found must have shape ({len(labels)},), one flag per photo, got {np.shape(found)}")
    if not len(labels):
        raise ValueError("nothing to score: no face")
    if labels.min() < 0 or labels.max() >= len(classes):
        raise ValueError(f"labels must index the {len(classes)} classes (0..{len(classes) - 1}), got "
                         f"{labels.min()}..{labels.max()}")
    pred = probs[:, cols].argmax(axis=1)
    if found is not None:
        pred = np.where(np.asarray(found, dtype=bool), pred, len(classes))
    confusion = M.confusion_matrix(labels, pred, len(classes) + (found is not None))[:len(classes)]
    nan = float("nan")
    return {"n": len(labels), "mae": nan, "top1": float(np.trace(confusion) / len(labels)),
            "balanced_accuracy": float(np.nanmean(M.class_recall(confusion))),
            "kl": nan, "major8_acc": nan, "major8_n": 0, "class_mae": {}, "confusion": confusion,
            "classes": classes, "faces": len(labels), "dropped": 0}


def select_classes(labels: Sequence[str], model_classes: Sequence[str], *, min_images: int = MIN_IMAGES,
                   exclude: Iterable[str] = ()) -> tuple[tuple[str, ...], dict[str, int]]:
    """The classes the real-photo protocol scores: those of ``labels`` (one class name per photo) with at least
    ``min_images`` photos and not in ``exclude``, in the order of ``model_classes``; and the classes left out, with
    their photo counts (the model's order, then classes it lacks by name).

    Raises:
        ValueError: ``min_images`` < 1; a name in ``exclude`` that is neither a class of the model nor of the data;
            a class kept that the model has no output for (leave it out with ``exclude``).
    """
    if isinstance(min_images, bool) or not isinstance(min_images, int) or min_images < 1:
        raise ValueError(f"min_images must be an integer of at least 1, got {min_images!r}")
    model_classes, exclude = tuple(model_classes), tuple(exclude)
    counts = Counter(labels)
    check_exclude(exclude, (*model_classes, *counts))
    order = [c for c in model_classes if c in counts] + sorted(set(counts) - set(model_classes))
    kept = [c for c in order if counts[c] >= min_images and c not in exclude]
    unknown = [c for c in kept if c not in model_classes]
    if unknown:
        raise ValueError(f"class(es) {', '.join(f'{c!r} ({counts[c]} images)' for c in unknown)} would be scored but "
                         f"the model has no output for them (its classes: {', '.join(model_classes)}); leave them out "
                         "with exclude / --exclude")
    return tuple(kept), {c: counts[c] for c in order if c not in kept}


def check_exclude(exclude: Sequence[str], known: Iterable[str]) -> None:
    """Raise ValueError unless every name in ``exclude`` (classes to leave out) is one of the ``known`` classes."""
    known = tuple(dict.fromkeys(known))
    foreign = [c for c in exclude if c not in known]
    if foreign:
        raise ValueError(f"exclude: {', '.join(map(repr, foreign))} is not a class here; expected some of: "
                         f"{', '.join(known)}")


def score_photos(labels: Sequence[str], probs: np.ndarray, model_classes: Sequence[str], *,
                 found: np.ndarray | None = None, min_images: int = MIN_IMAGES, exclude: Iterable[str] = ()) -> dict:
    """Score one model on labelled photos by the real-photo protocol (``docs/evaluation.md``).

    The classes scored are chosen by :func:`select_classes` (at least ``min_images`` photos, not in ``exclude``);
    the photos of the other classes are left out. Each photo scored is predicted as the argmax of its ``probs``
    over the classes scored, and a photo without a face (``found`` False) is a miss (:func:`score_labels`).

    Args:
        labels: the class name of each photo (N).
        probs: ``(N, C)`` the model's outputs for each photo's face, over ``model_classes`` (rows of photos without
            a face are ignored).
        model_classes: the model's classes, in output order.
        found: ``(N,)`` bool, whether a face was found in each photo; None: every photo is a face crop (the
            confusion matrix then has no ``no face`` column).
        min_images: photos a class needs to be scored.
        exclude: classes left out by name (e.g. ``contempt`` beside a model that has no contempt output).

    Returns:
        :func:`score_labels`'s metrics over the photos scored (``n`` of them; ``balanced_accuracy`` the headline),
        with ``faces`` N, ``dropped`` the photos of classes left out and ``left_out`` ``{class: photos}``.

    Raises:
        ValueError: see :func:`select_classes`; shapes that disagree; no class left to score.
    """
    labels, model_classes = [str(c) for c in labels], tuple(model_classes)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(labels), len(model_classes)):
        raise ValueError(f"predictions must have shape ({len(labels)}, {len(model_classes)}) for {len(labels)} photos "
                         f"and {len(model_classes)} classes, got {probs.shape}")
    kept, left_out = select_classes(labels, model_classes, min_images=min_images, exclude=exclude)
    if not kept:
        raise ValueError(f"no class to score: each class has fewer than {min_images} images or is excluded "
                         f"({', '.join(f'{c} {k}' for c, k in left_out.items())}); expected at least one class "
                         f"with {min_images} or more images (lower min_images / --min-images)")
    rows = np.array([c in kept for c in labels])
    index = np.array([kept.index(c) for c in np.asarray(labels)[rows]])
    s = score_labels(index, probs[rows], model_classes, kept,
                     found=None if found is None else np.asarray(found, dtype=bool)[rows])
    return {**s, "faces": len(labels), "dropped": int((~rows).sum()), "left_out": left_out}


def score_faces(faces: FaceSet, probs: np.ndarray, classes: Sequence[str], *, min_images: int = MIN_IMAGES,
                exclude: Iterable[str] = (), class_map: Mapping[str, str] | None = None,
                detected: bool = False) -> dict:
    """Score a model's predictions ``probs`` for ``faces``: FER+ protocols for a FER+ folder
    (:func:`score`), the normalised votes for a generic CSV dataset (:func:`score_distribution`), the
    real-photo protocol for a folder-per-class dataset (:func:`score_photos`: its photos without a face are
    misses, and returned under ``no_face`` when their class is scored).

    ``min_images``, ``exclude``, ``class_map`` (the folder renaming the faces were read with) and ``detected``
    (the faces were found by a detector: the confusion matrix gets a ``no face`` column) apply to folder-per-class
    data only.

    Raises:
        ValueError: a CSV dataset whose classes are not the model's (same names, same order); see
            :func:`score_photos`.
    """
    if faces.layout == "folders":
        missing = [_folder_class(p, faces.root, class_map) for p in faces.no_face]
        labels = [faces.classes[i] for i in faces.votes.argmax(axis=1)] + missing
        probs = np.concatenate([np.asarray(probs, dtype=np.float64), np.zeros((len(missing), len(classes)))])
        found = np.arange(len(labels)) < len(faces) if detected or missing else None
        s = score_photos(labels, probs, classes, found=found, min_images=min_images, exclude=exclude)
        return {**s, "no_face": [p for p, c in zip(faces.no_face, missing, strict=True) if c in s["classes"]]}
    if faces.is_ferplus:
        return score(faces.votes, probs, classes)
    check_csv_columns(faces.classes, classes)
    _, t = faces.targets()
    return {**score_distribution(t.targets, np.asarray(probs)[t.keep], classes), "faces": len(faces),
            "dropped": t.dropped}


def _folder_class(path: str, root: Path, class_map: Mapping[str, str] | None) -> str:
    """The class of an image of a folder-per-class dataset at ``root``: its class folder's name, renamed by
    ``class_map``."""
    folder = Path(path).relative_to(root).parts[0]
    return (class_map or {}).get(folder, folder)


@dataclass
class EvalReport:
    """Metrics of one model on one dataset (see the module docstring for the protocols).

    Attributes:
        n: faces scored under ``seed9`` (FER+ and CSV data), or photos scored (folder-per-class data: those of the
            classes scored, with or without a face).
        mae, top1, kl: ``seed9`` metrics over the model's classes; ``top1`` is the accuracy against the folder
            labels for folder-per-class data, where ``mae`` and ``kl`` are NaN.
        major8_acc, major8_n: the paper's majority accuracy and the faces it keeps (NaN and 0 but on FER+ votes).
        class_mae: ``{class: MAE}`` under ``seed9`` (empty for folder-per-class data).
        confusion: ``(C, C)`` counts, rows the true class (``seed9`` argmax, or the folder's class), columns the
            predicted class; with ``detect``, ``(C, C + 1)``, the last column the photos without a face
            (:attr:`columns` names them).
        classes: the classes of ``confusion``: the model's, or the classes scored (folder-per-class data).
        faces: faces (or photos) read; ``dropped``: those without a vote for the model's classes, or the photos of
            the classes left out (folder-per-class data).
        model, model_path, backend: the model as asked for (name or path), its file and runtime.
        data: the split folder, CSV file or dataset folder.
        skipped: ``(file, line, reason)`` of rows (line 0: images) left out with ``skip_bad``.
        layout: the dataset layout, one of :data:`ferlite.datasets.LAYOUTS`.
        no_face: the photos of the classes scored in which the detector found no face (with ``detect``): misses.
        detector: the face detector used (``yunet`` or ``mediapipe``), or ``""`` without ``detect``.
        class_map: the folder renaming used (folder name -> class).
        balanced_accuracy: the mean per-class recall over the classes scored (folder-per-class data; NaN otherwise).
        left_out: ``{class: images}`` of the classes with a folder that are not scored (folder-per-class data).
        min_images: the images a class needs to be scored (folder-per-class data; 0 otherwise).
        excluded: the classes left out by name (folder-per-class data).
        balance: the strength of the class-balanced decision the outputs were scored under (0: the model's own).
    """

    n: int
    mae: float
    top1: float
    kl: float
    major8_acc: float
    major8_n: int
    class_mae: dict[str, float]
    confusion: np.ndarray
    classes: tuple[str, ...]
    faces: int
    dropped: int
    model: str = ""
    model_path: str = ""
    backend: str = ""
    data: str = ""
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    layout: str = "ferplus"
    no_face: list[str] = field(default_factory=list)
    detector: str = ""
    class_map: dict[str, str] = field(default_factory=dict)
    balanced_accuracy: float = float("nan")
    left_out: dict[str, int] = field(default_factory=dict)
    min_images: int = 0
    excluded: tuple[str, ...] = ()
    balance: float = 0.0

    @property
    def rows(self) -> int:
        """Rows of the label file (images of a folder-per-class dataset): faces read plus rows skipped."""
        return self.faces + len(self.skipped)

    @property
    def columns(self) -> tuple[str, ...]:
        """The names of the confusion matrix's columns: :attr:`classes`, then :data:`NO_FACE` with ``detect``."""
        return self.classes + (NO_FACE,) * (self.confusion.shape[1] - len(self.classes))

    @property
    def class_recall(self) -> dict[str, float]:
        """``{class: recall}`` from the confusion matrix: the share of a class's faces (photos, a photo without a
        face a miss) predicted as it (NaN for a class without faces)."""
        return dict(zip(self.classes, map(float, M.class_recall(self.confusion)), strict=True))

    def to_json(self) -> dict:
        """A JSON-ready dict: model, data, counts, every metric, ``class_mae``, ``class_recall``,
        ``confusion_matrix`` (with ``confusion_columns``), skipped rows, photos without a face and the classes left
        out.

        The same keys for every layout; a metric that does not apply is ``None`` (``major8_acc`` also when the
        majority protocol keeps no face; ``mae``, ``kl`` and ``class_mae`` on folder-per-class data;
        ``balanced_accuracy`` and ``min_images`` but on folder-per-class data).
        """
        return {
            "model": self.model,
            "model_path": self.model_path,
            "backend": self.backend,
            "data": self.data,
            "layout": self.layout,
            "classes": list(self.classes),
            "rows": self.rows,
            "skipped": len(self.skipped),
            "faces": self.faces,
            "dropped": self.dropped,
            "no_face": len(self.no_face),
            "n": self.n,
            "balanced_accuracy": _number(self.balanced_accuracy),
            "mae": _number(self.mae),
            "top1": _number(self.top1),
            "kl": _number(self.kl),
            "major8_acc": self.major8_acc if self.major8_n else None,
            "major8_n": self.major8_n,
            "class_mae": dict(self.class_mae) if self.class_mae else None,
            "class_recall": {c: _number(v) for c, v in self.class_recall.items()},
            "confusion_matrix": self.confusion.tolist(),
            "confusion_columns": list(self.columns),
            "skipped_rows": [{"file": f, "line": line or None, "reason": r} for f, line, r in self.skipped],
            "no_face_files": list(self.no_face),
            "detector": self.detector or None,
            "class_map": dict(self.class_map),
            "min_images": self.min_images or None,
            "excluded": list(self.excluded),
            "left_out": dict(self.left_out),
            "balance": self.balance,
        }


def _number(x: float) -> float | None:
    """``x``, or None for NaN (strict JSON has no NaN)."""
    return None if math.isnan(x) else x


def evaluate(model: str | os.PathLike | Predictor | None, data: str | os.PathLike, *, skip_bad: bool = False,
             batch_size: int = 256, class_map: Mapping[str, str] | None = None, detect: bool = False,
             detector: str = "auto", min_images: int | None = None, exclude: Iterable[str] = (),
             balance: float | None = None) -> EvalReport:
    """Score a model on a FER+ split folder (``label.csv`` + PNGs), a generic CSV dataset, or a folder with one
    sub-folder of images per class (:func:`ferlite.datasets.dataset_layout` tells which).

    Args:
        model: ``None`` (the default pretrained model), a registered weights name, a ``.keras`` or
            ``.tflite`` path, or a loaded :class:`~ferlite.runtime.Predictor`.
        data: a FER+ split folder, e.g. ``FER2013Valid``; a ``.csv`` file in the generic format whose class
            columns are the model's classes; or a folder ``DIR/<class>/*.jpg`` whose sub-folders are named as
            the model's classes (or renamed to them by ``class_map``).
        skip_bad: leave out malformed rows and unreadable images (listed in ``EvalReport.skipped``)
            instead of stopping.
        batch_size: faces per forward pass.
        class_map: folder-per-class data only: folder name -> the model's class, e.g. ``{"happy": "happiness"}``.
        detect: folder-per-class data only: the images are whole photos; the largest face the ``detector``
            finds in each is scored (cut out as :meth:`~ferlite.recognizer.Recognizer.analyze` does); a photo
            without a face is a miss (listed in ``EvalReport.no_face``). Without it images are face crops, read gray
            and resized to the model's input (:func:`ferlite.images.face_to_input`) as FER+ faces are.
        detector: one of :data:`ferlite.detect.DETECTORS` (with ``detect``; ``auto``: YuNet).
        min_images: folder-per-class data only: score the classes with at least this many images (None:
            :data:`MIN_IMAGES`); the others are listed in ``EvalReport.left_out``.
        exclude: folder-per-class data only: classes of the model left out by name, e.g. ``["contempt"]``.
        balance: the strength of the class-balanced decision the outputs are scored under, as in
            :class:`~ferlite.recognizer.Recognizer` (the outputs divided by the model's training class prior to this
            power). None: what a user gets, the model's recorded strength (its sidecar's ``balance``) on
            folder-per-class data, and the model's own outputs (0, FER+'s vote distribution) on FER+ and CSV data.

    Raises:
        FileNotFoundError: the model, the folder, its ``label.csv`` or the CSV is missing, or ``data`` is of no
            layout.
        ferlite.datasets.DataError: a malformed row or unreadable image (naming file and line), unless
            ``skip_bad``; no readable face at all; bad folder names (see
            :func:`ferlite.datasets.list_class_folders`).
        ValueError: a model whose classes do not match the data's, ``batch_size`` < 1, ``class_map``, ``detect``,
            ``min_images`` or ``exclude`` with data that is not folder-per-class, ``min_images`` < 1, an excluded
            name that is not a class of the model, no class left to score, or a ``balance`` outside [0, 1] or above 0
            for a model without a class prior.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; expected one of: {', '.join(DETECTORS)}")
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    layout = dataset_layout(data)
    folder_options = {"class_map (--class-map)": class_map, "detect (--detect)": detect,
                      "min_images (--min-images)": min_images is not None, "exclude (--exclude)": exclude}
    given = [name for name, value in folder_options.items() if value]
    if layout != "folders" and given:
        raise ValueError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to {LAYOUTS['folders']}; "
                         f"{data} is {LAYOUTS[layout]}")
    if layout == "folders":  # min_images and exclude checked before any photo is read
        min_images = MIN_IMAGES if min_images is None else min_images
        select_classes([], predictor.classes, min_images=min_images, exclude=exclude)
    if balance is None and layout != "folders":
        balance = 0.0  # FER+ and CSV votes: the model's own outputs, an estimate of the vote distribution
    rec = Recognizer(predictor, detector=detector, balance=balance)  # None: the model's recorded strength
    try:
        faces = _read(data, layout, predictor, rec if detect else None, skip_bad=skip_bad, class_map=class_map)
        require_faces(faces, data, "score")
        detector_name = rec.detector.name if detect else ""
    finally:
        rec.close()
    probs = np.concatenate([rec.outputs(_model_input(faces.images[i:i + batch_size], predictor))
                            for i in range(0, len(faces), batch_size)])
    s = score_faces(faces, probs, predictor.classes, min_images=min_images or MIN_IMAGES, exclude=exclude,
                    class_map=class_map, detected=detect)
    if isinstance(model, Predictor):
        name = str(predictor.path)
    else:
        name = DEFAULT_MODEL if model is None else str(model)
    folders = faces.layout == "folders"
    return EvalReport(**s, model=name, model_path=str(predictor.path), backend=predictor.backend,
                      data=str(Path(data).resolve()), skipped=list(faces.skipped), layout=faces.layout,
                      detector=detector_name, class_map=dict(class_map or {}), min_images=min_images if folders else 0,
                      excluded=exclude, balance=rec.balance)


def _read(data: str | os.PathLike, layout: str, predictor: Predictor, rec: Recognizer | None, *, skip_bad: bool,
          class_map: Mapping[str, str] | None) -> FaceSet:
    """The faces of ``data`` for ``predictor``, its classes checked against the data's before any image is read."""
    if layout == "folders":
        return read_class_folders(data, predictor.classes, class_map=class_map, skip_bad=skip_bad,
                                  size=predictor.input_size, crop=partial(_largest_face, rec) if rec else None)
    columns = read_csv_classes(data) if layout == "csv" else FERPLUS_CLASSES
    if columns == FERPLUS_CLASSES:  # a FER+ folder, or a CSV of FER+ votes: the FER+ protocols
        check_classes(predictor.classes)
    else:
        check_csv_columns(columns, predictor.classes, data, predictor.path)
    return read_dataset(data, skip_bad=skip_bad, size=predictor.input_size, channels=predictor.channels)


def _largest_face(rec: Recognizer, rgb: np.ndarray) -> np.ndarray | None:
    """The model input of the largest face ``rec`` finds in a photo (its own crop path), or None."""
    crops = rec.face_inputs(rgb, max_faces=1)[1]
    return crops[0] if len(crops) else None


def _model_input(images: np.ndarray, predictor: Predictor) -> np.ndarray:
    """A batch of faces as read (gray, RGB or model input) as ``predictor``'s uint8 ``(B, S, S, C)`` input."""
    return np.stack([face_to_input(face, predictor.input_size, predictor.channels) for face in images])
