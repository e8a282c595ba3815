"""The one registry of pretrained files (expression models and the face detectors), fetched with pooch.

Resolution of a registered name, in order: a cached file with the registered sha256 > the file
bundled inside the package with the registered sha256 > a download, checked against the sha256
(pooch writes to a temporary name first, so a file with the wrong hash is never used nor left behind).
The expression models are bundled only (their release URL is not published, so a missing bundled model
is an error); the face detectors (YuNet, BlazeFace) are bundled and also downloadable from their projects' own
URLs (``fallback_download``), so a package without them still works online.

* Cache folder: ``$FERLITE_HOME`` or ``pooch.os_cache("ferlite")``; weights live in its ``weights/``.
* Mirrors: ``$FERLITE_BASE_URL`` replaces the folder of every download URL, the detectors' included
  (the mirror serves the same file names).
* Aliases (:data:`ALIASES`): ``default`` (the default model, Keras) and ``fast`` (the small model as int8 TFLite)
  are accepted wherever a registered name is; in :func:`resolve_model` an existing file of that name comes first.
* ``unavailable``: an entry whose sha256 is still None (registered, not published yet), or a bundled
  entry whose file is missing from the package and from the cache; :func:`fetch` refuses it with a clear error.

This module never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ferlite.labels import FERPLUS_CLASSES

__all__ = [
    "WeightsEntry",
    "WeightsUnavailable",
    "REGISTRY",
    "ALIASES",
    "DEFAULT_MODEL",
    "FAST_MODEL",
    "cache_dir",
    "weights_dir",
    "list_weights",
    "registry_entry",
    "canonical_name",
    "download_url",
    "file_sha256",
    "locate",
    "status",
    "fetch",
    "resolve_model",
    "sidecar_for",
]

WEIGHTS_VERSION = "0.1.0"
BASE_URL = f"https://github.com/ferlite/ferlite/releases/download/v{WEIGHTS_VERSION}/"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
_URL_SCHEMES = ("http://", "https://", "ftp://")
_KINDS = ("keras", "tflite", "detector")
_SEED9 = tuple(FERPLUS_CLASSES[:9])
_GRAY48 = "uint8 gray 48x48 face crop (H, W, 1); scaling to [-1, 1] is inside the model"


class WeightsUnavailable(OSError):
    """A registered file is neither cached nor bundled and cannot be downloaded (or is unavailable)."""


@dataclass(frozen=True)
class WeightsEntry:
    """One registered file: where it comes from, its sha256, and what the model expects."""

    name: str
    filename: str
    sha256: str | None  # None: registered but not published yet
    url: str
    kind: str  # "keras", "tflite" or "detector"
    description: str
    classes: tuple[str, ...] | None = None
    input_size: int | None = None
    channels: int | None = None
    preprocessing: str = ""
    metrics: dict[str, float] = field(default_factory=dict, hash=False)
    size: int | None = None  # bytes of the registered file
    params: int | None = None  # parameters of the network (an export: its source model's)
    macs: int | None = None  # multiply-adds of one forward pass (ferlite.training.models.count_macs)
    bundled: bool = False
    fallback_download: bool = False  # bundled, and downloaded from ``url`` when the package lacks the file

    def __post_init__(self) -> None:
        if self.sha256 is not None and (len(self.sha256) != 64 or set(self.sha256) - set("0123456789abcdef")):
            raise ValueError(f"{self.name}: sha256 {self.sha256!r} is not 64 lowercase hex digits (or None)")
        if self.kind not in _KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {', '.join(_KINDS)}")

    @property
    def published(self) -> bool:
        """True once the registry holds the file's sha256 (not None)."""
        return self.sha256 is not None

    @property
    def bundled_path(self) -> Path:
        """Where the installed package holds (or would hold) this file."""
        return PRETRAINED_DIR / self.filename


def _model(name: str, kind: str, description: str, *, sha256: str | None, size: int, params: int, macs: int,
           metrics: dict[str, float]) -> WeightsEntry:
    """An expression model of the FER+ seed9 protocol: 9 classes, gray 48x48 uint8 input, bundled."""
    filename = name + (".keras" if kind == "keras" else ".tflite")
    return WeightsEntry(name, filename, sha256, BASE_URL + filename, kind, description, classes=_SEED9,
                        input_size=48, channels=1, preprocessing=_GRAY48, metrics=metrics, size=size, params=params,
                        macs=macs, bundled=True)


