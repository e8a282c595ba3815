"""Model sidecars: the JSON file beside every model (``model.keras`` -> ``model.json``).

A sidecar names the classes in output order, the input size and channels, how images are
converted, and where the model came from (training command, data, metrics, or the source of an
export). Registered pretrained files also have the same facts in :mod:`ferlite.weights`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

from ferlite._atomic import atomic_path

__all__ = ["DECISION_KEYS", "read_sidecar", "write_sidecar", "model_info", "classes_of", "check_signature"]

DECISION_KEYS = ("class_prior", "class_prior_source", "balance", "balance_source")
"""The sidecar keys the class-balanced decision reads (:func:`ferlite.labels.balance`): a model made from another
(an export, a weight average) carries them over."""


def read_sidecar(model_path: str | os.PathLike) -> dict:
    """The JSON sidecar beside a model file (``model.keras`` -> ``model.json``), or ``{}`` if none.

    Raises:
        ValueError: the sidecar is not a JSON object (the message names it).
    """
    side = Path(model_path).with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        info = json.loads(side.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the sidecar {side} of {model_path} is not valid JSON ({exc}): expected a JSON object "
                         "(classes, input_size, channels, ...); fix it or remove it") from None
    if not isinstance(info, dict):
        raise ValueError(f"the sidecar {side} of {model_path} holds a JSON {type(info).__name__}: expected a JSON "
                         "object (classes, input_size, channels, ...)")
    return info


def model_info(model_path: str | os.PathLike) -> dict:
    """What is known of a model file: its sidecar, else the weights registry's entry for its file name, else ``{}``."""
    from ferlite import weights

    return read_sidecar(model_path) or weights.sidecar_for(model_path)


def classes_of(info: dict, num_outputs: int) -> tuple[str, ...]:
    """The class names in ``info`` (a sidecar), or the first ``num_outputs`` FER+ classes when it names none.

    Raises:
        ValueError: no classes named and more outputs than FER+ has classes.
    """
    from ferlite.labels import FERPLUS_CLASSES

    if info.get("classes"):
        return tuple(info["classes"])
    if num_outputs > len(FERPLUS_CLASSES):
        raise ValueError(f"model has {num_outputs} outputs and no sidecar naming its classes")
    return FERPLUS_CLASSES[:num_outputs]


def _source(model_path: Path, info: dict) -> str:
    """Where ``info`` came from, for messages: the sidecar file, or the weights registry's entry."""
    side = model_path.with_suffix(".json")
    if side.is_file():
        return f"sidecar file {side}"
    return f"the weights registry's entry {info['name']!r}" if info.get("name") else "the metadata given"


def check_signature(model_path: str | os.PathLike, info: dict, input_shape: Sequence[int | None],
                    output_shape: Sequence[int | None]) -> tuple[int, int, tuple[str, ...]]:
    """Check a loaded model against what is known of it; return ``(input_size, channels, classes)``.

    Args:
        model_path: the model file.
        info: its sidecar or registry metadata (:func:`model_info`).
        input_shape: the model's input shape, ``(B, S, S, C)`` with C 1 or 3 (B may be None).
        output_shape: its output shape, ``(B, K)``.

    Raises:
        ValueError: the shapes are not an image classifier's, or the sidecar disagrees with the model (input size,
            channels, number of classes, the file's size or sha256): the message names both sides.
    """
    path = Path(model_path)
    shape, out = list(input_shape), list(output_shape)
    if len(shape) != 4 or shape[1] != shape[2] or shape[1] is None or shape[3] not in (1, 3) or len(out) != 2 \
            or not out[1]:
        raise ValueError(f"{path}: expected an image classifier with input (B, S, S, 1|3) and output (B, K), got "
                         f"input {tuple(shape)} and output {tuple(out)}")
    size, channels, n = int(shape[1]), int(shape[3]), int(out[1])
    source = _source(path, info)
    _check_types(path, info, source, (size, channels, n))
    for key, value in (("input_size", size), ("channels", channels)):
        if info.get(key) is not None and int(info[key]) != value:
            raise ValueError(f"{path}: sidecar says {key}={info[key]}, but the model's input is [{size}, {size}, "
                             f"{channels}] ({source}); the sidecar belongs to another model, or the "
                             "model was replaced")
    classes = classes_of(info, n)
    if len(classes) != n:
        raise ValueError(f"{path}: sidecar names {len(classes)} classes but the model has {n} outputs ({source}, "
                         f"classes {', '.join(classes)}); the sidecar belongs to another model, or the "
                         "model was replaced")
    _check_file_digest(path, info, source)
    return size, channels, classes


def _check_types(path: Path, info: dict, source: str, model: tuple[int, int, int]) -> None:
    """``input_size`` and ``channels`` must be whole numbers and ``classes`` a list of names, where given."""
    size, channels, n = model
    for key, value in (("input_size", size), ("channels", channels)):
        got = info.get(key)
        if got is not None and (isinstance(got, bool) or not isinstance(got, numbers.Integral)):
            raise ValueError(f"{path}: {source} has {key}={got!r}: expected a whole number (the model's is {value})")
    classes = info.get("classes")
    if classes is not None and not (isinstance(classes, (list, tuple)) and all(isinstance(c, str) and c
                                                                               for c in classes)):
        raise ValueError(f"{path}: {source} has classes={classes!r}: expected a list of {n} class names (strings), "
                         "one per model output")


def _check_file_digest(path: Path, info: dict, source: str) -> None:
    """A sidecar that records the model file's ``sha256`` (``ferlite export`` does) must match the file."""
    if not info.get("sha256"):
        return
    from ferlite.weights import file_sha256

    actual = file_sha256(path)
    if actual != info["sha256"]:
        raise ValueError(f"{path} has sha256 {actual}, but {source} records {info['sha256']}: the model file was "
                         "modified or damaged after it was written; export it again (or remove 'sha256' from the "
                         "sidecar if the change is intended)")


def _json_safe(obj):
    """NaN and infinities become None, so the sidecar is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_sidecar(path: str | os.PathLike, info: dict) -> None:
    """Write ``info`` as strict JSON (NaN becomes null) to ``path``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_json_safe(info), indent=2) + "\n")
