"""Recognising expressions: :class:`Recognizer`, and module-level :func:`predict` / :func:`predict_batch`.

A recogniser pairs a model (``.keras`` or ``.tflite``, loaded by :func:`ferlite.runtime.load_predictor`)
with a face detector (:mod:`ferlite.detect`). Faces are numpy uint8 arrays, HxW gray or HxWx3 RGB
(``color="bgr"`` for OpenCV frames), of any size, or paths to image files (read by
:func:`ferlite.images.read_image`, re-exported here). Nothing here imports TensorFlow unless a ``.keras``
model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from ferlite.detect import (
    DEFAULT_GEOMETRY,
    DEFAULT_MIN_SCORE,
    CropGeometry,
    Face,
    FaceDetector,
    FaceDetectorOptions,
    check_image,
    crop_face,
    to_rgb,
)
from ferlite.images import face_to_input, read_image, read_image_with_size
from ferlite.labels import balance as balance_probs
from ferlite.runtime import Predictor, load_predictor

__all__ = ["Recognizer", "predict", "predict_batch", "read_image", "scale_results"]


def scale_results(results: list[dict], shape: tuple[int, ...], size: tuple[int, int]) -> list[dict]:
    """:meth:`Recognizer.analyze` results on a picture of ``shape`` (H, W, ...), with boxes and keypoints moved
    to pixels of the same picture at ``size`` (width, height): a large JPEG that
    :func:`~ferlite.images.read_image_with_size` decoded reduced. The results as they are when the sizes agree."""
    h, w = shape[:2]
    if (w, h) == tuple(size):
        return results
    sx, sy = size[0] / w, size[1] / h
    out = []
    for r in results:
        x, y, bw, bh = r["box"]
        x0, y0 = round(x * sx), round(y * sy)
        x1, y1 = min(size[0], round((x + bw) * sx)), min(size[1], round((y + bh) * sy))
        out.append({**r, "box": (x0, y0, x1 - x0, y1 - y0),
                    "keypoints": [(kx * sx, ky * sy) for kx, ky in r["keypoints"]]})
    return out


class Recognizer:
    """A loaded expression model with a face detector (loaded on first use).

    Build one with :meth:`from_pretrained`. ``geometry`` is how detections are cropped
    (None: the measured default of the detector in use, :data:`ferlite.detect.DEFAULT_GEOMETRY`).

    ``balance`` (0 to 1) is the strength of the class-balanced decision: the model's outputs divided by its training
    class prior to that power (:func:`ferlite.labels.balance`), then renormalised; every probability this object
    returns (``predict``, ``predict_batch``, ``analyze``'s ``emotions`` and ``top``) is the balanced one. 0 gives the
    model's own outputs, an estimate of how FER+'s annotators would vote. None (the default) takes the strength
    recorded in the model's sidecar (``balance``: the bundled models carry the one chosen on real photos,
    ``docs/evaluation.md``), or 0 for a model whose sidecar records none. A strength above 0 needs the sidecar's
    ``class_prior`` (the bundled models have it, and ``ferlite train`` writes it).
    """

    def __init__(self, predictor: Predictor, *, detector: str = "auto", min_score: float = DEFAULT_MIN_SCORE,
                 geometry: CropGeometry | None = None, balance: float | None = None) -> None:
        self.predictor = predictor
        self.detector_options = FaceDetectorOptions(detector=detector, min_score=min_score)
        self.geometry = geometry
        self.balance = _check_balance(balance, predictor)
        self._detector: FaceDetector | None = None

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, *, detector: str = "auto",
                        min_score: float = DEFAULT_MIN_SCORE, geometry: CropGeometry | None = None,
                        balance: float | None = None) -> Recognizer:
        """Load a registered model name, a ``.keras``/``.tflite`` path, or (None) the default pretrained model
        in its float16 TFLite form (:data:`ferlite.weights.DEFAULT_INFERENCE_MODEL`: same accuracy, no TensorFlow)."""
        from ferlite.weights import DEFAULT_INFERENCE_MODEL

        options = FaceDetectorOptions(detector=detector, min_score=min_score)  # validate before the slow load
        if balance is not None:
            _check_balance(balance)
        model = DEFAULT_INFERENCE_MODEL if name_or_path is None else name_or_path
        return cls(load_predictor(model), detector=options.detector, min_score=options.min_score, geometry=geometry,
                   balance=balance)

    @property
    def classes(self) -> tuple[str, ...]:
        """The output class names, in column order."""
        return self.predictor.classes

    @property
    def detector(self) -> FaceDetector:
        """The face detector, loaded on first use."""
        if self._detector is None:
            self._detector = FaceDetector(self.detector_options)
        return self._detector

    @property
    def crop_geometry(self) -> CropGeometry:
        """The crop geometry :meth:`analyze` uses."""
        return self.geometry or DEFAULT_GEOMETRY[self.detector.name]

    def _prepare(self, face: object, color: str, what: str = "face") -> np.ndarray:
        """One face as the model's uint8 (S, S, C) input."""
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if isinstance(face, (str, os.PathLike)):
            face, color = read_image(face), "rgb"
        face = check_image(face, what)
        return face_to_input(face, self.predictor.input_size, self.predictor.channels, color=color)

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """The (balanced, see the class) probabilities of a uint8 ``(N, S, S, C)`` batch of model inputs."""
        probs = self.predictor.predict(batch)
        return balance_probs(probs, self.predictor.class_prior, self.balance) if self.balance else probs

    def predict(self, face: object, *, color: str = "rgb") -> dict[str, float]:
        """Class probabilities of one face crop (array or image path), in class order, summing to 1."""
        probs = self.outputs(self._prepare(face, color)[None])[0]
        return dict(zip(self.classes, map(float, probs), strict=True))

    def predict_batch(self, faces: Iterable[object] | np.ndarray, *, color: str = "rgb"):
        """A ``pandas.DataFrame`` of probabilities: one row per face (array or path), one column per class.

        ``faces`` is a sequence of faces or a stacked uint8 array (N, H, W) / (N, H, W, 3).
        """
        import pandas as pd

        if isinstance(faces, (str, os.PathLike)) or (isinstance(faces, np.ndarray) and (
                faces.ndim < 3 or (faces.ndim == 3 and faces.shape[-1] in (1, 3)))):
            got = f"an array of shape {faces.shape}" if isinstance(faces, np.ndarray) else repr(str(faces))
            raise TypeError(f"predict_batch takes a sequence of faces, got one face ({got}); use predict() for one")
        if not isinstance(faces, (Iterable, np.ndarray)):
            raise TypeError(f"predict_batch takes a sequence of faces (arrays or image paths), "
                            f"got {type(faces).__name__}")
        s, c = self.predictor.input_size, self.predictor.channels
        batch = [self._prepare(f, color, f"faces[{i}]") for i, f in enumerate(faces)]
        batch = np.stack(batch) if batch else np.zeros((0, s, s, c), np.uint8)
        return pd.DataFrame(self.outputs(batch), columns=list(self.classes))

    def face_inputs(self, image: np.ndarray, *, color: str = "rgb",
                    max_faces: int | None = None) -> tuple[list[Face], np.ndarray]:
        """The faces detected in an image array, largest first (at most ``max_faces``), and their crops as the
        model's uint8 ``(N, S, S, C)`` input: what :meth:`analyze` predicts (cut by :attr:`crop_geometry`)."""
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces must be at least 1 (or None for all), got {max_faces}")
        rgb = to_rgb(image, color)
        faces = self.detector.detect(rgb)[:max_faces]
        s, c = self.predictor.input_size, self.predictor.channels
        crops = [self._prepare(crop_face(rgb, f, self.crop_geometry), "rgb") for f in faces]
        return faces, (np.stack(crops) if crops else np.zeros((0, s, s, c), np.uint8))

    def analyze(self, image: object, *, color: str = "rgb") -> list[dict]:
        """Detect the faces of an image (array or path) and predict each, largest face first.

        Returns:
            ``[{"box": (x, y, w, h), "score": float, "keypoints": [(x, y), ...], "emotions": {class: p},
            "top": class}]``, with boxes and keypoints in pixels of the input image (of the file, for a
            path, also when a large JPEG is decoded reduced: see :mod:`ferlite.images`).
        """
        if isinstance(image, (str, os.PathLike)):
            rgb, size = read_image_with_size(image)
            return scale_results(self.analyze(rgb), rgb.shape, size)
        faces, crops = self.face_inputs(image, color=color)
        if not faces:
            return []
        out = []
        for f, p in zip(faces, self.outputs(crops), strict=True):
            emotions = dict(zip(self.classes, map(float, p), strict=True))
            out.append({"box": f.box, "score": f.score, "keypoints": list(f.keypoints), "emotions": emotions,
                        "top": max(emotions, key=emotions.get)})
        return out

    def close(self) -> None:
        """Release the face detector (it is loaded again if needed)."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None


def _check_balance(strength: float | None, predictor: Predictor | None = None) -> float:
    """``strength`` (None: ``predictor``'s recorded default, else 0), checked: a number in [0, 1] and, when above 0,
    for a ``predictor`` with a class prior above 0 for every class; else ValueError naming the model."""
    if strength is None:
        strength = predictor.default_balance if predictor is not None else 0.0
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"balance must be a number in [0, 1] (0: the model's own outputs, 1: the full class-balanced "
                         f"decision), got {strength!r}")
    if not strength or predictor is None:
        return float(strength)
    if predictor.class_prior is None:
        raise ValueError(f"balance={strength} needs the model's class prior, and {predictor.path.name} has none (its "
                         "sidecar has no 'class_prior'); use balance=0, or add the mean training target per class")
    if (predictor.class_prior == 0).any():
        absent = [c for c, p in zip(predictor.classes, predictor.class_prior, strict=True) if p == 0]
        raise ValueError(f"balance={strength} divides by the training class prior, and {predictor.path.name} was "
                         f"trained without any {', '.join(absent)} (prior 0): use balance=0 with this model")
    return float(strength)


@lru_cache(maxsize=8)
def _cached(model: str | None, strength: float | None) -> Recognizer:
    return Recognizer.from_pretrained(model, balance=strength)


def predict(face: object, *, color: str = "rgb", model: str | os.PathLike | None = None,
            balance: float | None = None) -> dict[str, float]:
    """Probabilities of one face (array or image path) with the default model (or ``model``), loaded once; ``balance``
    as in :class:`Recognizer`."""
    return _cached(None if model is None else str(model), balance).predict(face, color=color)


def predict_batch(faces: Iterable[object] | np.ndarray, *, color: str = "rgb",
                  model: str | os.PathLike | None = None, balance: float | None = None):
    """A DataFrame of probabilities, one row per face, with the default model (or ``model``), loaded once;
    ``balance`` as in :class:`Recognizer`."""
    return _cached(None if model is None else str(model), balance).predict_batch(faces, color=color)