# When a model is (re)trained or exported, update its `sha256=..., size=..., params=..., macs=...` and `metrics=...`
# lines. size is the file's bytes; params and macs are the network's (keras.Model.count_params and
# ferlite.training.models.count_macs of the .keras file; an export has its source model's). tests/test_weights.py checks
# sha256, size, params and macs against the bundled files. Metrics are FER2013Valid figures of that very file
# (`ferlite-eval --data FER2013Valid --model NAME --json`: mae and top1 under seed9, major8_acc).
REGISTRY: dict[str, WeightsEntry] = {e.name: e for e in (
    _model("ferplus-mfn-1.0", "keras", "MobileFaceNet alpha 1.0 on FER+ soft labels (seed9, 9 classes); the default",
           sha256="04e090da66546ccfe3da8cd2a2227ce3d73e0045d6995f93e56b9cd5b838ca98",
           size=1_227_732, params=211_465, macs=10_965_888,
           metrics={"data": "FER2013Valid (3,579 faces)", "mae": 0.0520, "top1": 0.827, "major8_acc": 0.869}),
    _model("ferplus-mfn-0.5", "keras", "MobileFaceNet alpha 0.5 on FER+ soft labels (seed9, 9 classes); smaller",
           sha256="0451f171eaaf4126bfbd2cd37611ffe887f25dea9e2bf2f9bc128a30421c9770",
           size=624_486, params=60_681, macs=3_086_784,
           metrics={"data": "FER2013Valid (3,579 faces)", "mae": 0.0574, "top1": 0.808, "major8_acc": 0.849}),
    _model("ferplus-mfn-1.0-int8", "tflite", "ferplus-mfn-1.0 as int8 TFLite: uint8 in, uint8 probabilities out",
           sha256="8648c05d235a273fd40a90aada285d7f6c743af3e2c94d5e4ebdaef3ddc8a301",
           size=314_616, params=211_465, macs=10_965_888,
           metrics={"data": "FER2013Valid (3,579 faces)", "mae": 0.0525, "top1": 0.828, "major8_acc": 0.868}),
    _model("ferplus-mfn-1.0-fp16", "tflite", "ferplus-mfn-1.0 as TFLite with float16 weights: float32 probabilities",
           sha256="c063df28ba4ef065fcfcce9b9da96af5ffa3ff0ef2cead085076f6a3ee355889",
           size=423_836, params=211_465, macs=10_965_888,
           metrics={"data": "FER2013Valid (3,579 faces)", "mae": 0.0520, "top1": 0.827, "major8_acc": 0.869}),
    _model("ferplus-mfn-0.5-int8", "tflite", "ferplus-mfn-0.5 as int8 TFLite: the fast model (alias 'fast')",
           sha256="0707bc77a77f9ce18c9ca5f3aacc82327a460df4bb682f3468fd2ad3b73e242a",
           size=122_424, params=60_681, macs=3_086_784,
           metrics={"data": "FER2013Valid (3,579 faces)", "mae": 0.0584, "top1": 0.805, "major8_acc": 0.845}),
    WeightsEntry(
        "blaze-face-short-range", "blaze_face_short_range.tflite",
        "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f",
        "https://storage.googleapis.com/mediapipe-models/face_detector/blaze_face_short_range/float16/1/"
        "blaze_face_short_range.tflite",
        "detector", "MediaPipe BlazeFace short-range face detector (float16, Apache-2.0), for MediaPipe Tasks",
        input_size=128, channels=3, preprocessing="RGB image of any size; MediaPipe Tasks resizes it",
        size=229_746, bundled=True, fallback_download=True,  # Apache-2.0: pretrained/blaze_face_short_range.LICENSE.txt
    ),
    WeightsEntry(
        "yunet-2023mar", "face_detection_yunet_2023mar.onnx",
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
        "detector", "YuNet face detector (OpenCV model zoo, MIT), run by OpenCV's cv2.FaceDetectorYN: the default",
        input_size=None, channels=3, preprocessing="BGR image of any size; OpenCV sets the input size per image",
        size=232_589, bundled=True, fallback_download=True,  # MIT: pretrained/face_detection_yunet_2023mar.LICENSE.txt
    ),
)}
DEFAULT_MODEL = "ferplus-mfn-1.0"
FAST_MODEL = "ferplus-mfn-0.5-int8"
# Plain names for a model choice, accepted wherever a registered name is (every --model, resolve_model, fetch, ...).
# An existing file path of the same name still comes first in resolve_model (see there).
ALIASES: dict[str, str] = {
    "default": DEFAULT_MODEL,  # the most accurate model (Keras); with no model named, inference runs its fp16 form
    "fast": FAST_MODEL,  # 28% of the default's multiply-adds, a 122 KB int8 file on LiteRT
}
# What predict()/Recognizer/demo load when no model is named: the same network as float16 TFLite, with the same
# FER2013Valid metrics (docs/model_card.md), which starts in 0.2 s on LiteRT instead of ~5 s with TensorFlow.
DEFAULT_INFERENCE_MODEL = "ferplus-mfn-1.0-fp16"


