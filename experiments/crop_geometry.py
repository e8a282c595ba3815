"""Choose the face crop geometry (and whether to align the eyes) by measurement.

FER2013Valid faces (48x48) are upscaled 3-4x and pasted into 640x480 scenes made from blurred
scikit-image photos, re-detected with each detector, cropped with every geometry of a small grid
(margin x vertical offset x square), and predicted with a model. Each geometry is scored by:

* ``mae_ref``: mean absolute difference of its predictions from those on the original 48x48 crops
  (0 = the model sees what it would see on FER+ itself; the main criterion);
* ``mae_lab``: MAE against the FER+ soft labels (seed9), and ``major8`` (the FER+ paper's metric).

Alignment: the scenes are rotated by +-15 degrees about the face centre and cropped with the best
geometry with and without eye-level alignment (and the upright scenes too). Each scored detector's minimum
score: faces found and false detections at several thresholds, in the scenes and in noise images.

    python experiments/crop_geometry.py [--faces 400] [--model NAME_OR_PATH] [--json FILE]

Needs ../shared (FER2013Valid) and scikit-image; the BlazeFace detector file is bundled with ferlite.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ferlite import metrics
from ferlite.datasets import read_ferplus_folder
from ferlite.detect import CropGeometry, Face, FaceDetector, crop_face, eye_angle
from ferlite.labels import votes_to_targets
from ferlite.recognizer import Recognizer
from ferlite.video import box_iou

SHARED_VALID = Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus" / "FER2013Valid"
BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "moon", "coins", "page")
MARGINS = (-0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
OFFSETS = (-0.25, -0.2, -0.15, -0.1, -0.05, 0.0, 0.05)
THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7)
ALIGN_MODES = {"off": {"align": False}, "on": {"align": True},
               "on if tilt >= 10 deg": {"align": True, "align_min_angle": 10.0}}
SCENE_H, SCENE_W = 480, 640
DETECTOR_NAMES = ("yunet", "mediapipe")
SCORED = ("yunet", "mediapipe")  # the detectors with scores and keypoints


def backgrounds() -> list[np.ndarray]:
    """Gray 640x480 backgrounds from scikit-image's bundled photos (none shows a face), blurred."""
    import skimage.data

    out = []
    for name in BACKGROUNDS:
        img = getattr(skimage.data, name)()
        gray = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
        gray = cv2.resize(gray, (SCENE_W, SCENE_H), interpolation=cv2.INTER_AREA)
        out.append(cv2.GaussianBlur(gray, (0, 0), 2.0))
    return out


