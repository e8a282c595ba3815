"""``ferlite demo`` / ``ferlite-demo``: annotate faces in photos, folders and videos (as many as given, each in
turn) or a camera stream."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import numpy as np

from ferlite._atomic import atomic_path
from ferlite.bulk import VIDEO_SUFFIXES
from ferlite.cli._once import OnceCommand
from ferlite.cli._options import balance_option
from ferlite.detect import DEFAULT_MIN_SCORE, DETECTORS
from ferlite.images import read_image_with_size
from ferlite.recognizer import Recognizer, scale_results
from ferlite.video import EmotionSmoother, ResultWriter, draw_results, frame_count, frame_shortfall, open_video

WINDOW = "ferlite (q or Esc to quit)"


def _sample_image() -> tuple[np.ndarray, tuple[int, int]]:
    try:
        from skimage.data import astronaut
    except ImportError:
        raise click.ClickException("--sample needs scikit-image, which is not installed: "
                                   "pip install scikit-image") from None
    img = astronaut()
    return img, (img.shape[1], img.shape[0])


class _Screen:
    """An OpenCV window, or nothing when display is off or unavailable (then it says so once)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        if enabled and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                                  or os.environ.get("WAYLAND_DISPLAY")):
            self._off("no display available (DISPLAY is not set)")

    def _off(self, why: str) -> None:
        click.echo(f"note: {why}; continuing as with --no-display", err=True)
        self.enabled = False

    def show(self, frame_bgr: np.ndarray, wait_ms: int) -> bool:
        """Show a frame; False when the user asked to quit (q or Esc)."""
        if not self.enabled:
            return True
        import cv2

        try:
            cv2.imshow(WINDOW, frame_bgr)
            return cv2.waitKey(wait_ms) & 0xFF not in (ord("q"), 27)
        except cv2.error as exc:
            self._off(f"cannot open a window ({str(exc).strip().splitlines()[-1]})")
            return True

    def close(self) -> None:
        if self.enabled:
            import cv2

            cv2.destroyAllWindows()


class _Output:
    """The --output folder, made on first write; annotated images keep their source's name."""

    def __init__(self, folder: str | None) -> None:
        self.folder = Path(folder) if folder else None
        self.used: set[Path] = set()

    def path(self, source: str, suffix: str) -> Path | None:
        """``<stem>_annotated<suffix>``; a name this run already wrote gets the source's extension, then a number."""
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        p = Path(source)
        with_ext = f"{p.stem}_{p.suffix.lstrip('.')}"
        stems = itertools.chain([p.stem, with_ext], (f"{with_ext}_{k}" for k in itertools.count(2)))
        dest = next(d for d in (self.folder / f"{stem}_annotated{suffix}" for stem in stems) if d not in self.used)
        self.used.add(dest)
        return dest


Loader = Callable[[], tuple[np.ndarray, tuple[int, int]]]  # an RGB picture, and its size (w, h) in the file


@dataclasses.dataclass(frozen=True)
class _Source:
    """One thing to annotate: an image (read by ``load``), a video file or a camera (``name`` is its index)."""

    kind: str  # "image", "video" or "camera"
    name: str
    load: Loader | None = None


def _image(path: Path) -> _Source:
    return _Source("image", str(path), lambda: read_image_with_size(path))


def _by_suffix(path: Path) -> _Source:
    """A video when its suffix is a video's (:data:`~ferlite.bulk.VIDEO_SUFFIXES`), else an image."""
    return _Source("video", str(path)) if path.suffix.lower() in VIDEO_SUFFIXES else _image(path)


def _folder(folder: str) -> list[_Source]:
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    if not files:
        raise click.ClickException(f"no files in {folder} (expected images or videos in the folder)")
    return [_by_suffix(p) for p in files]


def _sources(paths: tuple[str, ...], camera: int | None, images: tuple[str, ...], image_dirs: tuple[str, ...],
             videos: tuple[str, ...], sample: bool) -> list[_Source]:
    """Every source, in the order the help gives: --sample, --image, --image-dir, --video, then SOURCE paths."""
    given = [*paths, *images, *image_dirs, *videos, *(["--sample"] if sample else [])]
    if camera is not None:
        if given:
            raise click.UsageError(f"--camera {camera} streams until you quit: give it alone, without "
                                   f"{', '.join(given)}")
        return [_Source("camera", str(camera))]
    if not given:
        raise click.UsageError("give a source: SOURCE paths (images, videos, folders), --image FILE, "
                               "--image-dir DIR, --video FILE, --camera N or --sample")
    sources = [_Source("image", "astronaut", _sample_image)] if sample else []
    sources += [_image(Path(p)) for p in images]
    for folder in image_dirs:
        sources += _folder(folder)
    sources += [_Source("video", v) for v in videos]
    for p in paths:
        sources += _folder(p) if Path(p).is_dir() else [_by_suffix(Path(p))]
    return sources


