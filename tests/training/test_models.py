"""The model registry, the reference MobileFaceNet's size and cost, uint8 input, softmax output, .keras round trip."""

import numpy as np
import pytest

import ferlite
from ferlite.training.models import count_macs, create_model, list_models


def test_registry_names_and_errors():
    assert {"mobilefacenet", "mobilenet"} <= set(list_models())
    assert list_models() == sorted(list_models())
    assert ferlite.create_model is create_model and ferlite.list_models is list_models
    with pytest.raises(ValueError, match="unknown model 'resnet9000'; valid names: .*mobilefacenet.*mobilenet"):
        create_model("resnet9000")
    for kwargs, message in [
        (dict(channels=2), "channels must be 1 or 3, got 2"),
        (dict(input_size=50), "multiple of 16 .*got 50"),
        (dict(alpha=0), "alpha must be positive, got 0"),
        (dict(num_classes=1), "num_classes must be at least 2, got 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            create_model("mobilefacenet", **kwargs)


@pytest.mark.parametrize(("alpha", "channels", "params", "macs"), [
    (1.0, 3, 212_617, 11.63e6), (1.0, 1, 211_465, 10.97e6), (0.75, 3, 125_673, 6.92e6), (0.5, 3, 61_257, 3.42e6),
])
def test_reference_sizes(alpha, channels, params, macs):
    # the table in ../shared/README.md (9 classes, 48x48)
    m = create_model("mobilefacenet", alpha=alpha, channels=channels, num_classes=9)
    assert m.count_params() == params
    assert count_macs(m) == pytest.approx(macs, rel=0.005)


def test_count_macs_by_hand():
    import keras

    inp = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 3, padding="same")(inp)  # 4*4 outputs * 3 filters * (3*3*2) = 864
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 4*4 outputs * 3 channels * 3*3 = 432
    x = keras.layers.BatchNormalization()(x)  # not counted
    x = keras.layers.Flatten()(x)  # 48 features
    out = keras.layers.Dense(5)(x)  # 48 * 5 = 240
    assert count_macs(keras.Model(inp, out)) == 864 + 432 + 240
    # stride 2 halves each side: 2*2 outputs * 3 filters * 18 = 216
    out2 = keras.layers.Conv2D(3, 3, strides=2, padding="same")(inp)
    assert count_macs(keras.Model(inp, out2)) == 216


@pytest.mark.parametrize(("name", "size", "channels", "classes"), [
    ("mobilefacenet", 48, 1, 9), ("mobilefacenet", 64, 3, 8), ("mobilenet", 48, 1, 8),
])
def test_uint8_input_softmax_output(name, size, channels, classes):
    m = create_model(name, alpha=0.25, input_size=size, channels=channels, num_classes=classes)
    assert m.input.dtype == "uint8" and m.input_shape == (None, size, size, channels)
    x = np.random.default_rng(0).integers(0, 256, (4, size, size, channels), dtype=np.uint8)
    p = m.predict(x, verbose=0)
    assert p.shape == (4, classes) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_save_load_identical(tmp_path):
    import keras

    m = create_model("mobilefacenet", alpha=0.5, channels=3)
    x = np.random.default_rng(1).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    m.save(tmp_path / "m.keras")
    m2 = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert m2.count_params() == m.count_params()
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
