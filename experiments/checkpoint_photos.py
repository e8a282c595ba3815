"""Score many models (training checkpoints) on real photos and FER+ at once, from face crops cut once.

Choosing an epoch or a recipe by the real-photo protocol (``docs/evaluation.md``) needs every candidate scored on
the validation photos; detecting the faces again for each is most of the cost. This script runs the default
pipeline's face detector and crop (``Recognizer.face_inputs``, the largest face) once per photo set, keeps the
48x48 model inputs in a cache file, and scores each model given on them: balanced accuracy under the
class-balanced decision at each strength asked (``ferlite.labels.balance`` with the model's sidecar prior, or the
default model's when a checkpoint has none), and, with ``--ferplus``, the FER+ figures of the raw outputs
(``ferlite.evaluate.score``). Every model must take the same input (48x48, 1 channel) as the cache. With
``--bootstrap N``, each model after the first is compared with the first on the same photos at ``--compare-tau``:
the difference of balanced accuracy and its paired bootstrap standard error (photos resampled within each class,
N times), and the share of resamples where the model is not ahead. ``--degrade`` scores every model again on
degraded copies of the cut faces (blur, down-and-up scaling, sharpening, histogram equalisation): how much the
model relies on the detail the photos have.

    python experiments/checkpoint_photos.py --wild DATA/wild/lfw-val --wild DATA/wild/tcce \\
        --ferplus ../shared/data/ferplus/FER2013Valid --cache /tmp/wild-inputs.npz \\
        --model default runs/x/best_mae.keras runs/x/epoch_*.keras [--taus 0.5,0.7,1] [--bootstrap 2000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from ferlite.datasets import list_class_folders, read_ferplus_folder
from ferlite.evaluate import score, score_photos, select_classes
from ferlite.images import read_image
from ferlite.labels import balance
from ferlite.metrics import class_recall
from ferlite.recognizer import Recognizer
from ferlite.runtime import load_predictor


def cut_faces(rec: Recognizer, folder: Path) -> dict[str, np.ndarray]:
    """The labels of a folder-per-class set and the model input of each photo's largest face (zeros and
    ``found`` False where no face is found)."""
    listed = list_class_folders(folder, rec.classes)
    s, c = rec.predictor.input_size, rec.predictor.channels
    inputs, found = np.zeros((len(listed.files), s, s, c), np.uint8), np.zeros(len(listed.files), bool)
    for i, path in enumerate(listed.files):
        _, crops = rec.face_inputs(read_image(path), max_faces=1)
        if len(crops):
            inputs[i], found[i] = crops[0], True
    return {"labels": np.array([listed.classes[i] for i in listed.labels]), "inputs": inputs, "found": found}


def load_sets(folders: list[Path], cache: Path | None) -> dict[str, dict[str, np.ndarray]]:
    """Each set's labels, inputs and ``found``, from ``cache`` when it holds them, else cut and saved there."""
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            sets = {f.name: {k: z[f"{f.name}/{k}"] for k in ("labels", "inputs", "found")} for f in folders
                    if f"{f.name}/inputs" in z}
        if len(sets) == len(folders):
            return sets
    rec = Recognizer.from_pretrained()
    sets = {f.name: cut_faces(rec, f) for f in folders}
    if cache is not None:
        np.savez_compressed(cache, **{f"{name}/{k}": v for name, d in sets.items() for k, v in d.items()})
    return sets


DEGRADATIONS = {
    **{f"blur{s}": (lambda f, s=s: cv2.GaussianBlur(f, (0, 0), s)) for s in (0.5, 0.8, 1.2)},
    **{f"downup{k}": (lambda f, k=k: cv2.resize(cv2.resize(f, None, fx=k, fy=k, interpolation=cv2.INTER_AREA),
                                               f.shape[::-1], interpolation=cv2.INTER_LINEAR)) for k in (0.5, 0.75)},
    **{f"sharpen{a}": (lambda f, a=a: np.clip(f * (1.0 + a) - a * cv2.GaussianBlur(f, (0, 0), 1.0).astype(float),
                                              0, 255).astype(np.uint8)) for a in (0.5, 1.0)},
    "histeq": cv2.equalizeHist,
}
"""``--degrade`` choices: a function of one gray uint8 face (S, S)."""


def degrade(sets: dict, name: str) -> dict:
    """The sets with every cut face passed through ``DEGRADATIONS[name]`` (set names suffixed ``+name``)."""
    fn = DEGRADATIONS[name]
    return {f"{set_name}+{name}": {**d, "inputs": np.stack([fn(f[..., 0])[..., None] for f in d["inputs"]])}
            for set_name, d in sets.items()}


