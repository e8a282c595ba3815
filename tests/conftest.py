"""Shared fixtures: the ../shared data (skipped with a reason when absent), small real FER+ folders, tiny models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FERPLUS = SHARED / "data" / "ferplus"
DETECTOR_FILE = SHARED / "models" / "blaze_face_short_range.tflite"


@pytest.fixture(autouse=True)
def ferlite_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty cache folder (FERLITE_HOME) and no mirror."""
    home = tmp_path_factory.mktemp("ferlite_home")
    monkeypatch.setenv("FERLITE_HOME", str(home))
    monkeypatch.delenv("FERLITE_BASE_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not FERPLUS.is_dir():
        pytest.skip(f"../shared with FER+ data is absent (looked for {FERPLUS})")
    return SHARED


@pytest.fixture(scope="session")
def ferplus_valid(shared_dir) -> Path:
    return shared_dir / "data" / "ferplus" / "FER2013Valid"


@pytest.fixture(scope="session")
def ferplus_train_sample(shared_dir) -> Path:
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


@pytest.fixture
def valid_subset(ferplus_valid, tmp_path) -> Path:
    """200 real FER2013Valid faces in a temporary FER+ folder."""
    return copy_split(ferplus_valid, tmp_path / "valid200", 200)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small untrained MobileFaceNet (alpha 0.25, 9 classes) saved as .keras."""
    from ferlite.models import create_model

    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    create_model("mobilefacenet", alpha=0.25, num_classes=9).save(path)
    return path


@pytest.fixture
def detector_in_cache(ferlite_home) -> Path:
    """The real BlazeFace file from ../shared placed in the cache, as `ferlite weights fetch` would."""
    if not DETECTOR_FILE.is_file():
        pytest.skip(f"../shared detector model is absent (looked for {DETECTOR_FILE})")
    dest = ferlite_home / "weights" / DETECTOR_FILE.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(DETECTOR_FILE, dest)
    return dest
