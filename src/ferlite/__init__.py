"""ferlite: tiny facial expression recognition models trained on FER+ soft labels.

Two wings: the runtime, the top-level modules of ``ferlite`` (numpy, OpenCV, LiteRT: never TensorFlow), and the
training wing, :mod:`ferlite.training` (TensorFlow / Keras 3), which the runtime never imports.

``import ferlite`` is light: the public names below are imported on first use (``create_model`` and
``list_models`` from the training wing), and TensorFlow only when a Keras model is built, trained, loaded or
exported.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "ferlite.training.models",
    "list_models": "ferlite.training.models",
    "predict": "ferlite.recognizer",
    "predict_batch": "ferlite.recognizer",
    "Recognizer": "ferlite.recognizer",
    "read_image": "ferlite.recognizer",
    "ImageError": "ferlite.images",
    "detect_faces": "ferlite.detect",
    "crop_face": "ferlite.detect",
    "Face": "ferlite.detect",
    "FaceDetector": "ferlite.detect",
    "FaceDetectorOptions": "ferlite.detect",
    "CropGeometry": "ferlite.detect",
    "FERPLUS_CLASSES": "ferlite.labels",
    "votes_to_targets": "ferlite.labels",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ferlite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
