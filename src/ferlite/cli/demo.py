"""``ferlite demo`` / ``ferlite-demo``: annotate faces in a photo, a folder, a video or a camera stream."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import click
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


class Smoother:
    """Exponential moving average of each face's probabilities, faces matched across frames by box IoU."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.tracks: list[tuple[tuple, np.ndarray]] = []

    def update(self, results: list[dict]) -> list[dict]:
        """Smooth ``results`` of one frame in place and return them."""
        new_tracks = []
        for r in results:
            probs = np.array(list(r["emotions"].values()))
            best = max(self.tracks, key=lambda t: _iou(t[0], r["box"]), default=None)
            if best is not None and _iou(best[0], r["box"]) > 0.3:
                probs = self.alpha * probs + (1 - self.alpha) * best[1]
            r["emotions"] = dict(zip(r["emotions"], map(float, probs)))
            r["top"] = max(r["emotions"], key=r["emotions"].get)
            new_tracks.append((r["box"], probs))
        self.tracks = new_tracks
        return results


def draw(image_rgb: np.ndarray, results: list[dict], fps: float | None = None) -> np.ndarray:
    """Boxes, top emotion with its percentage, and small per-class bars, drawn on a BGR copy."""
    import cv2

    out = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    scale = max(0.4, out.shape[1] / 1000)
    for r in results:
        x, y, w, h = r["box"]
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 220, 0), 2)
        label = f"{r['top']} {100 * r['emotions'][r['top']]:.0f}%"
        cv2.putText(out, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 220, 0), 2)
        bar_x, bar_w = x + w + 4, int(60 * scale)
        for i, (name, p) in enumerate(r["emotions"].items()):
            yy = y + int(i * 14 * scale)
            cv2.rectangle(out, (bar_x, yy), (bar_x + int(bar_w * p), yy + int(10 * scale)), (0, 180, 255), -1)
            cv2.putText(out, name[:4], (bar_x + bar_w + 2, yy + int(10 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35 * scale, (255, 255, 255), 1)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
    return out


class Sinks:
    """CSV / JSONL writers, one row per face, flushed as they go."""

    def __init__(self, csv_path: str | None, jsonl_path: str | None, classes) -> None:
        self.classes = list(classes)
        self._csv_file = open(csv_path, "w", newline="") if csv_path else None
        self._csv = csv.writer(self._csv_file) if self._csv_file else None
        if self._csv:
            self._csv.writerow(["source", "frame", "face", "x", "y", "w", "h", "score", "top", *self.classes])
        self._jsonl = open(jsonl_path, "w") if jsonl_path else None

    def write(self, source: str, frame: int, results: list[dict]) -> None:
        """Write the faces of one image or frame."""
        for i, r in enumerate(results):
            probs = [r["emotions"][c] for c in self.classes]
            if self._csv:
                self._csv.writerow([source, frame, i, *r["box"], f"{r['score']:.4f}", r["top"],
                                    *(f"{p:.6f}" for p in probs)])
                self._csv_file.flush()
            if self._jsonl:
                self._jsonl.write(json.dumps({"source": source, "frame": frame, "face": i, "box": list(r["box"]),
                                              "score": r["score"], "top": r["top"], "emotions": r["emotions"]}) + "\n")
                self._jsonl.flush()

    def close(self) -> None:
        """Close the files."""
        for f in (self._csv_file, self._jsonl):
            if f:
                f.close()


def _sample_image() -> np.ndarray:
    try:
        from skimage.data import astronaut
    except ImportError:
        raise click.ClickException("--sample needs scikit-image: pip install scikit-image") from None
    return astronaut()


def _display(window: str, frame_bgr: np.ndarray) -> bool:
    """Show a frame; False when the user pressed q/Esc or no display is available."""
    import cv2

    try:
        cv2.imshow(window, frame_bgr)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
    except cv2.error:
        return False


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--camera", type=int, default=None, help="Camera index to read from.")
@click.option("--image", type=click.Path(dir_okay=False), default=None, help="One image file.")
@click.option("--image-dir", type=click.Path(file_okay=False), default=None, help="A folder of images.")
@click.option("--video", type=click.Path(dir_okay=False), default=None, help="A video file.")
@click.option("--sample", is_flag=True, help="scikit-image's astronaut() photo (needs no file).")
@click.option("--model", default=None, help="Registered name or .keras/.tflite path (default: the bundled model).")
@click.option("--detector", type=click.Choice(["auto", "mediapipe", "haar"]), default="auto", show_default=True)
@click.option("--margin", type=float, default=None, help="Crop margin around the detected box (fraction).")
@click.option("--min-score", type=float, default=0.5, show_default=True, help="Minimum detection score.")
@click.option("--smooth", type=float, default=None, help="Video: EMA weight of the new frame (e.g. 0.3).")
@click.option("--no-display", is_flag=True, help="Do not open a window.")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder for annotated images / an annotated video.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Write one row per face.")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False), default=None, help="Write one JSON per face.")
def demo_cmd(camera, image, image_dir, video, sample, model, detector, margin, min_score, smooth, no_display, output,
             csv_path, jsonl_path) -> None:
    """Detect faces and show their expressions on a camera, an image, a folder of images or a video."""
    import cv2

    from ferlite.detect import CropGeometry
    from ferlite.recognizer import Recognizer, read_image

    chosen = [s for s in (camera is not None, image, image_dir, video, sample) if s]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one source: --camera N, --image FILE, --image-dir DIR, --video FILE "
                               "or --sample")
    geometry = CropGeometry(margin=margin) if margin is not None else None
    try:
        rec = Recognizer.from_pretrained(model, detector=detector, min_score=min_score, geometry=geometry)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    out_dir = Path(output) if output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    sinks = Sinks(csv_path, jsonl_path, rec.classes)
    display = not no_display
    try:
        if camera is not None or video:
            _run_stream(rec, camera, video, sinks, out_dir, display, smooth)
            return
        if sample:
            items = [("astronaut", _sample_image)]
        elif image:
            items = [(image, lambda: read_image(image))]
        else:
            files = sorted(p for p in Path(image_dir).iterdir() if p.is_file())
            items = [(str(p), (lambda p=p: read_image(p))) for p in files]
        read, bad, n_faces = 0, 0, 0
        for name, load in items:
            try:
                img = load()
            except (ValueError, FileNotFoundError) as exc:
                click.echo(f"skipped {name}: {exc}", err=True)
                bad += 1
                continue
            read += 1
            results = rec.analyze(img)
            n_faces += len(results)
            sinks.write(name, 0, results)
            tops = ", ".join(f"{r['top']} {100 * r['emotions'][r['top']]:.0f}% at {r['box']}" for r in results)
            click.echo(f"{name}: {len(results)} face(s){': ' + tops if tops else ''}")
            annotated = draw(img, results)
            if out_dir:
                dest = out_dir / (Path(name).stem + "_annotated.png")
                cv2.imwrite(str(dest), annotated)
                click.echo(f"  wrote {dest}")
            if display and not _display("ferlite", annotated):
                display = False
        click.echo(f"{read} image(s) read, {bad} skipped, {n_faces} face(s) found (detector: {rec.detector.name})")
        if read == 0:
            raise click.ClickException("no image could be read")
    finally:
        sinks.close()


def _run_stream(rec, camera, video, sinks, out_dir, display, smooth) -> None:
    import cv2

    cap = cv2.VideoCapture(camera if camera is not None else str(video))
    if not cap.isOpened():
        what = f"camera {camera}" if camera is not None else f"video {video}"
        raise click.ClickException(f"cannot open {what}" + (" (no camera available?)" if camera is not None else ""))
    smoother = Smoother(smooth) if smooth else None
    writer, frame_idx, t0 = None, 0, time.time()
    source = f"camera:{camera}" if camera is not None else str(video)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            results = rec.analyze(rgb)
            if smoother:
                results = smoother.update(results)
            sinks.write(source, frame_idx, results)
            fps = (frame_idx + 1) / max(time.time() - t0, 1e-6)
            annotated = draw(rgb, results, fps)
            if out_dir:
                if writer is None:
                    rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
                    dest = out_dir / (Path(source.replace(":", "_")).stem + "_annotated.mp4")
                    writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"mp4v"), rate,
                                             (annotated.shape[1], annotated.shape[0]))
                writer.write(annotated)
            if display and not _display("ferlite", annotated):
                break
            frame_idx += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    click.echo(f"{frame_idx} frame(s), {frame_idx / max(time.time() - t0, 1e-6):.1f} FPS end to end")
    if frame_idx == 0:
        raise click.ClickException(f"no frame could be read from {source}")
