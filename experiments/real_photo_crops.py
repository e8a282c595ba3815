"""Which crop geometry, and does averaging a face with its mirror image help, on real photos (not FER+)?

``experiments/crop_geometry.py`` chose each detector's crop on FER+ faces pasted into scenes; this re-measures it on
labelled photos (folder-per-class sets such as ``../shared/tools/wild-val``'s ``lfw-val`` and ``tcce``). Each photo
is read and its faces detected once (the default detector, YuNet); the largest face is then cropped with every
geometry of a grid (margin x vertical offset, square, eye alignment on) and predicted by the model, alone and
averaged with its mirror image (test-time flip), at the model's recorded class-balanced strength. Every
combination is scored by ``ferlite.evaluate.score_photos`` (the real-photo protocol: classes with at least 20
photos, contempt left out, a photo without a face a miss): balanced accuracy per set and their mean.

    python experiments/real_photo_crops.py DATA/wild/lfw-val DATA/wild/tcce [--model NAME] [--margins ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np

from ferlite.datasets import list_class_folders
from ferlite.detect import DEFAULT_GEOMETRY, CropGeometry, crop_face
from ferlite.evaluate import score_photos
from ferlite.images import read_image
from ferlite.recognizer import Recognizer


def detect_set(rec: Recognizer, folder: Path) -> list[tuple[str, np.ndarray, object]]:
    """(class, RGB photo, largest face or None) for every photo of a folder-per-class set."""
    listed = list_class_folders(folder, rec.classes)
    out = []
    for path, label in zip(listed.files, listed.labels, strict=True):
        rgb = read_image(path)
        faces = rec.detector.detect(rgb)
        out.append((listed.classes[label], rgb, faces[0] if faces else None))
    return out


def outputs(rec: Recognizer, photos: list, geometry: CropGeometry, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """The recogniser's outputs for the largest face of each photo cut with ``geometry`` (zeros without a face),
    optionally averaged with the mirror image's, and whether a face was found."""
    found = np.array([face is not None for _, _, face in photos])
    crops = np.stack([rec._prepare(crop_face(rgb, face, geometry), "rgb") for _, rgb, face in photos if face])
    probs = rec.outputs(crops)
    if flip:
        probs = (probs + rec.outputs(np.ascontiguousarray(crops[:, :, ::-1]))) / 2
    full = np.zeros((len(photos), len(rec.classes)))
    full[found] = probs
    return full, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folder-per-class photo sets")
    ap.add_argument("--model", default=None, help="model name or path (default: the default pipeline's)")
    ap.add_argument("--margins", default="-0.1,-0.05,0,0.05,0.1,0.15,0.2", help="comma-separated margins")
    ap.add_argument("--offsets", default="-0.15,-0.1,-0.05,0,0.05", help="comma-separated vertical offsets")
    args = ap.parse_args()
    rec = Recognizer.from_pretrained(args.model)
    sets = {folder.name: detect_set(rec, folder) for folder in args.folders}
    default = DEFAULT_GEOMETRY[rec.detector.name]
    print(f"{rec.predictor.path.name}, detector {rec.detector.name}, balance {rec.balance:g}; default crop: margin "
          f"{default.margin}, offset {default.offset_y}")
    print(f"{'margin':>7} {'offset':>7} {'flip':>5} " + "".join(f"{name:>10}" for name in sets) + f"{'mean':>8}")
    rows = []
    for margin, offset, flip in itertools.product([float(m) for m in args.margins.split(",")],
                                                  [float(o) for o in args.offsets.split(",")], (False, True)):
        geometry = dataclasses.replace(default, margin=margin, offset_y=offset)
        bal = []
        for photos in sets.values():
            probs, found = outputs(rec, photos, geometry, flip)
            labels = [label for label, _, _ in photos]
            bal.append(score_photos(labels, probs, rec.classes, found=found,
                                    exclude=[c for c in ("contempt",) if c in labels])["balanced_accuracy"])
        rows.append((margin, offset, flip, bal))
        mark = "  <- default" if (margin, offset, flip) == (default.margin, default.offset_y, False) else ""
        print(f"{margin:7.2f} {offset:7.2f} {'on' if flip else 'off':>5} " + "".join(f"{b:10.3f}" for b in bal)
              + f"{np.mean(bal):8.3f}{mark}", flush=True)
    best = max(rows, key=lambda r: np.mean(r[3]))
    print(f"best mean: margin {best[0]}, offset {best[1]}, flip {'on' if best[2] else 'off'}: {np.mean(best[3]):.3f}")


if __name__ == "__main__":
    main()
