"""Scoring a model on a dataset: metrics under the documented protocols, reports and plots.

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

A generic CSV dataset (see :func:`ferlite.data.read_csv_dataset`) is scored against each row's
normalised votes, with the same ``mae``, ``top1``, ``kl``, ``class_mae`` and confusion matrix;
its classes must be the model's, in the same order, and ``major8_acc`` does not apply (``major8_n`` 0).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferlite import metrics as M
from ferlite._atomic import atomic_path
from ferlite.data import DataError, FaceSet, read_csv_classes, read_dataset, require_faces
from ferlite.labels import FERPLUS_CLASSES, votes_to_targets
from ferlite.runtime import Predictor, load_predictor
from ferlite.weights import DEFAULT_MODEL

__all__ = ["EvalReport", "check_classes", "check_csv_columns", "score", "score_distribution", "score_faces",
           "evaluate", "format_report", "plot_report"]

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
    """Raise :class:`~ferlite.data.DataError` unless a CSV dataset's class ``columns`` are the model's ``classes``,
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


def score_faces(faces: FaceSet, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Score a model's predictions ``probs`` for ``faces``: FER+ protocols for a FER+ folder
    (:func:`score`), the normalised votes for a generic CSV dataset (:func:`score_distribution`).

    Raises:
        ValueError: a CSV dataset whose classes are not the model's (same names, same order).
    """
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
        n: faces scored under ``seed9``.
        mae, top1, kl: ``seed9`` metrics over the model's classes.
        major8_acc, major8_n: the paper's majority accuracy and the faces it keeps.
        class_mae: ``{class: MAE}`` under ``seed9``.
        confusion: ``(C, C)`` counts, rows the true ``seed9`` argmax, columns the predicted class.
        classes: the model's classes.
        faces: faces read from the split; ``dropped``: those without a vote for the model's classes.
        model, model_path, backend: the model as asked for (name or path), its file and runtime.
        data: the split folder or CSV file.
        skipped: ``(file, line, reason)`` of rows left out with ``skip_bad``.
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

    @property
    def rows(self) -> int:
        """Rows of the label file: faces read plus rows skipped."""
        return self.faces + len(self.skipped)

    def to_json(self) -> dict:
        """A JSON-ready dict: model, data, counts, every metric, ``class_mae``, ``confusion_matrix``, skipped rows.

        ``major8_acc`` is ``None`` when the majority protocol keeps no face.
        """
        return {
            "model": self.model,
            "model_path": self.model_path,
            "backend": self.backend,
            "data": self.data,
            "classes": list(self.classes),
            "rows": self.rows,
            "skipped": len(self.skipped),
            "faces": self.faces,
            "dropped": self.dropped,
            "n": self.n,
            "mae": self.mae,
            "top1": self.top1,
            "kl": self.kl,
            "major8_acc": self.major8_acc if self.major8_n else None,
            "major8_n": self.major8_n,
            "class_mae": dict(self.class_mae),
            "confusion_matrix": self.confusion.tolist(),
            "skipped_rows": [{"file": f, "line": line, "reason": r} for f, line, r in self.skipped],
        }


def evaluate(model: str | os.PathLike | Predictor | None, data: str | os.PathLike, *, skip_bad: bool = False,
             batch_size: int = 256) -> EvalReport:
    """Score a model on a FER+ split folder (``label.csv`` + PNGs) or a generic CSV dataset.

    Args:
        model: ``None`` (the default pretrained model), a registered weights name, a ``.keras`` or
            ``.tflite`` path, or a loaded :class:`~ferlite.runtime.Predictor`.
        data: a FER+ split folder, e.g. ``FER2013Valid``, or a ``.csv`` file in the generic format
            whose class columns are the model's classes.
        skip_bad: leave out malformed rows and unreadable images (listed in ``EvalReport.skipped``)
            instead of stopping.
        batch_size: faces per forward pass.

    Raises:
        FileNotFoundError: the model, the folder, its ``label.csv`` or the CSV is missing.
        ferlite.data.DataError: a malformed row or unreadable image (naming file and line), unless
            ``skip_bad``; or no readable face at all.
        ValueError: a model whose classes do not match the data's, or ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    columns = read_csv_classes(data) if str(data).lower().endswith(".csv") else FERPLUS_CLASSES
    if columns == FERPLUS_CLASSES:  # a FER+ folder, or a CSV of FER+ votes: the FER+ protocols
        check_classes(predictor.classes)
    else:  # refused before any image is read
        check_csv_columns(columns, predictor.classes, data, predictor.path)
    faces = read_dataset(data, skip_bad=skip_bad, size=predictor.input_size, channels=predictor.channels)
    require_faces(faces, data, "score")
    probs = np.concatenate([predictor.predict(_model_input(faces.images[i:i + batch_size], predictor.channels))
                            for i in range(0, len(faces), batch_size)])
    s = score_faces(faces, probs, predictor.classes)
    if isinstance(model, Predictor):
        name = str(predictor.path)
    else:
        name = DEFAULT_MODEL if model is None else str(model)
    return EvalReport(**s, model=name, model_path=str(predictor.path), backend=predictor.backend,
                      data=str(Path(data).resolve()), skipped=list(faces.skipped))


def _model_input(images: np.ndarray, channels: int) -> np.ndarray:
    """``(B, S, S)`` gray or ``(B, S, S, 3)`` RGB faces -> ``(B, S, S, channels)`` uint8, gray repeated
    for 3-channel models."""
    x = images if images.ndim == 4 else images[..., None]
    return np.ascontiguousarray(np.repeat(x, 3, axis=-1) if channels == 3 and x.shape[-1] == 1 else x)


def format_report(r: EvalReport) -> str:
    """Human-readable report in the reference project's shape (top result accuracy, class-wise MAE,
    total MAE), then major8 accuracy, KL, the sample counts and the confusion matrix."""
    width = max(map(len, r.classes)) + 2
    major8 = f"{r.major8_acc:.4f} ({100 * r.major8_acc:.2f}%)" if r.major8_n else "n/a (not FER+ votes or no face kept)"
    lines = [
        f"model: {r.model}" + (f"  ({r.model_path})" if r.model_path != r.model else ""),
        f"data:  {r.data}",
        "",
        f"Top result accuracy: {r.top1:.4f} ({100 * r.top1:.2f}%)",
        "Class-wise MAE:",
        *(f"{name:<{width}} {v:.6f}" for name, v in r.class_mae.items()),
        f"Total MAE: {r.mae:.6f}",
        "",
        f"major8 accuracy (FER+ majority protocol): {major8}",
        f"KL(target || prediction): {r.kl:.4f}",
        f"samples: {r.rows} rows, {len(r.skipped)} skipped as bad, {r.faces} read, "
        f"{r.n} scored (seed9, {r.dropped} without votes), {r.major8_n} kept by majority",
        "",
        "Confusion matrix (rows: true seed9 argmax, columns: predicted):",
    ]
    lines.append(" " * width + " ".join(f"{c[:7]:>7}" for c in r.classes))
    for name, row in zip(r.classes, r.confusion, strict=True):
        lines.append(f"{name:<{width}}" + " ".join(f"{v:7d}" for v in row))
    return "\n".join(lines)


def plot_report(r: EvalReport, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``confusion_matrix.png`` (row-normalised colours, counts written in) and ``class_mae.png``
    (per-class MAE bars) into ``out_dir``, each atomically; return their paths."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = len(r.classes)
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    norm = r.confusion / np.clip(r.confusion.sum(axis=1, keepdims=True), 1, None)
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(k), r.classes, rotation=45, ha="right")
    ax.set_yticks(range(k), r.classes)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(r.confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (seed9 argmax)")
    ax.set_title(f"top-1 {100 * r.top1:.1f}%  (n={r.n})")
    fig.tight_layout()
    paths = [_save_png(fig, out / "confusion_matrix.png")]

    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.subplots()
    ax.bar(list(r.class_mae), list(r.class_mae.values()), color="tab:orange")
    ax.set_ylabel("MAE")
    ax.set_title(f"per-class MAE (total {r.mae:.4f}, n={r.n})")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    paths.append(_save_png(fig, out / "class_mae.png"))
    return paths


def _save_png(fig, path: Path) -> Path:
    """Render ``fig`` with Agg to a temporary file beside ``path``, then move it into place."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
