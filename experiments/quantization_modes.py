"""Where int8 loses accuracy: a model converted four ways, scored and timed side by side.

Rows, for one Keras model (``--model``, a registered name or ``.keras`` file; default ``ferplus-mfn-0.5``):

* ``keras``: the model itself (batched ``predict``; scored, not timed);
* ``weights int8``: dynamic-range quantization, int8 weights and float activations (no calibration);
* ``int16 activations``: int8 weights and 16-bit activations (TFLite's 16x8 mode, calibrated);
* ``int8``: int8 weights and activations, float input and output, calibrated as ``ferlite export`` does
  (``--num-calibration`` faces of ``--calibration-data``, seed 0).

Each TFLite row is scored on a FER+ split (``--data``: seed9 MAE and top-1, major8 accuracy) one face per
call, and timed on LiteRT with 1 thread: faces/s over ``--repeats`` calls after 50 warm-up calls, the rows
timed in alternating order over ``--rounds`` rounds (best round shown). A row that holds up in accuracy
but not in speed is no deployment option; the comparison says which part of the model int8 hurts.

Usage::

    python experiments/quantization_modes.py --data FER2013Valid --calibration-data FER2013Train \\
        [--model ferplus-mfn-0.5] [--num-calibration 1000] [--repeats 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def convert(model, mode: str, faces: np.ndarray) -> bytes:
    """``model`` (float input) as TFLite in ``mode``: 'weights int8', 'int16 activations' or 'int8'."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode != "weights int8":
        converter.representative_dataset = lambda: ([f[None].astype(np.float32)] for f in faces)
    if mode == "int16 activations":
        ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [ops]
    elif mode == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


class Runner:
    """One TFLite model on LiteRT, 1 thread, one face a call."""

    def __init__(self, content: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_content=content, num_threads=1)
        self.it.allocate_tensors()
        self.inp, self.out = self.it.get_input_details()[0]["index"], self.it.get_output_details()[0]["index"]

    def __call__(self, face: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self.inp, face[None])
        self.it.invoke()
        return self.it.get_tensor(self.out)[0]

    def faces_per_second(self, faces: np.ndarray) -> float:
        for face in faces[:50]:
            self(face)
        start = time.perf_counter()
        for face in faces:
            self(face)
        return len(faces) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="FER+ split folder to score on (e.g. FER2013Valid)")
    parser.add_argument("--calibration-data", required=True, help="FER+ split folder for calibration faces")
    parser.add_argument("--model", default="ferplus-mfn-0.5", help="registered name or .keras file")
    parser.add_argument("--num-calibration", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from ferlite.datasets import read_ferplus_folder
    from ferlite.evaluate import score
    from ferlite.labels import FERPLUS_CLASSES
    from ferlite.modelfile import load_keras_model
    from ferlite.runtime import load_predictor
    from ferlite.training.export import _float_input_twin, calibration_faces
    from ferlite.weights import resolve_model

    split = read_ferplus_folder(args.data)
    x = split.images[..., None].astype(np.float32)
    path = resolve_model(args.model)
    calib, _ = calibration_faces(args.calibration_data, args.num_calibration, seed=0)
    model = _float_input_twin(load_keras_model(path))
    runners = {mode: Runner(convert(model, mode, calib)) for mode in ("weights int8", "int16 activations", "int8")}
    probs = {"keras": load_predictor(path).predict(split.images[..., None])}
    probs.update({mode: np.stack([run(face) for face in x]) for mode, run in runners.items()})
    speed = {mode: 0.0 for mode in runners}
    timed = x[: args.repeats]
    for r in range(args.rounds):
        for mode in (list(runners) if r % 2 == 0 else list(runners)[::-1]):
            speed[mode] = max(speed[mode], runners[mode].faces_per_second(timed))

    print(f"{path.name} on {args.data} ({len(x)} faces); {platform.machine()}, {os.cpu_count()} CPUs; "
          f"calibration {len(calib)} faces; best of {args.rounds} rounds of {len(timed)} calls, 1 thread")
    print("| conversion | valid MAE | top-1 | major8 | faces/s (1 thread) |\n| --- | --- | --- | --- | --- |")
    for mode, p in probs.items():
        s = score(split.votes, p, FERPLUS_CLASSES[:9])
        rate = f"{speed[mode]:,.0f}" if mode in speed else ""
        print(f"| {mode} | {s['mae']:.4f} | {100 * s['top1']:.2f}% | {100 * s['major8_acc']:.2f}% | {rate} |")


if __name__ == "__main__":
    main()
