"""ferlite.evaluate: score() on hand-worked arrays; evaluate() on real FER2013Valid faces with tiny models;
folder-per-class datasets of real FER+ faces (as crops, and pasted into whole photos for --detect) scored by the
real-photo protocol (classes with enough images, argmax over them, photos without a face as misses)."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil

import cv2
import numpy as np
import pytest
from conftest import copy_split, majority_class_folder, paste_into_scene

from ferlite.datasets import DataError
from ferlite.evaluate import (
    EvalReport,
    evaluate,
    score,
    score_distribution,
    score_labels,
    score_photos,
    select_classes,
)
from ferlite.labels import balance
from ferlite.report import format_report, plot_report

# FER+ vote columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
VOTES = np.array([
    [6, 4, 0, 0, 0, 0, 0, 0, 0, 0],  # A  seed9 (.6 .4); majority: neutral (6 > 10/2)
    [0, 0, 10, 0, 0, 0, 0, 0, 0, 0],  # B  seed9 surprise; majority: surprise
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # C  NF only: dropped by seed9; majority: NF -> discarded
    [0, 5, 0, 5, 0, 0, 0, 0, 0, 0],  # D  seed9 (.5 happiness, .5 sadness), argmax tie -> happiness; majority: 5 !> 5
    [1, 0, 0, 0, 4, 0, 5, 0, 0, 0],  # E  seed9 (.1 .4 .5); majority: the single vote is removed, 5 > 9/2 -> fear
])
PROBS = np.array([
    [0.7, 0.2, 0.1, 0, 0, 0, 0, 0, 0],  # A  argmax neutral (hit)
    [0.1, 0, 0.9, 0, 0, 0, 0, 0, 0],  # B  argmax surprise (hit)
    [1 / 9] * 9,  # C  not scored
    [0, 0.2, 0, 0.8, 0, 0, 0, 0, 0],  # D  argmax sadness (miss: target argmax happiness)
    [0.1, 0, 0, 0, 0.5, 0, 0.4, 0, 0],  # E  argmax anger (miss: fear)
])
CLASSES9 = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown")


def test_score_nine_classes_hand_worked():
    s = score(VOTES, PROBS, CLASSES9)
    assert (s["faces"], s["n"], s["dropped"]) == (5, 4, 1)  # C has no vote among the nine classes
    # |target - prediction| summed per face: A .1+.2+.1 = .4, B .1+.1 = .2, D .3+.3 = .6, E .1+.1 = .2
    # -> 1.4 over 4 faces x 9 classes
    assert s["mae"] == pytest.approx(1.4 / 36)
    # per class, over the 4 faces: neutral A.1 + B.1 = .2; happiness A.2 + D.3 = .5; surprise A.1 + B.1 = .2;
    # sadness D.3; anger E.1; fear E.1
    expected = {"neutral": 0.05, "happiness": 0.125, "surprise": 0.05, "sadness": 0.075, "anger": 0.025,
                "disgust": 0.0, "fear": 0.025, "contempt": 0.0, "unknown": 0.0}
    assert list(s["class_mae"]) == list(CLASSES9)
    assert s["class_mae"] == pytest.approx(expected)
    assert s["top1"] == pytest.approx(0.5)  # A, B hit; D, E miss
    kl = (0.6 * math.log(0.6 / 0.7) + 0.4 * math.log(0.4 / 0.2)  # A
          + math.log(1 / 0.9)  # B
          + 0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.8)  # D
          + 0.4 * math.log(0.4 / 0.5) + 0.5 * math.log(0.5 / 0.4)) / 4  # E (neutral term: .1 ln(.1/.1) = 0)
    assert s["kl"] == pytest.approx(kl)
    # majority keeps A (neutral), B (surprise), E (fear); predicted over the 8 emotions: neutral, surprise, anger
    assert s["major8_n"] == 3
    assert s["major8_acc"] == pytest.approx(2 / 3)
    cm = np.zeros((9, 9), int)
    for true, pred in [(0, 0), (2, 2), (1, 3), (6, 4)]:  # A, B, D (tie -> happiness), E
        cm[true, pred] += 1
    np.testing.assert_array_equal(s["confusion"], cm)
    assert s["classes"] == CLASSES9


def test_score_eight_classes_drops_faces_without_emotion_votes():
    votes = np.array([
        [6, 4, 0, 0, 0, 0, 0, 0, 0, 0],  # A  seed9 over 8: (.6 .4); majority: neutral
        [0, 0, 0, 0, 0, 0, 0, 0, 10, 0],  # F  unknown only: no emotion vote -> dropped; majority: unknown
        [3, 0, 0, 0, 0, 0, 0, 0, 7, 0],  # G  seed9 over 8: neutral 1.0; majority: unknown (7 > 5) -> discarded
    ])
    probs = np.array([[0.7, 0.2, 0.1, 0, 0, 0, 0, 0], [0.125] * 8, [0.6, 0.4, 0, 0, 0, 0, 0, 0]])
    s = score(votes, probs, CLASSES9[:8])
    assert (s["n"], s["dropped"], s["major8_n"]) == (2, 1, 1)
    # A .1+.2+.1 = .4, G .4+.4 = .8 -> 1.2 over 2 faces x 8 classes
    assert s["mae"] == pytest.approx(1.2 / 16)
    assert s["top1"] == pytest.approx(1.0)
    assert s["major8_acc"] == pytest.approx(1.0)
    assert list(s["class_mae"]) == list(CLASSES9[:8])
    # the same votes under the 9-class protocol keep all three faces (F and G have unknown votes)
    assert score(votes, np.full((3, 9), 1 / 9), CLASSES9)["n"] == 3


def test_score_distribution_any_classes_hand_worked():
    targets = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    probs = np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    s = score_distribution(targets, probs, ("cat", "dog", "owl"))
    # |t - p|: face 1 .5+.5+0 = 1.0, face 2 0+.3+.3 = .6 -> 1.6 over 2 faces x 3 classes
    assert s["mae"] == pytest.approx(1.6 / 6)
    assert s["class_mae"] == pytest.approx({"cat": 0.25, "dog": 0.4, "owl": 0.15})
    # argmax: face 1 cat vs cat (hit; tie .5/.5 goes to the first), face 2 dog (tie -> first) vs owl (miss)
    assert s["top1"] == pytest.approx(0.5)
    assert s["confusion"].tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert math.isnan(s["major8_acc"]) and s["major8_n"] == 0 and (s["n"], s["faces"], s["dropped"]) == (2, 2, 0)
    with pytest.raises(ValueError, match=r"must both have shape \(N, 2\)"):
        score_distribution(targets, probs, ("cat", "dog"))


def test_score_rejects_bad_input():
    with pytest.raises(ValueError, match=r"cannot be scored on FER\+ votes"):
        score(VOTES, PROBS[:, :3], ("cat", "dog", "bird"))
    with pytest.raises(ValueError, match="cannot be scored"):  # FER+ names in another order
        score(VOTES, PROBS, CLASSES9[::-1])
    with pytest.raises(ValueError, match=r"shape \(5, 9\)"):
        score(VOTES, PROBS[:, :8], CLASSES9)
    with pytest.raises(ValueError, match="nothing to score"):
        score(VOTES[2:3], PROBS[2:3], CLASSES9)  # the NF-only face


def test_report_json_format_and_plots(tmp_path):
    # only D and a face without a majority: major8 keeps nothing -> NaN in the report, null in JSON
    r = EvalReport(**score(VOTES[[3]], PROBS[[3]], CLASSES9), model="m.keras", data="/d")
    assert r.major8_n == 0 and math.isnan(r.major8_acc)
    j = r.to_json()
    assert j["major8_acc"] is None
    json.dumps(j, allow_nan=False)  # strict JSON
    r = EvalReport(**score(VOTES, PROBS, CLASSES9), model="m.keras", data="/d",
                   skipped=[("/d/label.csv", 7, "bad row")])
    j = r.to_json()
    assert {"n", "mae", "top1", "class_mae", "major8_acc", "major8_n", "kl", "model", "data",
            "confusion_matrix", "skipped"} <= set(j)
    assert (j["rows"], j["skipped"], j["faces"], j["n"]) == (6, 1, 5, 4)
    assert j["skipped_rows"] == [{"file": "/d/label.csv", "line": 7, "reason": "bad row"}]
    assert json.loads(json.dumps(j)) == j
    text = format_report(r)
    for needle in ("Top result accuracy: 0.5000 (50.00%)", "Class-wise MAE:", f"Total MAE: {1.4 / 36:.6f}",
                   "happiness   0.125000", "major8 accuracy (FER+ majority protocol): 0.6667 (66.67%)",
                   "6 rows, 1 skipped as bad, 5 read, 4 scored (seed9, 1 without votes), 3 kept by majority",
                   "Confusion matrix"):
        assert needle in text, needle
    assert text.index("Top result accuracy") < text.index("Class-wise MAE") < text.index("Total MAE")

    paths = plot_report(r, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["class_mae.png", "confusion_matrix.png"]
    for p in paths:
        img = cv2.imread(str(p))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 400
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["class_mae.png", "confusion_matrix.png"]


def test_evaluate_real_faces_matches_score_on_predictor_output(tiny_model_path, valid_subset):
    from ferlite.datasets import read_ferplus_folder
    from ferlite.runtime import load_predictor

    report = evaluate(str(tiny_model_path), valid_subset, batch_size=64)
    faces = read_ferplus_folder(valid_subset)
    predictor = load_predictor(tiny_model_path)
    expected = score(faces.votes, predictor.predict(faces.images[..., None]), predictor.classes)
    assert report.n == expected["n"] == 200
    assert report.mae == pytest.approx(expected["mae"], rel=1e-5)
    assert report.top1 == pytest.approx(expected["top1"])
    assert report.major8_n == expected["major8_n"]
    assert report.confusion.sum() == 200
    assert (report.model, report.backend, report.data) == (str(tiny_model_path), "keras", str(valid_subset.resolve()))
    assert 0 < report.mae < 1 and report.skipped == []
    again = evaluate(predictor, valid_subset)  # a loaded Predictor, another batch size: same numbers
    assert again.mae == pytest.approx(report.mae, rel=1e-5)
    assert again.class_mae == pytest.approx(report.class_mae, rel=1e-5)
    with pytest.raises(ValueError, match=r"balance=0\.5 needs the model's class prior, and tiny\.keras has none"):
        evaluate(predictor, valid_subset, balance=0.5)


def test_training_validation_metrics_equal_evaluate(tiny_model_path, valid_subset):
    import keras

    from ferlite.datasets import read_ferplus_folder
    from ferlite.training.loop import evaluate_arrays

    metrics, pred = evaluate_arrays(keras.models.load_model(tiny_model_path), read_ferplus_folder(valid_subset))
    report = evaluate(tiny_model_path, valid_subset)
    assert set(metrics) == {"n", "mae", "top1", "kl", "major8_acc", "major8_n", "class_mae"}
    assert pred.shape == (200, 9)
    for key, value in metrics.items():
        assert value == pytest.approx(getattr(report, key), rel=1e-5), key


def test_evaluate_eight_class_three_channel_model_at_64px(tmp_path, ferplus_valid):
    from ferlite.runtime import load_predictor
    from ferlite.training.models import create_model

    path = tmp_path / "rgb8.keras"
    create_model("mobilefacenet", alpha=0.25, channels=3, input_size=64, num_classes=8).save(path)
    folder = copy_split(ferplus_valid, tmp_path / "v40", 40)
    report = evaluate(path, folder)
    assert report.classes == CLASSES9[:8] and report.confusion.shape == (8, 8)
    assert list(report.class_mae) == list(CLASSES9[:8])
    with open(folder / "label.csv", newline="") as f:
        emotion_votes = [sum(map(int, row[2:10])) for row in csv.reader(f)]
    assert report.n == sum(v > 0 for v in emotion_votes)
    predictor = load_predictor(path)
    assert (predictor.input_size, predictor.channels) == (64, 3)


def test_evaluate_refuses_model_with_other_classes(tmp_path, ferplus_valid):
    from ferlite.training.models import create_model

    path = tmp_path / "pets.keras"
    create_model("mobilefacenet", alpha=0.25, num_classes=3).save(path)
    (tmp_path / "pets.json").write_text(json.dumps({"classes": ["cat", "dog", "bird"]}))
    folder = copy_split(ferplus_valid, tmp_path / "v10", 10)
    with pytest.raises(ValueError, match=r"classes \['cat', 'dog', 'bird'\] cannot be scored on FER\+ votes"):
        evaluate(path, folder)


def test_evaluate_bad_data(tiny_model_path, tmp_path, ferplus_valid):
    from ferlite.datasets import DataError

    folder = copy_split(ferplus_valid, tmp_path / "v20", 20)
    lines = (folder / "label.csv").read_text().splitlines()
    (folder / lines[4].split(",")[0]).write_bytes(b"this is not a PNG")
    with pytest.raises(DataError, match=r"label\.csv, line 5: image .*not a readable image"):
        evaluate(tiny_model_path, folder)
    with pytest.warns(UserWarning, match="1 bad row"):
        report = evaluate(tiny_model_path, folder, skip_bad=True)
    assert (report.rows, report.faces, report.n, len(report.skipped)) == (20, 19, 19, 1)
    assert report.skipped[0][1] == 5
    one = copy_split(ferplus_valid, tmp_path / "v1", 1)
    (one / "label.csv").write_text("fer0028638.png,not enough columns\n")
    with pytest.raises(DataError, match=r"v1/label\.csv: no readable face to score \(1 bad rows skipped\)"):
        with pytest.warns(UserWarning, match="1 bad row"):
            evaluate(tiny_model_path, one, skip_bad=True)
    with pytest.raises(FileNotFoundError, match="no label.csv"):
        evaluate(tiny_model_path, tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(tiny_model_path, folder, batch_size=0)


# --------------------------------------------------------------------------- a folder per class

EMOTIONS = CLASSES9[:8]


@pytest.fixture(scope="module")
def fp16_model(bundled_fp16):
    """The bundled default model in float16 TFLite, loaded once."""
    from ferlite.runtime import load_predictor

    return load_predictor(bundled_fp16)


def test_score_labels_hand_worked():
    # model outputs: the nine FER+ classes; the data's classes: neutral, happiness, sadness (no folder for the rest)
    probs = np.array([
        [0.5, 0.3, 0.0, 0.2, 0, 0, 0, 0, 0],  # neutral: hit
        [0.1, 0.2, 0.6, 0.1, 0, 0, 0, 0, 0],  # surprise has no folder: argmax over the three is happiness: hit
        [0.0, 0.0, 0.0, 0.1, 0, 0, 0, 0, 0.9],  # unknown ignored too: sadness: miss (label neutral)
        [0.0, 0.4, 0.0, 0.4, 0, 0, 0, 0, 0.2],  # tie happiness/sadness -> happiness (model order): miss
    ])
    s = score_labels([0, 1, 0, 2], probs, CLASSES9, ("neutral", "happiness", "sadness"))
    assert (s["n"], s["top1"], s["major8_n"], s["class_mae"]) == (4, 0.5, 0, {})
    assert math.isnan(s["mae"]) and math.isnan(s["kl"]) and math.isnan(s["major8_acc"])
    assert s["confusion"].tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 0]]
    assert s["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 1 + 0 / 1) / 3)
    # the second photo had no face: a miss in the last column, its outputs ignored
    s = score_labels([0, 1, 0, 2], probs, CLASSES9, ("neutral", "happiness", "sadness"), found=[1, 0, 1, 1])
    assert s["confusion"].tolist() == [[1, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    assert (s["n"], s["top1"], s["balanced_accuracy"]) == (4, 0.25, pytest.approx((1 / 2 + 0 + 0) / 3))
    with pytest.raises(ValueError, match=r"found must have shape \(4,\), one flag per photo, got \(3,\)"):
        score_labels([0, 1, 0, 2], probs, CLASSES9, ("neutral", "happiness", "sadness"), found=[1, 1, 1])
    with pytest.raises(ValueError, match=r"must be classes of the model, in its order"):
        score_labels([0], probs[:1], CLASSES9, ("happiness", "neutral"))
    with pytest.raises(ValueError, match=r"must be classes of the model"):
        score_labels([0], probs[:1], CLASSES9, ("happy",))
    with pytest.raises(ValueError, match=r"labels must index the 3 classes \(0\.\.2\), got 0\.\.3"):
        score_labels([0, 3], probs[:2], CLASSES9, ("neutral", "happiness", "sadness"))


def test_score_photos_protocol_hand_worked():
    """Classes with at least min_images photos, less those excluded; argmax over them; no face a miss."""
    #        neutral happiness surprise sadness anger disgust fear contempt unknown
    rows = [
        ("neutral", [0.6, 0.2, 0.0, 0.1, 0, 0, 0.1, 0, 0], True),  # hit
        ("neutral", [0.1, 0.0, 0.0, 0.0, 0, 0, 0.0, 0, 0.9], True),  # unknown ignored: neutral, hit
        ("neutral", [0.0] * 9, False),  # no face: a miss
        ("happiness", [0.1, 0.8, 0.1, 0.0, 0, 0, 0.0, 0, 0], True),  # hit
        ("happiness", [0.1, 0.2, 0.0, 0.7, 0, 0, 0.0, 0, 0], True),  # sadness: miss
        ("sadness", [0.1, 0.0, 0.0, 0.3, 0, 0, 0.6, 0, 0], True),  # fear is left out: sadness, hit
        ("sadness", [0.0] * 9, False),  # no face: a miss
        ("fear", [0.0, 0.0, 0.0, 0.0, 0, 0, 1.0, 0, 0], True),  # 1 photo < 2: left out
        ("contempt", [0.0, 0.0, 0.0, 0.0, 0, 0, 0.0, 1, 0], True),  # excluded by name
        ("contempt", [0.0, 0.0, 0.0, 0.0, 0, 0, 0.0, 1, 0], True),
    ]
    labels, probs, found = zip(*rows, strict=True)
    s = score_photos(labels, np.array(probs), CLASSES9, found=found, min_images=2, exclude=["contempt"])
    assert s["classes"] == ("neutral", "happiness", "sadness")
    assert s["left_out"] == {"fear": 1, "contempt": 2}
    assert (s["faces"], s["dropped"], s["n"]) == (10, 3, 7)
    assert s["confusion"].tolist() == [[2, 0, 0, 1], [0, 1, 1, 0], [0, 0, 1, 1]]  # last column: no face
    assert s["top1"] == pytest.approx(4 / 7)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    # as face crops (no found flags): a square matrix, the two zero rows scored as what they predict (neutral)
    crops = score_photos(labels, np.array(probs), CLASSES9, min_images=2, exclude=["contempt"])
    assert crops["confusion"].tolist() == [[3, 0, 0], [0, 1, 1], [1, 0, 1]]

    assert select_classes(labels, CLASSES9) == ((), {"neutral": 3, "happiness": 2, "sadness": 2, "fear": 1,
                                                     "contempt": 2})  # none has the default 20
    with pytest.raises(ValueError, match=r"no class to score: each class has fewer than 20 images or is excluded "
                                         r"\(neutral 3, happiness 2, sadness 2, fear 1, contempt 2\); expected at "
                                         r"least one class with 20 or more images \(lower min_images"):
        score_photos(labels, np.array(probs), CLASSES9, found=found)
    with pytest.raises(ValueError, match=r"class\(es\) 'contempt' \(2 images\) would be scored but the model has no "
                                         r"output for them \(its classes: neutral, .*, fear\); leave them out"):
        score_photos(labels, np.array(probs)[:, :7], CLASSES9[:7], found=found, min_images=2)
    with pytest.raises(ValueError, match=r"exclude: 'contemt' is not a class here; expected some of: neutral, "):
        score_photos(labels, np.array(probs), CLASSES9, min_images=2, exclude=["contemt"])
    with pytest.raises(ValueError, match=r"min_images must be an integer of at least 1, got 0"):
        score_photos(labels, np.array(probs), CLASSES9, min_images=0)
    with pytest.raises(ValueError, match=r"predictions must have shape \(10, 9\) for 10 photos and 9 classes, got "
                                         r"\(10, 8\)"):
        score_photos(labels, np.array(probs)[:, :8], CLASSES9, min_images=2)


def test_folder_per_class_agrees_exactly_with_major8(fp16_model, ferplus_valid, tmp_path):
    """The first 300 faces of FER2013Valid, one folder per majority class, against the FER+ protocol on them."""
    from ferlite.datasets import read_ferplus_folder
    from ferlite.labels import votes_to_targets

    fer = copy_split(ferplus_valid, tmp_path / "fer300", 300)
    folders = majority_class_folder(ferplus_valid, tmp_path / "by_class", 300)
    assert sorted(p.name for p in folders.iterdir()) == sorted(EMOTIONS)  # all eight emotions have a face
    by_votes = evaluate(fp16_model, fer)  # FER+ votes: the model's own outputs by default
    # every class, even disgust's 2 faces; the model's own outputs (photos default to the class-balanced decision)
    report = evaluate(fp16_model, folders, batch_size=100, min_images=1, balance=0)

    faces = read_ferplus_folder(fer)  # the major8 rule by hand: argmax over the 8 emotion outputs
    t = votes_to_targets(faces.votes, "majority", 8)
    pred = fp16_model.predict(faces.images[t.keep][..., None])[:, :8].argmax(axis=1)
    expected = np.zeros((8, 8), np.int64)
    np.add.at(expected, (t.targets.argmax(axis=1), pred), 1)

    assert (report.layout, report.classes, report.n, report.faces, report.dropped) == ("folders", EMOTIONS, 264, 264, 0)
    assert by_votes.balance == report.balance == 0 and "outputs:" not in format_report(by_votes)
    balanced = evaluate(fp16_model, fer, balance=0.7)  # FER+ votes under the class-balanced decision, when asked
    own = fp16_model.predict(faces.images[..., None])
    assert balanced.mae == pytest.approx(score(faces.votes, balance(own, fp16_model.class_prior, 0.7), CLASSES9)["mae"])
    assert balanced.mae != pytest.approx(by_votes.mae)
    assert "outputs: the model's, class-balanced (divided by the training class prior ** 0.7)" in \
        format_report(balanced)
    assert report.n == by_votes.major8_n == expected.sum()
    assert report.top1 == by_votes.major8_acc == np.trace(expected) / expected.sum() == 232 / 264
    np.testing.assert_array_equal(report.confusion, expected)
    assert report.class_recall == {c: expected[i, i] / expected[i].sum() for i, c in enumerate(EMOTIONS)}
    assert report.class_recall["happiness"] == 68 / 70
    balanced = np.mean(np.diag(expected) / expected.sum(axis=1))
    assert report.balanced_accuracy == pytest.approx(balanced) and (report.left_out, report.min_images) == ({}, 1)
    j = report.to_json()
    json.dumps(j, allow_nan=False)
    assert (j["mae"], j["kl"], j["major8_acc"], j["class_mae"], j["layout"], j["no_face"]) == \
        (None, None, None, None, "folders", 0)
    assert j["top1"] == 232 / 264 and j["confusion_matrix"] == expected.tolist()
    assert j["balanced_accuracy"] == pytest.approx(balanced) and j["confusion_columns"] == list(EMOTIONS)
    text = format_report(report)
    for needle in (f"Balanced accuracy (mean class-wise recall): {balanced:.4f}\n"
                   "Accuracy (top-1 against the folder): 0.8788 (87.88%)", "happiness   0.9714  (68/70)",
                   "classes scored: the 8 with at least 1 image; left out: none",
                   "argmax of the model's outputs for these 8 classes",
                   "264 images, 0 skipped as bad, 264 read, 0 of classes left out, 264 scored",
                   "Confusion matrix (rows: the folder, columns: predicted):"):
        assert needle in text, needle
    assert text.index("Balanced accuracy") < text.index("Accuracy (top-1") < text.index("Class-wise recall") \
        < text.index("Confusion matrix")
    paths = plot_report(report, tmp_path / "plots")
    assert [p.name for p in paths] == ["confusion_matrix.png", "class_recall.png"]
    assert all(cv2.imread(str(p)) is not None for p in paths)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["class_recall.png", "confusion_matrix.png"]


def test_class_map_renames_folders_and_unknown_names_are_refused(fp16_model, ferplus_valid, tmp_path):
    from ferlite.datasets import DataError

    plain = evaluate(fp16_model, majority_class_folder(ferplus_valid, tmp_path / "plain", 60), min_images=1)
    folder = majority_class_folder(ferplus_valid, tmp_path / "renamed", 60)
    (folder / "happiness").rename(folder / "happy")
    (folder / "anger").rename(folder / "angry")
    with pytest.raises(DataError) as info:
        evaluate(fp16_model, folder)
    message = str(info.value)
    for needle in ("sub-folder name(s) 'angry', 'happy' are not classes of the model",
                   "the model's classes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, "
                   "unknown", "did you mean 'angry' -> 'anger', 'happy' -> 'happiness'?",
                   "--class-map angry=anger,happy=happiness", str(folder)):
        assert needle in message, needle
    assert "\n" not in message

    mapped = evaluate(fp16_model, folder, class_map={"happy": "happiness", "angry": "anger"}, min_images=1)
    assert mapped.class_map == {"happy": "happiness", "angry": "anger"}
    assert (mapped.classes, mapped.n, mapped.top1) == (plain.classes, plain.n, plain.top1)
    np.testing.assert_array_equal(mapped.confusion, plain.confusion)
    assert "(one folder per class; renamed happy=happiness,angry=anger)" in format_report(mapped)

    with pytest.raises(DataError, match=r"class map: happy=joy maps to no class of the model \(the model's classes: "
                                        r"neutral, happiness"):
        evaluate(fp16_model, folder, class_map={"happy": "joy", "angry": "anger"})
    with pytest.raises(DataError, match=r"class map: .*renamed has no sub-folder 'sad' \(its sub-folders: angry, "):
        evaluate(fp16_model, folder, class_map={"happy": "happiness", "angry": "anger", "sad": "sadness"})
    (folder / "happiness").mkdir()
    shutil.copy(next((folder / "happy").iterdir()), folder / "happiness")
    with pytest.raises(DataError, match=r"sub-folders 'happiness', 'happy' are all class 'happiness' \(expected one "):
        evaluate(fp16_model, folder, class_map={"happy": "happiness", "angry": "anger"})


def test_layouts_and_empty_folders_are_refused_naming_what_was_received(fp16_model, ferplus_valid, tmp_path):
    from ferlite.datasets import DataError, dataset_layout

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no label\.csv in .*empty, and no sub-folder of it holds an image: "
                                                r"it holds nothing; expected a FER\+ split folder .*; or a CSV dataset "
                                                r"file .*; or a folder with one sub-folder of images per class"):
        evaluate(fp16_model, empty)
    loose = copy_split(ferplus_valid, tmp_path / "loose", 3)
    (loose / "label.csv").unlink()
    (loose / "notes").mkdir()
    with pytest.raises(FileNotFoundError, match=r"it holds 3 image file\(s\) not in class sub-folders \(fer\d+\.png, "
                                                r".*\), 1 sub-folder\(s\) without an image \(notes\)"):
        evaluate(fp16_model, loose)
    with pytest.raises(DataError, match=r"fer\d+\.png is a file but not a \.csv, so no dataset: expected a FER\+"):
        evaluate(fp16_model, next(loose.glob("*.png")))
    with pytest.raises(FileNotFoundError, match=r"dataset not found: .*nowhere \(expected a FER\+ split folder"):
        evaluate(fp16_model, tmp_path / "nowhere")
    assert [dataset_layout(p) for p in (ferplus_valid, tmp_path / "x.csv")] == ["ferplus", "csv"]

    folder = majority_class_folder(ferplus_valid, tmp_path / "by_class", 20)
    assert dataset_layout(folder) == "folders"
    (folder / "disgust").mkdir()  # no disgust face among the first 20
    (folder / "disgust" / "readme.txt").write_text("no faces here")
    with pytest.raises(DataError, match=r"class folder\(s\) .*by_class/disgust hold no image file; expected files "
                                        r"ending in \.png \.jpg"):
        evaluate(fp16_model, folder)
    shutil.rmtree(folder / "disgust")
    shutil.copy(next((folder / "neutral").iterdir()), folder / "stray.png")
    with pytest.raises(DataError, match=r"holds 1 image file\(s\) outside its class sub-folders \(stray\.png\)"):
        evaluate(fp16_model, folder)
    (folder / "stray.png").unlink()
    with pytest.raises(ValueError, match=r"detect \(--detect\) applies to a folder with one sub-folder of images per "
                                         r"class .*; .*FER2013Valid is a FER\+ split folder"):
        evaluate(fp16_model, ferplus_valid, detect=True)
    with pytest.raises(ValueError, match=r"class_map \(--class-map\) applies to"):
        evaluate(fp16_model, ferplus_valid, class_map={"happy": "happiness"})
    with pytest.raises(ValueError, match=r"^min_images \(--min-images\), exclude \(--exclude\) apply to a folder "):
        evaluate(fp16_model, ferplus_valid, min_images=1, exclude=["contempt"])
    assert evaluate(fp16_model, folder, min_images=1).n == sum(1 for _ in folder.rglob("*.png"))


def test_corrupt_image_in_a_class_folder_stops_or_is_skipped(fp16_model, ferplus_valid, tmp_path):
    from ferlite.datasets import DataError

    folder = majority_class_folder(ferplus_valid, tmp_path / "by_class", 40)
    bad = sorted((folder / "happiness").iterdir())[1]
    bad.write_bytes(bad.read_bytes()[:60])  # a truncated PNG
    with pytest.raises(DataError, match=rf"image {re.escape(str(bad))}: not a readable image: truncated: the PNG "
                                        r"ends after 60 bytes.* \(use --skip-bad / skip_bad=True"):
        evaluate(fp16_model, folder)
    with pytest.warns(UserWarning, match=r"1 unreadable image\(s\) skipped in .*by_class"):
        report = evaluate(fp16_model, folder, skip_bad=True, min_images=1)
    n = sum(1 for _ in folder.rglob("*.png"))
    assert (report.rows, report.faces, report.n, report.skipped[0][:2]) == (n, n - 1, n - 1, (str(bad), 0))
    assert report.to_json()["skipped_rows"][0]["line"] is None
    for other in folder.rglob("*.png"):
        other.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{re.escape(str(folder))}: no face to score: of its {n} images, {n} are "
                                        r"unreadable \(skipped\) and 0 show no face"):
        with pytest.warns(UserWarning, match="unreadable"):
            evaluate(fp16_model, folder, skip_bad=True)


def test_classes_with_too_few_images_or_excluded_are_left_out(fp16_model, ferplus_valid, tmp_path):
    """The first 100 FER2013Valid faces by majority class: neutral 33 and happiness 24 reach the default 20."""
    folder = majority_class_folder(ferplus_valid, tmp_path / "by_class", 100)
    counts = {c: sum(1 for _ in (folder / c).iterdir()) for c in EMOTIONS if (folder / c).is_dir()}
    assert counts == {"neutral": 33, "happiness": 24, "surprise": 18, "sadness": 6, "anger": 7, "fear": 2,
                      "contempt": 1}
    report = evaluate(fp16_model, folder)

    def by_hand(classes: tuple[str, ...], strength: float) -> np.ndarray:
        """The confusion matrix over ``classes``: the argmax over them of the outputs, balanced at ``strength``."""
        files = [p for c in classes for p in sorted((folder / c).iterdir())]
        raw = fp16_model.predict(np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files])[..., None])
        cols = [CLASSES9.index(c) for c in classes]
        pred = balance(raw, fp16_model.class_prior, strength)[:, cols].argmax(axis=1)
        true = np.repeat(range(len(classes)), [counts[c] for c in classes])
        expected = np.zeros((len(classes),) * 2, np.int64)
        np.add.at(expected, (true, pred), 1)
        return expected

    # photos are scored as Recognizer decides by default: class-balanced at the model's recorded strength
    assert report.balance == fp16_model.default_balance == 0.7
    expected = by_hand(("neutral", "happiness"), 0.7)
    assert (report.classes, report.min_images, report.excluded) == (("neutral", "happiness"), 20, ())
    assert report.left_out == {c: k for c, k in counts.items() if k < 20}
    assert (report.faces, report.dropped, report.n) == (91, 34, 57)  # 91 faces kept by majority of 100
    np.testing.assert_array_equal(report.confusion, expected)
    assert report.top1 == np.trace(expected) / 57
    assert report.balanced_accuracy == pytest.approx((expected[0, 0] / 33 + expected[1, 1] / 24) / 2)
    text = format_report(report)
    assert ("classes scored: the 2 with at least 20 images; left out: surprise (18 images), sadness (6 images), "
            "anger (7 images), fear (2 images), contempt (1 image)") in text
    assert "for these 2 classes, class-balanced (divided by the training class prior ** 0.7)\n" in text
    assert "samples: 91 images, 0 skipped as bad, 91 read, 34 of classes left out, 57 scored" in text

    fewer = evaluate(fp16_model, folder, min_images=10, exclude=["happiness"])
    assert (fewer.classes, fewer.excluded, fewer.n) == (("neutral", "surprise"), ("happiness",), 51)
    assert fewer.left_out == {"happiness": 24, "sadness": 6, "anger": 7, "fear": 2, "contempt": 1}
    assert "left out: happiness (24 images, excluded by name), sadness (6 images)" in format_report(fewer)
    j = fewer.to_json()
    assert (j["min_images"], j["excluded"], j["left_out"], j["balance"]) == (10, ["happiness"], fewer.left_out, 0.7)
    own = evaluate(fp16_model, folder, min_images=10, exclude=["happiness"], balance=0)  # the model's own outputs
    np.testing.assert_array_equal(fewer.confusion, by_hand(("neutral", "surprise"), 0.7))
    np.testing.assert_array_equal(own.confusion, by_hand(("neutral", "surprise"), 0.0))
    full = evaluate(fp16_model, folder, min_images=10, exclude=["happiness"], balance=1.0)
    np.testing.assert_array_equal(full.confusion, by_hand(("neutral", "surprise"), 1.0))
    assert own.confusion.tolist() != full.confusion.tolist()  # the decision matters on these faces (at 1, not 0.7)
    assert own.balance == 0 and "for these 2 classes\n" in format_report(own)
    with pytest.raises(ValueError, match=r"exclude: 'contemt' is not a class here; expected some of: neutral, "
                                         r"happiness, .*, unknown"):
        evaluate(fp16_model, folder, exclude=["contemt"])
    with pytest.raises(ValueError, match=r"no class to score: each class has fewer than 40 images"):
        evaluate(fp16_model, folder, min_images=40)
    with pytest.raises(ValueError, match=r"balance must be a number in \[0, 1\]"):
        evaluate(fp16_model, folder, balance=1.5)


def test_detect_counts_photos_without_a_face_as_misses(fp16_model, ferplus_valid, tmp_path):
    """FER+ faces upscaled 3-4x into blurred 640x480 scenes, as benchmarks/crop_geometry.py makes them, and a scene
    with no face: the balanced accuracy by hand, from what Recognizer.analyze finds and predicts in each photo."""
    from ferlite.recognizer import Recognizer

    crops = majority_class_folder(ferplus_valid, tmp_path / "crops", 40)
    photos, rng = tmp_path / "photos", np.random.default_rng(0)
    per_class = {"neutral": 2, "happiness": 2, "surprise": 2, "sadness": 1}  # sadness: below min_images 2
    faces = [face for c, k in per_class.items() for face in sorted((crops / c).iterdir())[:k]]
    for i, face in enumerate(faces):
        (photos / face.parent.name).mkdir(parents=True, exist_ok=True)
        scene = paste_into_scene(cv2.imread(str(face), cv2.IMREAD_GRAYSCALE), ("brick", "grass", "gravel")[i % 3], rng)
        assert cv2.imwrite(str(photos / face.parent.name / f"{face.stem}.jpg"), scene)
    empty_scene = photos / "neutral" / "zz_brick_only.png"
    assert cv2.imwrite(str(empty_scene), paste_into_scene(None, "brick", rng))
    report = evaluate(fp16_model, photos, detect=True, batch_size=3, min_images=2)

    rec = Recognizer(fp16_model)  # what the recogniser finds and predicts in each photo, the largest face
    classes = ("neutral", "happiness", "surprise")
    files = sorted((p for p in photos.rglob("*.*") if p.parent.name in classes),
                   key=lambda p: (EMOTIONS.index(p.parent.name), p))
    found = {p: rec.analyze(p) for p in files}
    no_face = [str(p) for p in files if not found[p]]
    assert str(empty_scene) in no_face and len(no_face) <= 2, no_face
    expected = np.zeros((3, 4), np.int64)  # the last column: no face
    for p in files:
        emotions = found[p][0]["emotions"] if found[p] else None
        expected[classes.index(p.parent.name), classes.index(max(classes, key=emotions.get)) if emotions else 3] += 1
    assert (report.classes, report.detector, report.rows, report.faces) == (classes, "yunet", 8, 8)
    assert (report.left_out, report.dropped, report.n, report.no_face) == ({"sadness": 1}, 1, 7, no_face)
    assert report.columns == (*classes, "no face")
    np.testing.assert_array_equal(report.confusion, expected)
    assert report.confusion[0, 3] >= 1  # the empty scene: a miss of neutral
    assert report.top1 == np.trace(expected) / 7
    by_hand = (expected[0, 0] / 3 + expected[1, 1] / 2 + expected[2, 2] / 2) / 3
    assert report.balanced_accuracy == pytest.approx(by_hand)
    assert report.class_recall["neutral"] == expected[0, 0] / 3  # the scene without a face counts in the recall
    j = report.to_json()
    assert (j["no_face"], j["no_face_files"], j["detector"]) == (len(no_face), no_face, "yunet")
    assert j["confusion_matrix"] == expected.tolist() and j["confusion_columns"][-1] == "no face"
    assert j["balanced_accuracy"] == pytest.approx(by_hand)
    text = format_report(report)
    assert f"the largest face found by the yunet detector in each photo; {len(no_face)} photo(s) without one, " \
        "counted as misses" in text
    assert "columns: predicted; 'no face': no face found, a miss):\n" + " " * 11 + \
        "neutral happine surpris no face\n" in text
    assert text.endswith(f"No face found in {len(no_face)} photo(s) (counted as misses):\n"
                         + "\n".join(f"  {p}" for p in no_face))
    paths = plot_report(report, tmp_path / "plots")
    assert all(cv2.imread(str(p)) is not None for p in paths)

    for c in (*classes[1:], "sadness"):
        shutil.rmtree(photos / c)
    for p in (photos / "neutral").iterdir():
        if p != empty_scene:
            p.unlink()
    (photos / "neutral" / "only_bricks.png").write_bytes(empty_scene.read_bytes())
    with pytest.raises(DataError, match=r"photos: no face to score: of its 2 images, 0 are unreadable \(skipped\) and "
                                        r"2 show no face the detector finds"):
        evaluate(fp16_model, photos, detect=True)
