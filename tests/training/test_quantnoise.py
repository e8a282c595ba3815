"""Noise-aware training: the noise is one int8 step wide and only in training; training it trains the plain
model's weights, which come back out into the plain architecture unchanged."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from ferlite.datasets import read_ferplus_folder
from ferlite.modelfile import load_keras_model
from ferlite.training.models import create_model
from ferlite.training.quantnoise import (
    FakeQuant,
    StepNoise,
    copy_to_plain,
    inner_layers,
    load_checkpoint,
    quant_noise_layer,
    with_quant_noise,
)

ROUNDED = (keras.layers.BatchNormalization, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ReLU,
           keras.layers.Activation)


@pytest.mark.parametrize(("low", "high"), [(-2.0, 6.0), (1.0, 3.0)])
def test_step_noise_is_one_int8_step_of_the_range_with_zero_in_training_only(low, high):
    keras.utils.set_random_seed(0)
    x = np.linspace(low, high, 4000, dtype="float32").reshape(40, 100)
    half = (max(high, 0.0) - min(low, 0.0)) / 255 / 2  # int8 calibration ranges always hold 0
    layer = StepNoise()
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    noise = np.asarray(layer(x, training=True)) - x
    assert np.abs(noise).max() <= half * (1 + 1e-4)
    assert np.abs(noise).max() > 0.95 * half  # 4,000 uniform draws fill the interval
    assert abs(noise.mean()) < 0.1 * half  # centred: the mean's standard error is 0.009 of the half-width


@pytest.fixture(scope="module")
def faces(ferplus_valid):
    split = read_ferplus_folder(ferplus_valid)
    return split.images[:64, ..., None], np.full((64, 9), 1 / 9, dtype="float32")


@pytest.mark.slow
def test_noisy_model_trains_the_plain_weights_which_copy_back_out(faces, small_net, tmp_path):
    keras.utils.set_random_seed(0)
    x, y = faces
    model = create_model(small_net, alpha=0.25)
    noisy = with_quant_noise(model)
    rounded = [layer.name for layer in model.layers if isinstance(layer, ROUNDED)]
    assert rounded and [layer.name for layer in noisy.layers if layer.name.endswith("_qnoise")] == \
        [f"{name}_qnoise" for name in rounded]
    assert [layer.name for layer in inner_layers(noisy)] == [layer.name for layer in inner_layers(model)] == \
        [layer.name for layer in model.layers]
    assert all(a is b for a, b in zip(inner_layers(noisy), model.layers, strict=True) if b.weights)  # shared layers
    assert (quant_noise_layer(model), quant_noise_layer(noisy)) == (None, StepNoise)
    assert quant_noise_layer(with_quant_noise(model, FakeQuant)) is FakeQuant
    np.testing.assert_array_equal(noisy(x, training=False), model(x, training=False))  # no noise at inference
    assert not np.allclose(noisy(x, training=True), model(x, training=True), atol=1e-4)

    before = model.get_weights()
    noisy.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    noisy.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))

    noisy.save(tmp_path / "noisy.keras")  # a training checkpoint: loads with the optimizer
    loaded = load_checkpoint(tmp_path / "noisy.keras", compile=True)
    plain = copy_to_plain(loaded, create_model(small_net, alpha=0.25))
    assert [layer.name for layer in plain.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(plain(x, training=False), model(x, training=False), atol=1e-6)


def test_the_runtime_refuses_a_noisy_checkpoint_naming_the_loader(tmp_path):
    path = tmp_path / "last.keras"
    with_quant_noise(create_model("mobilefacenet", alpha=0.25), FakeQuant).save(path)
    # a fresh process with the runtime only: the noise layers are not registered there
    code = "import sys; from ferlite.modelfile import load_keras_model; load_keras_model(sys.argv[1])"
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 1
    assert (f"ValueError: {path} is a --quant-noise / --fake-quant training checkpoint: its layers stem_bn_noise, "
            "stem_act_noise, block1_dw_bn_noise, ... belong to training; load it with "
            "ferlite.training.quantnoise.load_checkpoint") in res.stderr, res.stderr[-2000:]
    assert quant_noise_layer(load_checkpoint(path)) is FakeQuant
    load_keras_model(path)  # this process imported ferlite.training.quantnoise: the layers are registered


def test_copy_to_plain_names_a_layer_it_cannot_fill():
    with pytest.raises(ValueError, match=r"the plain model does not match '.*' at layer 'stem_conv': expected weights "
                                         r"of shapes \[\(3, 3, 1, 8\)\], found \[\(3, 3, 1, 16\)\]"):
        copy_to_plain(with_quant_noise(create_model("mobilefacenet", alpha=0.25)),
                      create_model("mobilenet", alpha=0.25))


def test_fake_quant_rounds_to_256_levels_of_its_moving_range_with_a_straight_through_gradient():
    import tensorflow as tf

    layer = FakeQuant(momentum=0.5)
    x = np.linspace(-1.0, 3.0, 1000, dtype="float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)  # builds; identity at inference
    q = np.asarray(layer(x, training=True))
    assert (float(layer.low.numpy()), float(layer.high.numpy())) == (-1.0, 3.0)  # the first batch sets the range
    step = 4.0 / 255
    levels = np.round(q / step + 1 / step)  # zero point: round(1 / step) = 64 steps below 0
    np.testing.assert_allclose(q, (levels - np.round(1 / step)) * step, atol=1e-6)
    assert len(np.unique(levels)) == 256 and np.abs(q - x).max() <= step / 2 + 1e-6
    assert q[np.argmin(np.abs(x))] == 0.0  # 0 is a level
    layer(np.linspace(-3.0, 1.0, 10, dtype="float32"), training=True)
    assert (float(layer.low.numpy()), float(layer.high.numpy())) == (-2.0, 2.0)  # moving average, momentum 0.5
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.reduce_sum(layer(xt, training=True) * 3.0)
    np.testing.assert_array_equal(tape.gradient(y, xt).numpy(), np.full(1000, 3.0, "float32"))


TWO_REPLICA_SCRIPT = """
import json
import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ferlite.training.quantnoise import FakeQuant, StepNoise, with_quant_noise

