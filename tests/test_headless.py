"""The runtime on a machine without libGL and without TensorFlow (a slim container, a Raspberry Pi OS Lite).

A real process, in a mount namespace where every libGL file is replaced by /dev/null and with TensorFlow, Keras
and MediaPipe blocked from import, loads the default recogniser, annotates scikit-image's astronaut photo (the
default detector, the default model on LiteRT, the demo's drawing) and writes the picture.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LIBGL = sorted(p for p in glob.glob("/usr/lib/*/libGL.so*") + glob.glob("/usr/lib/libGL.so*") if os.path.isfile(p))

SCRIPT = r"""
import ctypes, sys
for name in ("tensorflow", "keras", "mediapipe"):
    sys.modules[name] = None  # import fails, as when not installed
try:
    ctypes.CDLL("libGL.so.1")
except OSError:
    print("libGL: hidden")
else:
    print("libGL: loadable")
import numpy as np, skimage.data, cv2
import ferlite
from ferlite.video import draw_results
rec = ferlite.Recognizer.from_pretrained()
photo = skimage.data.astronaut()
faces = rec.analyze(photo)
out = draw_results(photo, faces)
assert cv2.imwrite(sys.argv[1], out)
print("detector", rec.detector.name, "faces", len(faces), "top", faces[0]["top"] if faces else None)
print("tensorflow imported:", any(m.split(".")[0] in ("tensorflow", "keras") and sys.modules[m] is not None
                                  for m in sys.modules))
"""


def _hide_libgl_command(argv: list[str]) -> list[str]:
    """``argv`` run in a new mount namespace in which every libGL file is /dev/null."""
    mounts = " && ".join(f"mount --bind /dev/null {p}" for p in LIBGL)
    inner = " ".join(f"'{a}'" for a in argv)
    return ["unshare", "-m", "sh", "-c", f"{mounts} && exec {inner}" if mounts else f"exec {inner}"]


def test_runtime_annotates_a_photo_without_libgl_and_tensorflow(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("cannot make a mount namespace here (needs util-linux unshare and root) to hide libGL")
    out = tmp_path / "annotated.jpg"
    script = tmp_path / "headless.py"
    script.write_text(SCRIPT)
    run = subprocess.run(_hide_libgl_command([sys.executable, str(script), str(out)]), capture_output=True,
                         text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "libGL: hidden" in run.stdout, run.stdout  # the check hid the library, or libGL is not installed at all
    assert "detector yunet faces 1 top happiness" in run.stdout, run.stdout
    assert "tensorflow imported: False" in run.stdout
    assert out.stat().st_size > 10_000


def test_the_opencv_in_use_is_the_headless_build() -> None:
    """A GUI OpenCV build (opencv-python or opencv-contrib-python, e.g. brought by mediapipe) links libGL."""
    from importlib import metadata

    gui = [d for d in ("opencv-python", "opencv-contrib-python") if _installed(metadata, d)]
    if gui and _installed(metadata, "mediapipe"):
        pytest.skip(f"mediapipe is installed and brought {', '.join(gui)} (the mediapipe extra needs libGL)")
    assert not gui, f"a GUI OpenCV build is installed beside the headless one: {gui}"


def _installed(metadata, dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True
