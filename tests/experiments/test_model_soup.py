"""experiments/model_soup.py writes the mean of the models' weights, with a sidecar, or a clear refusal."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
from conftest import REPO

from ferlite.runtime import load_predictor
from ferlite.training.models import create_model

SCRIPT = REPO / "experiments" / "model_soup.py"


def _saved(path, name="mobilefacenet", seed=0):
    keras.utils.set_random_seed(seed)
    model = create_model(name, alpha=0.25)
    model.save(path)
    path.with_suffix(".json").write_text(json.dumps({"name": path.stem, "classes": [f"c{i}" for i in range(9)],
                                                     "valid": {"mae": [0.1]}, "input_size": 48}))
    return model


def test_soup_is_the_mean_of_the_weights(tmp_path):
    a, b = _saved(tmp_path / "a.keras", seed=1), _saved(tmp_path / "b.keras", seed=2)
    out = tmp_path / "soup.keras"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), str(tmp_path / "a.keras"), str(tmp_path / "b.keras")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    soup = keras.models.load_model(out, compile=False)
    assert len(soup.weights) == len(a.weights)
    for ws, wa, wb in zip(soup.weights, a.weights, b.weights, strict=True):
        np.testing.assert_allclose(ws.numpy(), (wa.numpy() + wb.numpy()) / 2, rtol=1e-6, atol=1e-7)
    assert any(not np.array_equal(wa.numpy(), wb.numpy()) for wa, wb in zip(a.weights, b.weights, strict=True))
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["soup_of"] == [str(tmp_path / "a.keras"), str(tmp_path / "b.keras")] and info["name"] == "soup"
    assert info["input_size"] == 48 and "valid" not in info  # the first model's description, not its history
    assert load_predictor(out).classes == tuple(f"c{i}" for i in range(9))  # usable by the runtime as it is


def test_other_architecture_is_refused_and_nothing_written(tmp_path):
    _saved(tmp_path / "a.keras")
    _saved(tmp_path / "b.keras", name="mobilenet")
    out = tmp_path / "soup.keras"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), str(tmp_path / "a.keras"), str(tmp_path / "b.keras")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"error: {tmp_path / 'b.keras'} has other weights than {tmp_path / 'a.keras'}" in proc.stderr
    assert "expected models of the same architecture" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.keras", "b.json", "b.keras"]
