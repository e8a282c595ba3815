"""Across frames and onto pictures: face tracks with smoothed probabilities, drawing, result files.

* :class:`EmotionSmoother`: an exponential moving average of each face's probabilities, faces
  matched from frame to frame by box overlap (:func:`box_iou`).
* :func:`draw_results`: boxes, the top emotion with its percentage, small per-class bars, FPS.
* :class:`ResultWriter`: one CSV row / JSON line per face, flushed as they go.
* :func:`open_video`: a video file opened with OpenCV, or an error saying why it cannot be
  (empty, an MP4 cut short or without frames, not a video); :func:`frame_shortfall` words a video
  that ends before the frame count its header announces (a truncated file).

Results are the dicts of :meth:`ferlite.recognizer.Recognizer.analyze`. Never imports TensorFlow.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["box_iou", "EmotionSmoother", "draw_results", "ResultWriter", "open_video", "frame_count",
           "frame_shortfall"]

Box = tuple[int, int, int, int]
VIDEO_EXPECTED = "a video file OpenCV can decode (MP4, AVI, MOV, MKV, WebM...)"


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes (0 when they do not overlap)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    box: Box
    probs: np.ndarray
    missing: int = 0


class EmotionSmoother:
    """Per-face exponential moving average of probabilities across video frames.

    Args:
        alpha: weight of the newest frame (1: no smoothing).
        min_iou: a face continues the track whose last box overlaps it most, if by at least this.
        max_missing: a track survives this many frames without a face before it is dropped.
    """

    def __init__(self, alpha: float = 0.5, *, min_iou: float = 0.3, max_missing: int = 5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha (the weight of the newest frame) must be in (0, 1], got {alpha}")
        self.alpha, self.min_iou, self.max_missing = alpha, min_iou, max_missing
        self.tracks: list[_Track] = []

    def update(self, results: list[dict]) -> list[dict]:
        """The results of one frame with ``emotions`` and ``top`` smoothed (new dicts; the input is unchanged)."""
        free = list(self.tracks)
        out, kept = [], []
        for r in sorted(results, key=lambda r: -r["box"][2] * r["box"][3]):
            probs = np.array(list(r["emotions"].values()), dtype=np.float64)
            best = max(free, key=lambda t: box_iou(t.box, r["box"]), default=None)
            if best is not None and box_iou(best.box, r["box"]) >= self.min_iou:
                free.remove(best)
                probs = self.alpha * probs + (1 - self.alpha) * best.probs
            kept.append(_Track(tuple(r["box"]), probs))
            emotions = dict(zip(r["emotions"], map(float, probs), strict=True))
            out.append({**r, "emotions": emotions, "top": max(emotions, key=emotions.get)})
        for t in free:
            if t.missing < self.max_missing:
                kept.append(_Track(t.box, t.probs, t.missing + 1))
        self.tracks = kept
        return out


def draw_results(image_rgb: np.ndarray, results: list[dict], fps: float | None = None) -> np.ndarray:
    """A BGR copy of an RGB (or gray) image with boxes, top emotion and percentage, per-class bars and FPS."""
    import cv2

    out = cv2.cvtColor(image_rgb, cv2.COLOR_GRAY2BGR if image_rgb.ndim == 2 else cv2.COLOR_RGB2BGR)
    scale = max(0.4, min(out.shape[:2]) / 600)
    thick = max(1, round(2 * scale))
    green, orange, white = (0, 220, 0), (0, 170, 255), (255, 255, 255)
    for r in results:
        x, y, w, h = r["box"]
        cv2.rectangle(out, (x, y), (x + w, y + h), green, thick)
        label = f"{r['top']} {100 * r['emotions'][r['top']]:.0f}%"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
        ty = max(th + 4, y - 6)
        cv2.rectangle(out, (x, ty - th - 4), (x + tw + 4, ty + base), (0, 0, 0), -1)
        cv2.putText(out, label, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, green, thick)
        row, bar_w = max(6, int(12 * scale)), int(50 * scale)
        bx = x + w + 4 if x + w + 4 + 2 * bar_w < out.shape[1] else max(0, x - 4 - 2 * bar_w)
        for i, (name, p) in enumerate(r["emotions"].items()):
            yy = y + i * row
            cv2.rectangle(out, (bx, yy), (bx + bar_w, yy + row - 2), (60, 60, 60), -1)
            cv2.rectangle(out, (bx, yy), (bx + int(bar_w * p), yy + row - 2), orange, -1)
            cv2.putText(out, name[:5], (bx + bar_w + 3, yy + row - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.32 * scale,
                        white, 1)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (0, 0, 255),
                    thick)
    return out


class ResultWriter:
    """CSV and/or JSONL files with one record per face (source, frame, face, box, score, top, probabilities).

    Records are flushed as they are written. Use as a context manager or call :meth:`close`;
    :meth:`discard` closes and deletes the files (nothing partial is left behind).
    """

    def __init__(self, classes: Sequence[str], *, csv_path: str | os.PathLike | None = None,
                 jsonl_path: str | os.PathLike | None = None) -> None:
        self.classes = list(classes)
        self.paths: list[Path] = []
        self._csv_file = self._open(csv_path, newline="")
        self._jsonl = self._open(jsonl_path)
        self._csv = csv.writer(self._csv_file) if self._csv_file else None
        if self._csv:
            self._csv.writerow(["source", "frame", "face", "x", "y", "w", "h", "score", "top", *self.classes])
            self._csv_file.flush()
        self.rows = 0

    def _open(self, path: str | os.PathLike | None, **kwargs: str):
        if not path:
            return None
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            f = open(p, "w", **kwargs)
        except OSError:
            self.discard()
            raise
        self.paths.append(p)
        return f

    def write(self, source: str, frame: int, results: list[dict]) -> None:
        """Write the faces of one image or video frame."""
        for i, r in enumerate(results):
            probs = [r["emotions"][c] for c in self.classes]
            if self._csv:
                self._csv.writerow([source, frame, i, *r["box"], f"{r['score']:.4f}", r["top"],
                                    *(f"{p:.6f}" for p in probs)])
            if self._jsonl:
                record = {"source": source, "frame": frame, "face": i, "box": [int(v) for v in r["box"]],
                          "score": round(float(r["score"]), 4), "top": r["top"],
                          "emotions": dict(zip(self.classes, (round(float(p), 6) for p in probs), strict=True))}
                self._jsonl.write(json.dumps(record) + "\n")
            self.rows += 1
        for f in (self._csv_file, self._jsonl):
            if f:
                f.flush()

    def close(self) -> None:
        """Close the files."""
        for f in (getattr(self, "_csv_file", None), getattr(self, "_jsonl", None)):
            if f:
                f.close()

    def discard(self) -> None:
        """Close and delete the files."""
        self.close()
        for p in self.paths:
            p.unlink(missing_ok=True)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mp4_problem(path: Path) -> str | None:
    """Why an MP4/MOV file (one starting with an ``ftyp`` box) cannot be played, from its top-level boxes."""
    with open(path, "rb") as f:
        n = os.fstat(f.fileno()).st_size
        if f.read(8)[4:8] != b"ftyp":
            return None
        pos, moov = 0, None
        while pos + 8 <= n:
            f.seek(pos)
            header = f.read(16)
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if size == 1 and len(header) == 16:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:  # the last box, up to the end of the file
                size = n - pos
            if size < 8:
                return f"a corrupt MP4: a box of {size} bytes at byte {pos}"
            if pos + size > n:
                lost = "" if moov is not None else ", and it has no 'moov' box (the index a player needs)"
                return f"truncated: the MP4 ends after {n} bytes, inside its {kind.decode('latin-1')!r} box{lost}"
            if kind == b"moov":
                f.seek(pos + 8)
                moov = f.read(min(size - 8, 1 << 24))
            pos += size
    if moov is None:
        return "an MP4 without its 'moov' box (the index a player needs): cut short, or never finished writing"
    if b"trak" not in moov:
        return "an MP4 without any track: no frame was ever written to it"
    return None


def open_video(path: str | os.PathLike):
    """A ``cv2.VideoCapture`` of a video file, opened.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, an MP4 cut short or holding no frame, or not a video OpenCV can
            decode; the message names the file, why, and what was expected.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"video file not found: {str(p)!r} (expected a path to an existing video file)")
    if p.stat().st_size == 0:
        problem = "the file is empty (0 bytes)"
    else:
        cap = cv2.VideoCapture(str(p))
        if cap.isOpened():
            return cap
        cap.release()
        problem = _mp4_problem(p) or "not a video file OpenCV can decode"
    raise ValueError(f"cannot open video {str(p)!r}: {problem} (expected {VIDEO_EXPECTED})")


def frame_count(cap) -> int:
    """The number of frames an opened ``cv2.VideoCapture``'s header announces; 0 when unknown (a camera)."""
    import cv2

    return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))


def frame_shortfall(source: str, first: int, stop: int, announced: int) -> str:
    """What to say of a video whose frames ``first`` to ``stop - 1`` (of the ``announced`` of its header,
    0 if unknown) could not be decoded."""
    header = f"its header announces {announced}" if announced > 0 else "its header gives no frame count"
    if first == 0 and stop >= announced:
        return f"no frame could be decoded from video {source!r} ({header}; expected at least one readable frame)"
    return (f"frames {first} to {stop - 1} of video {source!r} could not be decoded ({header}): the file is "
            "truncated or corrupt there")
