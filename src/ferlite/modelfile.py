"""Model files: a cheap check of a ``.keras`` or ``.tflite`` file before loading it, and safe Keras loading.

Every way ferlite opens a model (:func:`ferlite.runtime.load_predictor`, ``ferlite eval``, ``ferlite export``,
training's ``--init-weights`` and ``--resume``) goes through here, so a damaged, truncated or foreign file gives
one :class:`ValueError` naming the file, what it looked like and what was expected, instead of whatever the
zip, HDF5, Keras or LiteRT layer underneath happens to raise.

* :func:`check_model_file` reads the file's structure only (never imports TensorFlow): a ``.keras`` file must be
  a whole zip archive (every member reads back and passes its CRC-32 check) holding ``config.json`` and
  ``model.weights.h5``, with no ``Lambda`` layer; a ``.tflite`` file must carry the TFLite file identifier.
* :func:`load_keras_model` loads a ``.keras`` file with Keras ``safe_mode`` on, always: a ``Lambda`` layer holds
  arbitrary Python code (a pickled function), which is refused with a message saying how to rebuild the model.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path

__all__ = ["KERAS_EXPECTED", "TFLITE_EXPECTED", "check_model_file", "describe_file", "load_keras_model"]

KERAS_EXPECTED = "a Keras 3 .keras file (a zip archive holding config.json and model.weights.h5)"
TFLITE_EXPECTED = "a TFLite flatbuffer (file identifier 'TFL3' at byte 4)"
_KERAS_MEMBERS = ("config.json", "model.weights.h5")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
# the layers ferlite.training.quantnoise adds to a --quant-noise / --fake-quant run's checkpoint (last.keras)
_NOISE_LAYERS = frozenset({"StepNoise", "FakeQuant"})


def describe_file(path: str | os.PathLike) -> str:
    """What a file looks like, in a few words (for error messages): empty, a zip archive and its members,
    HDF5, TFLite, text (its first line) or binary data (its first bytes)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "an empty file"
    with open(path, "rb") as f:
        head = f.read(64)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
            return f"a damaged zip archive of {size:,} bytes ({exc})"
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"a zip archive of {size:,} bytes holding {shown or 'nothing'}"
    if head.startswith(_ZIP_SIGNATURE):
        return f"the start of a zip archive without its end ({size:,} bytes: a truncated file?)"
    if head.startswith(_HDF5_SIGNATURE):
        return f"an HDF5 file of {size:,} bytes (a legacy Keras .h5 model or bare weights?)"
    if head[4:8] == b"TFL3":
        return f"a TFLite flatbuffer of {size:,} bytes"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.splitlines()[0] if text.strip() else text
        return f"a text file of {size:,} bytes starting {first[:40]!r}"
    return f"{size:,} bytes of binary data starting {head[:8].hex(' ')}"


def _not_a(path: Path, expected: str, got: str) -> ValueError:
    return ValueError(f"{path} is not a valid {path.suffix} model: expected {expected}, got {got}")