def make_scenes(faces: np.ndarray, rng: np.random.Generator) -> tuple[list[np.ndarray], list[tuple]]:
    """Each face upscaled 3-4x and pasted at a random place into a background: (scenes, pasted boxes)."""
    bgs = backgrounds()
    scenes, boxes = [], []
    for i, face in enumerate(faces):
        side = int(round(48 * rng.uniform(3.0, 4.0)))
        x, y = int(rng.integers(0, SCENE_W - side)), int(rng.integers(0, SCENE_H - side))
        scene = bgs[i % len(bgs)].copy()
        scene[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        scenes.append(scene)
        boxes.append((x, y, side, side))
    return scenes, boxes


def rotate(scene: np.ndarray, box: tuple, angle: float) -> np.ndarray:
    """The scene rotated by ``angle`` degrees (counter-clockwise on screen) about the pasted face's centre."""
    x, y, s, _ = box
    m = cv2.getRotationMatrix2D((x + s / 2, y + s / 2), angle, 1.0)
    return cv2.warpAffine(scene, m, (SCENE_W, SCENE_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def detect_all(detector: FaceDetector, scenes: list[np.ndarray], boxes: list[tuple]) -> tuple[list, list[float]]:
    """For each scene the detection overlapping the pasted face most (IoU >= 0.3), else None; and the
    scores of the other (false) detections."""
    found, false_scores = [], []
    for scene, box in zip(scenes, boxes, strict=True):
        faces = detector.detect(scene)
        hits = [f for f in faces if box_iou(f.box, box) >= 0.3]
        false_scores += [f.score for f in faces if box_iou(f.box, box) < 0.3]
        found.append(max(hits, key=lambda f: box_iou(f.box, box), default=None))
    return found, false_scores


class Scorer:
    """Scores crops of a subset of the faces against the predictions on their original crops and the labels."""

    def __init__(self, rec: Recognizer, faces: np.ndarray, targets: np.ndarray, votes: np.ndarray) -> None:
        self.rec, self.faces, self.targets, self.votes = rec, faces, targets, votes
        self.ref = rec.predict_batch(list(faces)).to_numpy()

    def __call__(self, crops: list[np.ndarray], mask: np.ndarray) -> dict:
        pred = self.rec.predict_batch(crops).to_numpy()
        acc, n = metrics.major8_accuracy(self.votes[mask], pred)
        return {"mae_ref": metrics.mae(self.ref[mask], pred), "mae_lab": metrics.mae(self.targets[mask], pred),
                "major8": acc, "n_major8": n,
                "_err_ref": np.abs(self.ref[mask] - pred).mean(axis=1),
                "_err_lab": np.abs(self.targets[mask] - pred).mean(axis=1)}


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """Mean of the per-face differences a - b, with its standard error."""
    d = a - b
    return f"{d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(len(d)):.4f}"


def fmt(row: dict) -> str:
    return f"{row['mae_ref']:.4f}  {row['mae_lab']:.4f}  {100 * row['major8']:5.1f}%"


def public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def noise_images(rng: np.random.Generator, n: int = 50) -> list[np.ndarray]:
    """n uniform colour-noise and n blurred gray-noise 640x480 images."""
    uniform = [rng.integers(0, 256, (SCENE_H, SCENE_W, 3), dtype=np.uint8) for _ in range(n)]
    blurred = [cv2.GaussianBlur(rng.integers(0, 256, (SCENE_H, SCENE_W), dtype=np.uint8), (0, 0), 2)
               for _ in range(n)]
    return uniform + blurred


def geometry_grid(name: str, det: FaceDetector, scenes, boxes, score: Scorer, noise) -> tuple[dict, CropGeometry]:
    found, false_scores = detect_all(det, scenes, boxes)
    ok = np.array([f is not None for f in found])
    sel = [(s, f) for s, f in zip(scenes, found, strict=True) if f is not None]
    pasted = np.array(boxes)[ok]
    det_boxes = np.array([f.box for _, f in sel], dtype=float)
    rel_dy = (det_boxes[:, 1] + det_boxes[:, 3] / 2 - pasted[:, 1] - pasted[:, 3] / 2) / det_boxes[:, 3]
    entry = {"detection_rate": float(ok.mean()), "detected": int(ok.sum()),
             "box_over_pasted": float(np.median(det_boxes[:, 3] / pasted[:, 3])),
             "box_aspect_w_over_h": float(np.median(det_boxes[:, 2] / det_boxes[:, 3])),
             "box_centre_dy_over_h": float(np.median(rel_dy)), "grid": []}
    print(f"\n[{name}] detected {ok.sum()}/{len(ok)} ({100 * ok.mean():.1f}%); median box side / pasted side "
          f"{entry['box_over_pasted']:.3f}, w/h {entry['box_aspect_w_over_h']:.3f}, box centre "
          f"{entry['box_centre_dy_over_h']:+.3f} box heights below the pasted centre")
    if name in SCORED:
        hit_scores = np.array([f.score for _, f in sel])
        noise_scores = [max((f.score for f in det.detect(img)), default=0.0) for img in noise]
        entry["min_score"] = []
        print(f"  min_score  faces found  false detections ({len(scenes)} scenes)  noise images with a detection")
        for t in THRESHOLDS:
            row = {"min_score": t, "found": int((hit_scores >= t).sum()),
                   "false": int(sum(x >= t for x in false_scores)), "noise": int(sum(x >= t for x in noise_scores))}
            entry["min_score"].append(row)
            print(f"  {t:9.2f}  {row['found']:11d}  {row['false']:29d}  {row['noise']:5d} / {len(noise)}")
    else:
        entry["false_detections"] = len(false_scores)
        print(f"  false detections (not the pasted face) in {len(scenes)} scenes: {len(false_scores)}")
    entry["base"] = score(list(score.faces[ok]), ok)
    exact = CropGeometry(margin=0.0, offset_y=0.0, align=False)
    entry["oracle"] = score([crop_face(s, Face(tuple(int(c) for c in b), 1.0), exact)
                             for (s, _), b in zip(sel, pasted, strict=True)], ok)
    for margin, offset in itertools.product(MARGINS, OFFSETS):
        row = score([crop_face(s, f, CropGeometry(margin=margin, offset_y=offset, align=False)) for s, f in sel], ok)
        entry["grid"].append({"margin": margin, "offset_y": offset, **row})
    entry["grid"].sort(key=lambda row: row["mae_ref"])
    best = entry["grid"][0]
    best_g = CropGeometry(margin=best["margin"], offset_y=best["offset_y"], align=False)
    entry["not_square"] = score([crop_face(s, f, dataclasses.replace(best_g, square=False)) for s, f in sel], ok)
    print(f"  original crops of these faces:      {fmt(entry['base'])}")
    print(f"  oracle (exactly the pasted square): {fmt(entry['oracle'])}")
    print(f"  best margin/offset, not square:     {fmt(entry['not_square'])}")
    print("  square crops: margin  offset_y   mae_ref  mae_lab  major8   mae_ref - best's (per face, +- SE)")
    for row in entry["grid"]:
        print(f"  {row['margin']:20.2f}  {row['offset_y']:+8.2f}   {fmt(row)}   "
              f"{paired(row['_err_ref'], best['_err_ref'])}")
    entry["grid"] = [public(r) for r in entry["grid"]]
    for key in ("base", "oracle", "not_square"):
        entry[key] = public(entry[key])
    return entry, best_g


def alignment(det: FaceDetector, scenes, boxes, angles, best_g: CropGeometry, score: Scorer) -> dict:
    """Eye-level alignment on and off, on upright and on rotated scenes, with the detector's best geometry."""
    rotated = [rotate(s, b, a) for s, b, a in zip(scenes, boxes, angles, strict=True)]
    out = {}
    print(f"\n[alignment, {det.name}, margin {best_g.margin}, offset_y {best_g.offset_y}]")
    print("  faces              found   align                   mae_ref  mae_lab  major8   "
          "mae_lab - off's (+- SE)")
    for label, imgs in (("upright", scenes), ("rotated +-15 deg", rotated)):
        found, _ = detect_all(det, imgs, boxes)
        ok = np.array([f is not None for f in found])
        pairs = [(s, f) for s, f in zip(imgs, found, strict=True) if f is not None]
        tilt = np.array([abs(eye_angle(f)) for _, f in pairs])
        out[label] = {"detection_rate": float(ok.mean()), "median_abs_eye_angle": float(np.median(tilt)),
                      "share_tilt_ge_10": float((tilt >= 10).mean())}
        rows = {mode: score([crop_face(s, f, dataclasses.replace(best_g, **kw)) for s, f in pairs], ok)
                for mode, kw in ALIGN_MODES.items()}
        for mode, row in rows.items():
            print(f"  {label:17} {100 * ok.mean():5.1f}%   {mode:21}   {fmt(row)}   "
                  f"{paired(row['_err_lab'], rows['off']['_err_lab'])}")
            out[label][mode] = public(row)
        print(f"  {label:17} median |eye angle| {np.median(tilt):.1f} deg, {100 * (tilt >= 10).mean():.0f}% >= 10 deg")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=400, help="number of FER2013Valid faces (default 400)")
    ap.add_argument("--model", default=None, help="model name or path (default: the bundled model)")
    ap.add_argument("--valid", default=str(SHARED_VALID), help="FER2013Valid folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write every number to this JSON file")
    ap.add_argument("--detectors", default=",".join(DETECTOR_NAMES), help="comma-separated detectors to measure")
    args = ap.parse_args()
    t0 = time.time()

    data = read_ferplus_folder(args.valid, use_cache=False)
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(data.images), size=min(args.faces, len(data.images)), replace=False))
    faces, votes = data.images[idx], data.votes[idx]
    rec = Recognizer.from_pretrained(args.model, balance=0)  # the model's own outputs: mae_lab is against FER+ votes
    targets = votes_to_targets(votes, "seed9", len(rec.classes)).targets
    score = Scorer(rec, faces, targets, votes)
    scenes, boxes = make_scenes(faces, rng)
    angles = rng.choice([-15.0, 15.0], size=len(faces))
    noise = noise_images(rng)
    base = score(list(faces), np.ones(len(faces), bool))
    print(f"{len(faces)} FER2013Valid faces (seed {args.seed}), model {rec.predictor.path.name}")
    print(f"original 48x48 crops: mae_lab {base['mae_lab']:.4f}  major8 {100 * base['major8']:.1f}% "
          f"(n={base['n_major8']})")
    print("columns: mae_ref (vs predictions on the original crops)  mae_lab (vs soft labels)  major8")
    report: dict = {"faces": len(faces), "model": str(rec.predictor.path), "seed": args.seed,
                    "original": public(base), "detectors": {}}
    for name in args.detectors.split(","):
        with FaceDetector(detector=name, min_score=THRESHOLDS[0]) as det:
            entry, best_g = geometry_grid(name, det, scenes, boxes, score, noise)
            if name in SCORED:
                entry["alignment"] = alignment(det, scenes, boxes, angles, best_g, score)
        report["detectors"][name] = entry
    report["seconds"] = round(time.time() - t0, 1)
    print(f"\n{report['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
