"""Face detection (MediaPipe BlazeFace, OpenCV Haar fallback) and crop geometry.

:class:`FaceDetector` holds a loaded detector; :func:`detect_faces` is the one-call form.
``detector="auto"`` uses MediaPipe's short-range BlazeFace (the registered
``blaze-face-short-range`` file) and falls back, with one warning, to OpenCV's Haar cascade
when that file cannot be had. :func:`crop_face` cuts the face the way FER+ faces are framed
(see :class:`CropGeometry`). This module never imports TensorFlow.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Face", "CropGeometry", "FaceDetector", "detect_faces", "crop_face", "check_image"]

DETECTORS = ("auto", "mediapipe", "haar")
_warned_fallback = False


@dataclass(frozen=True)
class Face:
    """A detected face: ``box`` = (x, y, w, h) in input pixels, ``score`` in [0, 1], ``keypoints``
    = MediaPipe's six (x, y) points (right eye, left eye, nose tip, mouth, right ear, left ear;
    empty for Haar)."""

    box: tuple[int, int, int, int]
    score: float
    keypoints: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class CropGeometry:
    """How a detection box becomes a face crop.

    Attributes:
        square: make the crop square (side = the box's larger side, before the margin).
        margin: grow the crop by this fraction of its side (0.1 = 10% more per side... in total).
        offset_y: move the crop's centre down by this fraction of its side (negative: up).
        align: rotate the image so the eyes are level before cropping (needs keypoints).
    """

    square: bool = True
    margin: float = 0.2
    offset_y: float = 0.0
    align: bool = False


def check_image(image: object, what: str = "image") -> np.ndarray:
    """Validate an image array: uint8, HxW or HxWx3, not empty. Raises TypeError/ValueError naming what it got."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} must be a numpy uint8 array (HxW gray or HxWx3), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 in 0..255, got dtype {image.dtype}; convert with "
                         "(img * 255).clip(0, 255).astype(np.uint8) if it is float in [0, 1]")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"{what} must be HxW (gray) or HxWx3 (RGB/BGR), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"{what} is empty: shape {image.shape}")
    return image


def _to_rgb(image: np.ndarray, color: str) -> np.ndarray:
    import cv2

    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color == "bgr" else np.ascontiguousarray(image)


class FaceDetector:
    """A loaded face detector.

    Args:
        detector: ``auto`` (MediaPipe, else Haar with a warning), ``mediapipe`` or ``haar``.
        min_score: minimum detection confidence (MediaPipe; Haar reports 1.0).
    """

    def __init__(self, detector: str = "auto", *, min_score: float = 0.5) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; valid: {', '.join(DETECTORS)}")
        self.min_score = min_score
        self._mp = None
        self._haar = None
        if detector in ("auto", "mediapipe"):
            try:
                self._mp = self._load_mediapipe(min_score)
            except Exception as exc:
                if detector == "mediapipe":
                    raise
                global _warned_fallback
                if not _warned_fallback:
                    warnings.warn(f"MediaPipe face detector unavailable ({exc}); falling back to OpenCV's Haar "
                                  "cascade", stacklevel=2)
                    _warned_fallback = True
        if self._mp is None:
            import cv2

            self._haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.name = "mediapipe" if self._mp is not None else "haar"

    @staticmethod
    def _load_mediapipe(min_score: float):
        from mediapipe.tasks.python import BaseOptions, vision

        from ferlite.weights import fetch

        path = fetch("blaze-face-short-range")
        opts = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                          min_detection_confidence=min_score)
        return vision.FaceDetector.create_from_options(opts)

    def detect(self, image: np.ndarray, *, color: str = "rgb") -> list[Face]:
        """Faces in an HxW or HxWx3 uint8 image, largest first; an image without faces gives ``[]``."""
        rgb = _to_rgb(check_image(image), color)
        h, w = rgb.shape[:2]
        faces = []
        if self._mp is not None:
            import mediapipe as mp

            result = self._mp.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            for d in result.detections:
                b = d.bounding_box
                x0, y0 = max(0, b.origin_x), max(0, b.origin_y)
                x1, y1 = min(w, b.origin_x + b.width), min(h, b.origin_y + b.height)
                if x1 <= x0 or y1 <= y0:
                    continue
                kps = [(k.x * w, k.y * h) for k in d.keypoints]
                faces.append(Face((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), float(d.categories[0].score), kps))
        else:
            import cv2

            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            min_side = max(20, min(h, w) // 20)
            for x, y, bw, bh in self._haar.detectMultiScale(gray, 1.1, 5, minSize=(min_side, min_side)):
                faces.append(Face((int(x), int(y), int(bw), int(bh)), 1.0, []))
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3])

    def close(self) -> None:
        """Release the MediaPipe graph."""
        if self._mp is not None:
            self._mp.close()
            self._mp = None


def detect_faces(image: np.ndarray, *, detector: str = "auto", min_score: float = 0.5,
                 color: str = "rgb") -> list[Face]:
    """Detect faces in one image (loads a detector each call; keep a :class:`FaceDetector` for many images)."""
    det = FaceDetector(detector, min_score=min_score)
    try:
        return det.detect(image, color=color)
    finally:
        det.close()


def crop_face(image: np.ndarray, face: Face, geometry: CropGeometry | None = None) -> np.ndarray:
    """Cut ``face`` out of ``image`` with ``geometry``; parts outside the image are filled by edge replication."""
    import cv2

    g = geometry or CropGeometry()
    image = check_image(image)
    x, y, w, h = face.box
    cx, cy = x + w / 2.0, y + h / 2.0
    if g.align and len(face.keypoints) >= 2:
        (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
        rot = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        image = cv2.warpAffine(image, rot, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    side_w, side_h = (max(w, h),) * 2 if g.square else (w, h)
    side_w, side_h = side_w * (1 + g.margin), side_h * (1 + g.margin)
    cy += g.offset_y * side_h
    x0, y0 = int(round(cx - side_w / 2)), int(round(cy - side_h / 2))
    x1, y1 = x0 + max(1, int(round(side_w))), y0 + max(1, int(round(side_h)))
    ih, iw = image.shape[:2]
    pad = max(0, -x0, -y0, x1 - iw, y1 - ih)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return image[y0:y1, x0:x1]
