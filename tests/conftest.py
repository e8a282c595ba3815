"""Shared fixtures: the ../shared data (skipped with a reason when absent), small real FER+ folders, tiny models.

Helpers other test modules import (``from conftest import ...``): :func:`copy_split`, :func:`write_raw_pair`,
:func:`majority_class_folder` and :func:`paste_into_scene` (folder-per-class datasets of FER+ faces, and whole
photos of them), :class:`LoopbackServer` and :func:`make_entry` (the weights registry against a real HTTP server),
:func:`closed_port_url`, :func:`console_script` and :func:`offline_env` (real processes, offline), and
:func:`with_small_net` (a subprocess that trains the small test network of ``tests/small_net.py``).
A file the package ships (``ferlite/pretrained/``) that a test needs is asserted present: missing, it is a failure,
never a skip.

Tests marked ``slow`` (training runs, Ray, TFLite conversions) are left out of the inner loop,
``pytest -m "not slow"``.
"""

from __future__ import annotations

import csv
import hashlib
import http.server
import importlib.util
import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FERPLUS = SHARED / "data" / "ferplus"


def closed_port_url() -> str:
    """A loopback URL nobody listens on (a mirror that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def load_script(path: Path):
    """Import a script of the repository (``examples/``, ``experiments/``) as a module."""
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def console_script(name: str = "ferlite") -> list[str]:
    """The installed console script ``name``, or the same click command through the interpreter."""
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    command = "main" if name == "ferlite" else name.removeprefix("ferlite-") + "_main"
    return [sys.executable, "-c", f"import sys; from ferlite.cli import {command} as m; sys.exit(m())"]


def with_small_net(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a subprocess that trains :mod:`small_net`'s network: ``tests/`` first on its ``PYTHONPATH``
    (the script then runs ``import small_net``, which registers it)."""
    path = os.pathsep.join(p for p in (str(Path(__file__).resolve().parent), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path}


def offline_env(ferlite_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a real ferlite process with its own cache folder and a download mirror that is down."""
    return {**os.environ, "FERLITE_HOME": str(ferlite_home), "FERLITE_BASE_URL": closed_port_url(),
            "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


@pytest.fixture(autouse=True)
def ferlite_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty cache folder (FERLITE_HOME) and no mirror."""
    home = tmp_path_factory.mktemp("ferlite_home")
    monkeypatch.setenv("FERLITE_HOME", str(home))
    monkeypatch.delenv("FERLITE_BASE_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds pyproject.toml)."""
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository; skips the test when its FER+ data is absent."""
    if not FERPLUS.is_dir():
        pytest.skip(f"../shared with FER+ data is absent (looked for {FERPLUS})")
    return SHARED


@pytest.fixture(scope="session")
def ferplus_valid(shared_dir) -> Path:
    """The whole shared FER2013Valid split (3,579 faces): read it, never write into it."""
    return shared_dir / "data" / "ferplus" / "FER2013Valid"


@pytest.fixture(scope="session")
def ferplus_train_sample(shared_dir) -> Path:
    """The shared 1,000-face sample of FER2013Train: read it, never write into it."""
    return shared_dir / "data" / "ferplus" / "FER2013Train"


def copy_split(src: Path, dest: Path, n: int, start: int = 0) -> Path:
    """Copy rows start..start+n of a FER+ split (label.csv lines and their PNGs) into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    lines = (src / "label.csv").read_text().splitlines()[start:start + n]
    for line in lines:
        name = line.split(",", 1)[0]
        shutil.copy(src / name, dest / name)
    (dest / "label.csv").write_text("\n".join(lines) + "\n")
    return dest


def write_raw_pair(src: Path, dest: Path, n: int = 30, no_name_row: int | None = 5) -> list[list[str]]:
    """Write ``fer2013.csv`` + ``fer2013new.csv`` in ``dest`` from the first ``n`` faces of the FER+ split ``src``.

    Pixels are the real PNGs' as space-separated ints; Usage cycles Training, PublicTest, PrivateTest
    (row i gets ``i % 3``); row ``no_name_row`` has an empty FER+ image name (a face FER+ removed).
    Returns the ``label.csv`` rows used, in order.
    """
    import cv2

    with open(src / "label.csv", newline="") as f:
        rows = list(csv.reader(f))[:n]
    usages = ("Training", "PublicTest", "PrivateTest")
    fer = ["emotion,pixels,Usage"]
    new = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for i, row in enumerate(rows):
        img = cv2.imread(str(src / row[0]), cv2.IMREAD_GRAYSCALE)
        usage = usages[i % 3]
        fer.append(f"0,{' '.join(map(str, img.ravel()))},{usage}")
        new.append(",".join([usage, "" if i == no_name_row else row[0], *row[2:]]))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "fer2013.csv").write_text("\n".join(fer) + "\n")
    (dest / "fer2013new.csv").write_text("\n".join(new) + "\n")
    return rows


@pytest.fixture
def small_valid_folder(ferplus_valid, tmp_path) -> Callable[..., Path]:
    """Factory ``make(n=200, start=0, name="valid")``: ``n`` real FER2013Valid faces in a new temporary FER+ folder."""

    def make(n: int = 200, start: int = 0, name: str = "valid") -> Path:
        return copy_split(ferplus_valid, tmp_path / name, n, start)

    return make


@pytest.fixture
def valid_subset(small_valid_folder) -> Path:
    """200 real FER2013Valid faces in a temporary FER+ folder."""
    return small_valid_folder(200, name="valid200")


@pytest.fixture(scope="session")
def small_net() -> str:
    """The registered name of :mod:`small_net`'s network, for tests of the training loop's mechanics (registered in
    this process on first use)."""
    import small_net as module

    return module.NAME


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small untrained MobileFaceNet (alpha 0.25, 9 classes) saved as .keras."""
    from ferlite.training.models import create_model

    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    create_model("mobilefacenet", alpha=0.25, num_classes=9).save(path)
    return path


@pytest.fixture(scope="session")
def bundled_fp16() -> Path:
    """The bundled default model in float16 TFLite (``ferplus-mfn-1.0-fp16``), by path: loading it touches no cache."""
    import ferlite

    path = Path(ferlite.__file__).parent / "pretrained" / "ferplus-mfn-1.0-fp16.tflite"
    assert path.is_file(), f"the bundled model {path} is missing: the package ships it"  # a failure, never a skip
    return path


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 (port 0) serving a folder from a thread, recording GET paths."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and release the port: its URL now refuses connections."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def make_entry(name: str, payload: bytes, *, bundled: bool = False, published: bool = True):
    """A registry entry for a small byte file standing in for a model (what is tested is the fetching)."""
    from ferlite import weights

    return weights.WeightsEntry(name, name + ".keras", hashlib.sha256(payload).hexdigest() if published else None,
                                f"https://example.invalid/{name}.keras", "keras", "test entry",
                                classes=("calm", "glad"), input_size=48, channels=1, bundled=bundled)


def majority_class_folder(src: Path, dest: Path, n: int, start: int = 0) -> Path:
    """A folder-per-class dataset in ``dest``: of rows start..start+n of the FER+ split ``src``, the faces the FER+
    majority protocol keeps, each PNG copied into ``dest/<its majority class>/`` (FER+ class names)."""
    import numpy as np

    from ferlite.labels import FERPLUS_CLASSES, votes_to_targets

    with open(src / "label.csv", newline="") as f:
        rows = list(csv.reader(f))[start:start + n]
    t = votes_to_targets(np.array([[float(v) for v in row[2:]] for row in rows]), "majority", 8)
    for i, label in zip(np.flatnonzero(t.keep), t.targets.argmax(axis=1), strict=True):
        (dest / FERPLUS_CLASSES[label]).mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rows[i][0], dest / FERPLUS_CLASSES[label] / rows[i][0])
    return dest


def paste_into_scene(face, background_name: str, rng, scale: tuple[float, float] = (3.0, 4.0)):
    """A 640x480 gray photo: scikit-image's ``background_name`` photo (``skimage.data``), blurred, with ``face``
    (gray uint8, or None for a photo without a face) upscaled ``scale`` times (bicubic) and pasted at a random
    place, as benchmarks/crop_geometry.py makes its scenes."""
    import cv2

    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image makes the scenes' backgrounds")
    img = getattr(skimage_data, background_name)()
    gray = img if img.ndim == 2 else cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    scene = cv2.GaussianBlur(cv2.resize(gray, (640, 480), interpolation=cv2.INTER_AREA), (0, 0), 2.0)
    if face is not None:
        side = int(round(face.shape[0] * rng.uniform(*scale)))
        x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
        scene[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return scene
