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
label per image: ``top1`` is the accuracy against it, with the predicted class the argmax of the model's
outputs over the classes that have a folder (:func:`score_labels`); ``class_recall`` and the confusion
matrix (rows: the folder's class) are over those classes. ``mae``, ``kl`` and ``class_mae`` need votes and
``major8_acc`` FER+ votes: they are NaN / empty (``null`` in JSON). With ``detect`` the images are whole
photos: the largest face the detector finds is cut out as :meth:`ferlite.recognizer.Recognizer.analyze`
does, and photos without a face are counted (``dropped``) and listed (``no_face``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
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

__all__ = ["EvalReport", "check_classes", "check_csv_columns", "score", "score_distribution", "score_labels",
           "score_faces", "evaluate"]

_SCORABLE = (FERPLUS_CLASSES[:8], FERPLUS_CLASSES[:9])


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
                 classes: Sequence[str]) -> dict:
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

    Returns:
        ``n``, ``top1`` (the accuracy), ``confusion`` ((K, K) int over ``classes``, rows the label), ``classes``,
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
    if not len(labels):
        raise ValueError("nothing to score: no face")
    if labels.min() < 0 or labels.max() >= len(classes):
        raise ValueError(f"labels must index the {len(classes)} classes (0..{len(classes) - 1}), got "
                         f"{labels.min()}..{labels.max()}")
    pred = probs[:, cols].argmax(axis=1)
    nan = float("nan")
    return {"n": len(labels), "mae": nan, "top1": float((pred == labels).mean()), "kl": nan, "major8_acc": nan,
            "major8_n": 0, "class_mae": {}, "confusion": M.confusion_matrix(labels, pred, len(classes)),
            "classes": classes, "faces": len(labels), "dropped": 0}


def score_faces(faces: FaceSet, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Score a model's predictions ``probs`` for ``faces``: FER+ protocols for a FER+ folder
    (:func:`score`), the normalised votes for a generic CSV dataset (:func:`score_distribution`), the
    labels of a folder-per-class dataset (:func:`score_labels`; its photos without a face are ``dropped``).

    Raises:
        ValueError: a CSV dataset whose classes are not the model's (same names, same order).
    """
    if faces.layout == "folders":
        return {**score_labels(faces.votes.argmax(axis=1), probs, classes, faces.classes),
                "faces": len(faces) + len(faces.no_face), "dropped": len(faces.no_face)}
    if faces.is_ferplus:
        return score(faces.votes, probs, classes)
    check_csv_columns(faces.classes, classes)
    _, t = faces.targets()
    return {**score_distribution(t.targets, np.asarray(probs)[t.keep], classes), "faces": len(faces),
            "dropped": t.dropped}


@dataclass
class EvalReport:
    """Metrics of one model on one dataset (see the module docstring for the protocols).

    Attributes:
        n: faces scored: under ``seed9`` (FER+ and CSV data), or with a face (folder-per-class data).
        mae, top1, kl: ``seed9`` metrics over the model's classes; ``top1`` is the accuracy against the folder
            labels for folder-per-class data, where ``mae`` and ``kl`` are NaN.
        major8_acc, major8_n: the paper's majority accuracy and the faces it keeps (NaN and 0 but on FER+ votes).
        class_mae: ``{class: MAE}`` under ``seed9`` (empty for folder-per-class data).
        confusion: ``(C, C)`` counts, rows the true class (``seed9`` argmax, or the folder's class), columns the
            predicted class.
        classes: the classes of ``confusion``: the model's, or those with a folder (folder-per-class data).
        faces: faces (or photos) read; ``dropped``: those without a vote for the model's classes, or photos in
            which the detector found no face.
        model, model_path, backend: the model as asked for (name or path), its file and runtime.
        data: the split folder, CSV file or dataset folder.
        skipped: ``(file, line, reason)`` of rows (line 0: images) left out with ``skip_bad``.
        layout: the dataset layout, one of :data:`ferlite.datasets.LAYOUTS`.
        no_face: the photos in which the detector found no face (with ``detect``).
        detector: the face detector used (``yunet``, ``mediapipe`` or ``haar``), or ``""`` without ``detect``.
        class_map: the folder renaming used (folder name -> class).
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

    @property
    def rows(self) -> int:
        """Rows of the label file (images of a folder-per-class dataset): faces read plus rows skipped."""
        return self.faces + len(self.skipped)

    @property
    def class_recall(self) -> dict[str, float]:
        """``{class: recall}`` from the confusion matrix: the share of a class's faces predicted as it (NaN for a
        class without faces)."""
        true = self.confusion.sum(axis=1)
        return {c: float(self.confusion[i, i] / true[i]) if true[i] else float("nan")
                for i, c in enumerate(self.classes)}

    def to_json(self) -> dict:
        """A JSON-ready dict: model, data, counts, every metric, ``class_mae``, ``class_recall``,
        ``confusion_matrix``, skipped rows and photos without a face.

        The same keys for every layout; a metric that does not apply is ``None`` (``major8_acc`` also when the
        majority protocol keeps no face; ``mae``, ``kl`` and ``class_mae`` on folder-per-class data).
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
            "mae": _number(self.mae),
            "top1": _number(self.top1),
            "kl": _number(self.kl),
            "major8_acc": self.major8_acc if self.major8_n else None,
            "major8_n": self.major8_n,
            "class_mae": dict(self.class_mae) if self.class_mae else None,
            "class_recall": {c: _number(v) for c, v in self.class_recall.items()},
            "confusion_matrix": self.confusion.tolist(),
            "skipped_rows": [{"file": f, "line": line or None, "reason": r} for f, line, r in self.skipped],
            "no_face_files": list(self.no_face),
            "detector": self.detector or None,
            "class_map": dict(self.class_map),
        }


def _number(x: float) -> float | None:
    """``x``, or None for NaN (strict JSON has no NaN)."""
    return None if math.isnan(x) else x


def evaluate(model: str | os.PathLike | Predictor | None, data: str | os.PathLike, *, skip_bad: bool = False,
             batch_size: int = 256, class_map: Mapping[str, str] | None = None, detect: bool = False,
             detector: str = "auto") -> EvalReport:
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
            finds in each is scored (cut out as :meth:`~ferlite.recognizer.Recognizer.analyze` does), photos
            without a face are listed in ``EvalReport.no_face``. Without it images are face crops, read gray
            and resized to the model's input (:func:`ferlite.images.face_to_input`) as FER+ faces are.
        detector: one of :data:`ferlite.detect.DETECTORS` (with ``detect``; ``auto``: YuNet).

    Raises:
        FileNotFoundError: the model, the folder, its ``label.csv`` or the CSV is missing, or ``data`` is of no
            layout.
        ferlite.datasets.DataError: a malformed row or unreadable image (naming file and line), unless
            ``skip_bad``; no readable face at all; bad folder names (see
            :func:`ferlite.datasets.list_class_folders`).
        ValueError: a model whose classes do not match the data's, ``batch_size`` < 1, or ``class_map`` /
            ``detect`` with data that is not folder-per-class.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; expected one of: {', '.join(DETECTORS)}")
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    layout = dataset_layout(data)
    if layout != "folders" and (class_map or detect):
        raise ValueError(f"{'class_map (--class-map)' if class_map else 'detect (--detect)'} applies to "
                         f"{LAYOUTS['folders']}; {data} is {LAYOUTS[layout]}")
    rec = Recognizer(predictor, detector=detector) if detect else None
    try:
        faces = _read(data, layout, predictor, rec, skip_bad=skip_bad, class_map=class_map)
        require_faces(faces, data, "score")
        detector_name = rec.detector.name if rec else ""
    finally:
        if rec:
            rec.close()
    probs = np.concatenate([predictor.predict(_model_input(faces.images[i:i + batch_size], predictor))
                            for i in range(0, len(faces), batch_size)])
    s = score_faces(faces, probs, predictor.classes)
    if isinstance(model, Predictor):
        name = str(predictor.path)
    else:
        name = DEFAULT_MODEL if model is None else str(model)
    return EvalReport(**s, model=name, model_path=str(predictor.path), backend=predictor.backend,
                      data=str(Path(data).resolve()), skipped=list(faces.skipped), layout=faces.layout,
                      no_face=list(faces.no_face), detector=detector_name, class_map=dict(class_map or {}))


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
