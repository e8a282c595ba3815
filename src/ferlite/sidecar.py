"""Model sidecars: the JSON file beside every model (``model.keras`` -> ``model.json``).

A sidecar names the classes in output order, the input size and channels, how images are
converted, and where the model came from (training command, data, metrics, or the source of an
export). Registered pretrained files also have the same facts in :mod:`ferlite.weights`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ferlite._atomic import atomic_path

__all__ = ["read_sidecar", "write_sidecar", "model_info", "classes_of"]


def read_sidecar(model_path: str | os.PathLike) -> dict:
    """The JSON sidecar beside a model file (``model.keras`` -> ``model.json``), or ``{}`` if none."""
    side = Path(model_path).with_suffix(".json")
    return json.loads(side.read_text()) if side.is_file() else {}


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
