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

from ferlite.datasets import list_class_folders, read_ferplus_folder
from ferlite.evaluate import score, score_photos
from ferlite.images import read_image
from ferlite.labels import balance, votes_to_targets
from ferlite.metrics import class_recall
from ferlite.recognizer import Recognizer
from ferlite.sidecar import model_info


def photo_outputs(rec: Recognizer, folder: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The class of every photo of a folder-per-class set, the model's outputs on its largest face (rows of photos
    without a face are zeros) and whether a face was found."""
    listed = list_class_folders(folder, rec.classes)
    probs, found = [], []
    for path in listed.files:
        faces = rec.analyze(read_image(path))
        probs.append([faces[0]["emotions"][c] for c in rec.classes] if faces else [0.0] * len(rec.classes))
        found.append(bool(faces))
    return [listed.classes[i] for i in listed.labels], np.array(probs), np.array(found)


def photo_scores(rec: Recognizer, outputs: tuple, prior: np.ndarray, tau: float, min_images: int) -> dict:
    """``ferlite.evaluate.score_photos`` (the real-photo protocol, contempt left out) of the corrected outputs, with
    ``recall`` ``{class: recall}``."""
    labels, probs, found = outputs
    m = score_photos(labels, balance(probs, prior, tau), rec.classes, found=found, min_images=min_images,
                     exclude=[c for c in ("contempt",) if c in set(labels) | set(rec.classes)])
    return {**m, "recall": dict(zip(m["classes"], class_recall(m["confusion"]), strict=True))}


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
    valid = read_ferplus_folder(args.ferplus) if args.ferplus else None
    for name in args.model or [None]:
        rec = Recognizer.from_pretrained(name, balance=0)  # the model's own outputs, corrected below
        if args.prior_from:
            train = read_ferplus_folder(args.prior_from)
            prior = votes_to_targets(train.votes, "seed9", len(rec.classes)).targets.mean(axis=0)
        else:
            prior = np.array([model_info(rec.predictor.path)["class_prior"][c] for c in rec.classes])
        print(f"\n{rec.predictor.path.name}: prior " + ", ".join(f"{c} {p:.3f}" for c, p in zip(rec.classes, prior)))
        outputs = {folder.name: photo_outputs(rec, folder) for folder in args.wild}
        valid_probs = rec.predict_batch(list(valid.images)).to_numpy() if valid is not None else None
        header = "  tau  " + "".join(f"{s + ' bal / acc':>24}" for s in outputs)
        print(header + ("   FER2013Valid MAE / top-1 / major8" if valid is not None else ""))
        for tau in taus:
            row = f"{tau:5.2f}  "
            for out in outputs.values():
                m = photo_scores(rec, out, prior, tau, args.min_images)
                row += f"{m['balanced_accuracy']:>15.3f} / {m['top1']:.3f}"
            if valid is not None:
                m = score(valid.votes, balance(valid_probs, prior, tau), rec.classes)
                row += f"   {m['mae']:.4f} / {100 * m['top1']:.2f}% / {100 * m['major8_acc']:.2f}%"
            print(row, flush=True)
        for name, out in outputs.items():
            for tau in taus:
                recall = photo_scores(rec, out, prior, tau, args.min_images)["recall"]
                print(f"  {name} recall at tau {tau}: " + ", ".join(f"{c} {r:.2f}" for c, r in recall.items())
                      + f"; no face: {int((~out[2]).sum())}")


if __name__ == "__main__":
    main()