def _layers_of(config, class_names: frozenset[str]) -> list[str]:
    """Names of the layers of classes ``class_names`` anywhere in a Keras config (nested models included)."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") in class_names:
            found.append(str((config.get("config") or {}).get("name", "?")))
        for value in config.values():
            found += _layers_of(value, class_names)
    elif isinstance(config, list):
        for value in config:
            found += _layers_of(value, class_names)
    return found


def _training_checkpoint(path: Path, exc: Exception) -> ValueError | None:
    """The error for a ``--quant-noise`` / ``--fake-quant`` training checkpoint, whose noise layers only the training
    wing registers; None for another file."""
    with zipfile.ZipFile(path) as z:
        layers = _layers_of(json.loads(z.read("config.json")), _NOISE_LAYERS)
    if not layers:
        return None
    return ValueError(f"{path} is a --quant-noise / --fake-quant training checkpoint: its layers "
                      f"{', '.join(layers[:3])}{', ...' if len(layers) > 3 else ''} belong to training; load it with "
                      'ferlite.training.quantnoise.load_checkpoint (pip install "ferlite[train]"), or use the run\'s '
                      f"model.keras, saved without them ({type(exc).__name__} from Keras)")


def _lambda_refused(path: Path, layers: list[str]) -> ValueError:
    names = ", ".join(layers) if layers else "a layer"
    return ValueError(
        f"{path} holds a Lambda layer ({names}): Lambda layers hold arbitrary Python code, so ferlite loads models "
        "only in Keras safe mode, which refuses them. Rebuild the model with built-in layers (e.g. "
        "keras.layers.Rescaling instead of Lambda(lambda x: x / 127.5 - 1)) or a registered custom layer class, "
        "copy the weights over and save it again")


def _damaged_member(z: zipfile.ZipFile) -> str | None:
    """Read every member of ``z`` through: the first one that fails (its CRC-32, its local header, its
    compressed data) and why, or None when all are whole."""
    for info in z.infolist():
        try:
            with z.open(info) as f:
                while f.read(1 << 20):
                    pass
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            # NotImplementedError / RuntimeError: a damaged header that names another compression method,
            # zip version or encryption
            return f"member {info.filename} fails its check ({exc})"
    return None


def _check_keras(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise _not_a(path, KERAS_EXPECTED, describe_file(path))
    try:
        with zipfile.ZipFile(path) as z:
            missing = [m for m in _KERAS_MEMBERS if m not in z.namelist()]
            if missing:
                raise _not_a(path, KERAS_EXPECTED, f"{describe_file(path)}, without {' or '.join(missing)}")
            bad = _damaged_member(z)  # reads every member: a flipped or missing byte fails a check
            if bad is not None:
                raise _not_a(path, KERAS_EXPECTED, f"a damaged zip archive: {bad} (the file was modified or "
                                                   "corrupted after it was written)")
            config = json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise _not_a(path, KERAS_EXPECTED, f"a damaged zip archive ({exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_a(path, KERAS_EXPECTED, f"a zip archive whose config.json is not JSON ({exc})") from exc
    layers = _layers_of(config, frozenset({"Lambda"}))
    if layers:
        raise _lambda_refused(path, layers)


def _check_tflite(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":
        raise _not_a(path, TFLITE_EXPECTED, describe_file(path))


def check_model_file(path: str | os.PathLike) -> Path:
    """Check a model file's structure without loading it (and without TensorFlow); return it as a Path.

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: not a ``.keras``/``.tflite`` name, or the contents are not what that name promises (the
            message names the file, what it looked like and what was expected), or a ``.keras`` model holds a
            ``Lambda`` layer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix == ".keras":
        _check_keras(path)
    elif path.suffix == ".tflite":
        _check_tflite(path)
    else:
        raise ValueError(f"unsupported model file {path}: expected a .keras or .tflite file, got "
                         f"{describe_file(path)}")
    return path


def load_keras_model(path: str | os.PathLike, *, compile: bool = False):
    """``keras.models.load_model`` in safe mode, after :func:`check_model_file`; any loader error becomes one
    ValueError naming the file.

    Args:
        path: a ``.keras`` file.
        compile: restore the optimizer and loss too (training's ``--resume``).

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: not a loadable ``.keras`` model, or it holds a ``Lambda`` layer (never loaded unsafely).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"expected a Keras model (.keras), got {path}")
    check_model_file(path)
    import keras

    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # zip, HDF5, JSON and Keras deserialization errors of every kind
        if "Lambda" in str(exc) and "safe_mode" in str(exc):
            raise _lambda_refused(path, []) from exc
        refused = _training_checkpoint(path, exc)
        if refused is not None:
            raise refused from exc
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ValueError(f"{path} could not be loaded as {KERAS_EXPECTED}: {reason[:400]}") from exc
