"""How int8 conversion scales a model's logits, and what undoing it (``ferlite export``'s logit correction) buys.

For each ``--model`` (registered names or ``.keras`` files; default both bundled Keras models) and each form of
LeakyReLU (``--leaky-relu``, default ``op,max``: see :func:`ferlite.training.export.export_tflite`) the model is
exported to int8 twice with :func:`ferlite.training.export.export_tflite`, calibrated as the bundled files are
(``--num-calibration`` faces of ``--calibration-data``, seed 0): once plain (``correct_logits=False``) and once with
the correction (the default). For the Keras model and each file it prints, on a FER+ split (``--data``):

* ``slope``: :func:`ferlite.training.export.logit_slope` of the file against the Keras model, on the calibration faces
  and on the ``--data`` faces, with LiteRT's default kernels (XNNPACK, what :mod:`ferlite.litert` runs) and with
  TFLite's built-in kernels (what a runtime without XNNPACK runs);
* seed9 MAE, top-1 and major8 accuracy of the probabilities, computed with each of the two kernel sets, and the
  mean top probability (a flattened output has a lower one);
* faces/s of each file on XNNPACK, batch 1, 1 thread: the best of 3 rounds of 500 calls, the files of a model
  timed in turn in each round.

Usage::

    python experiments/int8_logits.py --data FER2013Valid --calibration-data FER2013Train \\
        [--model ferplus-mfn-0.5 --model ferplus-mfn-1.0] [--leaky-relu op,max] [--num-calibration 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

KERNELS = {"xnnpack": False, "builtin": True}  # label -> builtin_kernels of logit_slope and litert_predictor


def faces_per_second(paths: list[Path], faces: np.ndarray, rounds: int = 3, calls: int = 500) -> list[float]:
    """Batch-1 faces/s of each file on LiteRT's default kernels, 1 thread; best of ``rounds``, files in turn."""
    from ai_edge_litert.interpreter import Interpreter

    interps = [Interpreter(model_path=str(p), num_threads=1) for p in paths]
    for it in interps:
        it.allocate_tensors()
    best = [0.0] * len(paths)
    for _ in range(rounds):
        for k, it in enumerate(interps):
            index = it.get_input_details()[0]["index"]
            for face in faces[:50]:
                it.set_tensor(index, face[None])
                it.invoke()
            start = time.perf_counter()
            for face in faces[:calls]:
                it.set_tensor(index, face[None])
                it.invoke()
            best[k] = max(best[k], calls / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="FER+ split folder to score on (e.g. FER2013Valid)")
    parser.add_argument("--calibration-data", required=True, help="FER+ split folder for calibration faces")
    parser.add_argument("--model", action="append", help="registered name or .keras file (repeatable)")
    parser.add_argument("--leaky-relu", default="op,max", help="comma-separated LeakyReLU forms to export")
    parser.add_argument("--num-calibration", type=int, default=1000)
    args = parser.parse_args()

    from ferlite.datasets import read_ferplus_folder
    from ferlite.evaluate import score
    from ferlite.labels import FERPLUS_CLASSES
    from ferlite.litert import litert_predictor
    from ferlite.modelfile import load_keras_model
    from ferlite.runtime import load_predictor
    from ferlite.training.export import calibration_faces, export_tflite, logit_slope
    from ferlite.weights import resolve_model, sidecar_for

    split = read_ferplus_folder(args.data)
    faces = split.images[..., None]
    calib, _ = calibration_faces(args.calibration_data, args.num_calibration, seed=0)
    print(f"{args.data} ({len(faces)} faces); calibration {len(calib)} faces of {args.calibration_data}; "
          f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count()} CPUs")
    print("| model | file | kernels | slope (calibration) | slope (scored faces) | MAE | top-1 | major8 | mean top p "
          "| faces/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def row(name, label, kernels, slopes, probs, speed=""):
        s = score(split.votes, probs, FERPLUS_CLASSES[:9])
        print(f"| {name} | {label} | {kernels} | {slopes} | {s['mae']:.4f} | {100 * s['top1']:.2f}% "
              f"| {100 * s['major8_acc']:.2f}% | {probs.max(axis=1).mean():.4f} | {speed} |")

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.model or ["ferplus-mfn-0.5", "ferplus-mfn-1.0"]:
            model = load_keras_model(resolve_model(name))
            row(name, "Keras", "", " | ", load_predictor(name).predict(faces))
            files = {}
            for form in args.leaky_relu.split(","):
                for label, correct in (("plain", False), ("corrected", True)):
                    files[f"int8, {form}, {label}"] = export_tflite(
                        name, Path(tmp) / f"{form}-{label}.tflite", "int8", calibration_data=args.calibration_data,
                        num_calibration=args.num_calibration, correct_logits=correct, leaky_relu=form)
            speeds = dict(zip(files, faces_per_second(list(files.values()), faces)))
            for label, path in files.items():
                content = path.read_bytes()
                for kernels, builtin in KERNELS.items():
                    slopes = (f"{logit_slope(model, content, calib, builtin):.4f} | "
                              f"{logit_slope(model, content, faces, builtin):.4f}")
                    speed = f"{speeds[label]:,.0f}" if not builtin else ""
                    probs = litert_predictor(path, sidecar_for(path), builtin_kernels=builtin).predict(faces)
                    row(name, label, kernels, slopes, probs, speed)


if __name__ == "__main__":
    main()
