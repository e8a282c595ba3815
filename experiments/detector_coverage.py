"""Which face detector finds the faces in real photos: no-face and several-face counts, and ms per photo.

Every image under each folder given (a folder per class, e.g. the ``lfw-val`` and ``tcce`` sets that
``../shared/tools/wild-val`` writes) is read with ferlite's checked reader and passed to each detector at its
default minimum score. A photo of these sets holds one person, so "no face" is a miss and "several" counts
photos with extra detections (some are other people in the background of news photos). The speed column is the
mean wall time of ``FaceDetector.detect`` per photo on this machine (one process, OpenCV's default threads);
``--frame-ms`` also times one 640x480 frame (scikit-image's astronaut, resized) per detector.

    python experiments/detector_coverage.py DATA/wild/lfw-val DATA/wild/tcce [--detectors yunet,mediapipe]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ferlite.detect import FaceDetector
from ferlite.images import IMAGE_SUFFIXES, read_image


def photos(folder: Path) -> list[Path]:
    """The image files of a folder per class, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def coverage(det: FaceDetector, images: list[np.ndarray]) -> dict:
    """No-face and several-face counts and mean ms per photo of one detector over decoded photos."""
    counts, t0 = [], time.perf_counter()
    for img in images:
        counts.append(len(det.detect(img)))
    ms = 1000 * (time.perf_counter() - t0) / len(images)
    counts = np.array(counts)
    return {"photos": len(images), "no_face": int((counts == 0).sum()), "several": int((counts > 1).sum()), "ms": ms}


def frame_ms(det: FaceDetector, repeats: int = 50) -> float:
    """Mean ms of one detection on a 640x480 RGB frame (the astronaut photo, resized)."""
    import cv2
    import skimage.data

    frame = cv2.resize(skimage.data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA)
    det.detect(frame)
    t0 = time.perf_counter()
    for _ in range(repeats):
        det.detect(frame)
    return 1000 * (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="folders of photos (searched recursively)")
    ap.add_argument("--detectors", default="yunet,mediapipe", help="comma-separated detectors")
    ap.add_argument("--frame-ms", action="store_true", help="also time a 640x480 frame per detector")
    args = ap.parse_args()
    sets = {folder.name: [read_image(p) for p in photos(folder)] for folder in args.folders}
    print(f"{'set':10} {'detector':10} {'photos':>7} {'no face':>8} {'several':>8} {'ms/photo':>9}")
    for name in args.detectors.split(","):
        with FaceDetector(detector=name) as det:
            for set_name, images in sets.items():
                r = coverage(det, images)
                print(f"{set_name:10} {name:10} {r['photos']:7d} {r['no_face']:8d} {r['several']:8d} {r['ms']:9.1f}")
            if args.frame_ms:
                print(f"{'640x480':10} {name:10} {'':7} {'':8} {'':8} {frame_ms(det):9.1f}")


if __name__ == "__main__":
    main()
