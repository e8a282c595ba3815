"""Inference speed: predict at batch 1 and batched, analyze() end to end, and cold start.

* ``predict``: faces/s of ``Recognizer.predict`` (one 48x48 face a call) and ``predict_batch``
  (``--batch`` faces a call), real FER2013Valid faces;
* ``analyze``: frames/s on a 640x480 frame holding one face (scikit-image's astronaut), with the
  detector (``FaceDetector.detect``) and the recogniser (crop + predict) timed separately;
* cold start: the wall time of a fresh process doing ``import ferlite`` + one ``ferlite.predict``
  (a PNG path), against fresh processes doing nothing and only ``import tensorflow`` (which loading
  a Keras model needs anyway; a ``.tflite`` model needs no TensorFlow).

Each throughput is the best of ``--repeats`` runs (timeit's convention: the least disturbed run);
cold starts are the median of ``--cold-runs`` processes.

    python benchmarks/inference_speed.py [--model NAME_OR_PATH ...] [--batch 64] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ferlite.detect import crop_face
from ferlite.recognizer import Recognizer

SHARED_VALID = Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus" / "FER2013Valid"


def best_time(fn, number: int, repeats: int) -> float:
    """Seconds per call: the best of ``repeats`` runs of ``number`` calls."""
    fn()  # warm up
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t) / number)
    return min(runs)


def frame_640x480() -> np.ndarray:
    """astronaut() scaled to 480x480, centred on a 640x480 frame filled with a blurred copy of itself."""
    from skimage.data import astronaut

    img = cv2.resize(astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    frame = cv2.GaussianBlur(cv2.resize(img, (640, 480)), (0, 0), 10)
    frame[:, 80:560] = img
    return frame


def cold_start(code: str, runs: int) -> float:
    """Median wall time of a fresh Python process running ``code``, interpreter start-up included."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_model(model: str | None, faces: np.ndarray, frame: np.ndarray, args) -> dict:
    rec = Recognizer.from_pretrained(model)
    name = rec.predictor.path.name
    one = faces[0]
    batch = list(faces[: args.batch])
    t1 = best_time(lambda: rec.predict(one), 50, args.repeats)
    tb = best_time(lambda: rec.predict_batch(batch), 3, args.repeats)
    (face,) = rec.detector.detect(frame)
    geometry = rec.crop_geometry
    t_det = best_time(lambda: rec.detector.detect(frame), 20, args.repeats)
    t_rec = best_time(lambda: rec.predict(crop_face(frame, face, geometry)), 50, args.repeats)
    t_all = best_time(lambda: rec.analyze(frame), 20, args.repeats)
    cold = cold_start(f"import ferlite; ferlite.predict({str(args.face_png)!r}, model={model!r})", args.cold_runs)
    return {"model": name, "backend": rec.predictor.backend, "detector": rec.detector.name, "batch": len(batch),
            "predict_faces_per_s": 1 / t1, "predict_batch_faces_per_s": len(batch) / tb,
            "detector_ms": 1000 * t_det, "recogniser_ms": 1000 * t_rec, "analyze_ms": 1000 * t_all,
            "analyze_fps": 1 / t_all, "cold_start_s": cold}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=None,
                    help="model name or path; repeat for several (default: the bundled model)")
    ap.add_argument("--valid", default=str(SHARED_VALID), help="FER2013Valid folder (faces to predict)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the numbers to this JSON file")
    args = ap.parse_args()
    pngs = sorted(Path(args.valid).glob("*.png"))[: args.batch]
    if len(pngs) < args.batch:
        sys.exit(f"need {args.batch} PNG faces in {args.valid}, found {len(pngs)}")
    args.face_png = pngs[0]
    faces = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pngs])
    frame = frame_640x480()
    bare = cold_start("pass", args.cold_runs)
    tf_import = cold_start("import tensorflow", args.cold_runs)
    print(f"fresh process: python alone {bare:.2f} s, python + import tensorflow {tf_import:.2f} s "
          f"(median of {args.cold_runs})")
    rows = [bench_model(m, faces, frame, args) for m in (args.model or [None])]
    for r in rows:
        print(f"\n{r['model']} ({r['backend']}), detector {r['detector']}")
        print(f"  predict, batch 1:        {r['predict_faces_per_s']:8.1f} faces/s")
        print(f"  predict_batch, {r['batch']:>3} faces: {r['predict_batch_faces_per_s']:8.1f} faces/s")
        print(f"  analyze 640x480, 1 face: {r['analyze_fps']:8.1f} frames/s ({r['analyze_ms']:.1f} ms: detector "
              f"{r['detector_ms']:.1f} ms, recogniser {r['recogniser_ms']:.1f} ms)")
        print(f"  cold start, fresh process (import ferlite + first predict): {r['cold_start_s']:.2f} s "
              f"(python + import tensorflow: {tf_import:.2f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"python_s": bare, "tensorflow_import_s": tf_import, "models": rows},
                                              indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