keras.utils.set_random_seed(0)
x = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 1)).astype("float32")
y = np.full((8, 3), 1 / 3, dtype="float32")
result = {}
for layer in (StepNoise, FakeQuant):
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs)))
        plain = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h)))
        noisy = with_quant_noise(plain, layer)
        noisy.compile(optimizer="adam", loss="categorical_crossentropy")
        loss = noisy.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0]  # one step of 2 x 4 faces
    added = [wrapper.layers[1] for wrapper in noisy.layers if isinstance(wrapper, keras.Sequential)]
    ranges = [(float(q.low.numpy()), float(q.high.numpy())) for q in added if isinstance(q, FakeQuant)]
    result[layer.__name__] = [float(loss), ranges]
print(json.dumps(result))
"""


@pytest.mark.slow
def test_training_on_two_replicas(tmp_path):
    """Both layers train under MirroredStrategy (two logical CPUs), as ``ferlite-train --strategy mirrored`` runs
    them: StepNoise draws from its own seed generator (one created per call was refused, 'tf.function only
    supports singleton tf.Variables') and FakeQuant updates its range in each replica."""
    script = tmp_path / "two_replicas.py"
    script.write_text(TWO_REPLICA_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"StepNoise", "FakeQuant"}
    assert all(np.isfinite(loss) for loss, _ in result.values())
    assert result["StepNoise"][1] == []
    ranges = result["FakeQuant"][1]  # the batch norm's output and the ReLU's: one step set each range, 0 in it
    assert len(ranges) == 2 and all(low <= 0 < high for low, high in ranges), ranges
