"""The line between the two wings: no runtime module (a top-level module of ``ferlite``) imports TensorFlow, Keras or
the training wing, ``ferlite.training``, when it is imported."""

from __future__ import annotations

import json
import subprocess
import sys

# Imports every top-level module of ferlite but the training wing and the command line, with TensorFlow and Keras
# blocked (an import of either raises ImportError), then the modules named on the command line; prints what was
# imported and which ferlite.training modules got loaded.
IMPORT_RUNTIME = """
import importlib, json, pkgutil, sys
sys.modules["tensorflow"] = None
sys.modules["keras"] = None
import ferlite
runtime = sorted(m.name for m in pkgutil.iter_modules(ferlite.__path__) if m.name not in ("training", "cli"))
for name in runtime:
    importlib.import_module(f"ferlite.{name}")
for name in sys.argv[1:]:
    importlib.import_module(name)
wing = sorted(m for m in sys.modules if m == "ferlite.training" or m.startswith("ferlite.training."))
print(json.dumps({"runtime": runtime, "wing": wing}))
"""


def import_runtime(*extra: str) -> dict:
    """Run :data:`IMPORT_RUNTIME` in a fresh interpreter (importing ``extra`` modules last); its JSON output."""
    res = subprocess.run([sys.executable, "-c", IMPORT_RUNTIME, *extra], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_runtime_modules_import_without_tensorflow_keras_or_the_training_wing():
    out = import_runtime()
    core = {"labels", "images", "weights", "sidecar", "modelfile", "metrics", "detect", "litert", "runtime",
            "recognizer", "datasets", "evaluate", "report", "video", "bulk"}
    assert core <= set(out["runtime"]), out["runtime"]
    assert out["wing"] == [], f"runtime modules imported the training wing: {out['wing']}"


def test_the_check_sees_an_import_of_the_wing():
    # ferlite.training.augment imports no TensorFlow, so it loads with TensorFlow blocked: the check must report it
    assert import_runtime("ferlite.training.augment")["wing"] == ["ferlite.training", "ferlite.training.augment"]
