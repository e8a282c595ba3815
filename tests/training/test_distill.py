"""Knowledge distillation (ferlite.training.distill, ferlite-train --teacher): the targets of each augmented batch are
checked against a fixed, known teacher computed independently in NumPy on the very images the pipeline yields."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import copy_split

from ferlite.cli import main
from ferlite.datasets import read_dataset
from ferlite.labels import FERPLUS_CLASSES
from ferlite.training.distill import load_teachers, mix_targets, soften
from ferlite.training.loop import TrainConfig, train
from ferlite.training.pipeline import make_dataset
from ferlite.weights import file_sha256

STUDENT_CLASSES = FERPLUS_CLASSES[:9]  # seed9


def known_weights(seed: int, n_cls: int = 9, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """The fixed weights of a known teacher: softmax(flatten(x / 255) @ kernel + bias). Random per pixel, so a
    mirrored face gets another prediction."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.05, (size * size, n_cls)).astype(np.float32),
            rng.normal(0, 0.5, n_cls).astype(np.float32))


def known_predict(seed: int, images: np.ndarray, flip: bool = False) -> np.ndarray:
    """The known teacher of :func:`known_weights`, in NumPy (float64), on uint8 images (B, S, S, 1)."""
    kernel, bias = known_weights(seed)

    def softmax_of(x):
        logits = x.reshape(len(x), -1).astype(np.float64) / 255 @ kernel + bias
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p = softmax_of(images)
    return (p + softmax_of(images[:, :, ::-1])) / 2 if flip else p


@pytest.fixture(scope="module")
def known_teacher(tmp_path_factory):
    """Factory ``make(seed, n_cls=9)``: the known teacher saved as a .keras file (no sidecar: FER+ classes)."""
    import keras

    folder = tmp_path_factory.mktemp("teachers")

    def make(seed: int, n_cls: int = 9):
        path = folder / f"known{seed}-{n_cls}.keras"
        if not path.exists():
            inputs = keras.Input((48, 48, 1), dtype="uint8")
            x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
            dense = keras.layers.Dense(n_cls, activation="softmax")
            model = keras.Model(inputs, dense(x))
            dense.set_weights(list(known_weights(seed, n_cls)))
            model.save(path)
        return path

    return make


@pytest.fixture(scope="module")
def faces(ferplus_train_sample):
    """96 real FER+ training faces and their seed9 targets."""
    x, t = read_dataset(ferplus_train_sample).targets("seed9", 9)
    return x[:96], t.targets[:96]