def load_model(path: str, sets: dict, fallback_prior: np.ndarray):
    """A model, the prior its decision divides by (its sidecar's, else ``fallback_prior``: a checkpoint may have
    none) and its raw outputs on every set, computed once."""
    predictor = load_predictor(path)
    prior = predictor.class_prior if predictor.class_prior is not None else fallback_prior
    return predictor, prior, {name: predictor.predict(d["inputs"]) for name, d in sets.items()}


def score_model(predictor, prior: np.ndarray, outputs: dict, sets: dict, taus: list[float], ferplus: tuple | None,
                min_images: int) -> dict:
    """Balanced accuracy on each photo set at each strength, and the FER+ scores of the raw outputs."""
    row: dict = {}
    for name, d in sets.items():
        for tau in taus:
            m = score_photos(d["labels"], balance(outputs[name], prior, tau), predictor.classes, found=d["found"],
                             min_images=min_images, exclude=["contempt"])
            row[f"{name}@{tau:g}"] = m["balanced_accuracy"]
            if tau == taus[-1]:
                row[f"{name}@{tau:g} recall"] = {c: round(float(r), 3)
                                                 for c, r in zip(m["classes"], class_recall(m["confusion"]))}
    if ferplus is not None:
        images, votes = ferplus
        m = score(votes, predictor.predict(images), predictor.classes)
        row.update(fer_mae=m["mae"], fer_top1=m["top1"], fer_major8=m["major8_acc"])
    return row


def photo_hits(classes: tuple[str, ...], data: dict[str, np.ndarray], probs: np.ndarray, prior: np.ndarray,
               tau: float, min_images: int):
    """Per photo of the classes the protocol scores: whether the prediction at strength ``tau`` (from the raw
    outputs ``probs``) is its label (a photo without a face is a miss); and the index of its class."""
    kept, _ = select_classes(data["labels"], classes, min_images=min_images, exclude=["contempt"])
    rows = np.isin(data["labels"], kept)
    cols = [classes.index(c) for c in kept]
    decided = balance(probs[rows], prior, tau)[:, cols]
    truth = np.array([kept.index(c) for c in data["labels"][rows]])
    return (decided.argmax(axis=1) == truth) & data["found"][rows], truth


def paired_bootstrap(hits_a: np.ndarray, hits_b: np.ndarray, truth: np.ndarray, n: int, seed: int = 0) -> dict:
    """Balanced accuracy of B minus A on the same photos, its standard error over ``n`` resamplings of the photos
    within each class, and the share of resamples where B is not ahead of A."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(truth == k) for k in np.unique(truth)]

    def diff(index: list[np.ndarray]) -> float:
        return float(np.mean([hits_b[i].mean() - hits_a[i].mean() for i in index]))

    draws = np.array([diff([rng.choice(g, len(g)) for g in groups]) for _ in range(n)])
    return {"diff": diff(groups), "se": float(draws.std()), "not_ahead": float((draws <= 0).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wild", type=Path, action="append", required=True, help="folder-per-class photo set")
    ap.add_argument("--ferplus", type=Path, help="FER+ split folder (e.g. FER2013Valid): raw-output scores")
    ap.add_argument("--cache", type=Path, help="npz file keeping the cut faces between runs")
    ap.add_argument("--model", nargs="+", required=True, help="registered names or model files")
    ap.add_argument("--taus", default="0,0.7", help="balance strengths, comma-separated (recall at the last)")
    ap.add_argument("--min-images", type=int, default=20)
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--degrade", action="append", default=[], choices=list(DEGRADATIONS),
                    help="also score on degraded copies of the faces (repeat)")
    ap.add_argument("--bootstrap", type=int, default=0, help="resamples comparing each model with the first (0: off)")
    ap.add_argument("--compare-tau", type=float, default=0.7, help="the strength the comparison is made at")
    args = ap.parse_args()
    taus = [float(t) for t in args.taus.split(",")]
    sets = load_sets(args.wild, args.cache)
    for name in args.degrade:
        sets.update(degrade({k: v for k, v in sets.items() if "+" not in k}, name))
    default_prior = load_predictor(None).class_prior
    ferplus = None
    if args.ferplus is not None:
        data = read_ferplus_folder(args.ferplus)
        ferplus = (data.images[..., None], data.votes)
    rows, first = [], {}
    for path in args.model:
        predictor, prior, outputs = load_model(path, sets, default_prior)
        row = {"model": path, **score_model(predictor, prior, outputs, sets, taus, ferplus, args.min_images)}
        if args.bootstrap:
            for name, d in sets.items():
                hits, truth = photo_hits(predictor.classes, d, outputs[name], prior, args.compare_tau,
                                         args.min_images)
                if name in first:
                    row[f"{name} vs first"] = paired_bootstrap(first[name], hits, truth, args.bootstrap)
                first.setdefault(name, hits)
        rows.append(row)
        print(json.dumps(row, default=float, allow_nan=False), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
