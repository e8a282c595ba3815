"""A command whose extra is not installed stops with one line naming the extra, never a traceback.

Real processes in which the extra's packages cannot be imported (``sys.modules[name] = None``, as when absent).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import FERPLUS

from ferlite._extras import MissingExtraError, extra_for, extra_message

RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
from ferlite.cli import main
sys.argv = ["ferlite", *{args!r}]
main()
"""
TRAIN = ("tensorflow", "keras", "matplotlib")


def run_blocked(blocked: tuple[str, ...], args: list[str]) -> subprocess.CompletedProcess:
    code = RUN.format(blocked=blocked, args=args)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", **dict(__import__("os").environ)})


@pytest.mark.parametrize(("blocked", "args", "extra"), [
    (TRAIN, ["export", "--model", "ferplus-mfn-1.0", "--quantize", "float16", "--output", "{tmp}/m.tflite"], "train"),
    (TRAIN, ["eval", "--data", "{valid}", "--model", "ferplus-mfn-1.0"], "train"),
    (TRAIN, ["train", "--train", "{valid}", "--val", "{valid}", "--epochs", "1", "--output-dir", "{tmp}/run"], "train"),
    (("fastapi", "uvicorn", "starlette"), ["serve", "--port", "0"], "serve"),
    (("mediapipe",), ["demo", "--sample", "--detector", "mediapipe", "--no-display", "--output", "{tmp}"], "mediapipe"),
])
def test_command_without_its_extra_names_it_in_one_line(tmp_path, blocked, args, extra):
    valid = FERPLUS / "FER2013Valid"
    if "{valid}" in args and not valid.is_dir():
        pytest.skip(f"../shared FER2013Valid is absent (looked for {valid})")
    proc = run_blocked(blocked, [a.format(tmp=tmp_path, valid=valid) for a in args])
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].endswith(f'pip install "ferlite[{extra}]"'), proc.stderr[-2000:]
    assert not list(tmp_path.iterdir()) or extra == "mediapipe"  # nothing written by a command that could not run


def test_extra_for_and_its_message():
    assert extra_for("tensorflow.lite.python") == "train" and extra_for("ray.data") == "bulk"
    assert extra_for("numpy") is None and extra_for(None) is None
    assert extra_message("bulk", "ray.data") == 'bulk annotation on Ray Data needs ray, which is not installed: ' \
                                                'pip install "ferlite[bulk]"'
    assert issubclass(MissingExtraError, ImportError)
