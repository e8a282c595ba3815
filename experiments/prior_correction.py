"""Does dividing the outputs by FER+'s class prior (logit adjustment) help on real photos, and how strongly?

FER+'s training votes are 30% neutral and 26% happiness, 1.5% disgust and 3.4% fear: a model trained on them leans
toward neutral and happiness. Logit adjustment divides each output by the class's training prior raised to a
strength tau and renormalises (``p_c * prior_c ** -tau``; tau 0: the model as it is, 1: the full correction of a
balanced decision). This script computes each model's outputs once per data set and scores every tau:

* folder-per-class photo sets (e.g. ``../shared/tools/wild-val``'s ``lfw-val`` and ``tcce``): each photo through
  ``Recognizer.analyze`` (the largest face), the prediction the argmax over the set's classes with at least
  ``--min-images`` images (contempt always left out), a photo without a face a miss; balanced accuracy (mean
  per-class recall) and accuracy;
* a FER+ split folder (FER2013Valid): ``ferlite.evaluate.score`` (seed9 MAE and top-1, major8) of the corrected
  outputs.

The prior is read from the model's sidecar (``class_prior``) or, with ``--prior-from``, computed from a FER+
training folder (seed9 targets' mean).

    python experiments/prior_correction.py --wild DATA/wild/lfw-val --wild DATA/wild/tcce \\
        --ferplus ../shared/data/ferplus/FER2013Valid [--model default --model fast] [--taus 0,0.25,0.5,0.75,1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ferlite.datasets import read_ferplus_folder
from ferlite.evaluate import score
from ferlite.images import IMAGE_SUFFIXES, read_image
from ferlite.labels import votes_to_targets
from ferlite.recognizer import Recognizer
from ferlite.sidecar import model_info


def adjust(probs: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """Rows of ``probs`` times ``prior ** -tau``, renormalised to sum 1."""
    out = probs * np.asarray(prior, dtype=np.float64) ** -tau
    return out / out.sum(axis=-1, keepdims=True)


def class_folders(folder: Path, min_images: int) -> dict[str, list[Path]]:
    """The class folders with at least ``min_images`` images (contempt left out), with their image files."""
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "contempt"):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) >= min_images:
            out[d.name] = files
    return out


def photo_outputs(rec: Recognizer, folders: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray]:
    """The model's outputs on the largest face of every photo (NaN rows: no face) and the label index of each."""
    probs, labels = [], []
    for label, (_, files) in enumerate(folders.items()):
        for path in files:
            faces = rec.analyze(read_image(path))
            probs.append([faces[0]["emotions"][c] for c in rec.classes] if faces else [np.nan] * len(rec.classes))
            labels.append(label)
    return np.array(probs), np.array(labels)


def balanced(probs: np.ndarray, labels: np.ndarray, columns: list[int]) -> tuple[float, float, list[float]]:
    """Balanced accuracy, accuracy and per-class recall of the argmax over ``columns`` (NaN rows: misses)."""
    found = ~np.isnan(probs[:, 0])
    pred = np.full(len(labels), -1)
    pred[found] = np.argmax(probs[found][:, columns], axis=1)
    recall = [float((pred[labels == k] == k).mean()) for k in range(len(columns))]
    return float(np.mean(recall)), float((pred == labels).mean()), recall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wild", type=Path, action="append", default=[], help="a folder-per-class photo set (repeat)")
    ap.add_argument("--ferplus", type=Path, default=None, help="a FER+ split folder, e.g. FER2013Valid")
    ap.add_argument("--model", action="append", default=None, help="model name or path (repeat; default: default)")
    ap.add_argument("--taus", default="0,0.25,0.5,0.75,1", help="comma-separated strengths")
    ap.add_argument("--min-images", type=int, default=20, help="classes with fewer images are left out")
    ap.add_argument("--prior-from", type=Path, default=None, help="FER+ training folder to compute the prior from")
    args = ap.parse_args()
    taus = [float(t) for t in args.taus.split(",")]
    sets = {folder.name: class_folders(folder, args.min_images) for folder in args.wild}
    valid = read_ferplus_folder(args.ferplus) if args.ferplus else None
    for name in args.model or [None]:
        rec = Recognizer.from_pretrained(name, balance=0)  # the model's own outputs, corrected below
        if args.prior_from:
            train = read_ferplus_folder(args.prior_from)
            prior = votes_to_targets(train.votes, "seed9", len(rec.classes)).targets.mean(axis=0)
        else:
            prior = np.array([model_info(rec.predictor.path)["class_prior"][c] for c in rec.classes])
        print(f"\n{rec.predictor.path.name}: prior " + ", ".join(f"{c} {p:.3f}" for c, p in zip(rec.classes, prior)))
        outputs = {s: photo_outputs(rec, folders) for s, folders in sets.items()}
        valid_probs = rec.predict_batch(list(valid.images)).to_numpy() if valid is not None else None
        header = "  tau  " + "".join(f"{s + ' bal / acc':>24}" for s in sets)
        print(header + ("   FER2013Valid MAE / top-1 / major8" if valid is not None else ""))
        for tau in taus:
            row = f"{tau:5.2f}  "
            for s, (probs, labels) in outputs.items():
                columns = [rec.classes.index(c) for c in sets[s]]
                bal, acc, _ = balanced(adjust(probs, prior, tau), labels, columns)
                row += f"{bal:>15.3f} / {acc:.3f}"
            if valid is not None:
                m = score(valid.votes, adjust(valid_probs, prior, tau), rec.classes)
                row += f"   {m['mae']:.4f} / {100 * m['top1']:.2f}% / {100 * m['major8_acc']:.2f}%"
            print(row, flush=True)
        for s, (probs, labels) in outputs.items():
            columns = [rec.classes.index(c) for c in sets[s]]
            for tau in taus:
                _, _, recall = balanced(adjust(probs, prior, tau), labels, columns)
                print(f"  {s} recall at tau {tau}: " + ", ".join(f"{c} {r:.2f}" for c, r in zip(sets[s], recall))
                      + f"; no face: {int(np.isnan(probs[:, 0]).sum())}")


if __name__ == "__main__":
    main()
