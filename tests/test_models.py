import numpy as np
import pytest

from ferlite.models import count_macs, create_model, list_models


def test_registry_names_and_errors():
    assert {"mobilefacenet", "mobilenet"} <= set(list_models())
    with pytest.raises(ValueError, match="valid names: .*mobilefacenet"):
        create_model("resnet9000")
    with pytest.raises(ValueError, match="channels"):
        create_model("mobilefacenet", channels=2)
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("mobilefacenet", input_size=50)


@pytest.mark.parametrize(("alpha", "channels", "params", "macs"), [
    (1.0, 3, 212_617, 11.63e6), (1.0, 1, 211_465, 10.97e6), (0.75, 3, 125_673, 6.92e6), (0.5, 3, 61_257, 3.42e6),
])
def test_reference_sizes(alpha, channels, params, macs):
    m = create_model("mobilefacenet", alpha=alpha, channels=channels, num_classes=9)
    assert m.count_params() == params
    assert count_macs(m) == pytest.approx(macs, rel=0.005)


def test_uint8_input_softmax_output():
    m = create_model("mobilenet", alpha=0.25, num_classes=8)
    assert m.input.dtype == "uint8" and m.input_shape == (None, 48, 48, 1)
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1), dtype=np.uint8)
    p = m.predict(x, verbose=0)
    assert p.shape == (4, 8)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_save_load_identical(tmp_path):
    import keras

    m = create_model("mobilefacenet", alpha=0.5, channels=3)
    x = np.random.default_rng(1).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    m.save(tmp_path / "m.keras")
    m2 = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