def batches(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize(("weight", "temperature", "flip", "seeds"), [
    (1.0, 1.0, False, (0,)),  # the targets are the teacher's predictions
    (0.5, 1.0, False, (0,)),
    (0.7, 2.0, False, (0,)),
    (1.0, 0.5, True, (0,)),
    (0.5, 1.0, True, (0, 1)),  # an ensemble of two, each flip-averaged
], ids=["w1-t1", "w0.5", "w0.7-t2", "w1-t0.5-flip", "ensemble-flip"])
def test_targets_of_each_augmented_batch_mix_votes_and_teacher(faces, known_teacher, weight, temperature, flip,
                                                               seeds):
    x, votes = faces
    teachers = load_teachers([known_teacher(s) for s in seeds], input_size=48, channels=1, weight=weight,
                             temperature=temperature, flip=flip)
    common = dict(batch_size=32, training=True, augment="standard", seed=7)
    x_plain, y_plain = batches(make_dataset(x, votes, **common))  # the same seed: the same shuffle and augmentation
    x_aug, y = batches(make_dataset(x, votes, relabel=teachers.relabel, **common))
    np.testing.assert_array_equal(x_aug, x_plain)  # the images are the augmented ones, untouched by the teachers
    assert not np.array_equal(x_aug[:, :, :, 0], x[:len(x_aug)])  # and they are augmented (and shuffled)
    teacher = np.mean([known_predict(s, x_aug, flip) for s in seeds], axis=0)
    teacher = teacher ** (1 / temperature) / (teacher ** (1 / temperature)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y, (1 - weight) * y_plain + weight * teacher, atol=2e-6)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    if weight == 1.0 and temperature == 1.0:
        assert np.abs(y - y_plain).max() > 0.1  # not the votes


def test_temperature_arithmetic():
    p = np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]], np.float32)
    assert soften(p, 1.0) is p
    for t in (0.5, 2.0, 4.0):
        expected = p.astype(np.float64) ** (1 / t)
        np.testing.assert_allclose(soften(p, t).numpy(), expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(soften(p, 1e-3).numpy()[0], [1, 0, 0, 0], atol=1e-6)  # T -> 0: the arg max
    np.testing.assert_allclose(mix_targets(np.float32([[1, 0]]), np.float32([[0.2, 0.8]]), 0.25), [[0.8, 0.2]])


def test_cached_teacher_targets_equal_the_on_graph_ones_without_augmentation(faces, known_teacher):
    x, votes = faces
    teachers = load_teachers([known_teacher(0)], input_size=48, channels=1, weight=0.5, flip=True)
    cached = teachers.predict_arrays(x, batch_size=40)  # what training caches with --aug none, in input order
    np.testing.assert_allclose(cached, known_predict(0, x[..., None], flip=True), atol=2e-6)
    common = dict(batch_size=32, training=True, augment="none", seed=3)
    _, on_graph = batches(make_dataset(x, votes, relabel=teachers.relabel, **common))
    _, from_cache = batches(make_dataset(x, mix_targets(votes, cached, 0.5), **common))
    np.testing.assert_allclose(from_cache, on_graph, atol=1e-6)


def test_teacher_classes_and_input_must_match_the_students(known_teacher, ferplus_train_sample, tmp_path):
    eight = known_teacher(0, n_cls=8)
    teachers = load_teachers([eight], input_size=48, channels=1)
    with pytest.raises(ValueError) as err:
        teachers.check_classes(STUDENT_CLASSES)
    assert str(err.value).startswith(f"--teacher {eight} predicts 8 classes ({', '.join(FERPLUS_CLASSES[:8])}), the "
                                     f"student 9 ({', '.join(STUDENT_CLASSES)}): a teacher must predict the student's")
    # the same number of classes in another order, as the teacher's sidecar names them
    renamed = tmp_path / "renamed.keras"
    renamed.write_bytes(known_teacher(0).read_bytes())
    other_order = [*STUDENT_CLASSES[1:], STUDENT_CLASSES[0]]
    renamed.with_suffix(".json").write_text(json.dumps({"classes": other_order}))
    with pytest.raises(ValueError, match=rf"predicts 9 classes \({', '.join(other_order)}\), the student 9"):
        load_teachers([renamed], input_size=48, channels=1).check_classes(STUDENT_CLASSES)
    with pytest.raises(ValueError, match=r"--teacher .*known0-9.keras takes 48x48x1 images, the student's data is "
                                         r"64x64x3 \(--img-size 64, --channels 3\)"):
        load_teachers([known_teacher(0)], input_size=64, channels=3)
    # through train(): refused once the data's classes are known, leaving no run folder
    data = copy_split(ferplus_train_sample, tmp_path / "train", 40)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="predicts 8 classes"):
        train(TrainConfig(train=str(data), val=str(data), alpha=0.25, epochs=1, batch_size=8, teacher=(str(eight),),
                          output_dir=str(out)), log=lambda *_: None)
    assert not out.exists()
    with pytest.raises(ValueError, match="apply to distillation only: name the teacher"):
        TrainConfig(train="t", val="v", temperature=2.0).check()
    with pytest.raises(ValueError, match=r"teacher must be a sequence of model names or paths, e.g. \('t.keras',\)"):
        TrainConfig(train="t", val="v", teacher="t.keras").check()


