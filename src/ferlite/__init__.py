"""ferlite: tiny facial expression recognition models trained on FER+ soft labels.

``import ferlite`` is light: the public names below are imported on first use, and TensorFlow
only when a Keras model is built, trained, loaded or exported.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "ferlite.models",
    "list_models": "ferlite.models",
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
