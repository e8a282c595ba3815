"""Bulk annotation on Ray Data: a folder, a glob, a list of paths or a video in, one Parquet file out.

:func:`annotate` resolves its input to files (:func:`resolve_inputs`) and cuts them into work items
of up to ``batch_size`` pictures (images, or a range of frames of one video). Ray Data feeds the items
to ``map_batches`` on a pool of actors that each load one :class:`~ferlite.recognizer.Recognizer` once,
read and decode their own images (:func:`~ferlite.recognizer.read_image`) and video frames (OpenCV,
seeking to the range's first frame) and run :meth:`~ferlite.recognizer.Recognizer.analyze`, so every
row equals what ``analyze`` gives for that picture. Rows stream back to the driver into one Parquet
file, written beside the output and renamed into place at the end. Its columns: ``source`` (the
file's absolute path), ``frame`` (0 for images), ``face`` (0, 1, ... largest first), ``x y w h``
(the box in pixels), ``score`` (detection), one float32 column per model class, and ``error``: an
unreadable input gives one row with ``face`` -1, the reason in ``error`` and nulls elsewhere.

Ray is an optional extra (``pip install "ferlite[bulk]"``); it is imported only inside the functions
that run a job, never when ferlite (or this module) is imported.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ferlite._atomic import atomic_path

__all__ = ["VIDEO_SUFFIXES", "BulkSummary", "resolve_inputs", "annotate"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
LIST_SUFFIX = ".txt"
INSTALL_HINT = 'pip install "ferlite[bulk]"'
_EXPECTED_INPUT = (f"a folder, a glob pattern, a text file of paths ({LIST_SUFFIX}, one per line), "
                   f"an image or a video file ({' '.join(VIDEO_SUFFIXES)})")
_ROWS_PER_GROUP = 8192  # Parquet row group size: rows gathered from the actors before each write


@dataclass(frozen=True)
class BulkSummary:
    """What one :func:`annotate` run did.

    Attributes:
        inputs: files the input resolved to.
        images: still images decoded.
        frames: video frames decoded.
        faces: face rows written.
        unreadable: inputs that could not be read or decoded (one row each, with ``error`` set).
        no_face: images and frames in which no face was found (they give no row).
        detector: the face detector every actor used (``yunet`` or ``mediapipe``).
        output: the Parquet file written.
        seconds: wall time of the whole run, Ray start-up included.
    """

    inputs: int
    images: int
    frames: int
    faces: int
    unreadable: int
    no_face: int
    detector: str
    output: str
    seconds: float

    def to_json(self) -> dict:
        """The summary as a JSON-serialisable dict."""
        return asdict(self)


def resolve_inputs(source: str | os.PathLike) -> list[str]:
    """The files ``source`` names, as absolute paths, in order.

    ``source`` is a folder (its files, sorted by name, not recursive), a text file ending in ``.txt``
    (one path per line, relative to the text file's folder; blank lines ignored), a glob pattern
    (``**`` recurses; matching files sorted), or one image or video file. Files that are not images
    are kept: they are reported as unreadable, not dropped.

    Raises:
        FileNotFoundError: no such path, and it is not a glob pattern.
        ValueError: an empty folder or path list, or a glob that matches no file.
    """
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        if not files:
            raise ValueError(f"folder {text!r} holds no files (expected image or video files in it)")
    elif path.is_file() and path.suffix.lower() == LIST_SUFFIX:
        files = [path.parent / line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not files:
            raise ValueError(f"path list {text!r} is empty (expected one image or video path per line)")
    elif path.is_file():
        files = [path]
    elif any(c in text for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not files:
            raise ValueError(f"the glob pattern {text!r} matches no file (expected it to match image or video files)")
    else:
        raise FileNotFoundError(f"input not found: {text!r} (expected {_EXPECTED_INPUT})")
    return [os.path.abspath(p) for p in files]


def _is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _video_items(path: str, frames_per_item: int) -> list[dict]:
    """Work items for one video: frame ranges [start, stop) (stop -1: to the end), or one item with its error."""
    from ferlite.video import frame_count, open_video

    try:
        cap = open_video(path)
    except (OSError, ValueError) as exc:
        return [{"paths": [path], "video": True, "start": 0, "stop": 0, "error": str(exc)}]
    try:
        count = frame_count(cap)
    finally:
        cap.release()
    if count <= 0:  # unknown length: one item reads it all
        return [{"paths": [path], "video": True, "start": 0, "stop": -1, "error": ""}]
    return [{"paths": [path], "video": True, "start": s, "stop": min(s + frames_per_item, count), "error": ""}
            for s in range(0, count, frames_per_item)]


def _work_items(paths: Sequence[str], batch_size: int) -> list[dict]:
    """Items of up to ``batch_size`` pictures each, in input order: runs of images, or frame ranges of a video."""
    items: list[dict] = []
    images: list[str] = []

    def flush() -> None:
        items.extend({"paths": images[i:i + batch_size], "video": False, "start": 0, "stop": 0, "error": ""}
                     for i in range(0, len(images), batch_size))
        images.clear()

    for p in paths:
        if _is_video(p):
            flush()
            items.extend(_video_items(p, batch_size))
        else:
            images.append(p)
    flush()
    return items


Picture = tuple[str, int, "np.ndarray | None", "tuple[int, int] | None", "str | None"]


def _pictures(item: dict) -> Iterator[Picture]:
    """``(source, frame, rgb, size, error)`` for each picture of a work item: ``rgb`` and ``size`` (its width
    and height in the file, larger than ``rgb`` for a large JPEG decoded reduced) are None where ``error`` is set.

    A frame range that a video does not hold (its file ends before the frame count of its header) gives one
    row with ``error`` set at its first missing frame."""
    import cv2

    from ferlite.images import read_image_with_size
    from ferlite.video import frame_count, frame_shortfall, open_video

    paths = [str(p) for p in item["paths"]]
    if item["error"]:
        yield paths[0], 0, None, None, str(item["error"])
        return
    if not item["video"]:
        for p in paths:
            try:
                rgb, size = read_image_with_size(p)
                yield p, 0, rgb, size, None
            except (OSError, ValueError, cv2.error) as exc:
                yield p, 0, None, None, str(exc)
        return
    path, start, stop = paths[0], int(item["start"]), int(item["stop"])
    try:
        cap = open_video(path)
    except (OSError, ValueError) as exc:
        yield path, start, None, None, str(exc)
        return
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frame = start
        while stop < 0 or frame < stop:
            ok, bgr = cap.read()
            if not ok:
                break
            yield path, frame, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, None
            frame += 1
        if frame < stop or frame == 0:
            yield path, frame, None, None, frame_shortfall(path, frame, max(stop, frame), frame_count(cap))
    finally:
        cap.release()


def _schema(classes: Sequence[str]):
    """The Parquet schema of a model with these output classes."""
    import pyarrow as pa

    fields = [("source", pa.string()), ("frame", pa.int64()), ("face", pa.int64()),
              *((k, pa.int64()) for k in "xywh"), ("score", pa.float32())]
    return pa.schema([*fields, *((c, pa.float32()) for c in classes), ("error", pa.string())])


class _Annotator:
    """A Ray Data actor: one Recognizer, loaded once; a batch of work items in, a table of rows out.

    Each face gives a row (``face`` 0, 1, ... largest first); an unreadable picture gives a row with
    ``face`` -1 and ``error`` set; a picture without faces gives a row with ``face`` -1 and no error,
    which the driver counts and drops.
    """

    def __init__(self, model: str | None, detector: str) -> None:
        from ferlite.recognizer import Recognizer

        self.recognizer = Recognizer.from_pretrained(model, detector=detector)
        self.schema = _schema(self.recognizer.classes)

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        from ferlite.recognizer import scale_results

        rows: list[dict] = []
        for i in range(len(batch["paths"])):
            item = {k: v[i] for k, v in batch.items()}
            for source, frame, rgb, size, error in _pictures(item):
                results = [] if rgb is None else self.recognizer.analyze(rgb)
                if size is not None:
                    results = scale_results(results, rgb.shape, size)
                if not results:
                    rows.append({"source": source, "frame": frame, "face": -1, "error": error})
                for face, r in enumerate(results):
                    x, y, w, h = r["box"]
                    rows.append({"source": source, "frame": frame, "face": face, "x": x, "y": y, "w": w, "h": h,
                                 "score": r["score"], **r["emotions"]})
        return pa.Table.from_pylist(rows, schema=self.schema)


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (ray without its data extra lacks pyarrow and friends)
    except ImportError as exc:
        raise ImportError(f"bulk annotation needs Ray Data (ray[data]), which is not installed: {INSTALL_HINT}") \
            from exc
    return ray


def _start_ray(ray, address: str | None) -> bool:
    """Connect to ``address``, or start a local Ray on this machine's cores; False if Ray was already running."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    return True


def _one_detector(detector: str) -> str:
    """The detector every actor uses (``auto`` resolved here, once); ValueError for an unknown name."""
    from ferlite.detect import FaceDetectorOptions

    return FaceDetectorOptions(detector=detector).resolved


def _check_output(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise IsADirectoryError(f"output {str(out)!r} is a folder; expected the path of a .parquet file to write")
    if out.exists() and not overwrite:
        raise FileExistsError(f"output {str(out)!r} already exists; pass --overwrite (overwrite=True) to replace it")


def _write_parquet(tables: Iterable, out: Path, videos: set[str]) -> dict[str, int]:
    """Stream result tables into ``out`` (atomically: a temporary file beside it, then renamed); return the counts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def count(mask) -> int:
        return int(pc.sum(mask).as_py() or 0)

    counts = dict.fromkeys(("images", "frames", "faces", "unreadable", "no_face"), 0)
    video_set = pa.array(sorted(videos), pa.string())
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        writer = None
        try:
            for table in tables:
                failed = table["error"].is_valid()
                no_face = pc.and_(pc.equal(table["face"], -1), pc.invert(failed))
                picture = pc.or_(pc.equal(table["face"], 0), no_face)
                in_video = pc.is_in(table["source"], value_set=video_set)
                counts["images"] += count(pc.and_(picture, pc.invert(in_video)))
                counts["frames"] += count(pc.and_(picture, in_video))
                counts["faces"] += count(pc.greater_equal(table["face"], 0))
                counts["unreadable"] += count(failed)
                counts["no_face"] += count(no_face)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.filter(pc.invert(no_face)))
            if writer is None:
                raise RuntimeError("the Ray job returned no rows; nothing was written")
        finally:
            if writer is not None:
                writer.close()
    return counts


def annotate(inputs: str | os.PathLike, output: str | os.PathLike, *, address: str | None = None,
             model: str | os.PathLike | None = None, detector: str = "auto", num_actors: int | None = None,
             batch_size: int = 16, overwrite: bool = False) -> BulkSummary:
    """Detect and classify every face in ``inputs`` on Ray Data and write one Parquet file at ``output``.

    Args:
        inputs: a folder, a glob pattern, a ``.txt`` list of paths, an image or a video (:func:`resolve_inputs`).
        output: the Parquet file to write (its columns: see the module's description).
        address: a Ray cluster to run on (``ray.init(address=...)``); None starts a local Ray on this machine's
            cores and stops it afterwards. A Ray already initialised in this process is used as it is.
        model: registered weights name or ``.keras``/``.tflite`` path; None: the default float16 TFLite model.
        detector: one of :data:`ferlite.detect.DETECTORS` (``auto``: the default, YuNet), used by every
            actor (an actor that cannot load it fails the job).
        num_actors: actors in the pool, each holding one loaded model (None: one per CPU of the cluster).
        batch_size: pictures (images or video frames) per work item, i.e. per actor call.
        overwrite: replace an existing ``output`` instead of refusing.

    Raises:
        ImportError: Ray Data is not installed (the message says ``pip install "ferlite[bulk]"``).
        FileExistsError: ``output`` exists and ``overwrite`` is False.
        FileNotFoundError / ValueError: the input names no file, or an invalid model, detector or count.
        RuntimeError: the Ray job failed, e.g. an actor could not load the model (the message holds the
            workers' traceback); nothing is written then.
    """
    from ferlite.weights import DEFAULT_INFERENCE_MODEL, resolve_model

    t0 = time.perf_counter()
    out = Path(output)
    _check_output(out, overwrite)
    for name, value in (("batch_size", batch_size), ("num_actors", num_actors)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    detector = _one_detector(detector)
    ray = _import_ray()
    paths = [p for p in resolve_inputs(inputs) if p != os.path.abspath(out)]
    if not paths:
        raise ValueError(f"input {os.fspath(inputs)!r} holds nothing but the output file {str(out)!r}")
    resolved = resolve_model(DEFAULT_INFERENCE_MODEL if model is None else model)  # fails early on a bad name
    if model is not None and Path(model).is_file():
        model = str(resolved.absolute())  # actors may run in another working directory
    started = _start_ray(ray, address)
    try:
        items = _work_items(paths, batch_size)
        actors = num_actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds.context.print_on_execution_start = False
        ds.context.execution_options.preserve_order = True  # rows in input order
        ds = ds.map_batches(_Annotator, fn_constructor_kwargs={"model": None if model is None else str(model),
                                                               "detector": detector},
                            batch_size=1, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=min(actors, len(items))))
        tables = ds.iter_batches(batch_size=_ROWS_PER_GROUP, batch_format="pyarrow")
        counts = _write_parquet(tables, out, {p for p in paths if _is_video(p)})
    except ray.exceptions.RayError as exc:
        raise RuntimeError(f"the Ray job failed; nothing was written to {str(out)!r}. {exc}") from exc
    finally:
        if started:
            ray.shutdown()
    return BulkSummary(inputs=len(paths), **counts, detector=detector, output=str(out),
                       seconds=time.perf_counter() - t0)