def cache_dir() -> Path:
    """ferlite's cache folder: ``$FERLITE_HOME`` or the platform cache (``pooch.os_cache("ferlite")``)."""
    env = os.environ.get("FERLITE_HOME")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("ferlite"))


def weights_dir() -> Path:
    """Where fetched weights are cached: ``cache_dir() / "weights"``."""
    return cache_dir() / "weights"


def list_weights() -> list[WeightsEntry]:
    """All registered entries, published or not."""
    return list(REGISTRY.values())


def canonical_name(name: str) -> str:
    """The registered name an alias stands for (``"fast"`` -> ``"ferplus-mfn-0.5-int8"``); any other name as given."""
    return ALIASES.get(name, name) if isinstance(name, str) else name


def registry_entry(name: str) -> WeightsEntry:
    """The entry registered as ``name`` or as the alias ``name``; ValueError listing the registered names otherwise."""
    try:
        return REGISTRY[canonical_name(name)]
    except (KeyError, TypeError):
        raise ValueError(f"unknown weights {name!r}; registered: {', '.join(REGISTRY)}; "
                         f"aliases: {', '.join(ALIASES)}") from None


def download_url(name: str) -> str:
    """The URL ``name`` is downloaded from: ``$FERLITE_BASE_URL/<filename>`` when set, else the registered URL.

    Raises:
        ValueError: ``name`` is not registered, or ``$FERLITE_BASE_URL`` is not an http(s)/ftp URL.
    """
    entry = registry_entry(name)
    mirror = os.environ.get("FERLITE_BASE_URL")
    if not mirror:
        return entry.url
    if not mirror.startswith(_URL_SCHEMES):
        raise ValueError(f"FERLITE_BASE_URL={mirror!r} is not a URL: expected it to start with "
                         f"{', '.join(_URL_SCHEMES)} (a folder serving the registered file names)")
    return mirror.rstrip("/") + "/" + entry.filename


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local_places(entry: WeightsEntry) -> list[Path]:
    """Where a local copy may be, in order of preference: the cache, then the package."""
    return [weights_dir() / entry.filename] + ([entry.bundled_path] if entry.bundled else [])


def _verified(path: Path, entry: WeightsEntry) -> bool:
    return entry.published and path.is_file() and file_sha256(path) == entry.sha256


def locate(name: str) -> Path | None:
    """The verified local copy of ``name`` (cached first, then bundled) without downloading; None if there is none."""
    entry = registry_entry(name)
    return next((p for p in _local_places(entry) if _verified(p, entry)), None)


def _missing_bundle(entry: WeightsEntry) -> bool:
    """A bundled-only entry whose file is absent from the package (not installed, or not added yet)."""
    return entry.bundled and not entry.fallback_download and not entry.bundled_path.is_file()


def status(name: str) -> str:
    """Where ``name`` would come from now: ``cached``, ``bundled``, ``remote`` (a download) or ``unavailable``.

    ``unavailable``: not published yet (sha256 None), or bundled but absent from the package and the cache.
    """
    entry = registry_entry(name)
    path = locate(name)
    if path is not None:
        return "bundled" if path == entry.bundled_path else "cached"
    return "unavailable" if not entry.published or _missing_bundle(entry) else "remote"


def _ignored_copies(entry: WeightsEntry) -> str:
    """A note on local copies that exist but fail the hash check (they are never used)."""
    bad = [str(p) for p in _local_places(entry) if p.is_file()]
    return f" (ignored, sha256 mismatch: {', '.join(bad)})" if bad else ""


