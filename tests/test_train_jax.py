"""tools/train_jax.py: it packs FER+ folders and trains a tiny model for one epoch on ferlite's recipe (on JAX when
JAX is installed, else on TensorFlow's backend), its file loads in ferlite as its sidecar says, it warps faces as
ferlite's ``tf.data`` pipeline does (the same sampling, reflected borders), and a bad ``--run`` is named."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, load_script

SCRIPT = REPO / "tools" / "train_jax.py"
BACKEND = "jax" if importlib.util.find_spec("jax") else "tensorflow"


@pytest.fixture(scope="module")
def train_jax():
    """The script as a module, imported with this session's Keras backend (it would default to JAX)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))
        return load_script(SCRIPT)


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_pack_then_one_epoch_on_the_train_sample(train_jax, ferplus_train_sample, small_valid_folder, tmp_path):
    from ferlite.evaluate import score
    from ferlite.runtime import load_predictor
    from ferlite.training.augment import PRESETS

    valid = small_valid_folder(100)
    packed, out = tmp_path / "ferplus.npz.xz", tmp_path / "out"
    assert "1000 train + 100 valid faces" in run("pack", str(ferplus_train_sample), str(valid), str(packed)).stdout
    data = train_jax.load(str(packed))
    assert data["x_train"].shape == (1000, 48, 48) and data["v_train"].shape == (1000, 10)
    assert data["x_val"].shape == (100, 48, 48) and data["x_val"].dtype == np.uint8

    # "strong" exercises every augmentation (warp, contrast, brightness, erasing)
    run("train", str(packed), str(out), "--run", "mobilefacenet:0.25:0:1:strong", "--limit", "64", "--batch-size", "32")
    info = json.loads((out / "mobilefacenet-0.25-s0.json").read_text())
    assert 32 <= info["data"]["train_faces"] <= 64  # the first 64 faces, less any without seed9 votes
    assert info["versions"]["backend"] == BACKEND
    assert [row["epoch"] for row in info["history"]] == [1]
    recipe = info["recipe"]
    assert recipe["aug_params"] == dataclasses.asdict(PRESETS["strong"])
    assert (recipe["lr"], recipe["weight_decay"], recipe["warmup_epochs"], recipe["optimizer"]) == (
        train_jax.RECIPE.lr, train_jax.RECIPE.weight_decay, train_jax.RECIPE.warmup_epochs, "adamw")
    # the file loads in ferlite (on TensorFlow) and scores the valid faces as its sidecar says
    probs = load_predictor(out / "mobilefacenet-0.25-s0.keras").predict(data["x_val"][..., None])
    assert score(data["v_val"], probs, train_jax.CLASSES)["mae"] == pytest.approx(info["valid"]["mae"], abs=1e-5)
    assert json.loads((out / "summary.json").read_text())["members"] == ["mobilefacenet-0.25-s0.keras"]


@pytest.mark.parametrize("angle, zoom, tx, ty, exact", [
    (0.0, 1.0, 7.0, -5.0, True),  # whole-pixel shifts: exact samples, a seventh of the face from the border
    (10.0, 1.1, 2.5, 1.5, False),
    (-8.0, 0.9, -4.8, 3.3, False),  # zoomed out: borders on every side
])
def test_warp_samples_as_ferlite_pipeline(train_jax, ferplus_train_sample, angle, zoom, tx, ty, exact):
    import cv2
    import tensorflow as tf

    face = cv2.imread(str(sorted(ferplus_train_sample.glob("*.png"))[0]), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    m = train_jax.affine_matrix(angle, zoom, tx, ty, 48)
    ref = tf.raw_ops.ImageProjectiveTransformV3(  # the op and options of ferlite.training.pipeline
        images=face[None, :, :, None], transforms=np.concatenate([m.ravel(), [0.0, 0.0]])[None].astype(np.float32),
        output_shape=[48, 48], fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT").numpy()[0, :, :, 0]
    ours = train_jax.warp(face, angle, zoom, tx, ty)
    if exact:
        np.testing.assert_array_equal(ours, ref)
    else:  # OpenCV rounds sample positions to 1/32 of a pixel
        assert np.abs(ours - ref).mean() < 0.5 and np.abs(ours - ref).max() < 8


def test_augment_keeps_faces_uint8_and_none_is_identity(train_jax, ferplus_train_sample):
    import cv2

    from ferlite.training.augment import PRESETS

    faces = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(ferplus_train_sample.glob("*.png"))[:8]])
    np.testing.assert_array_equal(train_jax.augment(faces, np.random.default_rng(0), PRESETS["none"]), faces)
    strong = train_jax.augment(faces, np.random.default_rng(0), PRESETS["strong"])
    assert strong.dtype == np.uint8 and strong.shape == faces.shape and (strong != faces).any()


@pytest.mark.parametrize("argv, needle", [
    (["--run", "mobilefacenet:0.25"], "expected ARCH:ALPHA:SEED:EPOCHS[:AUG]"),
    (["--run", "mobilefacenet:0.25:0:1:sideways"], "unknown augmentation preset 'sideways'"),
    (["--run", "mobilefacenet:0.25:0:1:capture"], "'capture' preset's capture degradations"),
    (["--run", "mobilefacenet:wide:0:1"], "could not convert string to float: 'wide'"),
    (["--run", "mobilefacenet:0.25:0:1", "--distill-weight", "0.7"], "--teacher"),
    (["--run", "mobilefacenet:0.25:0:1", "--limit", "-3"], "--limit must be a number of faces"),
])
def test_a_bad_run_is_named_before_anything_runs(train_jax, tmp_path, argv, needle):
    with pytest.raises(SystemExit) as e:
        train_jax.main(["train", str(tmp_path / "absent.npz.xz"), str(tmp_path / "out"), *argv])
    assert needle in str(e.value)
    assert not (tmp_path / "out").exists()
