"""Face detection (MediaPipe BlazeFace, OpenCV Haar fallback) and crop geometry.

:class:`FaceDetector` holds a loaded detector (options object in, plain :class:`Face` results
out, like MediaPipe Tasks); :func:`detect_faces` is the one-call form. ``detector="auto"`` uses
MediaPipe's short-range BlazeFace: ``model_path`` when given, else the registered
``blaze-face-short-range`` file through :func:`ferlite.weights.fetch` (cached, else the copy bundled
in the package, so it works offline, else a download). It falls back, with one warning, to OpenCV's
Haar cascade only when MediaPipe itself cannot load. :func:`crop_face` cuts a face out the way FER+ faces are
framed (:class:`CropGeometry`; the defaults were chosen by measurement, see
``docs/crop_geometry.md``). This module never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
import types
import warnings
import weakref
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DETECTORS",
    "DEFAULT_MIN_SCORE",
    "KEYPOINT_NAMES",
    "Face",
    "CropGeometry",
    "DEFAULT_GEOMETRY",
    "FaceDetectorOptions",
    "FaceDetector",
    "detect_faces",
    "crop_face",
    "eye_angle",
    "check_image",
    "to_rgb",
]

DETECTORS = ("auto", "mediapipe", "haar")
# MediaPipe's own default is 0.5; at 0.6 far fewer false detections, few faces lost (docs/crop_geometry.md).
DEFAULT_MIN_SCORE = 0.6
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")
_warned_fallback = False


@dataclass(frozen=True)
class Face:
    """A detected face.

    Attributes:
        box: (x, y, w, h) in pixels of the input image, clipped to it.
        score: detection confidence in [0, 1] (Haar gives none: 1.0).
        keypoints: MediaPipe's six (x, y) points in input pixels, in :data:`KEYPOINT_NAMES` order
            (the subject's right eye is the one on the image's left); empty for Haar.
    """

    box: tuple[int, int, int, int]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class CropGeometry:
    """How a detection box becomes a face crop (see ``docs/crop_geometry.md`` for the measurements).

    The defaults suit MediaPipe's boxes; :data:`DEFAULT_GEOMETRY` holds each detector's default.

    Attributes:
        square: make the crop square, of side the box's larger side (before the margin).
        margin: grow the crop by this fraction of the box's side on every side (0.1: 20% wider in all).
        offset_y: move the crop's centre down by this fraction of the box's height (negative: up).
        align: rotate about the box centre so the eyes are level before cropping (needs keypoints;
            faces without keypoints are cropped unrotated) ...
        align_min_angle: ... but only when the eyes tilt by at least this many degrees.
    """

    square: bool = True
    margin: float = 0.1
    offset_y: float = -0.1
    align: bool = True
    align_min_angle: float = 0.0

    def __post_init__(self) -> None:
        if not -0.4 <= self.margin <= 2.0:
            raise ValueError(f"margin must be in [-0.4, 2.0] (a fraction of the box side), got {self.margin}")
        if not -1.0 <= self.offset_y <= 1.0:
            raise ValueError(f"offset_y must be in [-1, 1] (a fraction of the box height), got {self.offset_y}")


# Measured with benchmarks/crop_geometry.py (docs/crop_geometry.md): MediaPipe's box is ~0.83 of
# a FER+ frame and sits low in it; Haar's is ~0.96 of it and centred. Haar gives no keypoints to align by.
DEFAULT_GEOMETRY: dict[str, CropGeometry] = {
    "mediapipe": CropGeometry(margin=0.1, offset_y=-0.1, align=True),
    "haar": CropGeometry(margin=0.0, offset_y=0.0, align=False),
}


@dataclass(frozen=True)
class FaceDetectorOptions:
    """Options of a :class:`FaceDetector`.

    Attributes:
        detector: ``auto`` (MediaPipe, else Haar with one warning), ``mediapipe`` or ``haar``.
        min_score: minimum detection confidence (MediaPipe only).
        margin: grow each returned box by this fraction of its side on every side, clipped to the image.
        model_path: a MediaPipe Tasks face-detector ``.tflite`` to use instead of the registered BlazeFace file.
    """

    detector: str = "auto"
    min_score: float = DEFAULT_MIN_SCORE
    margin: float = 0.0
    model_path: str | None = None

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}; expected one of: {', '.join(DETECTORS)}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if self.model_path is not None and not os.path.isfile(self.model_path):
            raise FileNotFoundError(f"face detector model_path {str(self.model_path)!r} is not a file (expected a "
                                    "MediaPipe Tasks face detector .tflite, e.g. blaze_face_short_range.tflite)")


def check_image(image: object, what: str = "image") -> np.ndarray:
    """Return ``image`` if it is a non-empty uint8 HxW or HxWx3 array (HxWx1 comes back as its HxW view);
    TypeError/ValueError naming what it got."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} must be a numpy uint8 array (HxW gray or HxWx3 RGB/BGR) or an image file path, "
                        f"got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (0..255), got dtype {image.dtype}; a float image in [0, 1] "
                         "converts with (img * 255).round().clip(0, 255).astype(np.uint8)")
    if image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(f"{what} has 4 channels (shape {image.shape}); expected HxW or HxWx3: drop the alpha "
                         "channel with img[..., :3]")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"{what} must be HxW (gray) or HxWx3 (RGB/BGR), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"{what} is empty (shape {image.shape}); expected a uint8 HxW or HxWx3 image")
    return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image