def _describe(results: list[dict]) -> str:
    return "; ".join(f"{r['top']} {100 * r['emotions'][r['top']]:.0f}% at {tuple(r['box'])}" for r in results)


@dataclasses.dataclass
class _Run:
    """One demo run: the recognizer, where its results go, and what it has annotated so far."""

    rec: Recognizer
    writer: ResultWriter
    output: _Output
    screen: _Screen
    smooth_alpha: float | None  # None: no smoothing
    max_frames: int | None
    read: int = 0  # images read
    skipped: int = 0  # images that could not be read
    faces: int = 0  # faces found in images
    frames: int = 0  # video or camera frames annotated
    quit: bool = False  # the user closed the window (q or Esc): no further source

    def image(self, name: str, load: Loader) -> None:
        """Annotate one image; an unreadable one is skipped and counted.

        A large JPEG decoded reduced (:mod:`ferlite.images`) is annotated at that size; its records hold
        boxes in pixels of the file."""
        import cv2

        try:
            img, size = load()
        except (ValueError, OSError) as exc:
            click.echo(f"skipped {name}: {exc}", err=True)
            self.skipped += 1
            return
        self.read += 1
        if size != (img.shape[1], img.shape[0]):
            click.echo(f"note: {name} is {size[0]}x{size[1]} pixels, decoded and annotated at "
                       f"{img.shape[1]}x{img.shape[0]}; boxes are given in pixels of the file", err=True)
        results = self.rec.analyze(img)
        in_file = scale_results(results, img.shape, size)
        self.faces += len(results)
        self.writer.write(name, 0, in_file)
        click.echo(f"{name}: {len(results)} face(s)" + (f": {_describe(in_file)}" if results else ""))
        annotated = draw_results(img, results)
        dest = self.output.path(name, ".png")
        if dest is not None:
            if not cv2.imwrite(str(dest), annotated):
                raise click.ClickException(f"could not write {dest}")
            click.echo(f"  annotated image: {dest}")
        self.quit = not self.screen.show(annotated, 0)


def _frames(cap) -> Iterator[np.ndarray]:
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's own log lines off (its failed opens log several; the error that follows says what matters)."""
    import cv2

    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(level)


def _open_stream(source: _Source):
    import cv2

    with _opencv_quiet():
        if source.kind == "video":
            try:
                return open_video(source.name)
            except (FileNotFoundError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
        cap = cv2.VideoCapture(int(source.name))
    if not cap.isOpened():
        cap.release()
        raise click.ClickException(f"cannot open camera {source.name}: no camera at that index, or it is busy "
                                   "(try another --camera index, or --image, --video or --sample)")
    return cap


def _run_stream(run: _Run, source: _Source) -> None:
    """Annotate a camera or video stream frame by frame (each stream smoothed on its own).

    The annotated video is written under a temporary name and renamed when the stream ends: a failure
    leaves no partial file. A video file that ends before the frame count of its header is noted; one
    that gives no frame at all is an error.
    """
    import cv2

    video = source.kind == "video"
    name = source.name if video else f"camera{source.name}"
    cap = _open_stream(source)
    smoother = EmotionSmoother(run.smooth_alpha) if run.smooth_alpha is not None else None
    rate, announced = cap.get(cv2.CAP_PROP_FPS) or 25.0, frame_count(cap) if video else 0
    out_video, n, n_faces, t0 = None, 0, 0, time.perf_counter()
    with contextlib.ExitStack() as finished:  # on leaving: the annotated video moved into place, or removed
        try:
            for frame in _frames(cap):
                results = run.rec.analyze(frame, color="bgr")
                if smoother is not None:
                    results = smoother.update(results)
                run.writer.write(name, n, results)
                n += 1
                n_faces += len(results)
                fps = n / max(time.perf_counter() - t0, 1e-9)
                annotated = draw_results(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), results, fps)
                if out_video is None and run.output.folder is not None:
                    dest = run.output.path(name, ".mp4")
                    tmp = finished.enter_context(atomic_path(dest, suffix=".mp4"))
                    out_video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), rate,
                                                (annotated.shape[1], annotated.shape[0]))
                    if not out_video.isOpened():
                        raise click.ClickException(f"could not open {dest} for writing an mp4 video")
                    click.echo(f"annotated video: {dest}")
                if out_video is not None:
                    out_video.write(annotated)
                run.quit = not run.screen.show(annotated, 1)
                if run.quit or (run.max_frames is not None and n >= run.max_frames):
                    break
            else:
                if 0 < n < announced:
                    click.echo(f"note: {n} frame(s) read; {frame_shortfall(name, n, announced, announced)}",
                               err=True)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            run.quit = True
        finally:
            cap.release()
            if out_video is not None:
                out_video.release()
        seconds = time.perf_counter() - t0
        click.echo(f"{name}: {n} frame(s), {n_faces} face(s), {n / max(seconds, 1e-9):.1f} FPS end to end")
        if n == 0:
            raise click.ClickException(frame_shortfall(name, 0, announced, announced) if video else
                                       f"no frame could be read from {name}")
    run.frames += n


