"""Face detection (OpenCV's YuNet by default; MediaPipe BlazeFace as an option) and crop geometry.

:class:`FaceDetector` holds a loaded detector (options object in, plain :class:`Face` results out, like MediaPipe
Tasks); :func:`detect_faces` is the one-call form. The detectors, :data:`DETECTORS`:

* ``yunet`` (the default; ``auto`` names it): YuNet run by OpenCV's own ``cv2.FaceDetectorYN``, so it needs only
  the headless OpenCV build of the runtime install. Its model file (the registered ``yunet-2023mar``, MIT) ships
  inside the package, so it works offline. Five keypoints.
* ``mediapipe``: MediaPipe Tasks' BlazeFace short-range model (the registered ``blaze-face-short-range``, also
  bundled). Needs the ``mediapipe`` extra (``pip install "ferlite[mediapipe]"``), which brings OpenCV's GUI build
  and so libGL. Six keypoints.

The choice of the default, and each detector's crop geometry, were made by measurement (``docs/crop_geometry.md``).
:func:`crop_face` cuts a face out the way FER+ faces are framed (:class:`CropGeometry`). This module never imports
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
import types
import weakref
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DETECTORS",
    "DEFAULT_MIN_SCORE",
    "DEFAULT_DETECTOR",
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

# OpenCV's Haar cascade was a third detector until OpenCV 5's headless build dropped cv2.CascadeClassifier.
DETECTORS = ("auto", "yunet", "mediapipe")
DEFAULT_DETECTOR = "yunet"  # what ``auto`` means
# Chosen on experiments/crop_geometry.py's scenes (docs/crop_geometry.md): MediaPipe's own default is 0.5, at 0.6 it
# made 4 false detections in 400 scenes (0.5: 13); YuNet (as searched here) made 2 at 0.6.
DEFAULT_MIN_SCORE = 0.6
# Each detector's keypoints, in the order of Face.keypoints (the subject's right eye is the one on the image's left).
KEYPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "yunet": ("right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left"),
    "mediapipe": ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion"),
}
# YuNet finds faces of about 10 to 300 pixels, and makes more false detections in larger pictures: it searches a copy
# reduced to a longer side of 480 pixels, then one of 240 for the faces too large for the first. On the 400 scenes
# and 2,500 news photos of docs/crop_geometry.md this found as many faces, with 2 false detections instead of 32, as
# 640 then 320, for 56% of the pixels.
_YUNET_SIDES = (480, 240)
# A picture smaller than this (a face crop, say) is enlarged to it: YuNet found a face in 332 of the first 400
# FER2013Valid faces (48x48) as they are, in 395 enlarged to 240 (docs/crop_geometry.md).
_YUNET_SMALL = 240


@dataclass(frozen=True)
class Face:
    """A detected face.

    Attributes:
        box: (x, y, w, h) in pixels of the input image, clipped to it.
        score: detection confidence in [0, 1].
        keypoints: (x, y) points in input pixels, in the order of the detector's :data:`KEYPOINT_NAMES` (YuNet five,
            MediaPipe six); the first two are always the subject's right and left eye.
    """

    box: tuple[int, int, int, int]
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class CropGeometry:
    """How a detection box becomes a face crop (see ``docs/crop_geometry.md`` for the measurements).

    :data:`DEFAULT_GEOMETRY` holds each detector's measured default.

    Attributes:
        square: make the crop square, of side the box's larger side (before the margin).
        margin: grow the crop by this fraction of the box's side on every side (0.1: 20% wider in all).
        offset_y: move the crop's centre down by this fraction of the box's height (negative: up).
        align: rotate about the box centre so the eyes are level before cropping (needs keypoints;
            faces without keypoints are cropped unrotated) ...
        align_min_angle: ... but only when the eyes tilt by at least this many degrees.
    """

    square: bool = True
    margin: float = -0.05
    offset_y: float = 0.0
    align: bool = True
    align_min_angle: float = 0.0

    def __post_init__(self) -> None:
        if not -0.4 <= self.margin <= 2.0:
            raise ValueError(f"margin must be in [-0.4, 2.0] (a fraction of the box side), got {self.margin}")
        if not -1.0 <= self.offset_y <= 1.0:
            raise ValueError(f"offset_y must be in [-1, 1] (a fraction of the box height), got {self.offset_y}")


# Measured with experiments/crop_geometry.py (docs/crop_geometry.md): YuNet's box is ~1.01 of a FER+ frame, taller
# than wide (its square crop, of the box's height, is then cut 5% in on every side); MediaPipe's is ~0.83 of it and
# sits low in it.
DEFAULT_GEOMETRY: dict[str, CropGeometry] = {
    "yunet": CropGeometry(margin=-0.05, offset_y=0.0, align=True),
    "mediapipe": CropGeometry(margin=0.1, offset_y=-0.1, align=True),
}


@dataclass(frozen=True)
class FaceDetectorOptions:
    """Options of a :class:`FaceDetector`.

    Attributes:
        detector: one of :data:`DETECTORS`: ``yunet`` (the default, also named ``auto``) or ``mediapipe``.
        min_score: minimum detection confidence.
        margin: grow each returned box by this fraction of its side on every side, clipped to the image.
        model_path: a model file to use instead of the registered one: a YuNet ``.onnx`` for ``yunet``, a MediaPipe
            Tasks face-detector ``.tflite`` for ``mediapipe``.
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
            raise FileNotFoundError(f"face detector model_path {str(self.model_path)!r} is not a file (expected "
                                    f"{_MODEL_FILES[self.resolved]})")

    @property
    def resolved(self) -> str:
        """The detector these options load: ``auto`` resolved to :data:`DEFAULT_DETECTOR`."""
        return DEFAULT_DETECTOR if self.detector == "auto" else self.detector