def to_rgb(image: np.ndarray, color: str = "rgb") -> np.ndarray:
    """A contiguous HxWx3 RGB copy or view of a gray, RGB or BGR (``color="bgr"``) uint8 image."""
    import cv2

    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    image = check_image(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color == "bgr" else np.ascontiguousarray(image)


def _import_mediapipe():
    """Import MediaPipe Tasks without TensorFlow.

    mediapipe 1.2 imports ``tensorflow.tools.docs`` when TensorFlow is installed, only to get a
    no-op API-docs decorator; that costs the whole TensorFlow import (seconds). A stand-in for
    that one module, with the same no-op decorator, keeps MediaPipe light.
    """
    name = "mediapipe.tasks.python.core.optional_dependencies"
    if "tensorflow" not in sys.modules and name not in sys.modules:
        stub = types.ModuleType(name)
        stub.doc_controls = types.SimpleNamespace(do_not_generate_docs=lambda obj: obj)
        sys.modules[name] = stub
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    return mp, BaseOptions, vision


def _load_mediapipe(min_score: float, model_path: str | None = None):
    """A MediaPipe Tasks face detector from ``model_path``, else the registered BlazeFace file (cached, bundled or
    downloaded); ValueError naming the file when MediaPipe cannot load it (not a model, or not a face detector)."""
    from ferlite.weights import fetch

    _, base_options, vision = _import_mediapipe()
    path = str(model_path or fetch("blaze-face-short-range"))
    opts = vision.FaceDetectorOptions(base_options=base_options(model_asset_path=path),
                                      min_detection_confidence=min_score)
    try:
        return vision.FaceDetector.create_from_options(opts)
    except (ValueError, RuntimeError) as exc:  # MediaPipe's own message names neither the file nor what it wanted
        raise ValueError(f"MediaPipe cannot load the face detector model {path!r}: {exc} (expected a MediaPipe "
                         "Tasks face detector .tflite, e.g. blaze_face_short_range.tflite)") from exc


def _warn_fallback(exc: Exception) -> None:
    global _warned_fallback
    if not _warned_fallback:
        _warned_fallback = True
        warnings.warn(f"MediaPipe face detector unavailable, falling back to OpenCV's Haar cascade: {exc}",
                      RuntimeWarning, stacklevel=3)


def _close_before_exit(owner: object, task: object) -> weakref.finalize:
    """Close a MediaPipe task when ``owner`` is collected, or at exit before thread pools shut down.

    MediaPipe runs its C calls on a thread pool that Python shuts down before ``atexit`` handlers
    run, so a task still open then fails noisily in its ``__del__``; threading's exit hooks run first.
    """
    finalizer = weakref.finalize(owner, task.close)
    finalizer.atexit = False
    threading._register_atexit(finalizer)
    return finalizer


class FaceDetector:
    """A loaded face detector: ``FaceDetector(FaceDetectorOptions(...))`` or ``FaceDetector(detector="haar")``.

    Keyword arguments override fields of ``options``. Use it as a context manager, or call
    :meth:`close`, to release MediaPipe's graph early (it is released at exit otherwise).

    Raises:
        ValueError: an invalid option; or ``detector="mediapipe"`` and MediaPipe cannot load the model file (not a
            model, or not a face detector).
        OSError / ImportError: ``detector="mediapipe"`` and the model file or MediaPipe cannot be had.
    """

    def __init__(self, options: FaceDetectorOptions | None = None, **overrides: object) -> None:
        self.options = dataclasses.replace(options or FaceDetectorOptions(), **overrides)
        self._mp = None
        self._haar = None
        if self.options.detector != "haar":
            try:
                self._mp = _load_mediapipe(self.options.min_score, self.options.model_path)
            except (ImportError, OSError, RuntimeError, ValueError) as exc:
                if self.options.detector == "mediapipe":
                    raise
                _warn_fallback(exc)
        if self._mp is not None:
            self._finalizer = _close_before_exit(self, self._mp)
        else:
            import cv2

            self._haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
            if self._haar.empty():
                raise OSError(f"OpenCV's Haar cascade could not be loaded from {cv2.data.haarcascades}")

    @property
    def name(self) -> str:
        """The detector in use: ``mediapipe`` or ``haar``."""
        return "haar" if self._haar is not None else "mediapipe"

    def detect(self, image: np.ndarray, *, color: str = "rgb") -> list[Face]:
        """Faces in a uint8 HxW or HxWx3 image (``color="bgr"`` for OpenCV frames), largest first; none: ``[]``."""
        rgb = to_rgb(image, color)
        if self._haar is None and self._mp is None:
            raise RuntimeError("this FaceDetector was closed")
        raw = self._detect_haar(rgb) if self._haar is not None else self._detect_mediapipe(rgb)
        h, w = rgb.shape[:2]
        m = self.options.margin
        faces = []
        for (x, y, bw, bh), score, kps in raw:
            x0, y0 = max(0, round(x - m * bw)), max(0, round(y - m * bh))
            x1, y1 = min(w, round(x + bw + m * bw)), min(h, round(y + bh + m * bh))
            if x1 > x0 and y1 > y0:
                faces.append(Face((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), score, kps))
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3])

    def _detect_mediapipe(self, rgb: np.ndarray) -> list:
        mp, _, _ = _import_mediapipe()
        h, w = rgb.shape[:2]
        result = self._mp.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        return [((d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width, d.bounding_box.height),
                 float(d.categories[0].score), tuple((float(k.x * w), float(k.y * h)) for k in d.keypoints))
                for d in result.detections]

    def _detect_haar(self, rgb: np.ndarray) -> list:
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        min_side = max(24, min(gray.shape) // 20)
        boxes = self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        return [(tuple(int(v) for v in b), 1.0, ()) for b in boxes]

    def close(self) -> None:
        """Release the detector; :meth:`detect` raises afterwards."""
        if self._mp is not None:
            self._finalizer()
            self._mp = None
        self._haar = None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def detect_faces(image: np.ndarray, *, detector: str = "auto", min_score: float = DEFAULT_MIN_SCORE,
                 margin: float = 0.0, color: str = "rgb") -> list[Face]:
    """Detect faces in one image, largest first (loads a detector per call: keep a :class:`FaceDetector` for many)."""
    with FaceDetector(FaceDetectorOptions(detector, min_score, margin)) as det:
        return det.detect(image, color=color)


def eye_angle(face: Face) -> float:
    """Angle in degrees of the line from the face's right eye to its left eye (0: level); 0 without keypoints."""
    if len(face.keypoints) < 2:
        return 0.0
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def crop_face(image: np.ndarray, face: Face, geometry: CropGeometry | None = None) -> np.ndarray:
    """Cut ``face`` out of a uint8 HxW or HxWx3 ``image``, framed by ``geometry`` (default: :class:`CropGeometry`).

    Parts of the crop outside the image are filled by replicating its edge pixels. Without
    alignment the crop is an exact copy of the image's pixels; with it, the image is rotated
    about the box centre (bilinear) so that the eyes are level.
    """
    import cv2

    g = geometry or CropGeometry()
    image = check_image(image)
    x, y, w, h = face.box
    base_w, base_h = (max(w, h),) * 2 if g.square else (w, h)
    out_w, out_h = max(1, round(base_w * (1 + 2 * g.margin))), max(1, round(base_h * (1 + 2 * g.margin)))
    cx, cy = x + w / 2.0, y + h / 2.0 + g.offset_y * h
    angle = eye_angle(face) if g.align else 0.0
    angle = angle if abs(angle) >= g.align_min_angle else 0.0
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] -= (round(cx - out_w / 2.0), round(cy - out_h / 2.0))
    return cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
