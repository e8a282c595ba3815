"""The report of an evaluation: :func:`format_report` (text) and :func:`plot_report` (PNG figures) of an
:class:`~ferlite.evaluate.EvalReport`. Figures are drawn on a ``matplotlib.figure.Figure`` with the Agg canvas (no
GUI backend, no global state) and written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ferlite._atomic import atomic_path
from ferlite.evaluate import NO_FACE, EvalReport

__all__ = ["format_report", "plot_report", "save_png"]


def format_report(r: EvalReport) -> str:
    """Human-readable report. FER+ and CSV data: the reference project's shape (top result accuracy, class-wise
    MAE, total MAE), then major8 accuracy, KL, the sample counts and the confusion matrix. Folder-per-class
    data (the real-photo protocol): the balanced accuracy first, then the accuracy, class-wise recall, the classes
    scored and left out, the sample counts, the confusion matrix (with a ``no face`` column with ``--detect``) and
    the photos without a face."""
    width = max(map(len, r.classes)) + 2
    folders = r.layout == "folders"
    renamed = f"; renamed {','.join(f'{k}={v}' for k, v in r.class_map.items())}" if r.class_map else ""
    lines = [
        f"model: {r.model}" + (f"  ({r.model_path})" if r.model_path != r.model else ""),
        f"data:  {r.data}" + (f"  (one folder per class{renamed})" if folders else ""),
        "",
        *(_label_lines(r, width) if folders else _vote_lines(r, width)),
        "",
        f"Confusion matrix (rows: {'the folder' if folders else 'true seed9 argmax'}, columns: predicted"
        + (f"; '{NO_FACE}': no face found, a miss" if len(r.columns) > len(r.classes) else "") + "):",
        " " * width + " ".join(f"{c[:7]:>7}" for c in r.columns),
        *(f"{name:<{width}}" + " ".join(f"{v:7d}" for v in row) for name, row in zip(r.classes, r.confusion,
                                                                                   strict=True)),
    ]
    if r.no_face:
        lines += ["", f"No face found in {len(r.no_face)} photo(s) (counted as misses):",
                  *(f"  {p}" for p in r.no_face)]
    return "\n".join(lines)


def _vote_lines(r: EvalReport, width: int) -> list[str]:
    """The metric lines of a report on FER+ or CSV votes."""
    major8 = f"{r.major8_acc:.4f} ({100 * r.major8_acc:.2f}%)" if r.major8_n else "n/a (not FER+ votes or no face kept)"
    return [
        f"Top result accuracy: {r.top1:.4f} ({100 * r.top1:.2f}%)",
        "Class-wise MAE:",
        *(f"{name:<{width}} {v:.6f}" for name, v in r.class_mae.items()),
        f"Total MAE: {r.mae:.6f}",
        "",
        f"major8 accuracy (FER+ majority protocol): {major8}",
        f"KL(target || prediction): {r.kl:.4f}",
        f"samples: {r.rows} rows, {len(r.skipped)} skipped as bad, {r.faces} read, "
        f"{r.n} scored (seed9, {r.dropped} without votes), {r.major8_n} kept by majority",
        *([f"outputs: the model's{_decision(r)}"] if r.balance else []),
    ]


def _images(k: int) -> str:
    """``"1 image"``, ``"5 images"``."""
    return f"{k} image{'' if k == 1 else 's'}"


def _decision(r: EvalReport) -> str:
    """How the outputs scored were decided: ``""`` for the model's own, else the class-balanced strength."""
    return f", class-balanced (divided by the training class prior ** {r.balance:g})" if r.balance else ""


def _label_lines(r: EvalReport, width: int) -> list[str]:
    """The metric lines of a report on folder labels (the real-photo protocol)."""
    true = r.confusion.sum(axis=1)
    faces = (f"the largest face found by the {r.detector} detector in each photo; {len(r.no_face)} photo(s) without "
             "one, counted as misses" if r.detector else "each image taken as a face crop (no --detect)")
    left_out = ", ".join(f"{c} ({_images(k)}{', excluded by name' if c in r.excluded else ''})"
                         for c, k in r.left_out.items())
    return [
        f"Balanced accuracy (mean class-wise recall): {r.balanced_accuracy:.4f}",
        f"Accuracy (top-1 against the folder): {r.top1:.4f} ({100 * r.top1:.2f}%)",
        "Class-wise recall:",
        *(f"{name:<{width}} {v:.4f}  ({r.confusion[i, i]}/{true[i]})"
          for i, (name, v) in enumerate(r.class_recall.items())),
        "",
        f"classes scored: the {len(r.classes)} with at least {_images(r.min_images)}"
        + (f", less {', '.join(r.excluded)} (excluded)" if r.excluded else "")
        + f"; left out: {left_out or 'none'}",
        f"predicted class: the argmax of the model's outputs for these {len(r.classes)} classes{_decision(r)}",
        f"faces: {faces}",
        f"samples: {r.rows} images, {len(r.skipped)} skipped as bad, {r.faces} read, {r.dropped} of classes left "
        f"out, {r.n} scored",
    ]


def plot_report(r: EvalReport, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``confusion_matrix.png`` (row-normalised colours, counts written in) and ``class_mae.png``
    (per-class MAE bars; ``class_recall.png``, per-class recall, for folder-per-class data) into ``out_dir``,
    each atomically; return their paths."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = r.layout == "folders"
    k, columns = len(r.classes), r.columns
    fig = Figure(figsize=(6.5 + 0.5 * (len(columns) - k), 5.5))
    ax = fig.subplots()
    norm = r.confusion / np.clip(r.confusion.sum(axis=1, keepdims=True), 1, None)
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(k), r.classes)
    for i in range(k):
        for j in range(len(columns)):
            ax.text(j, i, str(r.confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (the folder)" if folders else "true (seed9 argmax)")
    ax.set_title(f"balanced accuracy {r.balanced_accuracy:.3f}, accuracy {100 * r.top1:.1f}%  (n={r.n})" if folders
                 else f"top-1 {100 * r.top1:.1f}%  (n={r.n})")
    fig.tight_layout()
    paths = [save_png(fig, out / "confusion_matrix.png")]
    if folders:
        title = f"per-class recall (balanced accuracy {r.balanced_accuracy:.3f}, n={r.n})"
        paths.append(_bar_png(r.class_recall, "recall", title, out / "class_recall.png", "tab:green"))
    else:
        paths.append(_bar_png(r.class_mae, "MAE", f"per-class MAE (total {r.mae:.4f}, n={r.n})",
                              out / "class_mae.png", "tab:orange"))
    return paths


def _bar_png(values: Mapping[str, float], ylabel: str, title: str, path: Path, color: str) -> Path:
    """A bar chart of ``{class: value}`` written to ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.5))
    ax = fig.subplots()
    ax.bar(list(values), [0.0 if math.isnan(v) else v for v in values.values()], color=color)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return save_png(fig, path)


def save_png(fig, path: str | os.PathLike) -> Path:
    """Render the ``matplotlib.figure.Figure`` ``fig`` with Agg to a temporary file beside ``path``, then move it
    into place; return ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
