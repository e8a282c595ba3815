"""``ferlite serve --camera``: the device's own camera read on the server, analysed frame by frame with the demo's
tracking and smoothing (:class:`ferlite.video.EmotionSmoother`), drawn by :func:`ferlite.video.draw_results` and
handed to viewers as JPEG frames.

One thread reads and analyses; it reads only while someone watches (an MJPEG viewer, or a poll of the results
within the last :data:`IDLE_AFTER` seconds), so an idle device does not spend its CPU. Viewers always get the newest
frame: a slow viewer skips frames and delays nobody. A video file stands in for a camera (tests, demos): it is
played at its own frame rate and starts over when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ferlite.recognizer import Recognizer
from ferlite.video import EmotionSmoother, draw_results, frame_count, open_video

__all__ = ["IDLE_AFTER", "CameraFeed", "parse_source"]

IDLE_AFTER = 2.0  # seconds without a viewer or a poll after which the camera is no longer read
_JPEG_QUALITY = 80
log = logging.getLogger("ferlite.serve")


def parse_source(value: str) -> int | str:
    """A ``--camera`` value: a camera index (``"0"`` -> 0) or the path of a video file standing in for a camera."""
    return int(value) if value.strip().isdigit() else value


def _open(source: int | str):
    import cv2

    if isinstance(source, str):
        return open_video(source)  # FileNotFoundError / ValueError naming the file and what was expected
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"cannot open camera {source}: no camera at that index, or it is busy (expected the index "
                         "of a camera OpenCV can open, such as 0, or a video file standing in for one)")
    return cap


class CameraFeed:
    """A camera (index) or a looped video file, analysed while watched. The source is opened here (errors at once).

    Args:
        source: a camera index or a video file path.
        recognizer: the recognizer of this feed alone (not one of the request workers').
        alpha: the smoothing weight of the newest frame (:class:`~ferlite.video.EmotionSmoother`).
    """

    def __init__(self, source: int | str, recognizer: Recognizer, *, alpha: float = 0.5) -> None:
        import cv2

        self.smoother = EmotionSmoother(alpha)  # validates alpha
        self.source, self.recognizer = source, recognizer
        self.name = f"camera {source}" if isinstance(source, int) else f"video {Path(source).name}"
        self._cap = _open(source)
        self.looped = frame_count(self._cap) > 0  # a file: paced at its frame rate, and started over at its end
        self._period = 1.0 / (self._cap.get(cv2.CAP_PROP_FPS) or 25.0)
        self.viewers, self._last_poll = 0, -IDLE_AFTER
        self.error: str | None = None
        self._latest: tuple[int, bytes, dict] | None = None
        self._lock = threading.Lock()
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the reading thread; new frames are announced to waiters on ``loop``."""
        self._loop, self._event = loop, asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="ferlite-camera", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Stop reading, and wake the waiters (they get None); returns at once (a signal handler calls it)."""
        self._stop.set()
        self._wake.set()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._announce)

    def stop(self) -> None:
        """:meth:`halt`, wait for the reading thread, release the camera and the recognizer's detector. Safe to
        repeat."""
        self.halt()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._cap.isOpened():
            self._cap.release()
            self.recognizer.close()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Count a viewer (an MJPEG stream) while inside; the camera is read while any viewer is."""
        self.viewers += 1
        self._wake.set()
        try:
            yield
        finally:
            self.viewers -= 1

    def poll(self) -> None:
        """Note a poll of the results: the camera is read for :data:`IDLE_AFTER` more seconds."""
        self._last_poll = time.monotonic()
        self._wake.set()

    @property
    def active(self) -> bool:
        """Whether the camera is being read: a viewer watches, or the results were polled lately."""
        return self.viewers > 0 or time.monotonic() - self._last_poll < IDLE_AFTER

    def latest(self) -> tuple[int, bytes, dict] | None:
        """The newest frame: its number (from 0, counted across the loops of a file), the annotated JPEG and the
        results (``frame``, ``fps``, ``width``, ``height``, ``faces``: smoothed :meth:`Recognizer.analyze` dicts)."""
        with self._lock:
            return self._latest

    async def next_frame(self, after: int) -> tuple[int, bytes, dict] | None:
        """The newest frame once its number is past ``after``; None when the feed stops."""
        while not self._stop.is_set():
            event = self._event
            current = self.latest()
            if current is not None and current[0] > after:
                return current
            await event.wait()
        return None

    def _announce(self) -> None:
        """On the event loop: wake every waiter (each waits on the event of its time)."""
        self._event.set()
        self._event = asyncio.Event()

    def _run(self) -> None:
        import cv2

        n, fps, previous, failures = 0, None, None, 0
        while not self._stop.is_set():
            if not self.active:
                self._wake.wait(0.5)
                self._wake.clear()
                previous = None  # the pause is no frame interval
                continue
            started = time.perf_counter()
            ok, frame = self._cap.read()
            if not ok:
                failures += 1
                if self.looped and failures == 1:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                if self.error is None:
                    self.error = f"{self.name} gives no frames (unplugged, or busy?)"
                    log.error(self.error)
                self._stop.wait(0.5)
                continue
            failures, self.error = 0, None
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # once: for the recognizer and for the drawing
            faces = self.smoother.update(self.recognizer.analyze(rgb))
            if previous is not None:
                gap = started - previous
                fps = 1.0 / gap if fps is None else 0.9 * fps + 0.1 / max(gap, 1e-6)
            previous = started
            self._publish(n, rgb, faces, fps)
            n += 1
            if self.looped:
                self._stop.wait(max(0.0, self._period - (time.perf_counter() - started)))

    def _publish(self, n: int, frame_rgb: np.ndarray, faces: list[dict], fps: float | None) -> None:
        import cv2

        annotated = draw_results(frame_rgb, faces, fps)
        ok, jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode frame {n} of {self.name} as JPEG")
        result = {"frame": n, "fps": fps, "width": frame_rgb.shape[1], "height": frame_rgb.shape[0], "faces": faces}
        with self._lock:
            self._latest = (n, jpeg.tobytes(), result)
        self._loop.call_soon_threadsafe(self._announce)
