"""Recognising expressions: :class:`Recognizer`, and module-level :func:`predict` / :func:`predict_batch`.

A recogniser pairs a model (``.keras`` or ``.tflite``, through :mod:`ferlite.runtime`) with a
face detector (:mod:`ferlite.detect`). Faces are numpy uint8 arrays, HxW gray or HxWx3 RGB
(``color="bgr"`` for OpenCV frames), of any size, or paths to image files.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ferlite.detect import CropGeometry, FaceDetector, check_image, crop_face
from ferlite.runtime import Predictor, load_predictor

__all__ = ["Recognizer", "predict", "predict_batch", "read_image"]



def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 (gray files become 3 equal channels)."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    img = cv2.imdecode(np.fromfile(p, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{p} is not a readable image (expected a PNG, JPEG or other format OpenCV reads)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class Recognizer:
    """A loaded expression model with a face detector.

    Use :meth:`from_pretrained` to build one.
    """

    def __init__(self, predictor: Predictor, *, detector: str = "auto", min_score: float = 0.5,
                 geometry: CropGeometry | None = None) -> None:
        self.predictor = predictor
        self.detector_name = detector
        self.min_score = min_score
        self.geometry = geometry or CropGeometry()
        self._detector: FaceDetector | None = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, **kwargs) -> Recognizer:
        """Load a registered model name, a ``.keras``/``.tflite`` path, or (None) the default model."""
        return cls(load_predictor(name_or_path), **kwargs)

    @property
    def classes(self) -> tuple[str, ...]:
        """The output class names."""
        return self.predictor.classes

    @property
    def detector(self) -> FaceDetector:
        """The face detector, loaded on first use."""
        if self._detector is None:
            self._detector = FaceDetector(self.detector_name, min_score=self.min_score)
        return self._detector

    def _prepare(self, face: object, color: str) -> np.ndarray:
        import cv2

        if isinstance(face, (str, os.PathLike)):
            face, color = read_image(face), "rgb"
        face = check_image(face, "face")
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if self.predictor.channels == 1:
            if face.ndim == 3:
                face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY if color == "bgr" else cv2.COLOR_RGB2GRAY)
        elif face.ndim == 2:
            face = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
        elif color == "bgr":
            face = cv2.cvtColor(face, cv2.COLOR_BGR2RGB)
        s = self.predictor.input_size
        if face.shape[:2] != (s, s):
            interp = cv2.INTER_AREA if min(face.shape[:2]) > s else cv2.INTER_LINEAR
            face = cv2.resize(face, (s, s), interpolation=interp)
        return face.reshape(s, s, self.predictor.channels)

    def predict(self, face: object, *, color: str = "rgb") -> dict[str, float]:
        """Class probabilities of one face crop, in class order, summing to 1."""
        probs = self.predictor.predict(self._prepare(face, color)[None])[0]
        return dict(zip(self.classes, map(float, probs)))

    def predict_batch(self, faces, *, color: str = "rgb"):
        """A ``pandas.DataFrame``: one row per face, one column per class."""
        import pandas as pd

        if isinstance(faces, np.ndarray) and faces.ndim in (2, 3) and faces.dtype == np.uint8 and \
                (faces.ndim == 2 or faces.shape[-1] == 3):
            raise TypeError(f"predict_batch takes a sequence of faces, got one image of shape {faces.shape}; "
                            "use predict() for a single face")
        batch = np.stack([self._prepare(f, color) for f in faces]) if len(faces) else \
            np.zeros((0, self.predictor.input_size, self.predictor.input_size, self.predictor.channels), np.uint8)
        return pd.DataFrame(self.predictor.predict(batch), columns=list(self.classes))

    def analyze(self, image: object, *, color: str = "rgb") -> list[dict]:
        """Detect faces and predict each: ``[{box, score, keypoints, emotions, top}]``, boxes (x, y, w, h) in pixels."""
        if isinstance(image, (str, os.PathLike)):
            image, color = read_image(image), "rgb"
        image = check_image(image)
        if color == "bgr" and image.ndim == 3:
            image = image[..., ::-1]
        faces = self.detector.detect(image)
        if not faces:
            return []
        crops = np.stack([self._prepare(crop_face(image, f, self.geometry), "rgb") for f in faces])
        probs = self.predictor.predict(crops)
        out = []
        for f, p in zip(faces, probs):
            emotions = dict(zip(self.classes, map(float, p)))
            out.append({"box": f.box, "score": f.score, "keypoints": f.keypoints, "emotions": emotions,
                        "top": max(emotions, key=emotions.get)})
        return out


@lru_cache(maxsize=4)
def _default(name_or_path: str | None) -> Recognizer:
    return Recognizer.from_pretrained(name_or_path)


def predict(face: object, *, color: str = "rgb", model: str | None = None) -> dict[str, float]:
    """Probabilities of one face crop with the default model (loaded once and cached)."""
    return _default(model).predict(face, color=color)


def predict_batch(faces, *, color: str = "rgb", model: str | None = None):
    """A DataFrame of probabilities, one row per face, with the default model (cached)."""
    return _default(model).predict_batch(faces, color=color)
