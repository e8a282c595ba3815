"""One small end-to-end run on real faces: every output file, finite metrics, resume, no silent overwrite."""

import csv
import json
import math

import pytest
from conftest import copy_split

from ferlite.train import TrainConfig, train


@pytest.fixture
def small_splits(ferplus_train_sample, ferplus_valid, tmp_path):
    return (copy_split(ferplus_train_sample, tmp_path / "train", 256),
            copy_split(ferplus_valid, tmp_path / "val", 128))


def test_train_end_to_end_and_resume(small_splits, tmp_path):
    tr, va = small_splits
    out = tmp_path / "run"
    cfg = TrainConfig(train=str(tr), val=str(va), alpha=0.25, epochs=1, batch_size=32, output_dir=str(out),
                      warmup_epochs=0, aug="standard")
    info = train(cfg, log=lambda *_: None)
    for name in ("last.keras", "state.json", "best_mae.keras", "best_major8.keras", "history.csv", "curves.png",
                 "model.keras", "model.json"):
        assert (out / name).is_file(), name
    side = json.loads((out / "model.json").read_text())
    assert side["classes"] == ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                               "unknown"]
    assert side["input_size"] == 48 and side["alpha"] == 0.25 and side["data"]["train_faces"] == 256
    for key in ("mae", "top1", "kl", "major8_acc"):
        assert math.isfinite(info["valid"][key])
    assert set(info["valid"]["class_mae"]) == set(side["classes"])
    assert all(math.isfinite(x) for x in info["valid"]["class_mae"].values())
    (row,) = csv.DictReader(open(out / "history.csv"))
    assert all(math.isfinite(float(x)) for x in row.values()), row

    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, log=lambda *_: None)

    cfg.epochs, cfg.resume = 2, True
    train(cfg, log=lambda *_: None)
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert json.loads((out / "state.json").read_text())["epoch"] == 2


def test_bad_options(small_splits, tmp_path):
    tr, va = small_splits
    with pytest.raises(ValueError, match="unknown loss"):
        train(TrainConfig(train=str(tr), val=str(va), loss="hinge", output_dir=str(tmp_path / "x")))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(TrainConfig(train=str(tr), val=str(va), resume=True, output_dir=str(tmp_path / "y")))


def test_weight_average_arithmetic():
    import keras
    import numpy as np

    from ferlite.train import WeightAverage

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ema = WeightAverage(0.5)
    steps = [np.full((2, 1), 1.0), np.full((2, 1), 3.0), np.full((2, 1), 7.0)]
    for kernel in steps:
        model.set_weights([kernel, np.zeros(1)])
        ema.update(model)
    # first update copies; then d = min(0.5, 2/11) = 2/11, then min(0.5, 3/12) = 1/4
    expected = ((1.0 * 2 / 11 + 3.0 * 9 / 11) * 1 / 4 + 7.0 * 3 / 4)
    np.testing.assert_allclose(ema.weights[0], expected, rtol=1e-6)
    assert ema.updates == 3
    with ema.applied(model):
        np.testing.assert_allclose(model.get_weights()[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(model.get_weights()[0], steps[-1])  # the model's own weights come back


def test_train_with_ema_selects_the_average_and_resumes(small_splits, tmp_path):
    import keras
    import numpy as np

    from ferlite.data import read_dataset
    from ferlite.train import WeightAverage, evaluate_arrays

    tr, va = small_splits
    out = tmp_path / "run"
    cfg = TrainConfig(train=str(tr), val=str(va), alpha=0.25, epochs=1, batch_size=32, output_dir=str(out),
                      warmup_epochs=0, ema=0.9)
    train(cfg, log=lambda *_: None)
    (row,) = csv.DictReader(open(out / "history.csv"))
    assert float(row["ema_val_mae"]) != float(row["val_mae"])  # 8 steps of averaging: not the raw weights
    ema = WeightAverage(0.9)
    ema.load(out / "ema.npz")
    assert ema.updates == 8  # 256 faces / batch 32, one update a step
    # model.keras holds the averaged weights, and scores what history.csv recorded for them
    model = keras.models.load_model(out / "model.keras", compile=False)
    for saved, averaged in zip(model.get_weights(), ema.weights, strict=True):
        np.testing.assert_allclose(saved, averaged, rtol=1e-6)
    valid, _ = evaluate_arrays(model, read_dataset(str(va)))
    assert valid["mae"] == pytest.approx(float(row["ema_val_mae"]), abs=1e-6)

    cfg.epochs, cfg.resume = 2, True
    train(cfg, log=lambda *_: None)
    ema.load(out / "ema.npz")
    assert ema.updates == 16  # the average carried on from the saved one


def test_bad_ema(small_splits, tmp_path):
    tr, va = small_splits
    with pytest.raises(ValueError, match=r"ema must be a decay in \[0, 1\)"):
        train(TrainConfig(train=str(tr), val=str(va), ema=1.0, output_dir=str(tmp_path / "x")))
