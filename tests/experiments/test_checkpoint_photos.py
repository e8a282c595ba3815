"""experiments/checkpoint_photos.py cuts each photo's face once (a cache) and scores models on the cut faces exactly
as the whole pipeline would."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import REPO, load_script

from ferlite.datasets import read_ferplus_folder
from ferlite.evaluate import score
from ferlite.recognizer import Recognizer
from ferlite.runtime import load_predictor

skdata = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the astronaut() photo")
probe = load_script(REPO / "experiments" / "checkpoint_photos.py")


def test_cut_once_then_score_as_the_pipeline_does(tmp_path, valid_subset):
    photos = tmp_path / "photos"
    for label in ("happiness", "neutral"):
        (photos / label).mkdir(parents=True)
    astronaut = skdata.astronaut()
    cv2.imwrite(str(photos / "happiness" / "astronaut.png"), astronaut[..., ::-1])
    cv2.imwrite(str(photos / "happiness" / "small.jpg"), cv2.resize(astronaut, (256, 256))[..., ::-1])
    cv2.imwrite(str(photos / "neutral" / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    cache = tmp_path / "cut.npz"
    sets = probe.load_sets([photos], cache)
    cut = sets["photos"]
    assert cut["labels"].tolist() == ["neutral", "happiness", "happiness"]  # the model's class order
    assert cut["found"].tolist() == [False, True, True]
    rec = Recognizer.from_pretrained(balance=0)
    _, crops = rec.face_inputs(astronaut, max_faces=1)
    np.testing.assert_array_equal(cut["inputs"][1], crops[0])  # astronaut.png: the crop analyze() feeds the model
    assert not cut["inputs"][0].any()

    for f in photos.rglob("*.*"):  # the cache is read back, the photos are not needed again
        f.unlink()
    again = probe.load_sets([photos], cache)["photos"]
    for key in ("labels", "inputs", "found"):
        np.testing.assert_array_equal(again[key], cut[key])

    faces = read_ferplus_folder(valid_subset)
    keras_model, prior, outputs = probe.load_model("default", sets, rec.predictor.class_prior)
    row = probe.score_model(keras_model, prior, outputs, sets, [0.0, 0.7], (faces.images[..., None], faces.votes),
                            min_images=1)
    assert row["photos@0"] == row["photos@0.7"] == 0.5  # both astronauts happy, the blank photo a miss
    assert row["photos@0.7 recall"] == {"happiness": 1.0, "neutral": 0.0}
    hits, truth = probe.photo_hits(keras_model.classes, sets["photos"], outputs["photos"], prior, 0.7, 1)
    assert hits.tolist() == [False, True, True] and truth.tolist() == [0, 1, 1]  # the blank photo: no face, a miss
    # the alias "default" names the Keras file (the recogniser runs its fp16 form)
    expected = score(faces.votes, load_predictor("default").predict(faces.images[..., None]), rec.classes)
    assert row["fer_mae"] == pytest.approx(expected["mae"]) and row["fer_top1"] == expected["top1"]


def test_paired_bootstrap():
    truth = np.array([0] * 10 + [1] * 5)
    a = np.array([1, 0] * 5 + [1, 1, 0, 0, 0], bool)  # recall 0.5 and 0.4
    same = probe.paired_bootstrap(a, a, truth, 200)
    assert same == {"diff": 0.0, "se": 0.0, "not_ahead": 1.0}
    b = a.copy()
    b[[1, 12]] = True  # one more hit in each class: recall 0.6 and 0.6
    ahead = probe.paired_bootstrap(a, b, truth, 500)
    assert ahead["diff"] == pytest.approx((0.1 + 0.2) / 2) and 0 < ahead["se"] < ahead["diff"]
    assert ahead["not_ahead"] < 0.2


def test_degraded_copies_keep_labels_and_shapes():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (4, 48, 48, 1), dtype=np.uint8)
    sets = {"s": {"labels": np.array(["a"] * 4), "inputs": faces, "found": np.ones(4, bool)}}
    for name in probe.DEGRADATIONS:
        (key, d), = probe.degrade(sets, name).items()
        assert key == f"s+{name}" and d["inputs"].shape == faces.shape and d["inputs"].dtype == np.uint8
        assert d["labels"] is sets["s"]["labels"] and not np.array_equal(d["inputs"], faces), name
    blurred = probe.degrade(sets, "blur1.2")["s+blur1.2"]["inputs"].astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * np.abs(np.diff(faces.astype(float), axis=1)).mean()
