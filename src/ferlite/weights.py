"""The one registry of pretrained files (models and the face detector), fetched with pooch.

Resolution of a registered name, in order: a cached file with the right sha256 > the file
bundled inside the package with the right sha256 > a download (checked against the sha256;
a file with the wrong hash is never used and never left behind).

* Cache folder: ``$FERLITE_HOME`` or ``pooch.os_cache("ferlite")``, files under ``weights/``.
* Mirrors: ``$FERLITE_BASE_URL`` replaces every download URL's folder (same file names).

This module never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "WeightsEntry",
    "WeightsUnavailable",
    "REGISTRY",
    "DEFAULT_MODEL",
    "cache_dir",
    "list_weights",
    "registry_entry",
    "status",
    "fetch",
    "resolve_model",
    "sidecar_for",
]

BASE_URL = "https://github.com/ferlite/ferlite/releases/download/v0.1.0/"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
FERPLUS9 = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown")
_GRAY48 = "uint8 gray 48x48 face crop; scaling to [-1, 1] is inside the model"


class WeightsUnavailable(OSError):
    """A registered file is neither cached nor bundled and could not be downloaded."""


@dataclass(frozen=True)
class WeightsEntry:
    """One registered file: where it comes from, its hash, and what the model expects."""

    name: str
    filename: str
    sha256: str
    url: str
    kind: str  # "keras", "tflite" or "detector"
    description: str
    bundled: bool = False
    classes: tuple[str, ...] | None = None
    input_size: int | None = None
    channels: int | None = None
    preprocessing: str = ""

    @property
    def bundled_path(self) -> Path:
        """Where the package would hold this file."""
        return PRETRAINED_DIR / self.filename


def _model(name: str, sha256: str, kind: str, description: str) -> WeightsEntry:
    ext = ".keras" if kind == "keras" else ".tflite"
    return WeightsEntry(name, name + ext, sha256, BASE_URL + name + ext, kind, description, bundled=True,
                        classes=FERPLUS9, input_size=48, channels=1, preprocessing=_GRAY48)


REGISTRY: dict[str, WeightsEntry] = {
    e.name: e
    for e in (
        _model("ferplus-mfn-1.0", "13ef71c3dd44a32cdc4fe3186808bf76d434f21f4e82379a10b5c83971c55d5e", "keras",
               "MobileFaceNet alpha 1.0 trained on FER+ soft labels (seed9, 9 classes); the default model"),
        WeightsEntry(
            "blaze-face-short-range", "blaze_face_short_range.tflite",
            "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f",
            "https://storage.googleapis.com/mediapipe-models/face_detector/blaze_face_short_range/float16/1/"
            "blaze_face_short_range.tflite",
            "detector", "MediaPipe BlazeFace short-range face detector (Apache-2.0)",
            preprocessing="RGB image of any size",
        ),
    )
}
DEFAULT_MODEL = "ferplus-mfn-1.0"


def cache_dir() -> Path:
    """ferlite's cache folder: ``$FERLITE_HOME`` or the platform cache (``pooch.os_cache("ferlite")``)."""
    env = os.environ.get("FERLITE_HOME")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("ferlite"))


def list_weights() -> list[WeightsEntry]:
    """All registered entries."""
    return list(REGISTRY.values())


def registry_entry(name: str) -> WeightsEntry:
    """The entry registered as ``name``; ValueError listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown weights {name!r}; registered: {', '.join(REGISTRY)}") from None


def _url(entry: WeightsEntry) -> str:
    mirror = os.environ.get("FERLITE_BASE_URL")
    return mirror.rstrip("/") + "/" + entry.filename if mirror else entry.url


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cached_path(entry: WeightsEntry) -> Path:
    return cache_dir() / "weights" / entry.filename


def _good(path: Path, entry: WeightsEntry) -> bool:
    return path.is_file() and _sha256(path) == entry.sha256


def status(name: str) -> str:
    """Where ``name`` would come from now: ``cached``, ``bundled`` or ``remote``."""
    entry = registry_entry(name)
    if _good(_cached_path(entry), entry):
        return "cached"
    if entry.bundled and _good(entry.bundled_path, entry):
        return "bundled"
    return "remote"


def fetch(name: str, *, progress: bool = False) -> Path:
    """Path to the verified file registered as ``name``, downloading it if needed.

    Raises:
        ValueError: ``name`` is not registered.
        WeightsUnavailable: not cached or bundled, and the download failed or its hash was wrong.
    """
    import pooch

    entry = registry_entry(name)
    cached = _cached_path(entry)
    if _good(cached, entry):
        return cached
    if entry.bundled and _good(entry.bundled_path, entry):
        return entry.bundled_path
    url = _url(entry)
    try:
        path = pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=entry.filename,
                              path=cached.parent, progressbar=progress)
    except ValueError as exc:  # pooch: hash mismatch (the downloaded file is removed)
        raise WeightsUnavailable(
            f"downloaded {entry.filename} from {url}, but its sha256 is not the registered {entry.sha256}; "
            f"the file was discarded ({exc})"
        ) from exc
    except Exception as exc:  # network errors of requests/pooch
        raise WeightsUnavailable(
            f"{entry.filename} ({name}) is not in the cache {cached.parent} and could not be downloaded from {url}: "
            f"{exc}. To pre-fetch it, run `ferlite weights fetch {name}` on a connected machine and copy "
            f"{entry.filename} into {cached.parent}, or set FERLITE_BASE_URL to a mirror that serves it."
        ) from exc
    return Path(path)


def resolve_model(name_or_path: str | os.PathLike | None = None) -> Path:
    """A model file from an explicit path, a registered name, or (None) the default model."""
    if name_or_path is None:
        return fetch(DEFAULT_MODEL)
    path = Path(name_or_path)
    if path.is_file():
        return path
    if str(name_or_path) in REGISTRY:
        return fetch(str(name_or_path))
    raise FileNotFoundError(
        f"no model file {str(name_or_path)!r} and no registered weights of that name; "
        f"registered: {', '.join(REGISTRY)}"
    )


def sidecar_for(path: str | os.PathLike) -> dict:
    """Registry metadata (name, classes, input size, channels) for a registered file, else ``{}``."""
    name = Path(path).name
    for entry in REGISTRY.values():
        if entry.filename == name and entry.classes:
            return {"name": entry.name, "classes": list(entry.classes), "input_size": entry.input_size,
                    "channels": entry.channels}
    return {}