def fetch(name: str, *, progress: bool = False) -> Path:
    """Path to the verified file registered as ``name``: cached > bundled > downloaded into the cache.

    Args:
        name: a registered name (see :func:`list_weights`).
        progress: show a download progress bar (needs ``tqdm``; silently off without it).

    Raises:
        ValueError: ``name`` is not registered, or ``$FERLITE_BASE_URL`` is malformed.
        WeightsUnavailable: the entry is unavailable (see :func:`status`), or it is not local and its download
            failed (offline, server down, missing file) or gave a file with another sha256 (discarded).

    Warns:
        UserWarning: a local copy fails its sha256 check (damaged or tampered): it is downloaded again.
    """
    entry = registry_entry(name)
    if not entry.published:
        raise WeightsUnavailable(f"{name} ({entry.filename}) is registered but not published yet (no sha256 in "
                                 f"ferlite.weights); use another model or pass a file path")
    local = locate(name)
    if local is not None:
        return local
    folder = weights_dir()
    if _missing_bundle(entry):
        raise WeightsUnavailable(
            f"{entry.filename} ({name}) should be bundled with ferlite at {entry.bundled_path} but is absent, and the "
            f"cache {folder} has no copy with sha256 {entry.sha256}: reinstall ferlite, or copy {entry.filename} "
            f"(`ferlite weights path {name}` on a machine that has it) into {folder}")
    import pooch

    url = download_url(name)
    ignored = _ignored_copies(entry)
    if ignored:  # say so: a damaged or tampered copy is replaced by a download, never used
        warnings.warn(f"{entry.filename} ({name}): local copy{ignored}; downloading it again from {url}",
                      stacklevel=2)
    try:
        path = pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=entry.filename, path=folder,
                              progressbar=progress and importlib.util.find_spec("tqdm") is not None)
    except OSError as exc:  # requests' errors are OSErrors: offline, refused, HTTP 404, timeout; or a disk error
        raise WeightsUnavailable(
            f"{entry.filename} ({name}) is not in the cache {folder}{ignored} and could not be downloaded from "
            f"{url}: {exc}. To pre-fetch it: run `ferlite weights fetch {name}` on a connected machine and copy "
            f"{entry.filename} into {folder}, or set FERLITE_BASE_URL to a mirror that serves {entry.filename}."
        ) from exc
    except ValueError as exc:  # pooch: the downloaded file's hash differs (the temporary file is deleted)
        raise WeightsUnavailable(
            f"downloaded {entry.filename} ({name}) from {url}, but its sha256 is not the registered "
            f"{entry.sha256}: the file was discarded and nothing was written to {folder} ({exc})"
        ) from exc
    return Path(path)


def resolve_model(name_or_path: str | os.PathLike | None = None) -> Path:
    """An expression model file: an existing path as given, a registered name or alias fetched, or None -> the default.

    An existing file wins over a name: a file called ``fast`` in the current folder is that file, not the alias
    (write ``ferplus-mfn-0.5-int8`` to mean the registered model there).

    Raises:
        TypeError: ``name_or_path`` is not a str, a path or None.
        ValueError: the name is registered but is not an expression model (the face detector).
        FileNotFoundError: neither an existing file nor a registered name (the message lists the names).
        WeightsUnavailable: the registered file cannot be had (see :func:`fetch`).
    """
    if name_or_path is None:
        return fetch(DEFAULT_MODEL)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"expected a model name, a file path or None, got {type(name_or_path).__name__}")
    path = Path(name_or_path)
    if path.is_file():
        return path
    entry = REGISTRY.get(canonical_name(str(name_or_path)))
    if entry is None:
        models = [e.name for e in REGISTRY.values() if e.classes]
        raise FileNotFoundError(f"no model file {str(name_or_path)!r} and no registered weights of that name; "
                                f"registered: {', '.join(models)}; aliases: {', '.join(ALIASES)}")
    if entry.classes is None:
        raise ValueError(f"{entry.name!r} is a {entry.kind}, not an expression model")
    return fetch(entry.name)


def sidecar_for(path: str | os.PathLike) -> dict:
    """Registry metadata of the expression model whose registered file name is ``path``'s, else ``{}``.

    Keys: name, kind, classes (list), input_size, channels, preprocessing, metrics.
    """
    filename = Path(path).name
    for e in REGISTRY.values():
        if e.filename == filename and e.classes:
            return {"name": e.name, "kind": e.kind, "classes": list(e.classes), "input_size": e.input_size,
                    "channels": e.channels, "preprocessing": e.preprocessing, "metrics": dict(e.metrics)}
    return {}