_HELP = f"""Detect faces and show their expressions in each SOURCE: an image, a video (by its suffix:
{' '.join(VIDEO_SUFFIXES)}) or a folder of them; or --image, --image-dir, --video, --sample, --camera.

Sources are annotated in this order: --sample, each --image, each --image-dir, each --video, then each
SOURCE as given. A video that cannot be opened stops the demo before anything is annotated."""


@click.command(cls=OnceCommand, help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path(exists=True), metavar="[SOURCE]...")
@click.option("--camera", type=click.IntRange(min=0), default=None,
              help="Camera index to read from (e.g. 0); give it alone.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="An image file; repeat for several.")
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="A folder: its images and videos, in name order (unreadable images are skipped and counted); "
                   "repeat for several.")
@click.option("--video", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="A video file; repeat for several.")
@click.option("--sample", is_flag=True, help="scikit-image's astronaut() photo: needs no file.")
@click.option("--model", default=None,
              help="Registered name, alias (fast, default) or .keras/.tflite path  [default: the bundled model]")
@click.option("--detector", type=click.Choice(DETECTORS), default="auto", show_default=True,
              help="Face detector; auto is yunet (bundled); mediapipe needs the mediapipe extra.")
@click.option("--margin", type=float, default=None,
              help="Crop margin per side, a fraction of the face box  [default: the detector's measured one]")
@click.option("--min-score", type=click.FloatRange(0.0, 1.0), default=DEFAULT_MIN_SCORE, show_default=True,
              help="Minimum detection score (YuNet, MediaPipe).")
@balance_option()
@click.option("--smooth", is_flag=True,
              help="Video/camera: smooth each face's probabilities over frames (EMA), each video on its own.")
@click.option("--smooth-alpha", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="Weight of the newest frame in --smooth.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None,
              help="Video/camera: stop each after N frames.")
@click.option("--no-display", is_flag=True, help="Do not open a window.")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder for annotated images (PNG) and videos (MP4).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write one row per face: source, frame, box, score, top, probabilities.")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False), default=None,
              help="Write one JSON object per face.")
def demo_cmd(paths, camera, image, image_dir, video, sample, model, detector, margin, min_score, balance, smooth,
             smooth_alpha, max_frames, no_display, output, csv_path, jsonl_path) -> None:
    """Annotate faces and their expressions in images, videos and folders of them, a camera or --sample."""
    sources = _sources(paths, camera, image, image_dir, video, sample)
    for source in sources:
        if source.kind == "video":  # each video checked before the model loads: one that cannot be played fails now
            _open_stream(source).release()
    try:
        rec = Recognizer.from_pretrained(model, detector=detector, min_score=min_score, balance=balance)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            name = rec.detector.name
        for w in caught:
            click.echo(f"note: {w.message}", err=True)
        if margin is not None:
            rec.geometry = dataclasses.replace(rec.crop_geometry, margin=margin)
    except (FileNotFoundError, ValueError, OSError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"model {rec.predictor.path.name} ({rec.predictor.backend}), detector {name}, balance {rec.balance:g}")
    try:
        writer = ResultWriter(rec.classes, csv_path=csv_path, jsonl_path=jsonl_path)
    except OSError as exc:
        raise click.ClickException(f"cannot write the --csv/--jsonl file: {exc}") from exc
    run = _Run(rec, writer, _Output(output), _Screen(not no_display), smooth_alpha if smooth else None, max_frames)
    ok = False
    try:
        for source in sources:
            if source.kind == "image":
                run.image(source.name, source.load)
            else:
                _run_stream(run, source)
            if run.quit:
                break
        if run.read or run.skipped:
            click.echo(f"{run.read} image(s) read, {run.skipped} skipped, {run.faces} face(s) found")
        ok = run.read + run.frames > 0
        if not ok:
            raise click.ClickException("no image could be read")
    finally:
        run.screen.close()
        if ok:
            writer.close()
        else:
            writer.discard()
    for p in writer.paths:
        click.echo(f"{writer.rows} face record(s) written to {p}")
