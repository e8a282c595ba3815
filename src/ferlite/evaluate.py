"""Scoring a model on a FER+ split: metrics under the documented protocols, reports and plots.

Protocols:

* ``mae``, ``top1``, ``kl``, ``class_mae`` and the confusion matrix use ``seed9`` over the
  model's classes: NF dropped, the counts of the model's classes normalised, faces without
  votes dropped (9 classes for a 9-class model, the 8 emotions for an 8-class one).
* ``major8_acc`` uses the FER+ paper's majority protocol over the first eight outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ferlite import metrics as M
from ferlite.labels import FERPLUS_CLASSES, votes_to_targets

__all__ = ["EvalReport", "score", "evaluate", "format_report", "plot_report"]


@dataclass
class EvalReport:
    """Metrics of one model on one split; :meth:`to_json` gives the ``--json`` object."""

    n: int
    mae: float
    top1: float
    kl: float
    major8_acc: float
    major8_n: int
    class_mae: dict[str, float]
    confusion: np.ndarray
    classes: tuple[str, ...]
    model: str = ""
    data: str = ""
    total_rows: int = 0
    skipped: list = field(default_factory=list)

    def to_json(self) -> dict:
        """A JSON-ready dict with n, mae, top1, class_mae, major8_acc, major8_n, kl, model, data and more."""
        return {
            "model": self.model,
            "data": self.data,
            "n": self.n,
            "mae": self.mae,
            "top1": self.top1,
            "kl": self.kl,
            "major8_acc": self.major8_acc,
            "major8_n": self.major8_n,
            "class_mae": self.class_mae,
            "classes": list(self.classes),
            "confusion_matrix": self.confusion.tolist(),
            "rows": self.total_rows,
            "skipped": len(self.skipped),
        }


def score(votes: np.ndarray, probs: np.ndarray, classes: tuple[str, ...] | list[str]) -> EvalReport:
    """Score predictions ``probs`` (N, C) of a model with FER+ ``classes`` against vote counts ``votes`` (N, 10)."""
    classes = tuple(classes)
    n_cls = len(classes)
    if classes != FERPLUS_CLASSES[:n_cls] or n_cls not in (8, 9):
        raise ValueError(f"FER+ votes can score only models over the FER+ classes {FERPLUS_CLASSES[:9]} "
                         f"(8 or 9 of them); this model's classes are {classes}")
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(votes), n_cls):
        raise ValueError(f"predictions must be ({len(votes)}, {n_cls}), got {probs.shape}")
    t = votes_to_targets(votes, "seed9", n_cls)
    p = probs[t.keep]
    major8, n8 = M.major8_accuracy(votes, probs)
    cm = M.confusion_matrix(t.targets.argmax(axis=1), p.argmax(axis=1), n_cls)
    return EvalReport(
        n=int(t.keep.sum()), mae=M.mae(t.targets, p), top1=M.top1(t.targets, p), kl=M.kl_divergence(t.targets, p),
        major8_acc=major8, major8_n=n8, class_mae=dict(zip(classes, map(float, M.class_mae(t.targets, p)))),
        confusion=cm, classes=classes, total_rows=len(votes),
    )


def evaluate(model=None, data_dir: str | os.PathLike = "", *, skip_bad: bool = False,
             batch_size: int = 256) -> EvalReport:
    """Score ``model`` (None: the default model; a registered name; a .keras/.tflite path; or a loaded
    :class:`~ferlite.runtime.Predictor`) on the FER+ split folder ``data_dir``."""
    from ferlite.data import read_ferplus_folder
    from ferlite.runtime import Predictor, load_predictor

    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    faces = read_ferplus_folder(data_dir, skip_bad=skip_bad, size=48)
    probs = predict_faces(predictor, faces.images, batch_size)
    report = score(faces.votes, probs, predictor.classes)
    report.model = str(predictor.path)
    report.data = str(data_dir)
    report.skipped = faces.skipped
    report.total_rows = len(faces) + len(faces.skipped)
    return report


def predict_faces(predictor, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities for ``(N, 48, 48)`` uint8 gray faces, converted to the predictor's input."""
    import cv2

    s, c = predictor.input_size, predictor.channels
    out = []
    for i in range(0, len(images), batch_size):
        chunk = images[i:i + batch_size]
        if chunk.shape[1:3] != (s, s):
            chunk = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_LINEAR) for f in chunk])
        chunk = chunk[..., None]
        if c == 3:
            chunk = np.repeat(chunk, 3, axis=-1)
        out.append(predictor.predict(np.ascontiguousarray(chunk)))
    return np.concatenate(out) if out else np.zeros((0, len(predictor.classes)), np.float32)


def format_report(r: EvalReport) -> str:
    """Human-readable report in the reference project's shape, plus major8, KL, counts and the confusion matrix."""
    lines = [f"model: {r.model}", f"data:  {r.data}  ({r.total_rows} rows, {len(r.skipped)} skipped, "
             f"{r.n} faces scored with seed9, {r.major8_n} with majority)", "",
             f"top result accuracy: {100 * r.top1:.2f}%", "", "class-wise MAE:"]
    lines += [f"  {name:10s} {v:.4f}" for name, v in r.class_mae.items()]
    lines += ["", f"total MAE: {r.mae:.4f}", f"major8 accuracy: {100 * r.major8_acc:.2f}% (n={r.major8_n})",
              f"KL(target||prediction): {r.kl:.4f}", "", "confusion matrix (rows: true seed9 argmax, columns: predicted)"]
    short = [c[:7] for c in r.classes]
    lines.append(" " * 9 + " ".join(f"{c:>7s}" for c in short))
    for name, row in zip(short, r.confusion):
        lines.append(f"{name:>8s} " + " ".join(f"{v:7d}" for v in row))
    return "\n".join(lines)


def plot_report(r: EvalReport, out_dir: str | os.PathLike) -> list[str]:
    """Write ``confusion_matrix.png`` and ``class_mae.png`` into ``out_dir``; return their paths."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    norm = r.confusion / np.clip(r.confusion.sum(axis=1, keepdims=True), 1, None)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(r.classes)), r.classes, rotation=45, ha="right")
    ax.set_yticks(range(len(r.classes)), r.classes)
    for i in range(len(r.classes)):
        for j in range(len(r.classes)):
            ax.text(j, i, str(r.confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (seed9 argmax)")
    ax.set_title(f"top-1 {100 * r.top1:.1f}%  (n={r.n})")
    fig.tight_layout()
    paths.append(_save(fig, out / "confusion_matrix.png"))
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.bar(list(r.class_mae), list(r.class_mae.values()), color="tab:orange")
    ax.set_ylabel("MAE")
    ax.set_title(f"per-class MAE (total {r.mae:.4f})")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    paths.append(_save(fig, out / "class_mae.png"))
    return paths


def _save(fig, path) -> str:
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return str(path)
