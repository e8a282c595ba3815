"""What each install profile costs: site-packages size, install time and the cold start of ``ferlite.predict``.

Each profile is installed from this repository into a fresh virtual environment (``python -m venv``), with pip
as the user would run it (the pip cache of this machine is used, so the install time is that of a machine that
already downloaded the wheels once: say so when quoting it). Then:

* size: the environment's site-packages, in MB (10^6 bytes), with and without pip and setuptools, which
  ``venv`` puts there whatever is installed;
* cold start: wall time of a fresh ``python -c "import ferlite; ferlite.predict(FACE)"`` on a FER+ face
  (best of ``--repeats``), so the import, the model load and one prediction;
* whether TensorFlow, MediaPipe and a GUI OpenCV build (which needs libGL) are in the environment.

    python benchmarks/install_profiles.py [--profiles runtime,mediapipe,train] [--face FACE.png] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILES = {"runtime": "", "mediapipe": "[mediapipe]", "train": "[train]", "test": "[test]"}
VENV_TOOLS = ("pip", "setuptools", "_distutils_hack", "pkg_resources")
DEFAULT_FACE = REPO.parent / "shared" / "data" / "ferplus" / "FER2013Valid" / "fer0028638.png"


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def site_packages(venv: Path) -> Path:
    """The site-packages folder of a venv."""
    return next((venv / "lib").glob("python3*/site-packages"))


def measure(profile: str, where: Path, face: Path, repeats: int) -> dict:
    """Install ``profile`` into a fresh venv under ``where`` and measure it."""
    venv = where / profile
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    t0 = time.perf_counter()
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"{REPO}{PROFILES[profile]}"], check=True,
                   stdout=subprocess.DEVNULL)
    install_s = time.perf_counter() - t0
    sp = site_packages(venv)
    total = tree_bytes(sp)
    tools = sum(tree_bytes(p) for p in sp.iterdir() if p.name.split("-")[0] in VENV_TOOLS)
    starts = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([str(py), "-c", f"import ferlite; ferlite.predict({str(face)!r})"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        starts.append(time.perf_counter() - t0)
    dists = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                           check=True).stdout.lower()
    has = {name: f"\n{name}==" in "\n" + dists for name in
           ("tensorflow", "mediapipe", "opencv-python", "opencv-contrib-python", "opencv-python-headless")}
    return {"profile": profile, "install_s": install_s, "mb": total / 1e6, "mb_without_tools": (total - tools) / 1e6,
            "cold_start_s": min(starts), **has}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", default="runtime,mediapipe,train", help=f"comma-separated, of {', '.join(PROFILES)}")
    ap.add_argument("--face", type=Path, default=DEFAULT_FACE, help="a face image for the cold start")
    ap.add_argument("--repeats", type=int, default=3, help="cold starts per profile (the best is reported)")
    ap.add_argument("--keep", type=Path, default=None, help="make the environments here and keep them")
    args = ap.parse_args()
    if not args.face.is_file():
        sys.exit(f"no face image at {args.face}: pass --face FACE.png")
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        print(f"{'profile':10} {'install':>8} {'site-packages':>14} {'w/o pip+setuptools':>19} {'cold predict':>13}  "
              "tensorflow  mediapipe  GUI OpenCV (libGL)")
        for profile in args.profiles.split(","):
            r = measure(profile, where, args.face, args.repeats)
            gui = r["opencv-python"] or r["opencv-contrib-python"]
            print(f"{profile:10} {r['install_s']:7.0f}s {r['mb']:11.0f} MB {r['mb_without_tools']:16.0f} MB "
                  f"{r['cold_start_s']:12.2f}s  {'yes' if r['tensorflow'] else 'no':10}  "
                  f"{'yes' if r['mediapipe'] else 'no':9}  {'yes' if gui else 'no'}", flush=True)


if __name__ == "__main__":
    main()