_MODEL_FILES = {"yunet": "a YuNet face detector .onnx, e.g. face_detection_yunet_2023mar.onnx",
                "mediapipe": "a MediaPipe Tasks face detector .tflite, e.g. blaze_face_short_range.tflite"}


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


class _YuNet:
    """YuNet on OpenCV's ``cv2.FaceDetectorYN``: the bundled (or given) ``.onnx``, any image size."""

    def __init__(self, options: FaceDetectorOptions) -> None:
        import cv2

        from ferlite.weights import fetch

        path = str(options.model_path or fetch("yunet-2023mar"))
        with open(path, "rb") as f:
            if not _is_onnx(f.read()):  # OpenCV crashes (SIGSEGV) on some files that are not ONNX
                raise ValueError(f"OpenCV cannot load the face detector model {path!r} as YuNet: not an ONNX model "
                                 f"(expected {_MODEL_FILES['yunet']})")
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 warns about DNN targets
        try:
            self._net = cv2.FaceDetectorYN.create(path, "", (32, 32), options.min_score, 0.3, 5000)
            self._net.detect(np.zeros((32, 32, 3), np.uint8))  # another ONNX network fails here, not later
        except cv2.error as exc:  # OpenCV's message names neither the file nor what it wanted
            raise ValueError(f"OpenCV cannot load the face detector model {path!r} as YuNet: "
                             f"{str(exc).strip().splitlines()[-1]} (expected {_MODEL_FILES['yunet']})") from exc
        finally:
            cv2.utils.logging.setLogLevel(level)
        self._lock = threading.Lock()  # one network, one input size at a time

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = self._net.detect(bgr)
        return np.zeros((0, 15), np.float32) if rows is None else rows

    def _run_at(self, bgr: np.ndarray, side: int, *, enlarge: bool = False) -> np.ndarray:
        """Detections in ``bgr`` resized to a longer side of ``side`` (reduced; enlarged only with ``enlarge``), in
        ``bgr``'s pixels."""
        import cv2

        h, w = bgr.shape[:2]
        scale = side / max(h, w)
        if scale == 1.0 or (scale > 1.0 and not enlarge):
            return self._run(bgr)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rows = self._run(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR))
        rows[:, 0:14:2] *= w / size[0]
        rows[:, 1:14:2] *= h / size[1]
        return rows

    def detect(self, rgb: np.ndarray) -> list:
        """Detections in the picture reduced to at most 480 pixels, and, for faces over YuNet's ~300 pixels, to 240."""
        import cv2

        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if max(bgr.shape[:2]) < _YUNET_SMALL:  # a small picture, e.g. a face crop: enlarged, where YuNet finds more
            return self._rows_to_faces(self._run_at(bgr, _YUNET_SMALL, enlarge=True))
        rows = self._run_at(bgr, _YUNET_SIDES[0])
        for side in _YUNET_SIDES[1:]:
            if max(bgr.shape[:2]) > 1.5 * side:
                rows = _merge(rows, self._run_at(bgr, side))
        return self._rows_to_faces(rows)

    @staticmethod
    def _rows_to_faces(rows: np.ndarray) -> list:
        return [((float(r[0]), float(r[1]), float(r[2]), float(r[3])), float(r[14]),
                 tuple((float(r[4 + 2 * i]), float(r[5 + 2 * i])) for i in range(5))) for r in rows]

    def close(self) -> None:
        self._net = None


