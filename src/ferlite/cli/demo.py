"""``ferlite demo`` / ``ferlite-demo``: annotate faces in a photo, a folder, a video or a camera stream."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import numpy as np

from ferlite._atomic import atomic_path
from ferlite.detect import DEFAULT_MIN_SCORE
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
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        p = Path(source)
        dest = self.folder / f"{p.stem}_annotated{suffix}"
        if dest in self.used:
            dest = self.folder / f"{p.stem}_{p.suffix.lstrip('.')}_annotated{suffix}"
        self.used.add(dest)
        return dest


Loader = Callable[[], tuple[np.ndarray, tuple[int, int]]]  # an RGB picture, and its size (w, h) in the file


def _images(image: str | None, image_dir: str | None, sample: bool) -> list[tuple[str, Loader]]:
    if sample:
        return [("astronaut", _sample_image)]
    if image:
        return [(image, lambda: read_image_with_size(image))]
    files = sorted(p for p in Path(image_dir).iterdir() if p.is_file())
    if not files:
        raise click.ClickException(f"no files in {image_dir}")
    return [(str(p), (lambda p=p: read_image_with_size(p))) for p in files]


def _describe(results: list[dict]) -> str:
    return "; ".join(f"{r['top']} {100 * r['emotions'][r['top']]:.0f}% at {tuple(r['box'])}" for r in results)


def _run_images(rec: Recognizer, items, writer: ResultWriter, output: _Output, screen: _Screen) -> int:
    """Annotate each image; return how many could be read.

    A large JPEG decoded reduced (:mod:`ferlite.images`) is annotated at that size; its records hold
    boxes in pixels of the file."""
    import cv2

    read, skipped, n_faces = 0, 0, 0
    for name, load in items:
        try:
            img, size = load()
        except (ValueError, OSError) as exc:
            click.echo(f"skipped {name}: {exc}", err=True)
            skipped += 1
            continue
        read += 1
        if size != (img.shape[1], img.shape[0]):
            click.echo(f"note: {name} is {size[0]}x{size[1]} pixels, decoded and annotated at "
                       f"{img.shape[1]}x{img.shape[0]}; boxes are given in pixels of the file", err=True)
        results = rec.analyze(img)
        in_file = scale_results(results, img.shape, size)
        n_faces += len(results)
        writer.write(name, 0, in_file)
        click.echo(f"{name}: {len(results)} face(s)" + (f": {_describe(in_file)}" if results else ""))
        annotated = draw_results(img, results)
        dest = output.path(name, ".png")
        if dest is not None:
            if not cv2.imwrite(str(dest), annotated):
                raise click.ClickException(f"could not write {dest}")
            click.echo(f"  annotated image: {dest}")
        if not screen.show(annotated, 0):
            break
    click.echo(f"{read} image(s) read, {skipped} skipped, {n_faces} face(s) found")
    return read


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


def _open_stream(camera: int | None, video: str | None):
    import cv2

    with _opencv_quiet():
        if camera is None:
            try:
                return open_video(video)
            except (FileNotFoundError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
        cap = cv2.VideoCapture(camera)
    if not cap.isOpened():
        cap.release()
        raise click.ClickException(f"cannot open camera {camera}: no camera at that index, or it is busy "
                                   "(try another --camera index, or --image, --video or --sample)")
    return cap


def _run_stream(rec: Recognizer, camera: int | None, video: str | None, writer: ResultWriter, output: _Output,
                screen: _Screen, smoother: EmotionSmoother | None, max_frames: int | None) -> int:
    """Annotate a camera or video stream frame by frame; return the number of frames.

    The annotated video is written under a temporary name and renamed when the stream ends: a failure
    leaves no partial file. A video file that ends before the frame count of its header is noted.
    """
    import cv2

    source = f"camera{camera}" if camera is not None else video
    cap = _open_stream(camera, video)
    rate, announced = cap.get(cv2.CAP_PROP_FPS) or 25.0, frame_count(cap) if video else 0
    out_video, n, n_faces, t0 = None, 0, 0, time.perf_counter()
    with contextlib.ExitStack() as finished:  # on leaving: the annotated video moved into place, or removed
        try:
            for frame in _frames(cap):
                results = rec.analyze(frame, color="bgr")
                if smoother is not None:
                    results = smoother.update(results)
                writer.write(source, n, results)
                n += 1
                n_faces += len(results)
                fps = n / max(time.perf_counter() - t0, 1e-9)
                annotated = draw_results(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), results, fps)
                if out_video is None and output.folder is not None:
                    dest = output.path(source, ".mp4")
                    tmp = finished.enter_context(atomic_path(dest, suffix=".mp4"))
                    out_video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), rate,
                                                (annotated.shape[1], annotated.shape[0]))
                    if not out_video.isOpened():
                        raise click.ClickException(f"could not open {dest} for writing an mp4 video")
                    click.echo(f"annotated video: {dest}")
                if out_video is not None:
                    out_video.write(annotated)
                if not screen.show(annotated, 1) or (max_frames is not None and n >= max_frames):
                    break
            else:
                if 0 < n < announced:
                    click.echo(f"note: {n} frame(s) read; {frame_shortfall(source, n, announced, announced)}",
                               err=True)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
        finally:
            cap.release()
            if out_video is not None:
                out_video.release()
        seconds = time.perf_counter() - t0
        click.echo(f"{source}: {n} frame(s), {n_faces} face(s), {n / max(seconds, 1e-9):.1f} FPS end to end")
        if n == 0:
            raise click.ClickException(frame_shortfall(source, 0, announced, announced) if video else
                                       f"no frame could be read from {source}")
    return n


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--camera", type=click.IntRange(min=0), default=None, help="Camera index to read from (e.g. 0).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), default=None, help="One image file.")
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder of images (unreadable files are skipped and counted).")
@click.option("--video", type=click.Path(exists=True, dir_okay=False), default=None, help="A video file.")
@click.option("--sample", is_flag=True, help="scikit-image's astronaut() photo: needs no file.")
@click.option("--model", default=None,
              help="Registered name, alias (fast, default) or .keras/.tflite path  [default: the bundled model]")
@click.option("--detector", type=click.Choice(["auto", "mediapipe", "haar"]), default="auto", show_default=True,
              help="Face detector; auto falls back to haar when MediaPipe's model cannot be had.")
@click.option("--margin", type=float, default=None,
              help="Crop margin per side, a fraction of the face box  [default: the detector's measured one]")
@click.option("--min-score", type=click.FloatRange(0.0, 1.0), default=DEFAULT_MIN_SCORE, show_default=True,
              help="Minimum detection score (MediaPipe).")
@click.option("--smooth", is_flag=True, help="Video/camera: smooth each face's probabilities over frames (EMA).")
@click.option("--smooth-alpha", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5, show_default=True,
              help="Weight of the newest frame in --smooth.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Video/camera: stop after N frames.")
@click.option("--no-display", is_flag=True, help="Do not open a window.")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder for annotated images (PNG) or an annotated video (MP4).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Write one row per face: source, frame, box, score, top, probabilities.")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False), default=None,
              help="Write one JSON object per face.")
def demo_cmd(camera, image, image_dir, video, sample, model, detector, margin, min_score, smooth, smooth_alpha,
             max_frames, no_display, output, csv_path, jsonl_path) -> None:
    """Detect faces and show their expressions: a camera, an image, a folder of images, a video or --sample."""
    chosen = [camera is not None, bool(image), bool(image_dir), bool(video), sample]
    if sum(chosen) != 1:
        raise click.UsageError("give exactly one source: --camera N, --image FILE, --image-dir DIR, --video FILE "
                               "or --sample")
    items = None if camera is not None or video else _images(image, image_dir, sample)
    try:
        rec = Recognizer.from_pretrained(model, detector=detector, min_score=min_score)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            name = rec.detector.name
        for w in caught:
            click.echo(f"note: {w.message}", err=True)
        if margin is not None:
            rec.geometry = dataclasses.replace(rec.crop_geometry, margin=margin)
    except (FileNotFoundError, ValueError, OSError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"model {rec.predictor.path.name} ({rec.predictor.backend}), detector {name}")
    screen, out = _Screen(not no_display), _Output(output)
    try:
        writer = ResultWriter(rec.classes, csv_path=csv_path, jsonl_path=jsonl_path)
    except OSError as exc:
        raise click.ClickException(f"cannot write the --csv/--jsonl file: {exc}") from exc
    ok = False
    try:
        if items is None:
            smoother = EmotionSmoother(smooth_alpha) if smooth else None
            ok = _run_stream(rec, camera, video, writer, out, screen, smoother, max_frames) > 0
        else:
            ok = _run_images(rec, items, writer, out, screen) > 0
            if not ok:
                raise click.ClickException("no image could be read")
    finally:
        screen.close()
        if ok:
            writer.close()
        else:
            writer.discard()
    for p in writer.paths:
        click.echo(f"{writer.rows} face record(s) written to {p}")
