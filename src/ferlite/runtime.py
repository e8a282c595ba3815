"""Keras and LiteRT models behind one predict interface.

:func:`load_predictor` takes a registered weights name (see :mod:`ferlite.weights`) or a
path to a ``.keras`` or ``.tflite`` file and returns a :class:`Predictor`. Loading a
``.tflite`` file never imports TensorFlow: it runs on the ``ai-edge-litert`` interpreter.
TensorFlow/Keras is imported only when a ``.keras`` model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferlite.sidecar import check_signature, model_info

__all__ = ["Predictor", "load_predictor"]


@dataclass
class Predictor:
    """A loaded model: give it uint8 faces, get class probabilities.

    Attributes:
        path: the model file.
        classes: output class names, in column order.
        input_size: side of the square input.
        channels: 1 (gray) or 3.
        backend: ``"keras"`` or ``"litert"``.
        class_prior: the mean training target of each class (the sidecar's ``class_prior``), or None when the
            sidecar has none: what :func:`ferlite.labels.balance` divides by.
        default_balance: the class-balanced decision's strength recorded in the sidecar (``balance``), else 0.
    """

    path: Path
    classes: tuple[str, ...]
    input_size: int
    channels: int
    backend: str
    _impl: object = None
    class_prior: np.ndarray | None = None
    default_balance: float = 0.0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """``(B, S, S, C)`` uint8 faces -> ``(B, len(classes))`` float32 probabilities (rows sum to 1)."""
        batch = np.asarray(batch)
        expected = (self.input_size, self.input_size, self.channels)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"expected a uint8 batch of shape (B, {expected[0]}, {expected[1]}, {expected[2]}), "
                             f"got {batch.dtype} {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        probs = self._impl(batch)
        probs = np.asarray(probs, dtype=np.float32)
        return probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)


def _keras_predictor(path: Path, sidecar: dict) -> Predictor:
    import tensorflow as tf

    from ferlite.modelfile import load_keras_model

    model = load_keras_model(path)
    size, channels, classes = check_signature(path, sidecar, model.input_shape, model.output_shape)

    # One graph traced for every batch size: an eager call costs ~15x more at batch 1 (54 vs 3.5 ms), and
    # predict_on_batch retraces for each new batch size.
    infer = tf.function(lambda x: model(x, training=False),
                        input_signature=[tf.TensorSpec((None, size, size, channels), tf.uint8)])

    def run(batch: np.ndarray) -> np.ndarray:
        return infer(batch).numpy()

    return Predictor(path, classes, size, channels, "keras", run)


def load_predictor(name_or_path: str | os.PathLike | None = None) -> Predictor:
    """Load a model by registered name or alias (``"fast"``, ``"default"``; None: the default pretrained model) or
    file path (an existing file comes first: see :func:`ferlite.weights.resolve_model`).

    Raises:
        FileNotFoundError: the path does not exist (or the name is neither registered nor a file).
        ValueError: the file is not a usable ``.keras`` or ``.tflite`` model (damaged, truncated, another format,
            a ``Lambda`` layer), or its sidecar disagrees with it; the message names the file, what it looked like
            and what was expected.
    """
    from ferlite import weights
    from ferlite.modelfile import check_model_file

    path = check_model_file(weights.resolve_model(name_or_path))
    sidecar = model_info(path)
    if path.suffix == ".keras":
        predictor = _keras_predictor(path, sidecar)
    elif path.suffix == ".tflite":
        from ferlite.litert import litert_predictor

        predictor = litert_predictor(path, sidecar)
    else:
        raise ValueError(f"unsupported model file {path}: expected a .keras or .tflite file")
    predictor.class_prior = class_prior(sidecar, predictor.classes, path)
    predictor.default_balance = sidecar.get("balance", 0.0)  # checked where it is used (ferlite.recognizer)
    return predictor


def class_prior(sidecar: dict, classes: tuple[str, ...], path: Path) -> np.ndarray | None:
    """The sidecar's ``class_prior`` in the order of ``classes`` (None without one); ValueError naming the file when
    it does not cover the classes or is not a probability distribution (a class absent from training has 0)."""
    prior = sidecar.get("class_prior")
    if prior is None:
        return None
    values = np.array([prior.get(c, np.nan) for c in classes], dtype=np.float64) if isinstance(prior, dict) else None
    if values is None or not np.isfinite(values).all() or (values < 0).any() or abs(values.sum() - 1) > 1e-3:
        raise ValueError(f"the class_prior of {path}'s sidecar is {prior!r}: expected a probability for each class "
                         f"({', '.join(classes)}), summing to 1")
    return values