def _is_onnx(data: bytes) -> bool:
    """Whether ``data`` is a protocol-buffer message whose fields end exactly at its end and that holds an ONNX graph
    (ModelProto field 7): a cheap check that keeps files of other kinds away from OpenCV's parser."""
    def varint(i: int) -> tuple[int, int]:
        value = shift = 0
        while i < len(data) and shift < 64:
            value |= (data[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not data[i - 1] & 0x80:
                return value, i
        raise ValueError("truncated varint")

    i, fields = 0, set()
    try:
        while i < len(data):
            key, i = varint(i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, i = varint(i)
            elif wire == 2:
                length, i = varint(i)
                i += length
            elif wire in (1, 5):
                i += 8 if wire == 1 else 4
            else:
                return False
            fields.add(number)
    except ValueError:
        return False
    return i == len(data) and 7 in fields


def _merge(rows: np.ndarray, extra: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """``rows`` plus the rows of ``extra`` that overlap none of them by ``iou`` or more (boxes in columns 0-3)."""
    def overlap(a: np.ndarray, b: np.ndarray) -> float:
        x0, y0 = max(a[0], b[0]), max(a[1], b[1])
        x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
        inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
        return inter / (a[2] * a[3] + b[2] * b[3] - inter)

    new = [e for e in extra if all(overlap(e, r) < iou for r in rows)]
    return np.concatenate([rows, np.array(new, dtype=rows.dtype).reshape(-1, rows.shape[1])])


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
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        from ferlite._extras import MissingExtraError, extra_message

        raise MissingExtraError(extra_message("mediapipe", "mediapipe"), name="mediapipe") from exc
    return mp, BaseOptions, vision


class _MediaPipe:
    """MediaPipe Tasks' face detector on the bundled (or given) BlazeFace ``.tflite``."""

    def __init__(self, options: FaceDetectorOptions, owner: object) -> None:
        from ferlite.weights import fetch

        _, base_options, vision = _import_mediapipe()
        path = str(options.model_path or fetch("blaze-face-short-range"))
        opts = vision.FaceDetectorOptions(base_options=base_options(model_asset_path=path),
                                          min_detection_confidence=options.min_score)
        try:
            self._task = vision.FaceDetector.create_from_options(opts)
        except (ValueError, RuntimeError) as exc:  # MediaPipe's own message names neither the file nor what it wanted
            raise ValueError(f"MediaPipe cannot load the face detector model {path!r}: {exc} (expected "
                             f"{_MODEL_FILES['mediapipe']})") from exc
        self._finalizer = _close_before_exit(owner, self._task)

    def detect(self, rgb: np.ndarray) -> list:
        mp, _, _ = _import_mediapipe()
        h, w = rgb.shape[:2]
        result = self._task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        return [((d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.width, d.bounding_box.height),
                 float(d.categories[0].score), tuple((float(k.x * w), float(k.y * h)) for k in d.keypoints))
                for d in result.detections]

    def close(self) -> None:
        self._finalizer()


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
    """A loaded face detector: ``FaceDetector(FaceDetectorOptions(...))`` or ``FaceDetector(detector="mediapipe")``.

    Keyword arguments override fields of ``options``. Use it as a context manager, or call :meth:`close`, to
    release the detector early (MediaPipe's graph is released at exit otherwise).

    Raises:
        ValueError: an invalid option, or a model file the detector cannot load (not a model, or not its kind).
        ImportError: ``detector="mediapipe"`` without MediaPipe installed (the message names the extra).
        OSError: the registered model file cannot be had.
    """

    def __init__(self, options: FaceDetectorOptions | None = None, **overrides: object) -> None:
        self.options = dataclasses.replace(options or FaceDetectorOptions(), **overrides)
        name = self.options.resolved
        self._impl = _YuNet(self.options) if name == "yunet" else _MediaPipe(self.options, self)
        self._name = name

    @property
    def name(self) -> str:
        """The detector in use: ``yunet`` or ``mediapipe``."""
        return self._name

    def detect(self, image: np.ndarray, *, color: str = "rgb") -> list[Face]:
        """Faces in a uint8 HxW or HxWx3 image (``color="bgr"`` for OpenCV frames), largest first; none: ``[]``."""
        rgb = to_rgb(image, color)
        if self._impl is None:
            raise RuntimeError("this FaceDetector was closed")
        h, w = rgb.shape[:2]
        m = self.options.margin
        faces = []
        for (x, y, bw, bh), score, kps in self._impl.detect(rgb):
            x0, y0 = max(0, round(x - m * bw)), max(0, round(y - m * bh))
            x1, y1 = min(w, round(x + bw + m * bw)), min(h, round(y + bh + m * bh))
            if x1 > x0 and y1 > y0:
                faces.append(Face((int(x0), int(y0), int(x1 - x0), int(y1 - y0)), score, kps))
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3])

    def close(self) -> None:
        """Release the detector; :meth:`detect` raises afterwards."""
        if self._impl is not None:
            self._impl.close()
            self._impl = None

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