@pytest.mark.slow
def test_cli_distils_records_the_teacher_and_refuses_to_resume_with_other_options(known_teacher, ferplus_train_sample,
                                                                                  ferplus_valid, small_net, tmp_path):
    teacher = known_teacher(0)
    tr = copy_split(ferplus_train_sample, tmp_path / "train", 128)
    va = copy_split(ferplus_valid, tmp_path / "val", 64)
    out = tmp_path / "run"
    argv = ["train", "--train", str(tr), "--val", str(va), "--model", small_net, "--alpha", "0.25", "--batch-size",
            "32", "--warmup-epochs", "0", "--aug", "flip", "--output-dir", str(out), "--teacher", str(teacher),
            "--teacher-flip", "--temperature", "2"]
    result = CliRunner().invoke(main, [*argv, "--epochs", "1", "--distill-weight", "0.7"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "teachers run on each augmented batch, in the input pipeline" in result.output
    assert (out / "model.keras").is_file()
    side = json.loads((out / "model.json").read_text())
    d = side["distillation"]
    assert d["teachers"] == [{"model": str(teacher), "file": str(teacher), "sha256": file_sha256(teacher)}]
    assert (d["distill_weight"], d["temperature"], d["teacher_flip"]) == (0.7, 2.0, True)
    assert side["config"]["teacher"] == [str(teacher)] and side["config"]["distill_weight"] == 0.7
    assert json.loads((out / "state.json").read_text())["distill"]["sha256"] == [file_sha256(teacher)]
    import keras

    student = keras.models.load_model(out / "model.keras", compile=False)
    assert student.count_params() != keras.models.load_model(teacher, compile=False).count_params()

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = CliRunner().invoke(main, [*argv, "--distill-weight", "0.5", "--epochs", "2", "--resume"])
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("Error:")]
    assert f"--resume: {out} was trained with --teacher {teacher} (sha256 {file_sha256(teacher)[:12]}), " \
           "--distill-weight 0.7, --temperature 2, teacher flip on; this run asks for " in line
    assert "--distill-weight 0.5, --temperature 2" in line and "resume with the original run's teacher options" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


MIRRORED = """
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ferlite.datasets import read_dataset
from ferlite.training.distill import load_teachers
from ferlite.training.distribute import make_strategy
from ferlite.training.pipeline import make_dataset

data, teacher = sys.argv[1:3]
x, t = read_dataset(data).targets("seed9", 9)
strategy = make_strategy("mirrored")
teachers = load_teachers([teacher], input_size=48, channels=1, weight=1.0, flip=True)
with strategy.scope():  # as ferlite-train builds it: teachers loaded outside the scope, the dataset inside it
    ds = make_dataset(x, t.targets, batch_size=32, training=True, augment="flip", relabel=teachers.relabel)
    xs, ys = [], []
    for xb, yb in strategy.experimental_distribute_dataset(ds):
        xs += [v.numpy() for v in strategy.experimental_local_results(xb)]
        ys += [v.numpy() for v in strategy.experimental_local_results(yb)]
np.savez(sys.argv[3], x=np.concatenate(xs), y=np.concatenate(ys), replicas=strategy.num_replicas_in_sync,
         parts=len(xs))
"""


@pytest.mark.slow
def test_mirrored_on_two_cpus_distributes_the_teachers_targets(known_teacher, ferplus_train_sample, tmp_path):
    """Each replica's share of a global batch carries the teachers' targets of its own images. (A full mirrored
    training run with a teacher is too slow for this suite: docs/training.md says how it was checked.)"""
    data = copy_split(ferplus_train_sample, tmp_path / "train", 64)
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    out = tmp_path / "replicas.npz"
    proc = subprocess.run([sys.executable, str(script), str(data), str(known_teacher(0)), str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as r:
        assert r["replicas"] == 2 and r["parts"] == 4 and r["x"].shape == (64, 48, 48, 1)  # 2 batches x 2 replicas
        np.testing.assert_allclose(r["y"], known_predict(0, r["x"], flip=True), atol=2e-6)
