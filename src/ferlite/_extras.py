"""The optional parts of ferlite and the one error that says which to install.

``pip install ferlite`` is the runtime (LiteRT models, face detection, the demo, evaluation of ``.tflite``
models). The rest comes with extras: ``train`` (TensorFlow and matplotlib: training, export, ``.keras`` models,
plots), ``bulk`` (Ray), ``mediapipe`` (the MediaPipe face detector), ``serve`` (the HTTP server).
"""

from __future__ import annotations

# The module each extra brings, and what needs it (for the message).
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "train": (("tensorflow", "keras", "matplotlib"), "training, export, .keras models and plots"),
    "bulk": (("ray",), "bulk annotation on Ray Data"),
    "mediapipe": (("mediapipe",), "the mediapipe face detector"),
    "serve": (("fastapi", "uvicorn", "python_multipart", "starlette"), "the HTTP server (ferlite serve)"),
}


class MissingExtraError(ImportError):
    """A part of ferlite was used without the extra that installs what it needs; the message names the extra."""


def extra_message(extra: str, missing: str) -> str:
    """One line: what needs ``extra``, the module that is missing, and the pip command that installs it."""
    return (f"{EXTRAS[extra][1]} needs {missing.split('.')[0]}, which is not installed: "
            f'pip install "ferlite[{extra}]"')


def extra_for(module: str | None) -> str | None:
    """The extra that installs the top-level package of ``module`` (e.g. ``tensorflow.lite`` -> ``train``), if any."""
    top = (module or "").split(".")[0]
    return next((extra for extra, (modules, _) in EXTRAS.items() if top in modules), None)
