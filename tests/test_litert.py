"""The LiteRT runtime: .tflite models predict without TensorFlow, in batches, with classes from the sidecar;
the deployment example (numpy + LiteRT + OpenCV only) runs and agrees with ferlite."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferlite.labels import FERPLUS_CLASSES
from ferlite.litert import MAX_BATCH, litert_predictor
from ferlite.runtime import load_predictor

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "litert_int8.py"
DOC = REPO / "docs" / "deployment.md"

# Run first in a fresh interpreter: any import of TensorFlow or Keras fails, and is recorded.
BLOCK_TF = """
import importlib.abc, sys
attempts = []
class BlockTF(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            attempts.append(name)
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, BlockTF())
"""


def run_without_tf(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with TensorFlow/Keras imports blocked; it ends by checking none was tried."""
    check = "\nassert not attempts, f'tried to import {attempts}'\n"
    return subprocess.run([sys.executable, "-c", BLOCK_TF + code + check, *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def faces(ferplus_valid) -> tuple[np.ndarray, list[Path]]:
    """70 real FER2013Valid faces as a (70, 48, 48, 1) uint8 batch, and their files."""
    files = sorted(ferplus_valid.glob("*.png"))[:70]
    return np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files])[..., None], files


@pytest.fixture(scope="module")
def tflite() -> dict[str, Path]:
    """The bundled float16 and int8 files of the default model (real trained models; no conversion here: the export
    tests convert and check their own). A missing one is a failure, never a skip."""
    from ferlite import weights

    paths = {q: weights.registry_entry(f"ferplus-mfn-1.0-{q}").bundled_path for q in ("fp16", "int8")}
    for path in paths.values():
        assert path.is_file(), f"the bundled model {path} is missing: the package ships it"
    return paths


def test_tflite_path_never_imports_tensorflow(tflite, faces):
    code = """
import json, sys
import cv2, numpy as np
import ferlite
from ferlite.runtime import load_predictor
face = cv2.imread(sys.argv[3], cv2.IMREAD_GRAYSCALE)
pair = np.stack([face, face[:, ::-1]])[..., None]
out = {path: load_predictor(path).predict(pair).tolist() for path in sys.argv[1:3]}
out["recognizer"] = ferlite.Recognizer.from_pretrained(sys.argv[2]).predict(face)
assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
print(json.dumps(out))
"""
    res = run_without_tf(code, str(tflite["fp16"]), str(tflite["int8"]), str(faces[1][0]))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    face = faces[0][0, :, :, 0]
    pair = np.stack([face, face[:, ::-1]])[..., None]
    for q in ("fp16", "int8"):
        np.testing.assert_allclose(out[str(tflite[q])], load_predictor(tflite[q]).predict(pair), atol=1e-6)
    assert list(out["recognizer"]) == list(FERPLUS_CLASSES[:9])
    assert abs(sum(out["recognizer"].values()) - 1) < 1e-4
    blocked = run_without_tf("import ferlite.training.models")  # the guard itself works: the Keras side is refused
    assert blocked.returncode != 0 and "blocked: keras" in blocked.stderr


@pytest.mark.parametrize("quantize", ["fp16", "int8"])
def test_batches_match_single_faces(tflite, faces, quantize):
    pred = litert_predictor(tflite[quantize], {})
    x = faces[0]
    assert len(x) > 2 * MAX_BATCH and len(x) % MAX_BATCH  # full chunks and a partial one
    batch = pred.predict(x)
    single = np.concatenate([pred.predict(x[i:i + 1]) for i in range(len(x))])
    assert batch.shape == (len(x), 9) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, single, atol=1e-6)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-5)
    assert pred.predict(x[:0]).shape == (0, 9)
    np.testing.assert_allclose(litert_predictor(tflite[quantize], {}, num_threads=1).predict(x[:5]), batch[:5],
                               atol=1e-6)


def test_classes_and_shape_from_sidecar(tflite):
    path = tflite["int8"]
    assert litert_predictor(path, {}).classes == FERPLUS_CLASSES[:9]
    names = [f"c{i}" for i in range(9)]
    pred = litert_predictor(path, {"classes": names, "input_size": 48, "channels": 1})
    assert (pred.classes, pred.input_size, pred.channels, pred.backend) == (tuple(names), 48, 1, "litert")
    loaded = load_predictor(path)  # reads the sidecar written by export
    assert loaded.classes == tuple(json.loads(path.with_suffix(".json").read_text())["classes"])
    with pytest.raises(ValueError, match=r"sidecar says input_size=64, but the model's input is \[48, 48, 1\]"):
        litert_predictor(path, {"input_size": 64})
    with pytest.raises(ValueError, match="sidecar names 3 classes but the model has 9 outputs"):
        litert_predictor(path, {"classes": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"expected a uint8 batch of shape \(B, 48, 48, 1\), got float32"):
        loaded.predict(np.zeros((1, 48, 48, 1), np.float32))


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ValueError, match="bad.tflite is not a valid .tflite model"):
        litert_predictor(bad, {})


def test_deployment_example_runs_without_tensorflow(tflite, faces):
    code = "import runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    res = run_without_tf(code, str(EXAMPLE), str(tflite["int8"]), str(faces[1][0]))
    assert res.returncode == 0, res.stderr[-3000:]
    printed = dict(re.findall(r"^(\w+)\s+([0-9.]+)$", res.stdout, flags=re.M))
    expected = load_predictor(tflite["int8"]).predict(faces[0][:1])[0]
    assert sorted(printed) == sorted(FERPLUS_CLASSES[:9])
    for name, p in zip(FERPLUS_CLASSES, expected):
        assert abs(float(printed[name]) - p) <= 6e-4


def test_deployment_doc_shows_the_example():
    code = EXAMPLE.read_text()
    body = code[code.index("import json"):]
    assert body in DOC.read_text(), f"{DOC} must show the code of {EXAMPLE} (from 'import json' on) verbatim"
