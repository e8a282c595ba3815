"""Recognizer, ferlite.predict / predict_batch: real FER+ PNGs, astronaut(), a tiny fixture model."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ferlite
from ferlite.detect import DEFAULT_GEOMETRY, CropGeometry
from ferlite.recognizer import Recognizer, read_image
from ferlite.runtime import load_predictor

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")


@pytest.fixture(scope="module")
def tiny_predictor(tiny_model_path):
    return load_predictor(tiny_model_path)


@pytest.fixture(scope="module")
def rgb_predictor(tmp_path_factory):
    """A tiny untrained 3-channel model (RGB input)."""
    from ferlite.training.models import create_model

    path = tmp_path_factory.mktemp("rgb") / "tiny_rgb.keras"
    create_model("mobilefacenet", alpha=0.25, channels=3, num_classes=8).save(path)
    return load_predictor(path)


@pytest.fixture
def rec(tiny_predictor) -> Recognizer:
    return Recognizer(tiny_predictor)


@pytest.fixture(scope="module")
def pngs(ferplus_valid):
    return sorted(ferplus_valid.glob("*.png"))[:4]


def test_predict_real_png_path_and_array(rec, pngs):
    out = rec.predict(pngs[0])
    assert list(out) == list(rec.classes) == list(ferlite.FERPLUS_CLASSES[:9])
    assert sum(out.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in out.values())
    gray = cv2.imread(str(pngs[0]), cv2.IMREAD_GRAYSCALE)
    assert rec.predict(gray) == pytest.approx(out, abs=1e-6)
    assert rec.predict(str(pngs[0])) == pytest.approx(out, abs=1e-6)
    assert rec.predict(read_image(pngs[0])) == pytest.approx(out, abs=1e-6)  # 3 equal channels
    assert rec.predict(gray) != pytest.approx(rec.predict(cv2.imread(str(pngs[1]), cv2.IMREAD_GRAYSCALE)), abs=1e-6)


def test_any_size_is_resized(rec, pngs):
    gray = cv2.imread(str(pngs[0]), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(gray, (192, 160), interpolation=cv2.INTER_CUBIC)
    shrunk = cv2.resize(big, (48, 48), interpolation=cv2.INTER_AREA)
    assert rec.predict(big) == pytest.approx(rec.predict(shrunk), abs=1e-6)
    assert rec.predict(big) != pytest.approx(rec.predict(np.ascontiguousarray(big[:48, :48])), abs=1e-6)
    assert sum(rec.predict(gray[:30, :41]).values()) == pytest.approx(1.0, abs=1e-5)  # non-square, small


def test_bgr_and_rgb(tiny_predictor, rgb_predictor, astronaut_face):
    bgr = np.ascontiguousarray(astronaut_face[..., ::-1])
    for predictor in (tiny_predictor, rgb_predictor):
        r = Recognizer(predictor)
        assert r.predict(bgr, color="bgr") == pytest.approx(r.predict(astronaut_face), abs=1e-6)
    rgb_rec = Recognizer(rgb_predictor)
    assert rgb_rec.classes == ferlite.FERPLUS_CLASSES[:8]
    swapped = rgb_rec.predict(bgr)  # BGR read as RGB: a different input for an RGB model
    assert max(abs(swapped[c] - p) for c, p in rgb_rec.predict(astronaut_face).items()) > 1e-6
    gray = cv2.cvtColor(astronaut_face, cv2.COLOR_RGB2GRAY)
    assert sum(rgb_rec.predict(gray).values()) == pytest.approx(1.0, abs=1e-5)  # gray into an RGB model


@pytest.fixture(scope="module")
def astronaut_face() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[70:190, 165:285])


@pytest.mark.parametrize(("bad", "error", "match"), [
    (np.zeros((48, 48), np.float32), ValueError, "face must be uint8.*float32"),
    (np.zeros((48, 48, 3), np.float64) + 0.5, ValueError, "uint8.*float64"),
    (np.zeros((48, 48, 4), np.uint8), ValueError, "4 channels.*expected HxW or HxWx3"),
    (np.zeros((0, 0), np.uint8), ValueError, "empty.*expected"),
    (np.zeros((48, 48, 2), np.uint8), ValueError, "HxWx3.*got shape \\(48, 48, 2\\)"),
    ([[1, 2], [3, 4]], TypeError, "numpy uint8 array.*got list"),
    (None, TypeError, "got NoneType"),
    ("/no/such/face.png", FileNotFoundError, "image file not found: '/no/such/face.png'.*expected"),
])
def test_wrong_input_names_what_was_received(rec, bad, error, match):
    with pytest.raises(error, match=match):
        rec.predict(bad)


def test_unreadable_files(rec, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for p in (broken, text):
        with pytest.raises(ValueError, match=f"{p.name}' is not a readable image.*expected a PNG"):
            rec.predict(p)
    with pytest.raises(ValueError, match="color must be 'rgb' or 'bgr', got 'hsv'"):
        rec.predict(np.zeros((48, 48), np.uint8), color="hsv")


def test_predict_batch_dataframe(rec, pngs):
    faces = [pngs[0], cv2.imread(str(pngs[1]), cv2.IMREAD_GRAYSCALE), read_image(pngs[2]), str(pngs[3])]
    df = rec.predict_batch(faces)
    assert isinstance(df, pd.DataFrame)
    assert df.shape == (4, 9) and list(df.columns) == list(rec.classes)
    np.testing.assert_allclose(df.sum(axis=1), 1.0, atol=1e-5)
    assert df.iloc[0].to_dict() == pytest.approx(rec.predict(pngs[0]), abs=1e-5)
    stack = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pngs])
    np.testing.assert_allclose(rec.predict_batch(stack).to_numpy(), df.to_numpy(), atol=1e-5)
    empty = rec.predict_batch([])
    assert empty.shape == (0, 9) and list(empty.columns) == list(rec.classes)


def test_predict_batch_errors(rec, pngs):
    with pytest.raises(TypeError, match="sequence of faces, got one face \\(an array of shape \\(48, 48\\)\\)"):
        rec.predict_batch(np.zeros((48, 48), np.uint8))
    with pytest.raises(TypeError, match="got one face"):
        rec.predict_batch(str(pngs[0]))
    with pytest.raises(TypeError, match="sequence of faces.*got int"):
        rec.predict_batch(3)
    with pytest.raises(ValueError, match="faces\\[1\\] must be uint8"):
        rec.predict_batch([pngs[0], np.zeros((48, 48), np.float32)])


def test_analyze_structure(rec):
    astronaut = skdata.astronaut()
    (r,) = rec.analyze(astronaut)
    assert set(r) == {"box", "score", "keypoints", "emotions", "top"}
    assert np.allclose(r["box"], (181, 66, 86, 113), atol=3) and all(isinstance(v, int) for v in r["box"])
    assert 0.7 <= r["score"] <= 1.0 and len(r["keypoints"]) == 5
    assert list(r["emotions"]) == list(rec.classes)
    assert sum(r["emotions"].values()) == pytest.approx(1.0, abs=1e-5)
    assert r["top"] == max(r["emotions"], key=r["emotions"].get)
    assert rec.crop_geometry == DEFAULT_GEOMETRY["yunet"]
    (b,) = rec.analyze(np.ascontiguousarray(astronaut[..., ::-1]), color="bgr")
    assert b["box"] == r["box"] and b["emotions"] == pytest.approx(r["emotions"], abs=1e-6)
    assert rec.analyze(np.zeros((240, 320, 3), np.uint8)) == []
    rec.close()


def test_analyze_path_and_custom_geometry(tiny_predictor, tmp_path):
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), skdata.astronaut()[..., ::-1])
    rec = Recognizer(tiny_predictor)
    (r,) = rec.analyze(path)
    assert len(r["keypoints"]) == 5 and rec.crop_geometry == DEFAULT_GEOMETRY["yunet"]
    wide = Recognizer(tiny_predictor, geometry=CropGeometry(margin=0.5))
    assert wide.analyze(path)[0]["emotions"] != pytest.approx(r["emotions"], abs=1e-7)


def test_from_pretrained_errors(tmp_path, tiny_model_path):
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        Recognizer.from_pretrained(tmp_path / "no-such-model.keras")
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        Recognizer.from_pretrained(tiny_model_path, detector="yolo")


def test_module_level_predict_caches_the_model(tiny_model_path, pngs):
    out = ferlite.predict(pngs[0], model=tiny_model_path)
    assert sum(out.values()) == pytest.approx(1.0, abs=1e-5)
    df = ferlite.predict_batch(pngs[:2], model=tiny_model_path)
    assert df.shape == (2, 9)
    from ferlite.recognizer import _cached

    assert _cached(str(tiny_model_path), None) is _cached(str(tiny_model_path), None)


def test_default_model_sees_the_smile():
    """The bundled default model, with detection and the default crop: the astronaut smiles."""
    astronaut = skdata.astronaut()
    (face,) = Recognizer.from_pretrained().analyze(astronaut)
    assert face["top"] == "happiness"
    x, y, w, h = face["box"]
    probs = ferlite.predict(astronaut[y:y + h, x:x + w])
    assert max(probs, key=probs.get) == "happiness"


def test_import_ferlite_is_light():
    code = ("import sys, ferlite; names = sorted(ferlite.__all__); "
            "heavy = [m for m in ('tensorflow', 'keras', 'cv2', 'mediapipe', 'pandas') if m in sys.modules]; "
            "assert not heavy, heavy; import ferlite.recognizer; assert 'tensorflow' not in sys.modules; "
            "print(' '.join(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    names = out.stdout.split()
    assert {"predict", "predict_batch", "Recognizer", "detect_faces", "create_model", "list_models"} <= set(names)
    for name in names:
        assert getattr(ferlite, name) is not None


# --- fuzz: a few hundred random arrays, deterministic (derandomize), no exception but the documented ones ---------

FUZZ_DTYPES = (np.uint8,) * 6 + (np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_,
                                  np.complex64)


@pytest.fixture(scope="module")
def fuzz_rec(tmp_path_factory) -> Recognizer:
    """The bundled default model (float16 TFLite) with the bundled default detector, from an empty cache."""
    rec = Recognizer.from_pretrained()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERLITE_HOME", str(tmp_path_factory.mktemp("fuzz_home")))
        assert rec.detector.name == "yunet"  # loaded now, kept for the module
    yield rec
    rec.close()


@st.composite
def random_arrays(draw) -> np.ndarray:
    """Any dtype and 0 to 4 dimensions (0-size sides, 1 to 5 channels, 1x3000 strips), NaN/inf/extreme values,
    C, Fortran, reversed or strided memory."""
    dtype = np.dtype(draw(st.sampled_from(FUZZ_DTYPES)))
    shape = draw(st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),
        st.tuples(st.integers(1, 64), st.integers(1, 64)),
        st.tuples(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 2, 3, 4, 5])),
        st.sampled_from([(1, 3000), (3000, 1, 3), (1, 1, 3), (0, 5, 3), (5, 0), (2, 8, 8, 3)])))
    elements = st.floats(width=8 * dtype.itemsize) if dtype.kind == "f" else None  # NaN, inf, the largest floats
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    layout = draw(st.sampled_from(["c", "fortran", "reversed", "strided"]))
    if array.ndim >= 2 and layout == "fortran":
        array = np.asfortranarray(array)
    elif array.ndim >= 2 and layout == "reversed":
        array = array[::-1, ::-1]
    elif array.ndim >= 2 and layout == "strided":
        array = np.repeat(array, 2, axis=1)[:, ::2]
    return array


@st.composite
def astronaut_windows(draw) -> np.ndarray:
    """A window of astronaut(), often holding her face whole or cut by the border: RGB, gray, HxWx1 or a BGR view."""
    x0, y0 = draw(st.integers(0, 260)), draw(st.integers(0, 160))
    image = ASTRONAUT[y0:draw(st.integers(y0 + 1, 512)), x0:draw(st.integers(x0 + 1, 512))]
    kind = draw(st.sampled_from(["rgb", "gray", "gray1", "reversed channels"]))
    if kind == "gray":
        return image.mean(axis=2).astype(np.uint8)
    return image[..., :1] if kind == "gray1" else image[..., ::-1] if kind == "reversed channels" else image


ASTRONAUT = skdata.astronaut()
NOT_IMAGES = st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=8),
                       st.lists(st.integers(0, 255), max_size=4), st.just([[0, 1], [2, 3]]))


def is_image(x: object) -> bool:
    """What analyze documents it takes: a non-empty uint8 HxW, HxWx1 or HxWx3 numpy array."""
    return (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.size > 0
            and (x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (1, 3))))


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(image=st.one_of(random_arrays(), astronaut_windows(), NOT_IMAGES),
       color=st.sampled_from(["rgb", "bgr", "rgb", "bgr", "hsv"]))
def test_fuzz_analyze_and_predict(fuzz_rec, image, color):
    """Random arrays and non-arrays: TypeError or ValueError for what is not an image (or an unknown color), never
    another exception; for an image, faces inside it whose probabilities sum to 1."""
    for method in (fuzz_rec.analyze, fuzz_rec.predict):
        try:
            out = method(image, color=color)
        except (TypeError, ValueError) as exc:
            assert not is_image(image) or color == "hsv", f"{method.__name__} refused an image: {exc}"
            assert str(exc)
            continue
        assert is_image(image) and color != "hsv", f"{method.__name__} took {type(image).__name__} {color}"
        h, w = image.shape[:2]
        for face in out if method == fuzz_rec.analyze else [{"box": (0, 0, w, h), "emotions": out}]:
            x, y, bw, bh = face["box"]
            assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h
            assert list(face["emotions"]) == list(fuzz_rec.classes)
            assert sum(face["emotions"].values()) == pytest.approx(1.0, abs=1e-4)


def test_balance_uses_the_sidecar_prior_everywhere(astronaut_face):
    """The bundled default's class prior comes from its sidecar; balance applies to predict, predict_batch and
    analyze alike, and 0 gives the model's own outputs."""
    from ferlite.labels import balance as balance_probs

    plain = Recognizer.from_pretrained(balance=0.0)
    prior = plain.predictor.class_prior
    assert prior is not None and prior.shape == (len(plain.classes),) and abs(prior.sum() - 1) < 1e-3
    assert prior[plain.classes.index("neutral")] > 10 * prior[plain.classes.index("disgust")]
    full = Recognizer.from_pretrained(balance=1.0)
    raw = np.array(list(plain.predict(astronaut_face).values()))
    np.testing.assert_allclose(list(full.predict(astronaut_face).values()), balance_probs(raw, prior, 1.0), atol=1e-6)
    np.testing.assert_allclose(full.predict_batch([astronaut_face]).to_numpy()[0],
                               list(full.predict(astronaut_face).values()), atol=1e-6)
    (a,) = full.analyze(skdata.astronaut())
    (b,) = plain.analyze(skdata.astronaut())
    np.testing.assert_allclose(list(a["emotions"].values()),
                               balance_probs(np.array(list(b["emotions"].values())), prior, 1.0), atol=1e-6)
    assert a["top"] == max(a["emotions"], key=a["emotions"].get)
    default = Recognizer.from_pretrained()
    assert default.balance == default.predictor.default_balance > 0  # the bundled sidecar's measured strength
    np.testing.assert_allclose(list(ferlite.predict(astronaut_face).values()),
                               list(default.predict(astronaut_face).values()), atol=1e-6)
    np.testing.assert_allclose(list(ferlite.predict(astronaut_face, balance=0).values()), raw, atol=1e-6)


def test_balance_errors(tiny_predictor):
    for bad in (-0.5, 2, "1", True):
        with pytest.raises(ValueError, match=f"balance must be a number in \\[0, 1\\].*got {bad!r}"):
            Recognizer(tiny_predictor, balance=bad)
    assert tiny_predictor.class_prior is None  # an untrained model saved without a sidecar
    with pytest.raises(ValueError, match="balance=0.5 needs the model's class prior, and tiny.keras has none"):
        Recognizer(tiny_predictor, balance=0.5)
    assert Recognizer(tiny_predictor, balance=0).balance == Recognizer(tiny_predictor).balance == 0.0
    import dataclasses

    no_disgust = dataclasses.replace(tiny_predictor, class_prior=np.array([0.5, 0.3, 0.1, 0.1, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="trained without any anger, disgust, fear, contempt, unknown \\(prior 0\\)"):
        Recognizer(no_disgust, balance=1)
    assert Recognizer(no_disgust).balance == 0.0
